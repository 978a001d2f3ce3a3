"""Descriptions of the registered lifters (for `liftbench models` and the Python API)."""

from __future__ import annotations

import dataclasses
from typing import Any

from liftbench.models import LIFTERS, create_lifter, trainable_parameters


def _contract_dict(contract) -> dict[str, Any]:
    return {"representation": dataclasses.asdict(contract.representation), "window": dataclasses.asdict(contract.window),
            "label": contract.label, "method": contract.method, "test_time_augmentation": contract.test_time_augmentation}


def describe_lifters() -> list[dict[str, Any]]:
    """One dict per lifter: name, aliases, exact default trainable parameters, window, toggles, paper."""
    rows = []
    for entry in LIFTERS.entries():
        cls = entry.target
        model = create_lifter(entry.name)
        defaults = dataclasses.asdict(cls.Config())
        rows.append({
            "name": entry.name,
            "aliases": list(entry.aliases),
            "parameters": trainable_parameters(model),
            "reference_parameters": cls.reference_params,
            "reference_variants": {label: {"params": params, "parameters": trainable_parameters(create_lifter(entry.name, **params)),
                                           "reference_parameters": count}
                                   for label, (params, count) in getattr(cls, "reference_variants", {}).items()},
            "contract": _contract_dict(model.contract),
            "input_kind": cls.input_kind,
            "input_window": model.window,
            "toggles": {k: defaults[k] for k in cls.toggles},
            "config_defaults": defaults,
            "train_defaults": dict(cls.train_defaults),
            "paper": cls.paper,
        })
    return rows
