"""Reading and checking the VideoPose3D ``.npz`` files of one directory (the ``h36m`` source is ``h36m.py``).

``_Reader`` opens ``data_3d_h36m.npz`` and one ``data_2d_h36m_<keypoints>.npz`` with the safe loader,
checks every value it will use (structure, dtypes, shapes, NaN/inf, implausible 2D and 3D, metadata
types, camera lists) and collects every problem as one line naming the file and subject/action,
instead of stopping at the first: ``H36MSource.examine`` turns them into ``verify``'s list or
``load``'s error. Known quirks of the real files become notes (trims, skips, renames).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from liftbench.data.cameras import CAMERA_IDS, Camera, h36m_cameras, project, world_to_camera
from liftbench.data.checks import (
    UnsafeProblem,
    joints_3d_problem,
    keypoints_2d_problem,
    pose_array_problem,
    score_problem,
)
from liftbench.data.dataset import Sequence
from liftbench.data.safe.npz import load_npz
from liftbench.data.skeleton import H36M32_TO_17, NUM_JOINTS
from liftbench.errors import DataError, UnsafeFileError

FILE_3D = "data_3d_h36m.npz"
PREFIX_2D, SUFFIX_2D = "data_2d_h36m_", ".npz"
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


def _unreadable(path: Path, fix: str) -> str:
    """Why ``path`` cannot be opened as a file: missing, a dangling symbolic link, or not a regular file."""
    if path.is_symlink() and not path.exists():
        return (f"{path}: a symbolic link to {os.readlink(path)}, which does not exist (shared disk not "
                f"mounted?); mount it or {fix}")
    if path.exists() and not path.is_file():
        return f"{path}: not a regular file; {fix}"
    return f"{path}: file not found; {fix}"


def _camera_entries(cams: object) -> list | None:
    """The per-camera entries of one 2D take (a list of 4), or None if ``cams`` is not such a list."""
    sized = isinstance(cams, (list, tuple)) or (isinstance(cams, np.ndarray) and cams.ndim >= 1)
    return list(cams) if sized and len(cams) == len(CAMERA_IDS) else None


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.ndim}-d array of shape {value.shape}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)}"
    return f"a {type(value).__name__}"


def _resolution(subject: str, camera: int) -> tuple[int, int]:
    """(width, height) of a subject's camera; the largest H36M image for subjects without cameras."""
    cams = h36m_cameras()
    if subject in cams:
        return cams[subject][camera].resolution
    return max((c.resolution for subject_cams in cams.values() for c in subject_cams), key=lambda r: r[0] * r[1])


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
            if not self.problems and not any(self.world.values()):
                self.problems.append(f"{self.path_3d}: positions_3d holds no takes (subjects: "
                                     f"{', '.join(self.world) or 'none'}); {FIX_3D}")
        for subject in self.world:
            self.problems += [f"{self.path_3d}: {p}" for p in camera_problems(subject, h36m_cameras().get(subject))]

    @staticmethod
    def _open(path: Path, key: str, fix: str, problems: list[str]) -> dict | None:
        """All members of an npz whose ``key`` is a dict; problems appended (and None returned) if not."""
        try:
            content = load_npz(path)
        except UnsafeFileError as exc:
            problems.append(UnsafeProblem(exc))
            return None
        except DataError as exc:
            problems.append(str(exc) if path.is_file() else _unreadable(path, fix))
            return None
        except OSError as exc:  # e.g. permission denied: the user's file, one line
            problems.append(f"{path}: cannot be read ({exc.strerror or exc}); check its permissions")
            return None
        if key not in content:
            problems.append(f"{path}: key '{key}' missing (keys: {', '.join(sorted(content)) or 'none'}); {fix}")
            return None
        if not isinstance(content[key], dict):
            problems.append(f"{path}: '{key}' is {_describe(content[key])}, expected a dict "
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

    def _parse_3d(self, positions: dict) -> dict[str, dict[str, np.ndarray]]:
        out: dict[str, dict[str, np.ndarray]] = {}
        for key, actions in positions.items():
            subject = str(key)
            where = f"{self.path_3d}: {subject}"
            if not isinstance(actions, dict) or subject in out:
                problem = ("listed twice" if subject in out
                           else f"expected a dict {{action: array}}, got {_describe(actions)}")
                self.problems.append(f"{where}: {problem}; {FIX_3D}")
                continue
            out[subject] = takes = self._renamed(actions, self.path_3d, subject, self.problems, self.notes)
            for action, arr in list(takes.items()):
                label = f"{where} {action}"
                problem = (pose_array_problem(arr, label, (32, 17), 3, FIX_3D)
                           or joints_3d_problem(arr, label, f"positions_3d must be world metres; {FIX_3D}"))
                if problem:
                    self.problems.append(problem)
                    del takes[action]
        return out

    def _layout(self, content: dict, path: Path, problems: list[str], notes: list[str]) -> str | None:
        """'h36m' or 'mpii' from the file's metadata (or joint count if it has none)."""
        if "metadata" not in content:
            first = next((a for acts in content["positions_2d"].values() if isinstance(acts, dict)
                          for cams in acts.values() for a in (_camera_entries(cams) or ())
                          if isinstance(a, np.ndarray) and a.ndim == 3), None)
            joints = None if first is None else first.shape[1]
            layout = {17: "h36m", 16: "mpii"}.get(joints)
            if layout:
                notes.append(f"{path.name}: no 'metadata'; {joints} joints taken as {layout.upper()} order")
            else:
                problems.append(f"{path}: no 'metadata' and no (N, 16|17, 2) arrays to infer the joint order; {FIX_2D}")
            return layout
        meta = content["metadata"]
        if not isinstance(meta, dict):
            problems.append(f"{path}: 'metadata' is {_describe(meta)}, expected a dict with 'layout_name' and "
                            f"'num_joints'; {FIX_2D}")
            return None
        name, joints = meta.get("layout_name"), meta.get("num_joints")
        wrong = [f"'{key}' is {_describe(value)}, expected {kind}" for key, value, ok, kind in (
            ("layout_name", name, name is None or isinstance(name, str), "a string such as 'h36m'"),
            ("num_joints", joints, joints is None or (isinstance(joints, (int, np.integer))
                                                      and not isinstance(joints, bool)), "an integer"))
            if not ok]
        if wrong:
            problems.append(f"{path}: metadata {'; '.join(wrong)}; {FIX_2D}")
            return None
        joints = None if joints is None else int(joints)
        for layout, n in LAYOUT_JOINTS.items():
            if name in (None, layout) and joints in (None, n) and (name or joints):
                return layout
        problems.append(f"{path}: keypoint layout {name or '?'} with {joints} joints is not supported "
                        "(only H36M-17 and MPII-16, e.g. cpn_ft_h36m_dbb or sh_ft_h36m)")
        return None

    def _parse_2d(self, path: Path, pairing: _Pairing, fix_missing: str) -> dict[str, dict[str, list]] | None:
        content = self._open(path, "positions_2d", fix_missing, pairing.problems)
        if content is None:
            return None
        layout = self._layout(content, path, pairing.problems, pairing.notes)
        if layout is None:
            return None
        pairing.layout = layout
        out: dict[str, dict[str, list[np.ndarray | None]]] = {}
        for key, actions in content["positions_2d"].items():
            subject = str(key)
            where = f"{path}: {subject}"
            if not isinstance(actions, dict) or subject in out:
                problem = ("listed twice" if subject in out
                           else f"expected a dict {{action: [4 arrays]}}, got {_describe(actions)}")
                pairing.problems.append(f"{where}: {problem}; {FIX_2D}")
                continue
            out[subject] = takes = {}
            for action, cams in self._renamed(actions, path, subject, pairing.problems, pairing.notes).items():
                entries = _camera_entries(cams)
                if entries is None:
                    pairing.problems.append(f"{where} {action}: expected a list of {len(CAMERA_IDS)} camera arrays "
                                            f"(order {', '.join(CAMERA_IDS)}), got {_describe(cams)}; {FIX_2D}")
                    continue
                arrays: list[np.ndarray | None] = []
                for c, arr in enumerate(entries):
                    label = f"{where} {action} cam {c}"
                    empty = arr is None or (isinstance(arr, np.ndarray) and arr.size == 0)
                    # (N, J, 2) pixels, or (N, J, 3) with the detector's score per joint as a third channel
                    dims = 3 if isinstance(arr, np.ndarray) and arr.ndim == 3 and arr.shape[2] == 3 else 2
                    problem = None if empty else (
                        pose_array_problem(arr, label, (LAYOUT_JOINTS[layout],), dims, FIX_2D)
                        or keypoints_2d_problem(arr[..., :2], _resolution(subject, c), label, FIX_2D)
                        or (score_problem(arr[..., 2], label, FIX_2D) if dims == 3 else None))
                    if problem:
                        pairing.problems.append(problem)
                    arrays.append(None if empty or problem else arr)
                takes[action] = arrays
        return out

    def pair(self, keypoints: str, available: list[str]) -> _Pairing:
        """Check the 2D source ``keypoints`` against the 3D and plan the sequences to load.

        Only ``gt`` without any ``data_2d_h36m_gt.npz`` entry is projected from the 3D; a detector file
        that is missing, a dangling symbolic link or unreadable is a problem, never a silent substitute.
        """
        p = _Pairing()
        path = self.dir / f"{PREFIX_2D}{keypoints}{SUFFIX_2D}"
        if keypoints not in available:
            p.problems.append(f"{path}: keypoints '{keypoints}' not found; available in {self.dir}: "
                              f"{', '.join(available)} (pass one with --keypoints)")
            return p
        if keypoints == "gt" and not os.path.lexists(path):
            p.notes.append(f"2D keypoints 'gt': no {path.name}, so the camera-frame 3D is projected through "
                           "each camera's full distortion model")
        else:
            p.file_2d = path
            others = [k for k in available if k != keypoints]
            p.takes_2d = self._parse_2d(path, p, f"pass another --keypoints (available: {', '.join(others) or 'none'})")
            if p.takes_2d is None:
                return p
            if p.layout == "mpii":
                p.notes.append(f"{path.name}: 16 MPII-order joints mapped to H36M-17; Neck/Nose (not a model "
                               "input) set to the midpoint of Thorax and Head")
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
            if not p.plan and not p.problems and any(self.world.values()):
                p.problems.append(f"{path}: no take is in both {path.name} and {FILE_3D}; regenerate the 2D file "
                                  "from the same Human3.6M release")
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

    def sequences(self, p: _Pairing) -> tuple[list[Sequence], list[str]]:
        """Build the planned sequences (vectorised per take and camera), and the problems met doing so.

        Projected ``gt`` is checked like a file's 2D: a joint behind a camera or a projection no
        image could hold means the 3D is not a person inside the capture volume."""
        cams = h36m_cameras()
        out, problems = [], []
        for subject, action, c, n in p.plan:
            cam = cams[subject][c]
            world = np.asarray(self.world[subject][action][:n], dtype=np.float64)  # (n, 32|17, 3) m
            if world.shape[1] == 32:
                world = world[:, H36M32_TO_17]  # (n, 17, 3)
            joints = world_to_camera(world * 1000.0, cam)  # (n, 17, 3) camera mm
            if p.takes_2d is None:
                where = f"{self.path_3d}: {subject} {action} cam {c} (2D 'gt' projected from the 3D)"
                behind = np.flatnonzero((joints[..., 2] <= 0).any(axis=1))  # frames with a joint behind the camera
                if len(behind):
                    problems.append(f"{where}: a joint is behind the camera at frame {behind[0]}, so this is not a "
                                    f"person in the capture volume; {FIX_3D}")
                    continue
                keypoints = project(joints, cam)  # (n, 17, 2) px
                problem = keypoints_2d_problem(keypoints, cam.resolution, where, FIX_3D)
                if problem:
                    problems.append(problem)
                    continue
            confidence = None
            if p.takes_2d is not None:
                arr = p.takes_2d[subject][action][c][:n]
                keypoints = to_h36m17(arr[..., :2], p.layout)
                if arr.shape[2] == 3:  # the detector's scores travel with the keypoints (MotionBERT's third channel)
                    confidence = to_h36m17(np.repeat(arr[..., 2:], 2, axis=2), p.layout)[..., 0].astype(np.float32)
            out.append(Sequence(subject, action, c, keypoints.astype(np.float32), joints.astype(np.float32),
                                confidence=confidence))
        return out, problems


def to_h36m17(keypoints: np.ndarray, layout: str) -> np.ndarray:
    """(N, J, 2) in ``layout`` order -> (N, 17, 2) in H36M-17 order (Neck/Nose filled for MPII)."""
    if layout == "h36m":
        return np.asarray(keypoints, dtype=np.float64)
    out = np.empty((len(keypoints), NUM_JOINTS, 2))  # (N, 17, 2)
    out[:, H36M_WITHOUT_NECK] = keypoints[:, SH_TO_H36M]
    out[:, NECK] = 0.5 * (out[:, THORAX] + out[:, HEAD])  # MPII has no nose; not a model input
    return out
