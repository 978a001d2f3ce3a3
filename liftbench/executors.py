"""Executors: where the trials of a suite run. Same results whatever the executor.

* ``local`` with ``workers=N`` > 1: N worker processes (spawned, so CUDA is safe), each trial
  pinned to one device from ``devices`` round-robin.
* ``ray``: each trial is a Ray task with its own resource request (``gpus_per_trial`` may be
  fractional to pack trials on a GPU); ``address`` joins an existing cluster (``auto`` or
  ``ray://host:port``), otherwise a local Ray starts on demand. Needs ``pip install 'liftbench[ray]'``
  and, on a cluster, the same liftbench version and data on every node and an ``--out`` every node
  can write (a shared filesystem).

Every trial writes only its own run directory; the suite merges rows afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from liftbench.errors import ConfigError, MissingExtraError, unknown_name_message
from liftbench.runner import TrialResult, error_rows, run_trial
from liftbench.suites import RunSpec


def _trial_in_worker(spec: RunSpec, out: str, data_dir: str | None, device: str) -> TrialResult:
    # torch in a worker: one thread per worker avoids oversubscribing the cores the workers share
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    return run_trial(spec, Path(out), data_dir, device)


class LocalPoolExecutor:
    def __init__(self, workers: int, devices: list[str] | None = None):
        if workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {workers}.")
        self.workers = workers
        self.devices = devices or []

    def map(self, specs: list[RunSpec], out: Path, data_dir, device: str,
            on_trial_end: Callable[[int, TrialResult], None] | None = None) -> list[TrialResult]:
        import concurrent.futures as cf
        import multiprocessing as mp

        results: list[TrialResult | None] = [None] * len(specs)
        with cf.ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn")) as pool:
            futures = {}
            for i, spec in enumerate(specs):
                dev = self.devices[i % len(self.devices)] if self.devices else device
                futures[pool.submit(_trial_in_worker, spec, str(out), str(data_dir) if data_dir else None, dev)] = i
            for fut in cf.as_completed(futures):
                i = futures[fut]
                try:
                    results[i] = fut.result()
                except Exception as exc:  # noqa: BLE001 - a dead worker is one failed trial, not a dead suite
                    results[i] = TrialResult(specs[i], error_rows(specs[i], f"worker failed: {exc}"), False, 0, str(exc))
                if on_trial_end:
                    on_trial_end(i, results[i])
        return [r for r in results if r is not None]


class RayExecutor:
    def __init__(self, address: str | None = None, cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0):
        try:
            import ray  # noqa: F401
        except ImportError as exc:
            raise MissingExtraError("--executor ray needs Ray: pip install 'liftbench[ray]'.") from exc
        self.address = address
        self.cpus_per_trial = cpus_per_trial
        self.gpus_per_trial = gpus_per_trial

    def map(self, specs: list[RunSpec], out: Path, data_dir, device: str,
            on_trial_end: Callable[[int, TrialResult], None] | None = None) -> list[TrialResult]:
        import ray

        if not ray.is_initialized():
            ray.init(address=self.address or None, include_dashboard=False, log_to_driver=False,
                     ignore_reinit_error=True)
        task = ray.remote(num_cpus=self.cpus_per_trial, num_gpus=self.gpus_per_trial)(_trial_in_worker)
        dev = "cuda" if self.gpus_per_trial > 0 and device == "auto" else device
        refs = {task.remote(spec, str(Path(out).resolve()), str(data_dir) if data_dir else None, dev): i
                for i, spec in enumerate(specs)}
        results: list[TrialResult | None] = [None] * len(specs)
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            i = refs[done[0]]
            try:
                results[i] = ray.get(done[0])
            except Exception as exc:  # noqa: BLE001 - a crashed task is one failed trial
                results[i] = TrialResult(specs[i], error_rows(specs[i], f"ray task failed: {exc}"), False, 0, str(exc))
            if on_trial_end:
                on_trial_end(i, results[i])
        return [r for r in results if r is not None]


def get_executor(name: str, workers: int = 1, devices: list[str] | None = None, **ray_options: Any):
    if name == "local":
        return LocalPoolExecutor(workers, devices)
    if name == "ray":
        return RayExecutor(**ray_options)
    raise ConfigError(unknown_name_message("executor", name, ["local", "ray"]))
