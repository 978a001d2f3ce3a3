"""Representations a lifter can declare, and the one place that encodes and decodes them.

A lifter's ``Representation`` (declared in its contract, ``models.base.Contract``) says:

* ``input_joints``: ``"h36m16"`` = the 17 without Neck/Nose (Martinez / Hossain GT input), or
  ``"h36m17"`` = all 17 (VideoPose3D); (x, y) per joint, interleaved, or (x, y, c) with
  ``input_confidence``: the detector's score per joint as a third channel (MotionBERT), 1.0 where the 2D
  has no scores (ground truth; a detector file without scores: the protocol card says which).
* ``input_norm``: ``"zscore"`` = raw pixels z-scored per dimension with training-split statistics
  (Martinez / Hossain), or ``"screen"`` = x / w * 2 - 1, y / w * 2 - h / w with the camera's image
  width w and height h (VideoPose3D: aspect ratio kept, absolute position kept, no statistics).
* ``output_joints``: ``"nonroot16"`` = the 16 non-root joints of the root-centred pose, the root
  re-inserted as an exact zero (Martinez / Hossain), or ``"all17"`` = all 17 with a zero root target,
  the predicted root kept at evaluation (VideoPose3D: its small error enters every metric).
* ``output_norm``: ``"zscore"`` (mm, training-split statistics), ``"metres"`` (unnormalised metres) or
  ``"image25d"`` (MotionBERT): root-relative image-plane 2.5D, screen-normalised. Each joint is projected
  (pinhole: u = fx X / Z + cx, v = fy Y / Z + cy); its depth is expressed in pixels at the root's depth,
  z = (Z - Z_root) / k with k = Z_root / fx the frame's mm per pixel at the root (MotionBERT's
  ``2.5d_factor``); (u - u_root, v - v_root, z) is divided by w / 2. Decoded as MotionBERT's evaluation
  does: times (w / 2) * k, which needs the ground-truth root depth (the true scale is handed to the model),
  giving millimetres in which x, y are perspective-scaled to the root depth and z is exact. Such a lifter
  is scored against the ground truth expressed the same way (``scored_targets``), never against the camera
  frame; the protocol card says so.

Every representation is an affine map of (possibly screen-normalised) coordinates, so it is carried by
one ``NormStats`` (saved with every model): ``encoded = (flat - mean) / std``. Screen normalisation is
the per-camera part applied before it; "metres" is mean 0, std 1000 on millimetres. Statistics come
from the training split only (all its frames and cameras). The evaluator always decodes to the 17
joints in mm (``outputs_to_poses``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence as Seq

import numpy as np
import torch

from liftbench.data.dataset import Sequence
from liftbench.data.skeleton import FLIP_PERMUTATION, INPUT_JOINTS, NUM_JOINTS, OUTPUT_JOINTS, ROOT, root_centre
from liftbench.errors import ConfigError, DataError

_MIN_STD = 1e-6  # guards dimensions that never move (the zero root of "all17", constant joints): never divide by 0

INPUT_JOINT_SETS: dict[str, tuple[int, ...]] = {"h36m16": INPUT_JOINTS, "h36m17": tuple(range(NUM_JOINTS))}
OUTPUT_JOINT_SETS: dict[str, tuple[int, ...]] = {"nonroot16": OUTPUT_JOINTS, "all17": tuple(range(NUM_JOINTS))}
INPUT_NORMS = ("zscore", "screen")
OUTPUT_NORMS = ("zscore", "metres", "image25d")


@dataclasses.dataclass(frozen=True)
class NormStats:
    """Affine statistics of the flattened model input (D_in,) and output (D_out,), float32 tensors."""

    in_mean: torch.Tensor
    in_std: torch.Tensor
    out_mean: torch.Tensor
    out_std: torch.Tensor

    def to(self, device: torch.device | str) -> NormStats:
        return NormStats(*(t.to(device) for t in dataclasses.astuple(self)))

    def unnormalize_output(self, y: torch.Tensor) -> torch.Tensor:
        """(..., D_out) encoded -> (..., D_out) root-relative millimetres."""
        return y * self.out_std + self.out_mean


@dataclasses.dataclass(frozen=True)
class Representation:
    """What a lifter reads and writes (module docstring); the default is the Martinez/Hossain one."""

    input_joints: str = "h36m16"
    input_norm: str = "zscore"
    output_joints: str = "nonroot16"
    output_norm: str = "zscore"
    input_confidence: bool = False  # a third input channel per joint: the detector's score (1.0 without one)

    def validate(self, where: str = "lifter") -> None:
        for name, allowed in (("input_joints", INPUT_JOINT_SETS), ("input_norm", INPUT_NORMS),
                              ("output_joints", OUTPUT_JOINT_SETS), ("output_norm", OUTPUT_NORMS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{where}: contract {name} must be one of {', '.join(allowed)}, "
                                  f"got {getattr(self, name)!r}.")
        if self.output_norm == "image25d" and (self.output_joints != "all17" or self.input_norm != "screen"):
            raise ConfigError(f"{where}: output_norm image25d needs output_joints all17 and screen input.")

    @property
    def input_joint_ids(self) -> tuple[int, ...]:
        return INPUT_JOINT_SETS[self.input_joints]

    @property
    def output_joint_ids(self) -> tuple[int, ...]:
        return OUTPUT_JOINT_SETS[self.output_joints]

    @property
    def channels(self) -> int:
        """Input values per joint: (x, y) or (x, y, confidence)."""
        return 3 if self.input_confidence else 2

    @property
    def input_dim(self) -> int:
        return self.channels * len(self.input_joint_ids)

    @property
    def output_dim(self) -> int:
        return 3 * len(self.output_joint_ids)

    @property
    def root_handling(self) -> str:
        """How the root enters the 17-joint metrics, in words (protocol card and rows)."""
        if self.output_joints == "nonroot16":
            return "root not predicted: inserted as an exact zero, counted in every 17-joint mean"
        return "root predicted with a zero target: its (small) predicted offset counted in every 17-joint mean"

    @property
    def flippable(self) -> bool:
        """Mirroring is a sign flip + joint swap in encoded space only for screen input and an output that is
        not z-scored (metres; root-relative image-plane 2.5D)."""
        return self.input_norm == "screen" and self.output_norm in ("metres", "image25d")

    @property
    def scored_space(self) -> str:
        """The ground truth a lifter is scored against (protocol card): camera frame, or MotionBERT's 2.5D."""
        if self.output_norm == "image25d":
            return ("MotionBERT image-plane 2.5D millimetres: x, y of each joint projected and scaled to the root's "
                    "depth, z = depth - root depth; per-frame scale from the ground-truth root depth (handed to "
                    "the model, as MotionBERT's evaluation does)")
        return "camera frame, root-relative millimetres"


DEFAULT_REPRESENTATION = Representation()


def _resolution(seq: Sequence) -> tuple[float, float]:
    if seq.resolution is None:
        raise DataError(f"Sequence {seq.subject}/{seq.action}/cam{seq.camera} has no image size, which a "
                        "screen-normalised lifter needs; give the camera resolution (width, height).")
    return float(seq.resolution[0]), float(seq.resolution[1])


def flat_inputs(keypoints_2d: np.ndarray, rep: Representation = DEFAULT_REPRESENTATION,
                resolution: tuple[float, float] | None = None, confidence: np.ndarray | None = None) -> np.ndarray:
    """(N, 17, 2) px -> (N, C J) float64, the representation's input joints interleaved x, y (screen-
    normalised by the image ``resolution`` (w, h) when the representation asks for it), then the score
    ``confidence`` (N, 17) when it reads one (1.0 where ``confidence`` is None)."""
    xy = keypoints_2d[:, rep.input_joint_ids, :].astype(np.float64)  # (N, J, 2)
    if rep.input_norm == "screen":
        w, h = resolution  # type: ignore[misc]
        xy = xy / w * 2.0 - np.array([1.0, h / w])  # VideoPose3D normalize_screen_coordinates
    if rep.input_confidence:
        c = np.ones(xy.shape[:2]) if confidence is None else confidence[:, rep.input_joint_ids].astype(np.float64)
        xy = np.concatenate([xy, c[..., None]], axis=2)  # (N, J, 2) -> (N, J, 3)
    return xy.reshape(len(keypoints_2d), -1)  # (N, J, C) -> (N, C J)


def flat_targets(joints_3d: np.ndarray, rep: Representation = DEFAULT_REPRESENTATION) -> np.ndarray:
    """(N, 17, 3) mm -> (N, 3J) float64, root-centred, the representation's output joints interleaved."""
    centred = root_centre(joints_3d.astype(np.float64))  # (N, 17, 3), root exactly 0
    return centred[:, rep.output_joint_ids, :].reshape(len(joints_3d), -1)  # (N, 3J)


def _sequence_inputs(seq: Sequence, rep: Representation) -> np.ndarray:
    return flat_inputs(seq.keypoints_2d, rep, _resolution(seq) if rep.input_norm == "screen" else None,
                       seq.confidence)


def _intrinsics(seq: Sequence) -> tuple[float, float, float, float]:
    if seq.intrinsics is None:
        raise DataError(f"Sequence {seq.subject}/{seq.action}/cam{seq.camera} has no camera intrinsics, which an "
                        "image-plane 2.5D lifter needs; use a dataset with cameras (fx, fy, cx, cy).")
    return seq.intrinsics


def image25d(joints_3d: np.ndarray, intrinsics: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame mm (N, 17, 3) -> (root-relative 2.5D mm (N, 17, 3), mm per pixel at the root k (N,)).

    u = fx X / Z + cx, v = fy Y / Z + cy (pinhole); k = Z_root / fx; 2.5D mm = ((u - u_root) k,
    (v - v_root) k, Z - Z_root): MotionBERT's ``joints_2.5d_image`` made root-relative."""
    fx, fy, cx, cy = intrinsics
    j = joints_3d.astype(np.float64)
    z = j[..., 2]  # (N, 17)
    if not np.all(z > 0):
        raise DataError("an image-plane 2.5D target needs every joint in front of the camera (Z > 0 mm); "
                        "this sequence has joints at or behind the camera plane.")
    u, v = fx * j[..., 0] / z + cx, fy * j[..., 1] / z + cy  # (N, 17) px
    k = z[:, ROOT] / fx  # (N,) mm per px at the root depth
    out = np.stack([(u - u[:, ROOT:ROOT + 1]) * k[:, None], (v - v[:, ROOT:ROOT + 1]) * k[:, None],
                    z - z[:, ROOT:ROOT + 1]], axis=-1)  # (N, 17, 3)
    return out, k


def output_scale(seq: Sequence, rep: Representation = DEFAULT_REPRESENTATION) -> np.ndarray | None:
    """(N,) mm per encoded unit of each frame for a per-frame output scale (image25d: (w / 2) k, from the
    ground-truth root depth), None for every representation whose scale is in ``NormStats``."""
    if rep.output_norm != "image25d":
        return None
    _, k = image25d(seq.joints_3d, _intrinsics(seq))
    return _resolution(seq)[0] / 2.0 * k


def scored_targets(seq: Sequence, rep: Representation = DEFAULT_REPRESENTATION) -> np.ndarray:
    """(N, 17, 3) float64 root-relative mm the evaluator scores this representation against."""
    if rep.output_norm == "image25d":
        return image25d(seq.joints_3d, _intrinsics(seq))[0]
    return root_centre(seq.joints_3d.astype(np.float64))


def describe_scores(sequences: Seq[Sequence], keypoints: str, rep: Representation) -> str | None:
    """What fills a score-reading lifter's third input channel, in words (protocol card, terminal); None
    when the lifter reads no scores. A detector file without scores is never filled silently."""
    if not rep.input_confidence or not sequences:
        return None
    with_scores = sum(s.confidence is not None for s in sequences)
    if with_scores == len(sequences):
        return f"the detector's score per joint, from the 2D source '{keypoints}'"
    if keypoints == "gt" and with_scores == 0:
        return "1.0 for every joint (ground-truth 2D has no detector scores)"
    if with_scores == 0:
        return (f"1.0 stood in for every joint: the 2D source '{keypoints}' has no scores (the lifter was published "
                "with detector scores; give a 2D file with a score channel to match it)")
    return (f"the detector's score per joint from '{keypoints}'; 1.0 stood in for the {len(sequences) - with_scores} "
            "sequence(s) without scores")


def compute_stats(train_sequences: Seq[Sequence], rep: Representation = DEFAULT_REPRESENTATION) -> NormStats:
    """The representation's statistics: per-dimension mean/std over every training frame for a
    z-scored side (float64 accumulation, float32 result), fixed constants otherwise."""
    if not train_sequences:
        raise ValueError("cannot compute normalisation statistics from an empty training split")
    if rep.input_norm == "zscore":
        x = np.concatenate([_sequence_inputs(s, rep) for s in train_sequences])  # (F, D_in)
        in_mean, in_std = x.mean(axis=0), np.maximum(x.std(axis=0), _MIN_STD)
    else:
        in_mean, in_std = np.zeros(rep.input_dim), np.ones(rep.input_dim)
    if rep.output_norm == "zscore":
        y = np.concatenate([flat_targets(s.joints_3d, rep) for s in train_sequences])  # (F, D_out)
        out_mean, out_std = y.mean(axis=0), np.maximum(y.std(axis=0), _MIN_STD)
    elif rep.output_norm == "image25d":  # the training split's median scale: mm of a prediction without ground truth
        scale = float(np.median(np.concatenate([output_scale(s, rep) for s in train_sequences])))
        out_mean, out_std = np.zeros(rep.output_dim), np.full(rep.output_dim, scale)
    else:  # metres: encoded = mm / 1000
        out_mean, out_std = np.zeros(rep.output_dim), np.full(rep.output_dim, 1000.0)
    return NormStats(*(torch.tensor(a, dtype=torch.float32) for a in (in_mean, in_std, out_mean, out_std)))


def encode_inputs(seq: Sequence, stats: NormStats, rep: Representation = DEFAULT_REPRESENTATION) -> np.ndarray:
    """A sequence's 2D -> (N, D_in) float32 model input."""
    return ((_sequence_inputs(seq, rep) - stats.in_mean.double().numpy())
            / stats.in_std.double().numpy()).astype(np.float32)


def normalize_targets(joints_3d: np.ndarray, stats: NormStats,
                      rep: Representation = DEFAULT_REPRESENTATION) -> np.ndarray:
    """(N, 17, 3) mm -> (N, D_out) float32 encoded root-centred targets (representations scaled by ``NormStats``)."""
    mean, std = stats.out_mean.double().numpy(), stats.out_std.double().numpy()
    return ((flat_targets(joints_3d, rep) - mean) / std).astype(np.float32)


def encode_targets(seq: Sequence, stats: NormStats, rep: Representation = DEFAULT_REPRESENTATION) -> np.ndarray:
    """A sequence's 3D -> (N, D_out) float32 training targets (image25d: 2.5D mm over each frame's scale)."""
    if rep.output_norm == "image25d":
        mm = image25d(seq.joints_3d, _intrinsics(seq))[0].reshape(seq.n_frames, -1)  # (N, 51)
        return (mm / output_scale(seq, rep)[:, None]).astype(np.float32)
    return normalize_targets(seq.joints_3d, stats, rep)


def outputs_to_poses(y_mm: np.ndarray, rep: Representation = DEFAULT_REPRESENTATION) -> np.ndarray:
    """(N, D_out) root-relative mm -> (N, 17, 3): "nonroot16" gets the root re-inserted at exactly zero;
    "all17" keeps the predicted root (not re-centred: VideoPose3D scores it as predicted)."""
    poses = np.zeros((len(y_mm), NUM_JOINTS, 3), dtype=y_mm.dtype)  # (N, 17, 3)
    ids = rep.output_joint_ids
    poses[:, ids, :] = y_mm.reshape(len(y_mm), len(ids), 3)  # (N, J, 3)
    return poses


def flip_maps(rep: Representation) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mirroring in encoded space: (input permutation (D_in,), input signs, output permutation (D_out,),
    output signs). x is negated (screen x about the image centre line, camera X about the optical axis
    plane, as VideoPose3D) and left/right joints swap."""
    def maps(ids: tuple[int, ...], dims: int) -> tuple[np.ndarray, np.ndarray]:
        pos = {j: i for i, j in enumerate(ids)}
        perm = np.array([pos[FLIP_PERMUTATION[j]] * dims + d for j in ids for d in range(dims)], dtype=np.int64)
        sign = np.tile(np.array([-1.0] + [1.0] * (dims - 1), dtype=np.float32), len(ids))  # only x; never a score
        return perm, sign

    return (*maps(rep.input_joint_ids, rep.channels), *maps(rep.output_joint_ids, 3))


def stats_to_state(stats: NormStats) -> dict[str, torch.Tensor]:
    return {"in_mean": stats.in_mean, "in_std": stats.in_std, "out_mean": stats.out_mean, "out_std": stats.out_std}


def stats_from_state(state: dict[str, torch.Tensor]) -> NormStats:
    return NormStats(state["in_mean"], state["in_std"], state["out_mean"], state["out_std"])
