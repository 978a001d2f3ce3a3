"""Lift a user's own 2D keypoints (one video) with a trained run: ``predict_file``.

Flow: read the detector file (``readers``) -> pixels (``sources.in_pixels`` for normalised formats) ->
stable person ids (``tracking.identify``: the file's track ids, or association across frames) -> per
person, map to H36M-17 and fill gaps (``keypoints.person_tracks``) -> move the user's pixels into the
Human3.6M camera frame the run was
trained on (``to_h36m_pixels``, the ONE place that does it) -> ``evaluate.predict_sequences`` (so the
run's own input normalisation, window and causal alignment apply, whatever the lifter) -> one
``.npz`` + ``.json`` pair per person. Nothing here prints; the CLI renders ``PredictOutcome``.
"""

from __future__ import annotations

import inspect
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liftbench import __version__
from liftbench._files import write_bytes_atomic, write_text_atomic
from liftbench.data import load_dataset
from liftbench.data.dataset import Sequence
from liftbench.data.skeleton import JOINT_NAMES, root_centre
from liftbench.device import resolve_device
from liftbench.errors import CheckpointError, ConfigError, DataError
from liftbench.evaluate import predict_sequences
from liftbench.pipeline import load_run
from liftbench.results import utc_now
from liftbench.values import finite_result, image_size
from liftbench.wild.keypoints import (
    LAYOUTS,
    PersonTrack,
    SkippedPerson,
    coco17_from_h36m,
    coco_results,
    default_score_threshold,
    mapping_table,
    person_tracks,
)
from liftbench.wild.readers import read_keypoints
from liftbench.wild.show import render
from liftbench.wild.sources import in_pixels
from liftbench.wild.tracking import Identification, PersonIdentity, identify

DOMAIN_SHIFT_WARNING = ("a lifter trained on Human3.6M keypoints sees a different skeleton definition and camera "
                        "here: the detector's joints are mapped (Hip, Spine, Thorax, Head are approximations), and "
                        "the camera, its distance and the image size differ, so expect larger errors than on "
                        "Human3.6M")
H36M_IMAGE_SIZE = (1000.0, 1002.0)  # (width, height) of the Human3.6M cameras the built-in runs saw
FILL_METHOD = ("per detector point and coordinate, linear interpolation over time (np.interp) from the frames "
               "where it was detected with score >= threshold and not at (0, 0); the nearest value is held "
               "before the first / after the last detection; done before the mapping")


def to_h36m_pixels(points: np.ndarray, width: float, height: float) -> tuple[np.ndarray, dict[str, Any]]:
    """(..., 2) pixels of a width x height image -> the same pose in a 1000 x 1002 Human3.6M image.

    Why: the lifters z-score RAW pixels with Human3.6M statistics, so a 1920 x 1080 video must be
    brought to that frame. The aspect ratio is preserved as VideoPose3D does: u = x / w * 2 - [1, h / w]
    (x in [-1, 1], y scaled by the same factor), then back with W = 1000, H = 1002:
    p = (u + [1, H / W]) * W / 2, i.e. p = x * W / w + [0, (H - h * W / w) / 2].
    """
    target_w, target_h = H36M_IMAGE_SIZE
    normalised = points / width * 2.0 - np.array([1.0, height / width])  # (..., 2), x in [-1, 1]
    mapped = (normalised + np.array([1.0, target_h / target_w])) * target_w / 2.0  # (..., 2) H36M pixels
    scale = target_w / width
    info = {"function": "liftbench.wild.predict.to_h36m_pixels",
            "formula": "u = p / w * 2 - [1, h / w] (VideoPose3D screen normalisation); p' = (u + [1, H / W]) * W / 2",
            "user_image_size": [width, height], "h36m_image_size": [target_w, target_h],
            "scale": scale, "offset_px": [0.0, (target_h - height * scale) / 2.0]}
    return mapped, info


@dataclass
class PersonOutput:
    person_id: int
    npz_path: Path
    json_path: Path
    n_frames: int
    n_frames_without_person: int
    n_joint_frames_filled: int  # (frame, joint) pairs that used an interpolated point
    identity: PersonIdentity | None = None  # how the person was identified, detections, jumps
    duplicates_dropped: int = 0  # two detections of this person in one frame: the lower-scoring one dropped
    render_path: Path | None = None


@dataclass
class PredictOutcome:
    input: Path
    format: str
    format_how: str  # "given by --format" or "auto-detected: ..."
    layout: str
    run_id: str
    model: str
    image_size: tuple[float, float]
    image_size_source: str
    people: list[PersonOutput]
    skipped: list[SkippedPerson]
    warning: str = DOMAIN_SHIFT_WARNING
    notes: list[str] = field(default_factory=list)  # what the reader decided (layout checks, ignored ids)
    score_threshold: float = 0.0
    score_threshold_source: str = ""  # '--score-threshold' or the format's default and why
    identification: Identification | None = None


def _frame_ranges(frames: np.ndarray) -> list[list[int]]:
    """Sorted frame numbers -> inclusive [first, last] runs (compact for long gaps)."""
    if len(frames) == 0:
        return []
    breaks = np.flatnonzero(np.diff(frames) != 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(frames) - 1]])
    return [[int(frames[a]), int(frames[b])] for a, b in zip(starts, ends)]


def _check_options(out: Path | None, width: float | None, height: float | None, score_threshold: float | None) -> None:
    if score_threshold is not None and (not np.isfinite(score_threshold) or score_threshold < 0):
        raise ConfigError(f"--score-threshold must be a number >= 0 (default: the format's), got {score_threshold}.")
    if (width is None) != (height is None):
        raise ConfigError("--width and --height go together; pass both (the video's size in pixels).")
    if width is not None:  # the rule a size read from a file follows too (values.image_size)
        image_size(width, height, "", error=ConfigError, labels=("--width", "--height"))
    if out is not None and out.suffix.lower() != ".npz":
        raise ConfigError(f"--out {out}: give a .npz file name (the .json is written beside it).")


def _image_size(dets, input_path: Path, width: float | None, height: float | None) -> tuple[float, float, str]:
    if width is not None:
        said = f" (the file says {dets.width:g} x {dets.height:g})" if dets.width and dets.height else ""
        return float(width), float(height), f"--width/--height{said}"
    if dets.width is not None or dets.height is not None:  # every reader's size, checked like --width/--height
        file_w, file_h = image_size(dets.width, dets.height, f"{input_path}: the image")
        return file_w, file_h, "the input file"
    why = " and its points are fractions of the image" if dets.normalised else ""
    raise ConfigError(f"{input_path} does not store the image size{why}; pass --width W --height H (the video's size "
                      "in pixels).")


def _output_paths(input_path: Path, out: Path | None, person_id: int, several: bool) -> tuple[Path, Path]:
    stem = input_path.stem if input_path.is_file() else input_path.name
    base = out if out is not None else input_path.parent / f"{stem}_3d.npz"
    if several:
        base = base.with_name(f"{base.stem}_person{person_id}.npz")
    return base, base.with_suffix(".json")


def predict_file(run_dir: str | Path, input: str | Path, *, fmt: str = "auto", out: str | Path | None = None,
                 width: float | None = None, height: float | None = None,
                 score_threshold: float | None = None, layout: str | None = None, device: str = "auto",
                 render: str | Path | None = None, fps: float = 50.0) -> PredictOutcome:
    """Lift every person of one video's 2D keypoints with the run in ``run_dir``; write .npz + .json each.
    ``score_threshold`` None: the format's default (``keypoints.SCORE_THRESHOLDS``)."""

    input_path = Path(input).expanduser()
    out_path = Path(out).expanduser() if out is not None else None
    _check_options(out_path, width, height, score_threshold)
    dev = resolve_device(device)
    run = load_run(run_dir, str(dev))
    if not run.state.finished:
        raise CheckpointError(f"Run {run.run_dir} has not finished training ({run.state.epoch} epoch(s) done); "
                              "resume it with liftbench train ... --resume first.")
    dets, how = read_keypoints(input_path, fmt, layout)
    img_w, img_h, size_source = _image_size(dets, input_path, width, height)
    if not dets.normalised and len(dets.frames) and np.abs(dets.points).max() <= 2.0 and img_w > 16:
        raise DataError(f"{input_path}: every coordinate lies within [-2, 2] for a {img_w:g} x {img_h:g} image; these "
                        "look normalised (e.g. OpenPose --keypoint_scale 3/4): export pixel coordinates.")
    if score_threshold is None:
        score_threshold, why = default_score_threshold(dets.format)
        threshold_source = f"default for {dets.format}: {why}"
    else:
        threshold_source = "--score-threshold"
    identity = identify(in_pixels(dets, img_w, img_h), score_threshold)
    tracks, skipped = person_tracks(identity.dets, score_threshold)
    if not tracks:
        if not len(dets.frames):
            raise DataError(f"{input_path}: no person is detected in any of its {len(dets.video_frames)} frame(s); "
                            "nothing to lift.")
        reasons = "; ".join(f"person {s.person_id}: {s.reason}" for s in skipped)
        raise DataError(f"{input_path}: no person can be lifted ({reasons}).")
    sequences = []
    pixel_info: dict[str, Any] = {}
    for track in tracks:
        with np.errstate(all="ignore"):  # checked just below
            h36m_px, pixel_info = to_h36m_pixels(track.keypoints_2d, img_w, img_h)  # (N, 17, 2)
        finite_result(h36m_px.astype(np.float32), f"2D input of person {track.person_id} mapped to Human3.6M pixels",
                      input_path, "its coordinates are too large for the image size; pass pixel coordinates of "
                      "this video")
        sequences.append(Sequence(subject=f"person{track.person_id}", action=input_path.stem, camera=0,
                                  keypoints_2d=h36m_px.astype(np.float32),
                                  joints_3d=np.zeros((len(track.frames), len(JOINT_NAMES), 3), dtype=np.float32),
                                  resolution=(int(H36M_IMAGE_SIZE[0]), int(H36M_IMAGE_SIZE[1]))))
    with np.errstate(all="ignore"):  # the input is normalised inside; its finiteness is checked below
        preds = predict_sequences(run.model, run.stats, sequences, dev, ground_truth=False)
    finite_result(preds.pred, "3D output of the lifter", input_path, "the 2D input is far outside the range the "
                  "run was trained on (check the coordinates and the image size); nothing was written")
    common = {"liftbench_version": __version__, "created_utc": utc_now(), "input": str(input_path),
              "run": {"run_id": run.config.run_id, "model": run.config.model, "run_dir": str(run.run_dir),
                      "window": int(run.model.window)},
              "format": dets.format, "format_chosen": how, "layout": dets.layout,
              "layout_points": list(LAYOUTS[dets.layout]), "mapping": mapping_table(dets.layout),
              "score_threshold": score_threshold, "score_threshold_source": threshold_source,
              "reader_notes": list(dets.notes), "people_identified": identity.summary(),
              "detections_dropped": {"count": identity.dropped, "frames": identity.dropped_frames,
                                     "reason": "no point with score >= threshold (not at (0, 0)): cannot be placed"},
              "merged_boxes": identity.merged_boxes,
              "image_size": {"width": img_w, "height": img_h, "source": size_source}, "pixel_mapping": pixel_info,
              "units": "poses_3d: mm, root-relative (Hip = 0; a lifter's predicted root offset is subtracted), "
                       "camera frame (x right, y down, z forward); "
                       "keypoints_2d: the user's pixels after mapping and filling",
              "video_frames": {"first": int(dets.video_frames[0]), "last": int(dets.video_frames[-1]),
                               "count": int(len(dets.video_frames))},
              "skipped_people": [{"person": s.person_id, "reason": s.reason} for s in skipped],
              "warning": DOMAIN_SHIFT_WARNING}
    people = []
    for track in tracks:
        rows = np.flatnonzero(preds.subject == f"person{track.person_id}")
        rows = rows[np.argsort(preds.frame[rows], kind="stable")]
        npz_path, json_path = _output_paths(input_path, out_path, track.person_id, len(tracks) > 1)
        person_identity = identity.people.get(track.person_id)
        meta = {**common, **_person_meta(track, dets.person_key, person_identity)}
        poses = root_centre(preds.pred[rows].astype(np.float64))  # (N, 17, 3): a predicted root offset removed
        _write_person(npz_path, json_path, poses, track, meta)
        people.append(PersonOutput(track.person_id, npz_path, json_path, len(track.frames),
                                   len(track.frames_without_person), int(track.filled.sum()), person_identity,
                                   track.duplicates_dropped))
    if render is not None:
        _render(Path(render).expanduser(), people, preds, tracks, fps)
    return PredictOutcome(input_path, dets.format, how, dets.layout, run.config.run_id, run.config.model,
                          (img_w, img_h), size_source, people, skipped, notes=list(dets.notes),
                          score_threshold=score_threshold, score_threshold_source=threshold_source,
                          identification=identity)


def _person_meta(track: PersonTrack, person_key: str, identity: PersonIdentity | None) -> dict[str, Any]:
    how = {} if identity is None else {"method": identity.identified_by, "detections": identity.detections,
                                       "jumps": identity.jumps}
    return {"person": {"id": track.person_id, "identified_by": person_key, **how},
            "frames": {"first": int(track.frames[0]), "last": int(track.frames[-1]), "count": len(track.frames),
                       "without_person": _frame_ranges(track.frames_without_person),
                       "n_without_person": len(track.frames_without_person),
                       "policy": "every frame from the person's first to last detection is output; frames without "
                                 "the person are filled by interpolation (the clip is never split)"},
            "fill": {"method": FILL_METHOD, "frames_filled_per_joint": track.fill_counts(),
                     "frames_filled_per_detector_point": track.filled_points,
                     "joint_frames_filled": int(track.filled.sum()),
                     "duplicate_detections_dropped": track.duplicates_dropped}}


def _write_person(npz_path: Path, json_path: Path, poses: np.ndarray, track: PersonTrack, meta: dict) -> None:
    """The .npz (arrays + meta as a JSON string) and the .json (the same, poses as nested lists rounded
    to 0.1 mm / 0.1 px, which keeps a 30,000-frame clip's JSON near 10 MB)."""
    arrays = {"poses_3d": poses.astype(np.float32), "keypoints_2d": track.keypoints_2d.astype(np.float32),
              "frames": track.frames.astype(np.int64), "filled": track.filled.astype(bool),
              "joint_names": np.array(JOINT_NAMES), "meta": np.array(json.dumps(meta, sort_keys=True))}
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_bytes_atomic(npz_path, buf.getvalue())
    doc = {**meta, "joint_names": list(JOINT_NAMES), "frames": arrays["frames"].tolist(),
           "poses_3d": np.round(arrays["poses_3d"].astype(np.float64), 1).tolist(),  # 0.1 mm; the npz is exact
           "keypoints_2d": np.round(arrays["keypoints_2d"].astype(np.float64), 1).tolist(),
           "filled": arrays["filled"].tolist()}
    write_text_atomic(json_path, json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n")


def _render(path: Path, people: list[PersonOutput], preds, tracks: list[PersonTrack], fps: float) -> None:
    """``--render FILE``: one animation per person through ``liftbench.wild.show.render``."""
    for person, track in zip(people, tracks):
        target = path if len(people) == 1 else path.with_name(f"{path.stem}_person{person.person_id}{path.suffix}")
        rows = np.flatnonzero(preds.subject == f"person{track.person_id}")
        rows = rows[np.argsort(preds.frame[rows], kind="stable")]
        extra = {"filled": track.filled} if "filled" in inspect.signature(render).parameters else {}
        render(target, pred=root_centre(preds.pred[rows]), keypoints_2d=track.keypoints_2d.astype(np.float32),
               target=None, frames=track.frames, fps=fps, title=f"person {person.person_id}", **extra)
        person.render_path = target


@dataclass
class ExportOutcome:
    path: Path
    n_frames: int
    image_size: tuple[int, int]
    sequence: tuple[str, str, int]


def export_2d(dataset: str, subject: str, action: str, camera: int, out: str | Path, *, fmt: str = "coco",
              data_dir: str | Path | None = None) -> ExportOutcome:
    """Write one clip's 2D keypoints of a dataset as a COCO-17 keypoint-results JSON (face points
    invented by ``keypoints2d.coco17_from_h36m``), so ``predict`` can be tried on the embedded data."""

    if fmt != "coco":
        raise ConfigError(f"--format '{fmt}' is not an export format; use --format coco (COCO-17 results JSON).")
    out_path = Path(out).expanduser()
    if out_path.suffix.lower() != ".json":
        raise ConfigError(f"--out {out_path}: give a .json file name (COCO keypoint results JSON).")
    ds = load_dataset(dataset, data_dir)
    match = [s for s in ds.sequences if s.subject == subject and s.action == action and s.camera == camera]
    if not match:
        keys = sorted({f"{s.subject}/{s.action}" for s in ds.sequences})
        raise ConfigError(f"Dataset '{ds.name}' has no clip --subject {subject} --action '{action}' --camera {camera}; "
                          f"clips: {', '.join(keys[:30])}{' ...' if len(keys) > 30 else ''} (cameras 0-3).")
    seq = match[0]
    cam = ds.cameras[subject][camera] if subject in ds.cameras and camera < len(ds.cameras[subject]) else None
    default = (int(H36M_IMAGE_SIZE[0]), int(H36M_IMAGE_SIZE[1]))
    size = tuple(int(v) for v in cam.resolution) if cam is not None else default
    records = coco_results(coco17_from_h36m(seq.keypoints_2d.astype(np.float64)))
    write_text_atomic(out_path, json.dumps(records, separators=(",", ":")) + "\n")
    return ExportOutcome(out_path, seq.n_frames, size, seq.key)
