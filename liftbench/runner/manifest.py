"""A suite directory's manifest, shared by every suite process writing into it.

Why sessions: two suites may run into the same suite directory at once (two cluster jobs, or
``noise --sigma 5`` and ``noise --sigma 10``). Each process registers a *session* (host, pid, start,
its trials) in ``manifest.json`` and marks it finished at the end; the directory's ``runs`` (what
``liftbench status`` and the report list, and what ``results.csv`` holds rows of) are the union of
the trials of every session kept. A session is kept while it runs, and after it finished as long
as a kept session started before it finished (they overlapped: the later one must still see its
rows). A session that finished before every other one started is dropped, so running a suite again
with other options replaces the old trials as it always did. Every read-modify-write happens under
an exclusive ``filelock`` on ``.suite.lock`` and files are replaced atomically, so no session's
trials (or rows, see ``runner.run_suite``) are ever lost to a concurrent writer.

A session on another host cannot be checked for liveness: it is kept until it marks itself finished.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import filelock

from liftbench._files import write_json_atomic
from liftbench.config import config_from_dict
from liftbench.errors import DataError, LiftbenchError, one_line
from liftbench.locks import pid_alive, proc_start
from liftbench.suites import RunSpec

MANIFEST = "manifest.json"
SUITE_LOCK = ".suite.lock"
SUITE_LOCK_TIMEOUT_S = 600.0


def spec_key(spec: RunSpec) -> tuple[str, str, str, str]:
    """One trial of a suite directory: the same run under the same name and axis value."""
    return spec.run_id, spec.variant, spec.axis_key, json.dumps(spec.axis_value)


def spec_entry(spec: RunSpec) -> dict[str, Any]:
    return {"run_id": spec.run_id, "variant": spec.variant, "model": spec.config.model, "seed": spec.seed,
            "axis_key": spec.axis_key, "axis_value": spec.axis_value, "test_noise": list(spec.test_noise),
            "config": spec.config.to_dict()}


def spec_from_entry(entry: Any, suite: str, version: int, where: Path) -> RunSpec:
    """A manifest run entry back to a ``RunSpec``; anything malformed is one line naming the file."""

    try:
        noise = tuple(float(s) for s in entry["test_noise"])
        return RunSpec(suite, version, str(entry["variant"]), config_from_dict(entry["config"], str(where)), noise,
                       str(entry.get("axis_key") or ""), entry.get("axis_value"))
    except LiftbenchError as exc:
        raise DataError(f"{where} is not a valid suite manifest ({exc}); re-run the suite to rewrite it.") from exc
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"{where} is not a valid suite manifest (a run entry has no valid {exc}); re-run the suite "
                        "to rewrite it.") from exc


def read_manifest(path: Path) -> tuple[dict[str, Any], list[RunSpec]]:
    """The manifest and its trials; a missing, unreadable or malformed one is a one-line ``DataError``."""
    try:
        manifest = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not a readable suite manifest ({one_line(exc)}); re-run the "
                        "suite to rewrite it.") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("runs"), list):
        raise DataError(f"{path} is not a suite manifest (no 'runs' list); re-run the suite to rewrite it.")
    try:
        suite, version = str(manifest.get("suite", "")), int(manifest.get("version", 0))
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path} is not a valid suite manifest (version {manifest.get('version')!r} is not a "
                        "whole number); re-run the suite to rewrite it.") from exc
    return manifest, [spec_from_entry(r, suite, version, path) for r in manifest["runs"]]


def _live(session: dict[str, Any]) -> bool:
    if session.get("finished") is not None:
        return False
    if session.get("host") != socket.gethostname():
        return True  # cannot be checked from here: kept until it finishes
    return pid_alive(session)


def _kept(sessions: list[dict[str, Any]], mine: str) -> list[dict[str, Any]]:
    """Sessions to keep: this one, the live ones, and finished ones a kept session overlapped."""
    live = [s for s in sessions if s["token"] == mine or _live(s)]
    starts = [float(s.get("started", 0)) for s in live]
    return [s for s in sessions
            if s in live or (s.get("finished") is not None and any(t <= float(s["finished"]) for t in starts))]


def _valid_sessions(manifest: Any) -> list[dict[str, Any]]:
    sessions = manifest.get("sessions") if isinstance(manifest, dict) else None
    if not isinstance(sessions, list):
        return []  # none yet (or a manifest of an older liftbench): this session starts afresh
    ok = []
    for s in sessions:
        if isinstance(s, dict) and isinstance(s.get("token"), str) and isinstance(s.get("runs"), list):
            try:
                float(s.get("started", 0)), s.get("finished") is None or float(s["finished"])
            except (TypeError, ValueError):
                continue
            ok.append(s)
    return ok


class SuiteSession:
    """This process's session in a suite directory (see the module docstring)."""

    def __init__(self, directory: Path, specs: list[RunSpec], info: dict[str, Any]):
        self.directory = Path(directory)
        self.info = info
        self.session = {"token": secrets.token_hex(16), "host": socket.gethostname(), "pid": os.getpid(),
                        "proc_start": proc_start(os.getpid()), "started": time.time(), "finished": None,
                        "runs": [spec_entry(s) for s in specs]}

    @contextmanager
    def _suite_lock(self) -> Iterator[None]:
        lock = filelock.FileLock(str(self.directory / SUITE_LOCK), timeout=SUITE_LOCK_TIMEOUT_S)
        try:
            lock.acquire()
        except filelock.Timeout as exc:
            raise DataError(f"{self.directory / SUITE_LOCK} stayed locked for {SUITE_LOCK_TIMEOUT_S:.0f} s by another "
                            "suite; re-run once it has written its results.") from exc
        try:
            yield
        finally:
            lock.release()

    def _update(self, finished: bool) -> list[RunSpec]:
        """Under the suite lock: re-read the manifest, (re)record this session, rewrite it; returns the
        trials of every kept session (first-seen order, test conditions united). Call with the lock held."""
        path = self.directory / MANIFEST
        try:
            old = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            old = {}
        if finished:
            self.session["finished"] = time.time()
        sessions = [*(s for s in _valid_sessions(old) if s["token"] != self.session["token"]), self.session]
        kept = _kept(sessions, self.session["token"])
        merged: dict[tuple, RunSpec] = {}
        for s in kept:
            for entry in s["runs"]:
                try:
                    spec = spec_from_entry(entry, self.info.get("suite", ""), int(self.info.get("version", 0)), path)
                except DataError:
                    continue  # a damaged entry of another session: its rows stay in its run directory
                key = spec_key(spec)
                if key in merged:
                    noise = tuple(sorted({*merged[key].test_noise, *spec.test_noise}))
                    spec = RunSpec(spec.suite, spec.suite_version, spec.variant, merged[key].config, noise,
                                   spec.axis_key, spec.axis_value)
                merged[key] = spec
        specs = list(merged.values())
        write_json_atomic(path, {**self.info, "runs": [spec_entry(s) for s in specs], "sessions": kept})
        return specs

    def register(self) -> list[RunSpec]:
        """Record this session as running; returns every kept session's trials."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._suite_lock():
            return self._update(finished=False)

    def abandon(self) -> None:
        """Mark this session finished without writing suite files (it stopped: Ctrl-C or an error), so its
        trials stay listed (``liftbench status`` shows them interrupted) until a later suite replaces them,
        and a long-lived process does not keep them merged. Never raises: the caller handles an error."""
        try:
            with self._suite_lock():
                self._update(finished=True)
        except Exception:  # noqa: BLE001 - a session left behind reads as finished once this process exits
            pass

    def finish(self, write: Callable[[list[RunSpec]], Any]) -> Any:
        """Under the suite lock: mark this session finished and call ``write(specs)`` with every kept
        session's trials (the suite files are merged from them there); returns what ``write`` returns."""
        with self._suite_lock():
            return write(self._update(finished=True))
