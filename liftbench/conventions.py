"""Evaluation conventions: which frames each codebase's own evaluation scores, with what weight, on the same
per-frame predictions, so a user sees the number a paper's code prints beside the number when every test
frame counts once.

``liftbench`` (the default) scores every test frame exactly once. Every other convention is declared by the
lifter that re-implements its codebase (``Lifter.evaluation_convention``, mechanics in
``data.conventions``): e.g. the VideoPose3D TCN declares ``videopose3d`` (every frame once: equal to
``liftbench``), MotionBERT its full-243-frame-windows frame set without three S9 takes and with the
predicted root zeroed, MixSTE its last window aligned to the video's end with the overlap counted twice.
Aggregation follows the weights (``evaluate.score_convention``): within each action group the weighted
mean, the headline the unweighted mean over groups, the frame mean the weighted mean over frames.
"""

from __future__ import annotations

import numpy as np

from liftbench.data.conventions import EvaluationConvention, EveryFrameOnce
from liftbench.data.skeleton import ROOT
from liftbench.errors import ConfigError, unknown_name_message
from liftbench.models import LIFTERS

DEFAULT = "liftbench"
LIFTBENCH = EveryFrameOnce(DEFAULT, "every test frame exactly once (weight 1); frames weighted within an action "
                                    "group, then the groups unweighted")


def available_conventions() -> dict[str, EvaluationConvention]:
    """``liftbench`` plus every convention a registered lifter declares (plug-ins included)."""
    found = {DEFAULT: LIFTBENCH}
    for entry in LIFTERS.entries():
        convention = getattr(entry.target, "evaluation_convention", None)
        if convention is not None:
            found.setdefault(convention.name, convention)
    return found


def get_convention(name: str) -> EvaluationConvention:
    conventions = available_conventions()
    if name not in conventions:
        raise ConfigError(unknown_name_message("convention", name, conventions) + " (--convention)")
    return conventions[name]


def convention_weights(convention: str, subject: np.ndarray, action: np.ndarray, camera: np.ndarray,
                       frame: np.ndarray, lengths: dict[tuple[str, str, int], int] | None = None) -> np.ndarray:
    """(M,) weight of every predicted frame, videos identified by (subject, action, camera). A video's length
    comes from ``lengths`` (its test-split length: predictions that do not cover every frame), else it is its
    largest frame number + 1 (the evaluator's predictions cover every frame of every test video)."""
    conv = get_convention(convention)
    weights = np.zeros(len(frame))
    keys = np.char.add(np.char.add(np.char.add(subject.astype(str), "|"), np.char.add(action.astype(str), "|")),
                       camera.astype(str))
    for key in np.unique(keys):
        rows = np.flatnonzero(keys == key)
        frames = frame[rows].astype(np.int64)
        s, a, c = str(key).split("|")
        n = lengths[(s, a, int(c))] if lengths is not None else int(frames.max()) + 1
        weights[rows] = conv.video_weights(n, s, a)[frames]
    return weights


def apply_convention(convention: str, pred: np.ndarray) -> np.ndarray:
    """The predictions (M, 17, 3) as the convention scores them (e.g. the predicted root set to zero)."""
    if get_convention(convention).zero_predicted_root:
        pred = pred.copy()
        pred[:, ROOT] = 0.0
    return pred
