"""The Martinez MLP's speed path: K models trained as one stacked computation with a hand-written backward.

Why: autograd through K separate ``nn.Module`` MLPs can neither share one kernel launch per layer
between packed members nor guarantee that a member's reductions run in the same order for any K. Here
K models are (K, ...) tensors, one ``bmm`` per layer, and every reduction is per model
(``fast/stack.py`` says why), so K packed seeds or toggle variants train bitwise like K separate runs
(a single run is K = 1). The readable model (``models/mlp.py``) computes the same function (tested
within float32 tolerance in ``tests/test_packing.py``) and is what evaluation uses; its
``Lifter.loss`` scores every member.

Also here: where packing pays off on each device (``MLPStack.packs_on``, measured on one machine).
"""

from __future__ import annotations

import torch
from torch import Tensor

from liftbench.data.normalize import NormStats
from liftbench.data.skeleton import OUTPUT_DIM
from liftbench.fast.autocast import autocast_backward, autocast_forward
from liftbench.fast.base import SpeedPath
from liftbench.fast.stack import ModuleStack, per_model_sum
from liftbench.models.mlp import MLPLifter

_BN_EPS, _BN_MOMENTUM = 1e-3, 0.01  # as nn.BatchNorm1d above (TF defaults)


class _Plan:
    """Non-tensor inputs of one stacked step: layout, per-member toggles, masks and BN buffers."""

    def __init__(self, stack: MLPStack, masks: list[Tensor | None]):
        self.units, self.batch_norm, self.names = stack.units, stack.batch_norm, stack.names
        self.max_norm, self.any_max_norm = stack.max_norm, stack.any_max_norm
        self.residual, self.residual_mode = stack.residual, stack.residual_mode
        self.masks, self.buffers = masks, stack.buffers


def _per_model_norm(W: Tensor) -> Tensor:
    """(K,) Frobenius norms, one reduction per member's contiguous matrix (the same for any K)."""
    return torch.stack([torch.linalg.vector_norm(w) for w in W.contiguous().unbind(0)])


def _clip(W: Tensor, active: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """W_eff = W / d with d = max(||W||_F, 1) for members with max_norm, else 1: (K, out, in)."""
    n = _per_model_norm(W)  # (K,)
    d = torch.where(active & (n >= 1.0), n, torch.ones_like(n))  # (K,)
    return W / d.view(-1, 1, 1), n, d


def _clip_backward(W: Tensor, gWe: Tensor, n: Tensor, d: Tensor, active: Tensor) -> Tensor:
    """dL/dW of W / clamp(||W||, min=1): gWe / n - W (gWe . W) / n^3 where clipped, else gWe exactly.

    ``gWe`` (a fresh matmul output) is overwritten. Three element-wise passes over W when every
    member is clipped (the default), plus a ``where`` that keeps unclipped members' gWe exactly."""
    on = active & (n >= 1.0)  # clamp passes the gradient where n >= 1
    dots = torch.stack([torch.dot(g.reshape(-1), w.reshape(-1).to(g.dtype))  # (K,) per member, same order for any K
                        for g, w in zip(gWe.unbind(0), W.contiguous().unbind(0))])  # (gWe is bf16 under autocast)
    coef = (dots / (d * d * n)).view(-1, 1, 1)  # (K, 1, 1)
    if bool(on.all()):
        return gWe.div_(d.view(-1, 1, 1)).sub_(W * coef)
    return torch.where(on.view(-1, 1, 1), gWe / d.view(-1, 1, 1) - W * coef, gWe)


def _dense_forward(a: Tensor, P: dict[str, Tensor], prefix: str, plan: _Plan, unit: int) -> tuple[Tensor, dict]:
    """Linear -> [BN, batch statistics] -> ReLU -> [dropout] for K members: (K, N, in) -> (K, N, out)."""
    W, b = P[f"{prefix}.0.weight"], P[f"{prefix}.0.bias"]  # (K, out, in), (K, out)
    We, n, d = _clip(W, plan.max_norm) if plan.any_max_norm else (W, None, None)
    z = torch.baddbmm(b.unsqueeze(1), a, We.transpose(1, 2))  # (K, N, in) @ (K, in, out) + (K, 1, out)
    s = dict(a=a, W=W, We=We, n=n, d=d)
    if plan.batch_norm:
        N = z.shape[1]
        mu = per_model_sum(z, 0).unsqueeze(1) / N  # (K, out) -> (K, 1, out) batch mean
        zc = z - mu
        var = per_model_sum(zc * zc, 0).unsqueeze(1) / N  # (K, 1, out) biased batch variance
        inv = 1.0 / torch.sqrt(var + _BN_EPS)  # (K, 1, out)
        zhat = zc * inv
        gamma, beta = P[f"{prefix}.1.weight"], P[f"{prefix}.1.bias"]  # (K, out) each
        z = zhat * gamma.unsqueeze(1) + beta.unsqueeze(1)  # (K, N, out) * (K, 1, out) + (K, 1, out)
        s.update(zhat=zhat, inv=inv, gamma=gamma)
        rm, rv = plan.buffers[f"{prefix}.1.running_mean"], plan.buffers[f"{prefix}.1.running_var"]  # (K, out)
        rm.mul_(1.0 - _BN_MOMENTUM).add_(mu.squeeze(1) * _BN_MOMENTUM)
        unbiased = var.squeeze(1) * (N / (N - 1)) if N > 1 else var.squeeze(1)
        rv.mul_(1.0 - _BN_MOMENTUM).add_(unbiased * _BN_MOMENTUM)
        plan.buffers[f"{prefix}.1.num_batches_tracked"].add_(1)
    r = torch.relu(z)
    s["r"] = r
    mask = plan.masks[unit]
    return (r if mask is None else r * mask), s


def _dense_backward(g: Tensor, s: dict, prefix: str, plan: _Plan, unit: int, grads: dict, need_input: bool):
    """Gradients of one dense unit; fills ``grads`` and returns dL/da (K, N, in) or None."""
    mask = plan.masks[unit]
    g = g if mask is None else g * mask
    g = torch.where(s["r"] > 0, g, 0.0)  # ReLU (threshold_backward on the output)
    if plan.batch_norm:
        zhat, N = s["zhat"], g.shape[1]
        grads[f"{prefix}.1.weight"] = per_model_sum(g * zhat, 0)  # (K, out)
        grads[f"{prefix}.1.bias"] = per_model_sum(g, 0)
        gz = g * s["gamma"].unsqueeze(1)  # (K, N, out): gradient at zhat
        m1 = per_model_sum(gz, 0).unsqueeze(1) / N  # (K, 1, out)
        m2 = per_model_sum(gz * zhat, 0).unsqueeze(1) / N
        g = (gz - m1 - zhat * m2) * s["inv"]  # gradient at the pre-BN activation, batch statistics included
    grads[f"{prefix}.0.bias"] = per_model_sum(g, 0)  # (K, out)
    gWe = torch.bmm(g.transpose(1, 2), s["a"])  # (K, out, N) @ (K, N, in) -> (K, out, in)
    grads[f"{prefix}.0.weight"] = (_clip_backward(s["W"], gWe, s["n"], s["d"], plan.max_norm)
                                   if plan.any_max_norm else gWe)
    return torch.bmm(g, s["We"]) if need_input else None  # (K, N, out) @ (K, out, in) -> (K, N, in)


def _residual(u: Tensor, v: Tensor, plan: _Plan) -> Tensor:
    """u + v for members with a residual connection, u for the others (a where, so no -0/+0 drift)."""
    if plan.residual_mode == "all":
        return u + v
    if plan.residual_mode == "none":
        return u
    return torch.where(plan.residual.view(-1, 1, 1), u + v, u)


class _StackedMLPFunction(torch.autograd.Function):
    """K MLPs in training mode: x (K, N, 32) -> (K, N, 48); backward by hand (per-model reductions)."""

    @staticmethod
    @autocast_forward
    def forward(ctx, x, plan, *tensors):
        P = dict(zip(plan.names, tensors))
        saved, v = [], None
        for u, prefix in enumerate(plan.units):
            if u == 0:
                v, s = _dense_forward(x, P, prefix, plan, 0)
            elif u % 2 == 1:  # first unit of a residual block: remember the block input
                block_in = v
                v, s = _dense_forward(v, P, prefix, plan, u)
            else:
                v, s = _dense_forward(v, P, prefix, plan, u)
                v = _residual(v, block_in, plan)
            saved.append(s)
        We, n, d = _clip(P["head.weight"], plan.max_norm) if plan.any_max_norm else (P["head.weight"], None, None)
        out = torch.baddbmm(P["head.bias"].unsqueeze(1), v, We.transpose(1, 2))  # (K, N, H) @ (K, H, 48)
        saved.append(dict(a=v, W=P["head.weight"], We=We, n=n, d=d))
        ctx.plan, ctx.saved = plan, saved
        return out

    @staticmethod
    @autocast_backward
    def backward(ctx, g_out):
        plan, saved = ctx.plan, ctx.saved
        g_out = g_out.contiguous()
        grads: dict[str, Tensor] = {"head.bias": per_model_sum(g_out, 0)}  # (K, 48)
        head = saved[-1]
        gWe = torch.bmm(g_out.transpose(1, 2), head["a"])  # (K, 48, N) @ (K, N, H) -> (K, 48, H)
        grads["head.weight"] = (_clip_backward(head["W"], gWe, head["n"], head["d"], plan.max_norm)
                                if plan.any_max_norm else gWe)
        g = torch.bmm(g_out, head["We"])  # (K, N, 48) @ (K, 48, H) -> (K, N, H)
        for u in range(len(plan.units) - 1, 0, -2):  # residual blocks, last first: units (u-1, u)
            g_block_out = g
            g = _dense_backward(g, saved[u], plan.units[u], plan, u, grads, True)
            g = _dense_backward(g, saved[u - 1], plan.units[u - 1], plan, u - 1, grads, True)
            g = _residual(g, g_block_out, plan)  # + the skip path's gradient where residual
        _dense_backward(g, saved[0], plan.units[0], plan, 0, grads, False)
        ctx.saved = ctx.plan = None
        return (None, None, *(grads[n] for n in plan.names))


class MLPStack(ModuleStack):
    """K Martinez MLPs of one shape (seeds, or dropout / residual / max_norm variants) in training mode."""

    packable = ("dropout", "residual", "max_norm")

    @classmethod
    def packs_on(cls, model_params: dict, device_type: str) -> bool:
        """CUDA: always. CPU: up to width 512. K = 4 packed vs 4 sequential steps on the 2-core machine
        (batch 64, ``bench_pack``): 2.01x at width 128, 1.80x at 256, 1.25x at 512, 1.08x at 768, and
        0.82-1.11x at the paper's 1024 (K-times-larger fresh temporaries page-fault through glibc's
        allocator, and stacking adds no arithmetic intensity), so the paper width trains one by one."""
        if device_type == "cuda":
            return True
        return device_type == "cpu" and int(model_params.get("hidden_size", MLPLifter.Config.hidden_size)) <= 512

    def __init__(self, models: list[MLPLifter], device: torch.device):
        super().__init__(models, device)
        c0 = self.configs[0]
        if any(c.batch_norm != c0.batch_norm for c in self.configs):
            raise ValueError("MLPStack: members must agree on batch_norm (it changes the module structure).")
        self.batch_norm, self.H = c0.batch_norm, c0.hidden_size
        self.units = ["stem"] + [f"blocks.{i}.layers.{j}" for i in range(c0.num_blocks) for j in (0, 1)]
        self.names = list(self.shapes)
        flags = lambda key: torch.tensor([bool(getattr(c, key)) for c in self.configs], device=self.device)  # noqa: E731
        self.max_norm, self.residual = flags("max_norm"), flags("residual")  # (K,) bool
        self.any_max_norm = bool(self.max_norm.any())
        self.residual_mode = ("all" if bool(self.residual.all())
                              else "none" if not bool(self.residual.any()) else "mixed")
        self.dropout = [c.dropout for c in self.configs]

    def _masks(self, N: int, generators: list[torch.Generator]) -> list[Tensor | None]:
        """One (K, N, H) inverted-dropout mask per dense unit; member k draws its units in forward order
        from its own generator, as ``nn.Dropout`` draws from the global RNG (ones without dropout)."""
        if all(p == 0.0 for p in self.dropout):
            return [None] * len(self.units)
        masks = []
        for _ in self.units:
            m = torch.empty(self.K, N, self.H, device=self.device)
            masks.append(m)
        for k, p in enumerate(self.dropout):
            for m in masks:
                if p == 0.0:
                    m[k].fill_(1.0)
                else:
                    m[k].bernoulli_(1.0 - p, generator=generators[k]).div_(1.0 - p)  # as nn.Dropout draws
        return masks

    def forward(self, x: Tensor, generators: list[torch.Generator]) -> Tensor:
        """Training-mode forward (batch statistics, dropout, running-stat update): (K, B, T, 32) -> (K, B, T, 48)."""
        K, B, T, D = x.shape
        plan = _Plan(self, self._masks(B * T, generators))
        xf = x.reshape(K, B * T, D)  # (K, B, T, 32) -> (K, B*T, 32): frames are independent samples
        P = self.params
        out = _StackedMLPFunction.apply(xf, plan, *(P[n] for n in self.names))  # (K, B*T, 48)
        return out.view(K, B, T, OUTPUT_DIM)  # (K, B*T, 48) -> (K, B, T, 48)

    def losses(self, x: Tensor, y: Tensor, stats: list[NormStats], generators: list[torch.Generator]) -> Tensor:
        """Each member's own ``Lifter.loss`` of its slice of the stacked prediction, (K,)."""
        pred = self.forward(x, generators)  # (K, B, T, 48)
        return torch.stack([model.loss(p, t, s)  # per member: (B, T, 48) each
                            for model, p, t, s in zip(self.models, pred.unbind(0), y.unbind(0), stats)])  # (K,)


class MLPSpeed(SpeedPath):
    """``MLPLifter.speed_path``: the stacked training step (evaluation is the readable model)."""

    stack = MLPStack
