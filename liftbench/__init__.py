"""liftbench: benchmarking and ablation toolkit for 2D->3D human-pose lifters."""

__version__ = "0.1.0"
