"""Data layer: one representation (``PoseDataset``), two sources (``h36m``, ``mocap-mini``)."""

from __future__ import annotations

from pathlib import Path

from liftbench.data.dataset import PoseDataset, Sequence  # noqa: F401
from liftbench.data.source import DATASETS, DatasetSource, cache_home  # noqa: F401
from liftbench.data import h36m, mocap  # noqa: F401,E402  (registration side effect)

DEFAULT_DATASET = "mocap-mini"


def get_source(name: str) -> DatasetSource:
    return DATASETS.get(name)()


def load_dataset(name: str = DEFAULT_DATASET, data_dir: str | Path | None = None,
                 keypoints: str | None = None, **split: object) -> PoseDataset:
    """Load a registered dataset into memory (building/caching it first if the source needs to).

    ``train_subjects`` / ``test_subjects`` reach sources whose ``load`` accepts them (h36m uses them to
    accept directories without the default test subjects); the caller applies the split either way."""
    import inspect

    source = get_source(name)
    accepted = inspect.signature(source.load).parameters
    kwargs = {k: v for k, v in split.items() if k in accepted and v}
    return source.load(Path(data_dir).expanduser() if data_dir else None, keypoints or source.default_keypoints, **kwargs)
