"""The one safe reader of ``.npz`` files from users: ``npz`` (the zip container, inflated member by
member up to declared sizes), ``pickle_vm`` (a whitelisted, iterative pickle interpreter for object
arrays) and ``numpy_rebuild`` (dtypes and arrays rebuilt from validated descriptions)."""
