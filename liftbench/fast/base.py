"""The speed-path API (re-exported by ``liftbench.fast``, whose docstring tells the why): the
``SpeedPath`` a lifter names, the ``disabled()`` switch, and the evaluator's ``predict_frames`` entry."""


from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
from collections.abc import Iterator
from typing import Any, ClassVar

import torch

from liftbench.errors import ConfigError
from liftbench.models.base import Lifter

_ENABLED: contextvars.ContextVar[bool] = contextvars.ContextVar("liftbench_fast_enabled", default=True)


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Inside this block every lifter runs its readable model: no stacks, no folded evaluation."""
    token = _ENABLED.set(False)
    try:
        yield
    finally:
        _ENABLED.reset(token)


def enabled() -> bool:
    """Whether speed paths are used here (False inside ``disabled()``)."""
    return _ENABLED.get()


class SpeedPath:
    """What a lifter's speed path may provide. The defaults are the readable model itself."""

    stack: ClassVar[type | None] = None  # a fast.stack.ModuleStack subclass: K same-shaped members as one computation

    @classmethod
    def predict_frames(cls, model: Lifter, inputs: torch.Tensor, index: torch.Tensor, batch_size: int,
                       segments: list[tuple[int, int]] | None) -> torch.Tensor | None:
        """A faster ``Lifter.predict_frames`` computing the same function, or None (use the model's)."""
        return None

    @classmethod
    def plain_forward(cls, model: Lifter, x: torch.Tensor) -> torch.Tensor:
        """The obvious forward ``liftbench bench`` times as "plain": (B, T, D_in) -> (B, T_out, D_out)."""
        return model(x)

    @classmethod
    def plain_predict(cls, model: Lifter, x: torch.Tensor) -> torch.Tensor:
        """The aligned output of each window through ``plain_forward`` (bench's plain evaluator):
        (B, T, D_in) -> (B, D_out)."""
        out = cls.plain_forward(model, x)  # (B, T_out, D_out)
        return out[:, 0] if out.shape[1] == 1 else out[:, model.contract.window.aligned_position]

    @classmethod
    def executed_flops(cls, model: Lifter) -> dict[str, float]:
        """FLOPs each path really executes where they differ from ``Lifter.flops_per_frame`` (keys
        ``train_plain``, ``train_production``, ``eval_plain``, ``eval_production``; per training window /
        per evaluated frame). Empty: both paths execute the nominal count."""
        return {}


@functools.cache
def _resolve(spec: str, owner: str) -> type[SpeedPath]:
    module_name, _, attr = spec.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"lifter {owner}: speed_path {spec!r} cannot be imported ({type(exc).__name__}: {exc}); "
                          "fix the 'module:Class' string or remove the attribute.") from None
    if not (isinstance(found, type) and issubclass(found, SpeedPath)):
        raise ConfigError(f"lifter {owner}: speed_path {spec!r} is not a liftbench.fast.SpeedPath subclass.")
    return found


def speed_path(lifter: Any) -> type[SpeedPath]:
    """The speed path a lifter class (or instance) declares, or the plain ``SpeedPath`` defaults."""
    cls = lifter if isinstance(lifter, type) else type(lifter)
    spec = getattr(cls, "speed_path", "") or ""
    return _resolve(spec, cls.__name__) if spec else SpeedPath


def active_speed_path(lifter: Any) -> type[SpeedPath]:
    """``speed_path(lifter)`` unless speed paths are ``disabled()`` here."""
    return speed_path(lifter) if enabled() else SpeedPath


@torch.no_grad()
def predict_frames(model: Lifter, inputs: torch.Tensor, index: torch.Tensor, batch_size: int,
                   segments: list[tuple[int, int]] | None = None) -> torch.Tensor:
    """The evaluator's entry point: the speed path's ``predict_frames`` where it has one, else the model's."""
    out = active_speed_path(model).predict_frames(model, inputs, index, batch_size, segments)
    return model.predict_frames(inputs, index, batch_size, segments) if out is None else out
