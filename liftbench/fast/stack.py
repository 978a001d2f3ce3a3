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

``stack_lifters(models, device)`` picks the stack a lifter's speed path declares (``fast.mlp.MLPStack``,
``fast.seq2seq.Seq2SeqStack``), or ``FunctionalStack`` for anything else (each member's own
``forward`` and ``loss`` on its slices, K = 1 only unless the model draws dropout from
``dropout_generator``; it trains plug-in lifters, and every lifter inside ``liftbench.fast.disabled()``).
Every stack scores a member with that member's own ``Lifter.loss``: the loss is written once, in the
model file.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from liftbench.data.normalize import NormStats
from liftbench.errors import ConfigError
from liftbench.fast.base import active_speed_path
from liftbench.models.base import Lifter

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
        self.models = models  # the members, for their own ``loss`` (and forward, in FunctionalStack)
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
        ("Training losses (K,) of windows x (K, B, T, D_in) against y (K, B, T_out, D_out), "
         "differentiable in params.")
        raise NotImplementedError

    def set_bn_momentum(self, momentum: float) -> None:
        """Apply a BatchNorm momentum schedule (``train.bn_momentum_start``); a stack with its own fixed
        BatchNorm code cannot, and says so instead of silently ignoring the schedule."""
        raise ConfigError(f"train.bn_momentum_start is set, but {type(self).__name__} keeps the lifter's own BatchNorm "
                          "momentum; unset train.bn_momentum_start / bn_momentum_end for this lifter.")


class FunctionalStack(ModuleStack):
    """Any lifter: each member's own ``forward``/``loss`` run on its parameter slices, one after another."""

    def set_bn_momentum(self, momentum: float) -> None:
        """Every BatchNorm of every member (``functional_call`` reads the modules' momentum)."""
        for model in self.models:
            for module in model.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.momentum = momentum

    def losses(self, x, y, stats, generators):
        from torch.func import functional_call

        slices = {n: p.unbind(0) for n, p in self.params.items()}  # K x (*shape) views of each leaf
        out = []
        for k, model in enumerate(self.models):
            model.train()
            if hasattr(model, "dropout_generator"):
                model.dropout_generator = generators[k]
            tensors = {n: s[k] for n, s in slices.items()} | {n: b[k] for n, b in self.buffers.items()}
            pred = functional_call(model, tensors, (x[k],))  # (B, T, D_in) -> (B, T_out, D_out)
            out.append(model.loss(pred, y[k], stats[k]))
            if hasattr(model, "dropout_generator"):
                model.dropout_generator = None
        return torch.stack(out)  # (K,)


def stack_class(model: Lifter | type[Lifter]) -> type[ModuleStack]:
    """The stacked implementation of a lifter (its speed path's ``stack``; ``FunctionalStack`` when it has
    none or inside ``liftbench.fast.disabled()``)."""
    return active_speed_path(model).stack or FunctionalStack


def stack_lifters(models: list[Lifter], device: torch.device) -> ModuleStack:
    """Stack K lifters of one class and shape; K > 1 needs a dedicated stack or per-model dropout RNGs."""
    cls = stack_class(models[0])
    if any(type(m) is not type(models[0]) for m in models):
        raise ConfigError("Cannot pack lifters of different classes.")
    if len(models) > 1 and cls is FunctionalStack and not hasattr(models[0], "dropout_generator"):
        raise ConfigError(f"{type(models[0]).__name__} has no stacked implementation; train its runs one at a time.")
    return cls(models, device)
