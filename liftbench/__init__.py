"""liftbench: benchmarking and ablation toolkit for 2D->3D human-pose lifters.

Everything the CLI does is a function here (imported lazily, so ``import liftbench`` stays cheap)::

    import liftbench
    cfg = liftbench.load_config("seq2seq", overrides={"hidden_size": 256, "train.epochs": 3})
    run = liftbench.train_run(cfg, device="auto")                    # -> TrainOutcome (run_dir, state)
    res = liftbench.evaluate_run(run.run_dir, save_predictions=True)  # -> EvalOutcome (rows, protocol card)
    specs = liftbench.expand_suite("ablation", preset="smoke")
    rows, summary, trials = liftbench.run_suite(specs, out, out / "ablation")
    verdicts, code = liftbench.check_results("results.csv", "baselines/reference/results.csv")

(``train``, ``evaluate`` and ``check`` are submodules, so the functions carry ``_run``/``_results``.)

This file is the public API table only: it imports nothing from the package, so ``import liftbench``
loads no torch; each name is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> (module, attribute)
_API = {
    "load_config": ("liftbench.config", "resolve_config"),
    "create_lifter": ("liftbench.models", "create_lifter"),
    "list_lifters": ("liftbench.models", "list_lifters"),
    "load_dataset": ("liftbench.data", "load_dataset"),
    "train_run": ("liftbench.pipeline", "train_run"),
    "load_run": ("liftbench.pipeline", "load_run"),
    "evaluate_run": ("liftbench.pipeline", "evaluate_run"),
    "expand_suite": ("liftbench.suites", "expand_suite"),
    "run_suite": ("liftbench.runner.suite", "run_suite"),
    "check_results": ("liftbench.check", "check_files"),
    "metrics": ("liftbench", "metrics"),
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'liftbench' has no attribute '{name}'")
    module, attr = _API[name]
    if module == "liftbench":
        return importlib.import_module(f"liftbench.{attr}")
    return getattr(importlib.import_module(module), attr)
