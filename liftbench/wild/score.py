"""Score 3D predictions made by another codebase with liftbench's protocol (``liftbench score``).

Why: a published number is only comparable with liftbench's if it used the same frames, the same
root handling and the same averaging. This module reads someone else's predictions, rebuilds the
ground truth from the dataset's test split, applies the coverage rule of ``evaluate`` (every test
frame exactly once, ``evaluate.check_coverage``) and scores with ``evaluate.score``.

Accepted files (``data.safe.npz.load_members``, the one safe reader: plain arrays, strings included, and
pickled members only through its restricted unpickler, which rebuilds plain data and refuses anything
else, so a crafted file cannot run code; memory bounded by what the file holds). Every member is checked
like a value from the command line (``values``): frames are whole numbers, poses finite in float32.

* liftbench's ``predictions.npz`` (``evaluate --save-predictions``): arrays ``subject``, ``action``,
  ``camera``, ``frame``, ``pred`` (M, 17, 3) and optionally ``target`` (ignored for scoring, but
  compared with the ground truth: a mismatch is a warning). Units: mm unless ``--units m``.
* a VideoPose3D-style dict ``{subject: {action: [camera 0..3: (N, 17, 3) or None]}}`` stored as the
  one dict-valued member of an ``.npz`` (any key name, e.g. ``positions_3d``), frame i of array c
  being frame i of that camera's video;
* a plain ``.npz`` whose members are named ``"<subject>/<action>/<camera>"`` (e.g. ``S9/Walking 1/0``),
  each (N, 17, 3); the camera is the index 0-3 or the Human3.6M camera id (``54138969``...).

The dict and flat layouts need ``--units mm|m``. Joints are in H36M-17 order, camera frame. Root
handling (``--root``): ``subtract`` (default for the dict and flat layouts) makes every predicted pose
root-relative by subtracting joint 0 (the Hip), so absolute camera coordinates score as intended;
``keep`` (default for liftbench's own file, which is already root-relative) scores the predicted root
as it is, as ``evaluate`` does for lifters that predict it (VideoPose3D's convention). The ground
truth is always root-centred.
Action names are normalised as the h36m loader does (``TakingPhoto``/``WalkingDog`` ->
``Photo``/``WalkDog``). The units are checked for plausibility from the median pose extent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from liftbench._files import file_sha256, write_json_atomic
from liftbench.conventions import convention_weights, get_convention
from liftbench.data import PoseDataset, load_dataset
from liftbench.data.cameras import CAMERA_IDS
from liftbench.data.dataset import Sequence
from liftbench.data.h36m import normalise_action
from liftbench.data.safe.npz import load_members
from liftbench.data.skeleton import JOINT_NAMES, NUM_JOINTS, action_group, root_centre
from liftbench.errors import ConfigError, CoverageError, DataError
from liftbench.evaluate import Predictions, check_coverage, score, score_convention
from liftbench.results import DEFAULT_CONVENTION, provenance, rows_frame, write_rows
from liftbench.values import float32_safe, id_array, printable, reading, user_file

UNITS_TO_MM = {"mm": 1.0, "m": 1000.0}
ROOT_MODES = ("subtract", "keep")
LIFTBENCH_KEYS = ("subject", "action", "camera", "frame", "pred")
# A human pose (root-relative, any camera) spans roughly 0.5-2.5 m; outside this the units are wrong.
PLAUSIBLE_EXTENT_MM = (200.0, 5000.0)
TARGET_MISMATCH_MM = 1.0  # a stored target further than this from the ground truth is reported
DEFAULT_OUT = Path("results") / "external"


@dataclass
class ExternalPredictions:
    """What was read from the file, before matching with the dataset; poses in mm, root handled per ``root``."""

    layout: str  # 'liftbench' | 'dict' | 'flat'
    subject: np.ndarray  # (M,) str
    action: np.ndarray  # (M,) str, normalised names
    camera: np.ndarray  # (M,) int
    frame: np.ndarray  # (M,) int
    pred: np.ndarray  # (M, 17, 3) float32 mm
    target: np.ndarray | None  # (M, 17, 3) float32 mm, liftbench layout only
    units: str
    root: str  # 'subtract' | 'keep'


@dataclass
class ScoreOutcome:
    rows: pd.DataFrame
    card: dict[str, Any]
    out_dir: Path
    warnings: list[str] = field(default_factory=list)




def _camera_index(value: object, where: str) -> int:
    """0-3, or a Human3.6M camera id such as '54138969' -> its index."""
    text = printable(str(value), 40).strip()
    if text in CAMERA_IDS:
        return CAMERA_IDS.index(text)
    if text.isdigit() and int(text) < len(CAMERA_IDS):
        return int(text)
    raise DataError(f"{where}: camera '{text}' is neither an index 0-{len(CAMERA_IDS) - 1} nor a Human3.6M "
                    f"camera id ({', '.join(CAMERA_IDS)}).")


def _pose_array(arr: object, where: str) -> np.ndarray:
    """One (N, 17, 3) finite float array (float64), or a DataError naming ``where``."""
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
        raise DataError(f"{where}: expected a numeric (frames, 17, 3) array, got "
                        f"{type(arr).__name__ if not isinstance(arr, np.ndarray) else arr.dtype}.")
    if arr.ndim != 3 or arr.shape[1:] != (NUM_JOINTS, 3):
        raise DataError(f"{where}: shape {arr.shape}, expected (frames, 17, 3) in H36M-17 joint order.")
    finite = np.isfinite(arr).all(axis=(1, 2))  # (N,)
    if not finite.all():
        raise DataError(f"{where}: NaN/inf in {int((~finite).sum())} frame(s), first at frame "
                        f"{int(np.flatnonzero(~finite)[0])}; every test frame needs a finite prediction.")
    return arr.astype(np.float64)


def _videos_from_dict(tree: dict, path: Path) -> list[tuple[str, str, int, np.ndarray]]:
    """{subject: {action: [camera arrays]}} -> (subject, action, camera, (N, 17, 3)) per video."""
    out = []
    for subject, actions in tree.items():
        if not isinstance(actions, dict):
            raise DataError(f"{path}: subject '{subject}' holds a {type(actions).__name__}, expected a dict "
                            "{action: [camera 0..3 arrays]}.")
        for action, cams in actions.items():
            where = f"{path}: {subject}/{action}"
            if isinstance(cams, np.ndarray) and cams.dtype != object:
                raise DataError(f"{where}: expected a list over cameras of (frames, 17, 3) arrays, got one "
                                f"array of shape {cams.shape}; wrap it as [cam0, cam1, cam2, cam3].")
            if not isinstance(cams, (list, tuple, np.ndarray)) or len(cams) > len(CAMERA_IDS):
                raise DataError(f"{where}: expected a list of at most {len(CAMERA_IDS)} camera arrays "
                                f"(order {', '.join(CAMERA_IDS)}).")
            for c, arr in enumerate(cams):
                if arr is None or (isinstance(arr, np.ndarray) and arr.size == 0):
                    continue  # camera not predicted: the coverage check names it if the test split has it
                out.append((str(subject), str(action), c, _pose_array(arr, f"{where}/cam{c}")))
    return out


def _videos_from_flat(members: dict[str, object], path: Path) -> list[tuple[str, str, int, np.ndarray]]:
    out = []
    for key, arr in members.items():
        parts = key.split("/")
        if len(parts) != 3:
            raise DataError(f"{path}: member '{key}' is not named '<subject>/<action>/<camera>' "
                            "(e.g. 'S9/Walking 1/0') and the file has no liftbench or dict layout.")
        subject, action, camera = parts
        out.append((subject, action, _camera_index(camera, f"{path}: {key}"), _pose_array(arr, f"{path}: {key}")))
    return out


def _check_units(pred_mm: np.ndarray, units: str, path: Path) -> None:
    """Median per-frame bounding-box diagonal must look like a human body in millimetres."""
    with np.errstate(all="ignore"):  # a pose near float32's limit has an infinite extent: implausible, said below
        extent = np.linalg.norm(pred_mm.max(axis=1) - pred_mm.min(axis=1), axis=-1)  # (M,)
    median = float(np.median(extent))
    low, high = PLAUSIBLE_EXTENT_MM
    if low <= median <= high:
        return
    other = "m" if units == "mm" else "mm"
    in_file = median / UNITS_TO_MM[units]
    guess = (f"the units look wrong: pass --units {other}" if (units == "mm" and median < low)
             or (units == "m" and median > high) else "these are not plausible human poses in either unit")
    raise DataError(f"{path}: poses span a median {in_file:.4g} {units} per frame (read as --units {units}: "
                    f"{median:.4g} mm, a body spans {low:.0f}-{high:.0f} mm); {guess}.")


def read_external(path: str | Path, units: str | None, root: str | None = None) -> ExternalPredictions:
    """Read any accepted layout into mm poses (root handled per ``root``) with normalised video names."""
    path = Path(path)
    if units is not None and units not in UNITS_TO_MM:
        raise ConfigError(f"--units '{units}' is not supported; use mm or m.")
    if root is not None and root not in ROOT_MODES:
        raise ConfigError(f"--root '{root}' is not supported; use subtract or keep.")
    members = load_members(path)
    with reading(path, "a predictions .npz"):  # anything else a malformed file raises: one line naming it
        return _read_members(path, members, units, root)


def _read_members(path: Path, members: dict[str, Any], units: str | None, root: str | None) -> ExternalPredictions:
    if not members:
        raise DataError(f"{path}: the .npz holds no arrays; expected predictions (see liftbench score --help).")
    target = None
    if all(k in members for k in LIFTBENCH_KEYS):
        layout, units = "liftbench", units or "mm"
        frame = id_array(members["frame"], f"{path}: member 'frame'")  # whole numbers >= 0, one axis
        m = len(frame)
        pred = _pose_array(members["pred"], f"{path}: pred")
        for key in ("subject", "action", "camera"):
            if np.shape(members[key]) != (m,):
                raise DataError(f"{path}: '{key}' has shape {np.shape(members[key])}, expected ({m},) like 'frame'.")
        if len(pred) != m:
            raise DataError(f"{path}: 'pred' has {len(pred)} frames but 'frame' has {m}; re-save the predictions.")
        subject = np.asarray(members["subject"]).astype(str)
        names, inverse = np.unique(np.asarray(members["action"]).astype(str), return_inverse=True)
        action = np.array([normalise_action(a) for a in names])[inverse]  # (M,) one lookup per distinct name
        cams, inverse = np.unique(np.asarray(members["camera"]).astype(str), return_inverse=True)
        camera = np.array([_camera_index(c, f"{path}: camera") for c in cams], dtype=np.int64)[inverse]  # (M,)
        if "target" in members:
            target = _pose_array(members["target"], f"{path}: target")
            if len(target) != m:
                raise DataError(f"{path}: 'target' has {len(target)} frames but 'frame' has {m}.")
    else:
        dicts = {k: v for k, v in members.items() if isinstance(v, dict)}
        if len(dicts) > 1:
            raise DataError(f"{path}: several dict members ({', '.join(sorted(dicts))}); keep only the predictions "
                            "{subject: {action: [camera arrays]}}.")
        layout = "dict" if dicts else "flat"
        if units is None:
            raise ConfigError(f"{path}: --units mm|m is required for a {layout}-layout file (it does not say "
                              "whether the poses are millimetres or metres).")
        videos = _videos_from_dict(next(iter(dicts.values())), path) if dicts else _videos_from_flat(members, path)
        if not videos:
            raise DataError(f"{path}: no predicted video in the file.")
        lengths = [len(v[3]) for v in videos]
        subject = np.repeat([v[0] for v in videos], lengths)
        action = np.repeat([normalise_action(v[1]) for v in videos], lengths)
        camera = np.repeat(np.array([v[2] for v in videos], dtype=np.int64), lengths)
        frame = np.concatenate([np.arange(n) for n in lengths]).astype(np.int64)
        pred = np.concatenate([v[3] for v in videos])  # (M, 17, 3)
    if len(pred) == 0:
        raise DataError(f"{path}: no predicted frame in the file.")
    scale = UNITS_TO_MM[units]
    root = root or ("keep" if layout == "liftbench" else "subtract")
    with np.errstate(all="ignore"):  # checked at once: a finite float64 may overflow float32 after scaling
        pred = pred * scale  # (M, 17, 3) mm
    float32_safe(pred, f"{path}: predicted poses in mm")
    _check_units(root_centre(pred[:: max(1, len(pred) // 20000)]), units, path)  # a sample is enough
    if root == "subtract":
        pred = root_centre(pred)  # joint 0 exactly zero
    if target is not None:
        with np.errstate(all="ignore"):
            target = float32_safe(root_centre(target * scale), f"{path}: member 'target' in mm")
    return ExternalPredictions(layout, subject, action, camera, frame, pred.astype(np.float32), target, units, root)


def _check_videos(ext: ExternalPredictions, test: list[Sequence], path: Path, allow_partial: bool = False) -> None:
    """Name videos the file has but the test split lacks, and (unless ``allow_partial``) whole test videos the
    file lacks."""
    known = {s.key for s in test}
    subjects = sorted({s.subject for s in test})
    for key in sorted(set(zip(ext.subject.tolist(), ext.action.tolist(), ext.camera.tolist()))):
        if key in known:
            continue
        subject, action, camera = key
        if subject not in subjects:
            raise DataError(f"{path}: subject '{subject}' is not in the test split (test subjects: "
                            f"{', '.join(subjects)}); score only test-split predictions.")
        actions = sorted({s.action for s in test if s.subject == subject})
        if action not in actions:
            raise DataError(f"{path}: action '{action}' of {subject} is not in the test split ({subject} has: "
                            f"{', '.join(actions)}).")
        raise DataError(f"{path}: {subject}/{action} camera {camera} is not in the test split.")
    present = set(zip(ext.subject.tolist(), ext.action.tolist(), ext.camera.tolist()))
    absent = sorted(k for k in known if k not in present)
    if absent and not allow_partial:
        shown = ", ".join(f"{s}/{a}/cam{c}" for s, a, c in absent[:4]) + (" ..." if len(absent) > 4 else "")
        n = sum(s.n_frames for s in test if s.key in set(absent))
        raise CoverageError(f"{path}: {len(absent)} test video(s) with {n} frame(s) never predicted ({shown}); "
                            "every test frame must be scored exactly once (VideoPose3D, for one, drops S11 "
                            "Directions: its headline then uses fewer frames); --allow-partial scores what is there, "
                            "flagged as partial.")


def match_to_split(ext: ExternalPredictions, test: list[Sequence], path: Path,
                   allow_partial: bool = False) -> tuple[Predictions, int, list[str]]:
    """Coverage-checked ``Predictions`` in test-split order with the dataset's root-centred ground truth.
    ``allow_partial``: frames the file lacks are allowed (a frame predicted twice, or past its video's end,
    still is not)."""
    _check_videos(ext, test, path, allow_partial)
    unsorted = Predictions(ext.subject, ext.action, ext.camera, ext.frame, ext.pred, ext.pred)
    key_index = {s.key: i for i, s in enumerate(test)}
    seq_of_row = np.array([key_index[k] for k in zip(ext.subject.tolist(), ext.action.tolist(), ext.camera.tolist())],
                          dtype=np.int64)
    if allow_partial:
        n_scored = _check_partial(test, seq_of_row, ext.frame.astype(np.int64), path)
    else:
        n_scored = check_coverage(test, unsorted)
    order = np.lexsort((ext.frame, seq_of_row))  # (M,) test-split order, as evaluate emits it
    starts = np.concatenate([[0], np.cumsum([s.n_frames for s in test])[:-1]]).astype(np.int64)
    rows = starts[seq_of_row[order]] + ext.frame[order].astype(np.int64)  # (M,) rows of the full test split
    target = np.concatenate([root_centre(s.joints_3d.astype(np.float64)) for s in test])[rows].astype(np.float32)
    warnings = []
    if ext.target is not None:
        gap = np.linalg.norm(ext.target[order] - target, axis=-1).max()
        if gap > TARGET_MISMATCH_MM:
            warnings.append(f"the target stored in {path.name} differs from the dataset's ground truth by up to "
                            f"{gap:.1f} mm (another dataset, keypoints or version?); scored against the dataset")
    preds = Predictions(ext.subject[order], ext.action[order], ext.camera[order], ext.frame[order],
                        ext.pred[order], target)
    return preds, n_scored, warnings


def _check_partial(test: list[Sequence], seq_of_row: np.ndarray, frame: np.ndarray, path: Path) -> int:
    """Partial predictions: no frame twice, none outside its video; returns the frames there are."""
    lengths = np.array([s.n_frames for s in test], dtype=np.int64)
    outside = (frame < 0) | (frame >= lengths[seq_of_row])
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        s = test[int(seq_of_row[i])]
        raise CoverageError(f"{path}: frame {int(frame[i])} of {s.subject}/{s.action}/cam{s.camera} is outside the "
                            f"video ({s.n_frames} frames).")
    codes = seq_of_row * (int(lengths.max()) + 1) + frame
    values, counts = np.unique(codes, return_counts=True)
    if (counts > 1).any():
        raise CoverageError(f"{path}: {int((counts > 1).sum())} frame(s) predicted more than once; each frame once.")
    return len(values)


def coverage_summary(preds: Predictions, test: list[Sequence]) -> dict[str, Any]:
    """Frames and videos present against the test split, in all and per action group (partial scoring)."""
    present = set(zip(preds.subject.tolist(), preds.action.tolist(), preds.camera.tolist()))
    scored: dict[str, int] = {}
    expected: dict[str, int] = {}
    for a in preds.action.tolist():
        scored[action_group(a)] = scored.get(action_group(a), 0) + 1
    for s in test:
        expected[action_group(s.action)] = expected.get(action_group(s.action), 0) + s.n_frames
    return {"frames": len(preds), "test_frames": int(sum(expected.values())), "videos": len(present),
            "test_videos": len(test),
            "per_action": {g: {"frames": scored.get(g, 0), "test_frames": n} for g, n in sorted(expected.items())}}


def score_file(path: str | Path, data: str, data_dir: str | Path | None = None, keypoints: str | None = None,
               units: str | None = None, name: str | None = None, out: str | Path | None = None,
               root: str | None = None, conventions: tuple[str, ...] = (),
               allow_partial: bool = False) -> ScoreOutcome:
    """Read, check and score an external predictions file; write ``results.csv`` and ``protocol.json``.

    ``conventions``: also score as those codebases' evaluations do (rows labelled ``convention``).
    ``allow_partial``: predictions that do not cover the test set are scored as they are, their rows flagged
    ``coverage = partial`` (never placed beside a published number or a full-coverage run) and the card and
    ``coverage`` say how much is there; without it a gap is exit 3 naming a missing frame."""
    conventions = tuple(dict.fromkeys(c for c in conventions if c != DEFAULT_CONVENTION))
    for convention in conventions:
        get_convention(convention)  # an unknown name is one line before any work
    path = user_file(path, "a predictions .npz (liftbench, VideoPose3D dict or '<subject>/<action>/<camera>' "
                     "arrays)", 1 << 40)  # missing, a directory or a FIFO: one line saying which
    name = name or path.stem
    if not name.strip() or "/" in name or name.strip() in (".", "..") or printable(name) != name:
        raise ConfigError(f"--name '{printable(name)}' must be a non-empty label without '/' or control characters "
                          "(it names the output folder), not '.' or '..'.")
    ext = read_external(path, units, root)
    ds = load_dataset(data, data_dir, keypoints)
    test = ds.split("test")
    if not test:
        raise DataError(f"Dataset '{ds.name}' has an empty test split (test subjects: "
                        f"{', '.join(ds.test_subjects) or 'none'}); check --data-dir.")
    preds, n_scored, warnings = match_to_split(ext, test, path, allow_partial)
    n_expected = sum(s.n_frames for s in test)
    partial = n_scored < n_expected
    sha = file_sha256(path)
    prov = provenance("cpu")
    ident = {"run_id": f"{name}-{sha[:12]}", "suite": "", "model": name, "variant": "external", "seed": "",
             "origin": "external", "dataset": ds.name, "dataset_fingerprint": ds.fingerprint(),
             "keypoints": ds.keypoints, "train_noise": "", "test_noise": "", "noise_seed": "", "seq_len": "",
             "n_frames_expected": n_expected, "config_hash": sha, **prov, "status": "ok", "error": "",
             "coverage": "partial" if partial else "full"}
    scored = [{**ident, "convention": DEFAULT_CONVENTION, **r} for r in score(preds, video_mean=True)]
    lengths = {s.key: s.n_frames for s in test}
    for convention in conventions:
        scored += [{**ident, **r} for r in score_convention(preds, convention, lengths)]
    rows = rows_frame(scored)
    out_dir = Path(out) if out else DEFAULT_OUT / name
    card = protocol_card(path, sha, ext, ds, name, n_scored, n_expected, warnings, prov)
    card["conventions"] = {c: {"frame_set": get_convention(c).frame_set, "test_frames": n_expected,
                               **_counted(preds, c, lengths)} for c in (DEFAULT_CONVENTION, *conventions)}
    if partial:
        card["coverage"] = {"partial": True, **coverage_summary(preds, test),
                            "note": "scored only the frames the file has (--allow-partial): never beside a published "
                                    "number or a full-coverage run"}
        warnings.append(f"partial coverage: {n_scored:,} of {n_expected:,} test frames scored (--allow-partial); "
                        "these rows are flagged coverage=partial")
    write_rows(out_dir / "results.csv", rows)
    write_json_atomic(out_dir / "protocol.json", card)
    return ScoreOutcome(rows, card, out_dir, warnings)


def _counted(preds: Predictions, convention: str, lengths: dict) -> dict[str, int]:
    w = convention_weights(convention, preds.subject, preds.action, preds.camera, preds.frame, lengths)
    return {"frames_scored": int((w > 0).sum()), "frames_counted": int(w.sum())}


def protocol_card(path: Path, sha: str, ext: ExternalPredictions, ds: PoseDataset, name: str, n_scored: int,
                  n_expected: int, warnings: list[str], prov: dict[str, str]) -> dict[str, Any]:
    """The keys of ``pipeline.protocol_card`` that apply to predictions made elsewhere, plus the input file."""
    return {
        "liftbench_protocol_version": prov["protocol_version"],
        "run_id": f"{name}-{sha[:12]}", "model": name, "origin": "external",
        "input": {"path": str(path.resolve()), "sha256": sha, "layout": ext.layout, "units": ext.units,
                  "root": ext.root, "frames_in_file": int(len(ext.frame))},
        "dataset": {"name": ds.name, "keypoints": ds.keypoints, "fingerprint": ds.fingerprint(), "fps": ds.fps,
                    "train_subjects": list(ds.train_subjects), "test_subjects": list(ds.test_subjects),
                    "notes": ds.notes[:50]},
        "joints_scored": list(JOINT_NAMES),
        "root_handling": ("ground truth root-centred on the Hip; predictions made root-relative by subtracting "
                          "joint 0, "
                          "so the root enters every mean as an exact zero (17 joints)") if ext.root == "subtract" else
                         ("ground truth root-centred on the Hip; the predicted root is scored as it is in the file "
                          "(17 joints; exact zero for lifters that do not predict it)"),
        "alignment": {"mpjpe": "none (Protocol #1)", "p_mpjpe": "per-frame similarity Procrustes: rotation without "
                      "reflection, uniform scale, translation (Protocol #2)",
                      "n_mpjpe": "per-frame optimal scale only"},
        "averaging": {"action": "frame-weighted within each action group (first word of the action name), over "
                      "subjects, takes and cameras", "action_mean": "unweighted mean over action groups (headline)",
                      "frame_mean": "mean over all test frames",
                      "video_mean": "Hossain reference: mean of per-video means per group, then over groups"},
        "ground_truth": "the dataset's test split (camera frame, mm); any target stored in the file is not used",
        "window_policy": "unknown: predictions made outside liftbench",
        "test_time_augmentation": "unknown: predictions made outside liftbench",
        "frames": {"test_expected": n_expected, "test_scored": n_scored,
                   "every_frame_exactly_once": n_scored == n_expected},
        "warnings": warnings,
        **prov,
    }
