"""Martinez et al., "A simple yet effective baseline for 3d human pose estimation", ICCV 2017.

A faithful port of the released TF code (una-dinosauria/3d-pose-baseline ``src/linear_model.py``;
facts in ``reference_implementations.md`` §4 and pitfall 4 of §7):

    Linear(32 -> H) -> BN -> ReLU -> Dropout
    num_blocks x [ (Linear -> BN -> ReLU -> Dropout) x 2, + block input ]   (no activation after the add)
    Linear(H -> 48)

* BatchNorm as ``tf.layers.batch_normalization`` defaults: eps 1e-3, moving-average momentum 0.99,
  i.e. PyTorch ``momentum=0.01``; affine.
* Max-norm is ``tf.clip_by_norm(W, 1)`` inside the forward graph: W_eff = W * min(1, 1/||W||_F) with
  the Frobenius norm of the WHOLE matrix, on every weight matrix (not biases, not BN); gradients flow
  through the clip and the stored weight is never projected. At init ||W||_F ~ 40 for 1024x1024, so
  the effective weights start ~40x smaller than the stored ones.
* Init "kaiming" as the reference: N(0, 1) truncated at +-2 (std ~0.88) times sqrt(2 / shape[0]),
  where TF's shape[0] is fan_in for a kernel and the length of a bias -- biases are initialised too.
* Frame model: a (B, T, 32) input is lifted frame by frame.
* Loss: MSE in z-scored space (``Lifter.loss``, the reference's ``tf.losses.mean_squared_error``).

Training runs through the speed path ``liftbench.fast.mlp.MLPStack`` (K models as (K, ...) tensors
with a hand-written backward, so packed seeds train bitwise like separate runs); it computes the
function of this module (tested) and scores with this module's ``loss``. Evaluation uses this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from liftbench.data.skeleton import INPUT_DIM, OUTPUT_DIM
from liftbench.errors import ConfigError
from liftbench.models.base import LIFTERS, Contract, Lifter


def _kaiming_truncated_(t: torch.Tensor, fan: int) -> torch.Tensor:
    """The reference's ``truncated_normal(shape) * sqrt(2 / shape[0])`` (cut at 2 standard deviations)."""
    with torch.no_grad():
        nn.init.trunc_normal_(t, mean=0.0, std=1.0, a=-2.0, b=2.0)
        return t.mul_(math.sqrt(2.0 / fan))


class MaxNormLinear(nn.Linear):
    """``nn.Linear`` with the reference's init and optional forward-pass Frobenius max-norm clip."""

    def __init__(self, in_features: int, out_features: int, max_norm: bool = True):
        self.max_norm = max_norm
        super().__init__(in_features, out_features)

    def reset_parameters(self) -> None:
        _kaiming_truncated_(self.weight, self.in_features)  # weight (out, in): fan_in = in_features
        _kaiming_truncated_(self.bias, self.out_features)  # bias (out,): TF's shape[0] = out_features

    def effective_weight(self) -> torch.Tensor:
        """W / max(||W||_F, 1) (= tf.clip_by_norm(W, 1)); differentiable, W itself untouched."""
        if not self.max_norm:
            return self.weight
        return self.weight / torch.clamp(torch.linalg.vector_norm(self.weight), min=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.effective_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, max_norm={self.max_norm}"


def _dense(in_features: int, out_features: int, cfg: MLPLifter.Config) -> nn.Sequential:
    """Linear -> [BN] -> ReLU -> [Dropout], the reference's repeated unit."""
    layers: list[nn.Module] = [MaxNormLinear(in_features, out_features, cfg.max_norm)]
    if cfg.batch_norm:
        layers.append(nn.BatchNorm1d(out_features, eps=1e-3, momentum=0.01))  # TF defaults (0.99 decay)
    layers.append(nn.ReLU())
    if cfg.dropout > 0.0:
        layers.append(nn.Dropout(cfg.dropout))
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """Two dense units; the block input is added after the second (``residual``), no activation after."""

    def __init__(self, cfg: MLPLifter.Config):
        super().__init__()
        self.residual = cfg.residual
        self.layers = nn.Sequential(_dense(cfg.hidden_size, cfg.hidden_size, cfg),
                                    _dense(cfg.hidden_size, cfg.hidden_size, cfg))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layers(x)
        return x + y if self.residual else y


@LIFTERS.register("mlp", "martinez")
class MLPLifter(Lifter):
    """Residual MLP frame lifter: (B, T, 32) normalised 2D -> (B, T, 48) normalised 3D, per frame."""

    @dataclass(frozen=True)
    class Config:
        hidden_size: int = 1024  # --linear_size
        num_blocks: int = 2  # --num_layers residual blocks
        dropout: float = 0.5  # probability (reference keep_prob 0.5); 0 = off
        residual: bool = True
        batch_norm: bool = True
        max_norm: bool = True  # forward-pass Frobenius clip of each weight matrix to norm 1

        def validate(self) -> None:
            where = "lifter 'mlp'"
            if self.hidden_size < 1:
                raise ConfigError(f"{where}: 'hidden_size' must be >= 1, got {self.hidden_size}.")
            if self.num_blocks < 0:
                raise ConfigError(f"{where}: 'num_blocks' must be >= 0, got {self.num_blocks}.")
            if not 0.0 <= self.dropout < 1.0:
                raise ConfigError(f"{where}: 'dropout' is a probability in [0, 1), got {self.dropout}.")

    paper = ("Martinez, Hossain, Romero & Little, A simple yet effective baseline for 3d human pose "
             "estimation, ICCV 2017 (code: una-dinosauria/3d-pose-baseline)")
    reference_params = 4_291_632  # trainable variables with the defaults (+ 10,240 BN moving statistics)
    input_kind = "frame"
    toggles = ("residual", "batch_norm", "max_norm", "dropout")
    train_defaults = {"lr": 1e-3, "batch_size": 64, "epochs": 200}
    speed_path = "liftbench.fast.mlp:MLPSpeed"  # stacked training with a hand-written backward

    def __init__(self, config: Config | None = None):
        config = config or self.Config()
        super().__init__(config)
        self.stem = _dense(INPUT_DIM, config.hidden_size, config)
        self.blocks = nn.Sequential(*(ResidualBlock(config) for _ in range(config.num_blocks)))
        self.head = MaxNormLinear(config.hidden_size, OUTPUT_DIM, config.max_norm)

    @classmethod
    def contract_for(cls, config: Config) -> Contract:
        """z-scored 16-joint 2D in, 16 non-root joints out, one frame at a time."""
        return Contract(label="Martinez et al. 2017 (MLP)", method="martinez2017")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, 32) -> (B, T, 48)
        B, T, D = x.shape
        y = x.reshape(B * T, D)  # (B, T, 32) -> (B*T, 32): every frame is an independent sample
        y = self.head(self.blocks(self.stem(y)))  # (B*T, 32) -> (B*T, 48)
        return y.view(B, T, OUTPUT_DIM)  # (B*T, 48) -> (B, T, 48)

    def flops_per_frame(self) -> dict[str, float]:
        """Matmul FLOPs (``cpu_performance_notes.md`` section 2): eval = one forward per frame; train =
        forward + data gradient + weight gradient of every layer, minus the data gradient into the input."""
        h, blocks = self.config.hidden_size, self.config.num_blocks
        forward = 2 * (INPUT_DIM * h + 2 * blocks * h * h + h * OUTPUT_DIM)
        return {"train": float(3 * forward - 2 * INPUT_DIM * h), "eval": float(forward)}
