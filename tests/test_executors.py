"""Executors give the same rows as the in-process runner; failures become error rows."""

import dataclasses

import numpy as np
import pytest

from liftbench.errors import ConfigError
from liftbench.executors import get_executor
from liftbench.runner import run_suite
from liftbench.suites import expand, load_suite

KEY = ["run_id", "metric", "slice_type", "slice", "test_noise"]
OVER = {"data.name": "tiny", "train.epochs": 1, "model.hidden_size": 8, "train.batch_size": 16}


def _specs(tmp_path):
    specs = expand(load_suite("noise"), "smoke", overrides=OVER, test_noise=[0.0, 5.0])
    bad = dataclasses.replace(specs[0].config, model_params={**specs[0].config.model_params, "seq_len": 500})
    return specs + [dataclasses.replace(specs[0], variant="broken", config=bad)]


def _values(rows):
    ok = rows[rows["status"] == "ok"].sort_values(KEY)
    return ok[KEY].astype(str).values.tolist(), ok["value"].to_numpy()


def _compare(local_rows, other_rows):
    k1, v1 = _values(local_rows)
    k2, v2 = _values(other_rows)
    assert k1 == k2 and np.array_equal(v1, v2)
    assert (other_rows["status"] == "error").sum() == 2  # the broken trial, one row per test condition


@pytest.mark.slow
def test_local_worker_pool_equals_in_process(tmp_path):
    specs = _specs(tmp_path)
    rows_a, _, res_a = run_suite(specs, tmp_path / "a", tmp_path / "a" / "suite", device="cpu")
    pool = get_executor("local", workers=2)
    rows_b, _, res_b = run_suite(specs, tmp_path / "b", tmp_path / "b" / "suite", device="cpu", executor=pool)
    _compare(rows_a, rows_b)
    assert [bool(r.error) for r in res_b] == [False, False, True]
    # re-running on the pool trains nothing
    _, _, again = run_suite(specs, tmp_path / "b", tmp_path / "b" / "suite", device="cpu", executor=pool)
    assert not any(r.trained for r in again)


@pytest.mark.ray
def test_ray_executor_equals_local(tmp_path):
    ray = pytest.importorskip("ray")
    specs = _specs(tmp_path)
    rows_a, _, _ = run_suite(specs, tmp_path / "a", tmp_path / "a" / "suite", device="cpu")
    try:
        rows_b, _, res_b = run_suite(specs, tmp_path / "b", tmp_path / "b" / "suite", device="cpu",
                                     executor=get_executor("ray", cpus_per_trial=1))
        _compare(rows_a, rows_b)
        _, _, again = run_suite(specs, tmp_path / "b", tmp_path / "b" / "suite", device="cpu",
                                executor=get_executor("ray", cpus_per_trial=1))
        assert not any(r.trained for r in again)
    finally:
        ray.shutdown()


def test_unknown_executor():
    with pytest.raises(ConfigError, match="Unknown executor 'slurm'"):
        get_executor("slurm")
