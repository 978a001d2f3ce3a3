"""Suite orchestration: ``trial`` (train + evaluate one spec under its claim), ``executors`` (in
process, local worker pool, Ray), ``packing`` (stacked training of same-shaped runs), ``manifest``
(suite files shared by concurrent sessions), ``suite`` (run a whole suite, merge, summarise) and
``status``. Imports only the core below it."""
