"""The ``Lifter`` interface every registered model implements, and ``create_lifter``.

A lifter maps normalised 2D windows (B, T, 32) to normalised 3D windows (B, T, 48) in the
Martinez/Hossain convention (``liftbench.data.skeleton``). A frame model (``input_kind =
"frame"``) has ``window == 1``; a sequence model reads ``window`` frames and its prediction of
the last frame of a window is the causal prediction used at evaluation.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, ClassVar

import torch
from torch import nn

from liftbench.errors import ConfigError
from liftbench.registry import Registry


@dataclasses.dataclass(frozen=True)
class NormStats:
    """z-score statistics of the flattened model input (32,) and output (48,), as float32 tensors."""

    in_mean: torch.Tensor
    in_std: torch.Tensor
    out_mean: torch.Tensor
    out_std: torch.Tensor

    def to(self, device: torch.device | str) -> NormStats:
        return NormStats(*(t.to(device) for t in dataclasses.astuple(self)))

    def unnormalize_output(self, y: torch.Tensor) -> torch.Tensor:
        """(..., 48) normalised -> (..., 48) root-relative millimetres."""
        return y * self.out_std + self.out_mean


class Lifter(nn.Module):
    """Base class. Subclasses define ``Config`` (a frozen dataclass whose defaults are the paper's)."""

    Config: ClassVar[type]
    paper: ClassVar[str] = ""
    reference_params: ClassVar[int | None] = None  # trainable parameters with default settings
    input_kind: ClassVar[str] = "frame"  # "frame" | "sequence"
    toggles: ClassVar[tuple[str, ...]] = ()  # ablation switches among the Config fields
    train_defaults: ClassVar[dict[str, Any]] = {}  # paper training recipe: lr, batch_size, epochs

    def __init__(self, config: Any):
        super().__init__()
        self.config = config

    @property
    def window(self) -> int:
        """Frames per input window (1 for frame models)."""
        return 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, 32) -> (B, T, 48)
        raise NotImplementedError

    def predict_last(self, x: torch.Tensor) -> torch.Tensor:
        """Causal prediction: the output for the LAST frame of each window, (B, T, 32) -> (B, 48).

        Sequence models may override this with a cheaper path that computes the same function."""
        return self.forward(x)[:, -1]

    def predict_causal(self, inputs: torch.Tensor, index: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Causal predictions of every frame: inputs (F, 32) normalised frames, index (F, T) the rows of
        the window ending at each frame -> (F, 48), the last output of each window.

        The evaluator calls this, not ``predict_last``, so a sequence model can share per-frame work
        between the T windows that contain a frame. Default: gather ``batch_size`` windows at a time."""
        chunks = [self.predict_last(inputs[index[a : a + batch_size]])  # (b, T, 32) -> (b, 48)
                  for a in range(0, index.shape[0], batch_size)]
        return torch.cat(chunks) if chunks else inputs.new_empty(0, self(inputs[:0, None]).shape[-1])  # (F, 48)

    def loss(self, pred: torch.Tensor, target: torch.Tensor, stats: NormStats) -> torch.Tensor:
        """Training loss of normalised predictions/targets (B, T, 48); default: MSE in normalised space."""
        return torch.mean((pred - target) ** 2)


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def config_fields(config_cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(config_cls)}


def coerce_field(config_cls: type, name: str, value: Any, where: str) -> Any:
    """Check/convert one value to the dataclass field's type (int, float, bool, str)."""
    hints = typing.get_type_hints(config_cls)
    expected = hints[name]
    if expected is bool:
        if isinstance(value, bool):
            return value
    elif expected is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif expected is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif expected is str:
        if isinstance(value, str):
            return value
    else:
        return value
    raise ConfigError(f"{where}: '{name}' must be {expected.__name__}, got {value!r} ({type(value).__name__}).")


def build_config(config_cls: type, params: dict[str, Any], where: str = "model") -> Any:
    """``Config(**params)`` with unknown keys and wrong types reported by name."""
    fields = config_fields(config_cls)
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}. Valid keys: {', '.join(sorted(fields))}.")
    values = {k: coerce_field(config_cls, k, v, where) for k, v in params.items()}
    cfg = config_cls(**values)
    validate = getattr(cfg, "validate", None)
    if validate is not None:
        validate()
    return cfg


LIFTERS: Registry[type[Lifter]] = Registry("lifter", base=Lifter, entry_point_group="liftbench.models")


def create_lifter(name: str, **params: Any) -> Lifter:
    """Build a registered lifter; ``params`` override the paper defaults of its ``Config``."""
    cls = LIFTERS.get(name)
    return cls(build_config(cls.Config, params, where=f"lifter '{LIFTERS.canonical(name)}'"))


def list_lifters() -> list[str]:
    return LIFTERS.names()
