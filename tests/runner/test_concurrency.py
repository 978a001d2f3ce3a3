"""Two processes never train the same run: claims, waiting for a live owner, taking a dead one over,
and suite files that keep the rows of every suite writing into one directory.

Real processes: the suites run as separate ``python`` processes (the CLI, or ``runner.run_suite``)
on a tiny Human3.6M written in code (``fixtures.h36m``). Every training is counted by wrapping
``train.fit_members`` (one line per run trained, appended by the process that trains it), and
training is slowed down so the processes really overlap.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liftbench.locks import TrialLocks, read_lock
from liftbench.results import read_rows
from liftbench.runner.manifest import SuiteSession
from liftbench.runner.status import suite_status, trial_note
from liftbench.runner.suite import run_suite, suite_rows, write_suite_files
from liftbench.runner.trial import run_trial, trial_status
from liftbench.suites import expand, load_suite

HOST = socket.gethostname()
TESTS = Path(__file__).resolve().parent
KEY = ["run_id", "metric", "slice_type", "slice", "test_noise"]

SUITE_TOML = """
name = "race"
version = 1
description = "two processes, one --out"
test_noise = [0.0, 5.0]

[[variants]]
name = "mlp"
model = "mlp"

[[variants]]
name = "mlp_nodrop"
model = "mlp"
params = { dropout = 0.0 }

[presets.smoke.all.train]
epochs = 1
batch_size = 16

[presets.smoke.mlp.model]
hidden_size = 8
"""

# Counts trainings (one line "run_id pid" per trained run, O_APPEND) and slows them down; then runs
# either the CLI (argv) or, with H3_MODE=hold, claims a run, trains it part-way and keeps the claim.
HARNESS = r"""
import json, os, sys, time
from pathlib import Path
import liftbench.pipeline as pipeline
import liftbench.train as train

real = train.fit_members

def counted(members, **kw):
    with open(os.environ["H3_COUNTER"], "a") as fh:
        fh.write("".join(f"{m.run_dir.name} {os.getpid()}\n" for m in members))
    time.sleep(float(os.environ.get("H3_DELAY", "0")))
    return real(members, **kw)

pipeline.fit_members = train.fit_members = counted
from liftbench.cli import main

barrier = os.environ.get("H3_BARRIER")
if barrier:  # start together: every process imported, then all go
    Path(barrier, str(os.getpid())).touch()
    while len(list(Path(barrier).iterdir())) < int(os.environ["H3_PARTIES"]):
        time.sleep(0.05)
if os.environ.get("H3_MODE") == "hold":
    from liftbench.config import config_from_dict
    from liftbench.locks import TrialLocks
    cfg = config_from_dict(json.loads(os.environ["H3_CONFIG"]))
    runs = Path(os.environ["H3_OUT"]) / "runs"
    with TrialLocks([runs / cfg.run_id]) as claim:
        assert claim.held[0]
        pipeline.train_run(cfg, out_dir=runs, data_dir=os.environ["H3_DATA"], device="cpu", resume=True,
                           stop_after_steps=3)
        print("holding", flush=True)
        time.sleep(600)
code = main(sys.argv[1:])
if os.environ.get("H3_COPY"):  # this process's view of the suite's results.csv when it finished
    suite = next(Path(os.environ["H3_OUT"]).glob("race-*"))
    Path(os.environ["H3_COPY"]).write_bytes((suite / "results.csv").read_bytes())
sys.exit(code)
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from fixtures.h36m import write_h36m_fixture

    d = tmp_path_factory.mktemp("h36m")
    write_h36m_fixture(d, subjects=("S1", "S5", "S9"), actions=("Directions", "Walking 1"), n_frames=40, keypoints=())
    return d


@pytest.fixture
def setup(tmp_path):
    (tmp_path / "race.toml").write_text(SUITE_TOML)
    (tmp_path / "harness.py").write_text(HARNESS)
    return tmp_path


def _specs(setup, seeds=1):
    return expand(load_suite(setup / "race.toml"), "smoke", seeds=seeds, overrides={"data.name": "h36m"})


def _harness(setup, args, env, **popen):
    full = {**os.environ, "OMP_NUM_THREADS": "1", "H3_COUNTER": str(setup / "trained.txt"),
            "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]), **env}
    return subprocess.Popen([sys.executable, str(setup / "harness.py"), *map(str, args)], env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _trained(setup) -> list[tuple[str, int]]:
    path = setup / "trained.txt"
    lines = path.read_text().split() if path.exists() else []
    return [(run_id, int(pid)) for run_id, pid in zip(lines[::2], lines[1::2])]


def _values(rows):
    ok = rows[rows["status"] == "ok"].assign(test_noise=lambda r: r["test_noise"].astype(float)).sort_values(KEY)
    return ok[KEY].astype(str).values.tolist(), ok["value"].to_numpy()


def _conditions(rows) -> dict[str, list[float]]:
    """run_id -> the test noise levels it has rows for."""
    return rows.groupby("run_id")["test_noise"].agg(lambda v: sorted(set(v.astype(float)))).to_dict()


def _same(a, b) -> bool:
    """The same ok rows (keys) with bitwise equal values, and not none."""
    (k1, v1), (k2, v2) = _values(a), _values(b)
    return len(k1) > 0 and k1 == k2 and np.array_equal(v1, v2)


@pytest.mark.slow
def test_two_suites_into_one_out_train_every_run_once(setup, data_dir):
    """Two identical `liftbench run` processes started together into the same --out."""
    out = setup / "out"
    (setup / "barrier").mkdir()
    args = ["run", setup / "race.toml", "--data", "h36m", "--data-dir", data_dir, "--seeds", "2", "--out", out]
    procs = [_harness(setup, args, {"H3_BARRIER": str(setup / "barrier"), "H3_PARTIES": "2", "H3_DELAY": "2",
                                    "H3_OUT": str(out), "H3_COPY": str(setup / f"copy{k}.csv")}) for k in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (stdout, stderr) in zip(procs, outputs):
        assert p.returncode == 0, stdout + stderr
        assert "0 failed" in stdout
    specs = _specs(setup, seeds=2)
    trained = _trained(setup)
    assert sorted(r for r, _ in trained) == sorted(s.run_id for s in specs)  # each run trained exactly once
    assert {pid for _, pid in trained} == {p.pid for p in procs}  # ...and both processes did train (they overlapped)
    counts = [int(stdout.split(" trained now")[0].rsplit(" ", 1)[-1]) for stdout, _ in outputs]
    assert sum(counts) == len(specs)  # the other's runs are reported as reused, not as trained

    final = (next(out.glob("race-*")) / "results.csv").read_bytes()
    assert (setup / "copy0.csv").read_bytes() == (setup / "copy1.csv").read_bytes() == final
    rows = read_rows(next(out.glob("race-*")) / "results.csv")
    assert (rows["status"] == "ok").all()
    assert _conditions(rows) == {s.run_id: [0.0, 5.0] for s in specs}  # every run, every condition
    for s in specs:  # the suite's rows are the run directories' rows
        own = read_rows(out / "runs" / s.run_id / "results.csv")
        assert _same(own, rows[rows["run_id"] == s.run_id])
    assert all(trial_status(s, out) == "done" for s in specs)
    assert not list((out / "runs").glob("*/.lock"))  # every claim released


@pytest.mark.slow
def test_a_run_claimed_by_a_live_process_is_waited_for_and_its_rows_picked_up(setup, data_dir, monkeypatch):
    import liftbench.pipeline as pipeline

    out = setup / "out"
    specs = _specs(setup)
    busy, free = specs
    owner_suite = setup / "owner.toml"  # another suite holding only the busy run
    second = '[[variants]]\nname = "mlp_nodrop"\nmodel = "mlp"\nparams = { dropout = 0.0 }\n'
    assert second in SUITE_TOML
    owner_suite.write_text(SUITE_TOML.replace(second, "").replace('name = "race"', 'name = "owner"'))
    owner = _harness(setup, ["run", owner_suite, "--data", "h36m", "--data-dir", data_dir, "--out", out],
                     {"H3_DELAY": "6", "H3_OUT": str(out)})
    run_dir = out / "runs" / busy.run_id
    deadline = time.monotonic() + 120
    while (read_lock(run_dir) or {}).get("pid") != owner.pid:
        assert time.monotonic() < deadline and owner.poll() is None, owner.communicate()
        time.sleep(0.1)

    trained_here: list[str] = []
    real = pipeline.fit_members
    monkeypatch.setattr(pipeline, "fit_members", lambda members, **kw: (
        trained_here.extend(m.run_dir.name for m in members), real(members, **kw))[1])
    seen = []

    def on_progress(counts):
        if counts.waiting_for:
            seen.append((counts.waiting_for, trial_status(busy, out), trial_note(run_dir, "running")))

    from liftbench.runner.executors import InProcessExecutor

    rows, _, results = run_suite(specs, out, setup / "suite", data_dir=data_dir, device="cpu",
                                 executor=InProcessExecutor(on_progress=on_progress))
    stdout, stderr = owner.communicate(timeout=300)
    assert owner.returncode == 0, stdout + stderr
    assert trained_here == [free.run_id]  # the busy run was trained by its owner only
    assert _trained(setup) == [(busy.run_id, owner.pid)]
    assert seen and all(w == (f"{HOST} pid {owner.pid}",) for w, _, _ in seen)
    # `liftbench status` meanwhile: the owner's trial runs there (or has just finished)
    assert {state for _, state, _ in seen} <= {"running", "done"} and seen[0][1] == "running"
    assert all(note.startswith(f"{HOST} pid {owner.pid}") for _, state, note in seen if state == "running")
    assert [(r.trained, bool(r.error), r.waiting_for) for r in results] == [(False, False, ""), (True, False, "")]
    owners_rows = read_rows(run_dir / "results.csv")
    assert _same(owners_rows, rows[rows["run_id"] == busy.run_id])


@pytest.mark.slow
def test_a_claim_whose_owner_dies_is_taken_over_and_resumed(setup, data_dir, monkeypatch):
    """The owner is killed (SIGKILL) while we wait for it: we take the claim over and resume its checkpoint;
    the numbers equal an uninterrupted run's."""
    import liftbench.pipeline as pipeline
    from liftbench.runner.executors import InProcessExecutor
    from liftbench.train import CHECKPOINT

    out = setup / "out"
    spec = _specs(setup)[0]
    owner = _harness(setup, [], {"H3_MODE": "hold", "H3_CONFIG": json.dumps(spec.config.to_dict()),
                                 "H3_OUT": str(out), "H3_DATA": str(data_dir)})
    assert owner.stdout.readline().strip() == "holding", owner.communicate()
    run_dir = out / "runs" / spec.run_id
    assert (run_dir / CHECKPOINT).exists() and trial_status(spec, out) == "running"

    resumed_from: list[bool] = []
    real = pipeline.fit_members
    monkeypatch.setattr(pipeline, "fit_members", lambda members, **kw: (
        resumed_from.extend((m.run_dir / CHECKPOINT).exists() for m in members), real(members, **kw))[1])

    def on_progress(counts):
        if counts.waiting_for and owner.poll() is None:
            assert counts.waiting_for == (f"{HOST} pid {owner.pid}",)
            owner.send_signal(signal.SIGKILL)
            owner.wait(timeout=60)

    rows, _, results = run_suite([spec], out, setup / "suite", data_dir=data_dir, device="cpu",
                                 executor=InProcessExecutor(on_progress=on_progress))
    assert owner.returncode == -signal.SIGKILL
    assert results[0].error == "" and results[0].trained and resumed_from == [True]
    ref_rows, _, _ = run_suite([spec], setup / "ref", setup / "ref" / "suite", data_dir=data_dir, device="cpu")
    assert _same(ref_rows, rows)  # resumed == uninterrupted, bitwise
    assert not (run_dir / ".lock").exists()


@pytest.mark.slow
def test_pool_workers_wait_for_a_claimed_run_then_train_it(setup, data_dir):
    """--workers 2: a worker finding the run claimed comes back waiting; the driver retries it after the
    others and, once the claim is gone (released here), a worker trains it."""
    from liftbench.runner.executors import LocalPoolExecutor

    out = setup / "out"
    specs = _specs(setup)
    claim = TrialLocks([out / "runs" / specs[0].run_id])
    claim.__enter__()
    seen = []

    def on_progress(counts):
        if counts.waiting_for and not seen:
            seen.append((counts.waiting, counts.waiting_for, trial_status(specs[0], out)))
            claim.__exit__(None, None, None)  # the owner finishes without training it: a worker must

    try:
        _, _, results = run_suite(specs, out, setup / "suite", data_dir=data_dir, device="cpu",
                                  executor=LocalPoolExecutor(2, threads=1, on_progress=on_progress))
    finally:
        claim.__exit__(None, None, None)
    assert seen == [(1, (f"{HOST} pid {os.getpid()}",), "running")]
    assert [(r.trained, r.error, r.waiting_for) for r in results] == [(True, "", ""), (True, "", "")]
    assert _conditions(read_rows(setup / "suite" / "results.csv")) == {s.run_id: [0.0, 5.0] for s in specs}


def test_a_packed_group_trains_only_the_members_it_claimed(tmp_path):
    from liftbench.runner.packing import pack_signature, train_specs_packed
    from liftbench.train import CHECKPOINT

    (tmp_path / "race.toml").write_text(SUITE_TOML)
    specs = expand(load_suite(tmp_path / "race.toml"), "smoke", seeds=2, overrides={"data.name": "tiny"})
    busy, free = [s for s in specs if s.variant == "mlp"]  # seeds 0 and 1: one pack group
    assert pack_signature(busy.config) == pack_signature(free.config)
    with TrialLocks([tmp_path / "runs" / busy.run_id]) as other:
        assert train_specs_packed([busy, free], tmp_path, device="cpu") == ""
        assert trial_status(free, tmp_path) == "trained"
        assert not (tmp_path / "runs" / busy.run_id / CHECKPOINT).exists()  # not touched: another process's
        assert read_lock(tmp_path / "runs" / busy.run_id)["token"] == other.record["token"]
    assert not (tmp_path / "runs" / free.run_id / ".lock").exists()


def test_concurrent_suite_sessions_keep_each_others_rows(tmp_path):
    """Suite X (test noise 0) still running in another process while suite Y (test noise 5) finishes into
    the same suite directory: Y's results.csv has X's finished rows too, and X's final write keeps Y's."""
    (tmp_path / "race.toml").write_text(SUITE_TOML)
    over = {"data.name": "tiny"}
    suite = load_suite(tmp_path / "race.toml")
    specs_x = expand(suite, "smoke", overrides=over, test_noise=[0.0])
    specs_y = expand(suite, "smoke", overrides=over, test_noise=[5.0])
    directory = tmp_path / "suite"
    x = SuiteSession(directory, specs_x, {"suite": "race", "version": 1})  # registered by a live process (this one)
    x.register()
    x_results = [run_trial(specs_x[0], tmp_path)]  # X has finished its first trial; its second is not started

    rows_y, _, _ = run_suite(specs_y, tmp_path, directory, device="cpu")
    on_file = read_rows(directory / "results.csv")
    assert _conditions(on_file) == {specs_x[0].run_id: [0.0, 5.0], specs_x[1].run_id: [5.0]}  # X's 2nd: no rows yet
    x_rows = on_file[(on_file["run_id"] == specs_x[0].run_id) & (on_file["test_noise"].astype(float) == 0.0)]
    assert _same(x_rows, x_results[0].rows)
    assert set(rows_y["test_noise"].astype(float)) == {5.0}  # run_suite returns its own rows only
    manifest = json.loads((directory / "manifest.json").read_text())
    assert sorted((r["run_id"], r["test_noise"]) for r in manifest["runs"]) == sorted(
        (s.run_id, [0.0, 5.0]) for s in specs_x)
    assert [len(rows) for _, rows in suite_status(directory)] == [2]

    x_results.append(run_trial(specs_x[1], tmp_path))
    x.finish(lambda every: write_suite_files(directory, suite_rows(every, x_results, tmp_path)))
    on_file = read_rows(directory / "results.csv")
    assert _conditions(on_file) == {s.run_id: [0.0, 5.0] for s in specs_x}
    summary = pd.read_csv(directory / "summary.csv")
    assert set(summary["test_noise"]) == {0.0, 5.0} and (summary["n"] == 1).all()

    # Later, alone: the directory holds this suite's trials only, as a re-run always did.
    run_suite(specs_y, tmp_path, directory, device="cpu")
    assert set(read_rows(directory / "results.csv")["test_noise"].astype(float)) == {5.0}
    assert len(json.loads((directory / "manifest.json").read_text())["sessions"]) == 1


def test_a_stopped_suite_stays_listed_until_a_later_suite_replaces_it(tmp_path):
    from liftbench.errors import ConfigError
    from liftbench.runner.executors import LocalPoolExecutor

    (tmp_path / "race.toml").write_text(SUITE_TOML)
    specs = expand(load_suite(tmp_path / "race.toml"), "smoke", overrides={"data.name": "tiny"}, test_noise=[0.0])
    directory = tmp_path / "suite"
    with pytest.raises(ConfigError, match="--pack"):  # stops after registering its session
        run_suite(specs, tmp_path, directory, device="cpu", executor=LocalPoolExecutor(2, threads=1), pack=2)
    manifest = json.loads((directory / "manifest.json").read_text())
    assert [s["finished"] is not None for s in manifest["sessions"]] == [True]  # not live, though this pid is
    assert [r["state"] for _, rows in suite_status(directory) for r in rows] == ["pending", "pending"]
    run_suite(specs[:1], tmp_path, directory, device="cpu")
    assert [r["run_id"] for r in json.loads((directory / "manifest.json").read_text())["runs"]] == [specs[0].run_id]
    assert set(read_rows(directory / "results.csv")["run_id"]) == {specs[0].run_id}


@pytest.mark.parametrize("content", [b"{}", b"[]", b'{"runs": 5}', b'{"runs": [{"variant": "x"}]}',
                                     b'{"runs": [], "version": "abc"}', b'{"runs": [{"variant": "x", "config": 3, '
                                     b'"test_noise": [0]}]}', b"\x00\xff\x13binary", b""])
def test_status_on_a_malformed_manifest_is_one_line(tmp_path, run_cli, content):
    suite = tmp_path / "race-smoke-h36m"
    suite.mkdir()
    (suite / "manifest.json").write_bytes(content)
    for target in (suite, tmp_path):  # the suite directory, or the results root holding it
        code, out, err = run_cli("status", target)
        assert code == 2, out + err
        assert len(err.strip().splitlines()) == 1 and str(suite / "manifest.json") in " ".join(err.split())
        assert "Traceback" not in out + err
