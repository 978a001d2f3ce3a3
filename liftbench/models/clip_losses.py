"""Training losses of MotionBERT (Zhu et al., ICCV 2023, ``lib/utils/loss.py`` and ``train.py``) and
MixSTE (Zhang et al., CVPR 2022, ``common/loss.py`` and ``run.py``) as pure functions on clip tensors
(facts in ``transformer_lifters_facts.md`` sections 1.5 and 2.5):

    MotionBERT:  L = MPJPE + 0.5 N-MPJPE + 20 MPJVE                 (normalised units)
    MixSTE:      L = WMPJPE(w) + 0.5 TC(w) + 2 MPJVE,  backpropagated with gradient = L  (metres)

Shapes: predictions and targets are (..., F, J, 3) (typically (B, F, J, 3)); "mean" is over every
leading axis, frame and joint. The frame axis is -3; velocities are first differences along it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

# MixSTE's per-joint weights (run.py), H36M-17 order: knees/ankles 2.5, elbows/wrists 4, head top/shoulders 1.5
MIXSTE_JOINT_WEIGHTS: tuple[float, ...] = (1.0, 1.0, 2.5, 2.5, 1.0, 2.5, 2.5, 1.0, 1.0, 1.0, 1.5, 1.5, 4.0, 4.0,
                                           1.5, 4.0, 4.0)


def _joint_weights(w: Sequence[float] | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    w = torch.as_tensor(w, dtype=like.dtype, device=like.device)
    if w.shape != (like.shape[-2],):
        raise ValueError(f"need one weight per joint ({like.shape[-2]}), got shape {tuple(w.shape)}")
    return w


def _check(pred: torch.Tensor, gt: torch.Tensor) -> None:
    if pred.shape != gt.shape or pred.dim() < 2 or pred.shape[-1] != 3:
        raise ValueError(f"pred and gt must both be (..., J, 3), got {tuple(pred.shape)} and {tuple(gt.shape)}")


def mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Mean over (batch, frame, joint) of the Euclidean distance ||pred - gt||_2."""
    _check(pred, gt)
    return torch.linalg.vector_norm(pred - gt, dim=-1).mean()


def n_mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Scale-only aligned MPJPE: per clip and frame, s = mean_j <gt_j, pred_j> / mean_j |pred_j|^2 (the
    least-squares scale of pred onto gt), then MPJPE(s * pred, gt). s is not detached (gradient flows
    through it, as upstream); an all-zero predicted frame gives 0/0."""
    _check(pred, gt)
    pred_sq = (pred * pred).sum(dim=-1, keepdim=True).mean(dim=-2, keepdim=True)  # (..., F, 1, 1)
    cross = (gt * pred).sum(dim=-1, keepdim=True).mean(dim=-2, keepdim=True)  # (..., F, 1, 1)
    return mpjpe(cross / pred_sq * pred, gt)


def velocity_error(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """MPJVE: mean ||delta pred - delta gt||_2 with delta the first difference over frames (axis -3).
    Needs (..., F, J, 3); a single-frame clip has no velocity and gives 0 (as MotionBERT)."""
    _check(pred, gt)
    if pred.dim() < 3:
        raise ValueError(f"velocity needs a frame axis: (..., F, J, 3), got {tuple(pred.shape)}")
    if pred.shape[-3] < 2:
        return pred.new_zeros(())
    diff = torch.diff(pred - gt, dim=-3)  # (..., F-1, J, 3) = delta pred - delta gt
    return torch.linalg.vector_norm(diff, dim=-1).mean()


def motionbert_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """MotionBERT's 3D loss (lambda_3d_velocity 20, lambda_scale 0.5; the 2D/angle terms are 0 on H36M)."""
    return mpjpe(pred, gt) + 0.5 * n_mpjpe(pred, gt) + 20.0 * velocity_error(pred, gt)


def weighted_mpjpe(pred: torch.Tensor, gt: torch.Tensor, w: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Mean over (batch, frame, joint) of w_j ||pred - gt||_2 (a plain mean, not divided by sum w)."""
    _check(pred, gt)
    return (_joint_weights(w, pred) * torch.linalg.vector_norm(pred - gt, dim=-1)).mean()


def temporal_consistency(pred: torch.Tensor, w: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """MixSTE's TCLoss: mean over (batch, frame, joint, xyz) of w_j (pred_{t+1} - pred_t)^2. It smooths
    the prediction alone; the ground truth plays no part."""
    if pred.dim() < 3 or pred.shape[-1] != 3:
        raise ValueError(f"pred must be (..., F, J, 3), got {tuple(pred.shape)}")
    step = torch.diff(pred, dim=-3)  # (..., F-1, J, 3)
    return (_joint_weights(w, pred)[:, None] * step * step).mean()  # weights (J, 1) broadcast over xyz


def mixste_loss(pred: torch.Tensor, gt: torch.Tensor,
                w: Sequence[float] | torch.Tensor = MIXSTE_JOINT_WEIGHTS) -> torch.Tensor:
    """MixSTE's loss value WMPJPE + 0.5 TC + 2 MPJVE. Wrap it in ``gradient_times_loss`` to get the
    gradient the paper's code actually applied."""
    return weighted_mpjpe(pred, gt, w) + 0.5 * temporal_consistency(pred, w) + 2.0 * velocity_error(pred, gt)


def gradient_times_loss(loss: torch.Tensor) -> torch.Tensor:
    """MixSTE's backward quirk: run.py calls ``L.backward(gradient=L)`` (not ``L.backward()``), so each
    step applies L * dL = d(L^2 / 2): the effective objective is L^2/2, whose gradient shrinks as the loss
    falls (Adam largely normalises the scale away, but not step-to-step ratios). This returns a tensor
    whose VALUE equals ``loss`` (for logging) and whose plain ``.backward()`` gives that gradient.
    Element-wise for non-scalar losses, like ``backward(gradient=L)``."""
    value = loss.detach()
    return value + (loss - value) * value  # (loss - value) is exactly 0 in value, d/dloss = value
