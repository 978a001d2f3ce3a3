"""Rich progress bars for training (one run) and suites (runs done / total)."""

from __future__ import annotations

from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from liftbench.cli._common import console


def make_progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False)


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
        test = record.get("test_mpjpe")
        msg = f"epoch {epoch}: train loss {record['train_loss']:.4g}" + (f", test MPJPE {test:.1f} mm" if test is not None else "")
        self.progress.console.print(f"  {self.label} {msg}")

    def finish(self) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None
