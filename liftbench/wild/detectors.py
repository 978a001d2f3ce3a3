"""Readers for the detectors people use today, and the OpenPose BODY_25 / BODY_25B layout check.

Each reader gives the same ``keypoints.Detections`` as ``readers`` (one row per frame and person), so
the mapping to Human3.6M-17, the tracking and the filling are shared. Sources of each schema (read, not
copied):

* **Ultralytics YOLO-pose** (``--format yolo``; ultralytics/ultralytics ``ultralytics/engine/results.py``
  ``Results.save_txt`` and ``Results.summary``/``tojson``, commit 001c4c8; docs.ultralytics.com/datasets/pose):
  ``save_txt`` writes one ``.txt`` per image, for a video ``labels/<stem>_<frame>.txt`` (no file for a frame
  without anybody), one line per person: ``cls cx cy w h`` (box, normalised) then ``x y conf`` per keypoint
  (normalised to the image; ``x y`` only for 2-value keypoint models), then the box confidence with
  ``save_conf`` and the track id when tracking. ``Results.to_json()`` / ``tojson()`` gives a list of
  ``{name, class, confidence, box{x1,y1,x2,y2}, [track_id], keypoints{x[], y[], visible[]}}`` in pixels
  (fractions with ``normalize=True``). Ultralytics sets keypoints with confidence < 0.5 to (0, 0) itself
  (``Keypoints.__init__``), so its default threshold here is 0.5. The 17 points are COCO-17.
* **MediaPipe Pose / BlazePose** (``--format mediapipe``; 33 landmarks, ``PoseLandmark`` order of
  google/mediapipe, x and y normalised to the image width and height, ``visibility`` and ``presence`` in
  [0, 1]). MediaPipe writes no file; what is read is the natural JSON dump of its two Python APIs, one
  entry per frame: ``{"frame": i, "pose_landmarks": [[{x, y, z, visibility, presence} x 33], ...]}`` (Tasks
  API ``PoseLandmarkerResult.pose_landmarks``: one list per person) or ``{"frame": i, "pose_landmarks":
  {"landmark": [...]}}`` (``MessageToDict`` of the legacy ``solutions.pose`` result, one person), as a JSON
  list of frames or a folder of one JSON per frame; a landmark may also be a list ``[x, y, z, visibility]``.
  The score is min(visibility, presence) of what is present, so the default 0.5 keeps exactly the points
  MediaPipe's own ``drawing_utils`` draws (both thresholds 0.5). ``pose_world_landmarks`` (metres,
  hip-centred) are refused. Left/right are the person's own, as in COCO.
* **easy_ViTPose** (``--format vitpose``; JunkyByte/easy_ViTPose ``inference.py --save-json`` and
  ``VitInference.inference``): ``{"keypoints": [{"<id>": [[y, x, score] x K]} per frame], "skeleton": {index:
  name}}`` -- **(y, x)** order, swapped here. Ids are SORT track ids on videos (index within the frame with
  ``--single-pose``). Skeletons ``coco`` (17), ``coco_25`` (COCO-17 + neck, hip and feet, in its own order)
  and ``wholebody`` (first 17 = COCO-17) are read.
* **rtmlib** and **Hugging Face ViTPose** return arrays in memory ((N, K, 2) x, y and (N, K) scores per
  image; HF: ``post_process_pose_estimation`` -> per person ``keypoints`` (K, 2) x, y and ``scores``) and
  write no file: write one COCO keypoint-results record per person and frame (``DETECTOR_RECIPES``) and read
  it with ``--format coco``.
* **OpenPose BODY_25B** (``--layout body25b``; CMU-Perceptual-Computing-Lab/openpose
  ``src/openpose/pose/poseParameters.cpp`` ``POSE_BODY_25B_BODY_PARTS``): COCO-17 first, then UpperNeck,
  HeadTop and the feet -- 25 points like BODY_25 in another order. ``openpose25_layout`` tells them apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from liftbench.errors import ConfigError, DataError
from liftbench.wild.keypoints import LAYOUTS, Detections
from liftbench.wild.sources import assemble, frame_number, load_json, numbered_files, read_text, track_id

YOLO_POINTS = 17
MEDIAPIPE_POINTS = 33
VITPOSE_SKELETONS = {"coco": ("coco17", 17), "coco_25": ("vitpose25", 25), "wholebody": ("coco17", 133)}
#: how to turn the in-memory output of detectors without a file format into a file liftbench reads
DETECTOR_RECIPES = {
    "rtmlib": "keypoints, scores = body(frame)  # (N, K, 2) x, y and (N, K); for each person n: "
              "{'image_id': frame_index, 'category_id': 1, 'keypoints': [x0, y0, s0, x1, ...], 'score': "
              "float(scores[n].mean())}; json.dump(records) -> --format coco",
    "transformers ViTPose": "pose_results = processor.post_process_pose_estimation(outputs, boxes=[boxes]); for each "
                            "person r of frame i: {'image_id': i, 'category_id': 1, 'keypoints': flat [x, y, score] "
                            "of r['keypoints'] (K, 2 = x, y) and r['scores']} -> --format coco",
}


# ------------------------------------------------------------------------------------ YOLO
def _yolo_line(values: list[float], where: str) -> tuple[np.ndarray, np.ndarray, float | None]:
    """One save_txt line -> (17, 2) normalised points, (17,) scores, trailing value (conf or id) or None."""
    n = len(values)
    for dim in (3, 2):
        body = 5 + dim * YOLO_POINTS
        if body <= n <= body + 2:
            kp = np.asarray(values[5:body], dtype=np.float64).reshape(YOLO_POINTS, dim)  # (17, dim)
            scores = kp[:, 2] if dim == 3 else np.ones(YOLO_POINTS)
            extra = values[body:]
            return kp[:, :2], scores, extra[-1] if extra else None  # (conf, id): the id is last
    raise DataError(f"{where}: {n} numbers per line; a YOLO-pose label has 5 box values and 17 keypoints of "
                    "x y [conf] (56 or 39 numbers, plus the box conf and track id when saved); check the model.")


def _yolo_txt(path: Path) -> list[tuple[int, list[tuple[Any, np.ndarray, np.ndarray, float | None]], str]]:
    files = numbered_files(path, ".txt") if path.is_dir() else [(frame_number(path.stem, 0, str(path)), path)]
    frames = []
    for number, file in files:
        people = []
        for k, line in enumerate(read_text(file).splitlines()):
            if not line.strip():
                continue
            try:
                values = [float(v) for v in line.split()]
            except ValueError as exc:
                raise DataError(f"{file} line {k + 1}: not numbers; this is not a YOLO label file.") from exc
            points, scores, extra = _yolo_line(values, f"{file} line {k + 1}")
            people.append((None, points, scores, extra))
        frames.append((number, people, str(file)))
    return frames


def _yolo_record(rec: Any, where: str) -> tuple[Any, np.ndarray, np.ndarray, list[float]]:
    try:
        kp = rec["keypoints"]
        xs, ys = np.asarray(kp["x"], dtype=np.float64), np.asarray(kp["y"], dtype=np.float64)  # (K,), (K,)
        vis = np.asarray(kp.get("visible", np.ones(len(xs))), dtype=np.float64)  # (K,)
        box = [float(rec["box"][k]) for k in ("x1", "y1", "x2", "y2")] if isinstance(rec.get("box"), dict) else []
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{where}: no keypoints {{x: [...], y: [...], visible: [...]}}; this is not Ultralytics "
                        "Results.to_json() output.") from exc
    if not (len(xs) == len(ys) == len(vis) == YOLO_POINTS):
        raise DataError(f"{where}: {len(xs)} keypoints; YOLO-pose (COCO) models give 17.")
    return track_id(rec.get("track_id")), np.stack([xs, ys], axis=1), vis, box


def _yolo_json(path: Path) -> tuple[list, bool]:
    """to_json output: a file = one frame's list; a list of such lists = frames; or a folder of files."""
    files = numbered_files(path) if path.is_dir() else [(None, path)]
    frames, coords = [], []
    for number, file in files:
        data = load_json(file)
        chunks = data if data and all(isinstance(d, list) for d in data) else [data]
        for k, chunk in enumerate(chunks):
            if not isinstance(chunk, list):
                raise DataError(f"{file}: expected Results.to_json() output (a list of detections per frame).")
            frame = number if number is not None else (k if len(chunks) > 1 else frame_number(file.stem, 0, str(file)))
            people = []
            for i, rec in enumerate(chunk):
                tid, points, vis, box = _yolo_record(rec, f"{file} frame {frame} detection {i}")
                people.append((tid, points, vis, None))
                coords.extend([points.reshape(-1), box])
            frames.append((frame, people, f"{file} frame {frame}"))
    values = np.concatenate([np.asarray(c, dtype=np.float64) for c in coords]) if coords else np.zeros(0)
    return frames, bool(len(values)) and bool(((values >= 0) & (values <= 1)).all())


def read_yolo(path: Path) -> Detections:
    """Ultralytics YOLO-pose ``save_txt`` labels (a .txt or a folder) or ``Results.to_json()`` JSON."""
    is_txt = path.suffix.lower() == ".txt" or (path.is_dir() and not any(path.glob("*.json")))
    frames, normalised = (_yolo_txt(path), True) if is_txt else _yolo_json(path)
    extras = [e for _, people, _ in frames for *_, e in people if e is not None]
    ids_at_end = bool(extras) and all(float(e).is_integer() and e >= 1 for e in extras)  # box conf is in (0, 1)
    rows, ids = [], []
    for number, people, _ in frames:
        for tid, points, scores, extra in people:
            tid = int(extra) if ids_at_end and extra is not None else tid
            rows.append((number, tid, points, scores))
            ids.append(None if tid is None else "track_id")
    if not rows and not frames:
        raise DataError(f"{path} holds no YOLO detections; run the model on a video with a person.")
    dets = assemble(path, "yolo", "coco17", rows, [n for n, _, _ in frames], ids, (None, None))
    dets.normalised = normalised
    return dets


# ------------------------------------------------------------------------------------ MediaPipe
def _landmarks(value: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """33 landmarks (dicts {x, y, z, visibility, presence} or lists [x, y, z, visibility]) -> (33, 2), (33,)."""
    if isinstance(value, dict) and "landmark" in value:
        value = value["landmark"]
    if not isinstance(value, list) or len(value) != MEDIAPIPE_POINTS:
        count = len(value) if isinstance(value, list) else 0
        raise DataError(f"{where}: {count} landmarks; MediaPipe Pose gives 33 per person.")
    xy, score = np.zeros((MEDIAPIPE_POINTS, 2)), np.ones(MEDIAPIPE_POINTS)
    try:
        for k, lm in enumerate(value):
            if isinstance(lm, dict):
                xy[k] = (float(lm["x"]), float(lm["y"]))
                score[k] = min([float(lm[s]) for s in ("visibility", "presence") if lm.get(s) is not None] or [1.0])
            else:
                xy[k] = (float(lm[0]), float(lm[1]))
                score[k] = float(lm[3]) if len(lm) > 3 else 1.0
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise DataError(f"{where}: landmark {k} has no numeric x, y; pass MediaPipe's pose_landmarks.") from exc
    return xy, score


def _is_landmark(value: Any) -> bool:
    return (isinstance(value, dict) and "x" in value) or (
        isinstance(value, list) and bool(value) and not isinstance(value[0], (list, dict)))


def _mediapipe_people(entry: Any, where: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """One frame: {"pose_landmarks": people | {"landmark": [...]}}, a list of people, or one person's 33."""
    if isinstance(entry, dict) and "pose_landmarks" in entry:
        entry = entry["pose_landmarks"]
    elif isinstance(entry, dict) and "landmark" not in entry:
        if "pose_world_landmarks" in entry:
            raise DataError(f"{where}: only pose_world_landmarks (metres, hip-centred); liftbench lifts the image "
                            "landmarks: save result.pose_landmarks.")
        raise DataError(f"{where}: no pose_landmarks; this is not a MediaPipe Pose dump.")
    if entry is None or entry == []:
        return []
    people = [entry] if isinstance(entry, dict) or _is_landmark(entry[0]) else entry  # one person or several
    if not isinstance(people, list):
        raise DataError(f"{where}: pose_landmarks is not a list; this is not a MediaPipe Pose dump.")
    return [_landmarks(person, f"{where} person {i}") for i, person in enumerate(people)]


def read_mediapipe(path: Path) -> Detections:
    """MediaPipe Pose landmarks: a JSON list of frames or a folder of one JSON per frame (module docstring)."""
    sources = numbered_files(path) if path.is_dir() else [(None, path)]
    rows, frames_seen, world = [], [], []
    for number, file in sources:
        data = load_json(file)
        entries = data if number is None and isinstance(data, list) else [data]  # one file: a list of frames
        for k, entry in enumerate(entries):
            named = [entry[n] for n in ("frame", "frame_id", "frame_index") if isinstance(entry, dict) and n in entry]
            key = named[0] if named else None
            frame = frame_number(key, number if number is not None else k, f"{file} entry {k} frame")
            frames_seen.append(frame)
            for xy, score in _mediapipe_people(entry, f"{file} frame {frame}"):
                rows.append((frame, None, xy, score))
                world.append(np.median(xy, axis=0))
    if world and (np.median(np.stack(world), axis=0) < 0).any():
        raise DataError(f"{path}: the landmarks centre on negative values, as MediaPipe's pose_world_landmarks "
                        "(metres, hip-centred) do; save pose_landmarks (fractions of the image) instead.")
    dets = assemble(path, "mediapipe", "mediapipe33", rows, frames_seen, [None] * len(rows), (None, None))
    dets.normalised = True
    return dets


# ------------------------------------------------------------------------------------ easy_ViTPose
def _vitpose_layout(data: dict, count: int, where: str) -> tuple[str, int]:
    """(layout, points to keep) from the file's skeleton names, else from the point count."""
    names = data.get("skeleton")
    if isinstance(names, dict) and names:
        try:
            ordered = [str(names[k]) for k in sorted(names, key=lambda k: int(k))]
        except ValueError as exc:
            raise DataError(f"{where}: skeleton keys are not point indices; this is not easy_ViTPose output.") from exc
        for layout, total in VITPOSE_SKELETONS.values():
            known = list(LAYOUTS[layout])
            if len(ordered) == total and ordered[:len(known)] == known:
                return layout, len(known)
        raise DataError(f"{where}: easy_ViTPose skeleton {ordered[:5]}... is not a human one liftbench maps "
                        f"({', '.join(VITPOSE_SKELETONS)}); use a COCO model.")
    by_count = {17: ("coco17", 17), 25: ("vitpose25", 25), 133: ("coco17", 17)}
    if count not in by_count:
        raise DataError(f"{where}: {count} keypoints and no skeleton; easy_ViTPose coco (17), coco_25 (25) or "
                        "wholebody (133) models are read.")
    return by_count[count]


def read_vitpose(path: Path) -> Detections:
    """easy_ViTPose ``--save-json``: {"keypoints": [{id: [[y, x, score], ...]} per frame], "skeleton": {...}}."""
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("keypoints"), list):
        raise DataError(f"{path}: no 'keypoints' list of frames; this is not easy_ViTPose --save-json output.")
    rows, ids, layout, keep = [], [], None, 0
    for frame, people in enumerate(data["keypoints"]):
        items = people.items() if isinstance(people, dict) else enumerate(people or [])
        for pid, kp in items:
            where = f"{path} frame {frame} person {pid}"
            try:
                arr = np.asarray(kp, dtype=np.float64)  # (K, 3): y, x, score
            except (TypeError, ValueError) as exc:
                raise DataError(f"{where}: keypoints are not numbers.") from exc
            if arr.ndim != 2 or arr.shape[1] != 3:
                raise DataError(f"{where}: keypoints of shape {arr.shape}; easy_ViTPose writes K x [y, x, score].")
            if layout is None:
                layout, keep = _vitpose_layout(data, len(arr), str(path))
            tid = int(pid) if isinstance(people, dict) and str(pid).isdigit() else None
            rows.append((frame, tid, arr[:keep, 1::-1], arr[:keep, 2]))  # (K, 2): (y, x) -> (x, y)
            ids.append(None if tid is None else "easy_ViTPose id")
    return assemble(path, "vitpose", layout or "coco17", rows, list(range(len(data["keypoints"]))), ids, (None, None))


# ------------------------------------------------------------------------------------ sniffing
def sniff(sample: Any) -> tuple[str, str] | None:
    """(format, what it looks like) for a JSON sample of a format this module reads; None otherwise."""
    if isinstance(sample, dict) and isinstance(sample.get("keypoints"), list) and "skeleton" in sample:
        return "vitpose", "easy_ViTPose --save-json output (keypoints per frame as y, x, score; skeleton names)"
    entry = sample[0] if isinstance(sample, list) and sample else sample
    if isinstance(entry, list):  # a list of frames of YOLO detections: the first detection of any frame
        entry = next((frame[0] for frame in sample if isinstance(frame, list) and frame), None)
    if isinstance(entry, dict) and ({"pose_landmarks", "pose_world_landmarks"} & set(entry) or "landmark" in entry):
        return "mediapipe", "MediaPipe Pose landmarks (pose_landmarks, 33 normalised points)"
    if isinstance(entry, dict) and isinstance(entry.get("keypoints"), dict) and "x" in entry["keypoints"]:
        return "yolo", "Ultralytics Results.to_json() detections (keypoints {x, y, visible})"
    return None


def sniff_txt(path: Path) -> tuple[str, str] | None:
    """A .txt (or folder of them) whose first line is a YOLO-pose label."""
    files = [f for _, f in numbered_files(path, ".txt")] if path.is_dir() else [path]
    for file in files:
        lines = [ln for ln in read_text(file).splitlines() if ln.strip()] if file.stat().st_size else []
        if lines:
            try:
                _yolo_line([float(v) for v in lines[0].split()], str(file))
            except (ValueError, DataError):
                return None
            return "yolo", "Ultralytics YOLO-pose labels (save_txt: cls cx cy w h, then x y conf per keypoint)"
    return None


# ------------------------------------------------------------------------------------ BODY_25 vs BODY_25B
PLAUSIBLE = 0.08  # median offset, in person heights, below which a layout's anatomy fits


def _offsets(points: np.ndarray, valid: np.ndarray, pairs: list[tuple[int, int, int]]) -> float:
    """Median over detections of mean |p_a - mid(p_b, p_c)| / person height over ``pairs`` (a, b, c); NaN if none.
    ``b == c`` measures |p_a - p_b|."""
    used = sorted({i for t in pairs for i in t})
    ok = valid[:, used].all(axis=1)  # (D,)
    if not ok.any():
        return float("nan")
    pts, vis = points[ok], valid[ok]  # (D', 25, 2), (D', 25)
    ys = np.where(vis, pts[..., 1], np.nan)  # (D', 25)
    height = np.maximum(np.nanmax(ys, axis=1) - np.nanmin(ys, axis=1), 1.0)  # (D',)
    dist = [np.linalg.norm(pts[:, a] - (pts[:, b] + pts[:, c]) / 2, axis=1) for a, b, c in pairs]  # each (D',)
    return float(np.median(np.mean(dist, axis=0) / height))


def openpose25_layout(points: np.ndarray, scores: np.ndarray, option: str | None, where: str) -> tuple[str, str]:
    """(layout, how it was chosen) for OpenPose files of 25 points: BODY_25 or BODY_25B.

    BODY_25 fits when its Neck (1) lies at mid(RShoulder 2, LShoulder 5) and its MidHip (8) at mid(RHip 9,
    LHip 12); BODY_25B fits when its eyes (1, 2) lie beside the Nose (0). Read in the other layout these
    points are limbs and eyes, a tenth of a person's height or more away. ``option`` (``--layout``) wins."""
    if option in ("body25", "body25b"):
        return option, f"layout {option} given by --layout"
    valid = (scores >= 0.1) & (points != 0).any(axis=2)  # (D, 25)
    fit25 = _offsets(points, valid, [(1, 2, 5), (8, 9, 12)])
    fit25b = _offsets(points, valid, [(1, 0, 0), (2, 0, 0)])
    says = f"neck/mid-hip off by {fit25:.2f} person heights as BODY_25, eyes off the nose by {fit25b:.2f} as BODY_25B"
    ok25, ok25b = fit25 < PLAUSIBLE, fit25b < PLAUSIBLE
    if ok25 and not ok25b:
        return "body25", f"layout body25 ({says})"
    if ok25b and not ok25:
        return "body25b", (f"layout body25b: the 25 points are in OpenPose BODY_25B order, not BODY_25 ({says}); "
                           "pass --layout body25 to override")
    if np.isnan(fit25) and np.isnan(fit25b):
        return "body25", "layout body25 (too few confident points to check it against BODY_25B)"
    if ok25:
        return "body25", f"layout body25 (BODY_25B fits too: {says})"
    raise DataError(f"{where}: 25 points per person that fit neither OpenPose BODY_25 nor BODY_25B ({says}); pass "
                    "--layout body25 or --layout body25b if you know which --model_pose wrote them.")


def check_layout_option(fmt: str, layout: str | None) -> None:
    """--layout applies to plain arrays (any layout) and OpenPose files (body25, body25b, coco18)."""
    if layout is None or fmt == "npz":
        return
    if fmt == "openpose" and layout in ("body25", "body25b", "coco18"):
        return
    raise ConfigError(f"--layout {layout} does not apply to --format {fmt}: --layout chooses the order of plain "
                      "arrays (--format npz) and of OpenPose files (body25 | body25b | coco18); other formats define "
                      "their own.")
