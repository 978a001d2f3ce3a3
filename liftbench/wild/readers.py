"""Readers of detector keypoint files -> ``keypoints2d.Detections`` (one row per frame and person).

Why separate from ``keypoints2d``: parsing many container quirks (COCO results lists and dataset
dicts, AlphaPose ``idx``, OpenPose per-frame folders, MMPose's two JSON shapes, plain arrays) is one
job; mapping and filling what was read is another. Facts: reference
``official_data_and_2d_formats.md`` §3.2 and §5 (frame ids sorted numerically, (0, 0) = absent).
Every malformed input is a ``DataError`` naming the file (and record) and the fix.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from liftbench.errors import ConfigError, DataError, one_line
from liftbench.wild.keypoints import ARRAY_LAYOUTS, FORMATS, LAYOUT_OPTIONS, LAYOUTS, Detections


def _frame_number(value: Any, fallback: int) -> int:
    """Frame number from an int id or the last integer in a name ('frame_000012.jpg' -> 12)."""
    if isinstance(value, bool):
        return fallback
    if isinstance(value, (int, float)) and float(value).is_integer():
        return int(value)
    found = re.findall(r"\d+", str(value)) if value is not None else []
    return int(found[-1]) if found else fallback


def _track_id(value: Any) -> int | None:
    """AlphaPose writes idx as 3, 3.0 or [3]; anything else means no id."""
    if isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer():
        return int(value)
    return None


def _load_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc}); check the path.") from exc
    if not text.strip():
        raise DataError(f"{path} is empty; pass the keypoint JSON your detector wrote.")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg}); pass the detector's JSON output.") from exc


def _json_files(folder: Path) -> list[tuple[int, Path]]:
    files = sorted(folder.glob("*.json"))
    if not files:
        raise DataError(f"{folder} holds no .json files; pass a folder of per-frame keypoint JSON or a file.")
    if not all(re.findall(r"\d+", f.stem) for f in files):
        return list(enumerate(files))  # no frame numbers in the names: name order
    numbered = sorted(((int(re.findall(r"\d+", f.stem)[-1]), f) for f in files), key=lambda t: t[0])  # frame_10 after frame_9
    for (a, fa), (b, fb) in zip(numbered, numbered[1:]):
        if a == b:
            raise DataError(f"{folder}: {fa.name} and {fb.name} both hold frame {a}; put one video's frames per folder.")
    return numbered


def _flat_points(values: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """COCO/OpenPose flat [x1, y1, s1, ...] -> (K, 2), (K,)."""
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: keypoints are not a list of numbers; pass the detector's JSON as written.") from exc
    if arr.size == 0 or arr.size % 3:
        raise DataError(f"{where}: {arr.size} keypoint values is not x, y, score triples; the file is truncated or not this format.")
    triples = arr.reshape(-1, 3)  # (K, 3)
    return triples[:, :2], triples[:, 2]


def _layout_from_count(count: int, fmt: str, where: str) -> tuple[str, int]:
    """(layout, points to keep) for ``count`` points under ``fmt``; a wrong count is a one-line error."""
    allowed = {"coco": {17: ("coco17", 17), 133: ("coco17", 17)},  # 133 = COCO-WholeBody: first 17 are COCO
               "halpe": {26: ("halpe26", 26), 136: ("halpe26", 26)},  # Halpe-136 starts with Halpe-26
               "openpose": {25: ("body25", 25), 18: ("coco18", 18)},
               "mmpose": {17: ("coco17", 17), 133: ("coco17", 17), 26: ("halpe26", 26), 136: ("halpe26", 26)}}[fmt]
    if count not in allowed:
        hint = {17: "coco", 26: "halpe", 25: "openpose", 133: "coco", 136: "halpe"}.get(count)
        fix = f"use --format {hint}" if hint and hint != fmt else "check the detector's keypoint set"
        raise DataError(f"{where}: {count} keypoints per person, but --format {fmt} expects "
                        f"{' or '.join(str(c) for c in sorted(allowed))}; {fix}.")
    return allowed[count]


def _records_from_coco(data: Any, where: str) -> tuple[list[dict], dict]:
    """COCO results list or dataset dict -> (records, image sizes by frame)."""
    sizes: dict = {}
    if isinstance(data, dict) and "annotations" in data:
        images = data.get("images") or []
        sizes = {img.get("id"): (img.get("width"), img.get("height")) for img in images if isinstance(img, dict)}
        data = data["annotations"]
    elif isinstance(data, dict) and "keypoints" in data:
        data = [data]
    if not isinstance(data, list):
        raise DataError(f"{where}: expected a JSON list of keypoint records; this is not COCO/AlphaPose output.")
    for i, rec in enumerate(data):
        if not isinstance(rec, dict) or "keypoints" not in rec:
            raise DataError(f"{where}: record {i} has no 'keypoints'; this is not COCO/AlphaPose output.")
    return data, sizes


def _read_coco_like(path: Path, fmt: str) -> Detections:
    """COCO-17 / Halpe-26 records: one JSON list, a dataset dict, or a folder with one JSON per frame."""
    chunks: list[tuple[int | None, list[dict], dict, str]] = []
    if path.is_dir():
        for number, file in _json_files(path):
            records, sizes = _records_from_coco(_load_json(file), str(file))
            chunks.append((number, records, sizes, str(file)))
    else:
        records, sizes = _records_from_coco(_load_json(path), str(path))
        chunks.append((None, records, sizes, str(path)))
    rows, frames_seen, sizes_seen, layout, ids = [], [], set(), None, []
    order: dict[Any, int] = {}
    for number, records, sizes, where in chunks:
        if number is not None:
            frames_seen.append(number)
        for i, rec in enumerate(records):
            points, scores = _flat_points(rec["keypoints"], f"{where} record {i}")
            rec_layout, keep = _layout_from_count(len(points), fmt, f"{where} record {i}")
            if layout not in (None, rec_layout):
                raise DataError(f"{where} record {i}: {len(points)} keypoints, earlier records had another count; one file must hold one keypoint set.")
            layout = rec_layout
            image_id = rec.get("image_id", rec.get("frame_id"))
            frame = number if number is not None else _frame_number(image_id, order.setdefault(image_id, len(order)))
            if image_id in sizes and all(sizes[image_id]):
                sizes_seen.add(tuple(float(v) for v in sizes[image_id]))
            track = _track_id(rec.get("track_id", rec.get("idx")))
            ids.append(None if track is None else "track_id" if "track_id" in rec else "idx")
            rows.append((frame, track, points[:keep], scores[:keep]))
    if not rows and not frames_seen:
        raise DataError(f"{path} holds no keypoint records (empty JSON); run the detector on a video with a person.")
    if len(sizes_seen) > 1:
        raise DataError(f"{path}: images of different sizes {sorted(sizes_seen)}; predict lifts one video at a time.")
    size = next(iter(sizes_seen)) if sizes_seen else (None, None)
    return _assemble(path, fmt, layout or ("halpe26" if fmt == "halpe" else "coco17"), rows, frames_seen, ids, size)


def _read_openpose(path: Path) -> Detections:
    """OpenPose --write_json: a folder of one JSON per frame (the frame number is in the file name)."""
    files = _json_files(path) if path.is_dir() else [(_frame_number(path.stem, 0), path)]
    rows, layout = [], None
    for number, file in files:
        data = _load_json(file)
        if not isinstance(data, dict) or not isinstance(data.get("people"), list):
            raise DataError(f"{file} has no 'people' list; this is not OpenPose --write_json output.")
        for i, person in enumerate(data["people"]):
            points, scores = _flat_points(person.get("pose_keypoints_2d", []), f"{file} person {i}")
            rec_layout, _ = _layout_from_count(len(points), "openpose", f"{file} person {i}")
            if layout not in (None, rec_layout):
                raise DataError(f"{file} person {i}: {len(points)} keypoints, other frames had another count; use one --model_pose.")
            layout = rec_layout
            rows.append((number, None, points, scores))
    return _assemble(path, "openpose", layout or "body25", rows, [n for n, _ in files], [None] * len(rows), (None, None))


def _read_mmpose(path: Path) -> Detections:
    """MMPose inferencer JSON [{frame_id, instances}], the demo's {meta_info, instance_info}, or a folder."""
    frames: list[tuple[int, list, str]] = []
    dataset = ""
    sources = _json_files(path) if path.is_dir() else [(None, path)]
    for number, file in sources:
        data = _load_json(file)
        if isinstance(data, dict) and "instance_info" in data:
            dataset = str((data.get("meta_info") or {}).get("dataset_name", ""))
            data = data["instance_info"]
        if not isinstance(data, list):
            raise DataError(f"{file}: expected a list of frames or instances; this is not MMPose prediction JSON.")
        if not data and number is not None:  # an image-mode file of an image without anybody
            frames.append((number, [], str(file)))
        if data and isinstance(data[0], dict) and "instances" not in data[0]:
            data = [{"frame_id": number if number is not None else 0, "instances": data}]  # one image's instances
        for k, entry in enumerate(data):
            if not isinstance(entry, dict) or not isinstance(entry.get("instances"), list):
                raise DataError(f"{file} entry {k} has no 'instances' list; this is not MMPose prediction JSON.")
            frames.append((_frame_number(entry.get("frame_id"), k), entry["instances"], f"{file} frame {entry.get('frame_id', k)}"))
    rows, ids, layout = [], [], None
    for number, instances, where in frames:
        for i, inst in enumerate(instances):
            try:
                points = np.asarray(inst["keypoints"], dtype=np.float64)  # (K, 2)
                scores = np.asarray(inst.get("keypoint_scores", np.ones(len(points))), dtype=np.float64).reshape(-1)  # (K,)
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(f"{where} instance {i}: no numeric 'keypoints' list of [x, y]; not MMPose output.") from exc
            if points.ndim != 2 or points.shape[1] != 2 or len(scores) != len(points):
                raise DataError(f"{where} instance {i}: keypoints of shape {points.shape} with {len(scores)} scores; "
                                "expected K x [x, y] and K scores.")
            rec_layout, keep = ("h36m17", 17) if dataset == "h36m" and len(points) == 17 else \
                _layout_from_count(len(points), "mmpose", f"{where} instance {i}")
            if layout not in (None, rec_layout):
                raise DataError(f"{where} instance {i}: {len(points)} keypoints, other instances had another count.")
            layout = rec_layout
            track = _track_id(inst.get("track_id"))
            ids.append("track_id" if track is not None else None)
            rows.append((number, track, points[:keep], scores[:keep]))
    if not frames:
        raise DataError(f"{path} holds no frames (empty JSON); run the MMPose inferencer on a video with a person.")
    return _assemble(path, "mmpose", layout or "coco17", rows, [n for n, _, _ in frames], ids, (None, None))


def _read_array(path: Path, layout_option: str | None) -> Detections:
    """Plain arrays: (F, J, 2|3) or (P, F, J, 2|3) in .npy/.npz, or a CSV with one row per frame."""
    extra: dict[str, Any] = {}
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                names = list(z.files)
                key = "keypoints" if "keypoints" in names else (names[0] if len(names) == 1 else None)
                if key is None:
                    raise DataError(f"{path} has arrays {names} but no 'keypoints'; save the (frames, joints, 2|3) array as 'keypoints'.")
                arr = z[key]
                extra = {k: z[k] for k in ("scores", "width", "height", "layout", "frames") if k in names}
        else:
            arr = _read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} cannot be read as a plain array ({one_line(exc)[:120]}); "
                        "save a numeric (frames, joints, 2|3) array without pickled objects.") from exc
    if arr.dtype.kind not in "iuf":
        raise DataError(f"{path}: the keypoint array has dtype {arr.dtype}; it must be numeric.")
    if arr.ndim == 3:
        arr = arr[None]  # (1, F, J, C): one person
    if arr.ndim != 4 or arr.shape[-1] not in (2, 3) or arr.shape[1] == 0:
        raise DataError(f"{path}: keypoint array of shape {arr.shape}; expected (frames, joints, 2 or 3) with x, y[, score].")
    people, n_frames, n_joints, _ = arr.shape
    layout_name = layout_option or (str(extra["layout"]) if "layout" in extra else None)
    if layout_name is not None:
        layout = LAYOUT_OPTIONS.get(layout_name, layout_name)
        if layout not in LAYOUTS:
            raise ConfigError(f"layout '{layout_name}' is unknown; use one of {', '.join(LAYOUT_OPTIONS)}.")
        if len(LAYOUTS[layout]) != n_joints:
            raise DataError(f"{path}: {n_joints} joints per frame, but layout {layout_name} has {len(LAYOUTS[layout])}.")
    elif n_joints in ARRAY_LAYOUTS:
        layout = ARRAY_LAYOUTS[n_joints]
    else:
        raise DataError(f"{path}: {n_joints} joints per frame; plain arrays need 17 (COCO-17, or H36M-17 with "
                        "--layout h36m), 18 (COCO-18), 25 (BODY_25) or 26 (Halpe-26).")
    values = arr.astype(np.float64)
    scores = values[..., 2] if values.shape[-1] == 3 else np.ones(values.shape[:3])  # (P, F, J)
    if "scores" in extra:
        scores = np.broadcast_to(np.asarray(extra["scores"], dtype=np.float64), (people, n_frames, n_joints))
    frame_ids = np.asarray(extra.get("frames", np.arange(n_frames)), dtype=np.int64).reshape(-1)
    if len(frame_ids) != n_frames:
        raise DataError(f"{path}: 'frames' has {len(frame_ids)} entries for {n_frames} frames.")
    rows = [(int(frame_ids[f]), p, values[p, f, :, :2], scores[p, f]) for p in range(people) for f in range(n_frames)]
    size = (float(extra["width"]), float(extra["height"])) if "width" in extra and "height" in extra else (None, None)
    dets = _assemble(path, "npz", layout, rows, frame_ids.tolist(), [None] * len(rows), size)
    if people == 1:
        dets.person_key = "single person"
    return dets


def _read_csv(path: Path) -> np.ndarray:
    """One row per frame: x0, y0[, s0], x1, ...; an optional header row is skipped."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    if rows and not _is_number(rows[0][0]):
        rows = rows[1:]
    if not rows:
        raise ValueError("no data rows")
    table = np.array([[float(c) for c in r] for r in rows])  # (F, J*C); ragged rows raise ValueError
    width = table.shape[1]
    for joints, channels in ((j, c) for j in ARRAY_LAYOUTS for c in (3, 2)):
        if joints * channels == width:
            return table.reshape(len(table), joints, channels)  # (F, J, C)
    raise ValueError(f"{width} columns per row are not 17, 18, 25 or 26 joints x (x, y[, score])")


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _assemble(path: Path, fmt: str, layout: str, rows: list, video_frames: list, ids: list,
              size: tuple) -> Detections:
    """Rows (frame, track or None, (K, 2), (K,)) -> Detections; no track ids -> index within the frame."""
    kinds = {k for k in ids if k}
    if kinds and None in ids:
        raise DataError(f"{path}: some people carry a track id and some do not; give every person one or none.")
    frames = np.array([r[0] for r in rows], dtype=np.int64)
    if kinds:
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
    key = "track_id" if "track_id" in kinds else "idx" if kinds else "index within the frame"
    return Detections(path, fmt, layout, frames, person, points, scores, all_frames, key, size[0], size[1])


def detect_format(path: Path) -> tuple[str, str]:
    """(format, why) from the file name and content; an undetectable input is a one-line error."""
    if path.is_file() and path.suffix.lower() in (".npz", ".npy", ".csv"):
        return "npz", f"{path.suffix.lower()} plain array"
    if path.is_dir():
        files = _json_files(path)
        sample = next((d for d in (_load_json(f) for _, f in files[:50]) if d not in ([], {})), None)
        where = f"folder of {len(files)} JSON files"
    elif path.is_file() and path.suffix.lower() == ".json":
        sample, where = _load_json(path), "JSON file"
    elif not path.exists():
        raise DataError(f"{path} does not exist; pass a keypoint file or a folder of per-frame JSON.")
    else:
        raise DataError(f"Cannot detect the keypoint format of {path} (suffix '{path.suffix}'); pass --format "
                        "coco|halpe|openpose|mmpose|npz.")
    if sample in (None, [], {}):
        raise DataError(f"{path} is an empty JSON (no people, no frames); run the detector on a video with a person.")
    if isinstance(sample, dict) and "people" in sample:
        return "openpose", f"{where} with 'people' / pose_keypoints_2d (OpenPose)"
    if isinstance(sample, dict) and "instance_info" in sample:
        return "mmpose", f"{where} with meta_info / instance_info (MMPose demo)"
    first = sample[0] if isinstance(sample, list) and sample else (
        sample["annotations"][0] if isinstance(sample, dict) and sample.get("annotations") else sample)
    if isinstance(first, dict) and "instances" in first:
        return "mmpose", f"{where} with frame_id / instances (MMPose inferencer)"
    if isinstance(first, dict) and "keypoint_scores" in first:
        return "mmpose", f"{where} of MMPose instances"
    if isinstance(first, dict) and isinstance(first.get("keypoints"), list):
        count = len(first["keypoints"]) // 3
        if count in (17, 133):
            return "coco", f"{where} of COCO keypoint records ({count} points each)"
        if count in (26, 136):
            return "halpe", f"{where} of AlphaPose Halpe records ({count} points each)"
        raise DataError(f"{path}: keypoint records with {count} points are neither COCO-17 (17) nor Halpe-26 (26); "
                        "pass --format explicitly.")
    raise DataError(f"Cannot detect the keypoint format of {path}: not COCO/AlphaPose, OpenPose or MMPose JSON; "
                    "pass --format coco|halpe|openpose|mmpose|npz.")


def read_keypoints(path: str | Path, fmt: str = "auto", layout: str | None = None) -> tuple[Detections, str]:
    """Read any supported input -> (Detections, how the format was chosen)."""
    path = Path(path).expanduser()
    if fmt not in FORMATS:
        raise ConfigError(f"--format '{fmt}' is unknown; use one of {', '.join(FORMATS)}.")
    if layout is not None and layout not in LAYOUT_OPTIONS:
        raise ConfigError(f"--layout '{layout}' is unknown; use one of {', '.join(LAYOUT_OPTIONS)}.")
    if not path.exists():
        raise DataError(f"{path} does not exist; pass a keypoint file or a folder of per-frame JSON.")
    how = "given by --format"
    if fmt == "auto":
        fmt, why = detect_format(path)
        how = f"auto-detected: {why}"
    if layout is not None and fmt != "npz":
        raise ConfigError(f"--layout applies to plain arrays (--format npz) only; {fmt} files define their own layout.")
    if fmt == "npz":
        if path.is_dir() or path.suffix.lower() not in (".npz", ".npy", ".csv"):
            raise DataError(f"{path}: --format npz needs a .npz, .npy or .csv file.")
        return _read_array(path, layout), how
    if path.is_file() and path.suffix.lower() != ".json":
        raise DataError(f"{path}: --format {fmt} reads JSON (a .json file or a folder of them).")
    reader = {"coco": lambda p: _read_coco_like(p, "coco"), "halpe": lambda p: _read_coco_like(p, "halpe"),
              "openpose": _read_openpose, "mmpose": _read_mmpose}[fmt]
    return reader(path), how
