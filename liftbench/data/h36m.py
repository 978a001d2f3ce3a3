"""``h36m``: Human3.6M from the VideoPose3D ``.npz`` files in a user-supplied directory.

Files (VideoPose3D ``DATASETS.md`` layout; read with ``safe_npz.load_npz``, never ``allow_pickle``):

* ``data_3d_h36m.npz``: ``positions_3d`` = {subject: {action: (N, 32, 3) world metres}}; (N, 17, 3)
  in H36M-17 order is accepted too. We keep the standard 17 joints, convert to mm and move each
  take into the frame of each of its 4 cameras with the published extrinsics: X_cam = R (X - T).
* ``data_2d_h36m_<keypoints>.npz``: ``positions_2d`` = {subject: {action: [4 x (N, J, 2) px]}} and
  ``metadata``. J = 17 (H36M order, used as is) or 16 (MPII order, the Stacked-Hourglass files,
  permuted to H36M-17). ``--keypoints gt`` without a gt file projects the camera-frame 3D through
  the full distortion model instead.

Real files disagree in small ways; each is handled and written to ``PoseDataset.notes``: 2D/3D
lengths differing by a few frames (trimmed to the shorter), takes or cameras present on one side
only (skipped), ``TakingPhoto``/``WalkingDog`` spellings (renamed to ``Photo``/``WalkDog``).
Anything else wrong is a ``DataError`` naming the file and the fix; ``verify`` lists every problem.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from liftbench.data.cameras import CAMERA_IDS, Camera, h36m_cameras, project, world_to_camera
from liftbench.data.dataset import PoseDataset, Sequence
from liftbench.data.safe_npz import load_npz
from liftbench.data.skeleton import H36M32_TO_17, NUM_JOINTS
from liftbench.data.source import DATASETS, DatasetSource
from liftbench.errors import DataError, UnsafeFileError

FILE_3D = "data_3d_h36m.npz"
PREFIX_2D, SUFFIX_2D = "data_2d_h36m_", ".npz"
FPS = 50.0
TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS = ("S9", "S11")
# 2D and 3D of one take may differ by a few frames (VideoPose3D run.py trims 2D to the mocap
# length); beyond this the arrays are probably not the same take, so it is an error.
MAX_TRIM_FRAMES, MAX_TRIM_FRACTION = 10, 0.05
# MPII-16 index of each H36M-17 joint except Neck/Nose (index 9), as in Martinez/Hossain.
SH_TO_H36M = (6, 2, 1, 0, 3, 4, 5, 7, 8, 9, 13, 14, 15, 12, 11, 10)
H36M_WITHOUT_NECK = tuple(j for j in range(NUM_JOINTS) if j != 9)
THORAX, NECK, HEAD = 8, 9, 10
ACTION_RENAMES = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog"}  # original S1 spellings
LAYOUT_JOINTS = {"h36m": 17, "mpii": 16}
FIX_3D = "regenerate it with VideoPose3D's data/prepare_data_h36m.py"
FIX_2D = "regenerate it with VideoPose3D's data/prepare_data_2d_h36m_*.py"


def normalise_action(name: str) -> str:
    """'TakingPhoto 1' -> 'Photo 1', 'WalkingDog' -> 'WalkDog'; the take number is kept."""
    first, sep, rest = name.partition(" ")
    return ACTION_RENAMES.get(first, first) + sep + rest


def camera_problems(subject: str, cams: tuple[Camera, ...] | None) -> list[str]:
    """Why a subject's camera parameters are unusable (empty list: they are fine)."""
    if cams is None:
        return [f"subject {subject} has no camera parameters in liftbench/data/h36m_cameras.json "
                f"(known: {', '.join(sorted(h36m_cameras()))}); drop the subject or add its cameras"]
    if tuple(c.id for c in cams) != CAMERA_IDS:
        return [f"subject {subject}: cameras {[c.id for c in cams]}, expected {list(CAMERA_IDS)}"]
    out = []
    for c in cams:
        values = np.concatenate([c.R.ravel(), c.T, c.f, c.c, c.k, c.p])
        orthonormal = np.abs(c.R @ c.R.T - np.eye(3)).max() < 1e-5 and np.linalg.det(c.R) > 0
        if not np.isfinite(values).all() or not orthonormal or np.any(c.f <= 0):
            out.append(f"subject {subject} camera {c.id}: R is not a rotation or parameters are not finite")
    return out


@dataclass
class _Pairing:
    """The result of checking one keypoints source against the 3D file."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plan: list[tuple[str, str, int, int]] = field(default_factory=list)  # (subject, action, camera, frames)
    # subject -> action -> per camera (N, J, 2) or None; None as a whole: project the 3D (gt, no file)
    takes_2d: dict[str, dict[str, list[np.ndarray | None]]] | None = None
    layout: str = "h36m"
    file_2d: Path | None = None


class _Reader:
    """Reads and checks the files of one directory, collecting every problem instead of stopping."""

    def __init__(self, data_dir: Path):
        self.dir = data_dir
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.world: dict[str, dict[str, np.ndarray]] = {}  # subject -> action -> (N, 32|17, 3) metres
        self.path_3d = data_dir / FILE_3D
        content = self._open(self.path_3d, "positions_3d", FIX_3D, self.problems)
        if content is not None:
            self.world = self._parse_3d(content["positions_3d"])
        for subject in self.world:
            self.problems += [f"{self.path_3d}: {p}" for p in camera_problems(subject, h36m_cameras().get(subject))]

    @staticmethod
    def _open(path: Path, key: str, fix: str, problems: list[str]) -> dict | None:
        """All members of an npz whose ``key`` is a dict; problems appended (and None returned) if not."""
        try:
            content = load_npz(path)
        except UnsafeFileError as exc:
            problems.append(_Unsafe(exc))
            return None
        except DataError as exc:
            problems.append(str(exc) if path.exists() else f"{path}: file not found; {fix}")
            return None
        if key not in content:
            problems.append(f"{path}: key '{key}' missing (keys: {', '.join(sorted(content)) or 'none'}); {fix}")
            return None
        if not isinstance(content[key], dict):
            problems.append(f"{path}: '{key}' is a {type(content[key]).__name__}, expected a dict "
                            f"{{subject: {{action: array}}}}; {fix}")
            return None
        return content

    @staticmethod
    def _renamed(actions: dict, path: Path, subject: str, problems: list[str], notes: list[str]) -> dict:
        """Actions with canonical names; two spellings of one take is a problem."""
        out: dict = {}
        original: dict[str, str] = {}
        for name, value in actions.items():
            canonical = normalise_action(str(name))
            if canonical in out:
                problems.append(f"{path}: {subject}: actions '{original[canonical]}' and '{name}' are both "
                                f"'{canonical}'; keep one")
                continue
            if canonical != name:
                notes.append(f"{subject}: action '{name}' in {path.name} renamed '{canonical}'")
            out[canonical], original[canonical] = value, str(name)
        return out

    @staticmethod
    def _check_array(arr: object, where: str, joints: tuple[int, ...], dims: int, fix: str) -> str | None:
        """The problem with one pose array (None: fine). Shape (N, J, dims), float, finite."""
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
        return None

    def _parse_3d(self, positions: dict) -> dict[str, dict[str, np.ndarray]]:
        out = {}
        for subject, actions in positions.items():
            where = f"{self.path_3d}: {subject}"
            if not isinstance(actions, dict):
                self.problems.append(f"{where}: expected a dict {{action: array}}, got "
                                     f"{type(actions).__name__}; {FIX_3D}")
                continue
            out[str(subject)] = takes = self._renamed(actions, self.path_3d, subject, self.problems, self.notes)
            for action, arr in list(takes.items()):
                problem = self._check_array(arr, f"{where} {action}", (32, 17), 3, FIX_3D)
                largest = np.abs(arr).max() if problem is None else 0.0
                if largest > 50.0:  # the capture room is a few metres wide
                    problem = (f"{where} {action}: coordinates up to {largest:.0f}, so not metres "
                               f"(millimetre data?); positions_3d must be world metres as {FIX_3D} writes it")
                if problem:
                    self.problems.append(problem)
                    del takes[action]
        return out

    def _layout(self, content: dict, path: Path, problems: list[str], notes: list[str]) -> str | None:
        """'h36m' or 'mpii' from the file's metadata (or joint count if it has none)."""
        meta = content.get("metadata")
        if not isinstance(meta, dict):
            first = next((a for acts in content["positions_2d"].values() if isinstance(acts, dict)
                          for cams in acts.values() if isinstance(cams, (list, tuple, np.ndarray))
                          for a in cams if isinstance(a, np.ndarray) and a.ndim == 3), None)
            joints = None if first is None else first.shape[1]
            layout = {17: "h36m", 16: "mpii"}.get(joints)
            if layout:
                notes.append(f"{path.name}: no 'metadata'; {joints} joints taken as {layout.upper()} order")
            else:
                problems.append(f"{path}: no 'metadata' and no (N, 16|17, 2) arrays to infer the joint order; {FIX_2D}")
            return layout
        name, joints = meta.get("layout_name"), meta.get("num_joints")
        for layout, n in LAYOUT_JOINTS.items():
            if name in (None, layout) and joints in (None, n) and (name or joints):
                return layout
        problems.append(f"{path}: keypoint layout {name or '?'} with {joints} joints is not supported "
                        "(only H36M-17 and MPII-16, e.g. cpn_ft_h36m_dbb or sh_ft_h36m)")
        return None

    def _parse_2d(self, path: Path, pairing: _Pairing) -> dict[str, dict[str, list[np.ndarray | None]]] | None:
        content = self._open(path, "positions_2d", FIX_2D, pairing.problems)
        if content is None:
            return None
        layout = self._layout(content, path, pairing.problems, pairing.notes)
        if layout is None:
            return None
        pairing.layout = layout
        out: dict[str, dict[str, list[np.ndarray | None]]] = {}
        for subject, actions in content["positions_2d"].items():
            where = f"{path}: {subject}"
            if not isinstance(actions, dict):
                pairing.problems.append(f"{where}: expected a dict {{action: [4 arrays]}}; {FIX_2D}")
                continue
            out[str(subject)] = takes = {}
            for action, cams in self._renamed(actions, path, subject, pairing.problems, pairing.notes).items():
                if not isinstance(cams, (list, tuple, np.ndarray)) or len(cams) != len(CAMERA_IDS):
                    got = len(cams) if isinstance(cams, (list, tuple, np.ndarray)) else type(cams).__name__
                    pairing.problems.append(f"{where} {action}: expected a list of {len(CAMERA_IDS)} camera arrays "
                                            f"(order {', '.join(CAMERA_IDS)}), got {got}; {FIX_2D}")
                    continue
                arrays: list[np.ndarray | None] = []
                for c, arr in enumerate(cams):
                    empty = arr is None or (isinstance(arr, np.ndarray) and arr.size == 0)
                    problem = None if empty else self._check_array(
                        arr, f"{where} {action} cam {c}", (LAYOUT_JOINTS[layout],), 2, FIX_2D)
                    if problem:
                        pairing.problems.append(problem)
                    arrays.append(None if empty or problem else arr)
                takes[action] = arrays
        return out

    def pair(self, keypoints: str, available: list[str]) -> _Pairing:
        """Check the 2D source ``keypoints`` against the 3D and plan the sequences to load."""
        p = _Pairing()
        path = self.dir / f"{PREFIX_2D}{keypoints}{SUFFIX_2D}"
        if keypoints not in available:
            p.problems.append(f"{path}: keypoints '{keypoints}' not found; available in {self.dir}: "
                              f"{', '.join(available)} (pass one with --keypoints)")
            return p
        if path.exists():
            p.file_2d = path
            p.takes_2d = self._parse_2d(path, p)
            if p.takes_2d is None:
                return p
            if p.layout == "mpii":
                p.notes.append(f"{path.name}: 16 MPII-order joints mapped to H36M-17; Neck/Nose (not a model "
                               "input) set to the midpoint of Thorax and Head")
        else:
            p.notes.append(f"2D keypoints 'gt': no {path.name}, so the camera-frame 3D is projected through "
                           "each camera's full distortion model")
        cams = h36m_cameras()
        for subject in sorted(self.world):
            if subject not in cams:
                continue  # already a camera problem
            if p.takes_2d is not None and subject not in p.takes_2d:
                p.notes.append(f"{subject}: in {FILE_3D} but not in {path.name}: skipped")
                continue
            for action in sorted(self.world[subject]):
                self._pair_take(p, subject, action, path.name)
        if p.takes_2d is not None:
            for subject, takes in sorted(p.takes_2d.items()):
                if subject not in self.world:
                    p.notes.append(f"{subject}: in {path.name} but not in {FILE_3D} (no 3D): skipped")
                    continue
                for action in sorted(set(takes) - set(self.world[subject])):
                    p.notes.append(f"{subject} {action}: in {path.name} but not in {FILE_3D}: skipped")
        return p

    def _pair_take(self, p: _Pairing, subject: str, action: str, name_2d: str) -> None:
        n3 = len(self.world[subject][action])
        if p.takes_2d is None:  # projected gt: all cameras, same length
            p.plan += [(subject, action, c, n3) for c in range(len(CAMERA_IDS))]
            return
        take = p.takes_2d[subject].get(action)
        if take is None:
            p.notes.append(f"{subject} {action}: in {FILE_3D} but not in {name_2d}: skipped")
            return
        for c, arr in enumerate(take):
            label = f"{subject} {action} cam {c} ({CAMERA_IDS[c]})"
            if arr is None:
                p.notes.append(f"{label}: no 2D keypoints in {name_2d}: this camera is skipped")
                continue
            n2 = len(arr)
            diff = abs(n2 - n3)
            if diff > MAX_TRIM_FRAMES or diff > MAX_TRIM_FRACTION * max(n2, n3):
                p.problems.append(f"{self.dir / name_2d}: {label}: 2D has {n2} frames but {FILE_3D} has {n3}, "
                                  f"more than {MAX_TRIM_FRAMES} frames or {MAX_TRIM_FRACTION:.0%} apart (not the same "
                                  "take?); regenerate the 2D file from the same Human3.6M release")
                continue
            if diff:
                longer, shorter = ("2D", "3D") if n2 > n3 else ("3D", "2D")
                p.notes.append(f"{label}: {longer} has {diff} more frame(s) than {shorter}, trimmed to "
                               f"{shorter} length ({min(n2, n3)})")
            p.plan.append((subject, action, c, min(n2, n3)))

    def sequences(self, p: _Pairing) -> list[Sequence]:
        """Build the planned sequences (vectorised per take and camera)."""
        cams = h36m_cameras()
        out = []
        for subject, action, c, n in p.plan:
            world = np.asarray(self.world[subject][action][:n], dtype=np.float64)  # (n, 32|17, 3) m
            if world.shape[1] == 32:
                world = world[:, H36M32_TO_17]  # (n, 17, 3)
            joints = world_to_camera(world * 1000.0, cams[subject][c])  # (n, 17, 3) camera mm
            if p.takes_2d is None:
                keypoints = project(joints, cams[subject][c])  # (n, 17, 2) px
            else:
                keypoints = to_h36m17(p.takes_2d[subject][action][c][:n], p.layout)
            out.append(Sequence(subject, action, c, keypoints.astype(np.float32), joints.astype(np.float32)))
        return out


def to_h36m17(keypoints: np.ndarray, layout: str) -> np.ndarray:
    """(N, J, 2) in ``layout`` order -> (N, 17, 2) in H36M-17 order (Neck/Nose filled for MPII)."""
    if layout == "h36m":
        return np.asarray(keypoints, dtype=np.float64)
    out = np.empty((len(keypoints), NUM_JOINTS, 2))  # (N, 17, 2)
    out[:, H36M_WITHOUT_NECK] = keypoints[:, SH_TO_H36M]
    out[:, NECK] = 0.5 * (out[:, THORAX] + out[:, HEAD])  # MPII has no nose; not a model input
    return out


def _default_split(subjects: Iterable[str], path: Path, explicit_test: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """S1,5,6,7,8 / S9,11 restricted to the subjects present; no test subject is an error unless overridden."""
    present = set(subjects)
    test = tuple(s for s in TEST_SUBJECTS if s in present)
    if not test and not explicit_test:
        raise DataError(f"{path}: none of the default test subjects {', '.join(TEST_SUBJECTS)} is present "
                        f"(subjects: {', '.join(sorted(present)) or 'none'}); pass explicit splits with "
                        "train_subjects and test_subjects")
    return tuple(s for s in TRAIN_SUBJECTS if s in present), test


class _Unsafe(str):
    """A problem line that came from an ``UnsafeFileError`` (re-raised as that class by ``load``)."""


def _raise_first(problems: list[str], data_dir: Path, keypoints: str) -> None:
    """Raise the first problem (an unsafe file first of all), mentioning how many more there are."""
    if problems:
        first = next((p for p in problems if isinstance(p, _Unsafe)), problems[0])
        more = (f" (+{len(problems) - 1} more problem(s); list them with: liftbench data verify h36m "
                f"--data-dir {data_dir} --keypoints {keypoints})") if len(problems) > 1 else ""
        raise (UnsafeFileError if isinstance(first, _Unsafe) else DataError)(first + more)


@DATASETS.register("h36m")
class H36MSource(DatasetSource):
    name = "h36m"
    description = "Human3.6M from the VideoPose3D .npz files in --data-dir (S1-S11, 4 cameras, 50 Hz)"
    default_keypoints = "gt"

    @staticmethod
    def _dir(data_dir: Path | None) -> Path:
        if data_dir is None:
            raise DataError(f"h36m needs --data-dir DIR: a directory with {FILE_3D} and "
                            f"{PREFIX_2D}<keypoints>{SUFFIX_2D} (VideoPose3D layout, see its DATASETS.md)")
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise DataError(f"{path}: not a directory; pass --data-dir DIR with {FILE_3D} and "
                            f"{PREFIX_2D}<keypoints>{SUFFIX_2D}")
        return path

    def location(self, data_dir: Path | None) -> str:
        return str(Path(data_dir).expanduser()) if data_dir else "(not set: pass --data-dir DIR)"

    def available_keypoints(self, data_dir: Path | None) -> list[str]:
        """'gt' (a gt file, or projection of the 3D) plus every data_2d_h36m_<name>.npz in the directory."""
        if data_dir is None or not Path(data_dir).expanduser().is_dir():
            return ["gt"]
        found = sorted(p.name[len(PREFIX_2D):-len(SUFFIX_2D)]
                       for p in Path(data_dir).expanduser().glob(f"{PREFIX_2D}*{SUFFIX_2D}"))
        return ["gt"] + [k for k in found if k and k != "gt"]

    def verify(self, data_dir: Path | None, keypoints: str) -> list[str]:
        try:
            path = self._dir(data_dir)
        except DataError as exc:
            return [str(exc)]
        reader = _Reader(path)
        return reader.problems + reader.pair(keypoints, self.available_keypoints(path)).problems

    def prepare(self, data_dir: Path | None, force: bool = False) -> str:
        """Nothing to build (``force`` has no effect): check the 3D file and every 2D source present."""
        path = self._dir(data_dir)
        reader = _Reader(path)
        available = self.available_keypoints(path)
        problems = list(reader.problems)
        for keypoints in available:
            problems += reader.pair(keypoints, available).problems
        _raise_first(problems, path, "<name>")
        frames = sum(len(a) for takes in reader.world.values() for a in takes.values())
        n_takes = sum(len(takes) for takes in reader.world.values())
        return (f"h36m: {path} ok: {len(reader.world)} subjects, {n_takes} takes, {frames:,} mocap frames; "
                f"keypoints checked: {', '.join(available)}")

    def load(self, data_dir: Path | None, keypoints: str, *, train_subjects: Iterable[str] | None = None,
             test_subjects: Iterable[str] | None = None) -> PoseDataset:
        """Load every usable sequence; explicit subject splits override the default S1,5,6,7,8 / S9,11."""
        path = self._dir(data_dir)
        reader = _Reader(path)
        pairing = reader.pair(keypoints, self.available_keypoints(path))
        _raise_first(reader.problems + pairing.problems, path, keypoints)
        sequences = reader.sequences(pairing)
        subjects = sorted({s.subject for s in sequences})
        train, test = _default_split(subjects, path / FILE_3D, explicit_test=bool(test_subjects))
        files = [path / FILE_3D] + ([pairing.file_2d] if pairing.file_2d else [])
        cams = h36m_cameras()
        dataset = PoseDataset(name="h36m", keypoints=keypoints, fps=FPS, sequences=sequences,
                              cameras={s: cams[s] for s in subjects}, train_subjects=train, test_subjects=test,
                              notes=reader.notes + pairing.notes,
                              source={"path": str(path), "layout_2d": pairing.layout,
                                      "files": {f.name: f.stat().st_size for f in files}})
        if train_subjects or test_subjects:  # validated (known, disjoint) by the one place that does it
            dataset = dataset.with_split(train_subjects or None, test_subjects or None)
        unused = [s for s in subjects if s not in dataset.train_subjects + dataset.test_subjects]
        if unused:
            dataset.notes.append(f"subject(s) {', '.join(unused)} loaded but in neither split")
        return dataset
