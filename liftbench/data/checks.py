"""Checks shared by every dataset source, so that ``verify`` and ``load`` can never disagree.

A source runs these once, in its ``examine`` (the one function behind both ``load`` and
``verify``), and turns every finding into one line naming the file, the subject/action and the fix:

* ``pose_array_problem``: shape (N, J, dims), float dtype, finite values;
* ``keypoints_2d_problem``: pixel coordinates no camera can produce (more than ``IMAGE_MARGIN`` image
  sizes outside the image; 1e33 px once scored 2.6e34 mm "ok");
* ``joints_3d_problem``: a pose whose extent is not a human's (> ``MAX_POSE_EXTENT_M``), or a file in
  millimetres that should be metres;
* ``split_problems``: a split with no training or no test subject, unknown or overlapping subjects.

``user_input_errors`` turns an ``OSError`` raised on the user's own paths (permission denied,
read-only filesystem, a file where a directory belongs...) into a one-line ``DataError``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Collection, Iterable, Iterator

import numpy as np

from liftbench.errors import DataError, UnsafeFileError

IMAGE_MARGIN = 10.0  # 2D points further than 10 image widths/heights outside the image are refused
MAX_POSE_EXTENT_M = 10.0  # no human pose spans more than this (bounding-box diagonal of one frame)
MAX_COORDINATE_M = 50.0  # world coordinates: the capture room is a few metres wide


class UnsafeProblem(str):
    """A problem line that came from an ``UnsafeFileError``: ``raise_first`` re-raises it as that class."""


def pose_array_problem(arr: object, where: str, joints: tuple[int, ...], dims: int, fix: str) -> str | None:
    """Why one pose array is unusable (None: fine). Expected: (N, J, dims) float, N > 0, all finite."""
    if not isinstance(arr, np.ndarray):
        return f"{where}: {type(arr).__name__}, expected a numpy array; {fix}"
    if arr.dtype.kind != "f":
        return f"{where}: dtype {arr.dtype}, expected float32/float64; {fix}"
    if arr.ndim != 3 or arr.shape[1] not in joints or arr.shape[2] != dims or len(arr) == 0:
        expected = " or ".join(f"(N, {j}, {dims})" for j in joints)
        return f"{where}: shape {arr.shape}, expected {expected} with N > 0; {fix}"
    finite = np.isfinite(arr).all(axis=(1, 2))  # (N,)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        return f"{where}: NaN/inf in {len(bad)} frame(s), first at frame {bad[0]}; {fix}"
    largest = float(np.abs(arr).max())
    if largest > np.finfo(np.float32).max:  # finite float64 that would become inf when stored as float32
        return f"{where}: values up to {largest:.3g} overflow float32 (poses are at most metres or pixels); {fix}"
    return None


def score_problem(scores: np.ndarray, where: str, fix: str) -> str | None:
    """Detector scores (N, J) that are not finite probabilities in [0, 1]."""
    bad = ~(np.isfinite(scores) & (scores >= 0.0) & (scores <= 1.0))
    if not bad.any():
        return None
    frame = int(np.flatnonzero(bad.any(axis=tuple(range(1, scores.ndim))))[0])
    return (f"{where}: the score channel (third value per joint) must hold confidences in [0, 1]; "
            f"{int(bad.sum())} value(s) are not, first at frame {frame}; {fix}")


def keypoints_2d_problem(uv: np.ndarray, resolution: tuple[int, int], where: str, fix: str) -> str | None:
    """Pixel coordinates (N, J, 2) a camera of ``resolution`` (width, height) cannot have produced.

    Detectors and projections of people in the capture volume stay inside (or just outside) the
    image; a point ``IMAGE_MARGIN`` image sizes away is a unit error or corrupt data, and it would
    dominate the normalisation statistics and every metric. Call after ``pose_array_problem``.
    """
    size = np.asarray(resolution, dtype=np.float64)  # (2,) width, height
    with np.errstate(invalid="ignore", over="ignore"):
        outside = np.maximum(-uv, uv - size) / size  # (N, J, 2) distance outside the image, in image sizes
        too_far = np.nanmax(outside, axis=(1, 2)) > IMAGE_MARGIN  # (N,)
        too_far |= ~np.isfinite(uv).all(axis=(1, 2))
    if not too_far.any():
        return None
    frame = int(np.flatnonzero(too_far)[0])
    worst = float(np.abs(uv[frame]).max())
    return (f"{where}: 2D coordinates up to {worst:.3g} px at frame {frame}, more than {IMAGE_MARGIN:g}x the "
            f"{resolution[0]}x{resolution[1]} image away from it: no camera produces these; {fix}")


def pose_extent(poses: np.ndarray) -> np.ndarray:
    """(N, J, 3) -> (N,) bounding-box diagonal of each frame, in the poses' unit."""
    return np.linalg.norm(poses.max(axis=1) - poses.min(axis=1), axis=-1)


def joints_3d_problem(poses: np.ndarray, where: str, fix: str, *, unit: str = "m") -> str | None:
    """A 3D array (N, J, 3) that is not human poses in ``unit`` ('m' or 'mm'). Call after ``pose_array_problem``.

    In metres a frame whose extent exceeds ``MAX_POSE_EXTENT_M`` (or a coordinate beyond
    ``MAX_COORDINATE_M``) is refused; when typical frames span hundreds of units the file is in millimetres.
    """
    scale = 1.0 if unit == "m" else 1000.0
    with np.errstate(over="ignore", invalid="ignore"):
        extent = pose_extent(poses.astype(np.float64)) / scale  # (N,) metres
        largest = float(np.abs(poses).max()) / scale
    if extent.max() <= MAX_POSE_EXTENT_M and (unit != "m" or largest <= MAX_COORDINATE_M):
        return None
    if unit == "m" and 100.0 < np.median(extent) < 1e4:  # a person spans ~2 m: 2000 means millimetres
        return (f"{where}: poses span about {np.median(extent):.0f} units and coordinates reach {largest:.0f}, so "
                f"they are not metres (millimetre data?); {fix}")
    frame = int(np.argmax(extent))
    return (f"{where}: frame {frame} spans {extent[frame]:.3g} m (coordinates up to {largest:.3g} m): no human pose "
            f"in {'metres' if unit == 'm' else 'millimetres'} is that large; {fix}")


def _subject_key(subject: str) -> tuple:
    digits = "".join(ch for ch in subject if ch.isdigit())
    return (subject.rstrip("0123456789"), int(digits) if digits else -1, subject)


def split_problems(dataset: str, where: str, present: Collection[str], default_train: Iterable[str],
                   default_test: Iterable[str], train_subjects: Iterable[str] | None = None,
                   test_subjects: Iterable[str] | None = None) -> tuple[list[str], tuple[str, ...], tuple[str, ...]]:
    """The (train, test) subjects a run would use, and why it could not (empty list: it can).

    ``present`` are the subjects with at least one usable sequence; explicit subjects override the
    defaults, which are restricted to the present ones. Training needs both splits non-empty and disjoint.
    """
    have = sorted(present, key=_subject_key)
    listed = ", ".join(have) or "none"
    problems = []
    for option, explicit in (("train_subjects", train_subjects), ("test_subjects", test_subjects)):
        unknown = [s for s in explicit or () if s not in present]
        if unknown:
            problems.append(f"{option}: subject(s) {', '.join(unknown)} not in dataset '{dataset}' at {where} "
                            f"(subjects with data: {listed}); pass subjects it has")
    train = tuple(train_subjects) if train_subjects else tuple(s for s in default_train if s in present)
    test = tuple(test_subjects) if test_subjects else tuple(s for s in default_test if s in present)
    overlap = sorted(set(train) & set(test), key=_subject_key)
    if overlap:
        problems.append(f"subjects {', '.join(overlap)} are in both the train and the test split of '{dataset}'; "
                        "choose disjoint train_subjects and test_subjects")
    for split, chosen, explicit, default in (("training", train, train_subjects, default_train),
                                             ("test", test, test_subjects, default_test)):
        if not chosen and not explicit:
            default = tuple(default)
            problems.append(f"{where}: none of the default {split} subjects {', '.join(default) or '(none)'} is "
                            f"present (subjects: {listed}); pass explicit splits with train_subjects and test_subjects")
    return problems, train, test


def raise_first(problems: list[str], verify_command: str | None = None) -> None:
    """Raise the first problem (an unsafe file first of all), saying how many more there are."""
    if not problems:
        return
    first = next((p for p in problems if isinstance(p, UnsafeProblem)), problems[0])
    more = ""
    if len(problems) > 1:
        more = f" (+{len(problems) - 1} more problem(s)" + (f"; list them with: {verify_command})" if verify_command
                                                             else ")")
    raise (UnsafeFileError if isinstance(first, UnsafeProblem) else DataError)(first + more)


@contextlib.contextmanager
def user_input_errors(hint: str = "check the path and its permissions") -> Iterator[None]:
    """Turn an ``OSError`` on the user's paths into a one-line ``DataError`` naming the path (exit 2)."""
    try:
        yield
    except OSError as exc:
        path = exc.filename if exc.filename is not None else ""
        reason = exc.strerror or re.sub(r"^\[Errno \d+\] ", "", str(exc)) or type(exc).__name__
        raise DataError(f"{path}: {reason} ({type(exc).__name__}); {hint}" if path
                        else f"{reason} ({type(exc).__name__}); {hint}") from exc
