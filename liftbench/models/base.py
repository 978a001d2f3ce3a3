"""The ``Lifter`` interface every registered model implements, its contract, and ``create_lifter``.

A lifter declares its ``Contract``: the representation it reads and writes (joint sets and
normalisations, ``data.normalize.Representation``), its temporal footprint (window size, causal or
centred alignment, how it trains: ``data.windows.WindowSpec``), its label and, optionally, its FLOP
count and speed path. The data layer builds what the contract declares, the trainer gathers the windows
it declares, and the evaluator scores every test frame exactly once in mm on the 17 joints. Nothing
outside the model files asks for a lifter by name.

Shapes: ``forward`` maps encoded windows (B, T, D_in) to encoded outputs (B, T_out, D_out), where
T_out = T for ``targets = "window"`` and the aligned frame(s) otherwise; ``predict_frames`` returns the
aligned prediction of every frame of a split (F, D_out). A clip model (window alignment ``"clip"``) is
evaluated clip by clip (``data.windows.clip_plan``: every frame taken from exactly one clip) through
``predict_clips`` (B, T, D_in) -> (B, T, D_out), where it applies its test-time augmentation.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from liftbench.data.conventions import EvaluationConvention
from liftbench.data.normalize import NormStats, Representation, flip_maps
from liftbench.data.windows import WindowSpec, clip_plan
from liftbench.errors import ConfigError
from liftbench.registry import Registry

__all__ = ["Contract", "Lifter", "NormStats", "LIFTERS", "create_lifter", "lifter_contract", "list_lifters",
           "trainable_parameters", "flip_averaged", "predict_by_clips"]


@dataclasses.dataclass(frozen=True)
class Contract:
    """What a lifter reads, writes and how it sees time; declared per instance (it may depend on Config)."""

    representation: Representation = Representation()
    window: WindowSpec = WindowSpec()
    label: str = ""  # short method label for tables ("Hossain & Little 2018"); default the class name
    method: str = ""  # the published method it re-implements: a baselines/ key, e.g. "hossain2018" ('' = none)
    test_time_augmentation: str = "none"  # e.g. "horizontal flip, averaged" (recorded in the protocol card)

    def validate(self, where: str) -> None:
        self.representation.validate(where)
        self.window.validate(where)


class Lifter(nn.Module):
    """Base class. Subclasses define ``Config`` (a frozen dataclass whose defaults are the paper's)."""

    Config: ClassVar[type]
    paper: ClassVar[str] = ""
    reference_params: ClassVar[int | None] = None  # trainable parameters with default settings
    input_kind: ClassVar[str] = "frame"  # "frame" | "sequence"
    toggles: ClassVar[tuple[str, ...]] = ()  # ablation switches among the Config fields
    train_defaults: ClassVar[dict[str, Any]] = {}  # paper training recipe: lr, batch_size, epochs, schedule ...
    speed_path: ClassVar[str] = ""  # optional "module:Class" of a fast.SpeedPath (stacked training, fast eval)
    retired_config_keys: ClassVar[tuple[str, ...]] = ()  # keys older liftbench versions saved; ignored when read back
    # Config keys added after runs existed: hashed only when they differ from their default, so adding an option
    # never renames (and retrains) the runs that do not use it
    later_config_keys: ClassVar[tuple[str, ...]] = ()
    # the frame set and weights of the re-implemented codebase's own evaluation (``evaluate --convention``)
    evaluation_convention: ClassVar[EvaluationConvention | None] = None

    def __init__(self, config: Any):
        super().__init__()
        self.config = config

    @classmethod
    def contract_for(cls, config: Any) -> Contract:
        """The contract of a lifter built with ``config`` (known before any weights exist, so the data
        layer can prepare what it declares). Default: the Martinez/Hossain representation, one frame."""
        return Contract(label=cls.__name__)

    @property
    def contract(self) -> Contract:
        return type(self).contract_for(self.config)

    @property
    def window(self) -> int:
        """Frames per input window (the receptive field; 1 for frame models)."""
        return self.contract.window.size

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D_in) -> (B, T_out, D_out)
        raise NotImplementedError

    def predict_aligned(self, x: torch.Tensor) -> torch.Tensor:
        """The output for the ALIGNED frame of each window: (B, T, D_in) -> (B, D_out).

        Sequence models may override this with a cheaper path that computes the same function."""
        out = self.forward(x)  # (B, T_out, D_out)
        if out.shape[1] == 1:
            return out[:, 0]
        return out[:, self.contract.window.aligned_position]

    def predict_clips(self, x: torch.Tensor) -> torch.Tensor:
        """A clip model's evaluation output of every frame of each clip: (B, T, D_in) -> (B, T, D_out).
        Default: ``forward``; a lifter with test-time augmentation overrides it (``flip_averaged``)."""
        return self.forward(x)

    def predict_frames(self, inputs: torch.Tensor, index: torch.Tensor, batch_size: int,
                       segments: list[tuple[int, int]] | None = None) -> torch.Tensor:
        """Aligned predictions of every frame: inputs (F, D_in) encoded frames, index (F, T) the rows of
        each frame's window (edges replicated) -> (F, D_out).

        The evaluator calls this, not ``predict_aligned``, so a sequence model can share per-frame work
        between the windows that contain a frame; ``segments`` lists each sequence's (first row,
        length) for models that run whole sequences. Default: gather ``batch_size`` windows at a time;
        a clip model: its clips (``predict_by_clips``)."""
        if self.contract.window.is_clip:
            if segments is None:
                segments = [(0, int(inputs.shape[0]))]
            return predict_by_clips(self.predict_clips, inputs, segments, self.contract.window,
                                    self.contract.representation.output_dim, batch_size)
        chunks = [self.predict_aligned(inputs[index[a : a + batch_size]])  # (b, T, D_in) -> (b, D_out)
                  for a in range(0, index.shape[0], batch_size)]
        if chunks:
            return torch.cat(chunks)  # (F, D_out)
        return inputs.new_empty(0, self.contract.representation.output_dim)

    def loss(self, pred: torch.Tensor, target: torch.Tensor, stats: NormStats) -> torch.Tensor:
        """Training loss of encoded predictions/targets (B, T_out, D_out); default: MSE in encoded space."""
        return torch.mean((pred - target) ** 2)

    def flops_per_frame(self) -> dict[str, float] | None:
        """Optional, for ``liftbench bench``: matmul FLOPs {"train": per training window (one element of a
        training batch: a window, or a whole clip for a clip model), "eval": per evaluated frame}."""
        return None


def predict_by_clips(run: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, segments: list[tuple[int, int]],
                     spec: WindowSpec, output_dim: int, batch_size: int) -> torch.Tensor:
    """Every frame's output from the clip that covers it: inputs (F, D_in), ``segments`` each sequence's
    (first row, length) -> (F, D_out). Clips of one length are batched (``batch_size`` frames per batch);
    rows past a sequence's end repeat its last frame (``short = "pad"``)."""
    out = inputs.new_full((inputs.shape[0], output_dim), float("nan"))  # every row written exactly once below
    by_length: dict[int, list[tuple[torch.Tensor, int, int, int]]] = {}
    for first, n in segments:
        for start, length, keep_from, keep_to in clip_plan(n, spec):
            rows = torch.arange(start, start + length, device=inputs.device).clamp_(max=n - 1) + first  # (L,)
            by_length.setdefault(length, []).append((rows, first + start + keep_from, keep_from, keep_to))
    for length, clips in by_length.items():
        per_batch = max(1, batch_size // length)
        for a in range(0, len(clips), per_batch):
            batch = clips[a : a + per_batch]
            y = run(inputs[torch.stack([c[0] for c in batch])])  # (b, L, D_in) -> (b, L, D_out)
            for i, (_, dest, keep_from, keep_to) in enumerate(batch):
                out[dest : dest + keep_to - keep_from] = y[i, keep_from:keep_to]
    return out


def flip_averaged(run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, rep: Representation) -> torch.Tensor:
    """``run(x)`` averaged with the un-mirrored output of the mirrored input (flip test-time augmentation,
    as VideoPose3D, MotionBERT and MixSTE do): x (..., D_in) encoded, mirrored in encoded space
    (``data.normalize.flip_maps``: x negated, left/right swapped; a score channel untouched)."""
    out = run(x)
    perm_in, sign_in, perm_out, sign_out = (torch.as_tensor(a, device=x.device) for a in flip_maps(rep))
    back = run(x[..., perm_in] * sign_in.to(x.dtype))
    return (out + back[..., perm_out] * sign_out.to(out.dtype)) / 2


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
            if not math.isfinite(float(value)):  # nan slips through "x < 0" checks and silently disables terms
                raise ConfigError(f"{where}: '{name}' must be a finite number, got {value!r}.")
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


def lifter_contract(name: str, **params: Any) -> Contract:
    """The contract of a registered lifter with these Config overrides, without building its weights."""
    cls = LIFTERS.get(name)
    contract = cls.contract_for(build_config(cls.Config, params, where=f"lifter '{LIFTERS.canonical(name)}'"))
    contract.validate(f"lifter '{LIFTERS.canonical(name)}'")
    return contract


def create_lifter(name: str, **params: Any) -> Lifter:
    """Build a registered lifter; ``params`` override the paper defaults of its ``Config``."""
    cls = LIFTERS.get(name)
    return cls(build_config(cls.Config, params, where=f"lifter '{LIFTERS.canonical(name)}'"))


def list_lifters() -> list[str]:
    return LIFTERS.names()
