"""Benchmark suites as data: a TOML file expands into run specs (model x toggles x axis x seeds).

Suite file (``configs/suites/<name>.toml``)::

    name = "ablation"; version = 1; description = "..."
    baseline = "hossain2018_table4"          # published table shown beside the results
    test_noise = [0.0]                       # evaluation conditions (pixels)
    [[variants]]                             # one entry per model configuration
    name = "no_dropout"; model = "seq2seq"; params = { dropout = 0.0 }
    [axis]                                   # optional sweep over one model/train/data key
    key = "model.seq_len"; values = [2, 3, 4]
    [presets.smoke.all.train]                # preset overrides: presets.<preset>.<all|model>.<section>
    epochs = 3

Each run is keyed by its config hash, so a run shared by several suites trains once, finished runs
are skipped and interrupted ones resume from their checkpoint.
"""

from __future__ import annotations

import itertools
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liftbench.config import ExperimentConfig, resolve_config
from liftbench.errors import ConfigError, UnknownNameError, unknown_name_message
from liftbench.models import LIFTERS


def shipped_suite_dir(package_root: Path | None = None, prefix: str | None = None) -> Path:
    """Where the shipped suites are: ``configs/suites`` beside the package (a source checkout or an
    editable install), else the copy a wheel installs under ``<prefix>/share/liftbench/configs/suites``
    (``[tool.setuptools.data-files]`` in pyproject.toml)."""
    beside = Path(package_root or Path(__file__).resolve().parent.parent) / "configs" / "suites"
    if beside.is_dir():
        return beside
    return Path(prefix or sys.prefix) / "share" / "liftbench" / "configs" / "suites"


SUITE_DIR = shipped_suite_dir()
_SUITE_KEYS = {"name", "version", "description", "baseline", "test_noise", "variants", "axis", "presets",
               "default_preset", "metrics", "plots"}
_VARIANT_KEYS = {"name", "model", "params", "train", "data"}


@dataclass(frozen=True)
class RunSpec:
    suite: str
    suite_version: int
    variant: str
    config: ExperimentConfig
    test_noise: tuple[float, ...]
    axis_key: str = ""
    axis_value: Any = None

    @property
    def run_id(self) -> str:
        return self.config.run_id

    @property
    def seed(self) -> int:
        return self.config.train.seed


@dataclass
class Suite:
    name: str
    version: int
    description: str
    path: Path
    raw: dict[str, Any]
    baseline: str = ""
    test_noise: tuple[float, ...] = (0.0,)
    presets: tuple[str, ...] = field(default_factory=tuple)
    default_preset: str = "smoke"


def suite_files(suite_dir: Path | None = None) -> dict[str, Path]:
    directory = Path(suite_dir or SUITE_DIR)
    return {p.stem: p for p in sorted(directory.glob("*.toml"))}


def load_suite(name_or_path: str | Path, suite_dir: Path | None = None) -> Suite:
    """Read and validate a suite by name (``configs/suites/<name>.toml``) or path."""
    path = Path(name_or_path)
    if not path.suffix == ".toml":
        files = suite_files(suite_dir)
        if str(name_or_path) not in files:
            raise UnknownNameError(unknown_name_message("suite", str(name_or_path), files))
        path = files[str(name_or_path)]
    if not path.is_file():
        raise ConfigError(f"Suite file {path} does not exist.")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Suite file {path} is not valid TOML: {exc}.") from exc
    unknown = sorted(set(raw) - _SUITE_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(_SUITE_KEYS))}.")
    for key in ("name", "version", "variants"):
        if key not in raw:
            raise ConfigError(f"{path}: missing required key '{key}'.")
    for v in raw["variants"]:
        bad = sorted(set(v) - _VARIANT_KEYS)
        if bad or "name" not in v or "model" not in v:
            raise ConfigError(f"{path}: each [[variants]] needs name and model (and may have params, train, data); "
                              f"found {sorted(v)}.")
    presets = tuple(raw.get("presets", {}))
    return Suite(raw["name"], int(raw["version"]), raw.get("description", ""), path, raw, raw.get("baseline", ""),
                 tuple(float(s) for s in raw.get("test_noise", [0.0])), presets, raw.get("default_preset", "smoke"))


def parse_range(text: str, step: float | None = None, what: str = "--sigma") -> list[float]:
    """'5..20' (with ``step``, default 5 for sigma), '0,5,10' or '7' -> sorted unique floats."""
    text = str(text).strip()
    try:
        if ".." in text:
            a_text, b_text = text.split("..", 1)
            a, b = float(a_text), float(b_text)
            if step is None:
                raise ConfigError(f"{what} {text}: a range needs a step (e.g. --step 5).")
            if step <= 0:
                raise ConfigError(f"{what}: --step must be > 0, got {step:g}.")
            if b < a:
                raise ConfigError(f"{what} {text}: the range end is below its start; write it as low..high.")
            n = int(round((b - a) / step))
            values = [a + i * step for i in range(n + 1) if a + i * step <= b + 1e-9]
        else:
            values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise ConfigError(f"{what} '{text}' is not a range: use a..b (with --step), a comma list like 0,5,10, "
                          "or one number.") from exc
    if not values:
        raise ConfigError(f"{what} '{text}' gives no values.")
    return sorted({round(v, 9) for v in values})


def _merge(dst: dict[str, dict[str, Any]], src: dict[str, Any], where: str) -> None:
    for section, body in src.items():
        if section not in ("model", "train", "data") or not isinstance(body, dict):
            raise ConfigError(f"{where}: expected sections model/train/data, found '{section}'.")
        dst.setdefault(section, {}).update(body)


def expand(suite: Suite, preset: str | None = None, seeds: int = 1, seed_offset: int = 0,
           overrides: dict[str, Any] | None = None, test_noise: list[float] | None = None,
           axis_values: list[Any] | None = None, variants: list[str] | None = None) -> list[RunSpec]:
    """Suite -> run specs. ``overrides`` (dotted or bare keys) apply to every run, after the preset."""
    preset = preset or suite.default_preset
    if suite.presets and preset not in suite.presets:
        raise ConfigError(f"Suite '{suite.name}' has no preset '{preset}'; choose one of {', '.join(suite.presets)}.")
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}.")
    preset_body = suite.raw.get("presets", {}).get(preset, {})
    axis = suite.raw.get("axis", {})
    axis_key = axis.get("key", "")
    values = axis_values if axis_values is not None else axis.get("values", [None])
    if axis_values is not None and not axis_key:
        raise ConfigError(f"Suite '{suite.name}' has no sweep axis to set values for.")
    chosen = suite.raw["variants"]
    if variants:
        names = [v["name"] for v in chosen]
        for v in variants:
            if v not in names:
                raise UnknownNameError(unknown_name_message(f"variant of suite '{suite.name}'", v, names))
        chosen = [v for v in chosen if v["name"] in variants]
    noise = tuple(test_noise) if test_noise is not None else suite.test_noise
    specs = []
    for variant, value, seed in itertools.product(chosen, values, range(seed_offset, seed_offset + seeds)):
        base: dict[str, dict[str, Any]] = {"model": {}, "train": {}, "data": {}}
        where = f"{suite.path} preset '{preset}'"
        _merge(base, preset_body.get("all", {}), where)
        _merge(base, preset_body.get(LIFTERS.canonical(variant["model"]), {}), where)
        _merge(base, {"model": variant.get("params", {}), "train": variant.get("train", {}),
                      "data": variant.get("data", {})}, f"{suite.path} variant '{variant['name']}'")
        opts = dict(overrides or {})
        if axis_key and value is not None:
            opts[axis_key] = value
        opts["train.seed"] = seed
        cfg = resolve_config(variant["model"], base=base, options=opts)
        specs.append(RunSpec(suite.name, suite.version, variant["name"], cfg, noise, axis_key, value))
    return specs
