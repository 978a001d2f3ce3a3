"""The packing benchmark: one packed K-model training step against K sequential single-model steps.

Why: whether packing pays off depends on the device and the width (``ModuleStack.packs_on`` records
what this measured on the project machine); ``liftbench bench`` reports the measured ``speedup_pack``
next to whether ``--pack`` actually stacks that lifter there. Both paths are the production code
(``liftbench.fast`` stacks, K = 1 for the sequential steps), interleaved in one process.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from liftbench.data.normalize import NormStats
from liftbench.fast.stack import FunctionalStack, ModuleStack, dropout_generator, stack_class, stack_lifters
from liftbench.models import LIFTERS, create_lifter
from liftbench.perf.measure import LoadMonitor, interleave


def bench_pack(model_name: str, device: torch.device | str = "cpu", K: int = 4, params: dict[str, Any] | None = None,
               batch: int | None = None, reps: int = 10, warmup: int = 2, frames: int = 20000) -> dict[str, Any]:
    """One packed K-model training step vs K sequential single-model steps (same production code, K = 1),
    interleaved in one process: median/min/max ms and ``speedup_pack`` = sequential / packed.

    ``params`` are the lifter's Config overrides (its paper defaults otherwise); a lifter whose speed
    path has no stack is reported as not packing (``speedup_pack`` None) instead of being measured."""
    device = torch.device(device)
    params = dict(params or {})
    cls = LIFTERS.get(model_name)
    batch = batch or int(cls.train_defaults.get("batch_size", 64))
    stack_cls = stack_class(cls)
    base = {"model": LIFTERS.canonical(model_name), "device": str(device), "K": K, "model_params": params,
            "batch": batch}
    if stack_cls is FunctionalStack:
        return {**base, "speedup_pack": None, "pack_used": False,
                "note": "no stacked implementation: trains one by one"}
    models = []
    for seed in range(K):
        torch.manual_seed(seed)
        models.append(create_lifter(model_name, **params).to(device))
    window, rep = models[0].contract.window, models[0].contract.representation
    T = window.size
    t_first, t_len = (0, T) if window.targets == "window" else (window.aligned_position, 1)
    d_in, d_out = rep.input_dim, rep.output_dim
    stats = [NormStats(torch.zeros(d_in, device=device), torch.ones(d_in, device=device),
                       torch.zeros(d_out, device=device), torch.full((d_out,), 100.0, device=device))] * K
    rng = np.random.default_rng(0)
    data = torch.from_numpy(rng.standard_normal((frames, d_in)).astype(np.float32)).to(device)
    target = torch.from_numpy(rng.standard_normal((frames, d_out)).astype(np.float32)).to(device)
    offsets = torch.arange(T, device=device)  # (T,)
    gens = [dropout_generator(s, device) for s in range(K)]
    packed = stack_lifters(models, device)
    singles = [stack_lifters([m], device) for m in models]
    opts = {id(s): torch.optim.Adam(s.parameters(), lr=1e-5, fused=True) if device.type in ("cpu", "cuda")
            else torch.optim.Adam(s.parameters(), lr=1e-5) for s in [packed, *singles]}

    def step(stack: ModuleStack, gen: list[torch.Generator]) -> None:
        rows = torch.randint(0, frames - T, (stack.K, batch), device=device)[..., None] + offsets  # (K, B, T)
        opt = opts[id(stack)]
        losses = stack.losses(data[rows], target[rows[..., t_first : t_first + t_len]], stats[: stack.K], gen)  # (K,)
        opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        opt.step()

    def sequential() -> None:
        for k, s in enumerate(singles):
            step(s, [gens[k]])

    with LoadMonitor() as load:
        t = interleave({"sequential": sequential, "packed": lambda: step(packed, gens)}, reps, warmup, device)
    seq, pk = t["sequential"].summary(), t["packed"].summary()
    full_params = dataclasses.asdict(models[0].config)  # packs_on reads widths with their defaults filled in
    return {**base, "seq_len": T, "sequential": seq, "packed": pk, "speedup_pack": seq["median_ms"] / pk["median_ms"],
            "other_cpu_pct": load.other_pct, "pack_used": stack_cls.packs_on(full_params, device.type),
            "per_model_ms": {"sequential": seq["median_ms"] / K, "packed": pk["median_ms"] / K}}
