"""The Human3.6M 17-joint skeleton, defined once for the whole package.

Order and parents follow VideoPose3D / mmpose (H36M-17). The Martinez / Hossain input/output
convention lives here too, because every model and metric must agree on it:

* 2D input: 16 joints = the 17 without Neck/Nose (index 9); the hip IS an input.
* 3D output: 16 joints = the 17 without the root Hip (index 0); the hip is not predicted.
* Metrics: all 17 joints with the root fixed at zero (so Protocol #1 is a 17-joint mean).
"""

from __future__ import annotations

import numpy as np

JOINT_NAMES: tuple[str, ...] = (
    "Hip", "RHip", "RKnee", "RFoot", "LHip", "LKnee", "LFoot", "Spine", "Thorax",
    "Neck/Nose", "Head", "LShoulder", "LElbow", "LWrist", "RShoulder", "RElbow", "RWrist",
)
NUM_JOINTS = 17
ROOT = 0
PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
LEFT_JOINTS: tuple[int, ...] = (4, 5, 6, 11, 12, 13)
RIGHT_JOINTS: tuple[int, ...] = (1, 2, 3, 14, 15, 16)
FLIP_PERMUTATION: tuple[int, ...] = tuple(
    {**{left: right for left, right in zip(LEFT_JOINTS, RIGHT_JOINTS)},
     **{right: left for left, right in zip(LEFT_JOINTS, RIGHT_JOINTS)}}.get(j, j)
    for j in range(NUM_JOINTS)
)

# Human3.6M's 32 mocap joints -> the standard 17 (Martinez data_utils.py, VideoPose3D h36m_dataset.py).
H36M32_TO_17: tuple[int, ...] = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)

INPUT_JOINTS: tuple[int, ...] = tuple(j for j in range(NUM_JOINTS) if j != 9)  # 16 joints, (x, y) each -> 32
OUTPUT_JOINTS: tuple[int, ...] = tuple(range(1, NUM_JOINTS))  # 16 joints, (x, y, z) each -> 48
INPUT_DIM = 2 * len(INPUT_JOINTS)  # 32
OUTPUT_DIM = 3 * len(OUTPUT_JOINTS)  # 48

# Hossain & Little smoothness weights per OUTPUT joint (reference temporal_model.py:165-170):
# 1 torso/head/hips/shoulders, 2.5 knees/feet, 4 elbows/wrists. The paper calls the groups
# torso_head / limb_mid / limb_terminal, but the code groups legs vs arms; we follow the code.
_SMOOTHNESS_BY_NAME = {"RKnee": 2.5, "RFoot": 2.5, "LKnee": 2.5, "LFoot": 2.5,
                       "LElbow": 4.0, "LWrist": 4.0, "RElbow": 4.0, "RWrist": 4.0}
SMOOTHNESS_JOINT_WEIGHTS: tuple[float, ...] = tuple(
    _SMOOTHNESS_BY_NAME.get(JOINT_NAMES[j], 1.0) for j in OUTPUT_JOINTS
)


def bone_lengths(joints: np.ndarray) -> np.ndarray:
    """Per-frame bone lengths (..., 16) of a (..., 17, 3) pose, one per non-root joint."""
    children = np.arange(1, NUM_JOINTS)
    parents = np.asarray(PARENTS[1:])
    return np.linalg.norm(joints[..., children, :] - joints[..., parents, :], axis=-1)


def root_centre(joints: np.ndarray) -> np.ndarray:
    """Subtract the root joint: (..., 17, D) -> (..., 17, D) with joint 0 exactly zero."""
    return joints - joints[..., ROOT : ROOT + 1, :]


def action_group(action: str) -> str:
    """Group takes of one action as the field does: the first word ('Walking 1' -> 'Walking')."""
    return action.split(" ")[0]
