"""Metrics: hand-computed cases, invariances, independent references, batching, errors, averaging."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures.tiny import REST_POSE
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.transform import Rotation

from liftbench import metrics as M

POSE = REST_POSE - REST_POSE[0]  # (17, 3) root-centred, mm


def _motion(n: int, seed: int = 0) -> np.ndarray:
    """(n, 17, 3) smooth-ish random sequence around the rest pose."""
    rng = np.random.default_rng(seed)
    return POSE[None] + np.cumsum(rng.normal(scale=5.0, size=(n, 17, 3)), axis=0)


# --------------------------------------------------------------------------------------------
# Independent references (written here, not calling liftbench)
# --------------------------------------------------------------------------------------------

def _ref_similarity_scipy(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Best proper rotation by scipy's align_vectors (never a reflection), then the closed-form
    least-squares scale and translation for that rotation. One frame (J, 3) -> aligned (J, 3)."""
    mx, my = target.mean(0), pred.mean(0)
    x0, y0 = target - mx, pred - my
    rot, _ = Rotation.align_vectors(x0, y0)  # rotation R minimising Σ ||x0 - R y0||²
    ry = rot.apply(y0)
    scale = (x0 * ry).sum() / (y0 * y0).sum()
    return scale * ry + mx


def _ref_similarity_svd(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Umeyama (1991) written independently: covariance of target vs pred, SVD, D = diag(1,1,det)."""
    mx, my = target.mean(0), pred.mean(0)
    x0, y0 = target - mx, pred - my
    cov = x0.T @ y0 / len(x0)  # (3, 3)
    u, d, vt = np.linalg.svd(cov)
    fix = np.eye(3)
    fix[2, 2] = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    rot = u @ fix @ vt  # maps pred onto target (column vectors)
    var_y = (y0 ** 2).sum() / len(y0)
    scale = np.trace(np.diag(d) @ fix) / var_y
    return (scale * (rot @ y0.T)).T + mx


def _ref_mpjpe(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([np.sqrt(((a[j] - b[j]) ** 2).sum()) for j in range(len(a))]))


def _rms(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    return np.sqrt(((pred - target) ** 2).sum(-1).mean(-1))


# --------------------------------------------------------------------------------------------
# Hand-computed cases
# --------------------------------------------------------------------------------------------

def test_one_joint_off_by_3_4_0_gives_5_over_17():
    pred = POSE.copy()
    pred[5] += (3.0, 4.0, 0.0)
    assert M.mpjpe(pred[None], POSE[None]) == pytest.approx([5.0 / 17.0], abs=1e-12)
    errs = M.per_joint_error(pred[None], POSE[None])
    assert errs.shape == (1, 17) and errs[0, 5] == pytest.approx(5.0) and errs[0, [0, 1, 16]].tolist() == [0, 0, 0]


def test_perfect_prediction_scores_zero_everywhere():
    x = _motion(12)
    for fn in (M.mpjpe, M.p_mpjpe, M.n_mpjpe, M.mpjve, M.accel_error):
        assert np.allclose(fn(x, x), 0.0, atol=1e-9), fn.__name__
    assert np.all(M.pck(x, x) == 1.0)
    assert np.allclose(M.auc(x, x), 30 / 31)  # threshold 0 never counts: error < 0 is impossible


def test_float32_inputs_are_accumulated_in_float64():
    x = _motion(8).astype(np.float32)
    y = (x + 1.0).astype(np.float32)
    out = M.mpjpe(x, y)
    assert out.dtype == np.float64
    assert np.allclose(out, np.sqrt(3.0), atol=1e-4)


def test_n_mpjpe_removes_a_pure_scale_but_not_a_rotation():
    assert M.n_mpjpe(1.7 * POSE[None], POSE[None]) == pytest.approx([0.0], abs=1e-9)
    rotated = Rotation.from_euler("z", 90, degrees=True).apply(POSE)[None]
    assert M.n_mpjpe(rotated, POSE[None])[0] > 10.0
    # closed form on a tiny 2-joint case: y = (1,0,0),(0,0,0); ŷ = (2,0,0),(0,0,0) -> s = 0.5 -> 0 error
    y = np.array([[[1.0, 0, 0], [0, 0, 0]]])
    assert M.n_mpjpe(2 * y, y) == pytest.approx([0.0])
    assert M.n_mpjpe(np.zeros_like(y), y) == pytest.approx([0.5])  # all-zero prediction: s = 0, error 1/2


# --------------------------------------------------------------------------------------------
# Protocol #2: invariances and the reflection case
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_p_mpjpe_invariant_to_similarity_transform_of_prediction(seed):
    rng = np.random.default_rng(seed)
    target = _motion(6, seed)
    pred = target + rng.normal(scale=20.0, size=target.shape)
    base = M.p_mpjpe(pred, target)
    rots = Rotation.random(len(pred), random_state=seed)  # proper rotations, one per frame
    moved = np.stack([rots[i].apply(pred[i]) for i in range(len(pred))])
    moved = moved * rng.uniform(0.3, 3.0, size=(len(pred), 1, 1)) + rng.normal(scale=500, size=(len(pred), 1, 3))
    assert np.allclose(M.p_mpjpe(moved, target), base, rtol=1e-9, atol=1e-8)


def test_p_mpjpe_of_an_exact_similarity_copy_is_zero():
    rot = Rotation.from_rotvec([0.3, -1.2, 2.0])
    pred = 0.8 * rot.apply(POSE) + np.array([100.0, -40.0, 2000.0])
    assert M.p_mpjpe(pred[None], POSE[None]) == pytest.approx([0.0], abs=1e-9)
    assert np.allclose(M.procrustes_align(pred[None], POSE[None])[0], POSE, atol=1e-9)


def test_mirrored_prediction_is_not_aligned_by_a_reflection():
    target = _motion(4, seed=3)
    mirrored = target * np.array([-1.0, 1.0, 1.0])  # a reflection: det = -1
    got = M.p_mpjpe(mirrored, target)
    assert np.all(got > 1.0), "a reflection must never be used to align"
    ref_scipy = [_ref_mpjpe(_ref_similarity_scipy(mirrored[i], target[i]), target[i]) for i in range(len(target))]
    ref_svd = [_ref_mpjpe(_ref_similarity_svd(mirrored[i], target[i]), target[i]) for i in range(len(target))]
    assert np.allclose(got, ref_scipy, rtol=1e-6)
    assert np.allclose(got, ref_svd, rtol=1e-9)
    # With reflections allowed the same pose would align perfectly: that is exactly what is excluded.
    aligned = M.procrustes_align(mirrored, target)
    assert np.all(np.linalg.norm(aligned - target, axis=-1).max(axis=1) > 1.0)


@pytest.mark.parametrize("seed", range(4))
def test_procrustes_matches_independent_references_on_random_frames(seed):
    rng = np.random.default_rng(seed)
    target = rng.normal(scale=300, size=(10, 17, 3))
    pred = target + rng.normal(scale=rng.uniform(5, 500), size=target.shape)
    aligned = M.procrustes_align(pred, target)
    for i in range(len(target)):
        assert np.allclose(aligned[i], _ref_similarity_svd(pred[i], target[i]), atol=1e-7)
        assert np.allclose(aligned[i], _ref_similarity_scipy(pred[i], target[i]), atol=1e-5)


def test_degenerate_frames_stay_finite():
    target = POSE[None].repeat(2, 0)
    pred = np.zeros_like(target)
    pred[1] = 7.0  # all joints at one point: zero spread
    out = M.p_mpjpe(pred, target)
    assert np.all(np.isfinite(out))
    # optimal similarity of a single point is "every joint at the target centroid"
    expected = np.linalg.norm(POSE - POSE.mean(0), axis=-1).mean()
    assert np.allclose(out, expected)


# --------------------------------------------------------------------------------------------
# Bounds (property tests)
# --------------------------------------------------------------------------------------------

_finite = st.floats(min_value=-1000, max_value=1000, allow_nan=False, allow_infinity=False)


@settings(max_examples=150, deadline=None)
@given(arrays(np.float64, (3, 17, 3), elements=_finite), arrays(np.float64, (3, 17, 3), elements=_finite))
def test_alignment_never_increases_squared_error(target, pred):
    """Proper similarity ⊇ non-negative scale-only ⊇ identity, and each step minimises the SQUARED
    error, so the RMS error can only fall; the mean of norms is <= the RMS (Cauchy-Schwarz).
    N-MPJPE's least-squares scale may be negative for an anti-correlated prediction (a point
    inversion, i.e. improper in 3D), so P2 <= N holds only where s >= 0."""
    raw_sq = ((pred - target) ** 2).sum(axis=(1, 2))
    p_sq = ((M.procrustes_align(pred, target) - target) ** 2).sum(axis=(1, 2))
    num, den = (pred * target).sum(axis=(1, 2)), (pred * pred).sum(axis=(1, 2))
    s = np.where(den > 0, num / np.where(den > 0, den, 1), 0)
    n_sq = ((s[:, None, None] * pred - target) ** 2).sum(axis=(1, 2))
    tol = 1e-7 * (1 + raw_sq)
    assert np.all((p_sq <= n_sq + tol) | (s < 0))
    assert np.all(n_sq <= raw_sq + tol)
    assert np.all(M.p_mpjpe(pred, target) <= _rms(pred, target) + 1e-6)
    assert np.all(M.n_mpjpe(pred, target) <= _rms(pred, target) + 1e-6)
    assert np.all(M.mpjpe(pred, target) <= _rms(pred, target) + 1e-9)


def test_p_mpjpe_is_not_bounded_by_mpjpe_in_general():
    """Documented counter-example: a single outlier joint. MPJPE = 5/17, but the least-squares fit
    spreads that error over all joints, so P-MPJPE and N-MPJPE are larger. (Typical predictions
    still satisfy P-MPJPE < MPJPE; the guaranteed bound is the RMS error, tested above.)"""
    pred = POSE.copy()
    pred[5] += (3.0, 4.0, 0.0)
    p1 = M.mpjpe(pred[None], POSE[None])[0]
    assert M.p_mpjpe(pred[None], POSE[None])[0] > p1
    assert M.n_mpjpe(pred[None], POSE[None])[0] > p1
    rng = np.random.default_rng(0)
    target = _motion(200)
    noisy = target + rng.normal(scale=30.0, size=target.shape) + np.array([0.0, 0.0, 40.0])
    assert M.p_mpjpe(noisy, target).mean() < M.mpjpe(noisy, target).mean()


# --------------------------------------------------------------------------------------------
# Temporal metrics
# --------------------------------------------------------------------------------------------

def test_linear_drift_gives_exact_velocity_error_and_zero_acceleration():
    target = _motion(20)
    v = np.array([3.0, -4.0, 12.0])  # |v| = 13 mm/frame
    pred = target + np.arange(20)[:, None, None] * v  # (20, 17, 3)
    assert M.mpjve(pred, target).shape == (19,)
    assert np.allclose(M.mpjve(pred, target), 13.0)
    assert M.accel_error(pred, target).shape == (18,)
    assert np.allclose(M.accel_error(pred, target), 0.0, atol=1e-9)


def test_quadratic_drift_gives_acceleration_error_2a():
    target = _motion(15)
    a = np.array([1.0, 2.0, 2.0])  # |a| = 3, so |2a| = 6
    t = np.arange(15)[:, None, None]
    pred = target + t ** 2 * a
    assert np.allclose(M.accel_error(pred, target), 6.0)
    assert np.allclose(M.mpjve(pred, target), (2 * np.arange(14) + 1) * 3.0)  # |(2t+1) a|


def test_jitter_zero_for_constant_velocity_and_known_for_constant_acceleration():
    t = np.arange(10)[:, None, None]
    assert np.allclose(M.jitter(POSE[None] + t * np.array([5.0, 0, 0])), 0.0)
    assert np.allclose(M.jitter(POSE[None] + 0.5 * t ** 2 * np.array([0.0, 6.0, 8.0])), 10.0)
    assert M.jitter(POSE[None].repeat(10, 0)).shape == (8,)


def test_temporal_metrics_on_too_short_sequences_are_empty():
    x = _motion(2)
    assert M.mpjve(x[:1], x[:1]).shape == (0,)
    assert M.accel_error(x, x).shape == (0,)
    assert M.jitter(x).shape == (0,)
    empty = np.zeros((0, 17, 3))
    for fn in (M.mpjpe, M.p_mpjpe, M.n_mpjpe, M.pck, M.auc, M.mpjve, M.accel_error):
        assert fn(empty, empty).shape == (0,), fn.__name__


# --------------------------------------------------------------------------------------------
# PCK / AUC
# --------------------------------------------------------------------------------------------

def _with_joint_errors(errors_mm) -> tuple[np.ndarray, np.ndarray]:
    """One frame whose joint j is off by errors_mm[j] along x."""
    pred = POSE.copy()
    pred[:, 0] += np.asarray(errors_mm, dtype=float)
    return pred[None], POSE[None]


def test_pck_counts_joints_strictly_below_threshold():
    errs = [0.0] * 10 + [149.0, 150.0, 151.0, 200.0, 10.0, 20.0, 300.0]
    pred, target = _with_joint_errors(errs)
    assert M.pck(pred, target)[0] == pytest.approx(13 / 17)  # 150 itself is not < 150
    assert M.pck(pred, target, threshold=15.0)[0] == pytest.approx(11 / 17)


def test_auc_on_hand_made_errors():
    # thresholds 0, 5, ..., 150. A joint with error e is counted at every τ > e.
    pred, target = _with_joint_errors([0.0] * 17)
    assert M.auc(pred, target)[0] == pytest.approx(30 / 31)
    pred, target = _with_joint_errors([12.0] * 17)  # counted for τ = 15..150: 28 thresholds
    assert M.auc(pred, target)[0] == pytest.approx(28 / 31)
    pred, target = _with_joint_errors([0.0] * 16 + [1000.0])
    assert M.auc(pred, target)[0] == pytest.approx((30 / 31) * 16 / 17)
    assert np.allclose(M.AUC_THRESHOLDS_MM, np.arange(0, 151, 5))


# --------------------------------------------------------------------------------------------
# Batched vs all frames at once (torchmetrics-style tester)
# --------------------------------------------------------------------------------------------

FRAME_FNS = [M.mpjpe, M.p_mpjpe, M.n_mpjpe, M.pck, M.auc, M.per_joint_error, M.procrustes_align]


@pytest.mark.parametrize("fn", FRAME_FNS, ids=lambda f: f.__name__)
def test_random_batches_concatenate_to_the_all_frames_result(fn):
    rng = np.random.default_rng(7)
    target = rng.normal(scale=300, size=(101, 17, 3))
    pred = (target + rng.normal(scale=60, size=target.shape)).astype(np.float32)
    whole = fn(pred, target)
    cuts = np.sort(rng.choice(np.arange(1, 101), size=9, replace=False))
    parts = [fn(p, t) for p, t in zip(np.split(pred, cuts), np.split(target, cuts))]
    assert np.allclose(np.concatenate(parts), whole, rtol=0, atol=1e-9)


def test_p_mpjpe_all_frames_equals_per_frame_reference():
    rng = np.random.default_rng(11)
    target = rng.normal(scale=300, size=(40, 17, 3))
    pred = target + rng.normal(scale=80, size=target.shape)
    ref = [_ref_mpjpe(_ref_similarity_svd(pred[i], target[i]), target[i]) for i in range(len(target))]
    assert np.allclose(M.p_mpjpe(pred, target), ref, rtol=1e-9)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [M.mpjpe, M.p_mpjpe, M.n_mpjpe, M.mpjve, M.accel_error, M.pck, M.auc,
                                M.per_joint_error, M.procrustes_align], ids=lambda f: f.__name__)
def test_shape_mismatch_names_both_shapes(fn):
    with pytest.raises(ValueError, match=r"\(4, 17, 3\).*\(4, 16, 3\)"):
        fn(np.zeros((4, 17, 3)), np.zeros((4, 16, 3)))


def test_wrong_rank_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(4, 17\).*\(4, 17\)"):
        M.mpjpe(np.zeros((4, 17)), np.zeros((4, 17)))
    with pytest.raises(ValueError, match=r"\(5, 17, 2\)"):
        M.jitter(np.zeros((5, 17, 2)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("fn", [M.mpjpe, M.p_mpjpe, M.n_mpjpe, M.mpjve, M.accel_error, M.pck, M.auc],
                         ids=lambda f: f.__name__)
def test_non_finite_input_raises(fn, bad):
    x = np.zeros((4, 17, 3), dtype=np.float32)
    y = x.copy()
    y[2, 3, 1] = bad
    with pytest.raises(ValueError, match=r"target contains 1 NaN/inf.*pred \(4, 17, 3\), target \(4, 17, 3\)"):
        fn(x, y)
    with pytest.raises(ValueError, match="pred contains"):
        fn(y, x)


def test_jitter_rejects_nan():
    x = _motion(5)
    x[1, 1, 1] = np.nan
    with pytest.raises(ValueError, match=r"pred contains 1 NaN/inf.*\(5, 17, 3\)"):
        M.jitter(x)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

def test_every_metric_is_registered_with_direction_unit_and_protocol():
    assert set(M.METRICS.names()) == {"mpjpe", "p_mpjpe", "p_mpjpe_rigid", "n_mpjpe", "mpjve", "accel_error", "jitter",
                                      "pck", "auc"}
    for name in M.METRICS.names():
        meta = M.METRICS.meta(name)
        assert {"higher_is_better", "unit", "protocol", "description"} <= set(meta), name
    assert M.METRICS.get("p2") is M.p_mpjpe and M.METRICS.get("p1") is M.mpjpe
    assert M.METRICS.meta("mpjpe")["higher_is_better"] is False and M.METRICS.meta("pck")["higher_is_better"] is True
    assert M.METRICS.meta("p_mpjpe")["protocol"] == "P2" and M.METRICS.meta("mpjve")["unit"] == "mm/frame"


def test_unknown_metric_suggests_close_names():
    from liftbench.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="Did you mean: p_mpjpe"):
        M.METRICS.get("p_mpjp")


# --------------------------------------------------------------------------------------------
# Averaging helpers
# --------------------------------------------------------------------------------------------

# Unequal group sizes and unequal video lengths, so the three averages all differ.
VALUES = np.array([1.0, 2.0, 3.0, 10.0, 4.0, 6.0])
ACTIONS = np.array(["Walking 1", "Walking 1", "Walking 1", "Eating", "Walking 2", "Walking 2"])
VIDEOS = np.array(["S9|Walking 1|0"] * 3 + ["S9|Eating|0"] + ["S9|Walking 2|0"] * 2)


def test_frame_action_and_video_means_by_hand():
    assert M.frame_mean(VALUES) == pytest.approx(26 / 6)
    # Walking (first word) pools both takes frame-weighted: (1+2+3+4+6)/5 = 3.2; Eating 10.
    assert M.action_means(VALUES, ACTIONS) == pytest.approx({"Walking": 3.2, "Eating": 10.0})
    assert M.action_mean(VALUES, ACTIONS) == pytest.approx((3.2 + 10.0) / 2)
    # Hossain: per-video means 2 and 5 -> Walking 3.5; Eating 10.
    assert M.video_means(VALUES, ACTIONS, VIDEOS) == pytest.approx({"Walking": 3.5, "Eating": 10.0})
    assert M.video_mean(VALUES, ACTIONS, VIDEOS) == pytest.approx(6.75)
    agg = M.aggregate(VALUES, ACTIONS, VIDEOS)
    assert agg["action_mean"] == pytest.approx(6.6) and agg["video_mean"] == pytest.approx(6.75)
    assert "video_mean" not in M.aggregate(VALUES, ACTIONS)


def test_averaging_helpers_validate_inputs():
    with pytest.raises(ValueError, match="empty"):
        M.frame_mean([])
    with pytest.raises(ValueError, match=r"\(6,\).*\(2,\)"):
        M.action_mean(VALUES, ACTIONS[:2])
    with pytest.raises(ValueError, match="videos"):
        M.video_mean(VALUES, ACTIONS, VIDEOS[:5])
