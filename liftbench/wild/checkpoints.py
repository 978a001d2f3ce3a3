"""Official checkpoints in and out: ``liftbench import-checkpoint`` and ``liftbench export-checkpoint``.

Import turns a released file (VideoPose3D ``pretrained_h36m_cpn.bin``, MotionBERT ``best_epoch.bin``,
MixSTE's checkpoint, or mmpose's converted MotionBERT weights) into an ordinary run directory
``ROOT/runs/<model>-<config hash>/`` that ``evaluate``, ``predict``, ``score``, ``show``, ``compare`` and the
suites use like a trained run:

1. the file is read without running code (``checkpoint_reader.read_checkpoint``);
2. the weights are the dict's ``model_pos`` (the three code bases), ``state_dict`` (mmpose) or the file
   itself (a bare state dict); DataParallel's ``module.`` prefix is stripped and the lifter's own
   ``official_key_rewrites`` turn other tools' names into the official ones;
3. the FORMAT names the lifter through the registry (each lifter declares its ``checkpoint_format``);
   the lifter reads its configuration from the tensor shapes (``config_from_official``), ``--set`` gives
   what the weights cannot tell, else the published default, and every value's source is recorded;
4. the state dict is compared key by key with the model that configuration builds: a missing, unexpected
   or wrongly shaped tensor is one line naming the key and both shapes, never a partial load (only a
   missing BatchNorm ``num_batches_tracked``, which torch < 0.4.1 did not save and which no prediction
   reads, is filled with 0);
5. the run directory is written in a staging directory and renamed into place: ``checkpoint.pt`` (a
   finished liftbench checkpoint with the model's fixed normalisation constants: screen input, metres or
   MotionBERT's 2.5D with the nominal scale ``IMAGE25D_NOMINAL_MM`` used only where no ground truth gives
   the per-frame one), ``config.json``/``config.toml`` and ``run.json`` with ``origin = "imported"``.

Export writes a run in its lifter's published layout, ``{epoch, lr, model_pos, <extras>}`` with the
``module.`` prefix the released files carry, so a run trained here loads in the original code (and back).
"""

from __future__ import annotations

import os
import shutil
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from liftbench import __version__
from liftbench._files import atomic_output, check_output_dir, file_sha256, write_json_atomic, write_text_atomic
from liftbench.config import ExperimentConfig, resolve_config, toml_dumps
from liftbench.data.normalize import NormStats, Representation, stats_to_state
from liftbench.errors import CheckpointError, ConfigError, UnknownNameError, one_line, unknown_name_message
from liftbench.models import LIFTERS, Lifter, create_lifter, trainable_parameters
from liftbench.models.base import config_fields
from liftbench.models.official import rewrite_keys
from liftbench.pipeline import RUN_META, default_variant, load_run, read_run_meta
from liftbench.results import provenance
from liftbench.train import CHECKPOINT, CHECKPOINT_FORMAT
from liftbench.wild.checkpoint_reader import read_checkpoint

IMAGE25D_NOMINAL_MM = 2000.0  # mm per normalised 2.5D unit without ground truth: mmpose's fallback 2.5d factor
#                              (4 mm per pixel) x the half-width (500 px) of the Human3.6M image predict maps to
DATA_PARALLEL_PREFIX = "module."
WEIGHT_KEYS = ("model_pos", "state_dict")  # where the three code bases / mmpose keep the weights


def checkpoint_formats() -> dict[str, str]:
    """{FORMAT: lifter name} of every registered lifter that declares a published checkpoint layout."""
    formats: dict[str, str] = {}
    for name in LIFTERS.names():
        fmt = getattr(LIFTERS.get(name), "checkpoint_format", "")
        if fmt:
            formats[fmt] = name
    return formats


def lifter_for_format(fmt: str) -> tuple[str, type[Lifter]]:
    formats = checkpoint_formats()
    if fmt not in formats:
        raise UnknownNameError(unknown_name_message("checkpoint format", fmt, formats))
    return formats[fmt], LIFTERS.get(formats[fmt])


# ---------------------------------------------------------------- the weights inside a checkpoint dict
@dataclass
class OfficialWeights:
    state: dict[str, torch.Tensor]
    stripped_prefix: str = ""
    renamed: int = 0  # keys given another tool's names (mmpose), rewritten to the official ones
    entries: list[str] = field(default_factory=list)  # the checkpoint dict's keys
    epoch: int | None = None
    lr: float | None = None


def official_weights(ckpt: dict[str, Any], cls: type[Lifter], where: str) -> OfficialWeights:
    """The official state dict of a loaded checkpoint (module docstring, step 2)."""
    key = next((k for k in WEIGHT_KEYS if k in ckpt), None)
    state = ckpt[key] if key else ckpt
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{where}: '{key}' holds no state dict; pass the checkpoint file the authors released.")
    for name, value in state.items():
        if not isinstance(name, str) or not torch.is_tensor(value):
            what = "the file" if key is None else f"'{key}'"
            raise CheckpointError(f"{where}: {what} is not a state dict ('{str(name)[:40]}' is a "
                                  f"{type(value).__name__}, not a tensor); the weights are not under "
                                  f"{' or '.join(WEIGHT_KEYS)}: pass the checkpoint file the authors released.")
    out = OfficialWeights(dict(state), entries=sorted(map(str, ckpt)) if key else [])
    if all(k.startswith(DATA_PARALLEL_PREFIX) for k in out.state):
        out.state = {k[len(DATA_PARALLEL_PREFIX):]: v for k, v in out.state.items()}
        out.stripped_prefix = DATA_PARALLEL_PREFIX
    renames = rewrite_keys(list(out.state), getattr(cls, "official_key_rewrites", ()))
    if renames:
        targets = [renames.get(k, k) for k in out.state]
        if len(set(targets)) != len(targets):
            raise CheckpointError(f"{where}: renaming the keys to the official names gives one key twice; the state "
                                  "dict mixes two naming schemes: pass the file as released.")
        out.state = {renames.get(k, k): v for k, v in out.state.items()}
        out.renamed = len(renames)
    if key:
        epoch, lr = ckpt.get("epoch"), ckpt.get("lr")
        out.epoch = epoch if isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 0 else None
        out.lr = float(lr) if isinstance(lr, (int, float, np.floating)) and not isinstance(lr, bool) else None
    return out


def strict_state(model: Lifter, official: dict[str, torch.Tensor], prefix: str, where: str,
                 fmt: str) -> dict[str, torch.Tensor]:
    """``official`` keyed as ``model.state_dict()``, after checking that every key is there, no key is extra
    and every shape matches (one line naming the official key and both shapes)."""
    expected = model.state_dict()
    state = {prefix + k: v for k, v in official.items()}
    for key, value in expected.items():
        if key not in state and key.endswith("num_batches_tracked"):
            state[key] = torch.zeros_like(value)  # not saved by torch < 0.4.1; read by no prediction
    missing = [k for k in expected if k not in state]
    if missing:
        k = missing[0]
        raise CheckpointError(f"{where}: the state dict has no tensor '{k[len(prefix):]}' of shape "
                              f"{tuple(expected[k].shape)}, which the {fmt} model read from its other tensors needs"
                              f"{f' ({len(missing)} missing)' if len(missing) > 1 else ''}; the file is incomplete or "
                              "another variant's: re-download it or check FORMAT.")
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        k = unexpected[0]
        raise CheckpointError(f"{where}: tensor '{k[len(prefix):]}' of shape {tuple(state[k].shape)} has no place in "
                              f"the {fmt} model read from the file's other tensors"
                              f"{f' ({len(unexpected)} unexpected)' if len(unexpected) > 1 else ''}; it is another "
                              "model's checkpoint: check FORMAT.")
    for key, value in expected.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise CheckpointError(f"{where}: tensor '{key[len(prefix):]}' has shape {tuple(state[key].shape)} in the "
                                  f"file, the {fmt} model built from the file's other tensors needs "
                                  f"{tuple(value.shape)}; the file is damaged or mixes two models.")
        if not (state[key].is_floating_point() == value.is_floating_point()):
            raise CheckpointError(f"{where}: tensor '{key[len(prefix):]}' is {state[key].dtype}, the model's is "
                                  f"{value.dtype}; the file is damaged or another model's.")
    return state


def nominal_stats(rep: Representation, where: str) -> NormStats:
    """The fixed normalisation of an imported model (module docstring, step 5)."""
    if rep.input_norm != "screen" or rep.output_norm not in ("metres", "image25d"):
        raise CheckpointError(f"{where}: the lifter z-scores with training-set statistics the checkpoint does not "
                              "carry, so it cannot be imported.")
    scale = 1000.0 if rep.output_norm == "metres" else IMAGE25D_NOMINAL_MM
    return NormStats(torch.zeros(rep.input_dim), torch.ones(rep.input_dim), torch.zeros(rep.output_dim),
                     torch.full((rep.output_dim,), scale))


# ---------------------------------------------------------------- import
@dataclass
class ImportOutcome:
    run_dir: Path
    model: str
    format: str
    source: dict[str, Any]  # name, size, sha256
    from_tensors: dict[str, Any]
    from_set: dict[str, Any]
    defaults: dict[str, tuple[Any, str]]  # published defaults used: value, why the weights cannot tell
    weights: OfficialWeights
    notes: tuple[str, ...] = ()  # what the lifter says about its released files (``official_notes``)
    already: bool = False  # this very file was imported there before (nothing written)


def _split_sets(sets: dict[str, Any], cls: type[Lifter]) -> tuple[dict[str, Any], dict[str, Any]]:
    """--set values: (model fields by bare name, everything else as given: train / data keys)."""
    fields = config_fields(cls.Config)
    model, other = {}, {}
    for key, value in sets.items():
        bare = key[len("model."):] if key.startswith("model.") else key
        if bare in fields:
            model[bare] = value
        else:
            other[key] = value
    return model, other


def import_config(cls: type[Lifter], name: str, weights: OfficialWeights, sets: dict[str, Any],
                  where: str) -> tuple[ExperimentConfig, dict[str, Any], dict[str, Any], dict[str, tuple[Any, str]]]:
    """(config, read from tensors, from --set, published defaults used) of an imported checkpoint."""
    given, other = _split_sets(sets, cls)
    try:
        read, needs = cls.config_from_official(weights.state, given)
    except CheckpointError as exc:
        raise CheckpointError(f"{where}: {one_line(exc)}.") from None
    for key, value in given.items():
        if key in read and value != read[key]:
            raise ConfigError(f"--set {key}={value}: the weights say {key} = {read[key]} (read from the tensor shapes "
                              f"of {where}); drop that --set.")
    defaults = {k: v for k, v in needs.items() if k not in given}
    try:
        cfg = resolve_config(name, options={**{k: v for k, (v, _) in defaults.items()}, **read},
                             overrides={**given, **other})
    except ConfigError as exc:
        if str(exc).startswith("--set"):  # the user's key or value: its own message names it
            raise
        raise ConfigError(f"{where}: the configuration read from the file does not build a model ({one_line(exc)}); "
                          "check the --set values.") from None
    return cfg, read, {k: v for k, v in given.items() if k not in read}, defaults


def import_checkpoint(fmt: str, file: str | Path, sets: dict[str, Any] | None = None,
                      out: str | Path = "results") -> ImportOutcome:
    """Import a released checkpoint as ``<out>/runs/<model>-<config hash>/`` (module docstring)."""
    file = Path(file)
    name, cls = lifter_for_format(fmt)
    check_output_dir(out, "--out")
    where = str(file)
    weights = official_weights(read_checkpoint(file), cls, where)
    cfg, read, given, defaults = import_config(cls, name, weights, sets or {}, where)
    model = create_lifter(cfg.model, **cfg.model_params)
    model.load_state_dict(strict_state(model, weights.state, cls.official_prefix, where, fmt))
    stats = nominal_stats(model.contract.representation, where)
    source = {"name": file.name, "size": file.stat().st_size, "sha256": file_sha256(file)}
    outcome = ImportOutcome(Path(out) / "runs" / cfg.run_id, name, fmt, source, read, given, defaults, weights,
                            tuple(getattr(cls, "official_notes", ())))
    if outcome.run_dir.exists():
        old = read_run_meta(outcome.run_dir) if (outcome.run_dir / RUN_META).exists() else {}
        if old.get("origin") == "imported" and old.get("imported", {}).get("sha256") == source["sha256"]:
            outcome.already = True
            return outcome
        held = (f"weights imported from {old.get('imported', {}).get('file')}" if old.get("origin") == "imported"
                else "a run trained by liftbench")
        raise CheckpointError(f"{outcome.run_dir} already holds {held} with the same configuration; import into "
                              "another --out, or tell the runs apart with --set keypoints=... / --set data.name=...")
    _write_run(outcome, cfg, model, stats)
    return outcome


def _write_run(outcome: ImportOutcome, cfg: ExperimentConfig, model: Lifter, stats: NormStats) -> None:
    """The run directory, written in a staging directory beside it and renamed into place."""
    final = outcome.run_dir
    staging = final.with_name(f".{final.name}.importing-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    w = outcome.weights
    config = cfg.to_dict()
    payload = {"format": CHECKPOINT_FORMAT, "liftbench_version": __version__, "config": config,
               "model": model.state_dict(), "optimizer": {"state": {}, "param_groups": []},
               "norm_stats": stats_to_state(stats), "epoch": w.epoch or 0, "step_in_epoch": 0, "global_step": 0,
               "loss_sum": 0.0, "loss_count": 0, "history": [], "finished": True}
    dev = provenance("cpu")
    sources = {**{k: "tensors" for k in outcome.from_tensors}, **{k: "--set" for k in outcome.from_set},
               **{k: "published default" for k in outcome.defaults}}
    meta = {"run_id": cfg.run_id, "config_hash": cfg.config_hash(), "model": cfg.model, "variant": default_variant(cfg),
            "suite": "", "seed": cfg.train.seed, "data_dir": "", "dataset": cfg.data.name,
            "keypoints": cfg.data.keypoints, "trainable_parameters": trainable_parameters(model), "state": "done",
            "origin": "imported", "finished_utc": dev["created_utc"], **dev,
            "imported": {"format": outcome.format, "file": outcome.source["name"], "size": outcome.source["size"],
                         "sha256": outcome.source["sha256"], "config_sources": sources,
                         "config_from_tensors": outcome.from_tensors, "config_from_set": outcome.from_set,
                         "published_defaults": {k: {"value": v, "why": why}
                                                for k, (v, why) in outcome.defaults.items()},
                         "source_epoch": w.epoch, "source_lr": w.lr, "checkpoint_entries": w.entries,
                         "stripped_prefix": w.stripped_prefix, "keys_renamed": w.renamed, "notes": list(outcome.notes),
                         **({"nominal_mm_per_unit": IMAGE25D_NOMINAL_MM}
                            if model.contract.representation.output_norm == "image25d" else {})}}
    try:
        staging.mkdir(parents=True)
        _save_torch(payload, staging / CHECKPOINT)
        write_json_atomic(staging / "config.json", {"run_id": cfg.run_id, "config_hash": cfg.config_hash(), **config})
        write_text_atomic(staging / "config.toml", f"# resolved config of imported run {cfg.run_id}\n"
                          + toml_dumps(config))
        write_json_atomic(staging / RUN_META, meta)
        os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _save_torch(payload: dict[str, Any], path: Path, legacy: bool = False) -> None:
    """``torch.save`` through a temp file and a rename (a failed write leaves nothing behind)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with atomic_output(path, tmp):
        try:
            torch.save(payload, tmp, _use_new_zipfile_serialization=not legacy)
        except RuntimeError as exc:  # torch reports a full disk as "enforce fail at inline_container.cc"
            raise OSError(28, f"the file did not fit ({one_line(exc)[:80]})") from exc
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)


# ---------------------------------------------------------------- export
@dataclass
class ExportOutcome:
    path: Path
    format: str
    tensors: int
    entries: list[str]


def _extra(name: str, history: list[dict[str, Any]]) -> Any:
    """The published dict's non-weight entries: the data generator (VideoPose3D/MixSTE seed it with 1234) and
    the best loss, as numpy objects as the originals pickle them."""
    if name == "random_state":
        return np.random.RandomState(1234)
    if name == "min_loss":
        losses = [r["train_loss"] for r in history if isinstance(r.get("train_loss"), (int, float))]
        return np.float64(min(losses) if losses else 0.0)
    raise ConfigError(f"no value for the checkpoint entry '{name}'")  # a lifter declared an entry export lacks


def export_checkpoint(run_dir: str | Path, fmt: str, out: str | Path, legacy: bool = False) -> ExportOutcome:
    """Write the run at ``run_dir`` in ``fmt``'s published layout to the file ``out`` (``legacy``: the
    pre-1.6 torch format of VideoPose3D's 2019 files instead of the zip archive)."""
    run = load_run(run_dir, "cpu")
    cls = type(run.model)
    own = getattr(cls, "checkpoint_format", "")
    lifter_for_format(fmt)  # an unknown FORMAT is one line listing the known ones
    if own != fmt:
        has = f"whose published layout is '{own}'" if own else "which has no published layout"
        raise ConfigError(f"{run_dir} is a {run.config.model} run, {has}; pass that FORMAT.")
    rep = run.model.contract.representation
    nominal = nominal_stats(rep, str(run_dir))
    if rep.output_norm == "metres" and not all(torch.equal(a, b) for a, b in zip(
            stats_to_state(run.stats).values(), stats_to_state(nominal).values())):
        raise CheckpointError(f"{run_dir}: its normalisation differs from the original code's; it cannot be exported.")
    prefix = cls.official_prefix
    state = run.model.state_dict()
    payload: dict[str, Any] = {"epoch": run.state.epoch,
                               "lr": next((r["lr"] for r in reversed(run.state.history) if "lr" in r),
                                          run.config.resolved_train().lr),
                               "model_pos": OrderedDict((DATA_PARALLEL_PREFIX + k[len(prefix):], v.detach().clone())
                                                        for k, v in state.items())}
    for name in getattr(cls, "official_extras", ()):
        payload[name] = _extra(name, run.state.history)
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"{out} is a directory; pass the checkpoint FILE to write (e.g. {out / 'exported.bin'}).")
    _save_torch(payload, out, legacy)
    return ExportOutcome(out, fmt, len(state), sorted(payload))
