"""Data layer: one representation (``PoseDataset``), two sources (``h36m``, ``mocap-mini``).

``load_dataset`` and ``verify_dataset`` both go through ``examine_dataset``: the source's own checks
(``DatasetSource.examine``) followed by the one split check every source gets. So ``data verify``
accepts exactly what training accepts, and an ``OSError`` on the user's paths is a one-line ``DataError``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from liftbench.data import h36m, mocap  # noqa: F401,E402  (registration side effect)
from liftbench.data.checks import raise_first, split_problems, user_input_errors
from liftbench.data.dataset import PoseDataset, Sequence  # noqa: F401
from liftbench.data.source import DATASETS, DatasetSource, cache_home  # noqa: F401

DEFAULT_DATASET = "mocap-mini"


def get_source(name: str) -> DatasetSource:
    return DATASETS.get(name)()


def _path(data_dir: str | Path | None) -> Path | None:
    return Path(data_dir).expanduser() if data_dir else None


def examine_dataset(name: str = DEFAULT_DATASET, data_dir: str | Path | None = None, keypoints: str | None = None,
                    *, train_subjects: Iterable[str] | None = None, test_subjects: Iterable[str] | None = None,
                    build: bool = False) -> tuple[list[str], PoseDataset | None]:
    """(every problem, the dataset with the requested split if there are none).

    ``build``: let the source build a missing cache first (loading does; verifying reports it instead).
    """
    source = get_source(name)
    keypoints = keypoints or source.default_keypoints
    train, test = tuple(train_subjects or ()), tuple(test_subjects or ())
    with user_input_errors():
        if build:
            source.ensure(_path(data_dir))
        problems, ds = source.examine(_path(data_dir), keypoints, train_subjects=train, test_subjects=test)
    if ds is None:
        return problems or [f"dataset '{name}' gave no data and no reason; report this to its source"], None
    # the split check every source gets (built-in sources already ran it with file-specific wording)
    split, train, test = split_problems(name, source.location(_path(data_dir)), set(ds.subjects),
                                        ds.train_subjects, ds.test_subjects, train or None, test or None)
    if split:
        return problems + split, None
    if (train, test) != (ds.train_subjects, ds.test_subjects):
        ds = ds.with_split(train, test)
    return problems, ds


def verify_command(name: str, data_dir: str | Path | None = None, keypoints: str | None = None,
                   train_subjects: Iterable[str] | None = None, test_subjects: Iterable[str] | None = None) -> str:
    """The ``liftbench data verify`` command line that lists every problem of these arguments."""
    return (f"liftbench data verify {name}" + (f" --data-dir {data_dir}" if data_dir else "")
            + (f" --keypoints {keypoints}" if keypoints else "")
            + (f" --train-subjects {','.join(train_subjects)}" if train_subjects else "")
            + (f" --test-subjects {','.join(test_subjects)}" if test_subjects else ""))


def load_dataset(name: str = DEFAULT_DATASET, data_dir: str | Path | None = None, keypoints: str | None = None,
                 *, train_subjects: Iterable[str] | None = None,
                 test_subjects: Iterable[str] | None = None) -> PoseDataset:
    """Load a registered dataset into memory (building/caching it first if the source needs to).

    Explicit ``train_subjects`` / ``test_subjects`` replace the dataset's default split; the result
    always has a non-empty training and test split, or this raises a ``DataError`` naming the problem."""
    train_subjects, test_subjects = tuple(train_subjects or ()), tuple(test_subjects or ())
    problems, ds = examine_dataset(name, data_dir, keypoints, train_subjects=train_subjects,
                                   test_subjects=test_subjects, build=True)
    raise_first(problems, verify_command(name, data_dir, keypoints, train_subjects, test_subjects))
    assert ds is not None  # no problems means a dataset
    return ds


def verify_dataset(name: str = DEFAULT_DATASET, data_dir: str | Path | None = None, keypoints: str | None = None,
                   *, train_subjects: Iterable[str] | None = None,
                   test_subjects: Iterable[str] | None = None) -> list[str]:
    """Every problem that would stop ``load_dataset`` with the same arguments, one line each."""
    return examine_dataset(name, data_dir, keypoints, train_subjects=train_subjects,
                           test_subjects=test_subjects)[0]


def prepare_dataset(name: str, data_dir: str | Path | None = None, force: bool = False) -> str:
    """Build (caches) or check (user files) what a dataset needs; a one-line summary."""
    with user_input_errors():
        return get_source(name).prepare(_path(data_dir), force=force)
