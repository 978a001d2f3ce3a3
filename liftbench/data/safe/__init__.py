"""The one safe reader of ``.npz`` (and ``.npy``) files from users: ``npz`` (the zip container, inflated member
by member up to declared sizes), ``pickle_vm`` (a whitelisted, iterative pickle interpreter for object
arrays), ``numpy_rebuild`` (dtypes and arrays rebuilt from validated descriptions), ``tree`` (the last check
of a result) and ``budget`` (the memory bound: every byte charged before it is allocated)."""
