"""``p_mpjpe_rigid``: Protocol #2 without the scale (Hossain & Little's released code), by hand, against an
independent scipy re-computation, batched against all frames at once, and reported in every row set."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from liftbench import metrics as M


def _pose(seed: int = 0, n: int = 1, joints: int = 17) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 300.0, size=(n, joints, 3))  # (N, J, 3) mm


def test_rotation_and_translation_are_aligned_away():
    target = _pose(1, n=4)
    rot = Rotation.from_euler("xyz", [[30, -20, 75], [0, 0, 180], [90, 10, 0], [-5, 5, 5]], degrees=True)
    pred = np.stack([r.apply(t) for r, t in zip(rot, target)]) + np.array([100.0, -40.0, 2500.0])  # (4, J, 3)
    assert M.p_mpjpe_rigid(pred, target) == pytest.approx(np.zeros(4), abs=1e-8)
    assert M.p_mpjpe(pred, target) == pytest.approx(np.zeros(4), abs=1e-8)
    assert (M.mpjpe(pred, target) > 100).all()


def test_a_scaled_pose_keeps_its_scale_error_by_hand():
    # four joints on a square of side 2 around the origin: each is sqrt(2) mm from the centroid
    target = np.array([[[1.0, 1, 0], [-1, 1, 0], [-1, -1, 0], [1, -1, 0]]])  # (1, 4, 3)
    pred = 1.5 * target + np.array([7.0, 0, 0])  # scaled by 1.5 and shifted
    # rigid: the rotation stays the identity and the centroids meet, so every joint is off by 0.5 * sqrt(2)
    assert M.p_mpjpe_rigid(pred, target) == pytest.approx([0.5 * np.sqrt(2)])
    assert M.p_mpjpe(pred, target) == pytest.approx([0.0], abs=1e-9)  # the similarity fit removes the scale


def test_a_mirrored_pose_is_not_scored_as_perfect():
    target = _pose(2)
    mirrored = target * np.array([-1.0, 1.0, 1.0])  # a reflection is no rotation
    assert M.p_mpjpe_rigid(mirrored, target)[0] > 10


def _scipy_rigid(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Independent re-computation: Kabsch by scipy's ``Rotation.align_vectors`` on centred joints."""
    out = []
    for p, t in zip(pred, target):
        p0, t0 = p - p.mean(0), t - t.mean(0)
        rot, _ = Rotation.align_vectors(t0, p0)  # the proper rotation taking p0 onto t0
        out.append(np.linalg.norm(rot.apply(p0) + t.mean(0) - t, axis=-1).mean())
    return np.array(out)


def test_equals_an_independent_scipy_recomputation_batch_by_batch():
    target = _pose(3, n=64)
    pred = target + np.random.default_rng(4).normal(0.0, 40.0, size=target.shape)
    pred[::3] *= 1.1  # some frames with a scale error too
    expected = _scipy_rigid(pred, target)
    whole = M.p_mpjpe_rigid(pred, target)
    assert whole == pytest.approx(expected, rel=1e-9, abs=1e-9)
    batched = np.concatenate([M.p_mpjpe_rigid(pred[i:i + 10], target[i:i + 10]) for i in range(0, 64, 10)])
    assert batched == pytest.approx(whole, rel=1e-12)
    # the similarity fit can only lower the squared error: RMS after it <= RMS after the rigid fit, per frame
    sim = np.sqrt((np.linalg.norm(M.procrustes_align(pred, target) - target, axis=-1) ** 2).mean(1))
    rig = np.sqrt((np.linalg.norm(M.procrustes_align(pred, target, with_scale=False) - target, axis=-1) ** 2).mean(1))
    assert (sim <= rig + 1e-9).all()


def test_registered_with_direction_and_unit_and_reported_by_the_evaluator():
    from liftbench.evaluate import FRAME_METRICS, Predictions, score

    meta = M.METRICS.meta("p_mpjpe_rigid")
    assert meta["unit"] == "mm" and meta["higher_is_better"] is False and meta["per"] == "frame"
    assert "p_mpjpe_rigid" in FRAME_METRICS
    target = _pose(5, n=3).astype(np.float32)
    pred = (target * 1.2).astype(np.float32)
    p = Predictions(np.array(["S9"] * 3), np.array(["Walk 1"] * 3), np.zeros(3, int), np.arange(3), pred, target)
    rows = {(r["metric"], r["slice"]): r["value"] for r in score(p, per_joint=False) if r["slice_type"] == "all"}
    expected = float(M.p_mpjpe_rigid(pred, target).mean())
    assert rows[("p_mpjpe_rigid", "action_mean")] == pytest.approx(expected, rel=1e-6)
    assert rows[("p_mpjpe", "action_mean")] == pytest.approx(0.0, abs=1e-3)
