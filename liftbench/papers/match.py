"""Like-for-like: when may a measured number sit beside a published one, and what must be said about it?

A published number (a ``baselines/`` row) carries its setting: 2D source (``train_2d``/``input_2d``
as detector families), test noise, window (``seq_len``), ``alignment``, test-time augmentation
(``tta``), the averaging within an action (``within_action``) and whether a known-buggy evaluation
produced it (``evaluation_bug`` with the corrected counterpart in ``corrected_by``). A measured row
is mapped to the same vocabulary here, and ``setting_differences`` lists every difference: a delta
is shown only when the list is empty. The averaging is not a difference but a choice: the measured
value is taken with the weighting the published row used (``measured_slices``), and labelled.

The recipe banner (``recipe_banner``) is decided here too, so that every renderer (terminal,
report.md, protocol card) says the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from liftbench.config import BANNER, PAPER_DATASET, recipe_differences, run_banner  # noqa: F401  (re-exported)
from liftbench.errors import LiftbenchError
from liftbench.suites import load_suite

#: liftbench keypoint sets -> the detector family a paper names; anything else matches no published row
KEYPOINT_FAMILY = {"gt": "gt", "sh_ft_h36m": "sh_ft", "sh_pt_mpii": "sh_pt", "cpn_ft_h36m_dbb": "cpn_ft"}
def keypoint_family(keypoints: str, noise_sigma: float = 0.0) -> str | None:
    """The published 2D-source family of a liftbench keypoint set; GT with added noise is ``gt+noise``."""
    family = KEYPOINT_FAMILY.get(str(keypoints))
    if family == "gt" and noise_sigma and float(noise_sigma) > 0:
        return "gt+noise"
    return family


@dataclass(frozen=True)
class MeasuredSetting:
    """The setting of a measured configuration, in the vocabulary of the published rows."""

    method: str  # the lifter contract's ``method`` ('' = re-implements no published method)
    dataset: str
    keypoints: str
    train_noise: float
    test_noise: float
    seq_len: int
    alignment: str  # causal | centred | frame
    tta: str  # none | flip | unknown
    variant: str  # suite variant name; "full" / "default" / a lifter's own name mean the published method

    @property
    def input_2d(self) -> str | None:
        return keypoint_family(self.keypoints, self.test_noise)

    @property
    def train_2d(self) -> str | None:
        # rows do not record the training keypoints apart from the test ones: a run is trained on its own keypoints
        return keypoint_family(self.keypoints, self.train_noise)


def tta_of(description: str) -> str:
    """A contract's ``test_time_augmentation`` text -> ``none`` | ``flip``."""
    text = str(description or "none").strip().lower()
    return "none" if text in ("", "none") else ("flip" if "flip" in text else text)


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
    for side, mine, raw in (("2D input", measured.input_2d, measured.keypoints),
                            ("training 2D", measured.train_2d, measured.keypoints)):
        theirs = str(published.get("input_2d" if side == "2D input" else "train_2d", ""))
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


def bug_flag(published: Mapping[str, Any], corrected_value: float | None = None) -> str:
    """'' for a clean number; else the one-line flag shown beside it, naming the corrected counterpart."""
    bug = str(published.get("evaluation_bug", "") or "").lower()
    if bug == "true":
        corrected = str(published.get("corrected_by", "") or "")
        if corrected:
            value = f" = {corrected_value:.2f} mm" if corrected_value is not None else ""
            return f"BUGGY EVALUATION: corrected number in {corrected}{value}"
        return "BUGGY EVALUATION: no corrected number was published (read as a trend only)"
    if bug == "unknown":
        return "evaluation status unknown (may come from a buggy evaluation)"
    return ""


def recipe_banner(reproduces: Mapping[str, str] | None, preset: str, dataset: str) -> str | None:
    """The one-line banner of a suite preset, or None when it runs a paper table's recipe on its data.
    ``reproduces`` is the suite's ``[reproduces]`` table (preset -> the paper table it reproduces)."""
    reasons = []
    if not reproduces or preset not in reproduces:
        reasons.append(f"preset '{preset}' is a reduced recipe, not a paper table's" if preset else
                       "preset unknown, so no paper table's recipe")
    if dataset != PAPER_DATASET:
        reasons.append(f"data {dataset}, not Human3.6M")
    return f"Note: {BANNER} ({'; '.join(reasons)})." if reasons else None


def suite_banner(suite: str, preset: str, dataset: str) -> str | None:
    """``recipe_banner`` for a shipped suite by name (an unknown suite has no paper table)."""
    try:
        reproduces = load_suite(suite).raw.get("reproduces", {})
    except LiftbenchError:
        reproduces = {}
    return recipe_banner(reproduces, preset, dataset)


def reproduced_table(suite: str, preset: str) -> str:
    """The paper table a shipped suite preset reproduces ('' if none)."""
    try:
        return str(load_suite(suite).raw.get("reproduces", {}).get(preset, ""))
    except LiftbenchError:
        return ""
