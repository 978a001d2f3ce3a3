"""Performance measurement: ``bench`` (ms/step, frames/s, GFLOP/s and % of the measured matmul rate
per lifter and path), ``pack_bench`` (packed vs one-by-one training) and ``measure`` (interleaved
timing with medians and spread). Imports only the core and ``fast`` below it."""
