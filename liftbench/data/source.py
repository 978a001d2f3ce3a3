"""Dataset sources: how a named dataset is located, verified, prepared and loaded.

Each source registers itself in ``DATASETS`` from its own module (``h36m.py``, ``mocap.py``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from liftbench.data.dataset import PoseDataset
from liftbench.errors import DataError
from liftbench.registry import Registry


class DatasetSource:
    """Interface of a dataset source. Errors are ``DataError`` with one line naming file and fix.

    ``examine`` is the one function that checks the data and builds the dataset; ``load`` and
    ``verify`` are both derived from it, so ``verify`` accepts exactly what training accepts. A
    source only needs ``load`` and ``verify`` (the default ``examine`` combines them); the built-in
    ones override ``examine`` and derive the other two from it.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    default_keypoints: ClassVar[str] = "gt"

    def load(self, data_dir: Path | None, keypoints: str) -> PoseDataset:
        raise NotImplementedError

    def verify(self, data_dir: Path | None, keypoints: str) -> list[str]:
        """Every problem found, one line each (empty list: the data is fine)."""
        raise NotImplementedError

    def examine(self, data_dir: Path | None, keypoints: str, *, train_subjects: tuple[str, ...] = (),
                test_subjects: tuple[str, ...] = ()) -> tuple[list[str], PoseDataset | None]:
        """(every problem, the dataset if there are none). Never builds anything (see ``ensure``)."""
        problems = self.verify(data_dir, keypoints)
        return (problems, None) if problems else ([], self.load(data_dir, keypoints))

    def ensure(self, data_dir: Path | None) -> None:
        """Build whatever ``load`` reads if it is missing (caches); nothing for sources of user files."""

    def prepare(self, data_dir: Path | None, force: bool = False) -> str:
        """Build or check what ``load`` needs; returns a one-line summary of what was done."""
        raise NotImplementedError

    def available_keypoints(self, data_dir: Path | None) -> list[str]:
        return [self.default_keypoints]

    def location(self, data_dir: Path | None) -> str:
        """Where this source reads from, for listings."""
        return str(data_dir) if data_dir else "(not set)"


DATASETS: Registry[type[DatasetSource]] = Registry("dataset", base=DatasetSource)


def cache_home(data_dir: str | Path | None = None) -> Path:
    """Where built datasets are cached: ``--data-dir`` > ``$LIFTBENCH_DATA`` > the user cache dir.

    A path that exists but is not a directory (``LIFTBENCH_DATA`` set to a file) is a ``DataError``
    naming where it came from, instead of an OSError deep inside the first write.
    """
    if data_dir:
        path, origin = Path(data_dir).expanduser(), "--data-dir"
    elif os.environ.get("LIFTBENCH_DATA"):
        path, origin = Path(os.environ["LIFTBENCH_DATA"]).expanduser(), "LIFTBENCH_DATA"
    else:
        import platformdirs

        path, origin = Path(platformdirs.user_cache_dir("liftbench")), "the user cache directory"
    try:
        not_a_dir = path.exists() and not path.is_dir()
    except OSError as exc:  # e.g. permission denied on a parent
        raise DataError(f"{path} ({origin}): cannot be accessed ({exc.strerror or exc}); "
                        "point it at a directory you can read and write") from exc
    if not_a_dir:
        raise DataError(f"{path} ({origin}) is a file, not a directory; point {origin} at a directory "
                        "for the dataset cache (it is created if missing)")
    return path
