"""Where the files liftbench ships (published baselines, the CI reference, run and suite configs) are.

The repository's top-level ``baselines/`` and ``configs/`` are the source of truth. A built wheel
carries a copy of both inside the package, ``liftbench/_shipped/{baselines,configs}`` (``setup.py``
copies them at build time), so a non-editable install (``pip install .``, a wheel, ``--user``) finds
them through ``importlib.resources`` wherever the package landed. A source checkout or an editable
install has no ``_shipped`` copy and reads the repository directories beside the package, so edits
there take effect without reinstalling.

The packaged copy wins when both exist: an installed package's parent is ``site-packages``, where an
unrelated distribution may well have put a top-level ``configs/``.
"""

from __future__ import annotations

import atexit
import contextlib
from importlib import resources
from pathlib import Path

from liftbench.errors import DataError

SHIPPED_PACKAGE_DIR = "_shipped"
#: top-level repository directories a wheel carries (setup.py copies exactly these)
SHIPPED_DIRS: tuple[str, ...] = ("baselines", "configs")

_extracted = contextlib.ExitStack()  # keeps a zip-imported package's files on disk until exit
atexit.register(_extracted.close)


def _packaged_root() -> Path | None:
    """``liftbench/_shipped`` of an installed package as a real directory, or None (source tree)."""
    root = resources.files("liftbench").joinpath(SHIPPED_PACKAGE_DIR)
    if not root.is_dir():
        return None
    if isinstance(root, Path):
        return root
    return Path(_extracted.enter_context(resources.as_file(root)))  # e.g. imported from a zip


def _source_root() -> Path:
    """The repository holding the package (``<repo>/liftbench/resources.py``)."""
    return Path(__file__).resolve().parent.parent


def from_source_tree() -> bool:
    """True when the shipped files are the repository's own (checkout or editable install): editing
    them, e.g. ``liftbench check --update``, changes the source of truth rather than an installed copy."""
    return _packaged_root() is None


def shipped_path(relative: str) -> Path:
    """Path of a shipped file or directory, e.g. ``shipped_path("configs/suites")`` or
    ``shipped_path("baselines/reference/results.csv")``; ``DataError`` if it is not there."""
    top = relative.strip("/").split("/", 1)[0]
    if top not in SHIPPED_DIRS:
        raise ValueError(f"{relative!r} is not under a shipped directory ({', '.join(SHIPPED_DIRS)})")
    packaged = _packaged_root()
    path = (packaged if packaged is not None else _source_root()) / relative
    if not path.exists():
        where = "the installed package" if packaged is not None else "the source tree"
        raise DataError(f"{path} is missing from {where}; reinstall liftbench (pip install .) or restore "
                        f"{top}/ in the repository.")
    return path
