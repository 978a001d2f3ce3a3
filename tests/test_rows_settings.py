"""What rows say about their setting (issue 25): the 2D a run was trained on apart from the 2D it was scored
on, a training subset that leaves the test split whole, a test subset that rows flag, error rows, and old
results files (without the new columns) that still compare."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import fixtures.tiny as tiny
import numpy as np
import pandas as pd
import pytest

from liftbench.check import check_files
from liftbench.config import resolve_config
from liftbench.data import DATASETS, DatasetSource, PoseDataset
from liftbench.pipeline import evaluate_run, train_run
from liftbench.results import KEY_COLUMNS, ROW_COLUMNS, read_rows, write_rows
from liftbench.runner.trial import error_rows
from liftbench.suites import RunSpec

if "tiny-kp" not in DATASETS:
    @DATASETS.register("tiny-kp")
    class TinyKeypointsSource(DatasetSource):
        """The tiny dataset with named 2D sources: 'gt', or 'det' (the same 2D shifted by 3 px, a stand-in detector)."""

        name = "tiny-kp"
        description = "tiny with two 2D sources (tests only)"

        def load(self, data_dir: Path | None, keypoints: str) -> PoseDataset:
            ds = tiny.make_tiny_dataset()
            kp = keypoints or "gt"
            shift = 3.0 if kp == "det" else 0.0
            seqs = [dataclasses.replace(s, keypoints_2d=s.keypoints_2d + np.float32(shift)) for s in ds.sequences]
            return PoseDataset("tiny-kp", kp, ds.fps, seqs, ds.cameras, ds.train_subjects, ds.test_subjects)

        def verify(self, data_dir, keypoints):
            return []

        def prepare(self, data_dir, force=False):
            return "tiny-kp: nothing to prepare"

SMALL = {"train.epochs": 1, "model.hidden_size": 8, "train.batch_size": 16}


def _train(tmp_path: Path, **options):
    cfg = resolve_config("mlp", options={"data.name": "tiny-kp", **options}, overrides=SMALL)
    return cfg, train_run(cfg, out_dir=tmp_path / "runs", device="cpu")


def _head(rows: pd.DataFrame) -> pd.Series:
    return rows[(rows["metric"] == "mpjpe") & (rows["slice"] == "action_mean")].iloc[0]


def test_rows_carry_the_training_2d_apart_from_the_scored_2d(tmp_path):
    cfg, outcome = _train(tmp_path, **{"data.keypoints": "gt"})
    own = evaluate_run(outcome.run_dir, device="cpu").rows
    assert {"train_keypoints", "test_keypoints"} <= set(ROW_COLUMNS) & set(KEY_COLUMNS)
    assert set(own["train_keypoints"]) == {"gt"} and set(own["test_keypoints"]) == {"gt"} == set(own["keypoints"])
    other = evaluate_run(outcome.run_dir, keypoints="det", device="cpu").rows  # evaluate --keypoints det
    assert set(other["train_keypoints"]) == {"gt"}  # still the run's own training 2D
    assert set(other["test_keypoints"]) == {"det"} == set(other["keypoints"])
    # a run trained with the dataset's default 2D ('' in the config) records the name the dataset resolved
    _, default = _train(tmp_path / "d")
    assert set(evaluate_run(default.run_dir, device="cpu").rows["train_keypoints"]) == {"gt"}


def test_subset_trims_training_only_and_test_subset_is_flagged(tmp_path):
    full_cfg, full = _train(tmp_path / "full")
    sub_cfg, sub = _train(tmp_path / "sub", **{"data.subset": 0.5})
    assert sub_cfg.run_id != full_cfg.run_id  # the subset's meaning changed: such runs get new ids
    assert resolve_config("mlp", options={"data.name": "tiny-kp"}, overrides=SMALL).run_id == full_cfg.run_id
    import json

    frames = [json.loads((r.run_dir / "run.json").read_text())["train_frames"] for r in (full, sub)]
    assert frames[1] < frames[0]  # fewer training frames ...
    whole = _head(evaluate_run(sub.run_dir, device="cpu").rows)
    assert int(whole["n_frames"]) == int(whole["n_frames_expected"])  # ... but every test frame scored
    test_cfg, partial_run = _train(tmp_path / "part", **{"data.test_subset": 0.5})
    assert test_cfg.run_id != full_cfg.run_id
    res = evaluate_run(partial_run.run_dir, device="cpu")
    head = _head(res.rows)
    assert int(head["n_frames"]) < int(head["n_frames_expected"]) == int(whole["n_frames_expected"])
    assert res.card["frames"]["every_frame_exactly_once"] is False
    assert "test subset 0.5" in res.card["recipe_banner"]


def test_error_rows_name_both_2d_sources():
    cfg = resolve_config("mlp", options={"data.name": "tiny-kp", "data.keypoints": "det"}, overrides=SMALL)
    rows = error_rows(RunSpec("s", 1, "mlp", cfg, (0.0,)), "boom")
    assert rows[["keypoints", "train_keypoints", "test_keypoints"]].iloc[0].tolist() == ["det", "det", "det"]


def test_an_old_results_file_without_the_new_columns_still_compares(tmp_path):
    cfg, outcome = _train(tmp_path)
    evaluate_run(outcome.run_dir, device="cpu")
    new = outcome.run_dir / "results.csv"
    old = tmp_path / "old.csv"
    read_rows(new).drop(columns=["train_keypoints", "test_keypoints"]).to_csv(old, index=False)
    assert "train_keypoints" not in pd.read_csv(old).columns
    assert set(read_rows(old)["train_keypoints"]) == {"gt"}  # filled from keypoints when read
    verdicts, code = check_files(new, old)
    assert code == 0 and {v.verdict for v in verdicts} == {"same"}
    verdicts, code = check_files(old, new)
    assert code == 0
    # a GT-trained and a det-trained run scored on the same 2D are two keys, not a duplicate
    rows = read_rows(new)
    both = pd.concat([rows, rows.assign(train_keypoints="det", run_id="other")], ignore_index=True)
    write_rows(tmp_path / "both.csv", both)
    verdicts, code = check_files(tmp_path / "both.csv", tmp_path / "both.csv")
    assert code == 0


@pytest.mark.parametrize("value", [0.0, 1.5])
def test_test_subset_is_validated(value):
    from liftbench.errors import ConfigError

    with pytest.raises(ConfigError, match="data.test_subset must be in"):
        resolve_config("mlp", overrides={"data.test_subset": value})
