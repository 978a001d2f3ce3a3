"""Run a suite: train/evaluate every spec (skipping finished work), merge rows, summarise.

Every trial writes only its own run directory (``<out>/runs/<run_id>/``), holding its exclusive
claim (``locks.TrialLocks``) while it trains and evaluates; a trial claimed by another live process
comes back as *waiting* (``TrialResult.waiting_for``) and the executor retries it after the others,
so it is picked up once done (or taken over, and resumed from its checkpoint, if its owner died).
The suite's ``results.csv`` and ``summary.csv`` are rebuilt afterwards, under the suite directory's
lock, from this process's trials and from the run directories of every concurrent suite session
(``runner.manifest``), so a killed suite loses at most the unfinished epoch of one run, re-running it
trains nothing that is done, and two suites writing one directory never lose each other's rows.
A trial that fails becomes error rows with its one-line reason; the others still run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from liftbench._files import write_text_atomic
from liftbench.device import resolve_device
from liftbench.errors import ConfigError
from liftbench.locks import LOCK_FILE
from liftbench.results import KEY_COLUMNS, rows_frame, write_rows
from liftbench.runner.executors import InProcessExecutor
from liftbench.runner.manifest import SuiteSession, spec_key
from liftbench.runner.packing import group_specs, train_specs_packed
from liftbench.runner.trial import ERROR_FILE, TrialResult, condition_rows, error_rows, has_condition, run_rows, trained
from liftbench.suites import RunSpec

DEFAULT_OUT = Path("results")


def suite_dir(out: Path, suite: str, preset: str, dataset: str) -> Path:
    return Path(out) / f"{suite}-{preset}-{dataset}"


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """mean, sd, n and a 95 % t-interval over seeds, per everything-but-seed group (derived, never hand-written)."""
    from scipy import stats as st  # heavy: only when summarising

    ok = rows[rows["status"].astype(str) == "ok"].copy()
    if ok.empty:
        return pd.DataFrame(columns=[*[c for c in KEY_COLUMNS if c != "seed"], "unit", "mean", "sd", "n",
                                     "ci95_low", "ci95_high"])
    keys = [c for c in KEY_COLUMNS if c != "seed"] + ["unit"]
    for c in keys:
        ok[c] = ok[c].astype(str)
    g = ok.groupby(keys, sort=False)["value"]
    out = g.agg(mean="mean", sd=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else float("nan"),
                n="count").reset_index()
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
    (``runner.manifest``). ``pack`` > 1 (in this process only): runs sharing a ``packing.pack_signature``
    first train up to ``pack`` at a time as one stacked computation (the numbers of separate runs);
    then the trials run as usual and find them trained (a failed pack leaves its members to train one
    by one)."""
    base_info = {"suite": specs[0].suite, "version": specs[0].suite_version} if specs else {}
    session = SuiteSession(directory, specs, {**base_info, **(info or {})})
    session.register()
    try:
        report_trial = on_trial_end
        if pack > 1:
            packed = _train_packs(specs, pack, out, data_dir, device, executor, on_trial_start)
            report_trial = _counting_packed_as_trained(packed, on_trial_end)
        executor = executor if executor is not None else InProcessExecutor(on_trial_start=on_trial_start)
        results = executor.map(specs, out, data_dir, device, report_trial)
    except BaseException:  # Ctrl-C or a bad option: the finished trials are in their run directories
        session.abandon()
        raise
    rows = merge_results(results)
    session.finish(lambda every: write_suite_files(directory, suite_rows(every, results, out)))
    return rows, summarize(rows), results


def _counting_packed_as_trained(packed: set[int], report: Callable[[int, TrialResult], None] | None
                                ) -> Callable[[int, TrialResult], None]:
    """``report`` for each finished trial, after marking the trials trained by a pack as trained: their
    trial found the run complete, but this call trained it (not a reused run)."""
    def on_trial_end(i: int, result: TrialResult) -> None:
        result.trained = result.trained or (i in packed and not result.error)
        if report:
            report(i, result)
    return on_trial_end


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
    stored = run_rows(run_dir) if trained(spec, out) else pd.DataFrame()
    done = [s for s in sigmas if has_condition(stored, s)]
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
    if executor is not None and not isinstance(executor, InProcessExecutor):
        raise ConfigError("--pack trains in this process; it cannot be combined with --executor ray or --workers.")
    start = on_trial_start or getattr(executor, "on_trial_start", None)
    tensorboard = bool(getattr(executor, "tensorboard", False))
    done: set[int] = set()
    for group in group_specs(specs, pack, resolve_device(device).type):
        if len(group) > 1:
            todo = [i for i in group if not trained(specs[i], out)]
            progress = start(group[0], specs[group[0]]) if start else None
            train_specs_packed([specs[i] for i in group], out, data_dir, device, progress, tensorboard=tensorboard)
            done.update(i for i in todo if trained(specs[i], out))
    return done


def merge_results(results: list[TrialResult]) -> pd.DataFrame:
    frames = [r.rows for r in results if len(r.rows)]
    return rows_frame(pd.concat(frames, ignore_index=True)) if frames else rows_frame([])
