"""Run a suite: train/evaluate every spec (skipping finished work), merge rows, summarise.

Every trial writes only its own run directory (``<out>/runs/<run_id>/``), holding its exclusive
claim (``locks.TrialLocks``) while it trains and evaluates; a trial claimed by another live process
comes back as *waiting* (``TrialResult.waiting_for``) and the executor retries it after the others,
so it is picked up once done (or taken over, and resumed from its checkpoint, if its owner died).
The suite's ``results.csv`` and ``summary.csv`` are rebuilt afterwards, under the suite directory's
lock, from this process's trials and from the run directories of every concurrent suite session
(``suite_files``), so a killed suite loses at most the unfinished epoch of one run, re-running it
trains nothing that is done, and two suites writing one directory never lose each other's rows.
A trial that fails becomes error rows with its one-line reason; the others still run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from liftbench.errors import ConfigError, LiftbenchError, one_line
from liftbench.locks import LOCK_FILE, TrialLocks, is_running
from liftbench.pipeline import RUN_META, evaluate_run, resolve_device, train_run
from liftbench.results import KEY_COLUMNS, PROTOCOL_VERSION, read_rows, rows_frame, write_rows, write_text_atomic
from liftbench.suite_files import SuiteSession, spec_key
from liftbench.suites import RunSpec
from liftbench.train import CHECKPOINT

DEFAULT_OUT = Path("results")
NOISE_SEED = 0  # the same test noise for every model and run of a suite
ERROR_FILE = "error.txt"  # the one-line reason of a trial's last failure (removed when it succeeds)


def suite_dir(out: Path, suite: str, preset: str, dataset: str) -> Path:
    return Path(out) / f"{suite}-{preset}-{dataset}"


@dataclass
class TrialResult:
    spec: RunSpec
    rows: pd.DataFrame
    trained: bool
    evaluated: int
    error: str = ""
    waiting_for: str = ""  # 'host pid N' of the live process holding the run's claim: not run here, retry later


def _has_condition(rows: pd.DataFrame, sigma: float) -> bool:
    if rows.empty or "test_noise" not in rows:
        return False
    sel = ((pd.to_numeric(rows["test_noise"], errors="coerce") == sigma)
           & (pd.to_numeric(rows["noise_seed"], errors="coerce") == NOISE_SEED)
           & (rows["protocol_version"].astype(str) == PROTOCOL_VERSION) & (rows["status"].astype(str) == "ok"))
    return bool(sel.any())


def run_trial(spec: RunSpec, out: Path, data_dir: str | Path | None = None, device: str = "auto",
              progress: Any = None) -> TrialResult:
    """Train (or resume, or skip) one spec and evaluate it under every test condition of the suite.

    Only while holding the run's claim; a run claimed by another live process is left alone and
    comes back with ``waiting_for`` set (no rows, not an error)."""
    runs = Path(out) / "runs"
    run_dir = runs / spec.run_id
    try:
        with TrialLocks([run_dir]) as claim:
            if not claim.held[0]:
                return TrialResult(spec, rows_frame([]), trained=False, evaluated=0, waiting_for=claim.owner(0))
            result = _train_and_evaluate(spec, run_dir, runs, data_dir, device, progress)
            if claim.lost:
                raise LiftbenchError(f"{run_dir}: another process took this run's claim over while it ran (its "
                                     "heartbeat looked stale); re-run the suite to check the run")
            return result
    except (LiftbenchError, RuntimeError, ValueError, OSError) as exc:
        record_failure(out, spec, one_line(exc))
        return TrialResult(spec, error_rows(spec, one_line(exc)), trained=False, evaluated=0, error=one_line(exc))


def _train_and_evaluate(spec: RunSpec, run_dir: Path, runs: Path, data_dir, device: str, progress: Any) -> TrialResult:
    """Train (or resume) the spec, then evaluate every test condition its rows do not have yet."""
    outcome = train_run(spec.config, out_dir=runs, data_dir=data_dir, device=device, resume=True,
                        progress=progress, variant=spec.variant, suite=spec.suite)
    results_path = run_dir / "results.csv"
    existing = read_rows(results_path) if results_path.exists() else pd.DataFrame()
    evaluated = 0
    for sigma in spec.test_noise:
        if not _has_condition(existing, sigma):
            evaluate_run(run_dir, data_dir=data_dir, noise_sigma=sigma, noise_seed=NOISE_SEED, device=device,
                         video_mean=True)  # both averagings: reports use the one a published number used
            evaluated += 1
    rows = condition_rows(spec, read_rows(results_path), spec.test_noise)
    (run_dir / ERROR_FILE).unlink(missing_ok=True)
    return TrialResult(spec, rows, trained=not outcome.skipped, evaluated=evaluated)


def condition_rows(spec: RunSpec, rows: pd.DataFrame, sigmas) -> pd.DataFrame:
    """A run directory's rows of these test conditions, labelled with the spec's suite and variant."""
    rows = rows[pd.to_numeric(rows["test_noise"], errors="coerce").isin(list(sigmas))].copy()
    rows["suite"], rows["variant"] = spec.suite, spec.variant
    return rows_frame(rows)


def record_failure(out: Path, spec: RunSpec, message: str) -> None:
    """Leave the one-line reason in the run directory, so ``liftbench status`` shows the trial as failed."""
    try:
        run_dir = Path(out) / "runs" / spec.run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / ERROR_FILE).write_text(message + "\n")
    except OSError:
        pass  # the error rows still carry the reason


def error_rows(spec: RunSpec, message: str) -> pd.DataFrame:
    cfg = spec.config
    return rows_frame([{"run_id": spec.run_id, "suite": spec.suite, "model": cfg.model, "variant": spec.variant,
                        "seed": cfg.train.seed, "origin": "measured", "dataset": cfg.data.name,
                        "keypoints": cfg.data.keypoints or "gt", "train_noise": cfg.data.train_noise,
                        "test_noise": sigma, "seq_len": cfg.model_params.get("seq_len", 1), "metric": "mpjpe",
                        "slice_type": "all", "slice": "action_mean", "value": float("nan"),
                        "config_hash": cfg.config_hash(), "protocol_version": PROTOCOL_VERSION,
                        "status": "error", "error": message} for sigma in spec.test_noise])


def trial_status(spec: RunSpec, out: Path) -> str:
    """done | trained | running | failed | interrupted | pending, from the run directory alone (works while a
    suite runs, on any executor: a trial holds its claim ``.lock`` with its host and pid while it runs)."""
    run_dir = Path(out) / "runs" / spec.run_id
    if _trained(spec, out):
        if all(_has_condition(_run_rows(run_dir), s) for s in spec.test_noise):
            return "done"
        return "running" if is_running(run_dir) else "trained"  # running: being evaluated
    if (run_dir / LOCK_FILE).exists():
        return "running" if is_running(run_dir) else "interrupted"
    if (run_dir / ERROR_FILE).exists():
        return "failed"
    return "interrupted" if (run_dir / CHECKPOINT).exists() else "pending"


def _run_rows(run_dir: Path) -> pd.DataFrame:
    """A run directory's results.csv (empty if missing or unreadable: the trial is then not done)."""
    try:
        return read_rows(run_dir / "results.csv") if (run_dir / "results.csv").is_file() else pd.DataFrame()
    except LiftbenchError:
        return pd.DataFrame()


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """mean, sd, n and a 95 % t-interval over seeds, per everything-but-seed group (derived, never hand-written)."""
    from scipy import stats as st

    ok = rows[rows["status"].astype(str) == "ok"].copy()
    if ok.empty:
        return pd.DataFrame(columns=[*[c for c in KEY_COLUMNS if c != "seed"], "unit", "mean", "sd", "n", "ci95_low", "ci95_high"])
    keys = [c for c in KEY_COLUMNS if c != "seed"] + ["unit"]
    for c in keys:
        ok[c] = ok[c].astype(str)
    g = ok.groupby(keys, sort=False)["value"]
    out = g.agg(mean="mean", sd=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else float("nan"), n="count").reset_index()
    half = [st.t.ppf(0.975, n - 1) * sd / np.sqrt(n) if n > 1 else float("nan") for n, sd in zip(out["n"], out["sd"])]
    out["ci95_low"] = out["mean"] - np.asarray(half)
    out["ci95_high"] = out["mean"] + np.asarray(half)
    return out


def run_suite(specs: list[RunSpec], out: Path, directory: Path, *, data_dir=None, device: str = "auto",
              info: dict[str, Any] | None = None, on_trial_start: Callable[[int, RunSpec], Any] | None = None,
              on_trial_end: Callable[[int, TrialResult], None] | None = None,
              executor: Any = None, pack: int = 1) -> tuple[pd.DataFrame, pd.DataFrame, list[TrialResult]]:
    """Execute specs (in this process unless an executor is given), then merge and summarise.

    Returns this call's rows, their summary and one ``TrialResult`` per spec. The suite directory's
    ``results.csv`` / ``summary.csv`` also hold the rows of suites running into it concurrently
    (``suite_files``). ``pack`` > 1 (in this process only): runs sharing a ``packing.pack_signature``
    first train up to ``pack`` at a time as one stacked computation (the numbers of separate runs);
    then the trials run as usual and find them trained (a failed pack leaves its members to train one
    by one)."""
    from liftbench.executors import InProcessExecutor

    base_info = {"suite": specs[0].suite, "version": specs[0].suite_version} if specs else {}
    session = SuiteSession(directory, specs, {**base_info, **(info or {})})
    session.register()
    try:
        if pack > 1:
            packed = _train_packs(specs, pack, out, data_dir, device, executor, on_trial_start)
            report = on_trial_end

            def on_trial_end(i: int, result: TrialResult) -> None:  # a packed run was trained now, not reused
                result.trained = result.trained or (i in packed and not result.error)
                if report:
                    report(i, result)
        executor = executor if executor is not None else InProcessExecutor(on_trial_start=on_trial_start)
        results = executor.map(specs, out, data_dir, device, on_trial_end)
    except BaseException:  # Ctrl-C or a bad option: the finished trials are in their run directories
        session.abandon()
        raise
    rows = merge_results(results)
    session.finish(lambda every: write_suite_files(directory, suite_rows(every, results, out)))
    return rows, summarize(rows), results


def write_suite_files(directory: Path, rows: pd.DataFrame) -> None:
    """results.csv and summary.csv of a suite directory, each replaced atomically."""
    write_rows(directory / "results.csv", rows)
    write_text_atomic(directory / "summary.csv", summarize(rows).to_csv(index=False, float_format="%.6g"))


def suite_rows(specs: list[RunSpec], results: list[TrialResult], out: Path) -> pd.DataFrame:
    """Rows of every trial of the suite directory: this process's own results where it ran the trial,
    else (trials and test conditions of concurrent sessions) what their run directories hold now:
    complete conditions' rows, or error rows when the trial failed; nothing yet if it still runs
    (its own session writes them when it finishes)."""
    own = {spec_key(r.spec): r for r in results}
    frames = []
    for spec in specs:
        mine = own.get(spec_key(spec))
        if mine is not None:
            frames.append(mine.rows)
        extra = [s for s in spec.test_noise if mine is None or s not in mine.spec.test_noise]
        if extra:
            frames.append(_stored_rows(spec, extra, out))
    frames = [f for f in frames if len(f)]
    return rows_frame(pd.concat(frames, ignore_index=True)) if frames else rows_frame([])


def _stored_rows(spec: RunSpec, sigmas: list[float], out: Path) -> pd.DataFrame:
    run_dir = Path(out) / "runs" / spec.run_id
    stored = _run_rows(run_dir) if _trained(spec, out) else pd.DataFrame()
    done = [s for s in sigmas if _has_condition(stored, s)]
    frames = [condition_rows(spec, stored, done)] if done else []
    missing = [s for s in sigmas if s not in done]
    if missing and (run_dir / ERROR_FILE).is_file() and not (run_dir / LOCK_FILE).exists():
        try:
            message = " ".join((run_dir / ERROR_FILE).read_text().split()) or "failed"
        except (OSError, UnicodeDecodeError):
            message = "failed"
        frames.append(error_rows(RunSpec(spec.suite, spec.suite_version, spec.variant, spec.config, tuple(missing),
                                         spec.axis_key, spec.axis_value), message))
    return rows_frame(pd.concat(frames, ignore_index=True)) if frames else rows_frame([])


def _train_packs(specs: list[RunSpec], pack: int, out: Path, data_dir, device: str, executor: Any,
                 on_trial_start: Callable[[int, RunSpec], Any] | None) -> set[int]:
    """Train the pack groups first (K runs per stacked computation); their trials then skip training.
    Returns the indices of the specs trained here."""
    from liftbench.executors import InProcessExecutor
    from liftbench.packing import group_specs, train_specs_packed

    if executor is not None and not isinstance(executor, InProcessExecutor):
        raise ConfigError("--pack trains in this process; it cannot be combined with --executor ray or --workers.")
    start = on_trial_start or getattr(executor, "on_trial_start", None)
    trained: set[int] = set()
    for group in group_specs(specs, pack, resolve_device(device).type):
        if len(group) > 1:
            todo = [i for i in group if not _trained(specs[i], out)]
            progress = start(group[0], specs[group[0]]) if start else None
            train_specs_packed([specs[i] for i in group], out, data_dir, device, progress)
            trained.update(i for i in todo if _trained(specs[i], out))
    return trained


def _trained(spec: RunSpec, out: Path) -> bool:
    try:
        meta = json.loads((Path(out) / "runs" / spec.run_id / RUN_META).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("state") == "done"


def merge_results(results: list[TrialResult]) -> pd.DataFrame:
    frames = [r.rows for r in results if len(r.rows)]
    return rows_frame(pd.concat(frames, ignore_index=True)) if frames else rows_frame([])
