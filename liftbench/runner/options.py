"""How a suite executes, validated in one place: which executor, how many workers on which devices,
Ray's per-trial shares, packing, and whether each trial also logs to TensorBoard. The CLI builds one
``ExecutionOptions`` from its flags; Python users build it directly; ``validate`` states every rule once."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from liftbench.errors import ConfigError
from liftbench.runner.executors import EXECUTORS, Executor, get_executor
from liftbench.suites import RunSpec


@dataclass(frozen=True)
class ExecutionOptions:
    executor: str = "local"  # local | ray
    workers: int = 1  # local: trials in parallel worker processes
    devices: tuple[str, ...] = ()  # local workers: devices round-robin
    ray_address: str | None = None  # ray: join this cluster (None: start a local Ray)
    gpus_per_trial: float | None = None  # ray: GPU share per trial (None: 0)
    cpus_per_trial: float | None = None  # ray: CPUs and torch threads per trial (None: 1)
    pack: int = 1  # in process: up to K same-shaped runs as one stacked computation
    tensorboard: bool = False  # every trial also logs to its own <run dir>/tensorboard/ (not a config key)

    @classmethod
    def from_flags(cls, executor: str = "local", workers: int = 1, devices: str | None = None, **rest: Any
                   ) -> ExecutionOptions:
        """From command-line values (``devices`` as ``cuda:0,cuda:1``), validated."""
        options = cls(executor, workers, tuple(d.strip() for d in (devices or "").split(",") if d.strip()), **rest)
        options.validate()
        return options

    @property
    def in_process(self) -> bool:
        return self.executor == "local" and self.workers == 1

    def validate(self) -> None:
        """Options of the other executor are errors, never silently dropped; Ray's shares must be finite."""
        if self.executor not in EXECUTORS:
            raise ConfigError(f"--executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}.")
        if self.workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {self.workers}.")
        for option, value, positive in (("--cpus-per-trial", self.cpus_per_trial, True),
                                        ("--gpus-per-trial", self.gpus_per_trial, False)):
            if value is not None and not (math.isfinite(value) and (value > 0 if positive else value >= 0)):
                raise ConfigError(f"{option} must be a finite number {'> 0' if positive else '>= 0'}, got {value}.")
        if self.executor == "local":
            ray_only = [o for o, v in (("--ray-address", self.ray_address), ("--gpus-per-trial", self.gpus_per_trial),
                                       ("--cpus-per-trial", self.cpus_per_trial)) if v is not None]
            if ray_only:
                raise ConfigError(f"{' / '.join(ray_only)} {'applies' if len(ray_only) == 1 else 'apply'} to "
                                  "--executor ray only; the local executor runs each trial with OMP_NUM_THREADS "
                                  "threads (per worker: CPUs / --workers): drop the option or add --executor ray.")
            if self.devices and self.workers < 2:
                raise ConfigError("--devices needs --workers N (N >= 2); for one process use --device.")
        elif self.workers != 1 or self.devices:
            raise ConfigError("--workers/--devices apply to --executor local; Ray places trials itself "
                              "(use --cpus-per-trial / --gpus-per-trial).")
        if self.pack < 1:
            raise ConfigError(f"--pack must be >= 1 (1 = no packing), got {self.pack}.")
        if self.pack > 1 and not self.in_process:
            raise ConfigError("--pack trains in this process; drop --executor ray / --workers, or drop --pack.")

    def make_executor(self, on_progress: Callable[[Any], None] | None = None,
                      on_trial_start: Callable[[int, RunSpec], Any] | None = None) -> Executor:
        """The executor these options describe; Ray is joined or started here, so a bad --ray-address is
        one line before any work."""
        self.validate()
        if self.executor == "local":
            return get_executor("local", workers=self.workers, devices=list(self.devices), on_progress=on_progress,
                                on_trial_start=on_trial_start, tensorboard=self.tensorboard)
        executor = get_executor(self.executor, on_progress=on_progress, tensorboard=self.tensorboard,
                                address=self.ray_address,
                                gpus_per_trial=self.gpus_per_trial or 0.0,
                                cpus_per_trial=1.0 if self.cpus_per_trial is None else self.cpus_per_trial)
        executor.start()
        return executor
