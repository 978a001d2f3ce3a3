"""The mechanics of evaluation conventions: which frames of a video a codebase's own evaluation scores, and
with what weight (0 = not scored, 2 = counted twice). A lifter that re-implements a published codebase
declares that codebase's convention in its model file (``Lifter.evaluation_convention``), with the facts
(clip length, left-out takes) beside its other published settings; ``liftbench.conventions`` collects
them for ``evaluate --convention`` and ``score --convention``.

* ``EveryFrameOnce``: every frame, weight 1 (liftbench's own, and any codebase that scores whole videos).
* ``FullWindowsOnly``: non-overlapping windows of ``size`` frames from each video's first frame; the tail
  after the last full window, and whole ``excluded`` (subject, action) takes, never scored.
* ``LastWindowAtEnd``: ceil(n / size) windows per video, the last one aligned to its end; every window's
  frames weighted, so the overlap of the last window counts twice; a video shorter than a window is padded
  on the right by repeating its last frame (the ground truth too), which then counts 1 + the padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EvaluationConvention:
    name: str  # what ``--convention`` takes (the codebase)
    frame_set: str  # what it scores, in words (protocol card)
    zero_predicted_root: bool = False  # the codebase sets the predicted root to zero before scoring

    def video_weights(self, n: int, subject: str = "", action: str = "") -> np.ndarray:
        """(n,) weight of each frame of one n-frame video."""
        raise NotImplementedError


@dataclass(frozen=True)
class EveryFrameOnce(EvaluationConvention):
    def video_weights(self, n: int, subject: str = "", action: str = "") -> np.ndarray:
        return np.ones(max(n, 0))


@dataclass(frozen=True)
class FullWindowsOnly(EvaluationConvention):
    size: int = 243
    excluded: tuple[tuple[str, str], ...] = ()  # (subject, action) takes left out, all cameras

    def video_weights(self, n: int, subject: str = "", action: str = "") -> np.ndarray:
        w = np.zeros(max(n, 0))
        if (subject, action) not in self.excluded:
            w[: (max(n, 0) // self.size) * self.size] = 1.0  # a video under one window is never scored
        return w


@dataclass(frozen=True)
class LastWindowAtEnd(EvaluationConvention):
    size: int = 243

    def video_weights(self, n: int, subject: str = "", action: str = "") -> np.ndarray:
        w = np.zeros(max(n, 0))
        if n <= 0:
            return w
        if n < self.size:  # one window right-padded with copies of the last frame
            w[:] = 1.0
            w[-1] += self.size - n
            return w
        for start in [*range(0, n - self.size, self.size), n - self.size]:  # the last window aligned to the end
            w[start : start + self.size] += 1.0
        return w
