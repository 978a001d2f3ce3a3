"""Timing primitives shared by ``liftbench bench`` and the packing benchmark: interleaved repetitions,
the machine's other load, peak memory, and this run's own matmul throughput.

Why a module of its own: both ``bench.py`` and ``pack_bench.py`` time things the same way, and
neither should import the other (they used to, in a cycle through ``packing.py``).
"""

from __future__ import annotations

import ctypes
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


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
