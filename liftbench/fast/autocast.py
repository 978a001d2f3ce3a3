"""Autocast-aware decorators for liftbench's custom autograd functions (any device type).

``torch.amp.custom_fwd``/``custom_bwd`` are bound to one device type; liftbench's hand-written
backwards (``fast.mlp._StackedMLPFunction``, ``seq2seq_fused._Seq2SeqFunction``) must follow bf16 autocast
(``train.precision``) on CUDA and on CPU (where the tests exercise it) alike.
"""

from __future__ import annotations

import contextlib
import functools

import torch
from torch import Tensor


def autocast_forward(forward):
    """``torch.amp.custom_fwd`` for whichever device the inputs are on (that one is fixed to one device type).

    Records the autocast state the forward ran under, so ``autocast_backward`` can run the hand-written
    backward in the same state: with bf16 autocast (``train.precision``), the saved activations are bf16
    and the backward's matmuls must cast like the forward's did."""
    @functools.wraps(forward)
    def wrapper(ctx, *args):
        dev = next((a.device.type for a in args if isinstance(a, Tensor)), "cpu")
        ctx.autocast_state = (dev, torch.get_autocast_dtype(dev)) if torch.is_autocast_enabled(dev) else None
        return forward(ctx, *args)
    return wrapper


def autocast_backward(backward):
    """Run a custom backward under the autocast state recorded by ``autocast_forward``."""
    @functools.wraps(backward)
    def wrapper(ctx, *grads):
        state = ctx.autocast_state
        with torch.autocast(state[0], dtype=state[1]) if state else contextlib.nullcontext():
            return backward(ctx, *grads)
    return wrapper
