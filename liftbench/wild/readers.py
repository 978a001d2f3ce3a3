"""Readers of detector keypoint files -> ``keypoints.Detections`` (one row per frame and person), and
the one place that detects a format and dispatches (``detect_format``, ``read_keypoints``, ``READERS``).

Why separate from ``keypoints``: parsing many container quirks (COCO results lists and dataset
dicts, AlphaPose ``idx``, OpenPose per-frame folders, MMPose's two JSON shapes, plain arrays) is one
job; mapping and filling what was read is another. The newer detectors (YOLO, MediaPipe, easy_ViTPose)
and the BODY_25/BODY_25B check live in ``detectors``; what both share in ``sources``. Facts: reference
``official_data_and_2d_formats.md`` §3.2 and §5 (frame ids sorted numerically, (0, 0) = absent).
Every malformed input is a ``DataError`` naming the file (and record) and the fix; a file that is not
the ``--format`` given says which format it looks like. Auto-detection of a folder reads its files in
order until one is not empty (a video may start without anybody).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from liftbench.data.safe.npz import load_members, load_npy
from liftbench.errors import ConfigError, DataError, one_line
from liftbench.values import (
    KEYPOINT_FILE_MAX_BYTES,
    finite_array,
    id_array,
    image_size,
    printable,
    reading,
    user_file,
)
from liftbench.wild.detectors import (
    check_layout_option,
    openpose25_layout,
    read_mediapipe,
    read_vitpose,
    read_yolo,
    sniff,
    sniff_txt,
)
from liftbench.wild.keypoints import ARRAY_LAYOUTS, FORMATS, LAYOUT_OPTIONS, LAYOUTS, Detections
from liftbench.wild.sources import (
    assemble,
    flat_points,
    frame_number,
    load_json,
    merged_boxes,
    numbered_files,
    read_text,
    track_id,
)


def _layout_from_count(count: int, fmt: str, where: str) -> tuple[str, int]:
    """(layout, points to keep) for ``count`` points under ``fmt``; a wrong count is a one-line error."""
    allowed = {"coco": {17: ("coco17", 17), 133: ("coco17", 17)},  # 133 = COCO-WholeBody: first 17 are COCO
               "detectron2": {17: ("coco17", 17)},
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
        if not isinstance(images, list):
            raise DataError(f"{where}: 'images' must be a list of {{id, width, height}}; this is not a COCO dataset.")
        for k, img in enumerate(images):  # sizes are checked like --width/--height (finite, >= 1 pixel)
            if isinstance(img, dict) and (img.get("width") is not None or img.get("height") is not None):
                image_id = img.get("id")
                if isinstance(image_id, (list, dict)):
                    raise DataError(f"{where} images[{k}]: id must be a number or a name, got {printable(image_id)}.")
                sizes[image_id] = image_size(img.get("width"), img.get("height"), f"{where} images[{k}]")
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
        for number, file in numbered_files(path):
            records, sizes = _records_from_coco(load_json(file), str(file))
            chunks.append((number, records, sizes, str(file)))
    else:
        records, sizes = _records_from_coco(load_json(path), str(path))
        chunks.append((None, records, sizes, str(path)))
    rows, frames_seen, sizes_seen, layout, ids, merged = [], [], set(), None, [], 0
    order: dict[Any, int] = {}
    for number, records, sizes, where in chunks:
        if number is not None:
            frames_seen.append(number)
        for i, rec in enumerate(records):
            points, scores = flat_points(rec["keypoints"], f"{where} record {i}")
            rec_layout, keep = _layout_from_count(len(points), fmt, f"{where} record {i}")
            if layout not in (None, rec_layout):
                raise DataError(f"{where} record {i}: {len(points)} keypoints, earlier records had another count; "
                                "one file must hold one keypoint set.")
            layout = rec_layout
            image_id = rec.get("image_id", rec.get("frame_id"))
            if isinstance(image_id, (list, dict)):
                raise DataError(f"{where} record {i}: image_id must be a number or an image name, got "
                                f"{printable(image_id, 40)}; pass the detector's JSON as written.")
            frame = number if number is not None else frame_number(image_id, order.setdefault(image_id, len(order)),
                                                                   f"{where} record {i} image_id")
            if not isinstance(image_id, (list, dict)) and image_id in sizes:
                sizes_seen.add(sizes[image_id])
            track = track_id(rec.get("track_id", rec.get("idx")))  # AlphaPose: only a scalar idx is a track id
            merged += merged_boxes(rec.get("idx"))
            ids.append(None if track is None else "track_id" if "track_id" in rec else "idx")
            rows.append((frame, track, points[:keep], scores[:keep]))
    if not rows and not frames_seen:
        raise DataError(f"{path} holds no keypoint records (empty JSON); run the detector on a video with a person.")
    if len(sizes_seen) > 1:
        raise DataError(f"{path}: images of different sizes {sorted(sizes_seen)}; predict lifts one video at a time.")
    size = next(iter(sizes_seen)) if sizes_seen else (None, None)
    dets = assemble(path, fmt, layout or ("halpe26" if fmt == "halpe" else "coco17"), rows, frames_seen, ids, size)
    dets.merged_boxes = merged
    return dets


def _read_openpose(path: Path, layout_option: str | None = None) -> Detections:
    """OpenPose --write_json: a folder of one JSON per frame (the frame number is in the file name). OpenPose
    before 1.2 named the array ``pose_keypoints`` (same x, y, score triples). 25 points are BODY_25 or
    BODY_25B (``detectors.openpose25_layout``)."""
    files = numbered_files(path) if path.is_dir() else [(frame_number(path.stem, 0, str(path)), path)]
    rows, layout, old = [], None, False
    for number, file in files:
        data = load_json(file)
        if not isinstance(data, dict) or not isinstance(data.get("people"), list):
            raise DataError(f"{file} has no 'people' list; this is not OpenPose --write_json output.")
        for i, person in enumerate(data["people"]):
            person = person if isinstance(person, dict) else {}
            values = person.get("pose_keypoints_2d", person.get("pose_keypoints", []))
            old = old or ("pose_keypoints_2d" not in person and "pose_keypoints" in person)
            points, scores = flat_points(values, f"{file} person {i}")
            rec_layout, _ = _layout_from_count(len(points), "openpose", f"{file} person {i}")
            if layout not in (None, rec_layout):
                raise DataError(f"{file} person {i}: {len(points)} keypoints, other frames had another count; "
                                "use one --model_pose.")
            layout = rec_layout
            rows.append((number, None, points, scores))
    if layout_option == "coco18" and layout not in (None, "coco18") or layout_option in ("body25", "body25b") and \
            layout == "coco18":
        raise DataError(f"{path}: {len(LAYOUTS[layout])} points per person do not fit --layout {layout_option}.")
    dets = assemble(path, "openpose", layout or "body25", rows, [n for n, _ in files], [None] * len(rows), (None, None))
    if old:
        dets.notes.append("old OpenPose JSON (pose_keypoints, before OpenPose 1.2): read as pose_keypoints_2d")
    if dets.layout == "body25":
        dets.layout, how = openpose25_layout(dets.points, dets.scores, layout_option, str(path))
        dets.notes.append(how)
    return dets


def _read_mmpose(path: Path) -> Detections:
    """MMPose inferencer JSON [{frame_id, instances}], the demo's {meta_info, instance_info}, or a folder."""
    frames: list[tuple[int, list, str]] = []
    dataset = ""
    sources = numbered_files(path) if path.is_dir() else [(None, path)]
    for number, file in sources:
        data = load_json(file)
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
            frames.append((frame_number(entry.get("frame_id"), k, f"{file} entry {k} frame_id"), entry["instances"],
                           f"{file} frame {entry.get('frame_id', k)}"))
    rows, ids, layout = [], [], None
    for number, instances, where in frames:
        for i, inst in enumerate(instances):
            try:
                points = np.asarray(inst["keypoints"], dtype=np.float64)  # (K, 2)
                scores = np.asarray(inst.get("keypoint_scores", np.ones(len(points))),
                                    dtype=np.float64).reshape(-1)  # (K,)
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(f"{where} instance {i}: no numeric 'keypoints' list of [x, y]; "
                                "not MMPose output.") from exc
            if points.ndim == 2 and points.shape[1] == 3:
                raise DataError(f"{where} instance {i}: keypoints of x, y, z: this is an MMPose 3D (pose lifter) "
                                "result; pass the 2D detector's predictions (the inferencer's or demo's 2D output).")
            if points.ndim != 2 or points.shape[1] != 2 or len(scores) != len(points):
                raise DataError(f"{where} instance {i}: keypoints of shape {points.shape} with {len(scores)} scores; "
                                "expected K x [x, y] and K scores.")
            rec_layout, keep = ("h36m17", 17) if dataset == "h36m" and len(points) == 17 else \
                _layout_from_count(len(points), "mmpose", f"{where} instance {i}")
            if layout not in (None, rec_layout):
                raise DataError(f"{where} instance {i}: {len(points)} keypoints, other instances had another count.")
            layout = rec_layout
            track = track_id(inst.get("track_id"))
            ids.append("track_id" if track is not None else None)
            rows.append((number, track, points[:keep], scores[:keep]))
    if not frames:
        raise DataError(f"{path} holds no frames (empty JSON); run the MMPose inferencer on a video with a person.")
    return assemble(path, "mmpose", layout or "coco17", rows, [n for n, _, _ in frames], ids, (None, None))


def _read_array(path: Path, layout_option: str | None) -> Detections:
    """Plain arrays: (F, J, 2|3) or (P, F, J, 2|3) in .npy/.npz, or a CSV with one row per frame."""
    extra: dict[str, Any] = {}
    suffix = path.suffix.lower()
    if suffix == ".npy":  # the safe reader: bounded memory, never the stock unpickler
        arr = load_npy(path)
    elif suffix == ".npz":
        z = load_members(path)
        names = list(z)
        key = "keypoints" if "keypoints" in names else (names[0] if len(names) == 1 else None)
        if key is None:
            raise DataError(f"{path} has arrays {printable(names)} but no 'keypoints'; save the (frames, joints, "
                            "2|3) array as 'keypoints'.")
        arr = z[key]
        extra = {k: z[k] for k in ("scores", "width", "height", "layout", "frames") if k in names}
    else:
        try:
            arr = _read_csv(path)
        except (ValueError, csv.Error) as exc:
            raise DataError(f"{path} cannot be read as a plain array ({printable(one_line(exc), 120)}); save one "
                            "row of numbers per frame (x0, y0[, s0], x1, ...).") from exc
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "iuf":
        kind = arr.dtype if isinstance(arr, np.ndarray) else type(arr).__name__
        raise DataError(f"{path}: the keypoint array has dtype {kind}; it must be numeric.")
    if arr.ndim == 3:
        arr = arr[None]  # (1, F, J, C): one person
    if arr.ndim != 4 or arr.shape[-1] not in (2, 3) or arr.shape[1] == 0:
        raise DataError(f"{path}: keypoint array of shape {arr.shape}; expected (frames, joints, 2 or 3) with "
                        "x, y[, score].")
    people, n_frames, n_joints, _ = arr.shape
    if "layout" in extra and not (extra["layout"].dtype.kind in "US" and extra["layout"].ndim == 0):
        raise DataError(f"{path}: member 'layout' must be one name (a 0-d text array such as np.array('coco17')).")
    layout_name = layout_option or (str(extra["layout"]) if "layout" in extra else None)
    if layout_name is not None:
        layout = LAYOUT_OPTIONS.get(layout_name, layout_name)
        if layout not in LAYOUTS:
            raise ConfigError(f"layout '{layout_name}' is unknown; use one of {', '.join(LAYOUT_OPTIONS)}.")
        if len(LAYOUTS[layout]) != n_joints:
            raise DataError(f"{path}: {n_joints} joints per frame, but layout {layout_name} has "
                            f"{len(LAYOUTS[layout])}.")
    elif n_joints in ARRAY_LAYOUTS:
        layout = ARRAY_LAYOUTS[n_joints]
    else:
        raise DataError(f"{path}: {n_joints} joints per frame; plain arrays need 17 (COCO-17, or H36M-17 with "
                        "--layout h36m), 18 (COCO-18), 25 (BODY_25) or 26 (Halpe-26).")
    values = arr.astype(np.float64)
    scores = values[..., 2] if values.shape[-1] == 3 else np.ones(values.shape[:3])  # (P, F, J)
    if "scores" in extra:
        given = finite_array(extra["scores"], f"{path} member 'scores'")
        try:
            scores = np.broadcast_to(given, (people, n_frames, n_joints))
        except ValueError:
            raise DataError(f"{path}: member 'scores' has shape {given.shape}, which does not fit (people, frames, "
                            f"joints) = {(people, n_frames, n_joints)}; save one score per point.") from None
    frame_ids = id_array(extra["frames"], f"{path} member 'frames'", shape=None).reshape(-1) if "frames" in extra \
        else np.arange(n_frames)
    if len(frame_ids) != n_frames:
        raise DataError(f"{path}: 'frames' has {len(frame_ids)} entries for {n_frames} frames.")
    if len(np.unique(frame_ids)) != n_frames:
        raise DataError(f"{path}: member 'frames' repeats a frame number; give every frame its own number.")
    rows = [(int(frame_ids[f]), p, values[p, f, :, :2], scores[p, f]) for p in range(people) for f in range(n_frames)]
    size = (image_size(extra.get("width"), extra.get("height"), f"{path} member")
            if "width" in extra or "height" in extra else (None, None))
    dets = assemble(path, "npz", layout, rows, frame_ids.tolist(), ["array person axis"] * len(rows), size)
    if people == 1:
        dets.person_key = "single person"
    return dets


def _read_csv(path: Path) -> np.ndarray:
    """One row per frame: x0, y0[, s0], x1, ...; a header row is skipped only when no cell of it is a number
    (a byte-order mark is dropped: ``sources.read_text``)."""
    rows = [r for r in csv.reader(io.StringIO(read_text(path), newline="")) if r and any(c.strip() for c in r)]
    if rows and not any(_is_number(c) for c in rows[0]):
        rows = rows[1:]  # a header
    if not rows:
        raise ValueError("no data rows")
    for i, row in enumerate(rows):
        if not all(_is_number(c) for c in row):
            cell = next(c for c in row if not _is_number(c))
            raise ValueError(f"data row {i + 1} holds {printable(cell, 30)!s}, not a number")
        if len(row) != len(rows[0]):
            raise ValueError(f"data row {i + 1} has {len(row)} cells, the first has {len(rows[0])}")
    table = np.array([[float(c) for c in r] for r in rows])  # (F, J*C)
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


def _first_sample(path: Path) -> tuple[Any, str]:
    """The first JSON of a file or folder that is not empty ([] or {}), and what was sampled; a folder is
    read file by file until one holds something (a video that starts without anybody)."""
    if path.is_file():
        return load_json(path), "JSON file"
    files = numbered_files(path)
    for _, file in files:
        data = load_json(file)
        if data not in ([], {}):
            return data, f"folder of {len(files)} JSON files"
    return None, f"folder of {len(files)} JSON files"


def _coco_kind(records: list, path: Path, where: str) -> tuple[str, str]:
    """COCO records: coco, halpe or detectron2 (its COCOEvaluator file, or keypoint scores above 1)."""
    first = records[0]
    count = len(first["keypoints"]) // 3
    if count in (26, 136):
        return "halpe", f"{where} of AlphaPose Halpe records ({count} points each)"
    if count not in (17, 133):
        raise DataError(f"{path}: keypoint records with {count} points are neither COCO-17 (17) nor Halpe-26 (26); "
                        "pass --format explicitly.")
    scores = [v for rec in records[:200] if isinstance(rec, dict) and isinstance(rec.get("keypoints"), list)
              for v in rec["keypoints"][2::3] if isinstance(v, (int, float))]
    if count == 17 and (path.name == "coco_instances_results.json" or ("bbox" in first and max(scores, default=0) > 1)):
        return "detectron2", f"{where} of detectron2 COCO results (keypoint scores are not probabilities)"
    return "coco", f"{where} of COCO keypoint records ({count} points each)"


def detect_format(path: Path) -> tuple[str, str]:
    """(format, why) from the file name and content; an undetectable input is a one-line error."""
    suffix = path.suffix.lower()
    if path.is_file() and suffix in (".npz", ".npy", ".csv"):
        return "npz", f"{suffix} plain array"
    if not path.exists():
        raise DataError(f"{path} does not exist; pass a keypoint file or a folder of per-frame JSON.")
    if (path.is_file() and suffix == ".txt") or (path.is_dir() and not any(path.glob("*.json"))
                                                 and any(path.glob("*.txt"))):
        found = sniff_txt(path)
        if found:
            return found[0], f"{found[1]}"
    if not (path.is_dir() and any(path.glob("*.json"))) and not (path.is_file() and suffix == ".json"):
        hint = f"; its labels/ folder holds {path / 'labels'}/*.txt" if (path / "labels").is_dir() else ""
        raise DataError(f"Cannot detect the keypoint format of {path} (suffix '{path.suffix}'){hint}; pass --format "
                        f"{'|'.join(FORMATS[1:])}.")
    sample, where = _first_sample(path)
    if sample in (None, [], {}):
        raise DataError(f"{path} is an empty JSON (no people, no frames); run the detector on a video with a person.")
    found = sniff(sample)
    if found:
        return found[0], f"{where}: {found[1]}"
    if isinstance(sample, dict) and "people" in sample:
        people = [p for p in sample["people"] if isinstance(p, dict)] if isinstance(sample["people"], list) else []
        if people and "pose_keypoints_2d" not in people[0] and "pose_keypoints" in people[0]:
            return "openpose", f"{where} with 'people' / pose_keypoints (OpenPose before 1.2)"
        return "openpose", f"{where} with 'people' / pose_keypoints_2d (OpenPose)"
    if isinstance(sample, dict) and "instance_info" in sample:
        return "mmpose", f"{where} with meta_info / instance_info (MMPose demo)"
    records = sample if isinstance(sample, list) else (
        sample["annotations"] if isinstance(sample, dict) and sample.get("annotations") else [sample])
    first = records[0]
    if isinstance(first, dict) and "instances" in first:
        return "mmpose", f"{where} with frame_id / instances (MMPose inferencer)"
    if isinstance(first, dict) and "keypoint_scores" in first:
        return "mmpose", f"{where} of MMPose instances"
    if isinstance(first, dict) and isinstance(first.get("keypoints"), list):
        return _coco_kind(records, path, where)
    raise DataError(f"Cannot detect the keypoint format of {path}: not a detector JSON liftbench knows (COCO, "
                    "AlphaPose, detectron2, OpenPose, MMPose, YOLO, MediaPipe, easy_ViTPose); pass --format "
                    f"{'|'.join(FORMATS[1:])}.")


READERS = {"coco": lambda p, _: _read_coco_like(p, "coco"), "halpe": lambda p, _: _read_coco_like(p, "halpe"),
           "detectron2": lambda p, _: _read_coco_like(p, "detectron2"), "openpose": _read_openpose,
           "mmpose": lambda p, _: _read_mmpose(p), "yolo": lambda p, _: read_yolo(p),
           "mediapipe": lambda p, _: read_mediapipe(p), "vitpose": lambda p, _: read_vitpose(p),
           "npz": _read_array}


def _check_container(path: Path, fmt: str) -> None:
    if fmt == "npz" and (path.is_dir() or path.suffix.lower() not in (".npz", ".npy", ".csv")):
        raise DataError(f"{path}: --format npz needs a .npz, .npy or .csv file.")
    if fmt == "yolo" and path.is_file() and path.suffix.lower() not in (".txt", ".json"):
        raise DataError(f"{path}: --format yolo reads save_txt labels (.txt, or a folder of them) or "
                        "Results.to_json() JSON.")
    if fmt not in ("npz", "yolo") and path.is_file() and path.suffix.lower() != ".json":
        raise DataError(f"{path}: --format {fmt} reads JSON (a .json file or a folder of them).")


def read_keypoints(path: str | Path, fmt: str = "auto", layout: str | None = None) -> tuple[Detections, str]:
    """Read any supported input -> (Detections, how the format was chosen). A file that is not the
    ``--format`` given is an error naming the format it looks like."""
    path = Path(path).expanduser()
    if fmt not in FORMATS:
        raise ConfigError(f"--format '{fmt}' is unknown; use one of {', '.join(FORMATS)}.")
    if layout is not None and layout not in LAYOUT_OPTIONS:
        raise ConfigError(f"--layout '{layout}' is unknown; use one of {', '.join(LAYOUT_OPTIONS)}.")
    if not path.exists():
        raise DataError(f"{path} does not exist; pass a keypoint file or a folder of per-frame JSON.")
    if not path.is_dir():  # a FIFO or a device is named as such, before anything opens it
        user_file(path, "a keypoint file or a folder of per-frame JSON", KEYPOINT_FILE_MAX_BYTES)
    how = "given by --format"
    if fmt == "auto":
        fmt, why = detect_format(path)
        how = f"auto-detected: {why}"
    check_layout_option(fmt, layout)
    try:
        _check_container(path, fmt)
        with reading(path, f"{fmt} keypoints"):  # anything a malformed file raises: one line naming it
            return READERS[fmt](path, layout), how
    except DataError as exc:
        if not how.startswith("given"):
            raise
        try:
            guess, looks = detect_format(path)
        except (DataError, ConfigError):
            raise exc from None
        if guess == fmt:
            raise
        raise DataError(f"{one_line(exc).rstrip('.')}. It looks like {looks}: use --format {guess}.") from exc
