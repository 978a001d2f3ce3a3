"""`liftbench bench`: plain eager implementation vs liftbench's production path, measured in ONE process.

Variants are interleaved rep by rep (plain, production, plain, ...) so the shared machine's drift hits
both alike; we report medians with min/max and the ratios, analytic FLOPs, achieved GFLOP/s and the
fraction of this run's own measured matmul throughput. The machine's other load during the run is
measured from /proc/stat and reported, because a second busy process distorts timings 5-20x.

* plain: the readable model, inside ``liftbench.fast.disabled()`` (the model file's ``forward``, or
  the forward its speed path names as ``plain_forward``: e.g. the dilated TCN on single-frame windows),
  ``torch.optim.Adam`` defaults, DataLoader-style batch assembly (per-sample slices stacked);
  evaluation at the paper batch size, one window per frame.
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
import ctypes
import os
import resource
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from liftbench.data.normalize import NormStats, Representation
from liftbench.data.skeleton import NUM_JOINTS
from liftbench.errors import ConfigError
from liftbench.fast import disabled, speed_path
from liftbench.models import LIFTERS, Lifter, create_lifter
from liftbench.train import adam_optimizer, precision_context

# Hook for variant packing: ``pack_bench(model_name=, device=, batch=, params=, reps=)``
# returns a dict with at least ``speedup_pack`` (K packed vs K sequential runs); it is stored under
# ``result["pack"]`` and ``result["speedup_pack"]``. None: not measured (``speedup_pack`` stays None).
PackBench = Callable[..., dict[str, Any]]


def default_pack_bench() -> PackBench | None:
    """The packing benchmark the CLI uses: ``liftbench.packing.pack_bench`` once that module exists."""
    try:
        from liftbench.packing import pack_bench  # type: ignore[import-not-found]
    except ImportError:
        return None
    return pack_bench


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


def make_production_step(model, opt: torch.optim.Optimizer, data: torch.Tensor, target: torch.Tensor,
                         starts: torch.Tensor, offsets: torch.Tensor, stats: NormStats,
                         draw: Callable[[], np.ndarray], batch: int, device: torch.device,
                         cuda: CudaOptions) -> Callable[[], None]:
    """The body of ``train.fit``'s loop as a callable: draw window positions, gather them from the
    resident tables, forward + loss, backward, optimiser step.

    With ``cuda.cuda_graph`` (CUDA only) the fixed-shape step is captured once, following PyTorch's
    whole-network recipe (warm-up on a side stream, grads set to None before capture, an optimiser
    built with ``capturable=True``); each call then only refills the static row index and replays."""
    cuda = cuda.for_device(device)
    rows = torch.empty(batch, len(offsets), dtype=torch.long, device=device)  # (B, T) static index

    def refill() -> None:
        rows.copy_(starts[torch.from_numpy(draw()).to(device)][:, None] + offsets)  # (B, T)

    def body() -> None:
        model.train()
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda.bf16 else contextlib.nullcontext()
        with autocast:
            loss = model.loss(model(data[rows]), target[rows], stats)  # (B, T, 32) -> scalar
        loss.backward()
        opt.step()

    if not cuda.cuda_graph:
        # Exactly the trainer's step (train._train with K = 1): the lifter's stack (stacked MLP /
        # fused seq2seq), its own dropout generator, one fused Adam over the stack's leaves.
        from liftbench.models.stack import dropout_generator, stack_lifters

        stack = stack_lifters([model], device)
        stack_opt = adam_optimizer(stack.parameters(), opt.param_groups[0]["lr"], device)
        generator = dropout_generator(0, device)
        precision = "bf16" if cuda.bf16 else "tf32" if cuda.tf32 else "fp32"

        def step() -> None:
            refill()
            with precision_context(precision, device):
                losses = stack.losses(data[rows][None], target[rows][None], [stats], [generator])  # (1,)
            stack_opt.zero_grad(set_to_none=True)
            losses.sum().backward()
            stack_opt.step()
        return step
    refill()
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            body()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        body()

    def replay() -> None:
        refill()
        graph.replay()
    return replay


def _cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine from /proc/stat (0, 0 where unavailable)."""
    try:
        with open("/proc/stat") as fh:
            parts = [float(x) for x in fh.readline().split()[1:]]
        idle = parts[3] + (parts[4] if len(parts) > 4 else 0.0)
        return sum(parts) - idle, sum(parts)
    except (OSError, ValueError, IndexError):
        return 0.0, 0.0


class LoadMonitor:
    """Share of the machine's CPU time used by OTHER processes while the benchmark ran (percent)."""

    def __enter__(self) -> LoadMonitor:
        self.busy0, self.total0 = _cpu_times()
        self.own0 = sum(os.times()[:4])
        return self

    def __exit__(self, *exc: Any) -> None:
        busy1, total1 = _cpu_times()
        own = (sum(os.times()[:4]) - self.own0) * os.sysconf("SC_CLK_TCK")
        total = total1 - self.total0
        self.other_pct = 100.0 * max(0.0, (busy1 - self.busy0) - own) / total if total > 0 else float("nan")


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def peak_memory_mb(fn: Callable[[], None], device: torch.device) -> float:
    """Peak memory one call of ``fn`` needs above what was in use before it (MiB).

    CUDA: the allocator's own peak. CPU: resident-set size sampled every 2 ms by a thread, after
    returning freed heap to the OS (glibc ``malloc_trim``) so the baseline is honest; approximate."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    base, peak, done = _rss_bytes(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    fn()
    done.set()
    thread.join()
    return max(0, max(peak[0], _rss_bytes()) - base) / 2**20


@dataclass
class Timing:
    samples: list[float] = field(default_factory=list)  # seconds

    def summary(self) -> dict[str, float]:
        ms = [s * 1e3 for s in self.samples]
        return {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms), "n": len(ms)}


def interleave(fns: dict[str, Callable[[], None]], reps: int, warmup: int, device: torch.device) -> dict[str, Timing]:
    """Time each callable ``reps`` times, alternating between them, after ``warmup`` untimed calls each."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    sync()
    out = {k: Timing() for k in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync()
            out[name].samples.append(time.perf_counter() - t0)
    return out


def matmul_gflops(device: torch.device, size: int = 2048, reps: int = 5) -> float:
    """This run's own fp32 matmul throughput (GFLOP/s), the denominator of '% of matmul peak'."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    t = interleave({"mm": lambda: torch.mm(a, b)}, reps, 2, device)["mm"]
    return 2 * size**3 / statistics.median(t.samples) / 1e9


def flops(model_name: str, hidden: int, batch: int, seq_len: int) -> dict[str, float]:
    """Analytic matmul FLOPs: nominal (paper graph) and executed by each path, per train step / eval frame."""
    h, T, B = hidden, seq_len, batch
    if model_name == "mlp":
        fwd = 2 * (INPUT_DIM * h + 4 * h * h + h * OUTPUT_DIM)
        step = B * (3 * fwd - 2 * INPUT_DIM * h)  # fwd + dgrad + wgrad per GEMM, no dgrad into the input
        return {"forward_per_window": fwd, "train_step": step, "train_plain": step, "train_production": step,
                "eval_plain": fwd, "eval_production": fwd}
    gate = 2 * (2 * h) * (4 * h)  # one [x, h] @ W per window and step
    enc_in, dec_in, dec_out = 2 * INPUT_DIM * h, 2 * OUTPUT_DIM * h, 2 * h * OUTPUT_DIM
    fwd = T * (enc_in + gate + dec_in + gate + dec_out)
    step = B * (3 * fwd - T * enc_in)  # notes section 2
    # plain autograd also skips the dgrad into the START token; fused additionally skips the encoder's
    # t = 0 h-half (h = 0): forward, dgrad and wgrad of (B, H) x (H, 4H).
    train_plain = step - B * dec_in
    train_prod = train_plain - 3 * B * (gate // 2)
    # causal eval (Seq2SeqLifter.predict_frames), per frame: the folded encoder input half (32 -> 4H) once
    # per frame, the recurrent h @ W_h per window and step, the folded decoder input half (48 -> 4H);
    # the once-per-call weight fold (< 1 GFLOP) is not counted.
    fold_enc, fold_dec = 2 * INPUT_DIM * 4 * h, 2 * OUTPUT_DIM * 4 * h
    eval_prod = fold_enc + (T - 1) * (gate // 2) + T * (fold_dec + gate // 2 + dec_out)
    return {"forward_per_window": fwd, "train_step": step, "train_plain": train_plain, "train_production": train_prod,
            "eval_plain": fwd, "eval_production": eval_prod}


def _unit_stats(device: torch.device) -> NormStats:
    return NormStats(torch.zeros(INPUT_DIM, device=device), torch.ones(INPUT_DIM, device=device),
                     torch.zeros(OUTPUT_DIM, device=device), torch.full((OUTPUT_DIM,), 100.0, device=device))


def _synthetic_sequences(frames: int, length: int = 1000) -> list:
    """Test-split stand-ins for the real evaluator: random 2D/3D poses in sequences of ``length`` frames."""
    from liftbench.data.dataset import Sequence

    rng = np.random.default_rng(1)
    sizes = [length] * (frames // length) + ([frames % length] if frames % length else [])
    return [Sequence("S9", "Walking", i % 4, (rng.standard_normal((n, NUM_JOINTS, 2)) * 100).astype(np.float32),
                     (rng.standard_normal((n, NUM_JOINTS, 3)) * 100).astype(np.float32)) for i, n in enumerate(sizes)]


def check_bench_args(model_name: str, **sizes: int | None) -> None:
    """Raise ConfigError for an unknown lifter or a size below 1 (None means the default)."""
    from liftbench.models import LIFTERS

    LIFTERS.get(model_name)  # ConfigError naming the registered lifters
    for name, value in sizes.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"bench: '{name}' must be an integer >= 1, got {value!r}.")


def bench_model(model_name: str, device: torch.device, batch: int | None = None, seq_len: int | None = None,
                hidden: int = 1024, reps: int = 10, warmup: int = 3, eval_batch: int = 2048, frames: int = 20000,
                peak_gflops: float | None = None, pack_bench: PackBench | None = None,
                cuda: CudaOptions = CudaOptions()) -> dict[str, Any]:
    """Interleaved train-step and evaluation timings of the plain and production paths of one model."""
    from liftbench.evaluate import predict_sequences
    from liftbench.models import LIFTERS

    check_bench_args(model_name, batch=batch, seq_len=seq_len, hidden=hidden, reps=reps,
                     eval_batch=eval_batch, frames=frames)
    cls = LIFTERS.get(model_name)
    batch = batch or cls.train_defaults["batch_size"]
    params: dict[str, Any] = {"hidden_size": hidden}
    if model_name == "seq2seq":
        params["seq_len"] = seq_len or 5
    has_impl = "implementation" in cls.Config.__dataclass_fields__
    models = {}
    for label, impl in (("plain", "plain"), ("production", "fast")):
        torch.manual_seed(0)
        models[label] = create_lifter(model_name, **params, **({"implementation": impl} if has_impl else {}))
        models[label].to(device).train()
    T = models["production"].window
    stats = _unit_stats(device)
    rng = np.random.default_rng(0)
    data_np = rng.standard_normal((frames, INPUT_DIM)).astype(np.float32)
    target_np = rng.standard_normal((frames, OUTPUT_DIM)).astype(np.float32)
    data, target = torch.from_numpy(data_np).to(device), torch.from_numpy(target_np).to(device)  # resident
    starts = torch.arange(frames - T + 1, device=device)  # (W,) window starts, as train.fit has them
    opt_plain = torch.optim.Adam(models["plain"].parameters(), lr=1e-5)  # defaults: per-tensor loop on CPU
    cuda = cuda.for_device(device)
    if cuda.cuda_graph:  # a captured optimiser step must keep its step counters on the device
        opt_prod = torch.optim.Adam(models["production"].parameters(), lr=1e-5, fused=True, capturable=True)
    else:
        opt_prod = make_optimizer(models["production"], 1e-5, device)  # fused Adam, as train.fit
    offsets = torch.arange(T, device=device)

    def plain_step() -> None:
        m = models["plain"].train()
        picks = rng.integers(0, frames - T + 1, batch)
        xs = torch.stack([torch.from_numpy(data_np[s : s + T]) for s in picks]).to(device)  # DataLoader-style
        ys = torch.stack([torch.from_numpy(target_np[s : s + T]) for s in picks]).to(device)
        loss = m.loss(m(xs), ys, stats)
        opt_plain.zero_grad(set_to_none=True)
        loss.backward()
        opt_plain.step()

    production_step = make_production_step(models["production"], opt_prod, data, target, starts, offsets, stats,
                                           lambda: rng.integers(0, len(starts), batch), batch, device, cuda)

    plain_frames = min(16 * batch, frames)  # the plain evaluator is slow: fewer frames; frames/s is compared
    causal = (torch.arange(plain_frames)[:, None] + torch.arange(-T + 1, 1)).clamp(min=0).numpy()  # (F, T)
    sequences = _synthetic_sequences(min(frames, 2 * eval_batch))
    eval_frames = sum(s.n_frames for s in sequences)

    @torch.no_grad()
    def plain_eval() -> None:
        m = models["plain"].eval()
        for a in range(0, plain_frames, batch):
            xs = torch.stack([torch.from_numpy(data_np[i]) for i in causal[a : a + batch]]).to(device)
            m(xs)[:, -1]

    def production_eval() -> None:
        predict_sequences(models["production"], stats, sequences, device, batch_size=eval_batch)

    memory = {"plain_train": peak_memory_mb(plain_step, device), "production_train": peak_memory_mb(production_step, device),
              "plain_eval": peak_memory_mb(plain_eval, device), "production_eval": peak_memory_mb(production_eval, device)}
    with LoadMonitor() as load, precision_context("tf32" if cuda.tf32 else "fp32", device):
        train = interleave({"plain": plain_step, "production": production_step}, reps, warmup, device)
        ev = interleave({"plain": plain_eval, "production": production_eval}, max(3, reps // 3), 1, device)
    f = flops(model_name, hidden, batch, T)
    peak = peak_gflops or matmul_gflops(device)
    out: dict[str, Any] = {
        "model": model_name, "device": str(device), "batch": batch, "seq_len": T, "hidden": hidden,
        "eval_batch": eval_batch, "flops": f, "matmul_gflops": peak, "other_cpu_pct": load.other_pct,
        "threads": torch.get_num_threads(), "cuda_options": cuda.names(), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "gflops_note": "GFLOP/s and % of matmul use the FLOPs each path executes; *_nominal use the paper-graph count"}
    for label in ("plain", "production"):
        t, e = train[label].summary(), ev[label].summary()
        n_eval = plain_frames if label == "plain" else eval_frames
        fps = n_eval / (e["median_ms"] / 1e3)
        train_s = t["median_ms"] / 1e3
        out[label] = {
            "train_step": t, "train_windows_per_s": batch / train_s,
            "train_gflops": f[f"train_{label}"] / train_s / 1e9, "train_gflops_nominal": f["train_step"] / train_s / 1e9,
            "train_pct_of_matmul": 100 * f[f"train_{label}"] / train_s / 1e9 / peak,
            "eval": e, "eval_frames": n_eval, "eval_frames_per_s": fps,
            "eval_gflops": fps * f[f"eval_{label}"] / 1e9, "eval_gflops_nominal": fps * f["eval_plain"] / 1e9,
            "eval_pct_of_matmul": 100 * fps * f[f"eval_{label}"] / 1e9 / peak,
            "peak_train_mb": memory[f"{label}_train"], "peak_eval_mb": memory[f"{label}_eval"]}
    out["speedup_train"] = out["plain"]["train_step"]["median_ms"] / out["production"]["train_step"]["median_ms"]
    out["speedup_eval"] = out["production"]["eval_frames_per_s"] / out["plain"]["eval_frames_per_s"]
    out["speedup_pack"] = out["pack_used"] = None
    if pack_bench is not None:
        out["pack"] = pack_bench(model_name=model_name, device=device, batch=batch, seq_len=T, hidden=hidden, reps=reps)
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
                "seq_len": r["seq_len"], "hidden": r["hidden"], "eval_batch": r["eval_batch"] if v == "production" else r["batch"],
                **{f"train_{k}": x for k, x in p["train_step"].items()},
                "train_windows_per_s": p["train_windows_per_s"], "train_flops_executed": r["flops"][f"train_{v}"],
                "train_flops_nominal": r["flops"]["train_step"], "train_gflops": p["train_gflops"],
                "train_gflops_nominal": p["train_gflops_nominal"], "train_pct_of_matmul": p["train_pct_of_matmul"],
                "eval_frames_per_s": p["eval_frames_per_s"], "eval_flops_per_frame_executed": r["flops"][f"eval_{v}"],
                "eval_flops_per_frame_nominal": r["flops"]["eval_plain"], "eval_gflops": p["eval_gflops"],
                "eval_gflops_nominal": p["eval_gflops_nominal"], "eval_pct_of_matmul": p["eval_pct_of_matmul"],
                "peak_train_mb": p["peak_train_mb"], "peak_eval_mb": p["peak_eval_mb"], "peak_rss_mb": r["peak_rss_mb"],
                "matmul_gflops": r["matmul_gflops"], "other_cpu_pct": r["other_cpu_pct"],
                "speedup_train": r["speedup_train"], "speedup_eval": r["speedup_eval"], "speedup_pack": r["speedup_pack"], "pack_used": r.get("pack_used")})
    return rows
