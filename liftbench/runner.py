"""Run a suite: train/evaluate every spec (skipping finished work), merge rows, summarise.

Every trial writes only its own run directory (``<out>/runs/<run_id>/``); the suite's
``results.csv`` and ``summary.csv`` are rebuilt afterwards from those directories, so a killed suite
loses at most the unfinished epoch of one run, and re-running it trains nothing that is done.
A trial that fails becomes error rows with its one-line reason; the others still run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from liftbench.errors import ConfigError, LiftbenchError, one_line
from liftbench.locks import LOCK_FILE, TrialLocks, is_running
from liftbench.pipeline import RUN_META, evaluate_run, resolve_device, train_run
from liftbench.results import (KEY_COLUMNS, PROTOCOL_VERSION, read_rows, rows_frame, write_json_atomic,
                               write_rows)
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


def _has_condition(rows: pd.DataFrame, sigma: float) -> bool:
    if rows.empty or "test_noise" not in rows:
        return False
    sel = ((pd.to_numeric(rows["test_noise"], errors="coerce") == sigma)
           & (pd.to_numeric(rows["noise_seed"], errors="coerce") == NOISE_SEED)
           & (rows["protocol_version"].astype(str) == PROTOCOL_VERSION) & (rows["status"].astype(str) == "ok"))
    return bool(sel.any())


def run_trial(spec: RunSpec, out: Path, data_dir: str | Path | None = None, device: str = "auto",
              progress: Any = None) -> TrialResult:
    """Train (or resume, or skip) one spec and evaluate it under every test condition of the suite."""
    runs = Path(out) / "runs"
    run_dir = runs / spec.run_id
    try:
        with TrialLocks([run_dir]):
            return _train_and_evaluate(spec, run_dir, runs, data_dir, device, progress)
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
            evaluate_run(run_dir, data_dir=data_dir, noise_sigma=sigma, noise_seed=NOISE_SEED, device=device)
            evaluated += 1
    rows = read_rows(results_path)
    rows = rows[pd.to_numeric(rows["test_noise"], errors="coerce").isin(spec.test_noise)].copy()
    rows["suite"], rows["variant"] = spec.suite, spec.variant
    (run_dir / ERROR_FILE).unlink(missing_ok=True)
    return TrialResult(spec, rows_frame(rows), trained=not outcome.skipped, evaluated=evaluated)


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
    suite runs, on any executor: a trial holds ``.lock`` with its host and pid while it runs)."""
    run_dir = Path(out) / "runs" / spec.run_id
    meta_path = run_dir / RUN_META
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            meta = {}
        if meta.get("state") == "done":
            rows_path = run_dir / "results.csv"
            if rows_path.exists() and all(_has_condition(read_rows(rows_path), s) for s in spec.test_noise):
                return "done"
            return "trained"
    if (run_dir / LOCK_FILE).exists():
        return "running" if is_running(run_dir) else "interrupted"
    if (run_dir / ERROR_FILE).exists():
        return "failed"
    return "interrupted" if (run_dir / CHECKPOINT).exists() else "pending"


def write_manifest(directory: Path, specs: list[RunSpec], info: dict[str, Any]) -> None:
    write_json_atomic(directory / "manifest.json", {
        **info, "runs": [{"run_id": s.run_id, "variant": s.variant, "model": s.config.model, "seed": s.seed,
                          "axis_key": s.axis_key, "axis_value": s.axis_value, "test_noise": list(s.test_noise),
                          "config": s.config.to_dict()} for s in specs]})


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

    ``pack`` > 1 (in this process only): runs sharing a ``packing.pack_signature`` first train up to
    ``pack`` at a time as one stacked computation (the numbers of separate runs); then the trials run
    as usual and find them trained (a failed pack leaves its members to train one by one)."""
    directory.mkdir(parents=True, exist_ok=True)
    base_info = {"suite": specs[0].suite, "version": specs[0].suite_version} if specs else {}
    write_manifest(directory, specs, {**base_info, **(info or {})})
    if pack > 1:
        packed = _train_packs(specs, pack, out, data_dir, device, executor, on_trial_start)
        report = on_trial_end

        def on_trial_end(i: int, result: TrialResult) -> None:  # a packed run was trained now, not reused
            result.trained = result.trained or (i in packed and not result.error)
            if report:
                report(i, result)
    if executor is not None:
        results = executor.map(specs, out, data_dir, device, on_trial_end)
    else:
        results = []
        for i, spec in enumerate(specs):
            progress = on_trial_start(i, spec) if on_trial_start else None
            result = run_trial(spec, out, data_dir, device, progress)
            results.append(result)
            if on_trial_end:
                on_trial_end(i, result)
    rows = merge_results(results)
    write_rows(directory / "results.csv", rows)
    summary = summarize(rows)
    summary.to_csv(directory / "summary.csv.tmp", index=False, float_format="%.6g")
    os.replace(directory / "summary.csv.tmp", directory / "summary.csv")
    return rows, summary, results


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
        return json.loads((Path(out) / "runs" / spec.run_id / RUN_META).read_text()).get("state") == "done"
    except (OSError, ValueError):
        return False


def merge_results(results: list[TrialResult]) -> pd.DataFrame:
    frames = [r.rows for r in results if len(r.rows)]
    return rows_frame(pd.concat(frames, ignore_index=True)) if frames else rows_frame([])
