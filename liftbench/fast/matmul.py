"""Per-model matmuls of K stacked models, (K, M, k) @ (K, k, n) -> (K, M, n), at the best rate the CPU gives.

Why not just ``torch.bmm``: on CPU, ``bmm``/``mm`` go to MKL's sgemm, which runs the seq2seq's
per-step shapes (M = 32 rows against a 1024..2048 x 4096 weight) at only 28-45 GFLOP/s on the project
machine, while oneDNN's matmul (``torch.ops.mkldnn._linear_pointwise``, the kernel ``torch.compile``'s
CPU backend uses for linear layers) runs the same products at 55-80 GFLOP/s, and the hoisted
160-row products ~10-25 % faster (measured alone, interleaved: ``liftbench bench`` reports the effect
on the whole step). The weight is passed as it is stored (no per-step reorder into a blocked layout:
that costs more than it saves for weights that change every step).

Exactness: each model's product is ONE call on its own (M, k) and (k, n) slices, whatever K is, so K
stacked models get bitwise the results of K separate K = 1 calls (``tests/test_packing.py``). The
oneDNN and MKL results differ in summation order (~1e-7 relative), so a run is reproducible on a given
machine and thread count, like any float32 training.

Used only for float32 CPU tensors outside autocast and for products that are not tiny; anything else
(CUDA, bf16 autocast, a torch built without oneDNN) takes ``bmm``/``baddbmm``, which is what those
devices do best.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor


@functools.cache
def _onednn_linear():
    """``torch.ops.mkldnn._linear_pointwise`` if this torch has it and it computes a product correctly."""
    try:
        if not torch.backends.mkldnn.is_available():
            return None
        op = torch.ops.mkldnn._linear_pointwise
        a = torch.arange(6.0).view(2, 3)
        w = torch.arange(12.0).view(3, 4)
        if not torch.equal(op(a, w.t(), None, "none", [], ""), a @ w):  # private op: check it, don't trust it
            return None
        return op
    except (AttributeError, RuntimeError):
        return None


# Below this many multiply-adds per model the oneDNN call's fixed cost (~100 us here) exceeds MKL's
# whole product (e.g. the 32 x 1024 x 48 output layer: 40 us in bmm, 135 us through oneDNN).
_MIN_ONEDNN_MACS = 1 << 22


def _use_onednn(a: Tensor, b: Tensor) -> bool:
    return (a.device.type == "cpu" and a.dtype == torch.float32 and b.dtype == torch.float32
            and a.shape[1] * a.shape[2] * b.shape[2] >= _MIN_ONEDNN_MACS
            and not torch.is_autocast_enabled("cpu") and _onednn_linear() is not None)


def onednn_enabled() -> bool:
    """Whether float32 CPU products go through oneDNN here (``liftbench bench`` reports it)."""
    return _onednn_linear() is not None


def matmul(a: Tensor, b: Tensor, add: Tensor | None = None) -> Tensor:
    """``add + a @ b`` per model: a (K, M, k), b (K, k, n) (views allowed), add broadcastable to (K, M, n)."""
    if not _use_onednn(a, b):
        return torch.bmm(a, b) if add is None else torch.baddbmm(add, a, b)
    op = _onednn_linear()
    # linear(x, W) = x @ W^T, so the weight argument is b[k]^T: a view, no copy.
    outs = [op(a[k], b[k].t(), None, "none", [], "") for k in range(a.shape[0])]  # K x (M, n)
    out = outs[0].unsqueeze(0) if len(outs) == 1 else torch.stack(outs)  # (K, M, n)
    return out if add is None else out.add_(add)
