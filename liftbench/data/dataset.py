"""The one in-memory representation of a pose dataset, shared by every source.

A ``PoseDataset`` is a list of ``Sequence`` objects keyed by (subject, action, camera) with
2D keypoints (N, 17, 2) in pixels and 3D joints (N, 17, 3) in millimetres in that camera's
frame (absolute, not root-centred: preprocessing does that), plus cameras, frame rate, the
default subject split and a record of every trim and quirk met while loading.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from liftbench.data.cameras import Camera
from liftbench.errors import ConfigError


@dataclass
class Sequence:
    subject: str
    action: str
    camera: int  # 0..3 index into the subject's cameras
    keypoints_2d: np.ndarray  # (N, 17, 2) float32, pixels
    joints_3d: np.ndarray  # (N, 17, 3) float32, mm, camera frame
    resolution: tuple[int, int] | None = None  # (width, height) px of the camera image; set from the cameras
    confidence: np.ndarray | None = None  # (N, 17) float32 detector scores in [0, 1]; None: the 2D has none
    intrinsics: tuple[float, float, float, float] | None = None  # (fx, fy, cx, cy) px, pinhole; from the cameras

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.subject, self.action, self.camera)

    @property
    def n_frames(self) -> int:
        return int(self.joints_3d.shape[0])


@dataclass
class PoseDataset:
    name: str
    keypoints: str  # 2D source: 'gt' or a detector name
    fps: float
    sequences: list[Sequence]
    cameras: dict[str, tuple[Camera, ...]]  # subject -> cameras in index order
    train_subjects: tuple[str, ...]
    test_subjects: tuple[str, ...]
    notes: list[str] = field(default_factory=list)  # trims, quirks, dropped takes: shown by `data info`
    source: dict = field(default_factory=dict)  # provenance (paths, manifest, versions)

    def __post_init__(self) -> None:
        self.sequences.sort(key=lambda s: (s.subject, s.action, s.camera))
        for s in self.sequences:  # the image size and intrinsics travel with each sequence (representations)
            cams = self.cameras.get(s.subject) if self.cameras else None
            if cams is not None and 0 <= s.camera < len(cams):
                cam = cams[s.camera]
                if s.resolution is None:
                    s.resolution = tuple(int(v) for v in cam.resolution)
                if s.intrinsics is None:
                    s.intrinsics = (float(cam.f[0]), float(cam.f[1]), float(cam.c[0]), float(cam.c[1]))

    @property
    def subjects(self) -> list[str]:
        return sorted({s.subject for s in self.sequences}, key=_subject_sort_key)

    def split(self, which: str) -> list[Sequence]:
        """Sequences of the 'train' or 'test' split (by subject)."""
        if which not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', not {which!r}")
        subjects = set(self.train_subjects if which == "train" else self.test_subjects)
        return [s for s in self.sequences if s.subject in subjects]

    def with_split(self, train_subjects: Iterable[str] | None = None,
                   test_subjects: Iterable[str] | None = None) -> PoseDataset:
        """A copy with another subject split; unknown or overlapping subjects are errors."""
        train = tuple(train_subjects) if train_subjects else self.train_subjects
        test = tuple(test_subjects) if test_subjects else self.test_subjects
        known = set(self.subjects)
        for option, subjects in (("train_subjects", train), ("test_subjects", test)):
            missing = [s for s in subjects if s not in known]
            if missing:
                raise ConfigError(f"{option}: subject(s) {', '.join(missing)} not in dataset '{self.name}' "
                                  f"(it has {', '.join(self.subjects)}).")
        overlap = set(train) & set(test)
        if overlap:
            raise ConfigError(f"Subjects {', '.join(sorted(overlap))} are in both the train and the test split; "
                              "choose disjoint train_subjects and test_subjects.")
        return PoseDataset(self.name, self.keypoints, self.fps, list(self.sequences), self.cameras,
                           train, test, list(self.notes), dict(self.source))

    def fingerprint(self) -> str:
        """A short hash of the arrays and split: equal fingerprints mean the same benchmark data."""
        h = hashlib.sha256()
        h.update(f"{self.name}|{self.keypoints}|{self.fps}|{self.train_subjects}|{self.test_subjects}".encode())
        for s in self.sequences:
            h.update(f"{s.key}".encode())
            h.update(np.ascontiguousarray(s.keypoints_2d, dtype=np.float32).tobytes())
            h.update(np.ascontiguousarray(s.joints_3d, dtype=np.float32).tobytes())
            if s.confidence is not None:  # detector scores are data: another score file is other data
                h.update(np.ascontiguousarray(s.confidence, dtype=np.float32).tobytes())
        return h.hexdigest()[:16]


def _subject_sort_key(subject: str) -> tuple:
    digits = "".join(ch for ch in subject if ch.isdigit())
    return (subject.rstrip("0123456789"), int(digits) if digits else -1, subject)


def subset_sequences(sequences: list[Sequence], fraction: float) -> list[Sequence]:
    """Keep the first ``fraction`` of every sequence (at least one frame): deterministic quick runs."""
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"subset must be in (0, 1], got {fraction}; use e.g. --subset 0.1 for 10% of every sequence.")
    if fraction == 1.0:
        return sequences
    out = []
    for s in sequences:
        n = max(1, int(round(s.n_frames * fraction)))
        out.append(dataclasses.replace(s, keypoints_2d=s.keypoints_2d[:n], joints_3d=s.joints_3d[:n],
                                       confidence=None if s.confidence is None else s.confidence[:n]))
    return out
