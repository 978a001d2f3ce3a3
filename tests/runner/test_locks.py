"""Trial locks: contents, heartbeat, removal on any exit, and running / stale decisions."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

from liftbench.locks import LOCK_FILE, STALE_AFTER_S, UNREADABLE_GRACE_S, TrialLocks, is_running, lock_age_s, read_lock


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
    lock.write_text("{not json")  # unreadable: may be a claim being written, until it is old
    assert is_running(tmp_path)
    _age(lock, UNREADABLE_GRACE_S + 5)
    assert not is_running(tmp_path)
    lock.write_text(json.dumps([1, 2]))
    _age(lock, UNREADABLE_GRACE_S + 5)
    assert not is_running(tmp_path)


# ------------------------------------------------------------------ exclusive claims
HOST = socket.gethostname()
DEAD_PID = 2**22 + 17  # above Linux's default pid_max: no such process


def test_a_live_claim_is_neither_taken_nor_deleted(tmp_path):
    run = tmp_path / "r"
    with TrialLocks([run]) as first:
        assert first.held == [True] and first.owner(0) == ""
        before = (run / LOCK_FILE).read_bytes()
        with TrialLocks([run]) as second:  # another claimant: a live owner holds it (this very process)
            assert second.held == [False] and second.owner(0) == f"{HOST} pid {os.getpid()}"
        assert (run / LOCK_FILE).read_bytes() == before  # the loser deleted nothing, rewrote nothing
        assert read_lock(run)["token"] == first.record["token"]
    assert not (run / LOCK_FILE).exists()


@pytest.mark.parametrize("case", ["dead_pid", "recycled_pid", "stale_remote", "old_unreadable"])
def test_a_dead_owners_claim_is_taken_over(tmp_path, case):
    run = tmp_path / "r"
    run.mkdir()
    lock = run / LOCK_FILE
    if case == "dead_pid":
        lock.write_text(json.dumps({"pid": DEAD_PID, "host": HOST, "token": "dead"}))
    elif case == "recycled_pid":  # the pid exists now, but it is another process than the one that claimed
        lock.write_text(json.dumps({"pid": os.getpid(), "host": HOST, "proc_start": "1", "token": "dead"}))
    elif case == "stale_remote":
        lock.write_text(json.dumps({"pid": 1, "host": "node-that-died", "token": "dead"}))
        _age(lock, STALE_AFTER_S + 5)
    else:
        lock.write_text('{"pid": 12')  # a crash while an old liftbench wrote it
        _age(lock, UNREADABLE_GRACE_S + 5)
    assert not is_running(run)
    with TrialLocks([run]) as claim:
        assert claim.held == [True]
        info = read_lock(run)
        assert info["token"] == claim.record["token"] and info["pid"] == os.getpid() and info["host"] == HOST
    assert not lock.exists()


def test_a_fresh_remote_claim_is_respected(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    theirs = {"pid": 1, "host": "node-b", "token": "theirs"}
    (run / LOCK_FILE).write_text(json.dumps(theirs))
    _age(run / LOCK_FILE, STALE_AFTER_S - 60)  # heartbeat late, but not stale yet
    with TrialLocks([run]) as claim:
        assert claim.held == [False] and claim.owner(0) == "node-b pid 1"
    assert read_lock(run) == theirs


def test_release_never_deletes_a_claim_it_does_not_own(tmp_path):
    run = tmp_path / "r"
    theirs = {"pid": 1, "host": "node-b", "token": "theirs"}
    with TrialLocks([run], heartbeat_s=0.05) as claim:
        (run / LOCK_FILE).write_text(json.dumps(theirs))  # taken over behind our back (our heartbeat looked stale)
        _age(run / LOCK_FILE, 100)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not claim.lost:
            time.sleep(0.02)
        assert claim.lost == [run / LOCK_FILE]
        time.sleep(0.2)
        assert lock_age_s(run) > 50  # our heartbeat does not refresh their claim
    assert read_lock(run) == theirs


def test_a_group_claims_only_its_free_members(tmp_path):
    a, b, c = (tmp_path / n for n in "abc")
    with TrialLocks([b]) as other:
        with TrialLocks([a, b, c]) as group:
            assert group.held == [True, False, True] and not group.all_held
            assert read_lock(b)["token"] == other.record["token"]
        assert not (a / LOCK_FILE).exists() and not (c / LOCK_FILE).exists()
        assert read_lock(b)["token"] == other.record["token"]


RACER = r"""
import json, sys, time
from pathlib import Path
import liftbench.locks as locks
real_age = locks.lock_age_s
def slow_age(run_dir):  # widen the window between judging a claim dead and acting on it
    age = real_age(run_dir)
    time.sleep(0.3)
    return age
locks.lock_age_s = slow_age
run, start = Path(sys.argv[1]), float(sys.argv[2])
while time.time() < start:
    pass
with locks.TrialLocks([run]) as claim:
    print(json.dumps({"held": claim.held[0], "owner": claim.owner(0)}), flush=True)
    if claim.held[0]:
        time.sleep(3)  # stay alive and holding while the others look
"""


@pytest.mark.parametrize("stale", [True, False], ids=["stale_claim", "no_claim"])
def test_processes_racing_for_one_claim_one_wins(tmp_path, stale):
    import subprocess
    import sys

    run = tmp_path / "r"
    run.mkdir()
    if stale:
        (run / LOCK_FILE).write_text(json.dumps({"pid": DEAD_PID, "host": HOST, "token": "dead"}))
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    start = time.time() + 3.0  # every racer imported and spinning by then
    procs = [subprocess.Popen([sys.executable, str(script), str(run), str(start)], stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    outcomes = []
    for p in procs:
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0
        outcomes.append((p.pid, json.loads(out)))
    winners = [pid for pid, o in outcomes if o["held"]]
    assert len(winners) == 1, outcomes
    assert all(o["owner"] == f"{HOST} pid {winners[0]}" for pid, o in outcomes if pid != winners[0])
    assert not (run / LOCK_FILE).exists()  # the winner released its own claim; the stale one is gone


def test_without_hard_links_claims_are_created_exclusively(tmp_path, monkeypatch):
    import errno

    def no_links(src, dst):
        raise OSError(errno.EPERM, "hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    run = tmp_path / "r"
    with TrialLocks([run]) as first:
        assert first.held == [True] and read_lock(run)["token"] == first.record["token"]
        with TrialLocks([run]) as second:
            assert second.held == [False]
    assert not (run / LOCK_FILE).exists() and [p.name for p in run.iterdir()] == [".lock.guard"]  # no temp left


def test_a_young_unreadable_claim_is_respected(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / LOCK_FILE).write_text("")  # being written by another process right now
    with TrialLocks([run]) as claim:
        assert claim.held == [False] and claim.owner(0) == "unknown owner"
    assert (run / LOCK_FILE).read_text() == ""


def test_standalone_train_refuses_a_run_another_live_process_claimed(tmp_path, run_cli):
    """`liftbench train` claims its run as suites do: a live owner (here: this test's claim on the run
    directory, as another process would hold it) makes it exit 2 naming the owner, and leaves the claim."""
    from liftbench.config import resolve_config

    cfg = resolve_config("mlp", options={"data.name": "tiny"}, overrides={"hidden_size": 8, "epochs": 1})
    run_dir = tmp_path / "runs" / cfg.run_id
    with TrialLocks([run_dir]) as other:
        assert other.held[0]
        code, _, err = run_cli("train", "mlp", "--data", "tiny", "--set", "hidden_size=8", "--epochs", "1",
                               "--out", tmp_path, "--device", "cpu")
        assert code == 2 and "is being trained by" in err and len(err.strip().splitlines()) == 1
        assert (run_dir / LOCK_FILE).exists() and not (run_dir / "checkpoint.pt").exists()
    code, _, err = run_cli("train", "mlp", "--data", "tiny", "--set", "hidden_size=8", "--epochs", "1",
                           "--out", tmp_path, "--device", "cpu")
    assert code == 0, err
    assert (run_dir / "checkpoint.pt").exists() and not (run_dir / LOCK_FILE).exists()
