"""Trial locks: ``runs/<run_id>/.lock`` says which host and process is running a trial, kept fresh by a heartbeat.

Why a heartbeat: a lock is informational (run directories are written by one trial at a time by
construction; the lock lets ``liftbench status`` and the progress bar tell "running" from
"interrupted"). On the lock's own host a dead process is detected from its pid; a trial on another
Ray node cannot be checked that way, so while it runs its lock's mtime is refreshed every
``HEARTBEAT_S`` seconds, and a remote lock not refreshed for ``STALE_AFTER_S`` seconds (the node died,
or was killed) counts as interrupted. The threshold is generous because the mtime comes from the shared
filesystem's clock and the reader compares it with its own.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from liftbench.results import write_text_atomic

LOCK_FILE = ".lock"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 600.0


class TrialLocks:
    """Context manager holding the locks of one or more run directories (a packed group holds K).

    On enter: each ``.lock`` is written with this host, pid and start time; a daemon thread refreshes
    their mtimes every ``heartbeat_s``. On exit, however the block ends, the thread stops and the locks
    are removed. A refresh that fails (directory gone, filesystem hiccup) is skipped, never raised."""

    def __init__(self, run_dirs: Iterable[Path], heartbeat_s: float = HEARTBEAT_S):
        self.paths = [Path(d) / LOCK_FILE for d in run_dirs]
        self.heartbeat_s = heartbeat_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> TrialLocks:
        info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()})
        try:
            for path in self.paths:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_text_atomic(path, info)  # a reader never sees half a lock
        except BaseException:
            self._remove()
            raise
        self._thread = threading.Thread(target=self._beat, name="liftbench-lock-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._remove()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            for path in self.paths:
                try:
                    os.utime(path)
                except OSError:
                    pass  # the next beat tries again; a lock that stays stale reads as interrupted

    def _remove(self) -> None:
        for path in self.paths:
            path.unlink(missing_ok=True)


def read_lock(run_dir: Path) -> dict | None:
    """The lock's contents (host, pid, started), or None when there is no readable lock."""
    try:
        info = json.loads((Path(run_dir) / LOCK_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def lock_age_s(run_dir: Path) -> float | None:
    """Seconds since the lock was written or last refreshed (None without a lock)."""
    try:
        return max(0.0, time.time() - (Path(run_dir) / LOCK_FILE).stat().st_mtime)
    except OSError:
        return None


def is_running(run_dir: Path, stale_after_s: float = STALE_AFTER_S) -> bool:
    """Whether a live process holds this run directory's lock.

    Same host: its pid must exist. Another host: the heartbeat must be younger than ``stale_after_s``.
    An unreadable or malformed lock counts as not running (the trial was interrupted while writing it)."""
    info = read_lock(run_dir)
    if info is None:
        return False
    if info.get("host") != socket.gethostname():
        age = lock_age_s(run_dir)
        return age is not None and age < stale_after_s
    try:
        os.kill(int(info["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # the pid exists, owned by another user
    except (KeyError, TypeError, ValueError, OSError):
        return False
    return True
