"""Executors give the same rows as the in-process runner; failures become error rows; runs resume.

The data is a tiny Human3.6M written to disk in the VideoPose3D layout (``fixtures.h36m``) and read
by the built-in ``h36m`` source through ``data_dir``: what a cluster does with a data path every node
can read. One in-process reference run (module fixture) is compared bitwise with every executor.
"""

import dataclasses
import json
import os
import shutil
import sys
import time

import numpy as np
import pytest
import torch

from liftbench.errors import ConfigError, MissingExtraError
from liftbench.locks import STALE_AFTER_S
from liftbench.pipeline import train_run
from liftbench.runner.executors import LocalPoolExecutor, SuiteCounts, get_executor
from liftbench.runner.status import suite_status, trial_note
from liftbench.runner.suite import run_suite
from liftbench.runner.trial import trial_status
from liftbench.suites import expand, load_suite

KEY = ["run_id", "metric", "slice_type", "slice", "test_noise"]
OVER = {"data.name": "h36m", "train.epochs": 1, "model.hidden_size": 8, "train.batch_size": 16}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from fixtures.h36m import write_h36m_fixture

    d = tmp_path_factory.mktemp("h36m")
    write_h36m_fixture(d, subjects=("S1", "S5", "S9"), actions=("Directions", "Walking 1"), n_frames=40, keypoints=())
    return d


@pytest.fixture(scope="module")
def specs():
    good = expand(load_suite("noise"), "smoke", overrides=OVER, test_noise=[0.0, 5.0])
    bad = dataclasses.replace(good[0].config, model_params={**good[0].config.model_params, "seq_len": 500})
    return good + [dataclasses.replace(good[0], variant="broken", config=bad)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir, specs):
    """The in-process run every executor must reproduce, at one torch thread like the workers."""
    out = tmp_path_factory.mktemp("reference")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows, _, results = run_suite(specs, out, out / "suite", data_dir=data_dir, device="cpu")
    finally:
        torch.set_num_threads(threads)
    assert [bool(r.error) for r in results] == [False, False, True]
    return out, rows


def _values(rows):
    ok = rows[rows["status"] == "ok"].assign(test_noise=lambda r: r["test_noise"].astype(float)).sort_values(KEY)
    return ok[KEY].astype(str).values.tolist(), ok["value"].to_numpy()


def _compare(local_rows, other_rows):
    k1, v1 = _values(local_rows)
    k2, v2 = _values(other_rows)
    assert len(k1) > 0 and k1 == k2 and np.array_equal(v1, v2)  # bitwise, not approximately
    errors = other_rows[other_rows["status"] == "error"]
    assert len(errors) == 2 and errors["variant"].eq("broken").all()  # one row per test condition
    assert all(isinstance(e, str) and e and "\n" not in e for e in errors["error"])


@pytest.mark.slow
def test_local_worker_pool_equals_in_process(tmp_path, data_dir, specs, reference):
    seen: list[tuple[SuiteCounts, list[str]]] = []

    def on_progress(counts):  # `liftbench status` from the run directories, while the pool runs
        states = [r["state"] for _, rows in suite_status(tmp_path / "suite") for r in rows]
        seen.append((dataclasses.replace(counts), states))

    pool = LocalPoolExecutor(2, threads=1, on_progress=on_progress)
    rows, _, results = run_suite(specs, tmp_path, tmp_path / "suite", data_dir=data_dir, device="cpu", executor=pool)
    _compare(reference[1], rows)
    assert [bool(r.error) for r in results] == [False, False, True]
    assert any("running" in states for _, states in seen)
    assert any(c.running for c, _ in seen)
    final = seen[-1][0]
    assert (final.done, final.failed, final.running, final.pending) == (2, 1, 0, 0)
    final_rows = {r["variant"]: r for _, rs in suite_status(tmp_path / "suite") for r in rs}
    assert {v: r["state"] for v, r in final_rows.items()} == {"seq2seq": "done", "mlp": "done", "broken": "failed"}
    assert final_rows["broken"]["note"] == results[2].error  # status shows why it failed
    # re-running on the pool trains and evaluates nothing
    _, _, again = run_suite(specs, tmp_path, tmp_path / "suite", data_dir=data_dir, device="cpu", executor=pool)
    assert not any(r.trained or r.evaluated for r in again)


@pytest.mark.slow
def test_bug_in_worker_is_one_error_row(tmp_path, data_dir, specs, reference):
    """A dataset registered by test code reaches the workers; its non-Liftbench exception is one row."""
    import fixtures.executor_plugins  # noqa: F401  (registers 'exploding' here; the workers import it themselves)

    shutil.copytree(reference[0] / "runs", tmp_path / "runs")
    boom = _on(specs[1], "exploding", "boom")
    rows, _, results = run_suite([specs[1], boom], tmp_path, tmp_path / "suite", data_dir=data_dir, device="cpu",
                                 executor=LocalPoolExecutor(2, threads=1))
    assert results[0].error == "" and not results[0].trained
    assert results[1].error.startswith("internal error ZeroDivisionError") and "\n" not in results[1].error
    assert rows["status"].value_counts().to_dict()["error"] == len(boom.test_noise)
    assert trial_status(boom, tmp_path) == "failed"


def _on(spec, dataset, variant):
    cfg = spec.config
    return dataclasses.replace(spec, variant=variant,
                               config=dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, name=dataset)))


@pytest.mark.slow
def test_dead_worker_fails_only_its_trial(tmp_path, data_dir, specs, reference):
    """A trial that kills its worker process fails alone; the trial that shared the pool is re-run and finishes."""
    import fixtures.executor_plugins  # noqa: F401

    shutil.copytree(reference[0] / "runs", tmp_path / "runs")
    crash, boom = _on(specs[1], "crashing", "crash"), _on(specs[1], "exploding", "boom")
    rows, _, results = run_suite([crash, boom, specs[1]], tmp_path, tmp_path / "suite", data_dir=data_dir,
                                 device="cpu", executor=LocalPoolExecutor(2, threads=1))
    assert results[0].error.startswith("worker process died")
    assert results[1].error.startswith("internal error ZeroDivisionError")
    assert results[2].error == ""
    assert (rows["status"] == "ok").sum() > 0 and set(rows[rows["status"] == "error"]["variant"]) == {"crash", "boom"}


@pytest.mark.slow
def test_killed_suite_resumes_only_missing_trials(tmp_path, data_dir, specs, reference):
    seq2seq, mlp = specs[0], specs[1]
    # mlp finished before the "kill"; seq2seq was killed mid-training (a checkpoint, no results, a stale lock)
    shutil.copytree(reference[0] / "runs" / mlp.run_id, tmp_path / "runs" / mlp.run_id)
    train_run(seq2seq.config, out_dir=tmp_path / "runs", data_dir=data_dir, device="cpu", resume=True,
              variant=seq2seq.variant, suite=seq2seq.suite, stop_after_steps=3)
    (tmp_path / "runs" / seq2seq.run_id / ".lock").write_text(
        json.dumps({"pid": 2**22 + 17, "host": os.uname().nodename}))
    assert trial_status(seq2seq, tmp_path) == "interrupted"
    assert trial_status(mlp, tmp_path) == "done"
    mlp_ckpt = (tmp_path / "runs" / mlp.run_id / "checkpoint.pt").stat().st_mtime_ns

    rows, _, results = run_suite(specs[:2], tmp_path, tmp_path / "suite", data_dir=data_dir, device="cpu",
                                 executor=LocalPoolExecutor(2, threads=1))
    assert [(r.trained, r.evaluated) for r in results] == [(True, 2), (False, 0)]
    assert (tmp_path / "runs" / mlp.run_id / "checkpoint.pt").stat().st_mtime_ns == mlp_ckpt
    ref = reference[1][reference[1]["variant"] != "broken"]
    k1, v1 = _values(ref)
    k2, v2 = _values(rows)
    assert k1 == k2 and np.array_equal(v1, v2)  # the resumed run matches the uninterrupted one bitwise


@pytest.mark.slow
def test_cli_workers_reuse_and_exit_code(tmp_path, data_dir, reference, run_cli):
    shutil.copytree(reference[0] / "runs", tmp_path / "runs")
    args = ["noise", "--sigma", "5", "--data", "h36m", "--set", "train.epochs=1", "--set", "model.hidden_size=8",
            "--set", "train.batch_size=16", "--workers", "2", "--out", str(tmp_path)]
    code, out, err = run_cli(*args, "--data-dir", str(data_dir))
    assert code == 0 and "0 trained now, 2 reused, 0 failed" in out and "done 2 · running 0" in out
    args[-1] = str(tmp_path / "fresh")
    code, out, err = run_cli(*args, "--data-dir", str(tmp_path / "missing"))  # every trial fails, none stops
    assert code == 1 and "2 failed" in out and "not a directory" in out


@pytest.mark.ray
def test_ray_executor_equals_local(tmp_path, data_dir, specs, reference):
    ray = pytest.importorskip("ray")
    try:
        executor = get_executor("ray", num_cpus=2, cpus_per_trial=1)
        rows, _, results = run_suite(specs, tmp_path, tmp_path / "suite", data_dir=data_dir, device="cpu",
                                     executor=executor)
        _compare(reference[1], rows)
        assert [bool(r.error) for r in results] == [False, False, True]
        _, _, again = run_suite(specs, tmp_path, tmp_path / "suite", data_dir=data_dir, device="cpu",
                                executor=executor)
        assert not any(r.trained or r.evaluated for r in again)
    finally:
        ray.shutdown()


def test_in_process_executor_catches_bugs(tmp_path, specs):
    import fixtures.executor_plugins  # noqa: F401

    cfg = specs[1].config
    boom = dataclasses.replace(
        specs[1], config=dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, name="exploding")))
    results = get_executor("local").map([boom], tmp_path, None, "cpu")
    assert results[0].error.startswith("internal error ZeroDivisionError: integer division or modulo by zero at ")


def test_missing_ray_is_one_line(monkeypatch, run_cli):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'liftbench\[ray\]'"):
        get_executor("ray")
    code, out, err = run_cli("run", "noise", "--executor", "ray", "--out", "/nonexistent/never-written")
    assert code == 2 and "pip install 'liftbench[ray]'" in err and len(err.strip().splitlines()) == 1


def test_executor_option_errors():
    with pytest.raises(ConfigError, match="Unknown executor 'slurm'"):
        get_executor("slurm")
    with pytest.raises(ConfigError, match="--workers must be >= 1"):
        get_executor("local", workers=0)
    with pytest.raises(ConfigError, match="only apply to --executor ray"):
        get_executor("local", gpus_per_trial=0.25)
    with pytest.raises(ConfigError, match="--device cuda:7"):
        get_executor("local", workers=2, devices=["cuda:7"])


@pytest.mark.ray
def test_ray_option_errors(specs):
    pytest.importorskip("ray")
    with pytest.raises(ConfigError, match="--gpus-per-trial must be"):
        get_executor("ray", gpus_per_trial=1.5)
    with pytest.raises(ConfigError, match="apply to --executor local"):
        get_executor("ray", workers=2)
    with pytest.raises(ConfigError, match="needs --gpus-per-trial > 0"):  # checked before Ray starts
        get_executor("ray").map(specs, "unused", None, "cuda:0")


def test_status_from_locks(tmp_path, specs):
    spec = specs[0]
    run_dir = tmp_path / "runs" / spec.run_id
    run_dir.mkdir(parents=True)
    assert trial_status(spec, tmp_path) == "pending"
    lock = run_dir / ".lock"
    lock.write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename}))
    assert trial_status(spec, tmp_path) == "running"
    lock.write_text(json.dumps({"pid": 1, "host": "another-node"}))  # a Ray task on another node
    assert trial_status(spec, tmp_path) == "running"
    assert "another-node pid 1, lock refreshed" in trial_note(run_dir, "running")
    stale = time.time() - STALE_AFTER_S - 5  # that node died: its heartbeat stopped
    os.utime(lock, (stale, stale))
    assert trial_status(spec, tmp_path) == "interrupted"
    lock.unlink()
    (run_dir / "error.txt").write_text("boom\n")
    assert trial_status(spec, tmp_path) == "failed"
