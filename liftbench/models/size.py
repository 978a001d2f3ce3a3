"""Refuse a lifter configuration whose training state cannot fit in this machine's memory, before any work.

A typo such as ``hidden_size=1000000`` asked torch for terabytes and died with an allocator traceback (or
swapped the machine to a halt). The parameter count is taken on torch's meta device, so nothing is
allocated, and it works for any registered lifter (no per-lifter formula).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from liftbench.errors import ConfigError
from liftbench.models import LIFTERS
from liftbench.models.base import trainable_parameters

# Training holds each parameter 4 times in fp32: weights, gradients and Adam's two moments.
TRAIN_BYTES_PER_PARAMETER = 16
FALLBACK_MEMORY_LIMIT = 2**40  # where the OS does not tell the physical memory (1 TiB)


def physical_memory_bytes() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return FALLBACK_MEMORY_LIMIT


def count_parameters(model_name: str, lifter_cfg: Any) -> int | None:
    """Trainable parameters of the configured lifter, counted on torch's meta device (no memory is
    allocated, so a typo such as hidden_size=1000000 costs nothing). None if the lifter cannot be built
    on the meta device (a plug-in using operations meta tensors lack): then it is not checked."""
    import torch


    try:
        with torch.device("meta"):
            model = LIFTERS.get(model_name)(lifter_cfg)
    except RuntimeError as exc:
        if "overflow" in str(exc).lower():
            return 2**63  # more elements than a tensor can index
        return None
    except Exception:  # noqa: BLE001 - unsupported on meta: leave the check to the real build
        return None
    return trainable_parameters(model)


def check_model_size(model_name: str, lifter_cfg: Any, limit_bytes: int | None = None) -> None:
    """Refuse a model whose training state cannot fit in this machine's memory, naming its size."""
    n = count_parameters(model_name, lifter_cfg)
    if n is None:
        return
    limit = physical_memory_bytes() if limit_bytes is None else limit_bytes
    need = n * TRAIN_BYTES_PER_PARAMETER
    if need > limit:
        defaults = LIFTERS.get(model_name).Config()
        changed = ", ".join(f"{f.name}={getattr(lifter_cfg, f.name)}" for f in dataclasses.fields(lifter_cfg)
                            if getattr(lifter_cfg, f.name) != getattr(defaults, f.name)) or "defaults"
        raise ConfigError(f"model '{model_name}' ({changed}) has {n:,} parameters: training needs about "
                          f"{_gib(need)} (fp32 weights, gradients and Adam moments), more than this machine's "
                          f"{_gib(limit)} of memory; choose smaller sizes (paper defaults: {_sizes(defaults)}).")


def _sizes(cfg: Any) -> str:
    """The integer fields of a lifter Config (its sizes), e.g. 'hidden_size=1024, seq_len=5'."""
    return ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(cfg).items()
                     if isinstance(v, int) and not isinstance(v, bool))


def _gib(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:,.1f} GiB"
