"""Dataset sources: how a named dataset is located, verified, prepared and loaded.

Each source registers itself in ``DATASETS`` from its own module (``h36m.py``, ``mocap.py``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from liftbench.data.dataset import PoseDataset
from liftbench.registry import Registry


class DatasetSource:
    """Interface of a dataset source. Errors are ``DataError`` with one line naming file and fix."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    default_keypoints: ClassVar[str] = "gt"

    def load(self, data_dir: Path | None, keypoints: str) -> PoseDataset:
        raise NotImplementedError

    def verify(self, data_dir: Path | None, keypoints: str) -> list[str]:
        """Every problem found, one line each (empty list: the data is fine)."""
        raise NotImplementedError

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
    """Where built datasets are cached: ``--data-dir`` > ``$LIFTBENCH_DATA`` > the user cache dir."""
    if data_dir:
        return Path(data_dir).expanduser()
    env = os.environ.get("LIFTBENCH_DATA")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("liftbench"))
