"""What every detector reader shares: loading a file, numbering the files of a per-frame folder, frame
numbers and track ids from the values detectors write, and turning rows into ``keypoints.Detections``.

Shared by ``readers`` (COCO, AlphaPose, OpenPose, MMPose, plain arrays) and ``detectors`` (YOLO,
MediaPipe, easy_ViTPose), so neither imports the other's internals. Every malformed input is a
``DataError`` naming the file and the fix.

Track ids: only a scalar is a track id. AlphaPose writes ``idx`` as a number when one of its trackers
ran (``--pose_track`` / PoseFlow), but as a list without a tracker (its default): ``[0.0]`` for every
person, and ``[[0.0], [0.0]]`` when pose-NMS merged several boxes into one person
(MVIG-SJTU/AlphaPose ``alphapose/utils/pPose_nms.py``). A list is therefore "no id", never id 0.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from liftbench.errors import DataError
from liftbench.values import (
    INT64_MAX,
    JSON_MAX_DEPTH,
    KEYPOINT_FILE_MAX_BYTES,
    finite_number,
    frame_id,
    id_from_digits,
    nesting_depth,
    read_text_capped,
)
from liftbench.wild.keypoints import LAYOUTS, Detections

WHAT = "the keypoint file your detector wrote"


def frame_number(value: Any, fallback: int, where: str = "frame id") -> int:
    """Frame number from a whole-number id (3 or 3.0; 0.5 is an error, not frame 5) or the last integer in a
    name ('frame_000012.jpg' -> 12); ``fallback`` when there is neither."""
    if isinstance(value, bool) or value is None:
        return fallback
    if isinstance(value, (int, float)):
        return frame_id(value, where)
    found = re.findall(r"\d+", str(value))
    return id_from_digits(found[-1], where) if found else fallback


def track_id(value: Any, where: str = "track id") -> int | None:
    """A scalar whole number is a track id (3 or 3.0); a list, a string or nothing is "no id"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer():
        return int(finite_number(value, where, minimum=-INT64_MAX, maximum=INT64_MAX, integral=True))
    return None


def merged_boxes(value: Any) -> bool:
    """AlphaPose's untracked ``idx`` of a person that pose-NMS merged from several boxes: [[a], [b], ...]."""
    return isinstance(value, list) and len(value) > 1


def read_text(path: Path, max_bytes: int = KEYPOINT_FILE_MAX_BYTES) -> str:
    """A detector file's text (``values.read_text_capped``: a regular file under the size cap, utf-8 with an
    optional byte-order mark); an empty file is one line too."""
    text = read_text_capped(path, WHAT, max_bytes)
    if not text.strip():
        raise DataError(f"{path} is empty; pass {WHAT}.")
    return text


def load_json(path: Path, max_bytes: int = KEYPOINT_FILE_MAX_BYTES) -> Any:
    """A detector JSON: capped, not empty, valid, numbers Python holds, nesting at most ``JSON_MAX_DEPTH``."""
    text = read_text(path, max_bytes)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg}); pass the detector's JSON "
                        "output.") from exc
    except (RecursionError, ValueError) as exc:  # deep nesting; a 5,000-digit integer
        raise DataError(f"{path}: this JSON cannot be read (nested too deep or a number too long); pass "
                        f"{WHAT}.") from exc
    if nesting_depth(data, JSON_MAX_DEPTH) > JSON_MAX_DEPTH:
        raise DataError(f"{path}: JSON nested deeper than {JSON_MAX_DEPTH} levels; pass {WHAT}.")
    return data


def numbered_files(folder: Path, suffix: str = ".json") -> list[tuple[int, Path]]:
    """(frame number, file) of a per-frame folder, numerically sorted (frame_10 after frame_9); name order
    when the names hold no numbers. Two files of one frame are an error."""
    files = sorted(folder.glob(f"*{suffix}"))
    if not files:
        raise DataError(f"{folder} holds no {suffix} files; pass a folder of per-frame keypoint files or a file.")
    if not all(re.findall(r"\d+", f.stem) for f in files):
        return list(enumerate(files))  # no frame numbers in the names: name order
    numbered = sorted(((id_from_digits(re.findall(r"\d+", f.stem)[-1], str(f)), f) for f in files),
                      key=lambda t: t[0])  # frame_10 after frame_9
    for (a, fa), (b, fb) in zip(numbered, numbered[1:]):
        if a == b:
            raise DataError(f"{folder}: {fa.name} and {fb.name} both hold frame {a}; put one video's frames per "
                            "folder.")
    return numbered


def flat_points(values: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """COCO/OpenPose flat [x1, y1, s1, ...] -> (K, 2), (K,)."""
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: keypoints are not a list of numbers; pass the detector's JSON as written.") from exc
    if arr.size == 0 or arr.size % 3:
        raise DataError(f"{where}: {arr.size} keypoint values is not x, y, score triples; the file is truncated "
                        "or not this format.")
    triples = arr.reshape(-1, 3)  # (K, 3)
    return triples[:, :2], triples[:, 2]


def assemble(path: Path, fmt: str, layout: str, rows: list, video_frames: list, ids: list,
             size: tuple) -> Detections:
    """Rows (frame, track or None, (K, 2), (K,)) -> Detections.

    ``ids`` names, per row, where its track id comes from ('track_id', 'idx', ...) or is None. When every
    row has one, ``person`` holds the ids (``ids_from_file``); otherwise it is the index within the frame
    (file order) and the people are associated across frames later (``tracking``). Ids on only some rows
    are ignored, with a note: one person's id cannot be matched to another's index."""
    kinds = sorted({k for k in ids if k})
    notes = []
    with_ids = bool(kinds) and None not in ids
    if kinds and not with_ids:
        notes.append(f"{sum(k is not None for k in ids)} of {len(ids)} detections carry a track id and the others do "
                     "not; the ids are ignored and people are associated across frames")
    frames = np.array([r[0] for r in rows], dtype=np.int64)
    if with_ids:
        person = np.array([r[1] for r in rows], dtype=np.int64)
    else:  # per index within each frame, in file order
        person = np.zeros(len(rows), dtype=np.int64)
        seen: dict[int, int] = {}
        for i, f in enumerate(frames.tolist()):
            person[i] = seen.get(f, 0)
            seen[f] = person[i] + 1
    k = len(LAYOUTS[layout])
    points = np.stack([r[2] for r in rows]).reshape(len(rows), k, 2) if rows else np.zeros((0, k, 2))  # (D, K, 2)
    scores = np.stack([r[3] for r in rows]).reshape(len(rows), k) if rows else np.zeros((0, k))  # (D, K)
    bad = ~np.isfinite(points).all(axis=(1, 2)) | ~np.isfinite(scores).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path}: NaN or infinite coordinates in frame {frames[i]} (person {person[i]}); mark a "
                        "missing point with score 0 or (0, 0) instead of NaN.")
    all_frames = np.unique(np.concatenate([np.asarray(video_frames, dtype=np.int64), frames]))
    key = "/".join(kinds) if with_ids else "index within the frame"
    return Detections(path, fmt, layout, frames, person, points, scores, all_frames, key, size[0], size[1],
                      ids_from_file=with_ids, notes=notes)


def in_pixels(dets: Detections, width: float, height: float) -> Detections:
    """Detections whose points are fractions of the image (YOLO labels, MediaPipe) -> pixels of a
    ``width`` x ``height`` image; pixel input is returned unchanged. (0, 0) stays (0, 0): "absent"."""
    if not dets.normalised:
        return dets
    scaled = dets.points * np.array([width, height])  # (D, K, 2)
    return Detections(dets.source, dets.format, dets.layout, dets.frames, dets.person, scaled, dets.scores,
                      dets.video_frames, dets.person_key, dets.width, dets.height, dets.ids_from_file, False,
                      dets.merged_boxes, list(dets.notes))
