"""Trial claims: ``runs/<run_id>/.lock`` gives one process at a time the right to train a run.

Why exclusive: two suites started into the same ``--out`` (two cluster jobs, or ``run ablation`` and
``noise`` sharing a run) must never train the same run directory. A claim is created atomically and
only if absent: its full contents (host, pid, process start time, a random token) are written to a
private temporary file that is then hard-linked to ``.lock`` (``link`` fails if ``.lock`` exists, on
local disks and on NFS alike); where hard links are not supported, ``O_CREAT | O_EXCL`` creation is
the fallback. Whoever finds a claim held by a live owner does not train (``TrialLocks.held``).

Why a heartbeat: on the claim's own host a dead owner is detected from its pid (and the pid's start
time, so a recycled pid does not keep a dead claim alive); a trial on another node cannot be checked
that way, so its owner refreshes the claim's mtime every ``HEARTBEAT_S`` seconds and a remote claim not
refreshed for ``STALE_AFTER_S`` seconds (the node died) is dead. The threshold is generous because the
mtime comes from the shared filesystem's clock and the reader compares it with its own.

Why a guard: taking over a dead claim is "check it is still the same dead claim, delete it, create
ours", which is only atomic if no other process deletes claims meanwhile. Every deletion (a takeover,
or an owner releasing its own claim) therefore happens under an exclusive ``filelock`` on the sidecar
``.lock.guard``; creation needs no guard (it is atomic by itself). Two processes finding the same dead
claim: the first deletes it and creates its own; the second, once it holds the guard, finds a live
claim and moves on. Nobody ever deletes a claim whose token is not its own or that is not dead.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import filelock

LOCK_FILE = ".lock"
GUARD_FILE = ".lock.guard"  # flock'd while a claim is deleted; never removed (removing flock files races)
HEARTBEAT_S = 30.0
STALE_AFTER_S = 600.0
UNREADABLE_GRACE_S = 60.0  # an unreadable claim this young may be one being written (O_EXCL fallback)
GUARD_TIMEOUT_S = 60.0


def proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux ``/proc``), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # fields from the 3rd on; the name may hold spaces
    return fields[19] if len(fields) > 19 else None


def _owner_record() -> dict:
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "started": time.time(), "proc_start": proc_start(pid),
            "token": secrets.token_hex(16)}


def read_lock(run_dir: Path) -> dict | None:
    """The claim's contents (host, pid, started, token), or None when there is no readable claim."""
    try:
        info = json.loads((Path(run_dir) / LOCK_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def lock_age_s(run_dir: Path) -> float | None:
    """Seconds since the claim was written or last refreshed (None without a claim)."""
    try:
        return max(0.0, time.time() - (Path(run_dir) / LOCK_FILE).stat().st_mtime)
    except OSError:
        return None


def describe_owner(info: dict | None) -> str:
    """'host pid N' for messages and the progress line ('unknown owner' for an unreadable claim)."""
    if not info:
        return "unknown owner"
    return f"{info.get('host', '?')} pid {info.get('pid', '?')}"


def pid_alive(info: dict) -> bool:
    try:
        pid = int(info["pid"])
        if pid <= 0:
            return False
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # the pid exists, owned by another user
    except (KeyError, TypeError, ValueError, OSError):
        return False
    recorded, current = info.get("proc_start"), proc_start(pid)
    return recorded is None or current is None or str(recorded) == current  # else: the pid was recycled


def owner_alive(info: dict | None, age_s: float | None, stale_after_s: float = STALE_AFTER_S) -> bool:
    """Whether a claim with these contents and this heartbeat age belongs to a live process.

    Same host: its pid must exist (and be the same process). Another host: the heartbeat must be
    younger than ``stale_after_s``. Unreadable contents: alive only while younger than
    ``UNREADABLE_GRACE_S`` (a claim being written), then dead (left half-written by a crash)."""
    if age_s is None:
        return False  # the claim is gone
    if info is None:
        return age_s < UNREADABLE_GRACE_S
    if info.get("host") != socket.gethostname():
        return age_s < stale_after_s
    return pid_alive(info)


def is_running(run_dir: Path, stale_after_s: float = STALE_AFTER_S) -> bool:
    """Whether a live process holds this run directory's claim (what ``liftbench status`` shows)."""
    return owner_alive(read_lock(run_dir), lock_age_s(run_dir), stale_after_s)


def _create(path: Path, text: str) -> bool:
    """Create ``path`` holding ``text`` only if it does not exist; False if it exists."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.new")
    try:
        with open(tmp, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic and complete: a reader never sees half a claim
            return True
        except FileExistsError:  # NFS may report a retried, successful link as EEXIST: two links then exist
            return os.stat(tmp).st_nlink == 2
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.ENOSYS):
                raise
    finally:
        tmp.unlink(missing_ok=True)
    try:  # no hard links on this filesystem
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    return True


def _raw(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _guard(run_dir: Path) -> filelock.BaseFileLock:
    return filelock.FileLock(str(run_dir / GUARD_FILE), timeout=GUARD_TIMEOUT_S)


def try_claim(run_dir: Path, record: dict, stale_after_s: float = STALE_AFTER_S) -> dict | None:
    """Claim ``run_dir`` for ``record``'s owner: None on success, else the live owner's contents.

    A dead owner's claim is taken over (deleted under the guard only if it is still the same bytes,
    then created anew); the loop repeats when another process changed the claim meanwhile."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path, text = run_dir / LOCK_FILE, json.dumps(record)
    for _ in range(20):
        if _create(path, text):
            return None
        seen = _raw(path)
        info = read_lock(run_dir)
        if owner_alive(info, lock_age_s(run_dir), stale_after_s):
            return info or {}
        try:
            with _guard(run_dir):
                if _raw(path) == seen and not owner_alive(read_lock(run_dir), lock_age_s(run_dir), stale_after_s):
                    path.unlink(missing_ok=True)  # the same dead claim: ours to replace
                    if _create(path, text):
                        return None
        except filelock.Timeout:
            return info or {}  # someone holds the guard for long: treat the claim as taken, retry later
    return read_lock(run_dir) or {}


def release_claim(run_dir: Path, token: str) -> bool:
    """Delete the claim if (and only if) it still carries ``token``; True if it was ours."""
    run_dir = Path(run_dir)
    try:
        with _guard(run_dir):
            if (read_lock(run_dir) or {}).get("token") != token:
                return False
            (run_dir / LOCK_FILE).unlink(missing_ok=True)
            return True
    except (filelock.Timeout, OSError):
        return False  # left behind: it reads as dead once this process has exited


class TrialLocks:
    """Context manager claiming one or more run directories (a packed group claims K).

    On enter each run directory is claimed if it is free (or its owner is dead); ``held[i]`` says
    whether run ``i`` is ours, ``owners[i]`` holds the live owner's contents otherwise. Callers train
    only the runs they hold. A daemon thread refreshes the held claims' mtimes every ``heartbeat_s``
    (a claim found carrying another token was taken over: it is not touched, and ``lost`` lists it).
    On exit, however the block ends, the thread stops and this process's claims are deleted."""

    def __init__(self, run_dirs: Iterable[Path], heartbeat_s: float = HEARTBEAT_S,
                 stale_after_s: float = STALE_AFTER_S):
        self.run_dirs = [Path(d) for d in run_dirs]
        self.paths = [d / LOCK_FILE for d in self.run_dirs]
        self.heartbeat_s, self.stale_after_s = heartbeat_s, stale_after_s
        self.record = _owner_record()
        self.held: list[bool] = [False] * len(self.run_dirs)
        self.owners: list[dict | None] = [None] * len(self.run_dirs)
        self.lost: list[Path] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._released = False

    @property
    def all_held(self) -> bool:
        return all(self.held)

    def owner(self, i: int) -> str:
        """'host pid N' of the live process holding run ``i`` ('' if it is ours)."""
        return "" if self.held[i] else describe_owner(self.owners[i])

    def __enter__(self) -> TrialLocks:
        try:
            for i, run_dir in enumerate(self.run_dirs):
                owner = try_claim(run_dir, self.record, self.stale_after_s)
                self.held[i], self.owners[i] = owner is None, owner
        except BaseException:
            self._release()
            raise
        if any(self.held):
            self._thread = threading.Thread(target=self._beat, name="liftbench-claim-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._release()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            for run_dir, path, held in zip(self.run_dirs, self.paths, self.held):
                if not held or path in self.lost:
                    continue
                if (read_lock(run_dir) or {}).get("token") != self.record["token"]:
                    self.lost.append(path)  # taken over (our heartbeat looked stale): never touch theirs
                    continue
                try:
                    os.utime(path)
                except OSError:
                    pass  # the next beat tries again; a claim that stays stale reads as dead

    def _release(self) -> None:
        if self._released:
            return
        self._released = True
        for run_dir, held in zip(self.run_dirs, self.held):
            if held:
                release_claim(run_dir, self.record["token"])
