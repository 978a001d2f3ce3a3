"""Zhu, Ma, Liu, Liu, Wu & Wang, "MotionBERT: A Unified Perspective on Learning Human Motion
Representations", ICCV 2023 (code: Walter0807/MotionBERT, ``lib/model/DSTformer.py``).

The dual-stream spatio-temporal transformer (DSTformer) as a plain nn.Module; facts in
``transformer_lifters_facts.md`` section 1:

    x0 = joints_embed(x) + pos_embed[j] + temp_embed[t]                       (B, F, J, 3) -> (B, F, J, C)
    for i = 0..depth-1:  x_st = blocks_st[i](x)      S-attn, S-MLP, T-attn, T-MLP
                         x_ts = blocks_ts[i](x)      T-attn, T-MLP, S-attn, S-MLP   (same input x)
                         a = softmax(ts_attn[i]([x_st | x_ts]))                 per token, 2 weights
                         x = a0 x_st + a1 x_ts
    E = tanh(pre_logits.fc(norm(x)))    the "motion representation"             (B, F, J, dim_rep)
    y = head(E)                                                                 (B, F, J, 3)

* S-attn attends over the J joints of one frame, T-attn over the F frames of one joint of one clip.
  Every sub-layer is pre-norm residual with its own LayerNorm (eps 1e-6, as ``load_backbone`` passes).
* Defaults are the full H36M model (dim_feat 512, MLP ratio 2, depth 5, 8 heads, 243 frames):
  42,466,317 parameters; the "lite" model is dim_feat 256, mlp_ratio 4: 16,001,549. Sub-module names
  equal the official state-dict keys, so a checkpoint's ``model_pos`` (``module.`` stripped) loads strictly.
* Init: trunc-normal(0.02) on embeddings and Linears, zero biases, LayerNorm 1/0; then the fusion
  layers ``ts_attn`` are created with weight 0 and bias 0.5, i.e. an even split at the start. Modules are
  built and initialised in the original's order, so under one torch seed the init (and, in training, the
  drop-path masks) equal the official class's bitwise (checked once against MotionBERT @20db205a).
* Any F <= maxlen works (temp_embed is sliced). Output is seq2seq, in the input's normalised units.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from liftbench.models.transformer_blocks import (
    Attention,
    DropPath,
    Mlp,
    attention_macs,
    drop_path_rates,
    from_temporal,
    linear_macs_per_token,
    to_temporal,
)


class DualBlock(nn.Module):
    """One DSTformer block: a spatial pair (attn_s, mlp_s) and a temporal pair (attn_t, mlp_t), run
    S then T (``order="st"``) or T then S (``"ts"``). Works on the spatial layout (B*F, J, C) throughout;
    only the temporal attention itself sees (B*J, F, C), so DropPath samples are (clip, frame) as in the
    original (whose temporal mode reshapes inside the attention)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, drop_path: float, norm_eps: float, order: str):
        super().__init__()
        if order not in ("st", "ts"):
            raise ValueError(f"order must be 'st' or 'ts', got {order!r}")
        self.order = order
        hidden = int(dim * mlp_ratio)
        # definition order = the checkpoint's key order
        self.norm1_s = nn.LayerNorm(dim, eps=norm_eps)
        self.norm1_t = nn.LayerNorm(dim, eps=norm_eps)
        self.attn_s = Attention(dim, num_heads, proj_first=True)
        self.attn_t = Attention(dim, num_heads, proj_first=True)
        self.norm2_s = nn.LayerNorm(dim, eps=norm_eps)
        self.norm2_t = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp_s = Mlp(dim, hidden)
        self.mlp_t = Mlp(dim, hidden)
        self.drop_path = DropPath(drop_path)

    def spatial(self, x: torch.Tensor) -> torch.Tensor:  # (B*F, J, C) -> (B*F, J, C)
        x = x + self.drop_path(self.attn_s(self.norm1_s(x)))  # attention over the joints of one frame
        return x + self.drop_path(self.mlp_s(self.norm2_s(x)))

    def temporal(self, x: torch.Tensor, frames: int) -> torch.Tensor:  # (B*F, J, C) -> (B*F, J, C)
        joints = x.shape[1]
        seq = to_temporal(self.norm1_t(x), frames)  # (B*J, F, C): one sequence per clip and joint
        x = x + self.drop_path(from_temporal(self.attn_t(seq), joints))  # (B*F, J, C)
        return x + self.drop_path(self.mlp_t(self.norm2_t(x)))

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:  # (B*F, J, C) -> (B*F, J, C)
        if self.order == "st":
            return self.temporal(self.spatial(x), frames)
        return self.spatial(self.temporal(x, frames))


class DSTformer(nn.Module):
    """MotionBERT's DSTformer: (B, F, J, dim_in) -> (B, F, J, dim_out), F <= maxlen."""

    def __init__(self, dim_in: int = 3, dim_out: int = 3, dim_feat: int = 512, dim_rep: int = 512, depth: int = 5,
                 num_heads: int = 8, mlp_ratio: float = 2.0, num_joints: int = 17, maxlen: int = 243,
                 att_fuse: bool = True, drop_path_rate: float = 0.0, norm_eps: float = 1e-6):
        super().__init__()
        self.dim_in, self.dim_feat, self.num_joints, self.maxlen = dim_in, dim_feat, num_joints, maxlen
        self.depth = depth
        # parameters before sub-modules, temp_embed first: the checkpoint's key order
        self.temp_embed = nn.Parameter(torch.zeros(1, maxlen, 1, dim_feat))  # broadcast over joints
        self.pos_embed = nn.Parameter(torch.zeros(1, num_joints, dim_feat))  # broadcast over frames
        self.joints_embed = nn.Linear(dim_in, dim_feat)
        dpr = drop_path_rates(drop_path_rate, depth)
        self.blocks_st = nn.ModuleList(
            DualBlock(dim_feat, num_heads, mlp_ratio, dpr[i], norm_eps, "st") for i in range(depth))
        self.blocks_ts = nn.ModuleList(
            DualBlock(dim_feat, num_heads, mlp_ratio, dpr[i], norm_eps, "ts") for i in range(depth))
        self.norm = nn.LayerNorm(dim_feat, eps=norm_eps)
        self.pre_logits = nn.Sequential(OrderedDict([("fc", nn.Linear(dim_feat, dim_rep)), ("act", nn.Tanh())]))
        self.head = nn.Linear(dim_rep, dim_out)

        nn.init.trunc_normal_(self.temp_embed, std=0.02)  # truncated at +-2 absolute, as timm's default
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.apply(self._init_weights)
        # created after the init pass on purpose: the fusion must start at an even 50/50 split
        self.ts_attn: nn.ModuleList | None = None
        if att_fuse:
            self.ts_attn = nn.ModuleList(nn.Linear(2 * dim_feat, 2) for _ in range(depth))
            for lin in self.ts_attn:
                nn.init.zeros_(lin.weight)
                nn.init.constant_(lin.bias, 0.5)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[2] != self.num_joints or x.shape[3] != self.dim_in:
            raise ValueError(f"DSTformer expects (B, F, {self.num_joints}, {self.dim_in}) input, got {tuple(x.shape)}")
        if x.shape[1] > self.maxlen:
            raise ValueError(f"DSTformer got a clip of {x.shape[1]} frames but maxlen is {self.maxlen} "
                             "(temp_embed has no rows past maxlen)")

    def representation(self, x: torch.Tensor) -> torch.Tensor:  # (B, F, J, dim_in) -> (B, F, J, dim_rep)
        """The tanh "motion representation" E (``get_representation`` / ``return_rep`` upstream)."""
        self._check(x)
        batch, frames, joints, dim_in = x.shape
        x = self.joints_embed(x.reshape(batch * frames, joints, dim_in)) + self.pos_embed  # (B*F, J, C)
        x = x.reshape(batch, frames, joints, -1) + self.temp_embed[:, :frames]  # (B, F, J, C)
        x = x.reshape(batch * frames, joints, -1)  # (B*F, J, C)
        for i in range(self.depth):
            x_st = self.blocks_st[i](x, frames)  # (B*F, J, C)
            x_ts = self.blocks_ts[i](x, frames)  # (B*F, J, C); both streams read the same x
            if self.ts_attn is None:
                x = (x_st + x_ts) / 2
            else:
                alpha = self.ts_attn[i](torch.cat([x_st, x_ts], dim=-1)).softmax(dim=-1)  # (B*F, J, 2) per token
                x = x_st * alpha[..., 0:1] + x_ts * alpha[..., 1:2]  # (B*F, J, C)
        x = self.norm(x).reshape(batch, frames, joints, -1)  # (B, F, J, C)
        return self.pre_logits(x)  # (B, F, J, dim_rep)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, F, J, dim_in) -> (B, F, J, dim_out)
        return self.head(self.representation(x))

    def flops_per_clip(self, frames: int | None = None) -> dict[str, int]:
        """MACs of one clip of ``frames`` (default maxlen) frames: every Linear sees all F*J tokens; each
        of the 2*depth blocks has one spatial attention (F sequences of J) and one temporal (J of F)."""
        frames = self.maxlen if frames is None else frames
        if not 1 <= frames <= self.maxlen:
            raise ValueError(f"DSTformer takes 1 to maxlen={self.maxlen} frames, got {frames}")
        joints, dim = self.num_joints, self.dim_feat
        linear = frames * joints * linear_macs_per_token(self)
        attention = 2 * self.depth * (attention_macs(frames, joints, dim) + attention_macs(joints, frames, dim))
        return {"linear": linear, "attention": attention, "total": linear + attention}
