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

A suite is checked whole when it is loaded (and again when expanded): every key's type, every number
finite, model names known, names safe as directory names. A bad file, like a bad ``--sigma`` or
``--lengths`` range (``parse_range``), is one ``ConfigError`` naming the file or option and the key,
raised before any run starts.
"""

from __future__ import annotations

import itertools
import math
import numbers
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liftbench.config import ExperimentConfig, resolve_config
from liftbench.errors import ConfigError, UnknownNameError, unknown_name_message
from liftbench.models import LIFTERS
from liftbench.resources import shipped_path
from liftbench.values import identifier, load_toml_capped, printable


def shipped_suite_dir() -> Path:
    """The shipped suites, ``configs/suites`` (a wheel's packaged copy or the repository's; see
    ``liftbench.resources``)."""
    return shipped_path("configs/suites")


_SUITE_KEYS = {"name", "version", "description", "baseline", "test_noise", "variants", "axis", "presets",
               "default_preset", "metrics", "plots", "reproduces"}
_VARIANT_KEYS = {"name", "model", "params", "train", "data"}
_SECTIONS = ("model", "train", "data")
MAX_RANGE_VALUES = 1000  # a sweep longer than this is a typo (0..1e6), not a benchmark


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
    directory = Path(suite_dir) if suite_dir is not None else shipped_suite_dir()
    return {p.stem: p for p in sorted(directory.glob("*.toml"))}


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # suite and preset names become directory names
MAX_SUITE_BYTES = 1_000_000


def _read_suite_toml(path: Path) -> dict[str, Any]:
    """The parsed file; not a regular file, oversized, binary, too deeply nested or non-TOML content is one
    ConfigError naming it (``values.load_toml_capped``)."""
    return load_toml_capped(path, "a suite: a short TOML file like configs/suites/ablation.toml", MAX_SUITE_BYTES)


def _finite_real(value: Any) -> bool:
    """A number that is finite as a float (an integer beyond float range is not: math.isfinite raises)."""
    try:
        return _is_number(value) and math.isfinite(value)
    except OverflowError:
        return False


def _is_number(value: Any) -> bool:
    """int, float or a numpy scalar of either (from the Python API), never a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_value(value: Any, where: str, *, in_list: bool = False) -> None:
    """A config value in a suite: a string, true/false, an integer, a finite float, or a list of those."""
    if isinstance(value, list) and not in_list:
        for item in value:
            _check_value(item, where, in_list=True)
    elif _is_number(value) and not _finite_real(value):
        raise ConfigError(f"{where} = {printable(value)}: must be a finite number; fix the value in the suite file.")
    elif not (isinstance(value, (str, bool)) or _is_number(value)):
        raise ConfigError(f"{where} holds a {type(value).__name__}; use a number, true/false, a string "
                          "(or a list of those) in the suite file.")


def _check_table(value: Any, where: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table ({what}), not {type(value).__name__} {printable(value)}.")
    return value


def _check_sections(body: Any, where: str) -> None:
    """``{model|train|data: {key: value}}`` with every value checked."""
    for section, values in _check_table(body, where, "sections model / train / data").items():
        if section not in _SECTIONS:
            raise ConfigError(f"{where}: unknown section '{printable(section)}'; valid: {', '.join(_SECTIONS)}.")
        for key, value in _check_table(values, f"{where}.{section}", "key = value pairs").items():
            _check_value(value, f"{where}.{section}.{key}")


def _validate(raw: dict[str, Any], path: Path) -> None:
    """Types, finiteness and names of everything a suite file holds (one ConfigError naming file and key)."""
    unknown = sorted(set(raw) - _SUITE_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(map(printable, unknown))}; valid: "
                          f"{', '.join(sorted(_SUITE_KEYS))}.")
    for key in ("name", "version", "variants"):
        if key not in raw:
            raise ConfigError(f"{path}: missing required key '{key}'.")
    for key in ("name", "description", "baseline", "default_preset"):
        if key in raw and not isinstance(raw[key], str):
            raise ConfigError(f"{path}: '{key}' must be a string in quotes, not {printable(raw[key])}.")
    if not _NAME_RE.match(raw["name"]) or ".." in raw["name"]:
        raise ConfigError(f"{path}: name {printable(raw['name'])} must be letters, digits, '_', '-' or '.' (it names "
                          "a directory).")
    version = raw["version"]
    if not (isinstance(version, int) and not isinstance(version, bool) and version >= 1):
        raise ConfigError(f"{path}: version must be a whole number >= 1 (e.g. version = 1), not {printable(version)}.")
    noise = raw.get("test_noise", [0.0])
    if not (isinstance(noise, list) and noise and all(_finite_real(s) and s >= 0 for s in noise)):
        raise ConfigError(f"{path}: test_noise must be a list of finite sigmas >= 0 in pixels (e.g. [0.0, 5.0]), "
                          f"not {printable(noise)}.")
    for key in ("metrics", "plots"):
        if key in raw and not (isinstance(raw[key], list) and all(isinstance(m, str) for m in raw[key])):
            raise ConfigError(f"{path}: '{key}' must be a list of strings, not {printable(raw[key])}.")

    variants = raw["variants"]
    if not (isinstance(variants, list) and variants and all(isinstance(v, dict) for v in variants)):
        raise ConfigError(f"{path}: variants must be one or more [[variants]] tables with name and model, "
                          f"not {printable(variants)}.")
    for i, v in enumerate(variants):
        bad = sorted(set(v) - _VARIANT_KEYS)
        if bad or not isinstance(v.get("name"), str) or not v["name"] or not isinstance(v.get("model"), str):
            raise ConfigError(f"{path}: each [[variants]] needs name and model as strings (and may have params, "
                              f"train, data); variant {i + 1} has {printable(v)}.")
        identifier(v["name"], f"{path} variant {i + 1}")  # names a results key, and may one day name a path
        LIFTERS.canonical(v["model"])
        where = f"{path} variant '{v['name']}'"
        _check_sections({s: v[k] for s, k in zip(_SECTIONS, ("params", "train", "data")) if k in v}, where)
    names = [v["name"] for v in variants]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: variant names must be unique, found {', '.join(sorted(names))}.")

    axis = _check_table(raw.get("axis", {}), f"{path}: axis", "key and values")
    if axis:
        if set(axis) != {"key", "values"} or not isinstance(axis["key"], str) or not axis["key"]:
            raise ConfigError(f"{path}: [axis] needs exactly key (a string such as \"model.seq_len\") and values.")
        values = axis["values"]
        if not (isinstance(values, list) and values):
            raise ConfigError(f"{path}: axis.values must be a non-empty list, not {printable(values)}.")
        for value in values:
            _check_value(value, f"{path}: axis.values", in_list=True)

    presets = _check_table(raw.get("presets", {}), f"{path}: presets", "presets.<name>.<all|model>.<section>")
    for preset, body in presets.items():
        if not _NAME_RE.match(preset):
            raise ConfigError(f"{path}: preset name {printable(preset)} must be letters, digits, '_', '-' or '.'.")
        identifier(preset, f"{path} preset")
        for target, sections in _check_table(body, f"{path}: presets.{preset}", "all / <model> tables").items():
            if target != "all":
                LIFTERS.canonical(target)  # a misspelt model would silently apply to nothing
            _check_sections(sections, f"{path}: presets.{preset}.{target}")
    reproduces = _check_table(raw.get("reproduces", {}), f"{path}: reproduces", "preset = \"paper table\"")
    for preset, table in reproduces.items():  # which paper table a preset reproduces (liftbench.papers.match)
        if preset not in presets or not isinstance(table, str):
            raise ConfigError(f"{path}: reproduces.{preset} must name a paper table (a string) for one of the presets "
                              f"({', '.join(presets)}).")
    default = raw.get("default_preset", "smoke")
    if presets and default not in presets:
        raise ConfigError(f"{path}: default_preset '{default}' is not one of the presets ({', '.join(presets)}).")


def load_suite(name_or_path: str | Path, suite_dir: Path | None = None) -> Suite:
    """Read and validate a suite by name (``configs/suites/<name>.toml``) or path."""
    path = Path(name_or_path)
    if not path.suffix == ".toml":
        files = suite_files(suite_dir)
        if str(name_or_path) not in files:
            raise UnknownNameError(unknown_name_message("suite", str(name_or_path), files))
        path = files[str(name_or_path)]
    raw = _read_suite_toml(path)  # missing, a directory or a FIFO: one line saying which
    _validate(raw, path)
    return Suite(raw["name"], raw["version"], raw.get("description", ""), path, raw, raw.get("baseline", ""),
                 tuple(float(s) for s in raw.get("test_noise", [0.0])), tuple(raw.get("presets", {})),
                 raw.get("default_preset", "smoke"))


def _finite(text: str, what: str, whole: str) -> float:
    value = float(text)  # ValueError: not a number, reported by the caller
    if not math.isfinite(value):
        raise ConfigError(f"{what} '{whole}': every value must be a finite number, got {text.strip()}.")
    return value


def parse_range(text: str, step: float | None = None, what: str = "--sigma", *, minimum: float | None = None,
                integer: bool = False) -> list[float]:
    """'5..20' (with ``step``), '0,5,10' or '7' -> sorted unique floats, each finite, >= ``minimum`` and
    whole if ``integer``; at most ``MAX_RANGE_VALUES`` of them. Checked before any work starts."""
    text = str(text).strip()
    try:
        if ".." in text:
            a_text, b_text = text.split("..", 1)
            a, b = _finite(a_text, what, text), _finite(b_text, what, text)
            if step is None:
                raise ConfigError(f"{what} {text}: a range needs a step (e.g. --step 5).")
            if not (math.isfinite(step) and step > 0):
                raise ConfigError(f"{what}: --step must be a finite number > 0, got {step:g}.")
            if b < a:
                raise ConfigError(f"{what} {text}: the range end is below its start; write it as low..high.")
            n = math.floor((b - a) / step + 1e-9) + 1
            if n > MAX_RANGE_VALUES:
                raise ConfigError(f"{what} {text} with step {step:g} gives {n} values; at most {MAX_RANGE_VALUES}.")
            values = [a + i * step for i in range(n) if a + i * step <= b + 1e-9]
        else:
            values = [_finite(v, what, text) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise ConfigError(f"{what} '{text}' is not a range: use a..b (with --step), a comma list like 0,5,10, "
                          "or one number.") from exc
    if not values:
        raise ConfigError(f"{what} '{text}' gives no values.")
    if len(values) > MAX_RANGE_VALUES:
        raise ConfigError(f"{what} '{text}' gives {len(values)} values; at most {MAX_RANGE_VALUES}.")
    if minimum is not None and min(values) < minimum:
        raise ConfigError(f"{what} '{text}': every value must be >= {minimum:g}, got {min(values):g}.")
    if integer and any(v != int(v) for v in values):
        raise ConfigError(f"{what} '{text}': every value must be a whole number.")
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
    _validate(suite.raw, suite.path)  # a Suite built in code gets the same checks as a loaded file
    preset = preset or suite.default_preset
    if suite.presets and preset not in suite.presets:
        raise ConfigError(f"Suite '{suite.name}' has no preset '{preset}'; choose one of {', '.join(suite.presets)}.")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"--seeds must be a whole number >= 1, got {seeds!r}.")
    if isinstance(seed_offset, bool) or not isinstance(seed_offset, int) or seed_offset < 0:
        raise ConfigError(f"seed_offset must be a whole number >= 0, got {seed_offset!r}.")
    if test_noise is not None and not (len(test_noise) and all(
            _finite_real(s) and s >= 0 for s in test_noise)):
        raise ConfigError(f"test noise must be finite sigmas >= 0 in pixels, got {printable(list(test_noise))}.")
    if axis_values is not None:
        if not len(axis_values):
            raise ConfigError(f"Suite '{suite.name}': no values for its axis.")
        for value in axis_values:
            _check_value(value, f"Suite '{suite.name}' axis value", in_list=True)
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
        model = LIFTERS.canonical(variant["model"])
        for target, sections in preset_body.items():  # the model's own table, under its name or an alias
            if target != "all" and LIFTERS.canonical(target) == model:
                _merge(base, sections, where)
        _merge(base, {"model": variant.get("params", {}), "train": variant.get("train", {}),
                      "data": variant.get("data", {})}, f"{suite.path} variant '{variant['name']}'")
        opts = dict(overrides or {})
        if axis_key and value is not None:
            opts[axis_key] = value
        opts["train.seed"] = seed
        cfg = resolve_config(variant["model"], base=base, options=opts)
        specs.append(RunSpec(suite.name, suite.version, variant["name"], cfg, noise, axis_key, value))
    return specs


def expand_suite(name: str, preset: str | None = None, **kwargs: Any) -> list[RunSpec]:
    """Run specs of a shipped suite (``configs/suites/<name>.toml``) or a suite TOML path."""
    return expand(load_suite(name), preset, **kwargs)
