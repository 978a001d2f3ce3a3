"""--tensorboard: the event file is read back (TensorBoard's own ``EventAccumulator``) and checked against
the run's metrics.jsonl, an independent record of the same epochs; a run's results and run id do not
depend on it; suites log each trial to its own run directory (in process, packed, and in a worker's
context); a missing extra is one line naming the pip command."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from fixtures.cli import assert_one_line_error

from liftbench.config import resolve_config
from liftbench.pipeline import train_run
from liftbench.runner.executors import InProcessExecutor, WorkerContext, run_trial_isolated
from liftbench.runner.options import ExecutionOptions
from liftbench.runner.suite import run_suite, suite_dir
from liftbench.suites import expand, load_suite
from liftbench.tensorboard_log import LOG_EVERY, TENSORBOARD_DIR

pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402

TINY = ["--data", "tiny", "--device", "cpu", "--set", "hidden_size=16", "--set", "batch_size=16"]


def events(run_dir) -> EventAccumulator:
    acc = EventAccumulator(str(run_dir / TENSORBOARD_DIR))
    acc.Reload()
    return acc


def scalars(acc: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def hparams(acc: EventAccumulator) -> dict:
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {k: (v.string_value or v.number_value or v.bool_value) for k, v in info.hparams.items()}


def metrics_log(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_train_writes_scalars_and_hparams_that_match_the_run(run_cli, tmp_path):
    code, out, err = run_cli("train", "mlp", *TINY, "--epochs", "2", "--out", tmp_path, "--tensorboard")
    assert code == 0, err
    (run_dir,) = [d for d in (tmp_path / "runs").iterdir() if d.is_dir()]
    assert f"tensorboard --logdir {run_dir / TENSORBOARD_DIR}" in " ".join(out.split())
    acc, log = events(run_dir), metrics_log(run_dir)
    assert [s for s, _ in scalars(acc, "epoch/train_loss")] == [1, 2]
    for tag, key in (("epoch/train_loss", "train_loss"), ("epoch/test_mpjpe_mm", "test_mpjpe"),
                     ("epoch/lr", "lr"), ("hparams/test_mpjpe_mm", "test_mpjpe")):
        np.testing.assert_allclose([v for _, v in scalars(acc, tag)], [r[key] for r in log], rtol=1e-6)  # float32
    steps = log[-1]["steps"]
    assert [s for s, _ in scalars(acc, "train/loss")] == list(range(LOG_EVERY, steps + 1, LOG_EVERY))
    assert all(v > 0 for _, v in scalars(acc, "perf/step_seconds"))
    config = json.loads((run_dir / "config.json").read_text())
    hp = hparams(acc)
    assert hp["run_id"] == run_dir.name == config["run_id"] and hp["model.name"] == "mlp"
    assert hp["train.batch_size"] == 16 and hp["model.hidden_size"] == 16 and hp["data.name"] == "tiny"
    assert "config/text_summary" in acc.Tags()["tensors"]


def _payload_equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_payload_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_payload_equal(x, y) for x, y in zip(a, b))
    return True  # scalars such as times and versions are not results


def test_results_and_run_ids_are_the_same_with_and_without_tensorboard(tmp_path):
    cfg = resolve_config("mlp", options={"data.name": "tiny", "train.epochs": 2},
                         overrides={"hidden_size": 16, "batch_size": 16})
    with_tb = train_run(cfg, out_dir=tmp_path / "a", device="cpu", tensorboard=True)
    without = train_run(cfg, out_dir=tmp_path / "b", device="cpu")
    assert with_tb.run_id == without.run_id and with_tb.run_dir.name == without.run_dir.name
    assert (with_tb.run_dir / TENSORBOARD_DIR).is_dir() and not (without.run_dir / TENSORBOARD_DIR).exists()
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in metrics_log(with_tb.run_dir)]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in metrics_log(without.run_dir)]
    a = torch.load(with_tb.run_dir / "checkpoint.pt", weights_only=True)
    b = torch.load(without.run_dir / "checkpoint.pt", weights_only=True)
    assert _payload_equal(a, b)
    assert json.loads((with_tb.run_dir / "config.json").read_text()) == \
        json.loads((without.run_dir / "config.json").read_text())


def _tiny_specs(seeds: int = 2):
    over = {"data.name": "tiny", "train.epochs": 1, "model.hidden_size": 8, "train.batch_size": 16}
    return expand(load_suite("noise"), "smoke", seeds=seeds, overrides=over, test_noise=[0.0], variants=["mlp"])


@pytest.mark.parametrize("pack", [1, 2])
def test_suite_logs_every_trial_to_its_own_run_dir(tmp_path, pack):
    specs = _tiny_specs()
    executor = ExecutionOptions(pack=pack, tensorboard=True).make_executor()
    assert isinstance(executor, InProcessExecutor) and executor.tensorboard
    rows, _, results = run_suite(specs, tmp_path, suite_dir(tmp_path, "noise", "smoke", "tiny"), device="cpu",
                                 executor=executor, pack=pack)
    assert not any(r.error for r in results)
    for spec, record in zip(specs, (metrics_log(tmp_path / "runs" / s.run_id) for s in specs)):
        acc = events(tmp_path / "runs" / spec.run_id)
        assert hparams(acc)["run_id"] == spec.run_id and hparams(acc)["train.seed"] == spec.config.train.seed
        np.testing.assert_allclose([v for _, v in scalars(acc, "epoch/test_mpjpe_mm")],
                                   [r["test_mpjpe"] for r in record], rtol=1e-6)


def test_a_worker_trial_logs_too(tmp_path):
    """What a local worker process or a Ray task runs: ``run_trial_isolated`` with the suite's context."""
    (spec,) = _tiny_specs(seeds=1)
    result = run_trial_isolated(spec, str(tmp_path), None, "cpu", WorkerContext(tensorboard=True))
    assert not result.error and scalars(events(tmp_path / "runs" / spec.run_id), "epoch/train_loss")
    pool = ExecutionOptions(workers=2, tensorboard=True).make_executor()
    assert pool.tensorboard  # the pool hands it to its workers' WorkerContext


def test_missing_extra_is_one_line(run_cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    code, _, err = run_cli("train", "mlp", *TINY, "--epochs", "1", "--out", tmp_path, "--tensorboard")
    assert_one_line_error(code, err, "--tensorboard needs TensorBoard", "pip install 'liftbench[tensorboard]'")
    assert not (tmp_path / "runs").exists()  # refused before any work
    code, _, err = run_cli("noise", "--sigma", "0", *TINY[:4], "--out", tmp_path, "--tensorboard")
    assert_one_line_error(code, err, "pip install 'liftbench[tensorboard]'")
