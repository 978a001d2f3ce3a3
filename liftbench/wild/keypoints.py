"""Users' own 2D keypoints: layouts, the one mapping to the Human3.6M 17 joints, gap filling, export.

Every detector format is read (``readers``, ``detectors``) into the same ``Detections`` (one row per
(frame, person), points in the detector's own keypoint order), people get stable ids (``tracking``),
and every layout goes through the SAME mapping table
``H36M_FROM_DETECTOR`` (the MotionBERT / mmpose COCO rule, written with point names so COCO-17,
Halpe-26, OpenPose BODY_25 / BODY_25B / COCO-18, MediaPipe-33 and easy_ViTPose's coco_25 all use it).
Halpe's own Head/Neck/Hip, BODY_25's Neck/MidHip and the other layouts' extra points are deliberately
not used: one definition for every detector keeps results comparable.

Filling (``person_tracks``): per person, the output covers every frame from its first to its last
detection. A detector point that is missing (score below the threshold -- per format,
``SCORE_THRESHOLDS``, 0.3 by default -- or exactly (0, 0)) or a frame where the person is absent is
filled by linear interpolation over time per point
and coordinate (``np.interp``: the nearest valid value is held before the first / after the last
one), BEFORE the mapping, so derived joints (Hip, Spine, Thorax, Head) stay exact functions of the
filled points; ``filled`` marks every H36M joint that used a filled point. A person with a needed
point never detected is not lifted and is reported (``SkippedPerson``).

Formats (``--format``): ``coco`` (COCO keypoint-results JSON list, a COCO dataset dict with
``annotations``/``images``, or a folder of one such JSON per frame), ``detectron2`` (its
``coco_instances_results.json``), ``halpe`` (AlphaPose JSON with 26 points; a scalar ``idx`` is its track
id, a list is "no id"), ``openpose`` (a folder of ``*_keypoints.json``, one per frame, BODY_25, BODY_25B
or COCO-18), ``mmpose`` (inferencer ``--pred-out-dir`` JSON or the demo's ``instance_info`` dict),
``yolo``, ``mediapipe`` and ``vitpose`` (``detectors``), and ``npz`` (plain arrays ``.npz``/``.npy``/``.csv``
of shape (frames, joints, 2 or 3 with score), optionally (people, frames, joints, C)). A point with score
below the threshold, or at exactly (0, 0) (the OpenPose/COCO/YOLO "absent" convention), is missing; NaN
coordinates are an error, never "missing".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liftbench.data.skeleton import JOINT_NAMES, NUM_JOINTS
from liftbench.errors import DataError

MAX_SPAN = 1_000_000  # frames (5.5 h at 50 fps): a larger span means image ids of unrelated images
DEFAULT_SCORE_THRESHOLD = 0.3  # mmpose's box/track threshold and MHFormer's low-score rule
FORMATS = ("auto", "coco", "halpe", "openpose", "mmpose", "detectron2", "yolo", "mediapipe", "vitpose", "npz")
#: default --score-threshold per format, with why: detector scores mean different things
SCORE_THRESHOLDS: dict[str, tuple[float, str]] = {
    "detectron2": (0.05, "detectron2 keypoint scores are heatmap softmax values, not probabilities (they can exceed "
                         "1); 0.05 is detectron2's own Visualizer keypoint threshold"),
    "yolo": (0.5, "Ultralytics sets keypoints with confidence < 0.5 to (0, 0) itself (Keypoints)"),
    "mediapipe": (0.5, "MediaPipe's drawing_utils keeps landmarks with visibility and presence >= 0.5"),
    "vitpose": (0.5, "easy_ViTPose draws keypoints with confidence >= 0.5"),
}


def default_score_threshold(fmt: str) -> tuple[float, str]:
    """(threshold, why) a format uses when --score-threshold is not given."""
    return SCORE_THRESHOLDS.get(fmt, (DEFAULT_SCORE_THRESHOLD, "liftbench's default for probability-like "
                                                               "scores (mmpose's keypoint threshold)"))


_COCO17 = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
           "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
           "right_knee", "left_ankle", "right_ankle")
#: point names of every layout, index = the detector's keypoint index (reference §3.1)
LAYOUTS: dict[str, tuple[str, ...]] = {
    "coco17": _COCO17,
    "halpe26": _COCO17 + ("head", "neck", "hip", "left_big_toe", "right_big_toe", "left_small_toe",
                          "right_small_toe", "left_heel", "right_heel"),
    "body25": ("nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
               "left_wrist", "mid_hip", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
               "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear", "left_big_toe", "left_small_toe",
               "left_heel", "right_big_toe", "right_small_toe", "right_heel"),
    "coco18": ("nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
               "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
               "right_eye", "left_eye", "right_ear", "left_ear"),
    # OpenPose BODY_25B (openpose src/openpose/pose/poseParameters.cpp POSE_BODY_25B_BODY_PARTS)
    "body25b": _COCO17 + ("upper_neck", "head_top", "left_big_toe", "left_small_toe", "left_heel", "right_big_toe",
                          "right_small_toe", "right_heel"),
    # MediaPipe Pose / BlazePose, PoseLandmark order (google/mediapipe)
    "mediapipe33": ("nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
                    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
                    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
                    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
                    "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
                    "left_foot_index", "right_foot_index"),
    # easy_ViTPose coco_25 (JunkyByte/easy_ViTPose vit_utils/visualization.py joints_dict)
    "vitpose25": ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "neck", "left_shoulder", "right_shoulder",
                  "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "hip",
                  "left_knee", "right_knee", "left_ankle", "right_ankle", "left_big_toe", "left_small_toe",
                  "left_heel", "right_big_toe", "right_small_toe", "right_heel"),
    "h36m17": tuple(JOINT_NAMES),  # already Human3.6M order: passed through unchanged
}
#: layout chosen from the joint count of a plain array (17 = COCO-17 unless --layout h36m)
ARRAY_LAYOUTS = {17: "coco17", 18: "coco18", 25: "body25", 26: "halpe26"}
LAYOUT_OPTIONS = {"coco": "coco17", "halpe": "halpe26", "body25": "body25", "body25b": "body25b", "coco18": "coco18",
                  "mediapipe": "mediapipe33", "h36m": "h36m17"}

#: THE mapping table: Human3.6M joint <- mean of these detector points. mean of two = midpoint;
#: Spine = mean of both hips and both shoulders = mid(Hip, Thorax). Sides are anatomical in every
#: layout, so nothing is swapped.
H36M_FROM_DETECTOR: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Hip", ("left_hip", "right_hip")),
    ("RHip", ("right_hip",)), ("RKnee", ("right_knee",)), ("RFoot", ("right_ankle",)),
    ("LHip", ("left_hip",)), ("LKnee", ("left_knee",)), ("LFoot", ("left_ankle",)),
    ("Spine", ("left_hip", "right_hip", "left_shoulder", "right_shoulder")),
    ("Thorax", ("left_shoulder", "right_shoulder")),
    ("Neck/Nose", ("nose",)),
    ("Head", ("left_eye", "right_eye")),
    ("LShoulder", ("left_shoulder",)), ("LElbow", ("left_elbow",)), ("LWrist", ("left_wrist",)),
    ("RShoulder", ("right_shoulder",)), ("RElbow", ("right_elbow",)), ("RWrist", ("right_wrist",)),
)
assert tuple(j for j, _ in H36M_FROM_DETECTOR) == tuple(JOINT_NAMES)


def mapping_table(layout: str) -> list[dict[str, Any]]:
    """The table as written into every output: joint, formula, source names and indices in ``layout``."""
    if layout == "h36m17":
        return [{"joint": j, "formula": f"input joint {i} (already Human3.6M order)", "sources": [j],
                 "source_indices": [i]} for i, j in enumerate(JOINT_NAMES)]
    names = LAYOUTS[layout]
    rows = []
    for joint, sources in H36M_FROM_DETECTOR:
        formula = sources[0] if len(sources) == 1 else (f"mid({', '.join(sources)})" if len(sources) == 2
                                                          else f"mean({', '.join(sources)}) = mid(Hip, Thorax)")
        rows.append({"joint": joint, "formula": formula, "sources": list(sources),
                     "source_indices": [names.index(s) for s in sources]})
    return rows


def mapping_matrix(layout: str) -> np.ndarray:
    """(17, K) weights: H36M joint j = sum_k W[j, k] * detector point k."""
    names = LAYOUTS[layout]
    weights = np.zeros((NUM_JOINTS, len(names)))
    for j, row in enumerate(mapping_table(layout)):
        weights[j, row["source_indices"]] = 1.0 / len(row["source_indices"])
    return weights


@dataclass
class Detections:
    """Everything a reader found, one row per (frame, person) detection, in the detector's layout."""

    source: Path
    format: str  # coco | halpe | openpose | mmpose | npz
    layout: str  # key of LAYOUTS
    frames: np.ndarray  # (D,) int64 frame number of each detection
    person: np.ndarray  # (D,) int64 track id, or the index within its frame
    points: np.ndarray  # (D, K, 2) float64 pixels
    scores: np.ndarray  # (D, K) float64 (1.0 where the file has no score)
    video_frames: np.ndarray  # (V,) int64 every frame the file covers, with or without a person
    person_key: str  # where person ids come from: 'track_id' | 'idx' | ... | 'index within the frame'
    width: float | None = None
    height: float | None = None
    ids_from_file: bool = False  # person holds the file's own track ids (else: index within the frame)
    normalised: bool = False  # points are fractions of the image width / height (YOLO labels, MediaPipe)
    merged_boxes: int = 0  # records that pose-NMS built from several boxes (AlphaPose idx [[a], [b]])
    notes: list[str] = field(default_factory=list)  # what the reader decided (layout checks, ignored ids)


@dataclass
class PersonTrack:
    """One person's keypoints mapped to H36M-17, filled, over frames first..last detection."""

    person_id: int
    frames: np.ndarray  # (N,) int64 consecutive frame numbers
    keypoints_2d: np.ndarray  # (N, 17, 2) float64, the user's pixels
    filled: np.ndarray  # (N, 17) bool: the joint used an interpolated detector point
    frames_without_person: np.ndarray  # (M,) int64 frames inside the span with no detection of this person
    filled_points: dict[str, int]  # detector point name -> frames where it was interpolated
    duplicates_dropped: int  # detections of the same track id in the same frame (lower mean score dropped)

    def fill_counts(self) -> dict[str, int]:
        """Frames with a filled joint, per H36M joint name."""
        return {name: int(n) for name, n in zip(JOINT_NAMES, self.filled.sum(axis=0))}


@dataclass
class SkippedPerson:
    person_id: int
    reason: str


def person_tracks(dets: Detections, score_threshold: float = DEFAULT_SCORE_THRESHOLD
                  ) -> tuple[list[PersonTrack], list[SkippedPerson]]:
    """Split detections per person, then fill and map each to H36M-17 (see the module docstring)."""
    weights = mapping_matrix(dets.layout)  # (17, K)
    needed = np.flatnonzero(weights.any(axis=0))
    names = LAYOUTS[dets.layout]
    tracks, skipped = [], []
    for pid in np.unique(dets.person).tolist():
        rows = np.flatnonzero(dets.person == pid)
        rows = rows[np.lexsort((-dets.scores[rows].mean(axis=1), dets.frames[rows]))]  # by frame, best first
        keep = np.ones(len(rows), dtype=bool)
        keep[1:] = dets.frames[rows][1:] != dets.frames[rows][:-1]
        rows, dropped = rows[keep], int((~keep).sum())
        first, last = int(dets.frames[rows[0]]), int(dets.frames[rows[-1]])
        if last - first >= MAX_SPAN:
            raise DataError(f"{dets.source}: person {pid} spans frames {first}..{last}; these ids do not look like "
                            "the frame numbers of one video (name frames by their number, e.g. frame_000012.jpg).")
        span = np.arange(first, last + 1, dtype=np.int64)  # (N,)
        at = dets.frames[rows] - first
        points = np.zeros((len(span), len(names), 2))  # (N, K, 2)
        valid = np.zeros((len(span), len(names)), dtype=bool)  # (N, K)
        points[at] = dets.points[rows]
        valid[at] = (dets.scores[rows] >= score_threshold) & (dets.points[rows] != 0).any(axis=2)
        never = [names[k] for k in needed if not valid[:, k].any()]
        if never:
            skipped.append(SkippedPerson(pid, f"point(s) {', '.join(never)} never detected with score >= "
                                              f"{score_threshold:g}; lower --score-threshold or crop the video"))
            continue
        for k in needed:
            ok = valid[:, k]
            if not ok.all():
                for c in range(2):
                    points[:, k, c] = np.interp(span, span[ok], points[ok, k, c])
        mapped = np.einsum("jk,nkc->njc", weights, points)  # (N, 17, 2)
        uses = weights > 0  # (17, K)
        filled = (~valid[:, None, :] & uses[None]).any(axis=2)  # (N, 17)
        present = np.zeros(len(span), dtype=bool)
        present[at] = True
        tracks.append(PersonTrack(pid, span, mapped, filled, span[~present],
                                  {names[k]: int((~valid[:, k]).sum()) for k in needed}, dropped))
    return tracks, skipped


def coco17_from_h36m(keypoints_2d: np.ndarray) -> np.ndarray:
    """(N, 17, 2) H36M-17 -> (N, 17, 2) COCO-17 with INVENTED face points, for worked examples.

    Body points are copied; nose = Neck/Nose. H36M has no eyes or ears, so they are placed on the line
    through Head parallel to the shoulders: eyes at Head +/- 0.15 x (LShoulder - RShoulder), ears at
    +/- 0.30 x, left toward the left shoulder. Mapping back gives Head = mid(eyes) exactly; Hip, Spine
    and Thorax come back only approximately (they are not midpoints in H36M): the domain shift.
    """
    h = {name: keypoints_2d[:, i] for i, name in enumerate(JOINT_NAMES)}  # each (N, 2)
    across = h["LShoulder"] - h["RShoulder"]  # (N, 2)
    source = {"nose": h["Neck/Nose"], "left_eye": h["Head"] + 0.15 * across, "right_eye": h["Head"] - 0.15 * across,
              "left_ear": h["Head"] + 0.30 * across, "right_ear": h["Head"] - 0.30 * across,
              "left_shoulder": h["LShoulder"], "right_shoulder": h["RShoulder"], "left_elbow": h["LElbow"],
              "right_elbow": h["RElbow"], "left_wrist": h["LWrist"], "right_wrist": h["RWrist"],
              "left_hip": h["LHip"], "right_hip": h["RHip"], "left_knee": h["LKnee"], "right_knee": h["RKnee"],
              "left_ankle": h["LFoot"], "right_ankle": h["RFoot"]}
    return np.stack([source[name] for name in LAYOUTS["coco17"]], axis=1)  # (N, 17, 2)


def coco_results(coco_points: np.ndarray, frames: np.ndarray | None = None) -> list[dict[str, Any]]:
    """(N, 17, 2) COCO-17 -> a COCO keypoint-results list (score 1 everywhere, image_id = frame)."""
    frames = np.arange(len(coco_points)) if frames is None else frames
    triples = np.concatenate([coco_points, np.ones(coco_points.shape[:2] + (1,))], axis=2)  # (N, 17, 3)
    return [{"image_id": int(f), "category_id": 1, "keypoints": [round(float(v), 3) for v in t.reshape(-1)],
             "score": 1.0} for f, t in zip(frames, triples)]
