"""Transformer pieces shared by the MotionBERT DSTformer (``dstformer_net``) and MixSTE (``mixste_net``)
lifters (facts in ``transformer_lifters_facts.md``). Both papers use the timm ViT sub-layers unchanged:

    Attention(x) = proj(concat_h softmax(q_h k_h^T / sqrt(c)) v_h),  [q | k | v] = qkv(x)  (bias on both)
    Mlp(x)       = fc2(GELU(fc1(x)))                                 (exact GELU, both with bias)
    Block(x):      x = x + DropPath(Attention(norm1 x));  x = x + DropPath(Mlp(norm2 x))   (pre-norm)

* Sub-module names (``qkv``, ``proj``, ``fc1``, ``fc2``, ``norm1``, ``attn``, ``norm2``, ``mlp``) are the
  checkpoint key names of both repositories, so official state dicts load strictly. Neither paper uses
  dropout (rate 0 in every published run), so there are no Dropout modules: they hold no keys either.
* Token layouts: a clip batch of B clips, F frames and J joints lives as (B*F, J, C) ("spatial layout":
  one sequence per frame, tokens = joints) or (B*J, F, C) ("temporal layout": one sequence per joint,
  tokens = frames). ``to_temporal`` / ``from_temporal`` convert; both assume clip-major, frame-minor rows,
  so temporal attention only ever sees frames of the same clip and joint.
* Compute is counted analytically in multiply-accumulates: every Linear costs in*out MACs per token it
  sees (thop's convention, bias free), and one attention over n sequences of N tokens of width C costs
  2*n*N^2*C MACs (q k^T and attn v; softmax and LayerNorm are not counted).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): in training, zero a whole residual branch per sample (first
    axis) with probability ``p`` and scale survivors by 1/(1-p). The mask is drawn from torch's global
    RNG of the tensor's device, so saving/restoring ``torch.get_rng_state()`` (``torch.cuda.get_rng_state()``
    on a GPU) with a checkpoint reproduces it on resume. Identity in eval mode and at p = 0."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop path rate must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        # floor(keep + U[0,1)) is 1 with probability keep: the same torch.rand draws as MotionBERT's copy of
        # timm's drop_path (and timm <= 0.4), so a seeded run drops the same paths as the original
        mask = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)  # (N, 1, ..., 1)
        return x / keep * mask.add_(keep).floor_()

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Attention(nn.Module):
    """Multi-head self-attention over the token axis of (N_seq, N_tok, C), via
    ``F.scaled_dot_product_attention`` (default scale head_dim^-0.5, no dropout)."""

    def __init__(self, dim: int, num_heads: int, proj_first: bool = False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        # Same key names in both repositories, but MotionBERT registers proj before qkv. The order fixes
        # parameters(), hence which tensor an imported optimizer state (a list, not a dict) belongs to.
        if proj_first:
            self.proj = nn.Linear(dim, dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        if not proj_first:
            self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N_seq, N_tok, C) -> (N_seq, N_tok, C)
        n_seq, n_tok, dim = x.shape
        heads = self.num_heads
        # timm layout: the 3C qkv channels are q | k | v, each head-major (a checkpoint depends on it)
        qkv = self.qkv(x).reshape(n_seq, n_tok, 3, heads, dim // heads)  # (S, N, 3, H, c)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (S, H, N, c)
        out = F.scaled_dot_product_attention(q, k, v)  # (S, H, N, c)
        out = out.transpose(1, 2).reshape(n_seq, n_tok, dim)  # (S, N, H*c): heads merged head-major
        return self.proj(out)


class Mlp(nn.Module):
    """fc1 -> exact GELU -> fc2."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (attention + MLP, each residual through DropPath)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, drop_path: float = 0.0, norm_eps: float = 1e-6):
        super().__init__()
        # definition order = state-dict order of the official checkpoints: norm1, attn, norm2, mlp
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N_seq, N_tok, C) -> same
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def drop_path_rates(rate: float, depth: int) -> list[float]:
    """linspace(0, rate, depth) in float32 like both repositories; computed on the CPU explicitly so that
    building a model under ``torch.device("meta")`` still yields numbers."""
    return torch.linspace(0.0, rate, depth, device="cpu").tolist()


def to_temporal(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(B*F, J, C) -> (B*J, F, C), rows clip-major then frame (then joint)."""
    bf, joints, dim = x.shape
    return x.reshape(bf // frames, frames, joints, dim).transpose(1, 2).reshape(-1, frames, dim)  # (B*J, F, C)


def from_temporal(x: torch.Tensor, joints: int) -> torch.Tensor:
    """(B*J, F, C) -> (B*F, J, C), the inverse of ``to_temporal``."""
    bj, frames, dim = x.shape
    return x.reshape(bj // joints, joints, frames, dim).transpose(1, 2).reshape(-1, joints, dim)  # (B*F, J, C)


def linear_macs_per_token(module: nn.Module) -> int:
    """Sum of in*out over every nn.Linear in ``module`` (shapes only: works on the meta device)."""
    return sum(m.in_features * m.out_features for m in module.modules() if isinstance(m, nn.Linear))


def attention_macs(n_seq: int, n_tok: int, dim: int) -> int:
    """q k^T plus attn v for n_seq sequences of n_tok tokens, all heads together (width dim)."""
    return 2 * n_seq * n_tok * n_tok * dim


def flops_per_clip(net: nn.Module, frames: int | None = None) -> dict[str, int]:
    """Multiply-accumulates of one clip through ``net`` (a ``DSTformer`` or ``MixSTENet``):
    ``{"linear": ..., "attention": ..., "total": ...}``; ``frames`` defaults to the net's clip length."""
    return net.flops_per_clip(frames)
