"""Experiment configuration: one resolved, validated, hashable description of a run.

Precedence, in one place: the lifter's paper defaults < a TOML file (``--config``) < explicit CLI
options (``--epochs``, ``--seed``, ``--data`` ...) < ``--set key=value`` overrides. Unknown keys and
wrong types are one-line ``ConfigError``s that list the valid keys. TOML layout::

    [model]            # name + any field of the lifter's Config
    name = "seq2seq"
    hidden_size = 1024
    [train]            # fields of TrainConfig
    epochs = 100
    [data]             # fields of DataConfig
    name = "mocap-mini"
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liftbench.errors import ConfigError
from liftbench.models import LIFTERS
from liftbench.models.base import build_config, coerce_field, config_fields
from liftbench.models.size import check_model_size
from liftbench.values import CONFIG_MAX_BYTES, INT64_MAX, load_toml_capped, nesting_depth, printable


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation recipe. ``None`` means: the lifter's paper recipe (``Lifter.train_defaults``), else
    ``RECIPE_FALLBACKS`` (the Martinez/Hossain reference schedule)."""

    lr: float | None = None
    batch_size: int | None = None
    epochs: int | None = None
    lr_decay: float | None = None  # lr * lr_decay ** (step / lr_decay_steps), or ** epoch (lr_decay_every)
    lr_decay_steps: int | None = None
    lr_decay_every: str | None = None  # "step" (continuous, TF exponential_decay) | "epoch" (VideoPose3D)
    optimizer: str | None = None  # "adam" | "amsgrad" | "adamw"
    weight_decay: float | None = None  # AdamW's decoupled weight decay (MotionBERT 0.01, MixSTE 0.1)
    bn_momentum_start: float | None = None  # > 0: BatchNorm momentum of epoch e = start * (end/start)^(e/E)
    bn_momentum_end: float | None = None
    flip_augment: bool | None = None  # mirrored training windows (left/right swapped), as flip_mode says
    flip_mode: str | None = None  # "copy": every window also seen mirrored (VideoPose3D, MixSTE); "random": each
    #                               window mirrored with probability 1/2, drawn per step from the seed (MotionBERT)
    seed: int = 0
    max_windows_per_epoch: int = 0  # 0 = every training window each epoch; >0 = a seeded random subset
    checkpoint_every_s: float = 300.0  # mid-epoch checkpoints for long epochs (wall-clock, resume-exact)
    precision: str = "fp32"  # fp32 | tf32 (CUDA matmuls in TF32) | bf16 (autocast of forward + loss)

    def validate(self) -> None:
        check_finite("train", self)
        for name in ("lr", "batch_size", "epochs"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"train.{name} must be > 0, got {value}.")
        if not 0 <= self.seed < MAX_SEED:  # numpy/torch seeds are unsigned 64-bit: -1 crashed deep inside
            raise ConfigError(f"train.seed must be an integer in [0, 2**63), got {self.seed} (e.g. --seed 0).")
        if self.lr_decay is not None and not 0 < self.lr_decay <= 1:
            raise ConfigError(f"train.lr_decay must be in (0, 1], got {self.lr_decay}.")
        if (self.lr_decay_steps is not None and self.lr_decay_steps <= 0) or self.max_windows_per_epoch < 0:
            raise ConfigError("train.lr_decay_steps must be > 0 and train.max_windows_per_epoch >= 0.")
        for name, allowed in (("lr_decay_every", LR_DECAY_EVERY), ("optimizer", OPTIMIZERS), ("flip_mode", FLIP_MODES)):
            value = getattr(self, name)
            if value is not None and value not in allowed:
                raise ConfigError(f"train.{name} must be one of {', '.join(allowed)}, got '{value}'.")
        for name in ("bn_momentum_start", "bn_momentum_end"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(f"train.{name} is a BatchNorm momentum in [0, 1] (0 = the lifter's own), "
                                  f"got {value}.")
        if (self.bn_momentum_start or 0.0) > 0.0 and not (self.bn_momentum_end or 0.0) > 0.0:
            raise ConfigError("train.bn_momentum_start > 0 needs train.bn_momentum_end > 0 (the last epoch's "
                              "momentum).")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise ConfigError(f"train.weight_decay must be >= 0, got {self.weight_decay}.")
        if self.weight_decay and self.optimizer not in (None, "adamw"):
            raise ConfigError(f"train.weight_decay applies to optimizer=adamw only, not {self.optimizer}; set "
                              "train.optimizer=adamw or drop train.weight_decay.")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"train.precision must be one of {', '.join(PRECISIONS)}, got '{self.precision}'.")
        if self.checkpoint_every_s <= 0:
            raise ConfigError(f"train.checkpoint_every_s must be > 0 seconds, got {self.checkpoint_every_s}.")

    def bn_momentum(self, epoch: int) -> float | None:
        """The BatchNorm momentum of 0-based ``epoch`` under the schedule (None: no schedule)."""
        start, end = self.bn_momentum_start or 0.0, self.bn_momentum_end or 0.0
        if start <= 0.0:
            return None
        return start * (end / start) ** (epoch / self.epochs)


LR_DECAY_EVERY = ("step", "epoch")
OPTIMIZERS = ("adam", "amsgrad", "adamw")
FLIP_MODES = ("copy", "random")
# Recipe keys a lifter's ``train_defaults`` may set; unset keys fall back to the reference schedule.
RECIPE_FALLBACKS: dict[str, Any] = {"lr_decay": 0.96, "lr_decay_steps": 100000, "lr_decay_every": "step",
                                    "optimizer": "adam", "bn_momentum_start": 0.0, "bn_momentum_end": 0.0,
                                    "flip_augment": False, "weight_decay": 0.0, "flip_mode": "copy"}
# Keys added after runs already existed: hashed only when they differ from the fallback, so adding a
# recipe option never renames (and retrains) the runs that do not use it.
_LATER_RECIPE_KEYS = ("lr_decay_every", "optimizer", "bn_momentum_start", "bn_momentum_end", "flip_augment",
                      "weight_decay", "flip_mode")
PRECISIONS = ("fp32", "tf32", "bf16")
MAX_SEED = 2**63
# Train keys that do not change a single number (how often to checkpoint): not part of a run's identity.
NON_NUMERIC_TRAIN_KEYS = ("checkpoint_every_s",)


def identity_dict(config: dict[str, Any]) -> dict[str, Any]:
    """A resolved config dict without the keys that cannot change results (for hashing and resume checks).

    ``data.test_subset`` is hashed only when < 1 (added later: whole-test runs keep their ids). A run with
    ``data.subset`` < 1 is marked as subsetting its training data only: before, the subset truncated the test
    videos too, so such runs get new ids rather than reuse rows scored on a truncated test set."""
    train = {k: v for k, v in config.get("train", {}).items()
             if k not in NON_NUMERIC_TRAIN_KEYS and not (k in _LATER_RECIPE_KEYS and v == RECIPE_FALLBACKS[k])}
    data = {k: v for k, v in config.get("data", {}).items() if not (k == "test_subset" and v == 1.0)}
    if float(data.get("subset", 1.0)) < 1.0:
        data["subset_scope"] = "train"
    model = dict(config.get("model", {}))
    name = model.get("name")
    if isinstance(name, str) and name in LIFTERS:  # keys a lifter added later: hashed only off their default
        cls = LIFTERS.get(name)
        defaults = cls.Config()
        for key in cls.later_config_keys:
            if key in model and model[key] == getattr(defaults, key):
                del model[key]
    return {**config, "train": train, **({"data": data} if "data" in config else {}),
            **({"model": model} if "model" in config else {})}


@dataclass(frozen=True)
class DataConfig:
    name: str = "mocap-mini"
    keypoints: str = ""  # '' = the dataset's default 2D source ('gt')
    subset: float = 1.0  # keep the first fraction of every TRAINING sequence (quick runs); the test split stays whole
    test_subset: float = 1.0  # < 1: score only the first fraction of every test video (rows then say n_frames <
    #                           n_frames_expected and are not comparable with full-test-set numbers)
    train_subjects: tuple[str, ...] = ()  # () = the dataset's default split
    test_subjects: tuple[str, ...] = ()
    train_noise: float = 0.0  # sigma (px) of Gaussian noise added to the training 2D input

    def validate(self) -> None:
        check_finite("data", self)
        if not 0.0 < self.subset <= 1.0:
            raise ConfigError(f"data.subset must be in (0, 1], got {self.subset}.")
        if not 0.0 < self.test_subset <= 1.0:
            raise ConfigError(f"data.test_subset must be in (0, 1], got {self.test_subset}.")
        if self.train_noise < 0:
            raise ConfigError(f"data.train_noise must be >= 0 pixels, got {self.train_noise}.")


def check_finite(section: str, obj: Any) -> None:
    """Every float field of a config dataclass must be finite: a check written as ``x < 0`` lets NaN through
    (e.g. smoothness=nan silently switched the term off and wrote a config.toml that cannot be read back)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{section}.{f.name} must be a finite number, got {value}; "
                              f"set a real value (e.g. --set {f.name}=...).")


SECTIONS = ("model", "train", "data")
_SECTION_CLASSES = {"train": TrainConfig, "data": DataConfig}


@dataclass(frozen=True)
class ExperimentConfig:
    model: str
    model_params: dict[str, Any]  # every field of the lifter's Config, resolved
    train: TrainConfig
    data: DataConfig = field(default_factory=DataConfig)

    def lifter_config(self) -> Any:
        return build_config(LIFTERS.get(self.model).Config, self.model_params, where=f"model '{self.model}'")

    def resolved_train(self) -> TrainConfig:
        """TrainConfig with the lifter's paper defaults filled in for unset fields."""
        defaults = {**RECIPE_FALLBACKS, **LIFTERS.get(self.model).train_defaults}
        keys = (*RECIPE_FALLBACKS, "lr", "batch_size", "epochs")
        resolved = dataclasses.replace(self.train, **{k: defaults[k] for k in keys
                                                      if getattr(self.train, k) is None and k in defaults})
        resolved.validate()
        return resolved

    def to_dict(self) -> dict[str, Any]:
        train = dataclasses.asdict(self.resolved_train())
        data = dataclasses.asdict(self.data)
        data["train_subjects"] = list(data["train_subjects"])
        data["test_subjects"] = list(data["test_subjects"])
        return {"model": {"name": self.model, **self.model_params}, "train": train, "data": data}

    def config_hash(self) -> str:
        """Stable 12-hex hash of everything that changes the numbers (not device, paths, progress or
        checkpoint frequency)."""
        text = json.dumps(identity_dict(self.to_dict()), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def run_id(self) -> str:
        return f"{self.model}-{self.config_hash()}"

    def toggles(self) -> dict[str, Any]:
        cls = LIFTERS.get(self.model)
        return {k: self.model_params[k] for k in cls.toggles}


MAX_SET_VALUE = 10_000  # characters of one --set value


def parse_value(text: str) -> Any:
    """Parse a ``--set`` value as a TOML value (numbers, booleans, strings, arrays); bare words are strings.
    A value Python cannot hold (a 100,000-digit number, arrays nested 1,000 deep) is one ``ConfigError``."""
    if len(text) > MAX_SET_VALUE:
        raise ConfigError(f"--set value {printable(text, 30)} is {len(text)} characters long (at most "
                          f"{MAX_SET_VALUE}); pass a shorter value.")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    except (ValueError, RecursionError) as exc:  # int() digit limit, recursion in tomllib
        raise ConfigError(f"--set value {printable(text, 30)} cannot be read ({type(exc).__name__}); pass a "
                          "plain number, true/false, a string or a short list.") from exc
    if nesting_depth(value, 4) > 4:
        raise ConfigError(f"--set value {printable(text, 30)} is nested too deeply; pass a flat list.")
    return value


def parse_assignments(items: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got '{item}' (e.g. --set hidden_size=256).")
        key, value = item.split("=", 1)
        if not key.strip():
            raise ConfigError(f"--set expects key=value, got '{item}'.")
        out[key.strip()] = parse_value(value.strip())
    return out


def read_toml(path: str | Path) -> dict[str, Any]:
    """A run config file: a regular file of at most ``CONFIG_MAX_BYTES``, UTF-8, valid TOML nested at most
    ``TOML_MAX_DEPTH`` deep; anything else is one ``ConfigError`` naming it."""
    return load_toml_capped(path, "an existing TOML file to --config", CONFIG_MAX_BYTES)


def _valid_keys(model: str) -> dict[str, set[str]]:
    return {"model": set(config_fields(LIFTERS.get(model).Config)),
            "train": set(config_fields(TrainConfig)), "data": set(config_fields(DataConfig))}


def _route(key: str, model: str, where: str) -> tuple[str, str]:
    """Map 'section.key' or a bare key to (section, key); a bare key must be unambiguous."""
    valid = _valid_keys(model)
    if "." in key:
        section, name = key.split(".", 1)
        if section not in valid or name not in valid[section]:
            listing = "; ".join(f"{s}: {', '.join(sorted(v))}" for s, v in valid.items())
            raise ConfigError(f"{where}: unknown key '{printable(key)}'. Valid keys — {listing}.")
        return section, name
    owners = [s for s, names in valid.items() if key in names]
    if not owners:
        listing = "; ".join(f"{s}: {', '.join(sorted(v))}" for s, v in valid.items())
        raise ConfigError(f"{where}: unknown key '{printable(key)}'. Valid keys — {listing}.")
    if len(owners) > 1:
        raise ConfigError(f"{where}: key '{key}' is ambiguous ({', '.join(owners)}); write it as "
                          f"{' or '.join(f'{o}.{key}' for o in owners)}.")
    return owners[0], key


def _coerce(section_cls: type, name: str, value: Any, where: str) -> Any:
    hints = {f.name: f.type for f in dataclasses.fields(section_cls)}
    kind = str(hints[name])
    if "tuple" in kind:
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: '{name}' must be a list of names, got {printable(value)}.")
        return tuple(value)
    if kind.startswith("float") or kind == "float | None":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: '{name}' must be a number, got {printable(value)}.")
        return float(value)
    if kind.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: '{name}' must be an integer, got {printable(value)}.")
        return value
    if kind.startswith("str") and not isinstance(value, str):
        raise ConfigError(f"{where}: '{name}' must be a string, got {printable(value)}.")
    if kind.startswith("bool") and not isinstance(value, bool):
        raise ConfigError(f"{where}: '{name}' must be true or false, got {printable(value)}.")
    return value


def resolve_config(model: str | None = None, config_file: str | Path | None = None,
                   options: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None,
                   base: dict[str, Any] | None = None) -> ExperimentConfig:
    """Build an ``ExperimentConfig``: defaults < ``base`` dict < TOML file < ``options`` < ``overrides``.

    ``options`` and ``overrides`` map bare or dotted keys to values; ``None`` values are ignored.
    """
    layers: list[tuple[str, dict[str, Any]]] = []
    if base:
        layers.append(("suite/base config", base))
    if config_file:
        layers.append((str(config_file), read_toml(config_file)))
    file_model = None
    for where, layer in layers:
        unknown = sorted(set(layer) - set(SECTIONS))
        if unknown:
            raise ConfigError(f"{where}: unknown section(s) {', '.join(map(printable, unknown))}; valid sections: "
                              f"{', '.join(SECTIONS)}.")
        for section, body in layer.items():
            if not isinstance(body, dict):
                raise ConfigError(f"{where}: '{section}' must be a table, got {section} = {printable(body)}; write a "
                                  f"[{section}] section with key = value lines under it"
                                  + (' (e.g. [model] then name = "...")' if section == "model" else "") + ".")
        file_model = layer.get("model", {}).get("name", file_model)
        if file_model is not None and not isinstance(file_model, str):
            raise ConfigError(f"{where}: [model] name must be a lifter name (a string), got {printable(file_model)}.")
    model_name = model or file_model
    if not model_name:
        raise ConfigError("No model given: name one (e.g. `liftbench train seq2seq`) or set [model] name in the "
                          "TOML file.")
    model_name = LIFTERS.canonical(model_name)

    values: dict[str, dict[str, Any]] = {"model": {}, "train": {}, "data": {}}
    origin: dict[str, str] = {}  # key -> the file or option that set it last (named in range errors below)
    lifter_cls = LIFTERS.get(model_name)
    for where, layer in layers:
        for section in SECTIONS:
            for key, value in layer.get(section, {}).items():
                if section == "model" and key == "name":
                    continue
                sec, name = _route(f"{section}.{key}", model_name, where)
                values[sec][name] = _checked_type(sec, name, _finite(value, f"{where}: '{section}.{key}'"),
                                                  lifter_cls, f"{where}: [{sec}]")
                origin[name] = where
    for where, layer in (("option", options or {}), ("--set", overrides or {})):
        for key, value in layer.items():
            if value is None:
                continue
            sec, name = _route(key, model_name, where)
            values[sec][name] = _checked_type(sec, name, _finite(value, f"{where} {key}"), lifter_cls, where)
            origin[name] = where

    try:
        lifter_cfg = build_config(lifter_cls.Config, values["model"], where=f"model '{model_name}'")
        check_finite("model", lifter_cfg)
        check_model_size(model_name, lifter_cfg)
        sections = {}
        for sec, cls in _SECTION_CLASSES.items():
            coerced = {k: _coerce(cls, k, v, f"[{sec}]") for k, v in values[sec].items()}
            obj = cls(**coerced)
            obj.validate()
            sections[sec] = obj
    except ConfigError as exc:  # a value out of range: say which file or option set it
        sources = [where for key, where in origin.items() if key in str(exc) and where not in str(exc)]
        if not sources:
            raise
        raise ConfigError(f"{sources[-1]}: {exc}") from exc
    return ExperimentConfig(model_name, dataclasses.asdict(lifter_cfg), sections["train"], sections["data"])


def _checked_type(sec: str, name: str, value: Any, lifter_cls: type, where: str) -> Any:
    """Refuse a value of the wrong type where it is given (the file or option), not after merging."""
    if sec == "model":
        coerce_field(lifter_cls.Config, name, value, where)
    else:
        _coerce(_SECTION_CLASSES[sec], name, value, where)
    return value


def config_from_dict(d: dict[str, Any], where: str = "saved config") -> ExperimentConfig:
    """Rebuild a config saved by ``to_dict`` (run directories, checkpoints); ``where`` names its file."""
    if not isinstance(d, dict) or not isinstance(d.get("model"), dict) or not isinstance(d["model"].get("name"), str):
        raise ConfigError(f"{where}: the saved config has no [model] table with a lifter name; "
                          "it was not written by liftbench train: retrain the run.")
    model = dict(d["model"])
    name = model.pop("name")
    if name in LIFTERS:  # runs saved by an older liftbench may hold keys since retired (same numbers)
        for key in LIFTERS.get(name).retired_config_keys:
            model.pop(key, None)
    return resolve_config(name, base={"model": model, "train": d.get("train", {}), "data": d.get("data", {})})


def _finite(value: Any, where: str) -> Any:
    """TOML and ``--set`` accept nan, inf and integers of any size: refuse them where they are given, before
    any work (an integer beyond int64 overflows every float or tensor it reaches). Lists are checked item by item."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {value}.")
    if isinstance(value, int) and not isinstance(value, bool) and not -INT64_MAX <= value <= INT64_MAX:
        raise ConfigError(f"{where} must be a number that fits in 64 bits, got {printable(value)}.")
    if isinstance(value, list):
        for item in value:
            _finite(item, where)
    return value


def toml_dumps(d: dict[str, Any]) -> str:
    """Minimal TOML writer for resolved configs (flat sections of scalars and string lists)."""
    lines = []
    for section, body in d.items():
        lines.append(f"[{section}]")
        for key, value in body.items():
            if value is None:
                continue
            lines.append(f"{key} = {json.dumps(value) if not isinstance(value, bool) else str(value).lower()}")
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------- the paper's recipe, for banners
PAPER_DATASET = "h36m"
BANNER = "not the paper's recipe/data, so rankings may not transfer"


def recipe_differences(cfg: Any) -> list[str]:
    """How a run's data and recipe differ from the paper's: another dataset or subset, model sizes
    other than the lifter's published defaults (ablation toggles are deliberate and not counted), or a
    training recipe (lr, batch size, epochs, window subsampling) other than its ``train_defaults``."""
    diffs = []
    if cfg.data.name != PAPER_DATASET:
        diffs.append(f"data {cfg.data.name}, not Human3.6M")
    if cfg.data.subset < 1.0:
        diffs.append(f"subset {cfg.data.subset:g} of the training data")
    if cfg.data.test_subset < 1.0:
        diffs.append(f"test subset {cfg.data.test_subset:g} (first frames of every test video only)")
    cls = LIFTERS.get(cfg.model)
    defaults = cls.Config()
    for key, value in cfg.model_params.items():
        if key in cls.toggles or not hasattr(defaults, key):
            continue
        if getattr(defaults, key) != value:
            diffs.append(f"{key} {value} (paper {getattr(defaults, key)})")
    train = cfg.resolved_train()
    for key in ("lr", "batch_size", "epochs"):
        paper = cls.train_defaults.get(key)
        if paper is not None and getattr(train, key) != paper:
            diffs.append(f"{key} {getattr(train, key):g} (paper {paper:g})")
    if train.max_windows_per_epoch:
        diffs.append(f"{train.max_windows_per_epoch} windows per epoch")
    return diffs


def run_banner(differences: list[str]) -> str | None:
    """The same banner for one run (protocol card), from ``recipe_differences``."""
    return f"Note: {BANNER} ({'; '.join(differences)})." if differences else None
