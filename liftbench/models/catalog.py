"""Descriptions of the registered lifters (for `liftbench models` and the Python API)."""

from __future__ import annotations

import dataclasses
from typing import Any

from liftbench.models import LIFTERS, create_lifter, trainable_parameters
from liftbench.models.base import build_config
from liftbench.models.size import count_parameters


def _contract_dict(contract) -> dict[str, Any]:
    return {"representation": dataclasses.asdict(contract.representation),
            "window": dataclasses.asdict(contract.window),
            "label": contract.label, "method": contract.method,
            "test_time_augmentation": contract.test_time_augmentation}


def _parameters(name: str, **params: Any) -> int:
    """Exact trainable parameters, counted on the meta device (no weights allocated for the 17 M-parameter
    variants); a lifter that cannot be built there is built for real."""
    cls = LIFTERS.get(name)
    count = count_parameters(name, build_config(cls.Config, params, where=f"lifter '{name}'"))
    return count if count is not None else trainable_parameters(create_lifter(name, **params))


def describe_lifters() -> list[dict[str, Any]]:
    """One dict per lifter: name, aliases, exact default trainable parameters, window, toggles, paper."""
    rows = []
    for entry in LIFTERS.entries():
        cls = entry.target
        contract = cls.contract_for(cls.Config())
        defaults = dataclasses.asdict(cls.Config())
        rows.append({
            "name": entry.name,
            "aliases": list(entry.aliases),
            "parameters": _parameters(entry.name),
            "reference_parameters": cls.reference_params,
            "reference_variants": {label: {"params": params, "parameters": _parameters(entry.name, **params),
                                           "reference_parameters": count}
                                   for label, (params, count) in getattr(cls, "reference_variants", {}).items()},
            "contract": _contract_dict(contract),
            "input_kind": cls.input_kind,
            "input_window": contract.window.size,
            "toggles": {k: defaults[k] for k in cls.toggles},
            "config_defaults": defaults,
            "train_defaults": dict(cls.train_defaults),
            "paper": cls.paper,
        })
    return rows
