"""What a liftbench checkpoint must hold, checked before any value of it is used.

``torch.load(weights_only=True)`` guarantees a crafted file runs no code, not that it has the keys, types
and shapes the trainer expects: a file with a key missing, an epoch stored as text, a weight or an Adam
moment of another shape, or a random-generator state of the wrong kind gave a KeyError / RuntimeError
traceback deep in ``evaluate`` or ``train --resume``. These checks turn each into one ``CheckpointError``
line naming the file and the fix.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from liftbench.errors import CheckpointError, one_line

# What a checkpoint must hold, and of which type (bool is checked apart: it is also an int).
_CHECKPOINT_FIELDS: dict[str, tuple[type, ...]] = {
    "config": (dict,), "model": (dict,), "optimizer": (dict,), "norm_stats": (dict,), "epoch": (int,),
    "step_in_epoch": (int,), "global_step": (int,), "loss_sum": (float, int), "loss_count": (int,),
    "history": (list,), "finished": (bool,)}
_RNG_FIELDS = ("dropout_rng", "torch_rng")  # optional in older checkpoints; uint8 state vectors when present
_JSON_SCALARS = (int, float, str, bool, type(None))


def checkpoint_problem(ckpt: dict[str, Any]) -> str:
    """'' if ``ckpt`` has every key of the format with the right type, else what is wrong (one phrase).
    Checked before any value is used, so a damaged file is one line instead of a KeyError deep in resume."""
    missing = [k for k in _CHECKPOINT_FIELDS if k not in ckpt]
    if missing:
        return f"missing key(s) {', '.join(missing)}"
    for key, types in _CHECKPOINT_FIELDS.items():
        value = ckpt[key]
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            return f"'{key}' is a {type(value).__name__}, not {' or '.join(t.__name__ for t in types)}"
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            return f"'{key}' is negative ({value})"
    if not math.isfinite(float(ckpt["loss_sum"])):
        return f"'loss_sum' is not finite ({ckpt['loss_sum']})"
    config = ckpt["config"]
    if not all(isinstance(config.get(section), dict) for section in ("model", "train", "data")):
        return "'config' lacks its model/train/data tables"
    for key in ("model", "norm_stats"):
        if not all(isinstance(k, str) and torch.is_tensor(v) for k, v in ckpt[key].items()):
            return f"'{key}' is not a mapping of names to tensors"
    opt = ckpt["optimizer"]
    if not isinstance(opt.get("state"), dict) or not isinstance(opt.get("param_groups"), list):
        return "'optimizer' lacks its state / param_groups"
    if not all(isinstance(r, dict) and all(isinstance(k, str) and isinstance(v, _JSON_SCALARS) for k, v in r.items())
               for r in ckpt["history"]):
        return "'history' is not a list of records of numbers and strings"
    for key in _RNG_FIELDS:
        value = ckpt.get(key)
        if value is not None and not (torch.is_tensor(value) and value.dtype == torch.uint8 and value.dim() == 1):
            return f"'{key}' is not a random-generator state (a 1-D uint8 tensor)"
    return ""


def optimizer_problem(opt_state: dict[str, Any], params: list[torch.Tensor]) -> str:
    """'' if the saved Adam state fits these parameters (index and shape of every moment), else what is wrong."""
    for index, entry in opt_state["state"].items():
        if not isinstance(index, int) or not 0 <= index < len(params) or not isinstance(entry, dict):
            return f"optimizer state for parameter {index!r}, but the model has {len(params)} parameters"
        for name, value in entry.items():
            if not torch.is_tensor(value):
                return f"optimizer state '{name}' of parameter {index} is not a tensor"
            if value.dim() > 0 and tuple(value.shape) != tuple(params[index].shape):
                return (f"optimizer state '{name}' of parameter {index} has shape {tuple(value.shape)}, the parameter "
                        f"{tuple(params[index].shape)}")
    return ""


def load_model_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], path: Path) -> None:
    """``load_state_dict`` whose missing keys and wrong shapes are a one-line ``CheckpointError``."""
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, ValueError) as exc:
        detail = one_line(exc)
        raise CheckpointError(f"{path} does not fit the configured model ({detail[:300]}); it was written by "
                              "another model or version: delete the run directory and retrain it.") from exc
