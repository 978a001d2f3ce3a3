"""Helpers for lifters that read and write an official code base's state dict (``liftbench import-checkpoint``).

A lifter with a published checkpoint layout declares, in its own file (nothing outside ``models/`` asks
for a lifter by name):

* ``checkpoint_format``: the FORMAT name users pass (``import-checkpoint FORMAT FILE``);
* ``official_prefix``: liftbench key = prefix + official key (``"net."`` when the network is ``self.net``);
* ``official_key_rewrites``: (regex, replacement) pairs turning another tool's names into the official
  ones (mmpose's MotionBERT), applied in order to every key;
* ``official_extras``: the non-weight entries the published checkpoint dict holds beside ``model_pos``;
* ``config_from_official(state, given)`` -> (values read from the tensor shapes, {name: (published
  default, why the weights cannot tell)}); ``given`` are the user's ``--set`` values.

Shapes are read here and nowhere else; a missing or malformed tensor is one ``CheckpointError`` line
naming the key (the caller adds the file name). Weights are compared key by key with the model the
config builds (``wild.checkpoints``), so a wrongly shaped tensor names both shapes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from liftbench.errors import CheckpointError


def shape_of(state: Mapping[str, torch.Tensor], key: str, ndim: int, what: str) -> tuple[int, ...]:
    """The shape of ``state[key]``, which must exist and have ``ndim`` dimensions (``what``: the layout's name)."""
    value = state.get(key)
    if value is None:
        raise CheckpointError(f"the state dict has no tensor '{key}', which every {what} state dict holds; "
                              "it is another model's checkpoint (check FORMAT) or an incomplete file")
    if not torch.is_tensor(value) or value.dim() != ndim:
        shape = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
        raise CheckpointError(f"tensor '{key}' has shape {shape}, not {ndim}-dimensional as in every {what} "
                              "state dict; it is another model's checkpoint (check FORMAT)")
    return tuple(int(n) for n in value.shape)


def count_indexed(state: Mapping[str, Any], pattern: str) -> int:
    """How many consecutive indices i = 0, 1, ... have a key matching ``pattern.format(i=i)`` exactly."""
    n = 0
    while pattern.format(i=n) in state:
        n += 1
    return n


def rewrite_keys(keys: list[str], rules: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """{original key: rewritten key} for the keys some rule changes (rules applied in order, each once)."""
    out = {}
    for key in keys:
        new = key
        for pattern, replacement in rules:
            new = re.sub(pattern, replacement, new)
        if new != key:
            out[key] = new
    return out


def ratio(hidden: int, dim: int, key: str) -> float:
    """An MLP ratio hidden / dim that ``int(dim * ratio)`` turns back into ``hidden``."""
    value = hidden / dim
    if int(dim * value) != hidden:
        raise CheckpointError(f"tensor '{key}' has {hidden} hidden units for width {dim}, not a ratio the model "
                              "can be built with")
    return value


def joints_check(n: int, key: str) -> None:
    if n != 17:
        raise CheckpointError(f"tensor '{key}' is for {n} joints; liftbench lifts the 17 Human3.6M joints")
