"""``mocap-mini``: the embedded default dataset, built from real motion capture shipped with pybullet.

The build (forward kinematics, resampling, placement, projection) is ``mocap_build.py``. This module is
the cache: one plain ``.npz`` plus ``manifest.json`` under ``cache_home()/mocap-mini/v1``, written
atomically with the manifest as the commit marker, and ``MocapMiniSource.examine``, the one check
behind ``load`` and ``verify`` (manifest entries, hashes, stale sources, shapes, labels, NaN/inf,
2D no camera produces, implausible 3D, bone lengths, clip and subject splits).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from liftbench._files import file_sha256
from liftbench.data.cameras import h36m_cameras
from liftbench.data.checks import (
    joints_3d_problem,
    keypoints_2d_problem,
    raise_first,
    split_problems,
    user_input_errors,
)
from liftbench.data.dataset import PoseDataset, Sequence
from liftbench.data.mocap_build import (  # noqa: F401  (re-exported: the builder's public names)
    BUILDER_VERSION,
    CLIPS,
    FPS,
    KEYPOINTS,
    SUBJECTS,
    TEST_SUBJECTS,
    TRAIN_SUBJECTS,
    URDF_FILE,
    Body,
    PseudoSubject,
    build_arrays,
    forward_kinematics,
    lowest_point,
    parse_urdf,
    place,
    read_clip,
    resample,
    source_files,
    source_package,
    source_root,
    subject_bones,
)
from liftbench.data.skeleton import NUM_JOINTS, bone_lengths
from liftbench.data.source import DATASETS, DatasetSource, cache_home
from liftbench.errors import DataError, MissingExtraError, one_line


def _write_atomic(path: Path, write) -> None:
    """Write through a temp file in the same directory, fsync, then ``os.replace``: never half-written."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a cache is readable like any other file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# Manifest entries ``load`` reads, with their types: a manifest with the right npz hash but a missing
# or mistyped entry is a corrupt cache (rebuilt by ``prepare``), never a KeyError.
MANIFEST_SCHEMA: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("npz_sha256", str), ("builder_version", int), ("source", dict), ("source.files", dict), ("build", dict),
    ("build.subjects", dict), ("build.train_subjects", list), ("build.test_subjects", list), ("build.clips", list),
    ("counts", dict), ("counts.sequences", int), ("counts.frames", int), ("in_view", dict),
    ("in_view.mean", (int, float)), ("in_view.worst", str), ("in_view.worst_fraction", (int, float)),
)
ARRAY_KINDS = {"keypoints_2d": "f", "joints_3d": "f", "offsets": "iu", "subject": "U", "action": "U", "camera": "iu"}


def manifest_problem(manifest: object) -> str | None:
    """The first entry of ``MANIFEST_SCHEMA`` (or of a subject / clip record) that is missing or mistyped."""
    for dotted, kind in MANIFEST_SCHEMA:
        value = manifest
        for key in dotted.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"entry '{dotted}' is missing or not a {getattr(kind, '__name__', 'number')}"
    cams = h36m_cameras()
    for name, subject in manifest["build"]["subjects"].items():
        if not isinstance(subject, dict) or subject.get("camera_subject") not in cams:
            return f"entry 'build.subjects.{name}' has no known 'camera_subject'"
    for clip in manifest["build"]["clips"]:
        if not (isinstance(clip, dict) and isinstance(clip.get("action"), str)
                and clip.get("split") in ("train", "test")):
            return "an entry of 'build.clips' lacks a string 'action' or a 'split' of train/test"
    for key in ("train_subjects", "test_subjects"):
        if not all(isinstance(s, str) for s in manifest["build"][key]):
            return f"entry 'build.{key}' is not a list of subject names"
    return None


@DATASETS.register("mocap-mini")
class MocapMiniSource(DatasetSource):
    name = "mocap-mini"
    description = "embedded default: real mocap clips from pybullet (DeepMimic), 6 pseudo-subjects, H36M cameras"
    default_keypoints = "gt"
    NPZ, MANIFEST = "mocap-mini.npz", "manifest.json"

    def location(self, data_dir: Path | None) -> str:
        return str(self._dir(data_dir))

    def available_keypoints(self, data_dir: Path | None) -> list[str]:
        return list(KEYPOINTS)

    def _dir(self, data_dir: Path | None) -> Path:
        return cache_home(data_dir) / "mocap-mini" / f"v{BUILDER_VERSION}"

    def _fix(self, data_dir: Path | None, force: bool = True) -> str:
        return ("liftbench data prepare mocap-mini" + (" --force" if force else "")
                + (f" --data-dir {data_dir}" if data_dir else ""))

    @staticmethod
    def _writable() -> contextlib.AbstractContextManager:
        return user_input_errors("the mocap-mini cache must be a directory you can write: pass --data-dir DIR "
                                 "or set LIFTBENCH_DATA")

    def _check_keypoints(self, keypoints: str) -> None:
        if keypoints not in KEYPOINTS:
            raise DataError(f"keypoints '{keypoints}' is not available for mocap-mini; valid value: gt "
                            "(ground-truth 2D projections).")

    def _build(self, data_dir: Path | None) -> tuple[dict, float]:
        start = time.perf_counter()
        arrays, manifest = build_arrays()
        out = self._dir(data_dir)
        with self._writable():
            out.mkdir(parents=True, exist_ok=True)
            # The manifest is the commit marker: drop it first, swap in the npz, then write the manifest
            # (with the npz hash). A crash anywhere leaves either no manifest (rebuilt on next use) or a
            # manifest whose hash matches the npz next to it.
            (out / self.MANIFEST).unlink(missing_ok=True)
            _write_atomic(out / self.NPZ, lambda f: np.savez(f, **arrays))
            manifest["npz_sha256"] = file_sha256(out / self.NPZ)
            _write_atomic(out / self.MANIFEST, lambda f: f.write(json.dumps(manifest, indent=2).encode()))
        return manifest, time.perf_counter() - start

    def _read(self, data_dir: Path | None) -> tuple[dict, dict[str, np.ndarray]]:
        """The cached manifest and arrays; any corruption is a ``DataError`` naming the fix."""
        out = self._dir(data_dir)
        try:
            manifest = json.loads((out / self.MANIFEST).read_text())
            problem = manifest_problem(manifest)
            if problem:
                raise ValueError(f"{self.MANIFEST}: {problem}")
            if file_sha256(out / self.NPZ) != manifest["npz_sha256"]:
                raise ValueError(f"{self.NPZ} does not match the sha256 in {self.MANIFEST}")
            with np.load(out / self.NPZ, allow_pickle=False) as z:
                arrays = {k: z[k] for k in ARRAY_KINDS}
        except Exception as exc:  # noqa: BLE001 - OSError, JSON, zip, KeyError, pickle refusal...
            raise DataError(f"mocap-mini cache at {out} is corrupt or unreadable ({one_line(exc)}); rebuild it "
                            f"with: {self._fix(data_dir)}") from exc
        return manifest, arrays

    def prepare(self, data_dir: Path | None = None, force: bool = False) -> str:
        with self._writable():
            if not force and (self._dir(data_dir) / self.MANIFEST).exists():
                try:
                    manifest, arrays = self._read(data_dir)
                    if not self._cache_problems(manifest, arrays, data_dir):
                        c = manifest["counts"]
                        return (f"mocap-mini: cache up to date at {self._dir(data_dir)} ({c['sequences']} sequences, "
                                f"{c['frames']:,} frames)")
                except DataError:
                    pass  # corrupt or stale: rebuild below
            manifest, seconds = self._build(data_dir)
        c = manifest["counts"]
        return (f"mocap-mini: built {self._dir(data_dir)} ({c['sequences']} sequences, {c['frames']:,} frames: "
                f"train {c['frames_per_split']['train']:,}, test {c['frames_per_split']['test']:,}) in {seconds:.1f} s")

    def ensure(self, data_dir: Path | None) -> None:
        """Build the cache on first use (a missing manifest means never built or interrupted)."""
        with self._writable():
            if not (self._dir(data_dir) / self.MANIFEST).exists():
                self._build(data_dir)

    def examine(self, data_dir: Path | None, keypoints: str, *, train_subjects: Iterable[str] = (),
                test_subjects: Iterable[str] = ()) -> tuple[list[str], PoseDataset | None]:
        """The one check behind ``load`` and ``verify``: (every problem, the dataset if there are none)."""
        self._check_keypoints(keypoints)
        try:
            with self._writable():
                out = self._dir(data_dir)
                if not (out / self.MANIFEST).exists():
                    return [f"mocap-mini cache not built at {out} (training builds it on first use); build it now "
                            f"with: {self._fix(data_dir, force=False)}"], None
            manifest, arrays = self._read(data_dir)
        except DataError as exc:
            return [str(exc)], None
        problems = self._cache_problems(manifest, arrays, data_dir)
        if problems:
            return problems, None
        build = manifest["build"]
        split, train, test = split_problems("mocap-mini", str(out / self.NPZ), set(arrays["subject"].tolist()),
                                            build["train_subjects"], build["test_subjects"],
                                            tuple(train_subjects) or None, tuple(test_subjects) or None)
        if split:
            return split, None
        return [], self._dataset(manifest, arrays, data_dir, train, test)

    def verify(self, data_dir: Path | None, keypoints: str, *, train_subjects: Iterable[str] = (),
               test_subjects: Iterable[str] = ()) -> list[str]:
        return self.examine(data_dir, keypoints, train_subjects=train_subjects, test_subjects=test_subjects)[0]

    def load(self, data_dir: Path | None, keypoints: str, *, train_subjects: Iterable[str] | None = None,
             test_subjects: Iterable[str] | None = None) -> PoseDataset:
        self._check_keypoints(keypoints)
        self.ensure(data_dir)
        problems, dataset = self.examine(data_dir, keypoints, train_subjects=train_subjects or (),
                                         test_subjects=test_subjects or ())
        raise_first(problems, "liftbench data verify mocap-mini" + (f" --data-dir {data_dir}" if data_dir else ""))
        assert dataset is not None  # no problems means a dataset
        return dataset

    def _dataset(self, manifest: dict, a: dict[str, np.ndarray], data_dir: Path | None,
                 train: tuple[str, ...], test: tuple[str, ...]) -> PoseDataset:
        build = manifest["build"]
        cams = h36m_cameras()
        cameras = {n: cams[s["camera_subject"]] for n, s in build["subjects"].items()}
        off = a["offsets"]
        sequences = [Sequence(str(a["subject"][i]), str(a["action"][i]), int(a["camera"][i]),
                              a["keypoints_2d"][off[i]:off[i + 1]], a["joints_3d"][off[i]:off[i + 1]])
                     for i in range(len(off) - 1)]
        test_clips = [c["action"] for c in build["clips"] if c["split"] == "test"]
        view = manifest["in_view"]
        notes = [
            "One captured performer (DeepMimic humanoid, CMU/SFU mocap) rescaled into 6 pseudo-subjects "
            "towards Human3.6M bone lengths; shape variation is bone length only.",
            f"Clips resampled from their native 16-60 Hz to {FPS:g} Hz (slerp); knees and elbows are 1-DoF hinges.",
            "Spine/Thorax are the chest/neck joints (approximate); Neck/Nose and Head are virtual points on the neck.",
            f"Each clip is in one split; test clips (never trained on): {', '.join(test_clips)}.",
            "All 17 joints are inside all 4 images in every frame." if view["worst_fraction"] == 1 else
            f"All 17 joints inside the image in {view['mean']:.1%} of frames (worst take|camera: "
            f"{view['worst']} at {view['worst_fraction']:.1%}).",
        ]
        return PoseDataset(name="mocap-mini", keypoints="gt", fps=FPS, sequences=sequences, cameras=cameras,
                           train_subjects=train, test_subjects=test, notes=notes,
                           source={"path": str(self._dir(data_dir)), **manifest})

    def _source_problems(self, manifest: dict) -> list[str]:
        """Differences between the files the cache was built from and the installed ones."""
        try:
            files = source_files()
        except MissingExtraError:
            return []  # nothing installed to compare with; the cache itself is self-consistent
        except DataError as exc:
            return [str(exc)]
        problems = [f"source {k} changed since the cache was built (sha256 differs)"
                    for k, p in files.items() if manifest["source"]["files"].get(k) != file_sha256(p)]
        if manifest.get("builder_version") != BUILDER_VERSION:
            problems.append(f"cache built by builder v{manifest.get('builder_version')}, this is v{BUILDER_VERSION}")
        return problems

    def _cache_problems(self, manifest: dict, a: dict[str, np.ndarray], data_dir: Path | None) -> list[str]:
        """Everything wrong with a cache whose hashes match: stale sources, shapes, labels, values, splits."""
        where = str(self._dir(data_dir) / self.NPZ)
        fix = f"; rebuild with: {self._fix(data_dir)}"
        problems = [p + fix for p in self._source_problems(manifest)]
        wrong = [k for k, kinds in ARRAY_KINDS.items() if a[k].dtype.kind not in kinds]
        kp, j3, off = a["keypoints_2d"], a["joints_3d"], a["offsets"]
        if wrong or kp.shape[1:] != (NUM_JOINTS, 2) or j3.shape[1:] != (NUM_JOINTS, 3) or len(kp) != len(j3) \
                or off.ndim != 1 or len(off) < 2:
            problems.append(f"{where}: array dtypes/shapes {[f'{k} {a[k].dtype}{a[k].shape}' for k in ARRAY_KINDS]}, "
                            f"expected float (F, 17, 2) / (F, 17, 3), integer offsets and camera, string labels{fix}")
            return problems
        n_seq = len(off) - 1
        subjects = manifest["build"]["subjects"]
        if off[0] != 0 or off[-1] != len(kp) or np.any(np.diff(off) <= 0) or \
                not a["subject"].shape == a["action"].shape == a["camera"].shape == (n_seq,) or \
                not set(a["subject"].tolist()) <= set(subjects) or np.any((a["camera"] < 0) | (a["camera"] > 3)):
            problems.append(f"{where}: sequence offsets/labels inconsistent with {len(kp)} frames and the manifest's "
                            f"subjects{fix}")
            return problems
        if n_seq != manifest["counts"]["sequences"] or len(kp) != manifest["counts"]["frames"]:
            problems.append(f"{where}: {n_seq} sequences / {len(kp)} frames, manifest says "
                            f"{manifest['counts']['sequences']} / {manifest['counts']['frames']}{fix}")
        for name, arr, _dims in (("keypoints_2d", kp, 2), ("joints_3d", j3, 3)):
            if not np.isfinite(arr).all():
                problems.append(f"{where}: {name} has {int((~np.isfinite(arr)).sum())} NaN/inf values{fix}")
        cams = h36m_cameras()
        for i in range(n_seq):
            subject, camera = str(a["subject"][i]), int(a["camera"][i])
            if not (np.isfinite(kp[off[i]:off[i + 1]]).all() and np.isfinite(j3[off[i]:off[i + 1]]).all()):
                continue  # already reported
            label = f"{where}: {subject} {a['action'][i]} cam {camera}"
            resolution = cams[subjects[subject]["camera_subject"]][camera].resolution
            problem = (keypoints_2d_problem(kp[off[i]:off[i + 1]], resolution, label, fix.lstrip("; "))
                       or joints_3d_problem(j3[off[i]:off[i + 1]], label, fix.lstrip("; "), unit="mm"))
            if problem:
                problems.append(problem)
        for subject in np.unique(a["subject"]):
            rows = np.concatenate([np.arange(off[i], off[i + 1]) for i in np.flatnonzero(a["subject"] == subject)])
            bones = bone_lengths(j3[rows].astype(np.float64))  # (F, 16)
            spread = float((bones.max(0) - bones.min(0)).max())
            if spread > 0.05:  # float32 camera-frame coordinates alone give < 0.005 mm
                problems.append(f"subject {subject}: bone lengths vary by {spread:.3f} mm across frames{fix}")
        split = {s: "train" for s in manifest["build"]["train_subjects"]} | \
                {s: "test" for s in manifest["build"]["test_subjects"]}
        actions = {sp: {str(act) for s, act in zip(a["subject"], a["action"]) if split.get(str(s)) == sp}
                   for sp in ("train", "test")}
        if actions["train"] & actions["test"]:
            problems.append(f"clips in both splits: {', '.join(sorted(actions['train'] & actions['test']))}{fix}")
        return problems
