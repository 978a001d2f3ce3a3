"""The VideoPose3D TCN's speed path: only what ``liftbench bench`` needs to time its plain path.

Why so little: the model file already trains through the strided single-frame model (part of the
published recipe: its BatchNorm statistics are those of ``TemporalModelOptimized1f``) and evaluates
whole videos in its own ``predict_frames`` (the published evaluation). The "plain" path the bench
compares against is the obvious one: the dilated model on one receptive-field window per frame, with
the same flip test-time augmentation; this class names it and counts its FLOPs.
"""

from __future__ import annotations

import torch
from torch import nn

from liftbench.fast.base import SpeedPath
from liftbench.models.tcn import TemporalConvLifter


def dilated_window_flops(model: TemporalConvLifter) -> float:
    """Conv FLOPs of one dilated pass over one receptive-field window (B = 1): each layer computes all
    the positions the window leaves it (RF - W0 + 1 after the expand conv, minus 2 pad per block)."""
    rf = model.receptive_field
    positions = rf - model.expand_conv.weight.shape[-1] + 1
    total = 2 * model.expand_conv.weight.numel() * positions
    for i, pad in enumerate(model.pads):
        positions -= 2 * pad
        total += 2 * (model.layers_conv[2 * i].weight.numel() + model.layers_conv[2 * i + 1].weight.numel()) * positions
    return float(total + 2 * model.shrink.weight.numel() * positions)


class TemporalConvSpeed(SpeedPath):
    """``TemporalConvLifter.speed_path``: no stack (``FunctionalStack`` runs the strided model)."""

    @classmethod
    def plain_forward(cls, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return model.dilated(x)  # (B, RF, 34) -> (B, 1, 51)

    @classmethod
    def plain_predict(cls, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return model._flipped(lambda v: model.dilated(v)[:, 0], x)  # (B, RF, 34) -> (B, 51), flip TTA as configured

    @classmethod
    def executed_flops(cls, model: TemporalConvLifter) -> dict[str, float]:
        window = dilated_window_flops(model)
        return {"train_plain": 3.0 * window, "eval_plain": window * (2 if model.config.test_flip else 1)}
