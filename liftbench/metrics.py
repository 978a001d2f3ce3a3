"""Pose-error metrics: pure, vectorised numpy functions returning PER-FRAME values.

Conventions (shared by every function here):

* Poses are ``(N, J, 3)`` arrays in millimetres, camera frame, root-centred (the evaluator passes
  all 17 H36M joints with the root fixed at zero, so Protocol #1 is a 17-joint mean, as in the
  Martinez / Hossain code). Inputs may be float32; all arithmetic is done in float64.
* Each metric returns one value per frame (or per transition for temporal metrics); averaging
  over frames, videos and action groups is the caller's job (``evaluate.py``). The small, pure
  helpers at the bottom (``frame_mean``, ``action_mean``, ``video_mean``) document the three
  averaging schemes used in the literature so callers and tests share one definition.
* Temporal metrics take ONE contiguous sequence; differencing across two concatenated videos
  would invent a jump between them.
* Shape mismatches and non-finite inputs raise ``ValueError`` naming both shapes.

Every metric is registered in ``METRICS`` with its direction, unit and protocol, e.g.
``METRICS.meta("p_mpjpe") == {"higher_is_better": False, "unit": "mm", "protocol": "P2", ...}``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from liftbench.data.skeleton import action_group
from liftbench.registry import Registry

METRICS: Registry = Registry("metric")

#: The AUC threshold grid (mm): 0, 5, ..., 150 (31 values), the MPI-INF-3DHP / mmpose convention.
AUC_THRESHOLDS_MM = np.linspace(0.0, 150.0, 31)


# --------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------

def _as_poses(x, name: str) -> np.ndarray:
    """float64 (N, J, 3) array (a copy only if the input is not float64); rejects other ranks and NaN/inf."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (N, J, 3), got {name} {arr.shape}")
    _check_finite(arr, name, f"{name} {arr.shape}")
    return arr


def _check_finite(arr: np.ndarray, name: str, shapes: str) -> None:
    finite = np.isfinite(arr)
    if not finite.all():
        raise ValueError(f"{name} contains {int(finite.size - np.count_nonzero(finite))} NaN/inf value(s) ({shapes})")


def _pair(pred, target) -> tuple[np.ndarray, np.ndarray]:
    """Validate a prediction/target pair as float64; every message names both shapes."""
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    shapes = f"pred {p.shape}, target {t.shape}"
    if p.shape != t.shape:
        raise ValueError(f"pred and target shapes differ: {shapes}")
    if p.ndim != 3 or p.shape[-1] != 3:
        raise ValueError(f"pred and target must have shape (N, J, 3), got {shapes}")
    _check_finite(p, "pred", shapes)
    _check_finite(t, "target", shapes)
    return p, t


# --------------------------------------------------------------------------------------------
# Frame metrics
# --------------------------------------------------------------------------------------------

def per_joint_error(pred, target) -> np.ndarray:
    """Euclidean error of every joint, ``||ŷ_j - y_j||_2`` in mm: (N, J, 3) x2 -> (N, J)."""
    p, t = _pair(pred, target)
    return np.linalg.norm(p - t, axis=-1)  # (N, J)


@METRICS.register("mpjpe", "p1", higher_is_better=False, unit="mm", protocol="P1", inputs=2, per="frame",
                  description="Protocol #1: mean per-joint position error, no alignment")
def mpjpe(pred, target) -> np.ndarray:
    """Protocol #1 MPJPE per frame (mm).

    ``MPJPE_n = (1/J) Σ_j ||ŷ_nj - y_nj||_2``; no alignment of any kind, so callers pass root-centred
    poses (17 joints incl. the zero root, as Martinez/Hossain/VideoPose3D). (N, J, 3) x2 -> (N,).
    """
    return per_joint_error(pred, target).mean(axis=1)  # (N,)


def procrustes_align(pred, target, with_scale: bool = True) -> np.ndarray:
    """Similarity-align every predicted frame onto its target: rotation, uniform scale, translation
    (``with_scale=False``: rotation and translation only, a = 1, the rigid alignment of ``p_mpjpe_rigid``).

    Per frame, with X = target and Y = prediction (J x 3), both centred on their joint mean and
    divided by their Frobenius norms: A = X0ᵀ Y0 = U S Vᵀ and R = V Uᵀ. If det(R) < 0 the solution
    is a reflection, so the last column of V and the last singular value change sign (the
    Kabsch/Umeyama fix; a mirrored pose must NOT be scored as perfect). Scale
    a = (Σ s_i)·||X0||/||Y0||, translation t = μ_X - a·μ_Y R, aligned = a·Y R + t. This is the
    Protocol #2 alignment of Martinez/Hossain ``procrustes.py`` and VideoPose3D ``p_mpjpe``,
    batched with one ``np.linalg.svd`` on (N, 3, 3). (N, J, 3) x2 -> (N, J, 3) float64, mm.
    """
    p, t = _pair(pred, target)
    mu_x = t.mean(axis=1, keepdims=True)  # (N, 1, 3)
    mu_y = p.mean(axis=1, keepdims=True)  # (N, 1, 3)
    x0, y0 = t - mu_x, p - mu_y  # (N, J, 3)
    norm_x = np.sqrt((x0 ** 2).sum(axis=(1, 2)))  # (N,)
    norm_y = np.sqrt((y0 ** 2).sum(axis=(1, 2)))  # (N,)
    # A frame whose joints all coincide has zero norm; dividing by 1 keeps it finite, and its
    # optimal scale is then 0 (all joints to the target centroid), which a = tr·|X|/|Y| gives below.
    safe_x = np.where(norm_x > 0, norm_x, 1.0)
    safe_y = np.where(norm_y > 0, norm_y, 1.0)
    x0 = x0 / safe_x[:, None, None]
    y0 = y0 / safe_y[:, None, None]
    a_mat = np.einsum("nji,njk->nik", x0, y0)  # (N, 3, 3) = X0ᵀ Y0
    u, s, vt = np.linalg.svd(a_mat)  # u (N,3,3), s (N,3), vt (N,3,3)
    v = np.swapaxes(vt, 1, 2)  # (N, 3, 3)
    rot = v @ np.swapaxes(u, 1, 2)  # (N, 3, 3) = V Uᵀ
    # Reflection fix: det(R) is ±1; where it is -1, flip V's last column and the last singular value.
    sign = np.where(np.linalg.det(rot) < 0, -1.0, 1.0)  # (N,)
    v[:, :, -1] *= sign[:, None]
    s[:, -1] *= sign
    rot = v @ np.swapaxes(u, 1, 2)  # (N, 3, 3), now a proper rotation
    trace = s.sum(axis=1)  # (N,)
    scale = np.where(norm_y > 0, trace * norm_x / safe_y, 0.0) if with_scale else np.ones(len(p))  # (N,)
    trans = mu_x - scale[:, None, None] * (mu_y @ rot)  # (N, 1, 3)
    return scale[:, None, None] * (p @ rot) + trans  # (N, J, 3)


@METRICS.register("p_mpjpe", "p2", higher_is_better=False, unit="mm", protocol="P2", inputs=2, per="frame",
                  description="Protocol #2: MPJPE after per-frame similarity Procrustes (rotation, scale, translation)")
def p_mpjpe(pred, target) -> np.ndarray:
    """Protocol #2 P-MPJPE per frame (mm).

    ``P-MPJPE_n = MPJPE(a_n·ŷ_n R_n + t_n, y_n)`` with (R_n, a_n, t_n) the optimal proper rotation,
    uniform scale and translation of frame n (``procrustes_align``; reflections excluded).
    (N, J, 3) x2 -> (N,).

    Bound: the alignment minimises the SQUARED error, so P-MPJPE <= RMS joint error of the raw
    prediction, but it is NOT always <= MPJPE (one joint off by d: MPJPE = d/J, while the
    least-squares fit spreads the error over all joints and P-MPJPE ends up larger).
    """
    aligned = procrustes_align(pred, target)
    return np.linalg.norm(aligned - np.asarray(target, dtype=np.float64), axis=-1).mean(axis=1)  # (N,)


@METRICS.register("p_mpjpe_rigid", higher_is_better=False, unit="mm", protocol="P2-rigid", inputs=2, per="frame",
                  description="Protocol #2 as Hossain & Little's released code computed it: MPJPE after per-frame "
                              "rigid Procrustes (rotation and translation, no scale)")
def p_mpjpe_rigid(pred, target) -> np.ndarray:
    """Rigid P-MPJPE per frame (mm): Protocol #2 without the scale.

    ``P-MPJPE-rigid_n = MPJPE(ŷ_n R_n + t_n, y_n)`` with R_n the optimal proper rotation (Kabsch, the
    reflection excluded as in ``procrustes_align``) and t_n = μ_y - μ_ŷ R_n; no scale. Hossain & Little's
    code as released with the paper (rayat137/Pose_3D ``08b1b4a``) aligned this way; the scale was added
    later (``f53aef0``), so their printed P2 numbers are rigid while Martinez's, VideoPose3D's and Hossain's
    corrected 44.09 mm are similarity (``p_mpjpe``). The RMS joint error after this fit is >= the one after
    the similarity fit (a scale of 1 is one the similarity fit may choose); the mean (MPJPE) usually is too,
    but the fits minimise squared errors, so not always. (N, J, 3) x2 -> (N,).
    """
    aligned = procrustes_align(pred, target, with_scale=False)
    return np.linalg.norm(aligned - np.asarray(target, dtype=np.float64), axis=-1).mean(axis=1)  # (N,)


@METRICS.register("n_mpjpe", higher_is_better=False, unit="mm", protocol="N-MPJPE", inputs=2, per="frame",
                  description="MPJPE after per-frame optimal uniform scale only (Rhodin et al.; VideoPose3D)")
def n_mpjpe(pred, target) -> np.ndarray:
    """Scale-normalised MPJPE per frame (mm).

    ``s_n = Σ_j <y_nj, ŷ_nj> / Σ_j ||ŷ_nj||²`` (least-squares scale, no rotation or translation),
    then ``MPJPE(s_n·ŷ_n, y_n)``. Poses must be root-centred, since there is no translation.
    (N, J, 3) x2 -> (N,). Like P-MPJPE it is bounded by the raw RMS joint error, not by MPJPE.
    As in VideoPose3D, s is not clamped: an anti-correlated prediction gets s < 0 (a point inversion).
    """
    p, t = _pair(pred, target)
    num = (p * t).sum(axis=(1, 2))  # (N,)
    den = (p * p).sum(axis=(1, 2))  # (N,)
    s = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)  # an all-zero prediction stays zero
    return np.linalg.norm(s[:, None, None] * p - t, axis=-1).mean(axis=1)  # (N,)


@METRICS.register("pck", "pck150", higher_is_better=True, unit="%", scale=100.0, row="pck150", protocol="3DPCK",
                  inputs=2, per="frame", description="percentage of joints with error < threshold (default 150 mm); "
                  "the function returns fractions, rows report scale x fraction")
def pck(pred, target, threshold: float = 150.0) -> np.ndarray:
    """3D PCK per frame: the fraction (0..1) of joints whose error ``||ŷ_j - y_j||`` is < ``threshold`` mm.

    No alignment (as MPI-INF-3DHP evaluations of root-centred poses). (N, J, 3) x2 -> (N,).
    """
    return (per_joint_error(pred, target) < float(threshold)).mean(axis=1)  # (N,)


@METRICS.register("auc", higher_is_better=True, unit="%", scale=100.0, protocol="3DPCK-AUC", inputs=2, per="frame",
                  description="mean 3DPCK over thresholds 0, 5, ..., 150 mm, in %; the function returns fractions")
def auc(pred, target, max_threshold: float = 150.0, steps: int = 31) -> np.ndarray:
    """Area under the 3D PCK curve per frame, as a fraction (0..1).

    ``AUC_n = mean_k PCK_n(τ_k)`` over ``τ = linspace(0, max_threshold, steps)``; the default grid is
    0, 5, 10, ..., 150 mm (31 thresholds), the MPI-INF-3DHP / mmpose convention. τ = 0 always
    contributes 0 (errors are never < 0). (N, J, 3) x2 -> (N,).
    """
    if steps < 2:
        raise ValueError(f"auc needs steps >= 2, got {steps}")
    err = per_joint_error(pred, target)  # (N, J)
    thresholds = np.linspace(0.0, float(max_threshold), int(steps))  # (K,)
    return (err[:, :, None] < thresholds[None, None, :]).mean(axis=(1, 2))  # (N,)


# --------------------------------------------------------------------------------------------
# Temporal metrics (one contiguous sequence at a time)
# --------------------------------------------------------------------------------------------

@METRICS.register("mpjve", higher_is_better=False, unit="mm/frame", protocol="MPJVE", inputs=2, per="transition",
                  description="mean per-joint velocity error (first differences along time)")
def mpjve(pred, target) -> np.ndarray:
    """Mean per-joint velocity error per transition (mm/frame).

    ``MPJVE_t = (1/J) Σ_j ||Δŷ_tj - Δy_tj||_2`` with ``Δx_t = x_{t+1} - x_t`` along the time axis of ONE
    sequence (VideoPose3D ``mean_velocity_error``, kept per transition). (N, J, 3) x2 -> (N-1,).
    """
    p, t = _pair(pred, target)
    return np.linalg.norm(np.diff(p - t, axis=0), axis=-1).mean(axis=1)  # (N-1,)


@METRICS.register("accel_error", higher_is_better=False, unit="mm/frame^2", protocol="accel", inputs=2,
                  per="frame_triplet", description="mean per-joint acceleration error (second differences)")
def accel_error(pred, target) -> np.ndarray:
    """Acceleration error per interior frame (mm/frame²).

    ``ACC_t = (1/J) Σ_j ||Δ²ŷ_tj - Δ²y_tj||_2`` with ``Δ²x_t = x_{t+2} - 2x_{t+1} + x_t`` along the time
    axis of ONE sequence. (N, J, 3) x2 -> (N-2,).
    """
    p, t = _pair(pred, target)
    return np.linalg.norm(np.diff(p - t, n=2, axis=0), axis=-1).mean(axis=1)  # (N-2,)


@METRICS.register("jitter", higher_is_better=False, unit="mm/frame^2", protocol="jitter", inputs=1,
                  of_target="jitter_gt",
                  per="frame_triplet", description="mean per-joint norm of the second difference of one pose sequence")
def jitter(pred) -> np.ndarray:
    """Jitter per interior frame (mm/frame²): ``(1/J) Σ_j ||x_{t+2,j} - 2x_{t+1,j} + x_{t,j}||_2``.

    Takes a single sequence; apply it to the ground truth too (``jitter(target)``) so the prediction's
    jitter can be read against the motion's own. Zero for constant-velocity motion. (N, J, 3) -> (N-2,).
    """
    p = _as_poses(pred, "pred")
    return np.linalg.norm(np.diff(p, n=2, axis=0), axis=-1).mean(axis=1)  # (N-2,)


# --------------------------------------------------------------------------------------------
# Aggregation helpers (pure; the evaluator decides which to report and labels each)
# --------------------------------------------------------------------------------------------

def _values_and_labels(values, labels: Sequence | np.ndarray | None, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        raise ValueError("cannot average an empty set of values")
    if labels is None:
        return v, None
    lab = np.asarray(labels).reshape(-1)
    if lab.shape != v.shape:
        raise ValueError(f"values shape {v.shape} and {name} shape {lab.shape} differ")
    return v, lab


def frame_mean(values) -> float:
    """Mean over all frames, every frame weighted equally (mmpose "MPJPE", VideoPose3D training log)."""
    v, _ = _values_and_labels(values, None, "")
    return float(v.mean())


def action_means(values, actions) -> dict[str, float]:
    """Frame-weighted mean per action GROUP (first word of the action name: 'Walking 1' -> 'Walking')."""
    v, acts = _values_and_labels(values, actions, "actions")
    groups = np.array([action_group(str(a)) for a in acts])
    names, inverse = np.unique(groups, return_inverse=True)
    sums = np.bincount(inverse, weights=v)
    counts = np.bincount(inverse)
    return {str(n): float(m) for n, m in zip(names, sums / counts)}


def action_mean(values, actions) -> float:
    """The headline average: frame-weighted mean within each action group, then the UNWEIGHTED mean
    over groups (Martinez ``--evaluateActionWise``, VideoPose3D "action-wise average")."""
    return float(np.mean(list(action_means(values, actions).values())))


def video_means(values, actions, videos) -> dict[str, float]:
    """Hossain's per-group number: mean of per-video means within each action group (every video
    weighted equally whatever its length). ``videos`` identifies the video of each value (e.g.
    'S9|Walking 1|cam2'); a (group, video) pair is the unit, so ids need only be unique per group."""
    v, acts = _values_and_labels(values, actions, "actions")
    _, vids = _values_and_labels(values, videos, "videos")
    groups = np.array([action_group(str(a)) for a in acts])
    pair_keys = np.char.add(np.char.add(groups.astype(str), "\x1f"), vids.astype(str))
    keys, inverse = np.unique(pair_keys, return_inverse=True)
    per_video = np.bincount(inverse, weights=v) / np.bincount(inverse)  # (V,)
    key_group = np.array([k.split("\x1f", 1)[0] for k in keys])
    return {str(g): float(per_video[key_group == g].mean()) for g in np.unique(key_group)}


def video_mean(values, actions, videos) -> float:
    """Hossain & Little's reference average: per group the mean of per-video means, then the
    unweighted mean over groups (rayat137/Pose_3D ``temporal_3d.py``)."""
    return float(np.mean(list(video_means(values, actions, videos).values())))


def aggregate(values, actions, videos=None) -> dict:
    """All averages at once: ``{"frame_mean", "action_mean", "per_action"[, "video_mean", "per_action_video"]}``."""
    out = {"frame_mean": frame_mean(values), "action_mean": action_mean(values, actions),
           "per_action": action_means(values, actions)}
    if videos is not None:
        out["video_mean"] = video_mean(values, actions, videos)
        out["per_action_video"] = video_means(values, actions, videos)
    return out
