"""Variant packing: train K runs of the same shapes as ONE stacked computation, equal to K separate runs.

Runs pack together when ``pack_signature`` is equal: same lifter, same parameter shapes and
structure, same window, data and training recipe; they may differ in the seed and in the toggles the
stack of the lifter's speed path takes per member (``ModuleStack.packable``, ``liftbench/fast/``).
``train_packed`` prepares every member as ``pipeline.train_run`` would (run directory, config files,
run.json, skip-if-done) and trains them with
``train.fit_members``; each member's checkpoint, metrics.jsonl and run.json are the ones a separate
run writes, so ``liftbench evaluate``, resume and suites treat them alike. Exactness holds by
construction (a single run is the K = 1 case of the same code, ``fast/stack.py``) and is tested
with ``torch.equal`` in ``tests/test_packing.py``.

``pack_bench.bench_pack`` times one packed K-model step against K sequential ones.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from liftbench.config import ExperimentConfig
from liftbench.errors import ConfigError, LiftbenchError, one_line
from liftbench.fast.stack import FunctionalStack, stack_class
from liftbench.locks import TrialLocks
from liftbench.models import LIFTERS
from liftbench.pipeline import PreparedRun, finish_run, prepare_run
from liftbench.suites import RunSpec
from liftbench.tensorboard_log import ProgressHooks
from liftbench.train import fit_members


def packable_toggles(cfg: ExperimentConfig) -> tuple[str, ...] | None:
    """Config fields that may differ inside a pack for this run's lifter; None: it does not pack
    (no stack in its speed path, or speed paths ``liftbench.fast.disabled()``)."""
    cls = stack_class(LIFTERS.get(cfg.model))
    return None if cls is FunctionalStack else cls.packable


def pack_signature(cfg: ExperimentConfig) -> str:
    """Runs with equal signatures can train as one stacked computation.

    Everything that changes shapes, structure, data or the optimisation recipe is in it (lifter,
    widths, blocks, window, normalisation layers, the whole data section, every train field but the
    seed); the seed and the lifter's packable toggles are not. A lifter without a stacked
    implementation (e.g. a plug-in without a speed path) gets a signature of its own."""
    d = cfg.to_dict()
    toggles = packable_toggles(cfg)
    if toggles is None:
        return f"{cfg.model}-solo-{cfg.config_hash()}"
    free = set(toggles)
    key = {"model": {k: v for k, v in d["model"].items() if k not in free},
           "train": {k: v for k, v in d["train"].items() if k != "seed"}, "data": d["data"]}
    text = json.dumps(key, sort_keys=True, separators=(",", ":"))
    return f"{cfg.model}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def packs_on(cfg: ExperimentConfig, device_type: str) -> bool:
    """Whether this run's lifter packs on ``device_type`` (``ModuleStack.packs_on``: where it pays off)."""
    cls = stack_class(LIFTERS.get(cfg.model))
    return cls is not FunctionalStack and cls.packs_on(dict(cfg.model_params), device_type)


def group_specs(specs: list[RunSpec], pack: int, device_type: str | None = None) -> list[list[int]]:
    """Indices of ``specs`` in pack groups of at most ``pack`` runs with one signature, in first-seen order.

    With ``device_type``, runs whose lifter does not pack there (``packs_on``) stay in groups of one."""
    if pack < 1:
        raise ConfigError(f"--pack must be >= 1, got {pack}.")
    by_sig: dict[str, list[int]] = {}
    for i, spec in enumerate(specs):
        solo = pack == 1 or (device_type is not None and not packs_on(spec.config, device_type))
        by_sig.setdefault(str(i) if solo else pack_signature(spec.config), []).append(i)
    groups = []
    for members in by_sig.values():
        groups.extend(members[j : j + pack] for j in range(0, len(members), pack))
    return sorted(groups, key=lambda g: g[0])


def train_packed(cfgs: list[ExperimentConfig], *, run_dirs: list[Path] | None = None, out_dir: str | Path | None = None,
                 data_dir: str | Path | None = None, device: str = "auto", resume: bool = True,
                 variants: list[str] | None = None, suite: str = "", progress: Any = None,
                 stop_after_steps: int | None = None, tensorboard: bool = False) -> list:
    """Train runs with one ``pack_signature`` as one stacked computation; returns their ``TrainOutcome``s.

    Finished runs are skipped; the others resume from their checkpoints (stragglers are brought level
    first). ``progress`` is shown for the first member being trained."""

    if len({pack_signature(c) for c in cfgs}) > 1:
        raise ConfigError("train_packed: these runs do not share one pack signature (shapes, data or recipe differ).")
    cache: dict[str, Any] = {}
    prepared = []
    for i, cfg in enumerate(cfgs):
        prepared.append(prepare_run(cfg, out_dir=out_dir, data_dir=data_dir, device=device, resume=resume,
                                    progress=None, variant=variants[i] if variants else None, suite=suite,
                                    run_dir=run_dirs[i] if run_dirs else None, cache=cache, tensorboard=tensorboard))
    todo = [p for p in prepared if isinstance(p, PreparedRun)]  # the others come back skipped (done)
    if todo:
        todo[0].member.progress = ProgressHooks(progress, todo[0].member.progress)  # the bar, plus its TensorBoard
        states = fit_members([p.member for p in todo], device=todo[0].device, resume=resume,
                             stop_after_steps=stop_after_steps)
        done = {id(p): finish_run(p, s) for p, s in zip(todo, states)}
    else:
        done = {}
    return [done.get(id(p), p) for p in prepared]


def train_specs_packed(specs: list[RunSpec], out: Path, data_dir=None, device: str = "auto", progress: Any = None,
                       tensorboard: bool = False) -> str:
    """Suite helper: train one pack group into ``<out>/runs/<run_id>``; returns '' or the one-line error.

    A failure is not fatal: ``runner.run_trial`` then trains (or reports) each member on its own,
    from its last checkpoint, which gives the same numbers."""

    runs = Path(out) / "runs"
    try:
        with TrialLocks(runs / s.run_id for s in specs) as claims:
            mine = [s for s, held in zip(specs, claims.held) if held]  # runs another live process holds: its job
            if mine:
                train_packed([s.config for s in mine], out_dir=runs, data_dir=data_dir, device=device, resume=True,
                             variants=[s.variant for s in mine], suite=mine[0].suite, progress=progress,
                             tensorboard=tensorboard)
        return ""
    except (LiftbenchError, RuntimeError, ValueError, OSError) as exc:
        return one_line(exc)
