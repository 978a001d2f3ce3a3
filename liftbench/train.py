"""Trainer: a seeded, resumable Adam loop with the reference learning-rate schedule, for 1 or K runs.

Determinism: the model is initialised under ``torch.manual_seed(seed)`` (done by the caller), the
window order of epoch e is a permutation drawn from ``numpy.random.default_rng([seed, e])`` and
dropout draws from the run's own ``torch.Generator`` (``stack.dropout_generator(seed)``), whose
state is saved in every checkpoint. A run killed at any point resumes from its last checkpoint
(written atomically: temp file + rename) and reaches the same weights as an uninterrupted run.
Checkpoints are read with ``weights_only=True``, so a crafted file cannot execute code. The trainer
does not evaluate: the caller passes ``epoch_end``.

One loop for one run and for a packed group: ``fit`` is ``fit_members`` with K = 1. The K members'
parameters are (K, ...) stacks (``fast/stack.py``) updated by ONE fused Adam (element-wise, so K
separate Adams); each member keeps its own data order, dropout stream, loss log, checkpoint and
metrics log, written exactly as a separate run writes them. Members resumed at different points are
first brought level one by one (``until_step``), then trained together.
"""

from __future__ import annotations

import contextlib
import copy
import json
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
from liftbench._files import atomic_output, write_text_atomic
from liftbench.checkpoint import checkpoint_problem, load_model_weights, optimizer_problem
from liftbench.config import TrainConfig, identity_dict
from liftbench.data.normalize import flip_maps, stats_to_state
from liftbench.data.windows import FrameTable, TrainingWindows, training_windows
from liftbench.errors import CheckpointError, ConfigError, OutputError, one_line
from liftbench.fast.stack import ModuleStack, dropout_generator, stack_lifters
from liftbench.models.base import Lifter, NormStats

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


@dataclass
class Member:
    """One run of a (possibly packed) training: model, data, recipe, directory and hooks."""

    model: Lifter
    table: FrameTable
    stats: NormStats
    cfg: TrainConfig  # resolved (lr, batch_size, epochs set)
    run_dir: Path
    config: dict[str, Any]  # the run's resolved config dict (checked on resume)
    epoch_end: Callable[[int, Lifter], dict[str, Any]] | None = None
    progress: TrainProgress | None = None


def learning_rate(cfg: TrainConfig, step: int, epoch: int = 0) -> float:
    """The recipe's learning rate at global ``step`` of 0-based ``epoch``: lr * decay^(step / decay_steps),
    continuous (TF exponential_decay, staircase=False; Martinez/Hossain), or lr * decay^epoch
    (``lr_decay_every = "epoch"``; VideoPose3D)."""
    if cfg.lr_decay_every == "epoch":
        return cfg.lr * cfg.lr_decay ** epoch
    return cfg.lr * cfg.lr_decay ** (step / cfg.lr_decay_steps)


def adam_optimizer(params: list[torch.Tensor], lr: float, device: torch.device, amsgrad: bool = False,
                   weight_decay: float | None = None) -> torch.optim.Optimizer:
    """Adam with TF-default moments (AMSGrad on request), or AdamW with decoupled ``weight_decay`` (torch's
    default betas and eps, as MotionBERT and MixSTE use); the fused kernel where this torch supports it."""
    cls = torch.optim.AdamW if weight_decay is not None else torch.optim.Adam
    extra = {"weight_decay": weight_decay} if weight_decay is not None else {}
    try:
        return cls(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, amsgrad=amsgrad, fused=True, **extra)
    except (RuntimeError, TypeError, ValueError):
        return cls(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, amsgrad=amsgrad, foreach=device.type != "cpu", **extra)


def recipe_optimizer(params: list[torch.Tensor], cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """The optimiser a resolved recipe names: adam, amsgrad or adamw (with its weight decay)."""
    weight_decay = (cfg.weight_decay or 0.0) if cfg.optimizer == "adamw" else None
    return adam_optimizer(params, cfg.lr, device, amsgrad=cfg.optimizer == "amsgrad", weight_decay=weight_decay)


def make_optimizer(model: torch.nn.Module, lr: float, device: torch.device) -> torch.optim.Optimizer:
    """The production Adam over one module's trainable parameters."""
    return adam_optimizer([p for p in model.parameters() if p.requires_grad], lr, device)


def epoch_batches(n_windows: int, cfg: TrainConfig, epoch: int) -> list[np.ndarray]:
    """Window positions of every batch of epoch ``epoch`` (0-based): seeded shuffle, remainder dropped."""
    order = np.random.default_rng([cfg.seed, epoch]).permutation(n_windows)
    if cfg.max_windows_per_epoch:
        order = order[: cfg.max_windows_per_epoch]
    n_full = len(order) // cfg.batch_size
    if n_full == 0:  # fewer windows than one batch: keep them as one (smaller) batch rather than none
        return [order] if len(order) else []
    return [order[i * cfg.batch_size : (i + 1) * cfg.batch_size] for i in range(n_full)]


def member_optimizer_state(stack: ModuleStack, stacked: dict[str, Any], k: int) -> dict[str, Any]:
    """Member k's slice of the stacked Adam ``state_dict``: what an Adam over its module alone saves."""
    names = list(stack.shapes)
    state = {i: {key: (stack.member_tensor(names[i], v, k) if v.dim() > 0 else v.clone()) if torch.is_tensor(v) else v
                 for key, v in s.items()} for i, s in stacked["state"].items()}
    return {"state": state, "param_groups": copy.deepcopy(stacked["param_groups"])}


def stack_optimizer_states(stack: ModuleStack, states: list[dict[str, Any]]) -> dict[str, Any]:
    """Inverse of ``member_optimizer_state``: K members' Adam states -> one stacked state."""
    names = list(stack.shapes)
    out = {}
    for i, s in states[0]["state"].items():
        out[i] = {key: stack.stack_tensors(names[i], [m["state"][i][key] for m in states])
                  if torch.is_tensor(v) and v.dim() > 0 else v for key, v in s.items()}  # moments; shared step
    return {"state": out, "param_groups": copy.deepcopy(states[0]["param_groups"])}


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint safely (tensors and plain containers only)."""
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; train the run first (liftbench train ...).")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors come in many types
        raise CheckpointError(f"{path} is not a liftbench checkpoint that can be loaded safely "
                              f"({one_line(exc)[:160]}); delete it or retrain the run.") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT or "model" not in ckpt:
        raise CheckpointError(f"{path} is not a liftbench checkpoint (format {CHECKPOINT_FORMAT}); retrain the run.")
    problem = checkpoint_problem(ckpt)
    if problem:
        raise CheckpointError(f"{path} is damaged or not written by liftbench: {problem}; delete the run directory "
                              "and retrain it.")
    return ckpt


def _write_metrics_log(run_dir: Path, history: list[dict[str, Any]]) -> None:
    write_text_atomic(run_dir / METRICS_LOG, "".join(json.dumps(r, sort_keys=True) + "\n" for r in history))


@dataclass
class _Run:
    """A member's live training state inside ``fit_members``."""

    member: Member
    state: TrainState
    generator: torch.Generator
    opt_state: dict[str, Any] | None
    torch_rng: torch.Tensor | None = None


def _open(member: Member, device: torch.device, resume: bool) -> _Run:
    """Load a member's checkpoint (weights into its module) or start it fresh."""
    member.run_dir.mkdir(parents=True, exist_ok=True)
    member.model.to(device)
    path = member.run_dir / CHECKPOINT
    run = _Run(member, TrainState(), dropout_generator(member.cfg.seed, device), None)
    if resume and path.exists():
        ckpt = load_checkpoint(path)
        if identity_dict(ckpt["config"]) != identity_dict(member.config):
            raise CheckpointError(f"{path} was written by a different configuration; "
                                  "use another --out directory or delete the run directory to retrain.")
        load_model_weights(member.model, ckpt["model"], path)
        problem = optimizer_problem(ckpt["optimizer"], [p for p in member.model.parameters() if p.requires_grad])
        if problem:
            raise CheckpointError(f"{path} is damaged: {problem}; delete the run directory and retrain it.")
        run.opt_state = ckpt["optimizer"]
        run.state = TrainState(ckpt["epoch"], ckpt["step_in_epoch"], ckpt["global_step"], float(ckpt["loss_sum"]),
                               ckpt["loss_count"], list(ckpt["history"]), ckpt["finished"])
        if ckpt.get("dropout_rng") is not None:  # older checkpoints (global-RNG dropout) continue with a fresh stream
            try:
                run.generator.set_state(ckpt["dropout_rng"])
            except RuntimeError as exc:  # CPU (mt19937) and CUDA (philox) generator states differ in size and kind
                raise CheckpointError(f"{path} holds a dropout RNG state the {device.type} generator cannot take "
                                      f"({one_line(exc)[:120]}): if the run started on another device "
                                      "type resume it with that --device, else delete the run directory and "
                                      "retrain it.") from exc
        if ckpt.get("torch_rng") is not None:
            try:  # checked on a scratch generator: the global one is set only when training starts
                torch.Generator().set_state(ckpt["torch_rng"])
            except RuntimeError as exc:
                raise CheckpointError(f"{path} holds an invalid torch RNG state ({one_line(exc)[:120]}); "
                                      "delete the run directory and retrain it.") from exc
        run.torch_rng = ckpt.get("torch_rng")
    return run


def _save(run: _Run, opt_state: dict[str, Any]) -> None:
    """Atomic checkpoint of one member (its module must hold its current weights)."""
    m, state = run.member, run.state
    payload = {
        "format": CHECKPOINT_FORMAT,
        "liftbench_version": __version__,
        "config": m.config,
        "model": m.model.state_dict(),
        "optimizer": opt_state,
        "norm_stats": stats_to_state(m.stats),
        "epoch": state.epoch,
        "step_in_epoch": state.step_in_epoch,
        "global_step": state.global_step,
        "loss_sum": state.loss_sum,
        "loss_count": state.loss_count,
        "history": state.history,
        "finished": state.finished,
        "dropout_rng": run.generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    path = m.run_dir / CHECKPOINT
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with atomic_output(path, tmp):  # a failed write (disk full) removes the temp file: one line, nothing left
        try:
            torch.save(payload, tmp)
        except RuntimeError as exc:  # torch reports a full disk as "enforce fail at inline_container.cc"
            raise OutputError(f"Could not write {path}: the checkpoint did not fit ({one_line(exc)[:80]}); free disk "
                              "space (nothing partial was left behind) and re-run the same command.") from exc
        with open(tmp, "rb") as fh:  # make the bytes durable before the rename publishes them
            os.fsync(fh.fileno())
        os.replace(tmp, path)


def _end_epoch(run: _Run, opt_state: dict[str, Any], seconds: float) -> None:
    """Log the finished epoch (the module must hold the member's weights), checkpoint, metrics.jsonl."""
    m, state = run.member, run.state
    record: dict[str, Any] = {"epoch": state.epoch + 1, "steps": state.global_step,
                              "train_loss": state.loss_sum / max(state.loss_count, 1),
                              "lr": learning_rate(m.cfg, state.global_step, state.epoch), "seconds": round(seconds, 3)}
    if m.epoch_end is not None:
        record.update(m.epoch_end(state.epoch + 1, m.model))
    state.history.append(record)
    state.epoch += 1
    state.step_in_epoch, state.loss_sum, state.loss_count = 0, 0.0, 0
    state.finished = state.epoch >= m.cfg.epochs
    _save(run, opt_state)
    _write_metrics_log(m.run_dir, state.history)
    if m.progress:
        m.progress.on_epoch_end(state.epoch, record)


def _windows(member: Member) -> TrainingWindows:
    """The training samples the member's lifter declares (its contract's window spec)."""
    spec = member.model.contract.window
    windows = training_windows(member.table, spec)
    if len(windows.anchors) == 0:
        raise ConfigError(f"No training window of {spec.size} frames fits in any training sequence; "
                          "use a shorter window (seq_len) or more data.")
    if member.cfg.flip_augment and not member.model.contract.representation.flippable:
        raise ConfigError("train.flip_augment=true needs a lifter with screen-normalised input and metre output "
                          f"(mirroring is then exact in its encoded space); {type(member.model).__name__} has neither.")
    return windows


def _samples(windows: TrainingWindows, cfg: TrainConfig) -> int:
    """Samples per epoch: every window, and each again mirrored under copy flip augmentation (VideoPose3D,
    MixSTE); random flips (MotionBERT) mirror some of the windows instead of adding samples."""
    return len(windows.anchors) * (2 if cfg.flip_augment and cfg.flip_mode != "random" else 1)


_FLIP_STREAM = 0xF1  # spawn key of the random-flip draws: independent of data order and dropout


def random_flips(cfg: TrainConfig, epoch: int, step: int, shape: tuple[int, ...]) -> np.ndarray:
    """(shape) bool: which samples of optimiser step ``step`` of ``epoch`` are mirrored under
    ``flip_mode = "random"`` (p = 1/2 each), a function of (seed, epoch, step) only, so a resumed run draws
    the same flips."""
    return np.random.default_rng([cfg.seed, epoch, step, _FLIP_STREAM]).random(shape) < 0.5


def fit(model: Lifter, table: FrameTable, stats: NormStats, cfg: TrainConfig, run_dir: Path, *,
        config: dict[str, Any], device: torch.device, resume: bool = True,
        epoch_end: Callable[[int, Lifter], dict[str, Any]] | None = None,
        progress: TrainProgress | None = None, stop_after_steps: int | None = None) -> TrainState:
    """Train ``model`` in place for ``cfg.epochs`` epochs, checkpointing into ``run_dir``.

    ``cfg`` must be resolved (lr, batch_size, epochs set). ``stop_after_steps`` (tests) simulates a
    kill: training stops after that many optimiser steps in this call, after a checkpoint.
    """
    member = Member(model, table, stats, cfg, Path(run_dir), config, epoch_end, progress)
    return fit_members([member], device=device, resume=resume, stop_after_steps=stop_after_steps)[0]


def fit_members(members: list[Member], *, device: torch.device, resume: bool = True,
                stop_after_steps: int | None = None, until_step: int | None = None) -> list[TrainState]:
    """Train K members as one stacked computation; the result of each equals a separate ``fit``.

    Members must share window length, batch size, epochs and lr schedule (``packing.pack_signature``);
    they may differ in seed, data table and the toggles their stack allows. ``until_step`` stops once
    the global step reaches it (used to bring a lagging member level with the others)."""
    device = torch.device(device)
    runs = [_open(m, device, resume) for m in members]
    starts = [_windows(m) for m in members]
    steps = {len(epoch_batches(_samples(w, m.cfg), m.cfg, 0)) for w, m in zip(starts, members)}
    recipe = {(m.model.contract.window, m.cfg.batch_size, m.cfg.epochs, m.cfg.lr, m.cfg.lr_decay, m.cfg.lr_decay_steps,
               m.cfg.lr_decay_every, m.cfg.optimizer, m.cfg.weight_decay, m.cfg.bn_momentum_start,
               m.cfg.bn_momentum_end, m.cfg.flip_augment, m.cfg.flip_mode, m.cfg.max_windows_per_epoch)
              for m in members}
    if len(steps) != 1 or len(recipe) != 1:
        raise ConfigError("Packed runs must share window, batch size, epochs, lr schedule and steps per epoch.")
    steps_per_epoch = steps.pop()
    for run in runs:  # a run stopped after the last step of an epoch still owes that epoch's log
        if not run.state.finished and run.state.step_in_epoch >= steps_per_epoch:
            _end_epoch(run, run.opt_state, 0.0)
    active = [i for i, r in enumerate(runs) if not r.state.finished]
    if not active or (until_step is not None and all(runs[i].state.global_step >= until_step for i in active)):
        return [r.state for r in runs]
    lead = max(runs[i].state.global_step for i in active)
    if len({runs[i].state.global_step for i in active}) > 1:  # resumed at different points: level them
        for i in active:
            if runs[i].state.global_step < lead:
                fit_members([members[i]], device=device, resume=True, until_step=lead)
        return fit_members(members, device=device, resume=True, stop_after_steps=stop_after_steps,
                           until_step=until_step)
    return _train(runs, active, starts, steps_per_epoch, device, stop_after_steps, until_step)


@contextlib.contextmanager
def precision_context(precision: str, device: torch.device):
    """The numeric mode of forward + loss: fp32 (default), TF32 matmuls (CUDA only) or bf16 autocast.

    bf16 autocast also works on a CPU, but without bf16 hardware it is 10-100x slower there
    (cpu_performance_notes.md): it exists for GPUs; tests exercise it on CPU at tiny sizes."""
    if precision == "fp32":
        yield
        return
    if precision == "tf32":
        if device.type != "cuda":
            raise ConfigError(f"train.precision=tf32 needs a CUDA device (TF32 is a tensor-core mode), not {device}; "
                              "use precision=fp32.")
        old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
        return
    with torch.autocast(device.type, dtype=torch.bfloat16):
        yield


class _BatchGather:
    """Gathers the (K, B, T, D_in) windows and (K, B, T_out, D_out) targets of one step from the
    device-resident tables, as the members' window spec declares (``data.windows.TrainingWindows``):
    rows = anchor + offsets, clamped to the anchor's sequence for edge-replicated windows; targets at
    the rows or at the aligned frame; sample ids >= W are the mirrored copies under flip augmentation."""

    def __init__(self, members: list[Member], windows: TrainingWindows, device: torch.device):
        self.shared = all(m.table is members[0].table for m in members)
        tables = [members[0].table] if self.shared else [m.table for m in members]
        self.inputs = [torch.from_numpy(t.inputs).to(device) for t in tables]  # (F, D_in) each
        self.targets = [torch.from_numpy(t.targets).to(device) for t in tables]  # (F, D_out)
        self.anchors = torch.from_numpy(windows.anchors).to(device)  # (W,): same windows for every member
        self.offsets = torch.from_numpy(windows.offsets).to(device)  # (T,)
        self.shifts = None if windows.shifts is None else torch.from_numpy(windows.shifts).to(device)  # (W,)
        self.target_offset = windows.target_offset
        self.bounds = None
        if windows.clamp:  # the tables of packed members share their sequence layout (same data config)
            first, last = tables[0].row_bounds()
            self.bounds = torch.from_numpy(first).to(device), torch.from_numpy(last).to(device)  # (F,), (F,)
        self.flip = None
        if members[0].cfg.flip_augment:
            perm_in, sign_in, perm_out, sign_out = flip_maps(members[0].model.contract.representation)
            self.flip = tuple(torch.from_numpy(a).to(device) for a in (perm_in, sign_in, perm_out, sign_out))

    def __call__(self, samples: torch.Tensor, mirror: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """samples (K, B) sample ids -> x (K, B, T, D_in), y (K, B, T_out, D_out). ``mirror`` (K, B) bool marks the
        samples mirrored by random flips; without it, ids >= W are the mirrored copies (copy flips)."""
        n = len(self.anchors)
        window = samples % n if self.flip is not None else samples  # (K, B)
        mirrored = mirror if mirror is not None else (samples >= n if self.flip is not None else None)  # (K, B)
        anchor = self.anchors[window]  # (K, B)
        first = anchor if self.shifts is None else anchor + self.shifts[window]  # (K, B) a grid clip may overhang
        rows = first[..., None] + self.offsets  # (K, B) -> (K, B, T)
        if self.bounds is not None:
            rows = torch.maximum(torch.minimum(rows, self.bounds[1][anchor][..., None]),
                                 self.bounds[0][anchor][..., None])
        target_rows = rows if self.target_offset is None else (anchor + self.target_offset)[..., None]  # (K, B, T_out)
        if self.shared:
            x, y = self.inputs[0][rows], self.targets[0][target_rows]  # (K, B, T, D_in), (K, B, T_out, D_out)
        else:
            x = torch.stack([inp[r] for inp, r in zip(self.inputs, rows)])  # (K, B, T, D_in)
            y = torch.stack([tgt[r] for tgt, r in zip(self.targets, target_rows)])  # (K, B, T_out, D_out)
        if mirrored is not None:
            perm_in, sign_in, perm_out, sign_out = self.flip
            m = mirrored[..., None, None]  # (K, B, 1, 1)
            x = torch.where(m, x[..., perm_in] * sign_in, x)
            y = torch.where(m, y[..., perm_out] * sign_out, y)
        return x, y


def _train(runs: list[_Run], active: list[int], starts: list[TrainingWindows], steps_per_epoch: int,
           device: torch.device, stop_after_steps: int | None, until_step: int | None) -> list[TrainState]:
    """The stacked loop over the members ``active`` (all at the same point of training)."""
    live = [runs[i] for i in active]
    members = [r.member for r in live]
    cfg = members[0].cfg
    stack: ModuleStack = stack_lifters([m.model for m in members], device)
    opt = recipe_optimizer(stack.parameters(), cfg, device)
    if live[0].opt_state is not None:
        opt.load_state_dict(stack_optimizer_states(stack, [r.opt_state for r in live]))
    if live[0].torch_rng is not None:
        torch.set_rng_state(live[0].torch_rng)  # global RNG: used only by plug-in lifters' own dropout
    gather = _BatchGather(members, starts[active[0]], device)
    n_samples = _samples(starts[active[0]], cfg)
    stats = [m.stats.to(device) for m in members]
    gens = [r.generator for r in live]
    state0 = live[0].state
    for m in members:
        if m.progress:
            m.progress.on_train_start(m.cfg.epochs, steps_per_epoch, state0.epoch, state0.step_in_epoch)

    def save_all() -> None:
        full = opt.state_dict()
        for k, r in enumerate(live):
            stack.write_back(k, r.member.model)
            _save(r, member_optimizer_state(stack, full, k))

    last_save = epoch_started = time.monotonic()
    steps_this_call = 0
    while state0.epoch < cfg.epochs:
        momentum = cfg.bn_momentum(state0.epoch)
        if momentum is not None:  # recomputed from the epoch, so a resumed run continues the schedule exactly
            stack.set_bn_momentum(momentum)
        order = np.stack([np.stack(epoch_batches(n_samples, m.cfg, state0.epoch)) for m in members])  # (K, S, B)
        order_t = torch.from_numpy(order).to(device)
        for b in range(state0.step_in_epoch, order.shape[1]):
            mirror = None
            if cfg.flip_augment and cfg.flip_mode == "random":
                mirror = torch.from_numpy(np.stack([random_flips(m.cfg, state0.epoch, b, order.shape[2:])
                                                    for m in members])).to(device)  # (K, B)
            x, y = gather(order_t[:, b], mirror)  # (K, B, T, D_in), (K, B, T_out, D_out)
            lr = learning_rate(cfg, state0.global_step, state0.epoch)
            for group in opt.param_groups:
                group["lr"] = lr
            with precision_context(cfg.precision, device):
                losses = stack.losses(x, y, stats, gens).float()  # (K,)
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()  # d(sum)/d(loss_k) = 1: each member gets exactly its own gradient
            opt.step()
            values = losses.detach().cpu().tolist()
            for r, value in zip(live, values):
                if not math.isfinite(value):
                    raise CheckpointError(f"Training diverged (loss {value}) at epoch {r.state.epoch + 1}, step "
                                          f"{b + 1} of {r.member.run_dir.name}; lower the learning rate "
                                          "(--set lr=...) and retrain.")
                r.state.loss_sum += value
                r.state.loss_count += 1
                r.state.step_in_epoch = b + 1
                r.state.global_step += 1
                if r.member.progress:
                    r.member.progress.on_step(r.state.epoch, b + 1, value, lr)
            steps_this_call += 1
            stop = ((stop_after_steps is not None and steps_this_call >= stop_after_steps)
                    or (until_step is not None and state0.global_step >= until_step))
            if stop or time.monotonic() - last_save > cfg.checkpoint_every_s:
                save_all()
                last_save = time.monotonic()
            if stop:
                return [r.state for r in runs]
        full = opt.state_dict()
        seconds = time.monotonic() - epoch_started
        for k, r in enumerate(live):
            stack.write_back(k, r.member.model)
            _end_epoch(r, member_optimizer_state(stack, full, k), seconds)
        last_save = epoch_started = time.monotonic()
    return [r.state for r in runs]
