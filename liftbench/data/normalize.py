"""Shared preprocessing: root-centring, the 16-joint input/output selection and z-scoring.

Convention (Martinez 2017 / Hossain 2018, see ``skeleton``): inputs are 16 2D joints without
Neck/Nose, raw pixels, z-scored per dimension -> (N, 32); targets are the 16 non-root joints of the
root-centred camera-frame 3D pose in mm, z-scored -> (N, 48). Statistics come from the training
split only (all its frames and cameras) and are saved with every model. The root is re-inserted as
zero when converting predictions back to (N, 17, 3) poses, so metrics average all 17 joints.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq

import numpy as np
import torch

from liftbench.data.dataset import Sequence
from liftbench.data.skeleton import INPUT_JOINTS, NUM_JOINTS, OUTPUT_JOINTS, root_centre
from liftbench.models.base import NormStats

_MIN_STD = 1e-6  # guards dimensions that never move (cannot happen for real poses, but never divide by 0)


def flat_inputs(keypoints_2d: np.ndarray) -> np.ndarray:
    """(N, 17, 2) px -> (N, 32) float64, the 16 input joints interleaved x, y."""
    return keypoints_2d[:, INPUT_JOINTS, :].reshape(len(keypoints_2d), -1).astype(np.float64)  # (N, 32)


def flat_targets(joints_3d: np.ndarray) -> np.ndarray:
    """(N, 17, 3) mm -> (N, 48) float64, root-centred, the 16 non-root joints interleaved x, y, z."""
    centred = root_centre(joints_3d.astype(np.float64))
    return centred[:, OUTPUT_JOINTS, :].reshape(len(joints_3d), -1)  # (N, 48)


def compute_stats(train_sequences: Seq[Sequence]) -> NormStats:
    """Per-dimension mean/std over every training frame (float64 accumulation, float32 result)."""
    if not train_sequences:
        raise ValueError("cannot compute normalisation statistics from an empty training split")
    x = np.concatenate([flat_inputs(s.keypoints_2d) for s in train_sequences])  # (F, 32)
    y = np.concatenate([flat_targets(s.joints_3d) for s in train_sequences])  # (F, 48)
    x_std, y_std = x.std(axis=0), y.std(axis=0)
    return NormStats(
        in_mean=torch.tensor(x.mean(axis=0), dtype=torch.float32),
        in_std=torch.tensor(np.maximum(x_std, _MIN_STD), dtype=torch.float32),
        out_mean=torch.tensor(y.mean(axis=0), dtype=torch.float32),
        out_std=torch.tensor(np.maximum(y_std, _MIN_STD), dtype=torch.float32),
    )


def normalize_inputs(keypoints_2d: np.ndarray, stats: NormStats) -> np.ndarray:
    """(N, 17, 2) px -> (N, 32) float32 z-scores."""
    return ((flat_inputs(keypoints_2d) - stats.in_mean.double().numpy()) / stats.in_std.double().numpy()).astype(np.float32)


def normalize_targets(joints_3d: np.ndarray, stats: NormStats) -> np.ndarray:
    """(N, 17, 3) mm -> (N, 48) float32 z-scores of the root-centred non-root joints."""
    return ((flat_targets(joints_3d) - stats.out_mean.double().numpy()) / stats.out_std.double().numpy()).astype(np.float32)


def outputs_to_poses(y_mm: np.ndarray) -> np.ndarray:
    """(N, 48) root-relative mm -> (N, 17, 3) with the root joint re-inserted at exactly zero."""
    poses = np.zeros((len(y_mm), NUM_JOINTS, 3), dtype=y_mm.dtype)  # (N, 17, 3)
    poses[:, OUTPUT_JOINTS, :] = y_mm.reshape(len(y_mm), len(OUTPUT_JOINTS), 3)  # (N, 16, 3)
    return poses


def stats_to_state(stats: NormStats) -> dict[str, torch.Tensor]:
    return {"in_mean": stats.in_mean, "in_std": stats.in_std, "out_mean": stats.out_mean, "out_std": stats.out_std}


def stats_from_state(state: dict[str, torch.Tensor]) -> NormStats:
    return NormStats(state["in_mean"], state["in_std"], state["out_mean"], state["out_std"])
