"""``score --convention`` and ``score --allow-partial``; ``evaluate --convention``: the same predictions under
each codebase's evaluation, rows labelled with their convention, partial files scored and flagged."""

from __future__ import annotations

import json

import numpy as np
import pytest

from liftbench.errors import CoverageError
from liftbench.evaluate import Predictions, score_convention
from liftbench.results import read_rows
from liftbench.wild.score import score_file


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A tiny TCN run (it keeps its predicted root) evaluated with every convention and --save-predictions."""
    import liftbench

    tmp = tmp_path_factory.mktemp("conv")
    cfg = liftbench.load_config("tcn", options={"data.name": "tiny", "train.epochs": 1},
                                overrides={"channels": 16, "filter_widths": "3,3", "batch_size": 16})
    run = liftbench.train_run(cfg, out_dir=tmp, device="cpu")
    res = liftbench.evaluate_run(run.run_dir, save_predictions=True, device="cpu", out=tmp / "eval",
                                 conventions=("motionbert", "mixste", "videopose3d"))
    return res, tmp / "eval" / "predictions.npz"


def _headline(rows, convention: str, metric: str = "mpjpe", slc: str = "action_mean") -> float:
    sel = rows[(rows["convention"].astype(str) == convention) & (rows["metric"] == metric) & (rows["slice"] == slc)]
    (value,) = sel["value"].astype(float).tolist()
    return value


def test_evaluate_writes_each_convention_beside_liftbench(evaluated):
    res, _ = evaluated
    rows = res.rows
    assert set(rows["convention"]) == {"liftbench", "mixste", "videopose3d"}  # MotionBERT: no frame, so no row
    assert _headline(rows, "videopose3d") == _headline(rows, "liftbench")  # the same frames and weights
    # the tiny test videos (60, 45, 30, 3 frames) are all shorter than 243: MotionBERT scores none of them
    assert res.card["conventions"]["motionbert"]["frames_scored"] == 0
    # MixSTE: each video one padded window, its last frame counted 1 + (243 - n) times
    lengths = [60, 45, 30, 3] * 2
    assert res.card["conventions"]["mixste"]["frames_counted"] == 243 * len(lengths)
    assert res.card["conventions"]["liftbench"]["every_frame_exactly_once"]
    on_disk = read_rows(res.out_dir / "results.csv")
    assert set(on_disk["convention"]) == set(rows["convention"])


def test_score_conventions_equal_evaluate(evaluated, tmp_path):
    res, npz = evaluated
    out = score_file(npz, "tiny", out=tmp_path / "ext", conventions=("mixste",))
    assert _headline(out.rows, "mixste") == pytest.approx(_headline(res.rows, "mixste"), abs=1e-9)
    assert _headline(out.rows, "liftbench") == pytest.approx(_headline(res.rows, "liftbench"), abs=1e-9)
    card = json.loads((tmp_path / "ext" / "protocol.json").read_text())
    assert card["conventions"]["mixste"]["frames_counted"] == res.card["conventions"]["mixste"]["frames_counted"]


def _drop_frames(npz, tmp_path, keep) -> object:
    preds = Predictions.load(npz)
    sel = keep(preds)
    partial = Predictions(preds.subject[sel], preds.action[sel], preds.camera[sel], preds.frame[sel],
                          preds.pred[sel], preds.target[sel])
    path = tmp_path / "partial.npz"
    partial.save(path)
    return path, int(sel.sum()), len(preds)


def test_partial_predictions_are_refused_without_the_flag_and_flagged_with_it(evaluated, tmp_path):
    _, npz = evaluated
    path, kept, total = _drop_frames(npz, tmp_path, lambda p: p.frame < 20)  # the tails missing
    with pytest.raises(CoverageError, match="allow-partial|never scored"):
        score_file(path, "tiny", out=tmp_path / "refused")
    out = score_file(path, "tiny", out=tmp_path / "partial", allow_partial=True)
    assert set(out.rows["coverage"]) == {"partial"}
    headline = out.rows[(out.rows["metric"] == "mpjpe") & (out.rows["slice"] == "frame_mean")]
    assert int(headline["n_frames"].iloc[0]) == kept < total == int(headline["n_frames_expected"].iloc[0])
    cov = out.card["coverage"]
    assert cov["frames"] == kept and cov["test_frames"] == total and cov["videos"] == 8
    assert sum(v["frames"] for v in cov["per_action"].values()) == kept
    assert any("partial coverage" in w for w in out.warnings)
    # the scored values are those of the same frames of the full file
    full = Predictions.load(npz)
    sel = full.frame < 20
    err = np.linalg.norm(full.pred[sel] - full.target[sel], axis=-1).mean()
    assert float(headline["value"].iloc[0]) == pytest.approx(err, rel=1e-5)


def test_partial_weights_use_the_test_split_lengths(evaluated, tmp_path):
    """Under MixSTE's convention a video's weights depend on its full length, not on the frames a file holds."""
    _, npz = evaluated
    path, _, _ = _drop_frames(npz, tmp_path, lambda p: p.frame != 59)  # the last frame of the two 60-frame videos
    out = score_file(path, "tiny", out=tmp_path / "p", allow_partial=True, conventions=("mixste",))
    # the two 60-frame videos lost their last frame, the one that counts 1 + (243 - 60) times (of their full
    # length, not of the 59 frames the file holds, which would make frame 58 the padded one)
    assert out.card["conventions"]["mixste"]["frames_counted"] == 243 * 8 - 2 * (1 + 243 - 60)
    assert score_convention(Predictions.load(npz), "mixste")[0]["convention"] == "mixste"


def test_duplicate_frames_are_refused_even_when_partial(evaluated, tmp_path):
    _, npz = evaluated
    preds = Predictions.load(npz)
    twice = np.concatenate([np.arange(len(preds)), [0]])
    dup = Predictions(preds.subject[twice], preds.action[twice], preds.camera[twice], preds.frame[twice],
                      preds.pred[twice], preds.target[twice])
    dup.save(tmp_path / "dup.npz")
    with pytest.raises(CoverageError, match="more than once"):
        score_file(tmp_path / "dup.npz", "tiny", out=tmp_path / "d", allow_partial=True)
