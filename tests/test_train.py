"""Trainer: determinism, exact resume after a kill, safe checkpoints, learning."""

import os
import pickle

import pytest
import torch
from fixtures.lifters import small_params

from liftbench.config import resolve_config
from liftbench.errors import CheckpointError
from liftbench.models import LIFTERS
from liftbench.pipeline import evaluate_run, load_run, train_run
from liftbench.train import learning_rate, load_checkpoint

SMALL = {"epochs": 2, "lr": 1e-3, "batch_size": 16, "data.name": "tiny"}
ALL_LIFTERS = LIFTERS.names()


def small_options(model: str, **extra) -> dict:
    """Seconds-long settings for any registered lifter: its size keys shrunk where it has them."""
    return {**SMALL, **small_params(model), **extra}


def _weights(run_dir):
    return load_checkpoint(run_dir / "checkpoint.pt")["model"]


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("model", ALL_LIFTERS)
def test_same_seed_same_weights(tmp_path, model):
    cfg = resolve_config(model, options=small_options(model))
    a = train_run(cfg, run_dir=tmp_path / "a", device="cpu")
    b = train_run(cfg, run_dir=tmp_path / "b", device="cpu")
    assert a.state.finished and _same(_weights(a.run_dir), _weights(b.run_dir))
    c = train_run(resolve_config(model, options=small_options(model, seed=1)), run_dir=tmp_path / "c", device="cpu")
    assert not _same(_weights(a.run_dir), _weights(c.run_dir))


@pytest.mark.parametrize("model", ALL_LIFTERS)
def test_killed_mid_epoch_then_resumed_equals_uninterrupted(tmp_path, model):
    cfg = resolve_config(model, options=small_options(model, epochs=3))
    full = train_run(cfg, run_dir=tmp_path / "full", device="cpu")
    part = train_run(cfg, run_dir=tmp_path / "part", device="cpu", stop_after_steps=5)  # "killed" in epoch 1
    assert not part.state.finished
    with pytest.raises(CheckpointError, match="--resume"):
        train_run(cfg, run_dir=tmp_path / "part", device="cpu")
    steps = part.state.global_step
    part = train_run(cfg, run_dir=tmp_path / "part", device="cpu", resume=True, stop_after_steps=steps + 3)
    part = train_run(cfg, run_dir=tmp_path / "part", device="cpu", resume=True)
    assert part.state.finished
    assert _same(_weights(full.run_dir), _weights(part.run_dir))
    assert [r["train_loss"] for r in full.state.history] == [r["train_loss"] for r in part.state.history]
    again = train_run(cfg, run_dir=tmp_path / "part", device="cpu")
    assert again.skipped


def test_crafted_checkpoint_cannot_run_code(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "checkpoint.pt"
    with open(path, "wb") as fh:
        pickle.dump({"format": 1, "model": Payload()}, fh)
    with pytest.raises(CheckpointError, match="safely"):
        load_checkpoint(path)
    assert not marker.exists()
    torch.save({"format": 1, "model": {}, "x": Payload()}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()


def test_lr_schedule_matches_reference():
    cfg = resolve_config("seq2seq").resolved_train()
    assert learning_rate(cfg, 0) == pytest.approx(1e-5)
    assert learning_rate(cfg, 100000) == pytest.approx(0.96e-5)
    assert learning_rate(cfg, 50000) == pytest.approx(1e-5 * 0.96 ** 0.5)


def test_test_error_falls_and_evaluate_writes_files(tmp_path):
    cfg = resolve_config("mlp", options={**SMALL, "epochs": 4, "hidden_size": 64})
    out = train_run(cfg, run_dir=tmp_path / "run", device="cpu")
    errors = [r["test_mpjpe"] for r in out.state.history]
    assert errors[-1] < errors[0]
    res = evaluate_run(out.run_dir, device="cpu", save_predictions=True)
    for name in ("results.csv", "protocol.json", "predictions.npz", "metrics.jsonl", "config.toml"):
        assert (out.run_dir / name).exists()
    assert res.card["frames"]["every_frame_exactly_once"]
    loaded = load_run(out.run_dir)
    assert loaded.config.config_hash() == cfg.config_hash()
