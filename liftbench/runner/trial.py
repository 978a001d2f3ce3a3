"""One trial of a suite: train (or resume, or skip) one spec and evaluate it under every test
condition, only while holding the run's claim (``locks.TrialLocks``); its status read back from the run
directory alone (``trial_status``). A trial that fails becomes error rows with its one-line reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from liftbench.errors import LiftbenchError, one_line
from liftbench.locks import LOCK_FILE, TrialLocks, is_running
from liftbench.pipeline import RUN_META, evaluate_run, train_run
from liftbench.results import PROTOCOL_VERSION, read_rows, rows_frame
from liftbench.suites import RunSpec
from liftbench.train import CHECKPOINT

NOISE_SEED = 0  # the same test noise for every model and run of a suite
ERROR_FILE = "error.txt"  # the one-line reason of a trial's last failure (removed when it succeeds)


@dataclass
class TrialResult:
    spec: RunSpec
    rows: pd.DataFrame
    trained: bool
    evaluated: int
    error: str = ""
    waiting_for: str = ""  # 'host pid N' of the live process holding the run's claim: not run here, retry later


def has_condition(rows: pd.DataFrame, sigma: float) -> bool:
    if rows.empty or "test_noise" not in rows:
        return False
    sel = ((pd.to_numeric(rows["test_noise"], errors="coerce") == sigma)
           & (pd.to_numeric(rows["noise_seed"], errors="coerce") == NOISE_SEED)
           & (rows["protocol_version"].astype(str) == PROTOCOL_VERSION) & (rows["status"].astype(str) == "ok"))
    return bool(sel.any())


def run_trial(spec: RunSpec, out: Path, data_dir: str | Path | None = None, device: str = "auto",
              progress: Any = None, tensorboard: bool = False) -> TrialResult:
    """Train (or resume, or skip) one spec and evaluate it under every test condition of the suite.

    Only while holding the run's claim; a run claimed by another live process is left alone and
    comes back with ``waiting_for`` set (no rows, not an error). ``tensorboard``: the trial's training
    also logs to its own ``<run dir>/tensorboard/``."""
    runs = Path(out) / "runs"
    run_dir = runs / spec.run_id
    try:
        with TrialLocks([run_dir]) as claim:
            if not claim.held[0]:
                return TrialResult(spec, rows_frame([]), trained=False, evaluated=0, waiting_for=claim.owner(0))
            result = _train_and_evaluate(spec, run_dir, runs, data_dir, device, progress, tensorboard)
            if claim.lost:
                raise LiftbenchError(f"{run_dir}: another process took this run's claim over while it ran (its "
                                     "heartbeat looked stale); re-run the suite to check the run")
            return result
    except (LiftbenchError, RuntimeError, ValueError, OSError) as exc:
        record_failure(out, spec, one_line(exc))
        return TrialResult(spec, error_rows(spec, one_line(exc)), trained=False, evaluated=0, error=one_line(exc))


def _train_and_evaluate(spec: RunSpec, run_dir: Path, runs: Path, data_dir, device: str, progress: Any,
                        tensorboard: bool = False) -> TrialResult:
    """Train (or resume) the spec, then evaluate every test condition its rows do not have yet."""
    outcome = train_run(spec.config, out_dir=runs, data_dir=data_dir, device=device, resume=True,
                        progress=progress, variant=spec.variant, suite=spec.suite, tensorboard=tensorboard)
    results_path = run_dir / "results.csv"
    existing = read_rows(results_path) if results_path.exists() else pd.DataFrame()
    evaluated = 0
    for sigma in spec.test_noise:
        if not has_condition(existing, sigma):
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
                        "keypoints": cfg.data.keypoints or "gt", "train_keypoints": cfg.data.keypoints or "gt",
                        "test_keypoints": cfg.data.keypoints or "gt", "train_noise": cfg.data.train_noise,
                        "test_noise": sigma, "seq_len": cfg.model_params.get("seq_len", 1), "metric": "mpjpe",
                        "slice_type": "all", "slice": "action_mean", "value": float("nan"),
                        "config_hash": cfg.config_hash(), "protocol_version": PROTOCOL_VERSION,
                        "status": "error", "error": message} for sigma in spec.test_noise])


def trial_status(spec: RunSpec, out: Path) -> str:
    """done | trained | running | failed | interrupted | pending, from the run directory alone (works while a
    suite runs, on any executor: a trial holds its claim ``.lock`` with its host and pid while it runs)."""
    run_dir = Path(out) / "runs" / spec.run_id
    if trained(spec, out):
        if all(has_condition(run_rows(run_dir), s) for s in spec.test_noise):
            return "done"
        return "running" if is_running(run_dir) else "trained"  # running: being evaluated
    if (run_dir / LOCK_FILE).exists():
        return "running" if is_running(run_dir) else "interrupted"
    if (run_dir / ERROR_FILE).exists():
        return "failed"
    return "interrupted" if (run_dir / CHECKPOINT).exists() else "pending"


def run_rows(run_dir: Path) -> pd.DataFrame:
    """A run directory's results.csv (empty if missing or unreadable: the trial is then not done)."""
    try:
        return read_rows(run_dir / "results.csv") if (run_dir / "results.csv").is_file() else pd.DataFrame()
    except LiftbenchError:
        return pd.DataFrame()


def trained(spec: RunSpec, out: Path) -> bool:
    try:
        meta = json.loads((Path(out) / "runs" / spec.run_id / RUN_META).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("state") == "done"
