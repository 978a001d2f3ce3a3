"""`liftbench bench`: plain eager implementation vs liftbench's production path, measured in ONE process.

Variants are interleaved rep by rep (plain, production, plain, ...) so the shared machine's drift hits
both alike; we report medians with min/max and the ratios, analytic FLOPs, achieved GFLOP/s and the
fraction of this run's own measured matmul throughput. The machine's other load during the run is
measured from /proc/stat and reported, because a second busy process distorts timings 5-20x.

* plain: the readable model, inside ``liftbench.fast.disabled()`` (the model file's ``forward``, or
  the forward its speed path names as ``plain_forward``: e.g. the dilated TCN on single-frame windows),
  ``torch.optim.Adam`` defaults, DataLoader-style batch assembly (per-sample slices stacked);
  evaluation at the paper batch size, one window per frame (a clip model: non-overlapping clips through its
  own ``predict_clips``, flip TTA included).
* production: what ``liftbench train`` / ``evaluate`` run: the lifter's stack from its speed path
  (``liftbench/fast/``: stacked MLP, fused seq2seq, ``FunctionalStack`` otherwise), fused Adam (AMSGrad
  where the recipe says so), the training set resident on the device and gathered by indexing as the
  trainer does; evaluation through the real evaluator (``evaluate.predict_sequences`` ->
  ``fast.predict_frames``) in large batches. Flip augmentation (a gather) is not timed.

Model sizes come from ``--set key=value`` model parameters (the paper's defaults otherwise), the batch
from the lifter's ``train_defaults``. FLOPs are matmul/conv FLOPs only (``cpu_performance_notes.md``
section 2), from ``Lifter.flops_per_frame()``: "nominal" is the paper-graph count, the same for both
paths; "executed" is what each path really multiplies, where the speed path says it differs
(``SpeedPath.executed_flops``: e.g. the folded seq2seq evaluator does about 45 % of the nominal eval
FLOPs). Achieved GFLOP/s are reported with both counts; the % of matmul throughput uses the executed
count. A lifter without ``flops_per_frame`` gets NaN there.
torch.compile is not used: the notes measured 0-25 % at 30-90 s compile time, flaky on this CPU.
"""

from __future__ import annotations

import contextlib
import json
import resource
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from liftbench.data.dataset import Sequence
from liftbench.data.normalize import NormStats, Representation
from liftbench.data.skeleton import NUM_JOINTS
from liftbench.errors import ConfigError
from liftbench.evaluate import predict_sequences
from liftbench.fast import disabled, speed_path
from liftbench.fast.stack import dropout_generator, stack_lifters
from liftbench.models import LIFTERS, Lifter, create_lifter, lifter_contract
from liftbench.perf.measure import LoadMonitor, Timing, interleave, matmul_gflops, peak_memory_mb  # noqa: F401 (re-exported)
from liftbench.perf.pack_bench import bench_pack
from liftbench.train import adam_optimizer, precision_context

# Hook for variant packing: ``pack_bench(model_name=, device=, batch=, params=, reps=)``
# returns a dict with at least ``speedup_pack`` (K packed vs K sequential runs); it is stored under
# ``result["pack"]`` and ``result["speedup_pack"]``. None: not measured (``speedup_pack`` stays None).
PackBench = Callable[..., dict[str, Any]]


def default_pack_bench() -> PackBench | None:
    """The packing benchmark the CLI uses (``liftbench.perf.pack_bench.bench_pack``)."""

    return bench_pack


@dataclass(frozen=True)
class CudaOptions:
    """Production-path options that exist only on CUDA. ``for_device`` drops them on any other device,
    so CPU runs and tests never touch them (this code is not exercised on the CPU-only machine)."""

    tf32: bool = False  # TF32 tensor-core matmuls (changes float32 numerics slightly)
    bf16: bool = False  # bf16 autocast of forward + loss; the fused function's backward follows it
    cuda_graph: bool = False  # capture the fixed-shape training step once, then replay it

    def for_device(self, device: torch.device) -> CudaOptions:
        return self if device.type == "cuda" else CudaOptions()

    def names(self) -> list[str]:
        return [n for n in ("tf32", "bf16", "cuda_graph") if getattr(self, n)]


def make_production_step(model: Lifter, opt: torch.optim.Optimizer, data: torch.Tensor, target: torch.Tensor,
                         starts: torch.Tensor, offsets: torch.Tensor, target_offsets: torch.Tensor, stats: NormStats,
                         draw: Callable[[], np.ndarray], batch: int, device: torch.device,
                         cuda: CudaOptions) -> Callable[[], None]:
    """The body of the trainer's loop as a callable: draw window positions, gather them from the
    resident tables (inputs at ``offsets``, targets at ``target_offsets``: the whole window or the
    aligned frame, as the contract declares), forward + loss, backward, optimiser step.

    ``opt`` gives the learning rate and AMSGrad flag; the step itself optimises the stack's leaves. With
    ``cuda.cuda_graph`` (CUDA only) the fixed-shape step is captured once, following PyTorch's
    whole-network recipe (warm-up on a side stream, grads set to None before capture, an optimiser
    built with ``capturable=True``); each call then only refills the static row index and replays."""
    cuda = cuda.for_device(device)
    rows = torch.empty(batch, len(offsets), dtype=torch.long, device=device)  # (B, T) static index
    target_rows = torch.empty(batch, len(target_offsets), dtype=torch.long, device=device)  # (B, T_out)

    def refill() -> None:
        anchor = starts[torch.from_numpy(draw()).to(device)][:, None]  # (B, 1)
        rows.copy_(anchor + offsets)  # (B, T)
        target_rows.copy_(anchor + target_offsets)  # (B, T_out)

    # Exactly the trainer's step (train._train with K = 1): the lifter's stack (liftbench.fast), its own
    # dropout generator, one fused Adam over the stack's leaves (the recipe's lr and AMSGrad from ``opt``).

    stack = stack_lifters([model], device)
    group = opt.param_groups[0]
    amsgrad = bool(group.get("amsgrad", False))
    precision = "bf16" if cuda.bf16 else "tf32" if cuda.tf32 else "fp32"
    if not cuda.cuda_graph:
        stack_opt = adam_optimizer(stack.parameters(), group["lr"], device, amsgrad=amsgrad,
                                   weight_decay=group["weight_decay"] if isinstance(opt, torch.optim.AdamW) else None)
        generator = dropout_generator(0, device)

        def step() -> None:
            refill()
            with precision_context(precision, device):
                losses = stack.losses(data[rows][None], target[target_rows][None], [stats], [generator])  # (1,)
            stack_opt.zero_grad(set_to_none=True)
            losses.sum().backward()
            stack_opt.step()
        return step
    # A captured step keeps the optimiser's counters on the device and draws dropout from the global
    # CUDA RNG (graph-safe; a private generator would have to be registered with the graph).
    graph_opt = torch.optim.Adam(stack.parameters(), lr=group["lr"], fused=True, capturable=True, amsgrad=amsgrad)

    def body() -> None:
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda.bf16 else contextlib.nullcontext()
        with autocast:
            losses = stack.losses(data[rows][None], target[target_rows][None], [stats], [None])  # (1,)
        losses.sum().backward()
        graph_opt.step()

    refill()
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):
            graph_opt.zero_grad(set_to_none=True)
            body()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    graph_opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        body()

    def replay() -> None:
        refill()
        graph.replay()
    return replay


def path_flops(model: Lifter, batch: int) -> dict[str, float]:
    """Nominal (paper graph) and executed FLOPs of each path: per training step of ``batch`` windows and
    per evaluated frame (``Lifter.flops_per_frame`` and ``SpeedPath.executed_flops``; NaN if unknown)."""
    nominal = model.flops_per_frame() or {"train": float("nan"), "eval": float("nan")}
    executed = speed_path(model).executed_flops(model)
    train, ev = float(nominal["train"]), float(nominal["eval"])
    return {"train_step": batch * train,
            "train_plain": batch * float(executed.get("train_plain", train)),
            "train_production": batch * float(executed.get("train_production", train)),
            "eval_plain": float(executed.get("eval_plain", ev)),
            "eval_production": float(executed.get("eval_production", ev)),
            "eval_nominal": ev}


def _unit_stats(rep: Representation, device: torch.device) -> NormStats:
    """Identity input statistics and a 100 mm output scale for synthetic data of the representation."""
    d_in, d_out = rep.input_dim, rep.output_dim
    return NormStats(torch.zeros(d_in, device=device), torch.ones(d_in, device=device),
                     torch.zeros(d_out, device=device), torch.full((d_out,), 100.0, device=device))


def _synthetic_sequences(frames: int, length: int = 1000) -> list:
    """Test-split stand-ins for the real evaluator: random 2D/3D poses in sequences of ``length`` frames."""

    rng = np.random.default_rng(1)
    sizes = [length] * (frames // length) + ([frames % length] if frames % length else [])
    return [Sequence("S9", "Walking", i % 4, (rng.standard_normal((n, NUM_JOINTS, 2)) * 100 + 500).astype(np.float32),
                     (rng.standard_normal((n, NUM_JOINTS, 3)) * 100).astype(np.float32), resolution=(1000, 1000))
            for i, n in enumerate(sizes)]


def check_bench_args(model_name: str, params: dict[str, Any] | None = None, **sizes: int | None) -> None:
    """Raise ConfigError for an unknown lifter, a bad model parameter or a size below 1 (None = default)."""
    for name, value in sizes.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"bench: '{name}' must be an integer >= 1, got {value!r}.")

    lifter_contract(model_name, **(params or {}))  # unknown lifter / key / value: ConfigError naming it


def bench_params(models: list[str], assignments: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per-model parameters from ``--set`` items: ``key=value`` goes to every benched lifter whose Config
    has the key, ``<lifter>.key=value`` to that lifter only; a key no benched lifter has is an error."""
    out: dict[str, dict[str, Any]] = {m: {} for m in models}
    for key, value in assignments.items():
        owner, _, field_name = key.rpartition(".")
        targets = [m for m in models if LIFTERS.canonical(m) == LIFTERS.canonical(owner)] if owner else [
            m for m in models if field_name in LIFTERS.get(m).Config.__dataclass_fields__]
        if not targets:
            raise ConfigError(f"bench: --set {key}: no benched lifter ({', '.join(models)}) has a model parameter "
                              f"'{field_name}'; see `liftbench models` for each lifter's keys.")
        for m in targets:
            out[m][field_name] = value
    return out


def bench_model(model_name: str, device: torch.device, params: dict[str, Any] | None = None, batch: int | None = None,
                reps: int = 10, warmup: int = 3, eval_batch: int = 2048, frames: int = 20000,
                peak_gflops: float | None = None, pack_bench: PackBench | None = None,
                cuda: CudaOptions = CudaOptions()) -> dict[str, Any]:
    """Interleaved train-step and evaluation timings of the plain and production paths of one lifter."""

    params = dict(params or {})
    check_bench_args(model_name, params, batch=batch, reps=reps, eval_batch=eval_batch, frames=frames)
    cls = LIFTERS.get(model_name)
    batch = batch or int(cls.train_defaults.get("batch_size", 64))
    models = {}
    for label in ("plain", "production"):
        torch.manual_seed(0)
        models[label] = create_lifter(model_name, **params).to(device).train()
    contract = models["production"].contract
    window, rep = contract.window, contract.representation
    T = window.size
    fast_path = speed_path(models["plain"])
    stats = _unit_stats(rep, device)
    rng = np.random.default_rng(0)
    data_np = rng.standard_normal((frames, rep.input_dim)).astype(np.float32)
    target_np = rng.standard_normal((frames, rep.output_dim)).astype(np.float32)
    data, target = torch.from_numpy(data_np).to(device), torch.from_numpy(target_np).to(device)  # resident
    starts = torch.arange(frames - T + 1, device=device)  # (W,) window starts, as the trainer has them
    offsets = torch.arange(T, device=device)  # (T,)
    t_first, t_len = (0, T) if window.targets == "window" else (window.aligned_position, 1)
    target_offsets = offsets[t_first : t_first + t_len]  # (T_out,): the whole window or the aligned frame
    lr = float(cls.train_defaults.get("lr", 1e-3))
    amsgrad = cls.train_defaults.get("optimizer") == "amsgrad"
    opt_plain = torch.optim.Adam(models["plain"].parameters(), lr=lr)  # defaults: per-tensor loop on CPU
    cuda = cuda.for_device(device)
    trainable = [p for p in models["production"].parameters() if p.requires_grad]
    weight_decay = (cls.train_defaults.get("weight_decay", 0.0) if cls.train_defaults.get("optimizer") == "adamw"
                    else None)
    opt_prod = adam_optimizer(trainable, lr, device, amsgrad=amsgrad, weight_decay=weight_decay)  # the recipe

    def plain_step() -> None:
        m = models["plain"].train()
        picks = rng.integers(0, frames - T + 1, batch)
        xs = torch.stack([torch.from_numpy(data_np[s : s + T]) for s in picks]).to(device)  # DataLoader-style
        ys = torch.stack([torch.from_numpy(target_np[s + t_first : s + t_first + t_len]) for s in picks]).to(device)
        with disabled():
            loss = m.loss(fast_path.plain_forward(m, xs), ys, stats)
        opt_plain.zero_grad(set_to_none=True)
        loss.backward()
        opt_plain.step()

    production_step = make_production_step(models["production"], opt_prod, data, target, starts, offsets,
                                           target_offsets, stats, lambda: rng.integers(0, len(starts), batch), batch,
                                           device, cuda)

    clips = window.alignment == "clip"  # every output of a clip is a prediction: one clip per T frames
    plain_frames = min(16 * batch * (T if clips else 1), frames)  # the plain evaluator is slow: fewer frames
    if clips:  # non-overlapping clips through the model's own clip prediction (its flip TTA included)
        plain_frames -= plain_frames % T
        windows = np.arange(0, plain_frames, T)[:, None] + np.arange(T)[None, :]  # (F / T, T)
    else:  # one window per frame, edges replicated
        windows = np.clip(np.arange(plain_frames)[:, None] + window.offsets[None, :], 0, frames - 1)  # (F, T)
    sequences = _synthetic_sequences(min(frames, 2 * eval_batch))
    eval_frames = sum(s.n_frames for s in sequences)

    @torch.no_grad()
    def plain_eval() -> None:
        m = models["plain"].eval()
        with disabled():
            for a in range(0, len(windows), batch):  # batches of windows (of clips for a clip model)
                xs = torch.stack([torch.from_numpy(data_np[w])
                                  for w in windows[a : a + batch]]).to(device)  # (b, T, D_in)
                m.predict_clips(xs) if clips else fast_path.plain_predict(m, xs)  # (b, T, D_out) / (b, D_out)

    def production_eval() -> None:
        predict_sequences(models["production"], stats, sequences, device, batch_size=eval_batch, ground_truth=False)

    memory = {"plain_train": peak_memory_mb(plain_step, device),
              "production_train": peak_memory_mb(production_step, device),
              "plain_eval": peak_memory_mb(plain_eval, device),
              "production_eval": peak_memory_mb(production_eval, device)}
    with LoadMonitor() as load, precision_context("tf32" if cuda.tf32 else "fp32", device):
        train = interleave({"plain": plain_step, "production": production_step}, reps, warmup, device)
        ev = interleave({"plain": plain_eval, "production": production_eval}, max(3, reps // 3), 1, device)
    f = path_flops(models["production"], batch)
    peak = peak_gflops or matmul_gflops(device)
    out: dict[str, Any] = {
        "model": LIFTERS.canonical(model_name), "device": str(device), "batch": batch, "seq_len": T,
        "model_params": params, "eval_batch": eval_batch, "flops": f, "matmul_gflops": peak,
        "other_cpu_pct": load.other_pct, "threads": torch.get_num_threads(), "cuda_options": cuda.names(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "gflops_note": "GFLOP/s and % of matmul use the FLOPs each path executes; *_nominal use the paper-graph count"}
    for label in ("plain", "production"):
        t, e = train[label].summary(), ev[label].summary()
        n_eval = plain_frames if label == "plain" else eval_frames
        fps = n_eval / (e["median_ms"] / 1e3)
        train_s = t["median_ms"] / 1e3
        out[label] = {
            "train_step": t, "train_windows_per_s": batch / train_s,
            "train_gflops": f[f"train_{label}"] / train_s / 1e9,
            "train_gflops_nominal": f["train_step"] / train_s / 1e9,
            "train_pct_of_matmul": 100 * f[f"train_{label}"] / train_s / 1e9 / peak,
            "eval": e, "eval_frames": n_eval, "eval_frames_per_s": fps,
            "eval_gflops": fps * f[f"eval_{label}"] / 1e9, "eval_gflops_nominal": fps * f["eval_nominal"] / 1e9,
            "eval_pct_of_matmul": 100 * fps * f[f"eval_{label}"] / 1e9 / peak,
            "peak_train_mb": memory[f"{label}_train"], "peak_eval_mb": memory[f"{label}_eval"]}
    out["speedup_train"] = out["plain"]["train_step"]["median_ms"] / out["production"]["train_step"]["median_ms"]
    out["speedup_eval"] = out["production"]["eval_frames_per_s"] / out["plain"]["eval_frames_per_s"]
    out["speedup_pack"] = out["pack_used"] = None
    if pack_bench is not None:
        out["pack"] = pack_bench(model_name=model_name, device=device, batch=batch, params=params, reps=reps)
        out["speedup_pack"] = out["pack"].get("speedup_pack")  # the stacked step as measured, used or not
        out["pack_used"] = out["pack"].get("pack_used")  # whether --pack stacks this lifter on this device
    return out


def flat_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One CSV row per (model, path)."""
    rows = []
    for r in results:
        for v in ("plain", "production"):
            p = r[v]
            rows.append({
                "model": r["model"], "path": v, "device": r["device"], "threads": r["threads"], "batch": r["batch"],
                "seq_len": r["seq_len"], "model_params": json.dumps(r["model_params"], sort_keys=True),
                "eval_batch": r["eval_batch"] if v == "production" else r["batch"],
                **{f"train_{k}": x for k, x in p["train_step"].items()},
                "train_windows_per_s": p["train_windows_per_s"], "train_flops_executed": r["flops"][f"train_{v}"],
                "train_flops_nominal": r["flops"]["train_step"], "train_gflops": p["train_gflops"],
                "train_gflops_nominal": p["train_gflops_nominal"], "train_pct_of_matmul": p["train_pct_of_matmul"],
                "eval_frames_per_s": p["eval_frames_per_s"], "eval_flops_per_frame_executed": r["flops"][f"eval_{v}"],
                "eval_flops_per_frame_nominal": r["flops"]["eval_nominal"], "eval_gflops": p["eval_gflops"],
                "eval_gflops_nominal": p["eval_gflops_nominal"], "eval_pct_of_matmul": p["eval_pct_of_matmul"],
                "peak_train_mb": p["peak_train_mb"], "peak_eval_mb": p["peak_eval_mb"], "peak_rss_mb": r["peak_rss_mb"],
                "matmul_gflops": r["matmul_gflops"], "other_cpu_pct": r["other_cpu_pct"],
                "speedup_train": r["speedup_train"], "speedup_eval": r["speedup_eval"],
                "speedup_pack": r["speedup_pack"], "pack_used": r.get("pack_used")})
    return rows
