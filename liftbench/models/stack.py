"""K lifters of identical shapes as one set of (K, ...) parameter tensors, trained as one computation.

Why one code path for one run and for a packed group: a reduction over a (K, ...) tensor may split
its work across threads differently when K changes, so "K packed models == K separate runs" only holds
bitwise if a single run IS the K = 1 case of the same code. Every stack below therefore

* keeps each parameter as ONE leaf tensor (K, *shape), keyed by the module's parameter names (so a
  member's slice is its ``state_dict`` entry and one fused Adam over the stacks is K separate Adams);
* does matmuls as ``bmm``/``baddbmm`` over the model dimension (bitwise equal to per-model ``mm``
  on this CPU) and every reduction per model on a contiguous slice of the same shape for any K;
* draws each member's dropout masks from that member's own ``torch.Generator`` in the same order
  whatever the other members do;
* turns toggles that do not change shapes (residual, dropout, ...) into per-member values, evaluated
  so that a member's numbers never depend on the other members' toggles.

``stack_lifters(models, device)`` picks the stack for a model class: ``mlp.MLPStack``,
``Seq2SeqStack`` (``seq2seq_fused.seq2seq_forward``), or ``FunctionalStack`` for anything else (each
member's own ``forward`` on its slices, K = 1 only unless the model draws dropout from
``dropout_generator``; it keeps plug-in lifters and seq2seq ``implementation="plain"`` trainable).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from liftbench.errors import ConfigError
from liftbench.models.base import Lifter, NormStats

_DROPOUT_STREAM = 0xD7  # spawn key: the dropout stream of a seed is independent of its data-order stream


def dropout_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A run's own dropout RNG, seeded from the run's seed (not equal to the weight-init stream)."""
    state = np.random.SeedSequence(int(seed), spawn_key=(_DROPOUT_STREAM,)).generate_state(1, np.uint64)[0]
    return torch.Generator(device=torch.device(device)).manual_seed(int(state >> np.uint64(1)))


def per_model_sum(t: Tensor, dim: int | tuple[int, ...] | None = None) -> Tensor:
    """Sum each model's slice of ``t`` (K, ...) over ``dim`` of the slice (None = all): -> (K, ...).

    One reduction per model on a contiguous slice whose shape does not depend on K, so a packed
    model sums in exactly the order a separate run does (measured: a (K, N, H) sum over dims (1, 2)
    differs between K = 1 and K = 3 at 2 threads)."""
    slices = t.contiguous().unbind(0)  # K x (...) contiguous
    return torch.stack([s.sum() if dim is None else s.sum(dim) for s in slices])


def keep_mask_(out: Tensor, keep: float, generator: torch.Generator | None) -> Tensor:
    """Fill ``out`` in place with inverted-dropout values: 1/keep with probability ``keep``, else 0.

    One uniform draw per entry, compared with ``keep`` (P(u < keep) = keep for u in [0, 1)), then
    divided by ``keep`` like ``tf.nn.dropout``. Why not ``bernoulli_``: on the project CPU it takes
    ~12 ms for one seq2seq step's (5, T, B, H) masks, ``uniform_`` + compare ~4 ms, same distribution.
    Every seq2seq dropout mask (plain and fast paths, single and packed runs) is drawn here; the MLP
    keeps ``bernoulli_``, the draw ``nn.Dropout`` makes, so its stack equals the module path."""
    return out.uniform_(generator=generator).lt_(keep).div_(keep)


_PAD = 16  # floats: one 64-byte line, a multiple of every SIMD width the fused Adam kernel uses


class ModuleStack:
    """Parameters and buffers of K same-shaped lifters as (K, ...) tensors keyed by module names.

    Each parameter is stored as ONE leaf ``flat`` (K, n_pad): member k's n values, padded with zeros
    to a multiple of 16. Why: the fused Adam kernel handles the last ``numel % 8`` elements of a
    tensor with scalar code that rounds differently from its vector code, so with (K, n) leaves and
    n not a multiple of 8 a member's last values would take a different path for different K
    (measured). Padded, every member's values take the vector path for any K. ``params`` gives the
    (K, *shape) views used by the forward; their gradients land in ``flat`` (zeros in the padding,
    where Adam then leaves the zero weights untouched)."""

    packable: ClassVar[tuple[str, ...]] = ()  # Config fields that may differ between members

    @classmethod
    def packs_on(cls, model_params: dict, device_type: str) -> bool:
        """Whether a packed step of this configuration measured at least as fast as K sequential ones
        on ``device_type`` (``liftbench bench``); where not, ``--pack`` trains its runs one at a time
        (the same numbers either way)."""
        return device_type in ("cpu", "cuda")

    def __init__(self, models: list[Lifter], device: torch.device):
        if not models:
            raise ConfigError("A stack needs at least one model.")
        self.K = len(models)
        self.device = torch.device(device)
        self.configs = [m.config for m in models]
        named = [dict(m.named_parameters()) for m in models]
        shapes = {n: p.shape for n, p in named[0].items()}
        for other in named[1:]:
            if {n: p.shape for n, p in other.items()} != shapes:
                raise ConfigError(f"Cannot pack {type(models[0]).__name__} models of different parameter shapes.")
        self.shapes = {n: tuple(p.shape) for n, p in named[0].items() if p.requires_grad}
        self.flat: dict[str, Tensor] = {}
        with torch.no_grad():
            for n, shape in self.shapes.items():
                numel = int(np.prod(shape, dtype=np.int64))
                flat = torch.zeros(self.K, -(-numel // _PAD) * _PAD, device=self.device)  # (K, n_pad)
                flat[:, :numel] = torch.stack([d[n].detach().reshape(-1) for d in named]).to(self.device)  # (K, n)
                self.flat[n] = flat.requires_grad_()
            bufs = [dict(m.named_buffers()) for m in models]
            self.buffers = {n: torch.stack([b[n] for b in bufs]).to(self.device) for n in bufs[0]}  # (K, *shape)

    @property
    def params(self) -> dict[str, Tensor]:
        """(K, *shape) views of the flat leaves (fresh each call, so autograd sees the current values)."""
        return {n: f[:, : int(np.prod(self.shapes[n], dtype=np.int64))].view(self.K, *self.shapes[n])
                for n, f in self.flat.items()}  # (K, n_pad) -> (K, n) -> (K, *shape)

    def parameters(self) -> list[Tensor]:
        """The flat leaves in the modules' parameter order (index i = parameter i of each member)."""
        return list(self.flat.values())

    def member_tensor(self, name: str, value: Tensor, k: int) -> Tensor:
        """Member k's (*shape) copy of a flat (K, n_pad) tensor such as an Adam moment of ``name``."""
        shape = self.shapes[name]
        return value[k, : int(np.prod(shape, dtype=np.int64))].reshape(shape).clone()

    def stack_tensors(self, name: str, values: list[Tensor]) -> Tensor:
        """K members' (*shape) tensors of ``name`` -> the flat (K, n_pad) layout (zero padding)."""
        flat = torch.zeros_like(self.flat[name], requires_grad=False)
        flat[:, : values[0].numel()] = torch.stack([v.reshape(-1) for v in values]).to(flat)  # (K, n)
        return flat

    @torch.no_grad()
    def write_back(self, k: int, module: Lifter) -> None:
        """Copy member k's slices into ``module`` (its own parameters and buffers, on their device)."""
        params = self.params
        for n, p in module.named_parameters():
            if n in params:
                p.copy_(params[n][k])
        for n, b in module.named_buffers():
            if n in self.buffers:
                b.copy_(self.buffers[n][k])

    def losses(self, x: Tensor, y: Tensor, stats: list[NormStats], generators: list[torch.Generator]) -> Tensor:
        """Training losses (K,) of windows x (K, B, T, 32) against y (K, B, T, 48), differentiable in params."""
        raise NotImplementedError


class FunctionalStack(ModuleStack):
    """Any lifter: each member's own ``forward``/``loss`` run on its parameter slices, one after another."""

    def __init__(self, models: list[Lifter], device: torch.device):
        super().__init__(models, device)
        self.models = models

    def losses(self, x, y, stats, generators):
        from torch.func import functional_call

        slices = {n: p.unbind(0) for n, p in self.params.items()}  # K x (*shape) views of each leaf
        out = []
        for k, model in enumerate(self.models):
            model.train()
            if hasattr(model, "dropout_generator"):
                model.dropout_generator = generators[k]
            tensors = {n: s[k] for n, s in slices.items()} | {n: b[k] for n, b in self.buffers.items()}
            pred = functional_call(model, tensors, (x[k],))  # (B, T, 48)
            out.append(model.loss(pred, y[k], stats[k]))
            if hasattr(model, "dropout_generator"):
                model.dropout_generator = None
        return torch.stack(out)  # (K,)


class Seq2SeqStack(ModuleStack):
    """Hossain seq2seq (``implementation="fast"``) through ``seq2seq_fused.seq2seq_forward`` with K models."""

    packable = ("residual", "dropout", "smoothness")

    def __init__(self, models: list[Lifter], device: torch.device):
        super().__init__(models, device)
        c0 = self.configs[0]
        self.layer_norm, self.eps, self.H = c0.layer_norm, c0.layer_norm_eps, c0.hidden_size
        self.residual = torch.tensor([1.0 if c.residual else 0.0 for c in self.configs], device=self.device)  # (K,)
        self.smooth_weights = models[0].smooth_weights.to(self.device)  # (48,)

    def _masks(self, T: int, B: int, generators: list[torch.Generator]) -> Tensor | None:
        """(K, 5, T, B, H): member k's masks drawn in ONE call from its generator, exactly as
        ``Seq2SeqLifter._dropout_masks`` draws them; all ones for a member without dropout."""
        if all(c.dropout == 0.0 for c in self.configs):
            return None
        masks = torch.empty(self.K, 5, T, B, self.H, device=self.device)
        for k, c in enumerate(self.configs):
            if c.dropout == 0.0:
                masks[k].fill_(1.0)
            else:
                keep = 1.0 - c.dropout
                keep_mask_(masks[k], keep, generators[k])
        return masks

    def losses(self, x, y, stats, generators):
        from liftbench.models.seq2seq_fused import seq2seq_forward

        K, B, T, _ = x.shape
        pred = seq2seq_forward(self.params, x, self._masks(T, B, generators), self.residual, self.layer_norm,
                               self.eps)  # (K, B, T, 48)
        out = []
        for k, (p, t) in enumerate(zip(pred.unbind(0), y.unbind(0))):  # per member, as Seq2SeqLifter.loss
            pred_mm, gt_mm = stats[k].unnormalize_output(p), stats[k].unnormalize_output(t)  # (B, T, 48) mm
            d = gt_mm - pred_mm
            loss = (d * d).sum() / d.numel()
            beta = self.configs[k].smoothness
            if beta > 0.0 and T > 1:
                v = pred_mm[:, 1:] - pred_mm[:, :-1]  # (B, T-1, 48) predicted velocities
                s = self.smooth_weights * (v * v)
                loss = loss + beta * (s.sum() / s.numel())
            out.append(loss)
        return torch.stack(out)  # (K,)


def stack_class(model: Lifter) -> type[ModuleStack]:
    """The stacked implementation of a lifter instance (FunctionalStack when it has no dedicated one)."""
    from liftbench.models.mlp import MLPLifter, MLPStack
    from liftbench.models.seq2seq import Seq2SeqLifter

    if isinstance(model, MLPLifter):
        return MLPStack
    if isinstance(model, Seq2SeqLifter) and model.config.implementation == "fast":
        try:
            import liftbench.models.seq2seq_fused  # noqa: F401
        except ImportError:
            return FunctionalStack
        return Seq2SeqStack
    return FunctionalStack


def stack_lifters(models: list[Lifter], device: torch.device) -> ModuleStack:
    """Stack K lifters of one class and shape; K > 1 needs a dedicated stack or per-model dropout RNGs."""
    cls = stack_class(models[0])
    if any(stack_class(m) is not cls for m in models):
        raise ConfigError("Cannot pack lifters of different classes or implementations.")
    if len(models) > 1 and cls is FunctionalStack and not hasattr(models[0], "dropout_generator"):
        raise ConfigError(f"{type(models[0]).__name__} has no stacked implementation; train its runs one at a time.")
    return cls(models, device)
