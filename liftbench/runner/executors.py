"""Executors: where the trials of a suite run. Same results whatever the executor.

One small interface, ``map(specs, out, data_dir, device, on_trial_end) -> list[TrialResult]``:

* ``local``, ``workers=1``: the trials run one after another in this process.
* ``local``, ``workers=N`` > 1: N spawned worker processes (spawn, so CUDA is safe), worker k pinned to
  ``devices[k % len(devices)]`` (or to ``device``), each with ``cpus // N`` torch threads.
* ``ray``: each trial is a Ray core task with its own resource request (``gpus_per_trial`` may be
  fractional to pack trials on a GPU); ``address`` joins an existing cluster (``auto`` or
  ``ray://host:port``), otherwise a local Ray with at most this machine's CPUs starts on demand. Needs
  ``pip install 'liftbench[ray]'`` and, on a cluster, the same liftbench version and data on every node
  (or a data path every node can read) and an ``--out`` every node can write (a shared filesystem).

Every trial writes only its own run directory and returns its rows; the suite merges them afterwards.
The claim on a run is taken where the trial runs (``runner.run_trial``); a trial whose run another
live process holds comes back *waiting* and is retried every ``WAIT_POLL_S`` seconds once the other
trials are out (the progress line says "waiting for <host> pid <pid>"), until the other process has
finished it (its rows are then read back) or died (the claim is taken over and the run resumed).
A worker loads its data itself: from ``data_dir`` (or ``$LIFTBENCH_DATA``), with built-in sources or
installed plug-ins; a dataset or lifter registered by the caller's own module is re-imported in the
worker from the same path (``_plugin_modules``). Any exception in a trial, a bug included, becomes
that trial's error rows with a one-line reason; the others go on.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from liftbench import __version__
from liftbench.data import DATASETS
from liftbench.device import resolve_device
from liftbench.errors import ConfigError, LiftbenchError, MissingExtraError, one_line, unknown_name_message
from liftbench.locks import LOCK_FILE
from liftbench.models import LIFTERS
from liftbench.runner.trial import TrialResult, error_rows, record_failure, run_trial
from liftbench.suites import RunSpec

POLL_S = 1.0  # how often the progress callback hears about running trials
WAIT_POLL_S = 2.0  # how often a trial claimed by another process is tried again
RAY_HINT = "pip install 'liftbench[ray]'"


@dataclass
class SuiteCounts:
    """Overall progress of a suite on an executor."""

    total: int
    done: int = 0
    running: int = 0
    failed: int = 0
    waiting: int = 0  # trials whose run another live process holds (retried until done there)
    waiting_for: tuple[str, ...] = ()  # those processes, 'host pid N'

    @property
    def pending(self) -> int:
        return self.total - self.done - self.running - self.failed - self.waiting


ProgressFn = Callable[[SuiteCounts], None]
TrialEndFn = Callable[[int, TrialResult], None]


class Executor(Protocol):
    def map(self, specs: list[RunSpec], out: Path, data_dir: str | Path | None, device: str,
            on_trial_end: TrialEndFn | None = None) -> list[TrialResult]: ...


@dataclass(frozen=True)
class WorkerContext:
    """What a worker needs besides the spec: the driver's version, plug-in modules, torch threads."""

    version: str = __version__
    plugins: tuple[tuple[str, str], ...] = ()  # (module, sys.path root)
    threads: int | None = None
    tensorboard: bool = False  # each trial also logs to its own <run dir>/tensorboard/


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _module_root(module: str) -> str:
    """The sys.path entry from which ``module`` was imported ('' if unknown)."""
    mod = sys.modules.get(module)
    file = getattr(mod, "__file__", None)
    if not file:
        return ""
    path = Path(file).resolve().parent
    for _ in range(module.count(".") + (1 if Path(file).name == "__init__.py" else 0)):
        path = path.parent
    return str(path)


def _plugin_modules(specs: list[RunSpec]) -> tuple[tuple[str, str], ...]:
    """Modules outside liftbench that registered a dataset or lifter the specs use (workers import them)."""

    found: dict[str, str] = {}
    for spec in specs:
        for registry, name in ((DATASETS, spec.config.data.name), (LIFTERS, spec.config.model)):
            try:
                module = registry.get(name).__module__
            except LiftbenchError:
                continue  # the trial reports the unknown name itself
            if module.split(".")[0] != "liftbench" and module not in ("__main__", "__mp_main__"):
                found[module] = _module_root(module)
    return tuple(sorted(found.items()))


def _import_plugins(plugins: tuple[tuple[str, str], ...]) -> None:
    for module, root in plugins:
        if module in sys.modules:
            continue
        if root and root not in sys.path and Path(root).is_dir():
            sys.path.append(root)
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - any import failure is one line
            raise ConfigError(f"worker cannot import module '{module}' that registers a dataset or lifter of this "
                              f"suite ({type(exc).__name__}: {one_line(exc)}); make it importable on every node "
                              "(install it, or use a data path every node can read)") from exc


def internal_error_line(exc: BaseException) -> str:
    """One line for an exception that is not a LiftbenchError (a bug): type, message and where."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name}" if frames else ""
    return f"internal error {type(exc).__name__}: {one_line(exc)}{where} (LIFTBENCH_DEBUG=1 prints the traceback)"


def failed_trial(spec: RunSpec, message: str, out: str | Path | None = None) -> TrialResult:
    if out is not None:
        record_failure(Path(out), spec, message)
    return TrialResult(spec, error_rows(spec, message), False, 0, message)


def run_trial_isolated(spec: RunSpec, out: str, data_dir: str | None, device: str, ctx: WorkerContext,
                       progress: Any = None) -> TrialResult:
    """A trial in a worker: never raises, whatever goes wrong becomes the trial's error rows."""
    try:
        if ctx.version != __version__:
            raise ConfigError(f"this node has liftbench {__version__}, the driver {ctx.version}; install the same "
                              "liftbench version on every node")
        if ctx.threads:
            import torch

            torch.set_num_threads(ctx.threads)
        _import_plugins(ctx.plugins)
        return run_trial(spec, Path(out), data_dir, device, progress, tensorboard=ctx.tensorboard)
    except LiftbenchError as exc:
        return failed_trial(spec, one_line(exc), out)
    except Exception as exc:  # noqa: BLE001 - a bug in one trial must not stop the suite
        if os.environ.get("LIFTBENCH_DEBUG"):
            traceback.print_exc()  # the worker's stderr (Ray: forwarded to the driver in debug mode)
        return failed_trial(spec, internal_error_line(exc), out)


class _Tracker:
    """Counts trials and reports them; 'running' = in flight and holding a lock written since the start."""

    def __init__(self, specs: list[RunSpec], out: Path, on_trial_end: TrialEndFn | None,
                 on_progress: ProgressFn | None):
        self.specs, self.out = specs, Path(out)
        self.on_trial_end, self.on_progress = on_trial_end, on_progress
        self.results: list[TrialResult | None] = [None] * len(specs)
        self.counts = SuiteCounts(len(specs))
        self.started = time.time() - 1.0
        self.last_report = 0.0
        self.waiting: dict[int, tuple[str, float]] = {}  # trial -> (owner of its claim, monotonic retry time)

    def defer(self, i: int, owner: str) -> None:
        """Trial ``i`` is claimed by another live process: try it again in ``WAIT_POLL_S``."""
        self.waiting[i] = (owner, time.monotonic() + WAIT_POLL_S)
        self._count_waiting()

    def due(self) -> list[int]:
        """Waiting trials to try again now (taken off the waiting list)."""
        now = time.monotonic()
        ready = [i for i, (_, at) in self.waiting.items() if at <= now]
        for i in ready:
            del self.waiting[i]
        self._count_waiting()
        return ready

    def _count_waiting(self) -> None:
        self.counts.waiting = len(self.waiting)
        self.counts.waiting_for = tuple(dict.fromkeys(o for o, _ in self.waiting.values()))

    def settle(self, i: int, result: TrialResult) -> None:
        """A trial came back: finished (rows or error) or waiting for another process."""
        if result.waiting_for:
            self.defer(i, result.waiting_for)
        else:
            self.finish(i, result)

    def finish(self, i: int, result: TrialResult) -> None:
        self.results[i] = result
        if result.error:
            self.counts.failed += 1
        else:
            self.counts.done += 1
        if self.on_trial_end:
            self.on_trial_end(i, result)

    def report(self, in_flight: list[int], force: bool = False) -> None:
        if self.on_progress is None or (not force and time.monotonic() - self.last_report < POLL_S):
            return
        self.last_report = time.monotonic()
        running = 0
        for i in in_flight:
            lock = self.out / "runs" / self.specs[i].run_id / LOCK_FILE
            try:
                running += lock.stat().st_mtime >= self.started
            except OSError:
                pass
        self.counts.running = running
        self.on_progress(self.counts)

    def collected(self) -> list[TrialResult]:
        return [r for r in self.results if r is not None]


@dataclass
class InProcessExecutor:
    """``local`` with one worker: the trials run here, one after another (``on_trial_start`` may return a
    ``TrainProgress`` for the trial's own bar)."""

    on_progress: ProgressFn | None = None
    on_trial_start: Callable[[int, RunSpec], Any] | None = None
    tensorboard: bool = False

    def map(self, specs, out, data_dir, device, on_trial_end=None):
        tracker = _Tracker(specs, out, on_trial_end, self.on_progress)
        todo = list(range(len(specs)))
        while todo or tracker.waiting:
            for i in todo:
                tracker.counts.running = 1
                if self.on_progress:
                    self.on_progress(tracker.counts)
                progress = self.on_trial_start(i, specs[i]) if self.on_trial_start else None
                tracker.settle(i, run_trial_isolated(specs[i], str(out), data_dir and str(data_dir), device,
                                                     WorkerContext(tensorboard=self.tensorboard), progress))
            tracker.counts.running = 0
            if tracker.waiting:
                if self.on_progress:
                    self.on_progress(tracker.counts)
                time.sleep(max(0.0, min(at for _, at in tracker.waiting.values()) - time.monotonic()))
            todo = tracker.due()
        tracker.report([], force=True)
        return tracker.collected()


_WORKER: dict[str, Any] = {}  # per worker process: its device


def _init_worker(counter: Any, devices: list[str], threads: int) -> None:
    with counter.get_lock():
        k = counter.value
        counter.value += 1
    _WORKER["device"] = devices[k % len(devices)] if devices else None
    import torch

    torch.set_num_threads(threads)


def _pool_task(spec: RunSpec, out: str, data_dir: str | None, device: str, ctx: WorkerContext) -> TrialResult:
    return run_trial_isolated(spec, out, data_dir, _WORKER.get("device") or device, ctx)


@dataclass
class LocalPoolExecutor:
    """``local`` with ``workers`` > 1 spawned processes, at most ``workers`` trials in flight."""

    workers: int
    devices: list[str] = field(default_factory=list)
    on_progress: ProgressFn | None = None
    threads: int | None = None  # torch threads per worker (default: CPUs // workers, at most OMP_NUM_THREADS)
    tensorboard: bool = False

    def __post_init__(self):
        if self.workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {self.workers}.")

        for d in self.devices:  # an unusable --devices entry is one error now, not one per trial
            try:
                resolve_device(d)
            except ConfigError as exc:
                raise ConfigError(f"--devices {','.join(self.devices)}: {exc}") from exc
        if self.threads is None:  # share the CPUs; never more than OMP_NUM_THREADS asks for
            omp = os.environ.get("OMP_NUM_THREADS", "")
            limit = int(omp) if omp.isdigit() and int(omp) > 0 else available_cpus()
            self.threads = max(1, min(available_cpus() // self.workers, limit))

    def _pool(self):
        import concurrent.futures as cf
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        return cf.ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                      initargs=(ctx.Value("i", 0), list(self.devices), self.threads))

    def map(self, specs, out, data_dir, device, on_trial_end=None):
        import concurrent.futures as cf
        from concurrent.futures.process import BrokenProcessPool

        tracker = _Tracker(specs, out, on_trial_end, self.on_progress)
        ctx = WorkerContext(plugins=_plugin_modules(specs), tensorboard=self.tensorboard)
        queue, in_flight = deque(range(len(specs))), {}
        suspects: set[int] = set()  # in flight when a worker died: re-run one at a time to find the culprit
        pool = self._pool()
        try:
            while queue or in_flight or tracker.waiting:
                if not queue and len(in_flight) < self.workers:
                    queue.extend(tracker.due())  # the others are out: try the waiting ones again
                while queue and len(in_flight) < (1 if suspects else self.workers):
                    i = queue.popleft()
                    in_flight[pool.submit(_pool_task, specs[i], str(out), data_dir and str(data_dir), device, ctx)] = i
                if in_flight:
                    done, _ = cf.wait(in_flight, timeout=POLL_S, return_when=cf.FIRST_COMPLETED)
                else:  # only trials waiting for another process are left
                    time.sleep(POLL_S)
                    done = set()
                crashed = []
                for fut in done:
                    i = in_flight.pop(fut)
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        crashed.append(i)
                        continue
                    except Exception as exc:  # noqa: BLE001 - e.g. a spec that cannot be sent to the worker
                        result = failed_trial(specs[i], f"worker failed: {type(exc).__name__}: {one_line(exc)}", out)
                    suspects.discard(i)
                    tracker.settle(i, result)
                if crashed:  # the pool is broken: every trial still in flight died with it
                    for fut in cf.wait(in_flight).done:
                        i = in_flight.pop(fut)
                        if fut.exception() is None:
                            suspects.discard(i)
                            tracker.settle(i, fut.result())
                        else:
                            crashed.append(i)
                    for i in crashed:
                        if len(crashed) == 1 or i in suspects:  # it died alone: this trial kills its worker
                            suspects.discard(i)
                            tracker.finish(i, failed_trial(specs[i], "worker process died (killed, out of memory or "
                                                           "crashed); re-run the suite to retry this trial", out))
                        else:
                            suspects.add(i)
                            queue.appendleft(i)
                    pool.shutdown(wait=False)
                    pool = self._pool()
                tracker.report(list(in_flight.values()))
        finally:
            pool.shutdown(wait=not in_flight, cancel_futures=True)
        tracker.report([], force=True)
        return tracker.collected()


def _forwarded_env() -> dict[str, str]:
    """Environment a Ray worker on another node needs to find the same data (LIFTBENCH_* variables)."""
    return {k: v for k, v in os.environ.items() if k.startswith("LIFTBENCH_")}


class RayExecutor:
    """``ray``: one Ray core task per trial with ``cpus_per_trial`` / ``gpus_per_trial``."""

    def __init__(self, address: str | None = None, cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0,
                 num_cpus: int | None = None, on_progress: ProgressFn | None = None, tensorboard: bool = False):
        try:
            import ray  # noqa: F401
        except ImportError as exc:
            raise MissingExtraError(f"--executor ray needs Ray, which is not installed: {RAY_HINT}") from exc
        if cpus_per_trial <= 0:
            raise ConfigError(f"--cpus-per-trial must be > 0, got {cpus_per_trial:g}.")
        if gpus_per_trial < 0 or (gpus_per_trial > 1 and gpus_per_trial != int(gpus_per_trial)):
            raise ConfigError(f"--gpus-per-trial must be a fraction <= 1 or a whole number, got {gpus_per_trial:g}.")
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.cpus_per_trial, self.gpus_per_trial = cpus_per_trial, gpus_per_trial
        self.num_cpus = num_cpus or available_cpus()
        self.on_progress = on_progress
        self.tensorboard = tensorboard

    def start(self) -> None:
        """Join the cluster (or start a local Ray) now; ``map`` does it on first use otherwise."""
        import logging

        import ray

        if ray.is_initialized():
            return
        env = _forwarded_env()
        debug = bool(os.environ.get("LIFTBENCH_DEBUG"))
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": debug,
                                  "logging_level": logging.INFO if debug else logging.ERROR}
        if env:
            kwargs["runtime_env"] = {"env_vars": env}
        started_here = self.address is None
        try:
            if started_here:  # a new local Ray ("local": never a cluster found on this machine), bounded CPUs
                ray.init(address="local", num_cpus=self.num_cpus, object_store_memory=256 * 1024**2, **kwargs)
            else:
                ray.init(address=self.address, **kwargs)
        except Exception as exc:  # noqa: BLE001 - ConnectionError, RuntimeError, ValueError...
            where = f"the Ray cluster at --ray-address {self.address}" if self.address else "a local Ray"
            raise ConfigError(f"could not start or join {where}: {type(exc).__name__}: {one_line(exc)}") from exc
        resources = ray.cluster_resources()
        if started_here and self.gpus_per_trial > resources.get("GPU", 0):
            ray.shutdown()
            raise ConfigError(f"--gpus-per-trial {self.gpus_per_trial:g}, but the local Ray has "
                              f"{resources.get('GPU', 0):g} GPU(s); use --gpus-per-trial 0 or join a GPU cluster "
                              "with --ray-address")
        if started_here and self.cpus_per_trial > resources.get("CPU", 0):
            ray.shutdown()
            raise ConfigError(f"--cpus-per-trial {self.cpus_per_trial:g}, but the local Ray has "
                              f"{resources.get('CPU', 0):g} CPU(s)")

    def map(self, specs, out, data_dir, device, on_trial_end=None):
        import ray

        threads = max(1, int(self.cpus_per_trial))
        task = ray.remote(num_cpus=self.cpus_per_trial, num_gpus=self.gpus_per_trial, max_retries=1)(run_trial_isolated)
        if device == "auto":  # Ray exposes the GPUs it assigns as cuda:0..; no GPU requested: stay on CPU
            device = "cuda" if self.gpus_per_trial > 0 else "cpu"
        elif device.startswith("cuda") and self.gpus_per_trial <= 0:
            raise ConfigError(f"--device {device} with --executor ray needs --gpus-per-trial > 0 (a Ray task that "
                              "requests no GPU gets none).")
        self.start()
        ctx = WorkerContext(plugins=_plugin_modules(specs), threads=threads, tensorboard=self.tensorboard)
        out_abs = str(Path(out).resolve())
        data_abs = str(Path(data_dir).expanduser().resolve()) if data_dir else None
        tracker = _Tracker(specs, out, on_trial_end, self.on_progress)
        refs = {task.remote(spec, out_abs, data_abs, device, ctx): i for i, spec in enumerate(specs)}
        pending = list(refs)
        try:
            while pending or tracker.waiting:
                for i in tracker.due():  # claimed elsewhere: try again
                    ref = task.remote(specs[i], out_abs, data_abs, device, ctx)
                    refs[ref] = i
                    pending.append(ref)
                if not pending:  # only trials waiting for another process are left
                    tracker.report([])
                    time.sleep(POLL_S)
                    continue
                done, pending = ray.wait(pending, num_returns=1, timeout=POLL_S)
                for ref in done:
                    i = refs[ref]
                    try:
                        result = ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - a crashed worker or node is one failed trial
                        cause = getattr(exc, "cause", None) or exc
                        result = failed_trial(specs[i], f"ray task failed: {type(cause).__name__}: "
                                              f"{one_line(cause)[:300]}", out)
                    tracker.settle(i, result)
                tracker.report([refs[r] for r in pending])
        except BaseException:
            for ref in pending:
                ray.cancel(ref)
            raise
        tracker.report([], force=True)
        return tracker.collected()


EXECUTORS = ("local", "ray")


def get_executor(name: str, workers: int = 1, devices: list[str] | None = None,
                 on_progress: ProgressFn | None = None, on_trial_start: Callable[[int, RunSpec], Any] | None = None,
                 tensorboard: bool = False, **ray_options: Any) -> Executor:
    """``local`` (in this process, or ``workers`` processes over ``devices``) or ``ray`` (``address``,
    ``cpus_per_trial``, ``gpus_per_trial``, ``num_cpus`` for a local Ray); ``tensorboard``: every trial
    also logs to its own run directory."""
    if name == "local":
        if ray_options:
            raise ConfigError(f"{', '.join('--' + k.replace('_', '-') for k in ray_options)} only apply to "
                              "--executor ray.")
        if workers == 1 and not devices:
            return InProcessExecutor(on_progress, on_trial_start, tensorboard)
        return LocalPoolExecutor(workers, list(devices or []), on_progress, tensorboard=tensorboard)
    if name == "ray":
        if workers != 1 or devices:
            raise ConfigError("--workers/--devices apply to --executor local; Ray places trials itself "
                              "(use --cpus-per-trial / --gpus-per-trial).")
        return RayExecutor(on_progress=on_progress, tensorboard=tensorboard, **ray_options)
    raise ConfigError(unknown_name_message("executor", name, EXECUTORS))
