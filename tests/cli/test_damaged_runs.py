"""A damaged checkpoint or run.json, and a run whose data changed since it was trained: one line and exit 2,
never a traceback or a silently reused run trained on other data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures.cli import assert_one_line_error, copy_run

from liftbench.config import resolve_config
from liftbench.data import DATASETS, DatasetSource, PoseDataset
from liftbench.pipeline import train_run
from liftbench.train import CHECKPOINT

TINY = {"data.name": "tiny", "hidden_size": 8, "epochs": 1, "batch_size": 16, "lr": 1e-3}
TRAIN_ARGS = ["--data", "tiny", "--epochs", "1", "--set", "hidden_size=8", "--set", "batch_size=16", "--set", "lr=1e-3",
              "--device", "cpu"]


# ------------------------------------------------------------------ damaged checkpoints and run.json


def _damage(run_dir: Path, edit) -> None:
    path = run_dir / CHECKPOINT
    ckpt = torch.load(path, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, path)


def _first_weight(ckpt) -> str:
    return next(k for k, v in ckpt["model"].items() if v.dim() == 2)


DAMAGES = {
    "missing key": (lambda c: c.pop("epoch"), "missing key(s) epoch"),
    "wrong type": (lambda c: c.__setitem__("epoch", "3"), "'epoch' is a str"),
    "history type": (lambda c: c.__setitem__("history", [{"epoch": torch.zeros(2)}]), "'history'"),
    "weight shape": (lambda c: c["model"].__setitem__(_first_weight(c), torch.zeros(3, 3)), "does not fit"),
    "missing weight": (lambda c: c["model"].pop(_first_weight(c)), "does not fit"),
    "config": (lambda c: c.__setitem__("config", {"model": 5}), "'config'"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_checkpoint_evaluate_is_one_line(runs, tmp_path, run_cli, damage):
    run_dir = copy_run(runs["done"], tmp_path)
    edit, phrase = DAMAGES[damage]
    _damage(run_dir, edit)
    code, _, err = run_cli("evaluate", run_dir, "--device", "cpu")
    assert_one_line_error(code, err, str(run_dir / CHECKPOINT), phrase)


RESUME_DAMAGES = {
    **DAMAGES,
    "dropout rng": (lambda c: c.__setitem__("dropout_rng", torch.zeros(7, dtype=torch.uint8)), "dropout RNG state"),
    "dropout rng type": (lambda c: c.__setitem__("dropout_rng", [1, 2]), "'dropout_rng'"),
    "torch rng": (lambda c: c.__setitem__("torch_rng", torch.zeros(7, dtype=torch.uint8)), "torch RNG state"),
    "adam moment shape": (
        lambda c: next(iter(c["optimizer"]["state"].values())).__setitem__("exp_avg", torch.zeros(2, 2)),
        "optimizer state 'exp_avg'"),
}


@pytest.mark.parametrize("damage", sorted(RESUME_DAMAGES))
def test_damaged_checkpoint_resume_is_one_line(runs, tmp_path, run_cli, damage):
    run_dir = copy_run(runs["part"], tmp_path)
    edit, phrase = RESUME_DAMAGES[damage]
    _damage(run_dir, edit)
    code, _, err = run_cli("train", "mlp", *TRAIN_ARGS[:3], "2", *TRAIN_ARGS[4:], "--out", tmp_path, "--resume")
    assert_one_line_error(code, err, str(run_dir / CHECKPOINT), phrase)


def test_undamaged_interrupted_run_still_resumes(runs, tmp_path, run_cli):
    """The checks accept what liftbench writes (else the tests above would pass for the wrong reason)."""
    run_dir = copy_run(runs["part"], tmp_path)
    code, out, err = run_cli("train", "mlp", *TRAIN_ARGS[:3], "2", *TRAIN_ARGS[4:], "--out", tmp_path, "--resume")
    assert code == 0, err
    assert json.loads((run_dir / "run.json").read_text())["state"] == "done"


@pytest.mark.parametrize("content", ['{"run_id": "mlp-', "[]", "\x00\xff"])
def test_damaged_run_json_is_one_line(runs, tmp_path, run_cli, content):
    run_dir = copy_run(runs["done"], tmp_path)
    (run_dir / "run.json").write_bytes(content.encode("latin-1"))
    code, _, err = run_cli("evaluate", run_dir, "--device", "cpu")
    assert_one_line_error(code, err, str(run_dir / "run.json"))
    code, _, err = run_cli("train", "mlp", *TRAIN_ARGS, "--out", tmp_path)
    assert_one_line_error(code, err, str(run_dir / "run.json"))


# ------------------------------------------------------------------ item 10: data changed behind a run

SHIFT = {"mm": 0.0}  # what the 'tiny-shifting' source adds to every 3D joint: the "re-prepared dataset"


if "tiny-shifting" not in DATASETS:
    @DATASETS.register("tiny-shifting")
    class ShiftingSource(DatasetSource):
        name = "tiny-shifting"
        description = "tiny, with 2D keypoints that a test can change (tests only)"

        def load(self, data_dir, keypoints: str) -> PoseDataset:
            from fixtures.tiny import make_tiny_dataset

            ds = make_tiny_dataset()
            seqs = [type(s)(s.subject, s.action, s.camera, s.keypoints_2d + np.float32(SHIFT["mm"]), s.joints_3d)
                    for s in ds.sequences]
            return PoseDataset("tiny-shifting", ds.keypoints, ds.fps, seqs, ds.cameras, ds.train_subjects,
                               ds.test_subjects)

        def verify(self, data_dir, keypoints):
            return []

        def prepare(self, data_dir, force=False):
            return "nothing to prepare"


def test_finished_run_is_reused_only_while_its_data_are_the_same(tmp_path, monkeypatch, run_cli):
    monkeypatch.setitem(SHIFT, "mm", 0.0)
    cfg = resolve_config("mlp", options={**TINY, "data.name": "tiny-shifting"})
    first = train_run(cfg, out_dir=tmp_path / "runs", device="cpu")
    old_fp = json.loads((first.run_dir / "run.json").read_text())["dataset_fingerprint"]
    old_weights = (first.run_dir / CHECKPOINT).read_bytes()
    assert train_run(cfg, out_dir=tmp_path / "runs", device="cpu").skipped  # same data: reused

    monkeypatch.setitem(SHIFT, "mm", 3.0)  # another detector file / a re-prepared dataset
    code, _, err = run_cli("evaluate", first.run_dir, "--device", "cpu")
    assert_one_line_error(code, err, old_fp, "changed since it was trained", "retrain")
    code, out, err = run_cli("train", "mlp", "--data", "tiny-shifting", *TRAIN_ARGS[2:], "--out", tmp_path)
    assert code == 0, err
    assert "moved to" in " ".join(out.split())
    meta = json.loads((first.run_dir / "run.json").read_text())
    assert meta["state"] == "done" and meta["dataset_fingerprint"] != old_fp
    stale = tmp_path / "runs" / f"{first.run_dir.name}.stale-{old_fp}"
    assert meta["stale_run_moved_to"] == str(stale)
    assert (stale / CHECKPOINT).read_bytes() == old_weights  # the old run is kept, byte for byte
    assert json.loads((stale / "STALE.json").read_text())["new_fingerprint"] == meta["dataset_fingerprint"]
    assert train_run(cfg, out_dir=tmp_path / "runs", device="cpu").skipped  # the new data: reused again
    assert run_cli("evaluate", first.run_dir, "--device", "cpu")[0] == 0
