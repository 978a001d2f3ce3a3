"""The library's front door: train a configured run, load it back, evaluate it.

Data flows one way: config -> dataset -> model -> trainer -> evaluator -> rows. The CLI and the
suites call these functions; nothing here prints (progress goes through the ``progress`` hooks).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from liftbench import __version__
from liftbench import metrics as M
from liftbench._files import check_output_dir, write_json_atomic, write_text_atomic
from liftbench.checkpoint import load_model_weights
from liftbench.config import ExperimentConfig, config_from_dict, recipe_differences, run_banner, toml_dumps
from liftbench.conventions import convention_weights, get_convention
from liftbench.data import PoseDataset, load_dataset
from liftbench.data.dataset import subset_sequences
from liftbench.data.noise import add_gaussian_noise
from liftbench.data.normalize import compute_stats, describe_scores, stats_from_state
from liftbench.data.skeleton import JOINT_NAMES
from liftbench.data.testset import count_test_set
from liftbench.data.windows import build_table
from liftbench.device import resolve_device
from liftbench.errors import CheckpointError, ConfigError
from liftbench.evaluate import Predictions, check_coverage, predict_sequences, score, score_convention
from liftbench.locks import TrialLocks
from liftbench.models import LIFTERS, Lifter, NormStats, create_lifter, lifter_contract, trainable_parameters
from liftbench.results import DEFAULT_CONVENTION, machine_info, provenance, read_rows, rows_frame, write_rows
from liftbench.tensorboard_log import with_tensorboard
from liftbench.train import CHECKPOINT, Member, TrainProgress, TrainState, fit_members, load_checkpoint

DEFAULT_RUNS_DIR = Path("results") / "runs"
RUN_META = "run.json"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def default_variant(cfg: ExperimentConfig) -> str:
    """'default' for paper toggles, else the differing toggles, e.g. 'dropout=0,residual=false'."""
    cls = LIFTERS.get(cfg.model)
    defaults = cls.Config()
    diffs = [f"{k}={str(v).lower() if isinstance(v, bool) else v:g}" if isinstance(v, float) else
             f"{k}={str(v).lower() if isinstance(v, bool) else v}"
             for k, v in cfg.toggles().items() if getattr(defaults, k) != v]
    return ",".join(diffs) or "default"


@dataclass
class PreparedData:
    dataset: PoseDataset
    train: list
    test: list


def prepare_data(cfg: ExperimentConfig, data_dir: str | Path | None = None) -> PreparedData:
    """Load the configured dataset, apply the subject split and subsets, add training noise.

    ``data.subset`` keeps the first fraction of every TRAINING sequence only: the test split stays whole,
    so a quick run is still scored on every test frame. ``data.test_subset`` < 1 truncates the test videos
    too (their first frames only: the bias of Hossain & Little's evaluation bug), and its rows then score
    fewer frames than ``n_frames_expected`` (the whole split), which marks them incomparable with
    full-test-set numbers."""
    ds = load_dataset(cfg.data.name, data_dir, cfg.data.keypoints or None,
                      train_subjects=cfg.data.train_subjects or None, test_subjects=cfg.data.test_subjects or None)
    if cfg.data.train_subjects or cfg.data.test_subjects:
        ds = ds.with_split(cfg.data.train_subjects or None, cfg.data.test_subjects or None)
    train = subset_sequences(ds.split("train"), cfg.data.subset)
    test = subset_sequences(ds.split("test"), cfg.data.test_subset)
    if not train:
        raise ConfigError(f"Dataset '{ds.name}' has no training sequences for subjects {', '.join(ds.train_subjects)}.")
    if cfg.data.train_noise > 0:
        train = add_gaussian_noise(train, cfg.data.train_noise, seed=cfg.train.seed + 7919)
    return PreparedData(ds, train, test)


def quick_test_error(model: Lifter, stats: NormStats, test, device: torch.device) -> dict[str, float]:
    """Test-split P1 for the per-epoch log (frame mean and action mean)."""
    if not test:
        return {}
    preds = predict_sequences(model, stats, test, device)
    per_frame = M.mpjpe(preds.pred, preds.target)
    return {"test_mpjpe": M.action_mean(per_frame, preds.action), "test_mpjpe_frame_mean": float(per_frame.mean())}


@dataclass
class TrainOutcome:
    run_dir: Path
    run_id: str
    state: TrainState
    skipped: bool  # the run was already complete
    stale_dir: Path | None = None  # where a run trained on other data was moved before retraining
    input_scores: str = ""  # what filled a score-reading lifter's third input channel ('' = it reads none)


def run_directory(cfg: ExperimentConfig, out_dir: str | Path | None = None) -> Path:
    return Path(out_dir or DEFAULT_RUNS_DIR) / cfg.run_id


def train_run(cfg: ExperimentConfig, *, out_dir: str | Path | None = None, data_dir: str | Path | None = None,
              device: str = "auto", resume: bool = False, progress: TrainProgress | None = None,
              variant: str | None = None, suite: str = "", run_dir: str | Path | None = None,
              stop_after_steps: int | None = None, claim: bool = False, tensorboard: bool = False) -> TrainOutcome:
    """Train one configured run into ``run_dir`` (default ``<out_dir>/<run_id>``); resumable.
    ``tensorboard``: also log to ``<run_dir>/tensorboard/`` (``tensorboard_log``; no effect on the results).

    ``claim``: hold the run's exclusive claim (``locks.TrialLocks``) while training, so a second process
    (another ``liftbench train``, or a suite into the same directory) never trains it at the same time;
    a run claimed by a live owner is a ``CheckpointError`` naming it. Suites claim in ``runner.run_trial``."""
    if claim:
        target = Path(run_dir) if run_dir else run_directory(cfg, out_dir)
        with TrialLocks([target]) as held:
            if not held.held[0]:
                raise CheckpointError(f"{target} is being trained by {held.owner(0)}; wait for it to finish (then "
                                      "this command finds the run complete) or use another --out.")
            return train_run(cfg, out_dir=out_dir, data_dir=data_dir, device=device, resume=resume, progress=progress,
                             variant=variant, suite=suite, run_dir=target, stop_after_steps=stop_after_steps,
                             tensorboard=tensorboard)
    prepared = prepare_run(cfg, out_dir=out_dir, data_dir=data_dir, device=device, resume=resume, progress=progress,
                           variant=variant, suite=suite, run_dir=run_dir, tensorboard=tensorboard)
    if isinstance(prepared, TrainOutcome):
        return prepared
    state = fit_members([prepared.member], device=prepared.device, resume=resume, stop_after_steps=stop_after_steps)[0]
    return finish_run(prepared, state)


@dataclass
class PreparedRun:
    """A run ready to train: its ``train.Member`` plus what ``finish_run`` writes afterwards."""

    cfg: ExperimentConfig
    member: Member
    meta: dict[str, Any]
    device: torch.device


def prepare_run(cfg: ExperimentConfig, *, out_dir: str | Path | None = None, data_dir: str | Path | None = None,
                device: str = "auto", resume: bool = False, progress: TrainProgress | None = None,
                variant: str | None = None, suite: str = "", run_dir: str | Path | None = None,
                cache: dict[str, Any] | None = None, tensorboard: bool = False) -> PreparedRun | TrainOutcome:
    """Everything of ``train_run`` before the training loop: a finished run comes back as a skipped
    ``TrainOutcome``. ``cache`` shares the loaded data between runs of one packed group. ``tensorboard``
    adds a ``tensorboard_log.TensorBoardProgress`` to the member's hooks (it only observes)."""
    run_dir = Path(run_dir) if run_dir else run_directory(cfg, out_dir)
    config = cfg.to_dict()
    ckpt_path = run_dir / CHECKPOINT
    meta_path = run_dir / RUN_META
    old_meta = read_run_meta(run_dir) if meta_path.exists() and ckpt_path.exists() else None
    dev = resolve_device(device)
    train_cfg = cfg.resolved_train()
    # The training data depend on the data config, and on the seed only through the training noise.
    key = json.dumps([config["data"], train_cfg.seed if cfg.data.train_noise > 0 else None, str(data_dir)])
    if cache is not None and key in cache:
        data, stats, table = cache[key]
    else:
        data = prepare_data(cfg, data_dir)
        rep = lifter_contract(cfg.model, **cfg.model_params).representation  # what the lifter reads and writes
        stats = compute_stats(data.train, rep)
        table = build_table(data.train, stats, rep)
        if cache is not None:
            cache[key] = (data, stats, table)
    stale = None
    if ckpt_path.exists():  # found again by its config hash: reuse only if its data are the same data
        old_fingerprint = str((old_meta or {}).get("dataset_fingerprint") or "unknown")
        if (old_meta or {}).get("origin") == "imported" and old_meta.get("config_hash") == cfg.config_hash():
            # weights from `liftbench import-checkpoint`: never retrained (they were trained on no data liftbench saw)
            return TrainOutcome(run_dir, cfg.run_id, TrainState(epoch=cfg.resolved_train().epochs, finished=True),
                                skipped=True)
        if old_fingerprint != data.dataset.fingerprint():
            stale = set_aside_stale_run(run_dir, old_fingerprint, data.dataset.fingerprint())
        elif old_meta.get("state") == "done" and old_meta.get("config_hash") == cfg.config_hash():
            return TrainOutcome(run_dir, cfg.run_id, TrainState(epoch=cfg.resolved_train().epochs, finished=True),
                                skipped=True)
        elif not resume:
            raise CheckpointError(f"{run_dir} already holds an unfinished run; pass --resume to continue it, "
                                  "or choose another --out.")
    seed_everything(train_cfg.seed)
    model = create_lifter(cfg.model, **cfg.model_params)
    meta = {"run_id": cfg.run_id, "config_hash": cfg.config_hash(), "model": cfg.model,
            "variant": variant or default_variant(cfg), "suite": suite, "seed": train_cfg.seed,
            "data_dir": str(data_dir) if data_dir else "", "dataset": data.dataset.name,
            "dataset_fingerprint": data.dataset.fingerprint(), "keypoints": data.dataset.keypoints,
            "trainable_parameters": trainable_parameters(model), "train_frames": table.n_frames,
            "state": "running", **provenance(str(dev)), "machine": machine_info(str(dev)),
            **({"stale_run_moved_to": str(stale)} if stale else {})}
    rep = lifter_contract(cfg.model, **cfg.model_params).representation
    scores = describe_scores(data.train, data.dataset.keypoints, rep)
    if scores:
        meta["input_scores"] = scores  # what fills the score channel of the training input
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / "config.json", {"run_id": cfg.run_id, "config_hash": cfg.config_hash(), **config})
    write_text_atomic(run_dir / "config.toml", f"# resolved config of run {cfg.run_id}\n" + toml_dumps(config))
    write_json_atomic(run_dir / RUN_META, meta)

    def epoch_end(epoch: int, m: Lifter) -> dict[str, Any]:
        return quick_test_error(m, stats, data.test, dev)

    hooks = with_tensorboard(progress, run_dir, config, run_id=cfg.run_id, config_hash=cfg.config_hash()) \
        if tensorboard else progress
    member = Member(model, table, stats, train_cfg, run_dir, config, epoch_end, hooks)
    return PreparedRun(cfg, member, meta, dev)


def finish_run(prepared: PreparedRun, state: TrainState) -> TrainOutcome:
    """Mark a finished run done in its run.json (what skip-if-done reads)."""
    run_dir = prepared.member.run_dir
    if state.finished:
        dev = str(prepared.device)
        write_json_atomic(run_dir / RUN_META, {**prepared.meta, "state": "done",
                                               "finished_utc": provenance(dev)["created_utc"]})
    stale = prepared.meta.get("stale_run_moved_to")
    return TrainOutcome(run_dir, prepared.cfg.run_id, state, skipped=False, stale_dir=Path(stale) if stale else None,
                        input_scores=prepared.meta.get("input_scores", ""))


def read_run_meta(run_dir: Path) -> dict[str, Any]:
    """A run directory's run.json as a dict; a truncated, non-JSON or non-object file is one line."""
    path = Path(run_dir) / RUN_META
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}); it was truncated or edited: delete the run "
                              "directory and retrain it (or restore run.json).") from exc
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read ({exc.strerror or exc}); check its permissions.") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} holds a JSON {type(meta).__name__}, not the run's record (an object); "
                              "delete the run directory and retrain it (or restore run.json).")
    return meta


STALE_SUFFIX = ".stale-"


def set_aside_stale_run(run_dir: Path, old_fingerprint: str, new_fingerprint: str) -> Path:
    """The data behind a run changed since it was trained (another detector file, a re-prepared dataset):
    move its files to ``<run_dir>.stale-<old fingerprint>`` (kept, never deleted) so that the run retrains
    from scratch on the current data. Claim files (``.lock*``) stay: the caller holds them."""
    base = run_dir.with_name(f"{run_dir.name}{STALE_SUFFIX}{old_fingerprint}")
    target, n = base, 1
    while target.exists():
        n += 1
        target = base.with_name(f"{base.name}-{n}")
    target.mkdir(parents=True)
    for entry in sorted(run_dir.iterdir()):
        if not entry.name.startswith(".lock"):
            os.replace(entry, target / entry.name)
    write_json_atomic(target / "STALE.json", {"reason": "dataset fingerprint changed", "run_dir": str(run_dir),
                                             "old_fingerprint": old_fingerprint, "new_fingerprint": new_fingerprint})
    return target


@dataclass
class LoadedRun:
    run_dir: Path
    model: Lifter
    stats: NormStats
    config: ExperimentConfig
    meta: dict[str, Any]
    state: TrainState


def load_run(run_dir: str | Path, device: str = "cpu") -> LoadedRun:
    """Rebuild a trained model from its run directory (safe checkpoint load)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"Run directory {run_dir} does not exist; pass a directory written by liftbench train.")
    ckpt = load_checkpoint(run_dir / CHECKPOINT)
    try:
        cfg = config_from_dict(ckpt["config"], where=str(run_dir / CHECKPOINT))
    except ConfigError as exc:  # a config this version cannot build: the checkpoint's problem, not the user's flags
        raise CheckpointError(f"{run_dir / CHECKPOINT} holds a config this liftbench cannot use ({exc}); retrain "
                              "the run.") from exc
    model = create_lifter(cfg.model, **cfg.model_params)
    load_model_weights(model, ckpt["model"], run_dir / CHECKPOINT)
    meta = read_run_meta(run_dir) if (run_dir / RUN_META).exists() else {}
    state = TrainState(ckpt["epoch"], ckpt["step_in_epoch"], ckpt["global_step"], history=ckpt["history"],
                       finished=ckpt["finished"])
    try:
        stats = stats_from_state(ckpt["norm_stats"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{run_dir / CHECKPOINT} has damaged normalisation statistics ({exc!r}); delete the "
                              "run directory and retrain it.") from exc
    return LoadedRun(run_dir, model.to(resolve_device(device)), stats, cfg, meta, state)


@dataclass
class EvalOutcome:
    rows: pd.DataFrame
    card: dict[str, Any]
    out_dir: Path
    predictions: Predictions


def evaluate_run(run_dir: str | Path, *, data: str | None = None, data_dir: str | Path | None = None,
                 keypoints: str | None = None, noise_sigma: float = 0.0, noise_seed: int = 0,
                 save_predictions: bool = False, out: str | Path | None = None, device: str = "auto",
                 video_mean: bool = False, allow_unfinished: bool = False,
                 conventions: tuple[str, ...] = ()) -> EvalOutcome:
    """Score a trained run on its test split (or another dataset/keypoints), with optional input noise.
    ``conventions``: also score the same predictions as those codebases' evaluations do (``conventions``;
    liftbench's own rows are always written), each row labelled with its ``convention``."""
    conventions = tuple(dict.fromkeys(c for c in conventions if c != DEFAULT_CONVENTION))
    for name in conventions:
        get_convention(name)  # an unknown name is one line before any work
    if not (math.isfinite(noise_sigma) and noise_sigma >= 0):
        raise ConfigError(f"--noise-sigma must be a finite number >= 0 pixels, got {noise_sigma}.")
    if not 0 <= noise_seed < 2**63:
        raise ConfigError(f"--noise-seed must be an integer in [0, 2**63), got {noise_seed}.")
    if out is not None:
        check_output_dir(out, "--results-dir")
    dev = resolve_device(device)
    run = load_run(run_dir, str(dev))
    if not run.state.finished and not allow_unfinished:
        raise CheckpointError(f"Run {run.run_dir} has not finished training ({run.state.epoch} epoch(s) done); "
                              "resume it with liftbench train ... --resume first.")
    cfg = run.config
    if data or keypoints:
        cfg = replace(cfg, data=replace(cfg.data, name=data or cfg.data.name,
                                        keypoints=keypoints or cfg.data.keypoints))
    prepared = prepare_data(cfg, data_dir if data_dir is not None else (run.meta.get("data_dir") or None))
    trained_on = run.meta.get("dataset_fingerprint")
    other_data = bool(data or keypoints) or (data_dir is not None and str(data_dir) != (run.meta.get("data_dir") or ""))
    if not other_data and trained_on and trained_on != prepared.dataset.fingerprint():
        raise CheckpointError(f"The data behind run {run.run_dir} changed since it was trained (dataset fingerprint "
                              f"{trained_on} then, {prepared.dataset.fingerprint()} now): retrain it (liftbench train "
                              "with the same options moves the old run aside), or pass --data/--keypoints/--data-dir "
                              "to score it on other data on purpose.")
    test = add_gaussian_noise(prepared.test, noise_sigma, noise_seed)
    started = time.perf_counter()
    preds = predict_sequences(run.model, run.stats, test, dev)
    inference_s = time.perf_counter() - started  # wall time of the whole test split (machine-dependent: card only)
    n_scored = check_coverage(prepared.test, preds)
    ds = prepared.dataset
    n_expected = sum(s.n_frames for s in ds.split("test"))  # the whole split: fewer scored = a test subset
    # the 2D the run was TRAINED on, from its own config and record (not the 2D scored here: --keypoints)
    train_keypoints = run.config.data.keypoints or str(run.meta.get("keypoints") or "") or ds.keypoints
    ident = {"run_id": cfg.run_id, "suite": run.meta.get("suite", ""), "model": cfg.model,
             "variant": run.meta.get("variant", default_variant(cfg)), "seed": cfg.train.seed,
             "origin": run.meta.get("origin", "measured"),  # "imported": published weights, run here
             "dataset": ds.name, "dataset_fingerprint": ds.fingerprint(), "keypoints": ds.keypoints,
             "train_keypoints": train_keypoints, "test_keypoints": ds.keypoints,
             "train_noise": cfg.data.train_noise, "test_noise": float(noise_sigma), "noise_seed": noise_seed,
             "seq_len": run.model.window,
             "alignment": run.model.contract.window.alignment if run.model.window > 1 else "frame",
             "n_frames_expected": n_expected, "config_hash": cfg.config_hash(),
             **provenance(str(dev)), "status": "ok", "error": ""}
    scored_rows = [{**ident, "convention": DEFAULT_CONVENTION, **r} for r in score(preds, video_mean=video_mean)]
    for name in conventions:
        scored_rows += [{**ident, **r} for r in score_convention(preds, name)]
    rows = rows_frame(scored_rows)
    out_dir = Path(out) if out else run.run_dir
    results_path = out_dir / "results.csv"
    if results_path.exists():  # replace this condition's rows, keep the others (other noise levels...)
        old = read_rows(results_path)
        same = ((old["run_id"].astype(str) == cfg.run_id) & (old["dataset"].astype(str) == ds.name)
                & (old["keypoints"].astype(str) == ds.keypoints)
                & (pd.to_numeric(old["test_noise"], errors="coerce") == float(noise_sigma))
                & (pd.to_numeric(old["noise_seed"], errors="coerce") == noise_seed))
        rows_all = pd.concat([old[~same], rows], ignore_index=True)
    else:
        rows_all = rows
    write_rows(results_path, rows_all)
    card = protocol_card(run, cfg, ds, n_scored, n_expected, noise_sigma, noise_seed, dev, video_mean,
                         test_videos=[(s.subject, s.action, s.camera, s.n_frames) for s in prepared.test],
                         test_sequences=prepared.test)
    card["inference"] = {"frames": n_scored, "seconds": round(inference_s, 4), "device": str(dev),
                         "threads": torch.get_num_threads(),
                         "frames_per_s": round(n_scored / max(inference_s, 1e-9), 1)}
    card["conventions"] = conventions_card(preds, (DEFAULT_CONVENTION, *conventions), n_expected)
    write_json_atomic(out_dir / "protocol.json", card)
    if save_predictions:
        preds.save(out_dir / "predictions.npz")
    return EvalOutcome(rows, card, out_dir, preds)


def conventions_card(preds: Predictions, names: tuple[str, ...], n_expected: int) -> dict[str, Any]:
    """Per convention: what it scores in words, the distinct frames it scores and the frames it counts (with
    multiplicity) against the full test set."""
    out = {}
    for name in names:
        w = convention_weights(name, preds.subject, preds.action, preds.camera, preds.frame)
        out[name] = {"frame_set": get_convention(name).frame_set, "frames_scored": int((w > 0).sum()),
                     "frames_counted": int(w.sum()), "test_frames": int(n_expected),
                     "every_frame_exactly_once": bool((w == 1).all()) and len(w) == n_expected}
    return out


def protocol_card(run: LoadedRun, cfg: ExperimentConfig, ds: PoseDataset, n_scored: int, n_expected: int,
                  noise_sigma: float, noise_seed: int, dev: torch.device, video_mean: bool,
                  test_videos: list[tuple[str, str, int, int]] | None = None,
                  test_sequences: list | None = None) -> dict[str, Any]:
    contract = run.model.contract
    return {
        "liftbench_protocol_version": provenance(str(dev))["protocol_version"],
        "run_id": cfg.run_id, "model": cfg.model, "model_params": cfg.model_params,
        "dataset": {"name": ds.name, "keypoints": ds.keypoints, "fingerprint": ds.fingerprint(), "fps": ds.fps,
                    "train_subjects": list(cfg.data.train_subjects or ds.train_subjects),
                    "test_subjects": list(cfg.data.test_subjects or ds.test_subjects), "subset": cfg.data.subset,
                    "subset_applies_to": "training sequences only", "test_subset": cfg.data.test_subset,
                    "notes": ds.notes[:50]},
        "joints_scored": list(JOINT_NAMES),
        "root_handling": f"3D root-centred on the Hip; {contract.representation.root_handling} (17 joints)",
        "representation": dataclasses.asdict(contract.representation),
        "temporal": {"receptive_field": contract.window.size, "alignment": contract.window.alignment,
                     "training_windows": contract.window.training, "training_targets": contract.window.targets},
        "alignment": {"mpjpe": "none (Protocol #1)",
                      "p_mpjpe": "per-frame similarity Procrustes: rotation without reflection, uniform scale, "
                                 "translation (Protocol #2)",
                      "p_mpjpe_rigid": "per-frame rigid Procrustes: rotation without reflection and translation, no "
                                       "scale (Protocol #2 as Hossain & Little's released code computed it)",
                      "n_mpjpe": "per-frame optimal scale only"},
        "averaging": {"action": "frame-weighted within each action group (first word of the action name), over "
                                "subjects, takes and cameras",
                      "action_mean": "unweighted mean over action groups (headline, as the papers)",
                      "frame_mean": "mean over all test frames",
                      **({"video_mean": "Hossain reference: mean of per-video means per group, then over groups"}
                         if video_mean else {})},
        "window_policy": contract.window.describe(),
        "scored_against": contract.representation.scored_space,
        **({"input_scores": scores} if (scores := describe_scores(test_sequences or [], ds.keypoints,
                                                                   contract.representation)) else {}),
        "test_time_augmentation": contract.test_time_augmentation,
        "noise": {"test_sigma_px": noise_sigma, "test_noise_seed": noise_seed, "train_sigma_px": cfg.data.train_noise,
                  "model": "i.i.d. Gaussian on 2D pixel coordinates, added before normalisation"},
        "frames": {"test_expected": n_expected, "test_scored": n_scored,
                   "every_frame_exactly_once": n_scored == n_expected},
        "test_set": count_test_set(test_videos or [], ds.name),  # videos/frames per group vs the official set
        "recipe_banner": run_banner(recipe_differences(cfg)),  # None = the paper's data and recipe
        "seeds": {"train": cfg.train.seed, "noise": noise_seed},
        "training": {"epochs_done": run.state.epoch, "finished": run.state.finished},
        **({"origin": "imported", "imported": run.meta.get("imported", {})} if run.meta.get("origin") == "imported"
           else {}),  # released weights (liftbench import-checkpoint): trained elsewhere, on data liftbench never saw
        **provenance(str(dev)),
        "liftbench_version": __version__,
    }
