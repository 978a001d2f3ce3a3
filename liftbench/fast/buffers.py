"""Recycled storage for large gradient tensors made afresh every training step.

Why: on Linux a fresh tensor of tens of MB is a fresh ``mmap`` (glibc's threshold tops out at 32 MB,
and freed heap tops are trimmed back to the OS), so every step page-faults it in again; on the
project CPU that costs as much as the matmul that fills it. Both hand-written backwards (the fused
seq2seq's big kernels, the packed MLP's stacked weight gradients) take their big outputs from here.
"""

from __future__ import annotations

import torch
from torch import Tensor


class GradBufferPool:
    """Recycles large gradient buffers (e.g. the seq2seq's (K, 2H, 4H) kernels) between training steps.

    Why: a fresh 32 MB tensor is a fresh mmap, and page-faulting it in costs as much as the batched
    weight-gradient matmul that fills it (project VM: 2048x160x4096 at ~60 GFLOP/s into a new tensor,
    ~105 into a recycled one, measured alone). A buffer is handed out again only when no tensor other
    than the pool's own shares its storage (i.e. after ``zero_grad(set_to_none=True)`` freed the
    ``.grad`` made from it); otherwise a new one is made, so accumulating gradients, or holding on to
    an old ``.grad``, stays correct. Each hand-out is a new tensor object on the pooled storage, which
    autograd adopts as ``.grad`` without a copy. CPU only, buffers >= ``min_bytes``."""

    def __init__(self, per_key: int = 8, min_bytes: int = 8 << 20):
        self.per_key, self.min_bytes = per_key, min_bytes
        self.pool: dict[tuple, list[Tensor]] = {}
        self._use_count = getattr(torch._C, "_storage_Use_Count", None)  # private API; absent: no recycling

    def empty_like(self, like: Tensor) -> Tensor:
        return self.empty(like.shape, like.dtype, like.device)

    def empty(self, shape: tuple[int, ...] | torch.Size, dtype: torch.dtype, device: torch.device) -> Tensor:
        """A contiguous uninitialised tensor, on recycled storage when it is big and on the CPU."""
        shape = tuple(shape)
        numel = 1
        for n in shape:
            numel *= n
        if self._use_count is None or torch.device(device).type != "cpu" or numel * dtype.itemsize < self.min_bytes:
            return torch.empty(shape, dtype=dtype, device=device)
        bufs = self.pool.setdefault((shape, dtype), [])
        for buf in bufs:
            if self._use_count(buf.untyped_storage()._cdata) <= 2:  # refs: buf itself + this temporary storage
                return buf.view_as(buf)
        buf = torch.empty(shape, dtype=dtype, device=device)
        if len(bufs) < self.per_key:
            bufs.append(buf)
        return buf.view_as(buf)


GRAD_BUFFERS = GradBufferPool()  # shared by the stacked MLP and the fused seq2seq
