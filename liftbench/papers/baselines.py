"""Published numbers shipped in ``<repo>/baselines/*.csv``: loading, validation and lookup.

Every row is a number printed in a paper (or in an author's correction), with a full citation in
``source``; none is a liftbench result. Rows come back with ``origin="published"`` so they can sit
next to measured rows without being mistaken for them (see ``baselines/README.md``).

Keys. A file ``<paper>_table<N>_<topic>.csv`` belongs to the group ``<paper>`` (everything before
``_table``); any other file is its own group. A key may name

* a group: ``hossain2018`` (Tables 1-4 as published), ``hossain2018_corrected``, ``martinez2017``;
* a single file by its stem (``hossain2018_table3_noise``) or by its table (``hossain2018_table3``).

The directory is the shipped ``baselines/`` (see ``liftbench.resources``), or ``$LIFTBENCH_BASELINES`` if set.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from liftbench.errors import DataError, UnknownNameError, one_line, unknown_name_message
from liftbench.resources import shipped_path
from liftbench.values import TABLE_MAX_BYTES, read_text_capped, reading

ENV_VAR = "LIFTBENCH_BASELINES"

REQUIRED_COLUMNS: tuple[str, ...] = (
    "paper", "table", "method", "input_2d", "protocol", "metric", "variant", "noise_sigma_px", "seq_len",
    "slice_type", "slice", "value", "unit", "source",
)
#: columns that must hold a finite number on every row (others, e.g. ``delta``, are numeric when present)
NUMERIC_COLUMNS: tuple[str, ...] = ("value", "noise_sigma_px", "seq_len")
OPTIONAL_NUMERIC_COLUMNS: tuple[str, ...] = ("n_joints", "delta")
PROTOCOL_METRIC = {"p1": "mpjpe", "p2": "p_mpjpe"}
SLICE_TYPES = ("action", "all")
CLAIMS_SUFFIX = "_claims.csv"
#: the setting of a published number (see baselines/README.md); checked when present, '' means not stated
SETTING_VALUES = {"within_action": ("frames", "videos", "unknown"), "alignment": ("causal", "centred", "frame", "clip"),
                  "tta": ("none", "flip"), "evaluation_bug": ("true", "false", "unknown"),
                  "p2_kind": ("rigid", "similarity", "unknown")}
#: ``convention``: the evaluation convention that produced a number (``liftbench.conventions``: ``motionbert``,
#: ``mixste``, ...); empty = every test frame once (liftbench's own; Martinez, Hossain corrected, VideoPose3D)
CONVENTION_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
#: the measured metric of each Protocol #2 kind (P1 rows have no kind)
P2_KIND_METRIC = {"rigid": "p_mpjpe_rigid", "similarity": "p_mpjpe"}

#: Human-readable descriptions of the shipped groups; an unknown group gets a generic one.
DESCRIPTIONS = {
    "hossain2018": "Hossain & Little ECCV 2018, Tables 1-4 as published (P1/P2 per action, noise, ablation); "
                   "affected by the evaluation bug",
    "hossain2018_corrected": "Hossain & Little, corrected evaluation (Actual_result.png): P1 58.25 / P2 44.09 mm",
    "martinez2017": "Martinez et al. ICCV 2017: P1 (SH 62.9, GT 45.5), P2 47.7, P2 vs 2D noise; as quoted by "
                    "Hossain & Little",
    "zhu2023": "Zhu et al. ICCV 2023 (MotionBERT DSTformer), SH detections + confidence, 243-frame clips, scored by "
               "its own convention (tails and 3 S9 takes left out): P1 39.2 scratch / 37.2 fine-tuned (README; paper "
               "37.5); mmpose's re-evaluation frame-mean 39.8 / 37.7, P2 33.4 / 32.2",
    "zhang2022": "Zhang et al. CVPR 2022 (MixSTE), scored by its own convention (last clip aligned to the end, overlap "
                 "counted twice): P1 40.9 / P2 32.6 on CPN at 243 frames, 42.4 at 81, 21.6 on GT 2D, 39.8 on HRNet",
    "pavllo2019": "Pavllo et al. CVPR 2019 (VideoPose3D): P1/P2 per action, 243 frames on CPN 46.8 / 36.5, causal "
                  "49.0 / 38.1, single frame 51.8 / 40.0; 27/81/243-frame and GT-2D rows; quoted Hossain (corrected) "
                  "and Martinez",
}
CITATIONS = {
    "hossain2018": "Hossain & Little, Exploiting temporal information for 3D pose estimation, ECCV 2018, Tables 1-4",
    "hossain2018_corrected": "rayat137/Pose_3D README.md, issue #3 and temporal_3d_release/Actual_result.png",
    "martinez2017": "Martinez, Hossain, Romero & Little, A simple yet effective baseline for 3d human pose "
                    "estimation, ICCV 2017; as quoted in Hossain & Little, ECCV 2018, Tables 1-3",
    "pavllo2019": "Pavllo, Feichtenhofer, Grangier & Auli, 3D human pose estimation in video with temporal "
                  "convolutions and semi-supervised training, CVPR 2019, Tables 1 and 5; "
                  "facebookresearch/VideoPose3D README.md",
    "zhu2023": "Zhu, Ma, Liu, Liu, Wu & Wang, MotionBERT: A Unified Perspective on Learning Human Motion "
               "Representations, ICCV 2023; Walter0807/MotionBERT README.md; open-mmlab/mmpose MotionBERT configs",
    "zhang2022": "Zhang et al., MixSTE: Seq2seq Mixed Spatio-Temporal Encoder for 3D Human Pose Estimation in Video, "
                 "CVPR 2022; JinluZhang1126/MixSTE README.md",
}

_TABLE_KEY = re.compile(r"^(?P<paper>.+?)_table(?P<n>\d+)(?:_.*)?$")


class BaselineInfo(NamedTuple):
    key: str
    description: str
    n_rows: int
    source: str


def baselines_dir() -> Path:
    """``$LIFTBENCH_BASELINES`` if set, else the shipped ``baselines/`` (``liftbench.resources``: the
    repository's in a checkout, the packaged copy in an installed wheel)."""

    override = os.environ.get(ENV_VAR, "").strip()
    return Path(override).expanduser() if override else shipped_path("baselines")


def _files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise DataError(f"Baselines directory {directory} not found; set {ENV_VAR} to the folder holding the "
                        "published-number CSVs (the repository's baselines/).")
    # top level only: baselines/reference/ holds CI results, not papers; *_claims.csv are claims
    # (liftbench.papers.claims)
    files = sorted(p for p in directory.glob("*.csv") if not p.name.endswith(CLAIMS_SUFFIX))
    if not files:
        raise DataError(f"No *.csv files in baselines directory {directory}; set {ENV_VAR} or restore baselines/.")
    return files


def _group_of(stem: str) -> str:
    m = _TABLE_KEY.match(stem)
    return m.group("paper") if m else stem


def _key_map(files: list[Path]) -> dict[str, list[Path]]:
    """key -> files, for group keys, file stems and ``<paper>_table<N>`` short keys."""
    keys: dict[str, list[Path]] = {}
    for path in files:
        stem = path.stem
        keys.setdefault(_group_of(stem), []).append(path)
        if stem != _group_of(stem):
            keys.setdefault(stem, []).append(path)
        m = _TABLE_KEY.match(stem)
        if m and f"{m.group('paper')}_table{m.group('n')}" != stem:
            keys.setdefault(f"{m.group('paper')}_table{m.group('n')}", []).append(path)
    return keys


def read_baseline_file(path: Path) -> pd.DataFrame:
    """Read and validate one CSV; every problem is a ``DataError`` naming the file (and rows)."""
    path = Path(path)
    text = read_text_capped(path, "a baseline CSV (published numbers with their citation)", TABLE_MAX_BYTES)
    try:
        with reading(path, "a baseline CSV"):
            # Text stays text ('' not NaN: pandas groupby drops NaN keys); numbers are converted below.
            df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except DataError as exc:
        if not isinstance(exc.__cause__, (pd.errors.ParserError, pd.errors.EmptyDataError)):
            raise
        raise DataError(f"Baseline file {path} is not a readable CSV: {one_line(exc.__cause__)}") from exc.__cause__
    df = df.fillna("")  # a short (ragged) line leaves NaN even with keep_default_na=False
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"Baseline file {path} lacks column(s) {', '.join(missing)}; "
                        f"required: {', '.join(REQUIRED_COLUMNS)}.")
    if df.empty:
        raise DataError(f"Baseline file {path} has a header but no rows.")

    def bad_rows(mask) -> str:  # CSV line numbers (header is line 1)
        lines = (np.flatnonzero(np.asarray(mask)) + 2).tolist()
        return ", ".join(map(str, lines[:10])) + (" ..." if len(lines) > 10 else "")

    for col in NUMERIC_COLUMNS + tuple(c for c in OPTIONAL_NUMERIC_COLUMNS if c in df.columns):
        raw = df[col].str.strip()
        num = pd.to_numeric(raw, errors="coerce")
        required = col in NUMERIC_COLUMNS
        invalid = ~np.isfinite(num.to_numpy(dtype=float)) & (raw.ne("") | required)
        if invalid.any():
            raise DataError(f"Baseline file {path}: column '{col}' needs a finite number on line(s) "
                            f"{bad_rows(invalid)}.")
        # values, sigmas and deltas are real numbers; counts (seq_len, n_joints) stay integers when whole
        df[col] = num.astype(float) if col in ("value", "noise_sigma_px", "delta") else num
    for col, allowed in (("protocol", tuple(PROTOCOL_METRIC)), ("metric", tuple(PROTOCOL_METRIC.values())),
                         ("slice_type", SLICE_TYPES)):
        invalid = ~df[col].isin(allowed)
        if invalid.any():
            raise DataError(f"Baseline file {path}: column '{col}' must be one of {', '.join(allowed)} "
                            f"(line(s) {bad_rows(invalid)}).")
    mismatch = df["protocol"].map(PROTOCOL_METRIC) != df["metric"]
    if mismatch.any():
        raise DataError(f"Baseline file {path}: protocol p1 goes with metric mpjpe and p2 with p_mpjpe "
                        f"(line(s) {bad_rows(mismatch)}).")
    for col, allowed in SETTING_VALUES.items():
        if col in df.columns:
            invalid = ~df[col].isin(allowed + ("",))
            if invalid.any():
                raise DataError(f"Baseline file {path}: column '{col}' must be one of {', '.join(allowed)} or empty "
                                f"(line(s) {bad_rows(invalid)}).")
    if "convention" in df.columns:
        invalid = ~(df["convention"].eq("") | df["convention"].str.fullmatch(CONVENTION_NAME.pattern))
        if invalid.any():
            raise DataError(f"Baseline file {path}: column 'convention' must be an evaluation convention name such as "
                            f"motionbert or mixste, or empty for every test frame once (line(s) {bad_rows(invalid)}).")
    if "p2_kind" in df.columns:  # the Procrustes kind belongs to P2 numbers, and every P2 number states it
        wrong = (df["protocol"] == "p2") != df["p2_kind"].ne("")
        if wrong.any():
            raise DataError(f"Baseline file {path}: column 'p2_kind' must be rigid, similarity or unknown on every p2 "
                            f"row and empty on p1 rows (line(s) {bad_rows(wrong)}).")
    for col in ("source", "method", "slice", "unit"):
        empty = df[col].str.strip().eq("")
        if empty.any():
            raise DataError(f"Baseline file {path}: empty '{col}' on line(s) {bad_rows(empty)}; "
                            "every published number needs its citation and labels.")
    return df


def _resolve(key: str | None) -> tuple[list[Path], dict[str, list[Path]]]:
    files = _files(baselines_dir())
    keys = _key_map(files)
    if key is None:
        return files, keys
    if key not in keys:
        raise UnknownNameError(unknown_name_message("baseline", key, keys))
    return keys[key], keys


def load_baselines(key: str | None = None) -> pd.DataFrame:
    """All published rows (``key=None``) or those of one group / file, with ``origin="published"``,
    ``baseline`` (the group key) and ``baseline_file`` columns added. Unknown key -> UnknownNameError."""
    files, _ = _resolve(key)
    frames = []
    for path in files:
        df = read_baseline_file(path)
        df.insert(0, "origin", "published")
        df.insert(1, "baseline", _group_of(path.stem))
        df["baseline_file"] = path.name
        frames.append(df)
    out = pd.concat(frames, ignore_index=True, sort=False)
    # a text column only some files have (``convention``, ``p2_kind`` ...) is '' on the others' rows, never NaN
    text = [c for c in out.columns if c not in NUMERIC_COLUMNS + OPTIONAL_NUMERIC_COLUMNS]
    out[text] = out[text].fillna("")
    return out


def list_baselines() -> list[BaselineInfo]:
    """One entry per group: (key, description, n_rows, source). Sub-keys are named in the description."""
    files = _files(baselines_dir())
    keys = _key_map(files)
    out = []
    for group in sorted({_group_of(p.stem) for p in files}):
        members = keys[group]
        df = pd.concat([read_baseline_file(p) for p in members], ignore_index=True)
        tables = sorted(df["table"].unique())
        description = DESCRIPTIONS.get(group, f"{group}: {', '.join(tables)}")
        if len(members) > 1:  # name the per-table keys users can pass instead of the whole group
            subkeys = [k for k, v in keys.items() if len(v) == 1 and v[0] in members and _TABLE_KEY.match(k)
                       and k.count("_") == group.count("_") + 1]
            description += f" (keys: {', '.join(sorted(subkeys))})"
        source = CITATIONS.get(group) or "; ".join(sorted(df["source"].unique()))
        out.append(BaselineInfo(group, description, len(df), source))
    return out


def paper_values(key: str, metric: str, variant: str | None = None, input_2d: str | None = None,
                 noise_sigma_px: float | None = None) -> pd.DataFrame:
    """Rows of ``key`` for one metric (``mpjpe``/``p_mpjpe``, or the protocol names ``p1``/``p2``),
    optionally filtered by variant, 2D input and test-noise sigma. The filters may leave nothing
    (an empty frame); an unknown metric raises ``UnknownNameError``."""
    df = load_baselines(key)
    metric = PROTOCOL_METRIC.get(metric, metric)
    available = sorted(df["metric"].unique())
    if metric not in available:
        raise UnknownNameError(unknown_name_message(f"metric in baseline '{key}'", metric, available))
    sel = df["metric"] == metric
    if variant is not None:
        sel &= df["variant"] == variant
    if input_2d is not None:
        sel &= df["input_2d"] == input_2d
    if noise_sigma_px is not None:
        sel &= np.isclose(df["noise_sigma_px"].to_numpy(dtype=float), float(noise_sigma_px))
    return df[sel].reset_index(drop=True)
