"""Like-for-like: when may a measured number sit beside a published one, and what must be said about it?

A published number (a ``baselines/`` row) carries its setting: 2D source of training and test
(``train_2d``/``input_2d`` as detector families), test noise, window (``seq_len``), ``alignment``,
test-time augmentation (``tta``), the Procrustes kind of a P2 number (``p2_kind``), the averaging within
an action (``within_action``) and whether a known-buggy evaluation produced it (``evaluation_bug``, with
the corrected counterpart in ``corrected_by``). A measured configuration is mapped to the same
vocabulary (``MeasuredSetting``: the training 2D from the run's own ``train_keypoints``, the test 2D from
the keypoints it was scored on), and ``setting_differences`` lists every difference: a delta is shown only
when the list is empty. The averaging and the P2 kind are not differences but choices: every run is
scored both ways, and the measured value is taken the way the published row was (``measured_slices``,
``measured_metric``), and labelled.

The banner of a suite (``suite_setting``) is decided here too, from the resolved configs of its runs
against the preset's declared setting, so that every renderer (terminal, report.md, protocol card) says
the same thing; so is the setting of a claim (``claim_setting_differences``, ``scope_of``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from liftbench.config import (  # noqa: F401  (re-exported)
    BANNER,
    PAPER_DATASET,
    ExperimentConfig,
    recipe_differences,
    run_banner,
)
from liftbench.conventions import DEFAULT as DEFAULT_CONVENTION
from liftbench.conventions import available_conventions
from liftbench.data.conventions import EveryFrameOnce
from liftbench.errors import LiftbenchError
from liftbench.papers.baselines import P2_KIND_METRIC
from liftbench.suites import expand, load_suite

#: liftbench keypoint sets -> the detector family a paper names; anything else matches no published row
KEYPOINT_FAMILY = {"gt": "gt", "sh_ft_h36m": "sh_ft", "sh_pt_mpii": "sh_pt", "cpn_ft_h36m_dbb": "cpn_ft"}
#: how a claim table names a dataset that is not the papers' (lead-ins say the long form, verdicts the short)
DATA_DESCRIPTION = {"mocap-mini": "~40 s, one retargeted body; not Human3.6M"}


def keypoint_family(keypoints: str, noise_sigma: float = 0.0) -> str | None:
    """The published 2D-source family of a liftbench keypoint set; GT with added noise is ``gt+noise``."""
    family = KEYPOINT_FAMILY.get(str(keypoints))
    if family == "gt" and noise_sigma and float(noise_sigma) > 0:
        return "gt+noise"
    return family


def data_label(dataset: str, long: bool = True) -> str:
    """'mocap-mini (~40 s, one retargeted body; not Human3.6M)' (long) or 'mocap-mini'."""
    if not long or dataset == PAPER_DATASET:
        return dataset
    return f"{dataset} ({DATA_DESCRIPTION.get(dataset, 'not Human3.6M')})"


@dataclass(frozen=True)
class MeasuredSetting:
    """The setting of a measured configuration, in the vocabulary of the published rows."""

    method: str  # the lifter contract's ``method`` ('' = re-implements no published method)
    dataset: str
    keypoints: str  # the 2D it was scored on (test)
    train_noise: float
    test_noise: float
    seq_len: int
    alignment: str  # causal | centred | frame
    tta: str  # none | flip | unknown
    variant: str  # suite variant name; "full" / "default" / a lifter's own name mean the published method
    train_keypoints: str = ""  # the 2D it was trained on (rows' ``train_keypoints``); '' = the test keypoints
    partial_test: str = ""  # '' = every test frame scored; else how many were (a ``data.test_subset`` run)
    convention: str = DEFAULT_CONVENTION  # the evaluation convention of the rows (``liftbench.conventions``)

    @property
    def input_2d(self) -> str | None:
        return keypoint_family(self.keypoints, self.test_noise)

    @property
    def train_2d(self) -> str | None:
        return keypoint_family(self.train_keypoints or self.keypoints, self.train_noise)


def tta_of(description: str) -> str:
    """A contract's ``test_time_augmentation`` text -> ``none`` | ``flip``."""
    text = str(description or "none").strip().lower()
    return "none" if text in ("", "none") else ("flip" if "flip" in text else text)


def frame_set_of(convention: str) -> str:
    """The frame set and weighting a convention scores, as a comparable key: every convention that scores each
    test frame once without touching the prediction (``liftbench``, ``videopose3d``; a published row without a
    ``convention``) is one key; any other is its own name (an unknown name never equals a known one)."""
    name = str(convention or "").strip() or DEFAULT_CONVENTION
    conv = available_conventions().get(name)
    if isinstance(conv, EveryFrameOnce) and not conv.zero_predicted_root:
        return DEFAULT_CONVENTION
    return name


def _same_number(a: Any, b: Any) -> bool:
    try:
        return math.isclose(float(a or 0), float(b or 0), abs_tol=1e-9)
    except (TypeError, ValueError):
        return False


def setting_differences(measured: MeasuredSetting, published: Mapping[str, Any],
                        ablation_variants: frozenset[str] = frozenset()) -> list[str]:
    """Every setting in which a measured configuration differs from a published row, in words
    (empty = like for like). ``ablation_variants``: the published non-``full`` variant names, so that
    a measured ``no_dropout`` never matches a published full model and vice versa."""
    diffs = []
    method = str(published.get("method_id", ""))
    if measured.method != method:
        diffs.append(f"method {measured.method or 'none'} vs {method}")
    if measured.dataset != str(published.get("dataset", PAPER_DATASET)):
        diffs.append(f"data {measured.dataset} vs {published.get('dataset', PAPER_DATASET)}")
    for side, mine, raw, column in (("2D input", measured.input_2d, measured.keypoints, "input_2d"),
                                    ("training 2D", measured.train_2d, measured.train_keypoints or measured.keypoints,
                                     "train_2d")):
        theirs = str(published.get(column, ""))
        if mine != theirs:
            diffs.append(f"{side} {mine or raw + ' (no published family)'} vs {theirs}")
    if not _same_number(measured.test_noise, published.get("noise_sigma_px", 0)):
        diffs.append(f"test noise {measured.test_noise:g} vs {float(published.get('noise_sigma_px') or 0):g} px")
    pub_len = int(float(published.get("seq_len", 1) or 1))
    if measured.seq_len != pub_len:
        diffs.append(f"window {measured.seq_len} vs {pub_len} frames")
    pub_align = str(published.get("alignment", "") or "")
    if pub_align and max(measured.seq_len, pub_len) > 1 and measured.alignment != pub_align:
        diffs.append(f"alignment {measured.alignment} vs {pub_align}")
    pub_tta = str(published.get("tta", "") or "")
    if pub_tta and measured.tta != pub_tta:
        diffs.append(f"test-time augmentation {measured.tta} vs {pub_tta}")
    if str(published.get("p2_kind", "") or "") == "unknown":
        diffs.append("P2 alignment (rigid or similarity) not stated by the paper")
    pub_conv = str(published.get("convention", "") or "") or DEFAULT_CONVENTION
    if frame_set_of(measured.convention) != frame_set_of(pub_conv):
        diffs.append(f"evaluation convention {measured.convention} vs {pub_conv}"
                     + (f" (liftbench evaluate --convention {pub_conv} scores the same predictions that way)"
                        if pub_conv in available_conventions() else ""))
    if measured.partial_test:
        diffs.append(f"{measured.partial_test} vs the whole test set")
    pub_variant = str(published.get("variant", "full") or "full")
    mine_is_full = measured.variant not in ablation_variants and "=" not in measured.variant
    if (pub_variant == "full" and not mine_is_full) or (pub_variant != "full" and measured.variant != pub_variant):
        diffs.append(f"variant {measured.variant} vs {pub_variant}")
    return diffs


def measured_slices(published: Mapping[str, Any]) -> tuple[str, str, str]:
    """(per-action slice_type, headline slice, label) of the measured values that match the published
    row's averaging within an action: frames -> ``action`` / ``action_mean``; videos (Hossain's
    reference weighting) -> ``action_video`` / ``video_mean``."""
    within = str(published.get("within_action", "") or "unknown")
    if within == "videos":
        return "action_video", "video_mean", "video-weighted within action (as published)"
    if within == "frames":
        return "action", "action_mean", "frame-weighted within action (as published)"
    return "action", "action_mean", "frame-weighted within action (published averaging not stated)"


def measured_metric(published: Mapping[str, Any]) -> tuple[str, str]:
    """(measured metric, label) scored the way the published number was: a P2 number with ``p2_kind =
    rigid`` (Hossain & Little as printed) is set beside ``p_mpjpe_rigid``, a similarity one (Martinez,
    VideoPose3D, Hossain corrected) beside ``p_mpjpe``; P1 is ``mpjpe``."""
    metric = str(published.get("metric", "mpjpe"))
    kind = str(published.get("p2_kind", "") or "")
    if metric != "p_mpjpe" or kind not in P2_KIND_METRIC:
        return metric, ""
    return P2_KIND_METRIC[kind], f"{kind} P2 (as published)"


def fmt_published(value: float) -> str:
    """A published number as printed: 58.25 stays 58.25 (never 58.2), 51.9 stays 51.9, 37.10 -> 37.10."""
    if value is None or value != value:
        return "—"
    return f"{value:.1f}" if abs(round(value, 1) - value) < 1e-9 else f"{value:.2f}"


def bug_flag(published: Mapping[str, Any], corrected_value: float | None = None) -> str:
    """'' for a clean number; else the one-line flag shown beside it, naming the corrected counterpart."""
    bug = str(published.get("evaluation_bug", "") or "").lower()
    if bug == "true":
        corrected = str(published.get("corrected_by", "") or "")
        if corrected:
            value = f" = {fmt_published(corrected_value)} mm" if corrected_value is not None else ""
            return f"BUGGY EVALUATION: corrected number in {corrected}{value}"
        return "BUGGY EVALUATION: no corrected number was published (read as a trend only)"
    if bug == "unknown":
        return "evaluation status unknown (may come from a buggy evaluation)"
    return ""


def partial_test_of(rows: pd.DataFrame) -> str:
    """'' when every headline row scored the whole test split; else 'test subset (scored N of M frames)'
    (``data.test_subset`` runs: ``n_frames`` < ``n_frames_expected`` on the P1 headline rows of the every-frame
    convention) or 'partial coverage ...' (``score --allow-partial`` rows, ``coverage = partial``)."""
    if "coverage" in rows.columns and (rows["coverage"].astype(str) == "partial").any():
        return "partial coverage (predictions for part of the test set, score --allow-partial)"
    if not {"n_frames", "n_frames_expected", "metric", "slice"} <= set(rows.columns):
        return ""
    head = rows[(rows["metric"].astype(str) == "mpjpe") & (rows["slice"].astype(str) == "action_mean")]
    if "convention" in head.columns:  # another convention's frame set is smaller by design, not a subset
        names = head["convention"].astype(str)
        frame_sets = {c: frame_set_of(c) for c in names.unique()}  # per name, not per row
        head = head[names.map(frame_sets) == DEFAULT_CONVENTION]
    scored = pd.to_numeric(head["n_frames"], errors="coerce")
    expected = pd.to_numeric(head["n_frames_expected"], errors="coerce")
    short = (scored < expected).to_numpy()
    if not short.any():
        return ""
    i = int(short.nonzero()[0][0])
    return f"test subset (scored {int(scored.iloc[i])} of {int(expected.iloc[i])} frames)"


# ---------------------------------------------------------------------------------------- banners

@dataclass(frozen=True)
class SuiteSetting:
    """What a suite's runs are, against the preset's declared setting and the paper's recipe."""

    banner: str | None  # one line; None only when the runs are exactly the declared setting of a paper table
    reproduces: str  # the paper table the runs reproduce ('' unless banner is None)
    differences: tuple[str, ...]  # everything that differs (declared setting, then the paper's recipe)


def _flat(cfg: ExperimentConfig) -> dict[str, Any]:
    """'section.key' -> resolved value of everything that changes numbers, but the seed."""
    return {f"{section}.{k}": v for section, body in cfg.to_dict().items() for k, v in body.items()
            if f"{section}.{k}" not in ("train.seed", "model.name", "train.checkpoint_every_s")}


def declared_differences(actual: ExperimentConfig, declared: ExperimentConfig) -> list[str]:
    """'data.keypoints gt (preset: sh_ft_h36m)', ... for every resolved key (but the seed) that differs."""
    mine, theirs = _flat(actual), _flat(declared)
    if actual.model != declared.model:
        return [f"model {actual.model} (preset: {declared.model})"]
    return [f"{k} {mine.get(k)} (preset: {theirs.get(k)})" for k in sorted(set(mine) | set(theirs))
            if mine.get(k) != theirs.get(k)]


def _declared_configs(suite: str, preset: str) -> tuple[dict[str, ExperimentConfig], str]:
    try:
        loaded = load_suite(suite)
        table = str(loaded.raw.get("reproduces", {}).get(preset, ""))
        specs = expand(loaded, preset) if preset in loaded.presets or not loaded.presets else []
    except LiftbenchError:
        return {}, ""
    return {(s.variant, s.axis_value): s.config for s in specs}, table


def suite_setting(suite: str, preset: str, runs: Iterable[tuple[str, Any, ExperimentConfig | None]]) -> SuiteSetting:
    """The banner of a suite from the resolved configs of its runs, ``(variant, axis value, config or None
    when unknown)``, against the preset's declared setting (``[presets.<preset>]`` and ``[reproduces]``):
    no banner only when a paper-table preset ran exactly as declared, on Human3.6M, with the paper's recipe;
    otherwise one line naming what differs."""
    declared, table = _declared_configs(suite, preset)
    own: list[str] = []  # against the preset's declaration
    paper: list[str] = []  # against the paper's data and recipe (``recipe_differences``)
    unknown: list[str] = []  # runs whose resolved config could not be read
    for variant, axis_value, cfg in runs:
        if cfg is None:
            unknown.append(variant)
            continue
        base = declared.get((variant, axis_value)) or declared.get((variant, None))
        if table and base is not None:
            own += declared_differences(cfg, base)
        paper += [d if d.startswith(("data ", "subset ", "test subset ")) else f"{cfg.model} {d}"
                  for d in recipe_differences(cfg)]
    own, paper = list(dict.fromkeys(own)), list(dict.fromkeys(paper))
    if unknown:
        own.append(f"resolved config unknown (no readable config.json) for {', '.join(dict.fromkeys(unknown))}")
    if table and not own and not paper:
        return SuiteSetting(None, table, ())
    if table:  # the declaration is the paper's setting and recipe: what differs from it says it all
        lead = f"preset '{preset}' declares the setting of {table}, but the runs differ"
        differences = own or paper
    else:
        lead = (f"preset '{preset}' is a reduced recipe, not a paper table's" if preset else
                "preset unknown, so no paper table's recipe")
        differences = paper + own[-1:] if unknown else paper
    return SuiteSetting(f"Note: {BANNER} ({lead}: {'; '.join(differences)})." if differences
                        else f"Note: {BANNER} ({lead}).", "", tuple(differences))


def recipe_banner(reproduces: Mapping[str, str] | None, preset: str, dataset: str) -> str | None:
    """The banner from the preset name and the data alone, for a suite whose run configs are unknown."""
    reasons = []
    if not reproduces or preset not in reproduces:
        reasons.append(f"preset '{preset}' is a reduced recipe, not a paper table's" if preset else
                       "preset unknown, so no paper table's recipe")
    if dataset != PAPER_DATASET:
        reasons.append(f"data {dataset}, not Human3.6M")
    return f"Note: {BANNER} ({'; '.join(reasons)})." if reasons else None


# ------------------------------------------------------------------------------------- claim settings

#: what a claim's ``setting`` may declare: dataset, the families of the training and test 2D, training noise
CLAIM_SETTING_KEYS = ("dataset", "train_2d", "test_2d", "train_noise")


def claim_setting_differences(setting: Mapping[str, str], rows: pd.DataFrame) -> list[str]:
    """How the rows a claim was measured on differ from the paper's setting of that claim (``dataset``,
    ``train_2d``/``test_2d`` keypoint families from the rows' ``train_keypoints``/``test_keypoints``,
    ``train_noise``), plus a partial test set. Empty = the paper's setting; an undeclared setting differs."""
    if not setting:
        return ["the claims file declares no paper setting for this claim"]
    diffs = []

    def values(column: str) -> list[str]:
        return sorted(set(rows[column].astype(str))) if column in rows.columns and len(rows) else []

    if "dataset" in setting and values("dataset") != [setting["dataset"]]:
        diffs.append(f"data {', '.join(values('dataset')) or '?'} vs {setting['dataset']}")
    for key, column in (("train_2d", "train_keypoints"), ("test_2d", "test_keypoints")):
        if key in setting:
            mine = sorted({keypoint_family(k) or f"{k} (no published family)" for k in values(column)})
            if mine != [setting[key]]:
                side = "training 2D" if key == "train_2d" else "test 2D"
                diffs.append(f"{side} {', '.join(mine) or '?'} vs {setting[key]}")
    if "train_noise" in setting:
        noise = sorted(set(pd.to_numeric(rows.get("train_noise", pd.Series(dtype=float)), errors="coerce").fillna(0)))
        if not noise or any(not _same_number(n, setting["train_noise"]) for n in noise):
            diffs.append(f"training noise {', '.join(f'{n:g}' for n in noise) or '?'} vs {setting['train_noise']} px")
    partial = partial_test_of(rows)
    if partial:
        diffs.append(f"{partial} vs the whole test set")
    return diffs


def scope_of(differences: list[str], rows: pd.DataFrame) -> str:
    """Where a claim outside the paper's setting was measured, for its verdict: 'on mocap-mini', 'on these
    keypoints (trained on gt, tested on sh_pt)', 'on a test subset' ('' = the paper's setting)."""
    if not differences:
        return ""
    datasets = sorted(set(rows["dataset"].astype(str))) if "dataset" in rows.columns and len(rows) else []
    if any(d.startswith("data ") for d in differences) and datasets:
        return f"on {', '.join(datasets)}"
    if any(d.startswith(("training 2D", "test 2D", "training noise")) for d in differences):
        train = ", ".join(sorted(set(rows["train_keypoints"].astype(str)))) if "train_keypoints" in rows else "?"
        test = ", ".join(sorted(set(rows["test_keypoints"].astype(str)))) if "test_keypoints" in rows else "?"
        return f"on these keypoints (trained on {train}, tested on {test})"
    if any(d.startswith(("test subset", "partial coverage")) for d in differences):
        return "on a test subset"
    return "in this setting (not the paper's)"

