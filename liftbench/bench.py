"""`liftbench bench`: plain eager implementation vs liftbench's production path, measured in ONE process.

Variants are interleaved step by step (plain, fast, plain, fast, ...) so the shared machine's drift hits
both alike; we report medians with min/max and the ratios, plus analytic FLOPs, achieved GFLOP/s and the
fraction of this run's own measured matmul throughput. The machine's other load during the run is
measured from /proc/stat and reported, because a second busy process distorts timings 5-20x.

* plain: the obvious implementation (``implementation="plain"``: Python loop over time, one layer-norm
  call per gate), ``torch.optim.Adam`` defaults, DataLoader-style batch assembly (per-sample slices
  stacked), evaluation at the paper batch size through the full forward.
* production: the fast cell (hoisted input projection, grouped layer norm), fused Adam, the training
  set resident on the device as one tensor gathered by indexing, evaluation in large batches.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from liftbench.data.skeleton import INPUT_DIM, OUTPUT_DIM
from liftbench.models import create_lifter
from liftbench.models.base import NormStats
from liftbench.train import make_optimizer


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
    """Analytic matmul FLOPs (cpu_performance_notes.md section 2): forward per window, train step per batch."""
    h = hidden
    if model_name == "mlp":
        fwd = 2 * (INPUT_DIM * h + 4 * h * h + h * OUTPUT_DIM)
        step = batch * (3 * fwd - 2 * INPUT_DIM * h)
        return {"forward_per_window": fwd, "train_step": step, "eval_per_frame": fwd}
    fwd = seq_len * 2 * ((INPUT_DIM * h + 2 * h * 4 * h) + (OUTPUT_DIM * h + 2 * h * 4 * h + h * OUTPUT_DIM))
    step = batch * (3 * fwd - seq_len * 2 * INPUT_DIM * h)
    return {"forward_per_window": fwd, "train_step": step, "eval_per_frame": fwd}


def _unit_stats(device: torch.device) -> NormStats:
    return NormStats(torch.zeros(INPUT_DIM, device=device), torch.ones(INPUT_DIM, device=device),
                     torch.zeros(OUTPUT_DIM, device=device), torch.full((OUTPUT_DIM,), 100.0, device=device))


def bench_model(model_name: str, device: torch.device, batch: int | None = None, seq_len: int | None = None,
                hidden: int = 1024, reps: int = 10, warmup: int = 3, eval_batch: int = 1024, frames: int = 20000,
                peak_gflops: float | None = None) -> dict[str, Any]:
    """Interleaved train-step and evaluation timings of the plain and production paths of one model."""
    from liftbench.models import LIFTERS

    cls = LIFTERS.get(model_name)
    batch = batch or cls.train_defaults["batch_size"]
    params: dict[str, Any] = {"hidden_size": hidden}
    if model_name == "seq2seq":
        params["seq_len"] = seq_len or 5
    torch.manual_seed(0)
    variants = {}
    for label, impl in (("plain", "plain"), ("fast", "fast")):
        p = dict(params)
        if "implementation" in {f for f in cls.Config.__dataclass_fields__}:
            p["implementation"] = impl
        torch.manual_seed(0)
        variants[label] = create_lifter(model_name, **p).to(device).train()
    T = variants["fast"].window
    stats = _unit_stats(device)
    rng = np.random.default_rng(0)
    data_np = rng.standard_normal((frames, INPUT_DIM)).astype(np.float32)
    target_np = rng.standard_normal((frames, OUTPUT_DIM)).astype(np.float32)
    data, target = torch.from_numpy(data_np).to(device), torch.from_numpy(target_np).to(device)
    opt_plain = torch.optim.Adam(variants["plain"].parameters(), lr=1e-5)
    opt_fast = make_optimizer(variants["fast"], 1e-5, device)
    offsets = torch.arange(T, device=device)

    def plain_step() -> None:
        starts = rng.integers(0, frames - T, batch)
        xs = torch.stack([torch.from_numpy(data_np[s : s + T]) for s in starts]).to(device)  # DataLoader-style
        ys = torch.stack([torch.from_numpy(target_np[s : s + T]) for s in starts]).to(device)
        m = variants["plain"]
        loss = m.loss(m(xs), ys, stats)
        opt_plain.zero_grad(set_to_none=True)
        loss.backward()
        opt_plain.step()

    def fast_step() -> None:
        rows = torch.randint(0, frames - T, (batch,), device=device)[:, None] + offsets  # (B, T) resident gather
        m = variants["fast"]
        loss = m.loss(m(data[rows]), target[rows], stats)
        opt_fast.zero_grad(set_to_none=True)
        loss.backward()
        opt_fast.step()

    eval_frames = min(frames, 8 * eval_batch)
    causal = (torch.arange(eval_frames, device=device)[:, None] + torch.arange(-T + 1, 1, device=device)).clamp(min=0)

    @torch.no_grad()
    def plain_eval() -> None:
        m = variants["plain"].eval()
        for a in range(0, eval_frames, batch):
            idx = causal[a : a + batch].cpu().numpy()
            xs = torch.stack([torch.from_numpy(data_np[i]) for i in idx]).to(device)
            m(xs)[:, -1]
        m.train()

    @torch.no_grad()
    def fast_eval() -> None:
        m = variants["fast"].eval()
        for a in range(0, eval_frames, eval_batch):
            m.predict_last(data[causal[a : a + eval_batch]])
        m.train()

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with LoadMonitor() as load:
        train = interleave({"plain": plain_step, "fast": fast_step}, reps, warmup, device)
        ev = interleave({"plain": plain_eval, "fast": fast_eval}, max(3, reps // 3), 1, device)
    f = flops(model_name, hidden, batch, T)
    peak = peak_gflops or matmul_gflops(device)
    out: dict[str, Any] = {"model": model_name, "device": str(device), "batch": batch, "seq_len": T, "hidden": hidden,
                           "flops_train_step": f["train_step"], "matmul_gflops": peak, "other_cpu_pct": load.other_pct,
                           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                           "rss_growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024}
    if device.type == "cuda":
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    for label in ("plain", "fast"):
        t = train[label].summary()
        e = ev[label].summary()
        gflops = f["train_step"] / (t["median_ms"] / 1e3) / 1e9
        eval_fps = eval_frames / (e["median_ms"] / 1e3)
        out[label] = {"train_step": t, "train_gflops": gflops, "train_pct_of_matmul": 100 * gflops / peak,
                      "eval": e, "eval_frames_per_s": eval_fps,
                      "eval_gflops": eval_fps * f["eval_per_frame"] / 1e9,
                      "eval_pct_of_matmul": 100 * eval_fps * f["eval_per_frame"] / 1e9 / peak}
    out["speedup_train"] = out["plain"]["train_step"]["median_ms"] / out["fast"]["train_step"]["median_ms"]
    out["speedup_eval"] = out["fast"]["eval_frames_per_s"] / out["plain"]["eval_frames_per_s"]
    out["speedup_pack"] = None  # variant packing is not implemented yet (see README)
    return out
