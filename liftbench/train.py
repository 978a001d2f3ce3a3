"""Trainer: a seeded, resumable Adam loop with the reference learning-rate schedule.

Determinism: the model is initialised under ``torch.manual_seed(seed)`` (done by the caller), the
window order of epoch e is a permutation drawn from ``numpy.random.default_rng([seed, e])`` and
dropout draws from torch's global RNG, whose state is saved in every checkpoint. A run killed at any
point resumes from its last checkpoint (written atomically: temp file + rename) and reaches the same
weights as an uninterrupted run. Checkpoints are read with ``weights_only=True``, so a crafted file
cannot execute code. The trainer does not evaluate: the caller passes ``epoch_end``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from liftbench import __version__
from liftbench.config import TrainConfig
from liftbench.data.normalize import stats_to_state
from liftbench.data.windows import FrameTable, training_window_starts
from liftbench.errors import CheckpointError
from liftbench.models.base import Lifter, NormStats
from liftbench.results import write_text_atomic

CHECKPOINT = "checkpoint.pt"
METRICS_LOG = "metrics.jsonl"
CHECKPOINT_FORMAT = 1


class TrainProgress(Protocol):
    def on_train_start(self, epochs: int, steps_per_epoch: int, epoch: int, step: int) -> None: ...
    def on_step(self, epoch: int, step: int, loss: float, lr: float) -> None: ...
    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None: ...


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    step_in_epoch: int = 0  # optimiser steps done inside the current epoch
    global_step: int = 0
    loss_sum: float = 0.0  # running sums of the current epoch (so a resumed epoch logs the same mean)
    loss_count: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """lr * decay^(step / decay_steps), continuous (TF exponential_decay with staircase=False)."""
    return cfg.lr * cfg.lr_decay ** (step / cfg.lr_decay_steps)


def make_optimizer(model: torch.nn.Module, lr: float, device: torch.device) -> torch.optim.Optimizer:
    """Adam with TF-default moments; the fused kernel where this torch supports it on the device."""
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, foreach=device.type != "cpu")


def epoch_batches(n_windows: int, cfg: TrainConfig, epoch: int) -> list[np.ndarray]:
    """Window positions of every batch of epoch ``epoch`` (0-based): seeded shuffle, remainder dropped."""
    order = np.random.default_rng([cfg.seed, epoch]).permutation(n_windows)
    if cfg.max_windows_per_epoch:
        order = order[: cfg.max_windows_per_epoch]
    n_full = len(order) // cfg.batch_size
    if n_full == 0:  # fewer windows than one batch: keep them as one (smaller) batch rather than none
        return [order] if len(order) else []
    return [order[i * cfg.batch_size : (i + 1) * cfg.batch_size] for i in range(n_full)]


def _save_checkpoint(path: Path, model: Lifter, opt: torch.optim.Optimizer, state: TrainState,
                     stats: NormStats, config: dict[str, Any]) -> None:
    payload = {
        "format": CHECKPOINT_FORMAT,
        "liftbench_version": __version__,
        "config": config,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "norm_stats": stats_to_state(stats),
        "epoch": state.epoch,
        "step_in_epoch": state.step_in_epoch,
        "global_step": state.global_step,
        "loss_sum": state.loss_sum,
        "loss_count": state.loss_count,
        "history": state.history,
        "finished": state.finished,
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    with open(tmp, "rb") as fh:  # make the bytes durable before the rename publishes them
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint safely (tensors and plain containers only)."""
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; train the run first (liftbench train ...).")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors come in many types
        raise CheckpointError(f"{path} is not a liftbench checkpoint that can be loaded safely "
                              f"({' '.join(str(exc).split())[:160]}); delete it or retrain the run.") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT or "model" not in ckpt:
        raise CheckpointError(f"{path} is not a liftbench checkpoint (format {CHECKPOINT_FORMAT}); retrain the run.")
    return ckpt


def _write_metrics_log(run_dir: Path, history: list[dict[str, Any]]) -> None:
    import json

    write_text_atomic(run_dir / METRICS_LOG, "".join(json.dumps(r, sort_keys=True) + "\n" for r in history))


def fit(model: Lifter, table: FrameTable, stats: NormStats, cfg: TrainConfig, run_dir: Path, *,
        config: dict[str, Any], device: torch.device, resume: bool = True,
        epoch_end: Callable[[int, Lifter], dict[str, Any]] | None = None,
        progress: TrainProgress | None = None, stop_after_steps: int | None = None) -> TrainState:
    """Train ``model`` in place for ``cfg.epochs`` epochs, checkpointing into ``run_dir``.

    ``cfg`` must be resolved (lr, batch_size, epochs set). ``stop_after_steps`` (tests) simulates a
    kill: training stops after that many optimiser steps in this call, after a checkpoint.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / CHECKPOINT
    model.to(device)
    opt = make_optimizer(model, cfg.lr, device)
    state = TrainState()
    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        if ckpt["config"] != config:
            raise CheckpointError(f"{ckpt_path} was written by a different configuration; "
                                  "use another --out directory or delete the run directory to retrain.")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        state = TrainState(ckpt["epoch"], ckpt["step_in_epoch"], ckpt["global_step"], ckpt["loss_sum"],
                           ckpt["loss_count"], list(ckpt["history"]), ckpt["finished"])
        torch.set_rng_state(ckpt["torch_rng"])
        if ckpt["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
    if state.finished:
        return state

    window = model.window
    starts = training_window_starts(table, window)
    if len(starts) == 0:
        raise CheckpointError(f"No training window of {window} frames fits in any training sequence; "
                              "use a shorter seq_len or more data.")
    inputs = torch.from_numpy(table.inputs).to(device)  # (F, 32) resident on the device
    targets = torch.from_numpy(table.targets).to(device)  # (F, 48)
    starts_t = torch.from_numpy(starts).to(device)  # (W,)
    offsets = torch.arange(window, device=device)  # (T,)
    stats_dev = stats.to(device)
    steps_per_epoch = len(epoch_batches(len(starts), cfg, 0))
    if progress:
        progress.on_train_start(cfg.epochs, steps_per_epoch, state.epoch, state.step_in_epoch)

    last_save = time.monotonic()
    steps_this_call = 0
    epoch_started = time.monotonic()
    while state.epoch < cfg.epochs:
        model.train()
        batches = epoch_batches(len(starts), cfg, state.epoch)
        for b in range(state.step_in_epoch, len(batches)):
            rows = starts_t[torch.from_numpy(batches[b]).to(device)][:, None] + offsets  # (B, T)
            x, y = inputs[rows], targets[rows]  # (B, T, 32), (B, T, 48)
            lr = learning_rate(cfg, state.global_step)
            for group in opt.param_groups:
                group["lr"] = lr
            loss = model.loss(model(x), y, stats_dev)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise CheckpointError(f"Training diverged (loss {loss_value}) at epoch {state.epoch + 1}, step "
                                      f"{b + 1}; lower the learning rate (--set lr=...) and retrain.")
            state.loss_sum += loss_value
            state.loss_count += 1
            state.step_in_epoch = b + 1
            state.global_step += 1
            steps_this_call += 1
            if progress:
                progress.on_step(state.epoch, b + 1, loss_value, lr)
            killed = stop_after_steps is not None and steps_this_call >= stop_after_steps
            if killed or time.monotonic() - last_save > cfg.checkpoint_every_s:
                _save_checkpoint(ckpt_path, model, opt, state, stats, config)
                last_save = time.monotonic()
            if killed:
                return state
        record: dict[str, Any] = {"epoch": state.epoch + 1, "steps": state.global_step,
                                  "train_loss": state.loss_sum / max(state.loss_count, 1),
                                  "lr": learning_rate(cfg, state.global_step),
                                  "seconds": round(time.monotonic() - epoch_started, 3)}
        if epoch_end is not None:
            record.update(epoch_end(state.epoch + 1, model))
        state.history.append(record)
        state.epoch += 1
        state.step_in_epoch, state.loss_sum, state.loss_count = 0, 0.0, 0
        state.finished = state.epoch >= cfg.epochs
        _save_checkpoint(ckpt_path, model, opt, state, stats, config)
        _write_metrics_log(run_dir, state.history)
        last_save = epoch_started = time.monotonic()
        if progress:
            progress.on_epoch_end(state.epoch, record)
    return state
