"""Training progress for people and for logs.

On a terminal: rich bars (one run's epoch, step, loss, lr and ETA; a suite's runs done / total). Without
one (``> log.txt``, CI, a batch job, ``TERM=dumb``) live bars print nothing until the end, so a long
epoch looked dead for 20+ minutes: there ``LogTrainProgress`` prints one plain line every
``LIFTBENCH_PROGRESS_SECONDS`` (default 30 s, so at least once a minute) -- epoch, step, loss, lr, steps/s
and ETA -- and one line at each epoch end. ``train_progress`` picks the right one.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from liftbench.cli._common import console, interactive
from liftbench.errors import ConfigError
from liftbench.values import finite_number

PROGRESS_SECONDS = 30.0  # default interval of the plain progress lines
PROGRESS_ENV = "LIFTBENCH_PROGRESS_SECONDS"


def make_progress() -> Progress:
    """A rich Progress; disabled (it draws nothing, ``console.print`` still prints) without a terminal."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False,
                    disable=not interactive(sys.stdout))


def progress_interval() -> float:
    """Seconds between plain progress lines: $LIFTBENCH_PROGRESS_SECONDS (> 0), else 30."""
    text = os.environ.get(PROGRESS_ENV, "").strip()
    if not text:
        return PROGRESS_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = text
    return float(finite_number(value, f"${PROGRESS_ENV}", minimum=1e-3, maximum=86400.0, error=ConfigError,
                               fix="seconds between progress lines, e.g. 30"))


def train_progress(progress: Progress, label: str = "train") -> RichTrainProgress | LogTrainProgress:
    """The ``TrainProgress`` for this output: a bar on a terminal, plain lines otherwise."""
    if progress.disable:
        return LogTrainProgress(label, progress_interval())
    return RichTrainProgress(progress, label)


def duration(seconds: float) -> str:
    """12 s, 4m05s, 2h03m."""
    if not math.isfinite(seconds):
        return "?"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def epoch_summary(epoch: int, record: dict[str, Any]) -> str:
    test = record.get("test_mpjpe")
    return f"epoch {epoch}: train loss {record['train_loss']:.4g}" + (
        f", test MPJPE {test:.1f} mm" if test is not None else "")


class RichTrainProgress:
    """Implements ``liftbench.train.TrainProgress`` on a rich ``Progress`` (epoch, step, loss, lr, ETA)."""

    def __init__(self, progress: Progress, label: str = "train"):
        self.progress = progress
        self.label = label
        self.task = None
        self.steps_per_epoch = 1

    def on_train_start(self, epochs: int, steps_per_epoch: int, epoch: int, step: int) -> None:
        self.steps_per_epoch = max(steps_per_epoch, 1)
        total = epochs * self.steps_per_epoch
        done = epoch * self.steps_per_epoch + step
        if self.task is None:
            self.task = self.progress.add_task(self.label, total=total, completed=done, info="")
        else:
            self.progress.reset(self.task, total=total, completed=done, description=self.label, info="")

    def on_step(self, epoch: int, step: int, loss: float, lr: float) -> None:
        self.progress.update(self.task, advance=1,
                             info=f"epoch {epoch + 1} step {step}/{self.steps_per_epoch} loss {loss:.4g} lr {lr:.2e}")

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        self.progress.console.print(f"  {self.label} {epoch_summary(epoch, record)}")

    def finish(self) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None


class LogTrainProgress:
    """Implements ``liftbench.train.TrainProgress`` as plain lines for logs: one every ``interval_s`` seconds
    (epoch, step, loss, lr, steps/s over the interval, ETA from the rate since training started here) and
    one per finished epoch. ``clock`` and ``emit`` are injectable for tests."""

    def __init__(self, label: str = "train", interval_s: float = PROGRESS_SECONDS,
                 clock: Callable[[], float] = time.monotonic, emit: Callable[[str], None] | None = None):
        self.label, self.interval, self.clock = label, interval_s, clock
        self.emit = emit or (lambda text: console.print(text, soft_wrap=True, markup=False, highlight=False))
        self.epochs = self.steps_per_epoch = 1
        self.total = self.done = self.first = self.last_done = 0
        self.started = self.last = 0.0

    def on_train_start(self, epochs: int, steps_per_epoch: int, epoch: int, step: int) -> None:
        self.epochs, self.steps_per_epoch = epochs, max(steps_per_epoch, 1)
        self.total = epochs * self.steps_per_epoch
        self.done = self.first = self.last_done = epoch * self.steps_per_epoch + step
        self.started = self.last = self.clock()
        where = f"from epoch {epoch + 1} step {step}" if self.done else "from the start"
        self.emit(f"{self.label}: training {epochs} epoch(s) of {self.steps_per_epoch} steps {where}; a progress "
                  f"line every {self.interval:g} s")

    def on_step(self, epoch: int, step: int, loss: float, lr: float) -> None:
        self.done = epoch * self.steps_per_epoch + step
        now = self.clock()
        if now - self.last < self.interval:
            return
        rate = (self.done - self.last_done) / max(now - self.last, 1e-9)  # steps/s over this interval
        overall = (self.done - self.first) / max(now - self.started, 1e-9)
        eta = (self.total - self.done) / overall if overall > 0 else float("inf")
        self.emit(f"{self.label} epoch {epoch + 1}/{self.epochs} step {step}/{self.steps_per_epoch} "
                  f"({100 * self.done / max(self.total, 1):.1f} %) loss {loss:.4g} lr {lr:.2e} {rate:.2f} steps/s "
                  f"ETA {duration(eta)}")
        self.last, self.last_done = now, self.done

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        took = f" ({duration(float(record['seconds']))})" if "seconds" in record else ""
        self.emit(f"{self.label} {epoch_summary(epoch, record)}{took}")

    def finish(self) -> None:
        """Nothing to take down (the suite calls it between trials)."""
