"""Convert the official Human3.6M release (``D3_Positions`` CDF files) into ``data_3d_h36m.npz``.

Users download Human3.6M from the official site as per-subject archives; the 3D poses are NASA CDF
files ``<DIR>/<S>/MyPoseFeatures/D3_Positions/<stem>.cdf`` whose variable ``Pose`` is (1, N, 96):
32 joints x (x, y, z) in world millimetres, joint-major. liftbench reads VideoPose3D's converted
layout instead (``liftbench/data/h36m.py``), so this module does what VideoPose3D's
``data/prepare_data_h36m.py --from-source-cdf`` does, with the same names, so results stay
comparable with every paper that used that script:

* subjects S1 S5 S6 S7 S8 S9 S11, 30 files each (15 actions x 2 takes); key = file stem as is
  (``Directions 1``: the trailing number is a file name, not the sub-action index);
* S11 ``Directions`` is dropped (the reference's "Discard corrupted video"), so S11 keeps 29;
* substring renames ``TakingPhoto`` -> ``Photo`` and ``WalkingDog`` -> ``WalkDog`` (S1 spellings);
* ``Pose`` reshaped to (N, 32, 3), divided by 1000 (metres), cast to float32, saved with
  ``np.savez_compressed(positions_3d={subject: {key: array}})``.

Unlike the reference, every file is checked before anything is written (readable CDF, a ``Pose``
of (1, N, 96), N > 0, finite, millimetres rather than metres) and the result lands atomically: a
temporary directory inside the data dir, re-read and compared, then ``os.replace`` of the npz and
of the manifest last. A failure names the file and leaves the data dir as it was.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from liftbench import __version__
from liftbench._files import file_sha256, write_json_atomic
from liftbench.data.h36m import FILE_3D
from liftbench.data.safe.npz import load_npz
from liftbench.errors import ConfigError, DataError, MissingExtraError, one_line
from liftbench.values import float32_safe, user_file

SUBJECTS: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8", "S9", "S11")
POSE_DIR = Path("MyPoseFeatures") / "D3_Positions"
VARIABLE = "Pose"
RAW_JOINTS = 32
# The 15 action names after renaming; each subject has two take files per action (30 files).
ACTIONS: tuple[str, ...] = ("Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing",
                            "Purchases", "Sitting", "SittingDown", "Smoking", "Waiting", "WalkDog", "Walking",
                            "WalkTogether")
TAKES_PER_ACTION = 2
STEM_PATTERN = re.compile(r"([A-Za-z]+)(?: \d+)?")  # 'Directions', 'Directions 1'; no camera suffix
RENAMES: tuple[tuple[str, str], ...] = (("TakingPhoto", "Photo"), ("WalkingDog", "WalkDog"))  # reference order
DROPPED: dict[tuple[str, str], str] = {
    ("S11", "Directions"): "dropped as VideoPose3D's prepare_data_h36m.py does ('Discard corrupted video': "
                           "camera 54138969 of this take is damaged)",
}
# A body is ~1.7 m tall: in millimetres a frame spans hundreds of units, in metres about 2. No real
# frame of a take spans less than 10 mm, so a take whose largest frame extent is below this is metres.
MIN_EXTENT_MM = 10.0
MAX_CDF_BYTES = 1 << 32  # one take's D3_Positions file is ~10 MB
MANIFEST = "data_3d_h36m.manifest.json"
INSTALL_HINT = "pip install 'liftbench[h36m]'"
LAYOUT_HINT = (f"DIR must be the folder holding the extracted subjects ({' '.join(SUBJECTS)}), each with "
               f"{POSE_DIR.as_posix()}/*.cdf from Poses_D3_Positions_S<n>.tgz")


def reference_key(stem: str) -> str:
    """Action key of a file stem as the reference conversion names it ('TakingPhoto 1' -> 'Photo 1')."""
    for old, new in RENAMES:
        stem = stem.replace(old, new)
    return stem


@dataclass(frozen=True)
class Take:
    """One converted take: where it came from and how long it is."""

    subject: str
    key: str  # action key in positions_3d
    source: Path
    sha256: str
    frames: int


@dataclass
class OfficialConversion:
    """What ``convert_official`` wrote; ``summary()`` is what the CLI prints."""

    source_dir: Path
    npz_path: Path
    manifest_path: Path
    subjects: tuple[str, ...]
    partial: bool
    takes: list[Take] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"h36m: converted {len(self.subjects)} subject(s), {len(self.takes)} takes, "
                 f"{sum(t.frames for t in self.takes):,} frames from {self.source_dir} into {self.npz_path} "
                 f"(world metres); frames per take and source sha256 in {self.manifest_path.name}"]
        if self.partial:
            lines.append(f"  partial release: only {', '.join(self.subjects)} (stated in the manifest)")
        for subject in self.subjects:
            frames = [t.frames for t in self.takes if t.subject == subject]
            lines.append(f"  {subject}: {len(frames)} takes, {sum(frames):,} frames "
                         f"({min(frames)}-{max(frames)} per take)")
        lines += [f"  {d}" for d in self.dropped]
        lines.append(f"  next: liftbench data info h36m --data-dir {self.npz_path.parent}")
        return "\n".join(lines)


def _cdflib():
    try:
        import cdflib
    except ImportError as exc:
        raise MissingExtraError("reading the official Human3.6M CDF files needs cdflib, which is not "
                                f"installed: {INSTALL_HINT}") from exc
    return cdflib




def parse_subjects(text: str | Iterable[str] | None) -> tuple[str, ...]:
    """``'S9,S11'`` (or a list) -> ('S9', 'S11') in release order; None -> all seven subjects."""
    if text is None:
        return SUBJECTS
    names = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    unknown = [s for s in names if s not in SUBJECTS]
    if unknown or not names:
        raise ConfigError(f"--subjects {','.join(names) or repr(text)}: unknown subject(s) "
                          f"{', '.join(unknown) or '(none given)'}; choose from {','.join(SUBJECTS)}")
    return tuple(s for s in SUBJECTS if s in names)


def _take_files(folder: Path, subject: str) -> dict[str, Path]:
    """Stem -> file of one subject's D3_Positions folder, checked to be the 15 actions x 2 takes."""
    if not folder.is_dir():
        missing = next(p for p in (folder.parents[1], folder.parent, folder) if not p.is_dir())
        raise DataError(f"{missing}: not found (subject {subject}); {LAYOUT_HINT}, or pass --subjects to "
                        "convert only the subjects you have")
    files = {p.stem: p for p in sorted(folder.glob("*.cdf")) if not p.name.startswith(".")}
    by_action: dict[str, list[str]] = {}
    for stem in files:
        match = STEM_PATTERN.fullmatch(reference_key(stem))
        if match is None or match[1] not in ACTIONS:
            raise DataError(f"{files[stem]}: unexpected file: D3_Positions holds '<action>[ <n>].cdf' for the 15 "
                            f"Human3.6M actions ({', '.join(ACTIONS)}; per-camera '<stem>.<camera>.cdf' files "
                            f"belong to other folders); move it out of {folder}")
        action = match[1]
        by_action.setdefault(action, []).append(stem)
    for action in ACTIONS:
        stems = by_action.get(action, [])
        # a take the reference drops anyway may be absent (users delete the damaged S11 take)
        dropped = {stem for s, stem in DROPPED if s == subject and stem.split(" ")[0] == action}
        if len(stems) != TAKES_PER_ACTION - len(dropped - set(stems)):
            found = ", ".join(f"'{s}.cdf'" for s in stems) or "none"
            raise DataError(f"{folder}: {len(stems)} take file(s) of {action} ({found}), expected "
                            f"{TAKES_PER_ACTION} ({len(ACTIONS) * TAKES_PER_ACTION} .cdf files per subject); "
                            "re-extract the subject's Poses_D3_Positions archive")
    return files


def read_pose_mm(path: Path) -> np.ndarray:
    """``Pose`` of one D3_Positions file as (N, 32, 3) float64 world millimetres, checked."""
    cdflib = _cdflib()
    user_file(path, f"an official {POSE_DIR.as_posix()} .cdf file", MAX_CDF_BYTES)  # not a FIFO: cdflib would block
    try:
        cdf = cdflib.CDF(str(path))
        info = cdf.cdf_info()
        names = list(info.zVariables) + list(info.rVariables)
        if VARIABLE not in names:
            raise DataError(f"{path}: no variable '{VARIABLE}' (variables: {', '.join(names) or 'none'}); "
                            f"expected an official {POSE_DIR.as_posix()} file")
        if cdf.varinq(VARIABLE).Last_Rec < 0:
            raise DataError(f"{path}: empty take (0 frames in '{VARIABLE}'); re-extract this file from the "
                            "official archive")
        raw = np.asarray(cdf.varget(VARIABLE))
    except DataError:
        raise
    except Exception as exc:  # cdflib raises OSError/ValueError/IndexError/... on damaged files
        detail = one_line(exc)[:120]
        raise DataError(f"{path}: not a readable CDF file (truncated or corrupt: {type(exc).__name__}: "
                        f"{detail}); re-extract it from the official archive") from exc
    if raw.size == 0:
        raise DataError(f"{path}: empty take (0 frames in '{VARIABLE}'); re-extract this file from the "
                        "official archive")
    values = 3 * RAW_JOINTS
    if not (raw.ndim == 3 and raw.shape[0] == 1 and raw.shape[2] == values) and not (
            raw.ndim == 2 and raw.shape[1] == values):
        raise DataError(f"{path}: '{VARIABLE}' has shape {raw.shape}, expected (1, N, {values}) = {RAW_JOINTS} "
                        f"joints x (x, y, z) mm; is this a D3_Positions file (D2 files have 64 values)?")
    if raw.dtype.kind not in "fiu":
        raise DataError(f"{path}: '{VARIABLE}' has dtype {raw.dtype}, expected floating point millimetres")
    poses = raw.astype(np.float64).reshape(-1, RAW_JOINTS, 3)  # (N, 32, 3) mm
    finite = np.isfinite(poses).all(axis=(1, 2))  # (N,)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise DataError(f"{path}: NaN/inf in {len(bad)} frame(s), first at frame {bad[0]}; re-extract this file")
    float32_safe(poses, f"{path}: '{VARIABLE}'")  # converted poses are stored as float32
    extent = (poses.max(axis=1) - poses.min(axis=1)).max()  # largest per-frame bounding-box side
    if extent < MIN_EXTENT_MM:
        raise DataError(f"{path}: the pose spans at most {extent:.3g} units, but a body is ~1700 mm tall: this "
                        "looks like metres (or a collapsed skeleton); the official files hold millimetres, "
                        "use the original file")
    return poses


def read_release(source_dir: Path, subjects: Iterable[str] = SUBJECTS
                 ) -> tuple[dict[str, dict[str, np.ndarray]], list[Take], list[str]]:
    """Every take of ``subjects`` as the reference converts it: (positions_3d, takes, dropped notes)."""
    _cdflib()  # a missing extra is reported before any file is looked at
    root = Path(source_dir).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"{root}: --from-official is not a directory; {LAYOUT_HINT}")
    positions: dict[str, dict[str, np.ndarray]] = {}
    takes: list[Take] = []
    dropped: list[str] = []
    for subject in subjects:
        positions[subject] = {}
        files = _take_files(root / subject / POSE_DIR, subject)
        for stem in sorted(files, key=reference_key):
            path = files[stem]
            if (subject, stem) in DROPPED:
                dropped.append(f"{subject} '{stem}': {DROPPED[subject, stem]}")
                continue
            key = reference_key(stem)
            poses = read_pose_mm(path)
            positions[subject][key] = (poses / 1000.0).astype(np.float32)  # (N, 32, 3) metres
            takes.append(Take(subject, key, path, file_sha256(path), len(poses)))
    return positions, takes, dropped


def _manifest(root: Path, subjects: tuple[str, ...], takes: list[Take], dropped: list[str], npz: Path) -> dict:
    cdflib = _cdflib()
    return {
        "kind": "liftbench h36m conversion of the official Human3.6M release (D3_Positions)",
        "liftbench_version": __version__,
        "cdflib_version": getattr(cdflib, "__version__", "unknown"),
        "created_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "source_dir": str(root),
        "subjects": list(subjects),
        "partial": subjects != SUBJECTS,
        "conversion": ("VideoPose3D data/prepare_data_h36m.py --from-source-cdf semantics: key = file stem, "
                       "TakingPhoto->Photo, WalkingDog->WalkDog, S11 'Directions' dropped, mm / 1000 -> float32 "
                       "metres, world frame"),
        "dropped": dropped,
        "output": {"file": npz.name, "sha256": file_sha256(npz), "units": "m", "frame": "world",
                   "shape": "(N, 32, 3) per take"},
        "frames": {s: sum(t.frames for t in takes if t.subject == s) for s in subjects},
        "takes": {s: {t.key: {"file": t.source.relative_to(root).as_posix(), "sha256": t.sha256,
                              "frames": t.frames}
                      for t in takes if t.subject == s} for s in subjects},
    }


def _check_written(path: Path, positions: dict[str, dict[str, np.ndarray]]) -> None:
    """Re-read the written npz with liftbench's own loader; it must hold exactly ``positions``."""
    content = load_npz(path)
    written = content.get("positions_3d")
    same = isinstance(written, dict) and written.keys() == positions.keys() and all(
        isinstance(written[s], dict) and written[s].keys() == takes.keys()
        and all(np.array_equal(written[s][k], a) and written[s][k].dtype == a.dtype for k, a in takes.items())
        for s, takes in positions.items())
    if not same:
        raise DataError(f"{path}: re-reading the converted file does not give back the converted poses "
                        "(disk full or failing?); nothing was replaced, run the conversion again")


def convert_official(source_dir: str | Path, data_dir: str | Path | None, *,
                     subjects: str | Iterable[str] | None = None, force: bool = False) -> OfficialConversion:
    """Convert ``source_dir`` (the official release) into ``data_dir/data_3d_h36m.npz`` plus a manifest.

    ``subjects`` limits the conversion to part of the release (stated in the manifest). An existing
    ``data_3d_h36m.npz`` is replaced only with ``force`` (the reference refuses to overwrite it)."""
    if data_dir is None:
        raise ConfigError("--data-dir is required with --from-official: the directory to write "
                          f"{FILE_3D} into (then pass the same --data-dir to train/evaluate with --data h36m)")
    chosen = parse_subjects(subjects)
    out = Path(data_dir).expanduser()
    target, manifest_target = out / FILE_3D, out / MANIFEST
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: --data-dir exists and is not a directory")
    if target.exists() and not force:
        raise DataError(f"{target}: already exists; pass --force to replace it with the conversion")
    root = Path(source_dir).expanduser().resolve()
    positions, takes, dropped = read_release(root, chosen)  # every check happens before any write

    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".liftbench-h36m-official-", dir=out))
    try:
        staged_npz = staging / FILE_3D
        with open(staged_npz, "wb") as fh:
            np.savez_compressed(fh, positions_3d=positions)  # dict pickled as a 0-d object array, as VideoPose3D
            fh.flush()
            os.fsync(fh.fileno())
        _check_written(staged_npz, positions)
        manifest = _manifest(root, chosen, takes, dropped, staged_npz)

        write_json_atomic(staging / MANIFEST, manifest)
        # The manifest is the commit marker: drop the old one, swap the npz in, then the new manifest.
        manifest_target.unlink(missing_ok=True)
        os.replace(staged_npz, target)
        os.replace(staging / MANIFEST, manifest_target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not any(out.iterdir()):
            out.rmdir()  # the data dir did not exist before this call
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return OfficialConversion(source_dir=root, npz_path=target, manifest_path=manifest_target, subjects=chosen,
                              partial=chosen != SUBJECTS, takes=takes, dropped=dropped)


def prepare_from_official(name: str, source_dir: str | Path | None, data_dir: Path | None, subjects: str | None,
                          force: bool) -> str:
    """``liftbench data prepare NAME --from-official DIR``: convert, then the summary to print."""
    if source_dir is None:
        raise ConfigError("--subjects only applies with --from-official DIR (converting part of the official release)")
    if name != "h36m":
        raise ConfigError(f"--from-official converts the official Human3.6M release: use it with "
                          f"'liftbench data prepare h36m', not '{name}'")
    return convert_official(source_dir, data_dir, subjects=subjects, force=force).summary()
