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
Anything else wrong is a ``DataError`` naming the file and the fix. ``H36MSource.examine`` is the
one function behind ``load``, ``verify`` and ``prepare``: ``verify`` lists every problem ``load`` would
stop at (file structure, NaN/inf, 2D no camera can produce, 3D that is not a human in metres, empty
splits). Only ``gt`` is ever synthesised: any other missing or unreadable keypoints file is an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from liftbench.data.cameras import h36m_cameras
from liftbench.data.checks import raise_first, split_problems, user_input_errors
from liftbench.data.dataset import PoseDataset
from liftbench.data.h36m_files import (  # noqa: F401  (re-exported: other modules name the files and actions)
    FILE_3D,
    FIX_2D,
    FIX_3D,
    PREFIX_2D,
    SUFFIX_2D,
    _Reader,
    camera_problems,
    normalise_action,
    to_h36m17,
)
from liftbench.data.source import DATASETS, DatasetSource
from liftbench.errors import DataError

FPS = 50.0
TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS = ("S9", "S11")


@DATASETS.register("h36m")
class H36MSource(DatasetSource):
    name = "h36m"
    description = "Human3.6M from the VideoPose3D .npz files in --data-dir (S1-S11, 4 cameras, 50 Hz)"
    default_keypoints = "gt"

    @staticmethod
    def _dir(data_dir: Path | None) -> Path:
        if data_dir is None:
            raise DataError(f"h36m needs --data-dir DIR: a directory with {FILE_3D} and "
                            f"{PREFIX_2D}<keypoints>{SUFFIX_2D} (VideoPose3D layout, see its DATASETS.md); "
                            "LIFTBENCH_DATA is not read for h36m (it is the mocap-mini cache)")
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

    def examine(self, data_dir: Path | None, keypoints: str, *, train_subjects: Iterable[str] = (),
                test_subjects: Iterable[str] = ()) -> tuple[list[str], PoseDataset | None]:
        """The one check behind ``load``, ``verify`` and ``prepare``: (every problem, the dataset if none)."""
        with user_input_errors():
            try:
                path = self._dir(data_dir)
            except DataError as exc:
                return [str(exc)], None
            return self._examine(_Reader(path), keypoints, tuple(train_subjects), tuple(test_subjects))

    def _examine(self, reader: _Reader, keypoints: str, train_subjects: tuple[str, ...],
                 test_subjects: tuple[str, ...], check_split: bool = True) -> tuple[list[str], PoseDataset | None]:
        pairing = reader.pair(keypoints, self.available_keypoints(reader.dir))
        sequences, built = reader.sequences(pairing)
        problems = reader.problems + pairing.problems + built
        subjects = sorted({s.subject for s in sequences})
        train, test = (), ()
        if not problems and check_split:  # only once the files are fine: not a consequence of another problem
            split, train, test = split_problems("h36m", str(reader.path_3d), set(subjects), TRAIN_SUBJECTS,
                                                TEST_SUBJECTS, train_subjects or None, test_subjects or None)
            problems += split
        if problems or not check_split:
            return problems, None
        files = [reader.path_3d] + ([pairing.file_2d] if pairing.file_2d else [])
        cams = h36m_cameras()
        notes = reader.notes + pairing.notes
        unused = [s for s in subjects if s not in train + test]
        if unused:
            notes.append(f"subject(s) {', '.join(unused)} loaded but in neither split")
        return [], PoseDataset(name="h36m", keypoints=keypoints, fps=FPS, sequences=sequences,
                               cameras={s: cams[s] for s in subjects}, train_subjects=train, test_subjects=test,
                               notes=notes, source={"path": str(reader.dir), "layout_2d": pairing.layout,
                                                    "files": {f.name: f.stat().st_size for f in files}})

    def verify(self, data_dir: Path | None, keypoints: str, *, train_subjects: Iterable[str] = (),
               test_subjects: Iterable[str] = ()) -> list[str]:
        return self.examine(data_dir, keypoints, train_subjects=train_subjects, test_subjects=test_subjects)[0]

    def load(self, data_dir: Path | None, keypoints: str, *, train_subjects: Iterable[str] | None = None,
             test_subjects: Iterable[str] | None = None) -> PoseDataset:
        """Load every usable sequence; explicit subject splits override the default S1,5,6,7,8 / S9,11."""
        problems, dataset = self.examine(data_dir, keypoints, train_subjects=train_subjects or (),
                                         test_subjects=test_subjects or ())
        raise_first(problems, f"liftbench data verify h36m --data-dir {data_dir} --keypoints {keypoints}")
        assert dataset is not None  # no problems means a dataset
        return dataset

    def prepare(self, data_dir: Path | None, force: bool = False) -> str:
        """Nothing to build (``force`` has no effect): check the 3D file and every 2D source present."""
        with user_input_errors():
            path = self._dir(data_dir)
            reader = _Reader(path)
            available = self.available_keypoints(path)
            problems = list(reader.problems)
            for keypoints in available:
                problems += [p for p in self._examine(reader, keypoints, (), (), check_split=False)[0]
                             if p not in problems]
        raise_first(problems, f"liftbench data verify h36m --data-dir {path} --keypoints <name>")
        frames = sum(len(a) for takes in reader.world.values() for a in takes.values())
        n_takes = sum(len(takes) for takes in reader.world.values())
        return (f"h36m: {path} ok: {len(reader.world)} subjects, {n_takes} takes, {frames:,} mocap frames; "
                f"keypoints checked: {', '.join(available)}")
