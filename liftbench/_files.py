"""Files written safely: atomic replacement, content hashes, output-directory checks.

Every file liftbench writes goes through ``write_bytes_atomic`` (a temp file in the same directory,
fsync, ``os.replace``): a crash, a kill or a full disk leaves the old file or the new one, never a
partial one, and never a stray temp file. Standard library only, so every layer may use it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from liftbench.errors import ConfigError, OutputError


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MB blocks (manifests and provenance of inputs)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Temp file in the same directory, fsync, rename. On any failure (disk full, read-only filesystem,
    a kill) the temp file is removed, so a full disk is not left fuller, and an ``OutputError`` names
    the file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with atomic_output(path, tmp):
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)


@contextlib.contextmanager
def atomic_output(path: Path, tmp: Path):
    """Around writing ``tmp`` and renaming it to ``path``: create the directory, and on failure remove
    ``tmp`` and turn an ``OSError`` into a one-line ``OutputError`` naming ``path`` and the fix."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise OutputError(f"Could not write {path}: {exc.strerror or exc}; {_output_fix(exc)}.") from exc
        raise


def _output_fix(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free disk space (nothing partial was left behind) and re-run the same command"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "choose a writable output directory (--out)"
    if exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        return "a file stands where a directory belongs (or the reverse): choose another output path"
    return "check the output path and re-run"


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def check_output_dir(path: str | Path, option: str = "--out") -> Path:
    """Fail before any work if ``path`` cannot become a writable directory: an existing file, a file on
    the way, or a read-only parent. Creates nothing (the directory is made when something is written)."""
    path = Path(path)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        what = "is an existing file" if probe == path else f"lies under {probe}, which is a file"
        raise ConfigError(f"{option} {path} {what}; pass a directory.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {path}: {probe} is not writable (read-only filesystem or no permission); "
                          "choose a writable directory.")
    return path
