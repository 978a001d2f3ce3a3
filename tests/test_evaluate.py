"""Evaluation coverage, aggregation and predictions export, checked against independent computations."""

import numpy as np
import pytest
import torch
from fixtures.tiny import make_tiny_dataset

from liftbench.data.normalize import compute_stats
from liftbench.errors import CoverageError
from liftbench.evaluate import Predictions, check_coverage, predict_sequences, score
from liftbench.models import create_lifter


@pytest.mark.parametrize("seq_len", [1, 3, 5, 40])
def test_every_frame_scored_once_for_any_length(seq_len):
    # lengths shorter than, equal to and longer than the window
    ds = make_tiny_dataset({"Walk 1": 1, "Walk 2": seq_len, "Sit": seq_len + 7, "Jump": 2})
    train, test = ds.split("train"), ds.split("test")
    torch.manual_seed(0)
    model = (create_lifter("seq2seq", hidden_size=8, seq_len=seq_len) if seq_len > 1
             else create_lifter("mlp", hidden_size=16))
    preds = predict_sequences(model, compute_stats(train), test, torch.device("cpu"), batch_size=7)
    assert len(preds) == sum(s.n_frames for s in test)
    assert check_coverage(test, preds) == len(preds)
    assert np.all(preds.pred[:, 0] == 0)


def test_causal_prediction_is_last_output_of_window_ending_at_frame(tiny_dataset):
    train, test = tiny_dataset.split("train"), [s for s in tiny_dataset.split("test") if s.n_frames > 10][:1]
    stats = compute_stats(train)
    torch.manual_seed(0)
    model = create_lifter("seq2seq", hidden_size=8, seq_len=4).eval()
    preds = predict_sequences(model, stats, test, torch.device("cpu"))
    s = test[0]
    from liftbench.data.normalize import encode_inputs
    x = torch.from_numpy(encode_inputs(s, stats))
    for t in (0, 2, 3, 10):  # frames before T-1 use a window padded with the first frame
        rows = [max(0, r) for r in range(t - 3, t + 1)]
        out = model(x[rows][None])[0, -1] * stats.out_std + stats.out_mean
        assert torch.allclose(torch.from_numpy(preds.pred[t, 1:].reshape(-1)), out.float(), atol=1e-4)


def test_missing_or_duplicated_frame_fails_loudly(tiny_dataset):
    test = tiny_dataset.split("test")
    n = sum(s.n_frames for s in test)
    subject = np.concatenate([[s.subject] * s.n_frames for s in test])
    action = np.concatenate([[s.action] * s.n_frames for s in test])
    camera = np.concatenate([[s.camera] * s.n_frames for s in test])
    frame = np.concatenate([np.arange(s.n_frames) for s in test])
    zeros = np.zeros((n, 17, 3), np.float32)
    ok = Predictions(subject, action, camera, frame, zeros, zeros)
    assert check_coverage(test, ok) == n
    dup = frame.copy()
    dup[5] = dup[4]
    with pytest.raises(CoverageError, match="more than once"):
        check_coverage(test, Predictions(subject, action, camera, dup, zeros, zeros))
    with pytest.raises(CoverageError, match="never scored"):
        check_coverage(test, Predictions(subject[1:], action[1:], camera[1:], frame[1:], zeros[1:], zeros[1:]))


def test_aggregation_action_mean_vs_frame_mean():
    # group 'Walk' has 3 frames with error 1 mm, group 'Sit' 1 frame with 5 mm (one joint off by (3,4,0)*17)
    n = 4
    target = np.zeros((n, 17, 3), np.float32)
    pred = np.zeros((n, 17, 3), np.float32)
    pred[:3, 1] = [17.0, 0, 0]  # P1 = 17/17 = 1 mm
    pred[3, 1] = [3 * 17.0, 4 * 17.0, 0]  # P1 = 85/17 = 5 mm
    p = Predictions(np.array(["S9"] * 4), np.array(["Walk 1", "Walk 1", "Walk 2", "Sit"]), np.zeros(4, int),
                    np.array([0, 1, 0, 0]), pred, target)
    rows = {(r["metric"], r["slice"]): r["value"] for r in score(p, video_mean=True) if r["slice_type"] != "joint"}
    assert rows[("mpjpe", "Walk")] == pytest.approx(1.0)
    assert rows[("mpjpe", "Sit")] == pytest.approx(5.0)
    assert rows[("mpjpe", "action_mean")] == pytest.approx(3.0)  # unweighted over groups
    assert rows[("mpjpe", "frame_mean")] == pytest.approx(2.0)  # (1+1+1+5)/4
    assert rows[("mpjpe", "video_mean")] == pytest.approx(3.0)  # videos Walk1 (1), Walk2 (1) -> 1; Sit 5
    joint = [r for r in score(p) if r["slice_type"] == "joint" and r["metric"] == "mpjpe"]
    assert np.mean([r["value"] for r in joint]) == pytest.approx(rows[("mpjpe", "action_mean")])


def test_temporal_metrics_never_cross_videos():
    # two videos, each with constant pose error but a jump between them: MPJVE must be 0
    target = np.zeros((6, 17, 3), np.float32)
    pred = np.zeros((6, 17, 3), np.float32)
    pred[3:, 1] = 100.0
    p = Predictions(np.array(["S9"] * 6), np.array(["A"] * 3 + ["B"] * 3), np.zeros(6, int), np.array([0, 1, 2] * 2),
                    pred, target)
    rows = {(r["metric"], r["slice"]): r["value"] for r in score(p, per_joint=False)}
    assert rows[("mpjve", "frame_mean")] == 0.0
    assert rows[("accel_error", "frame_mean")] == 0.0
    assert rows[("jitter", "frame_mean")] == 0.0


def test_predictions_roundtrip(tmp_path, tiny_dataset):
    test = tiny_dataset.split("test")
    torch.manual_seed(0)
    preds = predict_sequences(create_lifter("mlp", hidden_size=16), compute_stats(tiny_dataset.split("train")), test,
                              torch.device("cpu"))
    preds.save(tmp_path / "p.npz")
    again = Predictions.load(tmp_path / "p.npz")
    assert np.array_equal(again.pred, preds.pred) and list(again.subject) == list(preds.subject)
    assert again.pred.dtype == np.float32 and again.frame.dtype == np.int64


def test_metric_registry_is_the_one_source_of_row_names_units_and_directions(tiny_dataset):
    """Every metric row the evaluator writes takes its unit and direction from ``metrics.METRICS`` (pck
    and auc in %, as their registry entries say), and every registered metric is reported."""
    import liftbench.metrics as M
    from liftbench.evaluate import REPORTED, score

    test = tiny_dataset.split("test")
    preds = predict_sequences(create_lifter("mlp", hidden_size=8), compute_stats(tiny_dataset.split("train")), test,
                              torch.device("cpu"))
    rows = score(preds, per_joint=False)
    registered = {e.meta.get("row", e.name) for e in M.METRICS.entries()}
    assert registered <= {r["metric"] for r in rows} == set(REPORTED)
    for r in rows:
        meta = REPORTED[r["metric"]]
        assert r["unit"] == meta["unit"] and r["higher_is_better"] == meta["higher_is_better"]
    pck = [r for r in rows if r["metric"] == "pck150" and r["slice"] == "frame_mean"][0]
    direct = 100.0 * M.pck(preds.pred, preds.target, threshold=150.0).mean()  # independent: % of joints
    assert pck["unit"] == "%" and abs(pck["value"] - direct) < 1e-9
