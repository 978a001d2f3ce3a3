"""Zhang, Tang, Shi, Li, Huang & Wang, "MixSTE: Seq2seq Mixed Spatio-Temporal Encoder for 3D Human Pose
Estimation in Video", CVPR 2022 (code: JinluZhang1126/MixSTE, class ``MixSTE2`` in ``common/model_cross.py``;
that repository has no licence, so this is written from the facts in ``transformer_lifters_facts.md``
section 2 only).

The network as a plain nn.Module:

    x = Spatial_patch_to_embedding(x) + Spatial_pos_embed[j]                   (B, F, J, 2) -> (B*F, J, C)
    for i = 0..depth-1:  x = Spatial_norm(STEblocks[i](x))                    attention over joints, (B*F, J, C)
                         x -> (B*J, F, C);  if i == 0: x += Temporal_pos_embed[t]
                         x = Temporal_norm(TTEblocks[i](x))                   attention over frames, (B*J, F, C)
                         x -> (B*F, J, C)
    y = head(x) = Linear(LayerNorm_eps1e-5(x))                                 (B, F, J, 3)

* ``Spatial_norm`` / ``Temporal_norm`` are ONE LayerNorm each, shared by all depths and applied after
  every block of their kind; the temporal positional embedding is added once, after the first S block.
* Defaults (512 wide, depth 8, 8 heads, MLP ratio 2, 243 frames): 33,783,811 parameters (81 frames:
  33,700,867; only Temporal_pos_embed differs). Sub-module names are the official state-dict keys.
* Init: PyTorch defaults (no custom init upstream), both positional embeddings exactly zero.
* Drop path linspace(0, rate, depth): block i uses rate i in both its S and T block (0.1 in training).
  As upstream, a spatial block's DropPath samples are (clip, frame), a temporal block's (clip, joint).
* F must equal num_frame (Temporal_pos_embed is not sliced). Output: root-relative metres in the paper.
"""

from __future__ import annotations

import torch
from torch import nn

from liftbench.models.transformer_blocks import (
    Block,
    attention_macs,
    drop_path_rates,
    from_temporal,
    linear_macs_per_token,
    to_temporal,
)


class MixSTENet(nn.Module):
    """MixSTE (``MixSTE2``): (B, num_frame, J, in_chans) -> (B, num_frame, J, 3)."""

    def __init__(self, num_frame: int = 243, num_joints: int = 17, in_chans: int = 2, embed_dim: int = 512,
                 depth: int = 8, num_heads: int = 8, mlp_ratio: float = 2.0, drop_path_rate: float = 0.1,
                 norm_eps: float = 1e-6):
        super().__init__()
        self.num_frame, self.num_joints, self.in_chans = num_frame, num_joints, in_chans
        self.embed_dim, self.depth = embed_dim, depth
        # parameters are listed before sub-modules in a state dict, spatial first as in the checkpoint
        self.Spatial_pos_embed = nn.Parameter(torch.zeros(1, num_joints, embed_dim))
        self.Temporal_pos_embed = nn.Parameter(torch.zeros(1, num_frame, embed_dim))
        self.Spatial_patch_to_embedding = nn.Linear(in_chans, embed_dim)
        dpr = drop_path_rates(drop_path_rate, depth)
        self.STEblocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, dpr[i], norm_eps) for i in range(depth))
        self.TTEblocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, dpr[i], norm_eps) for i in range(depth))
        self.Spatial_norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.Temporal_norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        # upstream builds the head LayerNorm directly (not via norm_layer), hence eps 1e-5 here only
        self.head = nn.Sequential(nn.LayerNorm(embed_dim, eps=1e-5), nn.Linear(embed_dim, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, F, J, in_chans) -> (B, F, J, 3)
        if x.dim() != 4 or x.shape[2] != self.num_joints or x.shape[3] != self.in_chans:
            raise ValueError(f"MixSTENet expects (B, {self.num_frame}, {self.num_joints}, {self.in_chans}) input, "
                             f"got {tuple(x.shape)}")
        batch, frames, joints, chans = x.shape
        if frames != self.num_frame:
            raise ValueError(f"MixSTENet was built for clips of num_frame={self.num_frame} frames but got {frames} "
                             "(Temporal_pos_embed is not sliced; build the net with the clip length)")
        x = self.Spatial_patch_to_embedding(x.reshape(batch * frames, joints, chans))  # (B*F, J, C)
        x = x + self.Spatial_pos_embed  # (B*F, J, C)
        for i in range(self.depth):
            x = self.Spatial_norm(self.STEblocks[i](x))  # (B*F, J, C): attention over the joints of a frame
            x = to_temporal(x, frames)  # (B*J, F, C): one sequence per clip and joint
            if i == 0:
                x = x + self.Temporal_pos_embed  # added once, after the first spatial block
            x = self.Temporal_norm(self.TTEblocks[i](x))  # (B*J, F, C): attention over frames
            x = from_temporal(x, joints)  # (B*F, J, C)
        return self.head(x).reshape(batch, frames, joints, 3)  # (B*F, J, 3) -> (B, F, J, 3)

    def flops_per_clip(self, frames: int | None = None) -> dict[str, int]:
        """MACs of one clip (default and only valid length: num_frame): every Linear sees all F*J tokens;
        depth spatial attentions (F sequences of J) and depth temporal ones (J sequences of F)."""
        frames = self.num_frame if frames is None else frames
        if frames != self.num_frame:
            raise ValueError(f"MixSTENet was built for num_frame={self.num_frame} frames, got {frames}")
        joints, dim = self.num_joints, self.embed_dim
        linear = frames * joints * linear_macs_per_token(self)
        attention = self.depth * (attention_macs(frames, joints, dim) + attention_macs(joints, frames, dim))
        return {"linear": linear, "attention": attention, "total": linear + attention}
