"""Trial locks: contents, heartbeat, removal on any exit, and running / stale decisions."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

from liftbench.locks import LOCK_FILE, STALE_AFTER_S, TrialLocks, is_running, lock_age_s, read_lock


def _age(path, seconds):
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_lock_written_refreshed_and_removed(tmp_path):
    dirs = [tmp_path / "runs" / "a", tmp_path / "runs" / "b"]  # a packed group holds one lock per member
    with TrialLocks(dirs, heartbeat_s=0.05):
        for d in dirs:
            info = read_lock(d)
            assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
            assert abs(info["started"] - time.time()) < 60
            _age(d / LOCK_FILE, 3600)
            assert lock_age_s(d) > 3000
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and max(lock_age_s(d) for d in dirs) > 60:
            time.sleep(0.02)
        assert all(lock_age_s(d) < 60 for d in dirs), "the heartbeat did not refresh the locks"
    assert not any((d / LOCK_FILE).exists() for d in dirs)


def test_lock_removed_when_the_block_raises(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with TrialLocks([tmp_path / "r"]):
            assert (tmp_path / "r" / LOCK_FILE).exists()
            raise KeyboardInterrupt
    assert not (tmp_path / "r" / LOCK_FILE).exists()


def test_lock_that_cannot_be_written_leaves_nothing(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(OSError):
        with TrialLocks([tmp_path / "ok", tmp_path / "file" / "run"]):
            pass
    assert not (tmp_path / "ok" / LOCK_FILE).exists()


def test_is_running_local_and_remote(tmp_path):
    lock = tmp_path / LOCK_FILE
    assert not is_running(tmp_path)  # no lock
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    assert is_running(tmp_path)
    lock.write_text(json.dumps({"pid": 2**22 + 17, "host": socket.gethostname()}))  # no such pid
    assert not is_running(tmp_path)
    lock.write_text(json.dumps({"pid": 1, "host": "another-node"}))  # a Ray trial elsewhere, fresh heartbeat
    assert is_running(tmp_path)
    _age(lock, STALE_AFTER_S + 5)  # that node stopped refreshing it
    assert not is_running(tmp_path)
    _age(lock, STALE_AFTER_S - 60)
    assert is_running(tmp_path)
    lock.write_text("{not json")
    assert not is_running(tmp_path)
    lock.write_text(json.dumps([1, 2]))
    assert not is_running(tmp_path)
