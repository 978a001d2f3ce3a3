"""TensorBoard logging of training (``--tensorboard``): the tracker this field uses (the VideoPose3D-era
repositories, MotionBERT, MixSTE, D3DP write TensorBoard event files).

``TensorBoardProgress`` is a ``train.TrainProgress``: it only observes. It writes into
``<run_dir>/tensorboard/``

* ``train/loss`` and ``train/lr`` (means over every ``LOG_EVERY`` optimiser steps) and ``perf/step_seconds``
  (wall time per step over the same window), against the global step;
* ``epoch/train_loss``, ``epoch/test_mpjpe_mm`` (action mean, the headline), ``epoch/test_mpjpe_frame_mean_mm``,
  ``epoch/lr`` and ``epoch/seconds``, against the epoch number (1-based);
* the resolved config as hparams (``model.name``, ``model.*``, ``train.*``, ``data.*``, ``run_id``,
  ``config_hash``) with the metric ``hparams/test_mpjpe_mm``, and the config as text.

It draws no random numbers, touches no tensor and is not a config key, so a run's results and run id are
the same with and without it. A resumed run appends a new event file to the same directory (TensorBoard
reads them together). ``torch.utils.tensorboard`` needs the ``tensorboard`` package: the optional extra
``pip install 'liftbench[tensorboard]'``, imported only when asked for.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from liftbench.errors import MissingExtraError

TENSORBOARD_DIR = "tensorboard"
LOG_EVERY = 50  # optimiser steps per logged point of the step scalars
HINT = "pip install 'liftbench[tensorboard]'"


def require_tensorboard() -> Any:
    """``torch.utils.tensorboard.SummaryWriter``, or a one-line ``MissingExtraError`` naming the extra."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:  # torch raises it when the tensorboard package is missing
        raise MissingExtraError(f"--tensorboard needs TensorBoard, which is not installed: {HINT}") from exc
    return SummaryWriter


def flat_hparams(config: dict[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
    """A nested config -> {'train.lr': 0.001, ...} with values TensorBoard's hparams take (lists as JSON text)."""
    flat: dict[str, bool | int | float | str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_hparams(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = json.dumps(value, default=str)
    return flat


class TensorBoardProgress:
    """Implements ``liftbench.train.TrainProgress`` by writing TensorBoard events (module docstring)."""

    def __init__(self, run_dir: str | Path, config: dict[str, Any], *, run_id: str = "", config_hash: str = "",
                 log_every: int = LOG_EVERY, clock: Callable[[], float] = time.monotonic):
        self.log_dir = Path(run_dir) / TENSORBOARD_DIR
        self.hparams = {"run_id": run_id, "config_hash": config_hash, **flat_hparams(config)}
        self.config_text = json.dumps(config, indent=2, sort_keys=True, default=str)
        self.log_every, self.clock = max(int(log_every), 1), clock
        self.writer = None
        self.epochs = self.steps_per_epoch = 1
        self._reset_window()

    def _reset_window(self) -> None:
        self.window_loss, self.window_lr, self.window_n = 0.0, 0.0, 0
        self.window_start = self.clock()

    def on_train_start(self, epochs: int, steps_per_epoch: int, epoch: int, step: int) -> None:
        from torch.utils.tensorboard.summary import hparams

        writer_cls = require_tensorboard()
        self.epochs, self.steps_per_epoch = epochs, max(steps_per_epoch, 1)
        if self.writer is None:
            self.writer = writer_cls(log_dir=str(self.log_dir), flush_secs=10)
            experiment, start, end = hparams(self.hparams, {"hparams/test_mpjpe_mm": float("nan")})
            file_writer = self.writer._get_file_writer()  # the hparams go into this run's own event file
            for summary in (experiment, start, end):
                file_writer.add_summary(summary)
            self.writer.add_text("config", f"```\n{self.config_text}\n```", global_step=epoch)
        self._reset_window()

    def on_step(self, epoch: int, step: int, loss: float, lr: float) -> None:
        self.window_loss += loss
        self.window_lr += lr
        self.window_n += 1
        global_step = epoch * self.steps_per_epoch + step
        if global_step % self.log_every == 0 and self.writer is not None:
            seconds = self.clock() - self.window_start
            self.writer.add_scalar("train/loss", self.window_loss / self.window_n, global_step)
            self.writer.add_scalar("train/lr", self.window_lr / self.window_n, global_step)
            self.writer.add_scalar("perf/step_seconds", seconds / self.window_n, global_step)
            self._reset_window()

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        if self.writer is None:
            return
        scalars = {"epoch/train_loss": record.get("train_loss"), "epoch/lr": record.get("lr"),
                   "epoch/seconds": record.get("seconds"), "epoch/test_mpjpe_mm": record.get("test_mpjpe"),
                   "epoch/test_mpjpe_frame_mean_mm": record.get("test_mpjpe_frame_mean"),
                   "hparams/test_mpjpe_mm": record.get("test_mpjpe")}
        for tag, value in scalars.items():
            if value is not None:
                self.writer.add_scalar(tag, float(value), epoch)
        self.writer.flush()
        if epoch >= self.epochs:
            self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class ProgressHooks:
    """Several ``TrainProgress`` hooks as one (a bar or log lines, plus TensorBoard)."""

    def __init__(self, *hooks: Any):
        self.hooks = [h for h in hooks if h is not None]

    def on_train_start(self, epochs: int, steps_per_epoch: int, epoch: int, step: int) -> None:
        for hook in self.hooks:
            hook.on_train_start(epochs, steps_per_epoch, epoch, step)

    def on_step(self, epoch: int, step: int, loss: float, lr: float) -> None:
        for hook in self.hooks:
            hook.on_step(epoch, step, loss, lr)

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        for hook in self.hooks:
            hook.on_epoch_end(epoch, record)


def with_tensorboard(progress: Any, run_dir: str | Path, config: dict[str, Any], *, run_id: str = "",
                     config_hash: str = "") -> ProgressHooks:
    """``progress`` (may be None) plus a ``TensorBoardProgress`` for ``run_dir``; the extra is checked now."""
    require_tensorboard()
    return ProgressHooks(progress, TensorBoardProgress(run_dir, config, run_id=run_id, config_hash=config_hash))
