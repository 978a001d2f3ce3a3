"""Speed-only code: everything that makes training and evaluation fast without changing what a lifter is.

Why a package of its own: a model file (``liftbench/models/<name>.py``) should read like the paper (the
readable ``nn.Module``, its ``Config``, contract and loss), so a reviewer can check it against the
publication. Hand-written backwards, stacked (packed) training, oneDNN dispatch, buffer pools and folded
evaluation kernels live here and are tested equal to the readable model (``tests/test_fastpath.py``,
``tests/test_packing.py``).

A lifter opts in by naming its speed path as a class attribute, imported lazily on first use::

    speed_path = "liftbench.fast.seq2seq:Seq2SeqSpeed"

The class (a ``SpeedPath`` subclass) may give a stacked training implementation (``stack``: K
members as one computation, a single run is K = 1), a faster ``predict_frames`` for the evaluator,
the readable forward ``liftbench bench`` times as its "plain" path, and the FLOPs each path executes.
Everything is optional; a lifter without a speed path trains through ``FunctionalStack`` (its own
``forward`` and ``loss``) and evaluates through its own ``predict_frames``.

``disabled()`` switches every speed path off for the code inside it (bench's plain path, the
equality tests): the implementation choice is a runtime switch, never part of a run's configuration
or run id.
"""

from liftbench.fast.base import SpeedPath, active_speed_path, disabled, enabled, predict_frames, speed_path

__all__ = ["SpeedPath", "active_speed_path", "disabled", "enabled", "predict_frames", "speed_path"]
