"""Frame tables and window indices for training and for exact-coverage evaluation.

All sequences of a split are concatenated into one (F, D) array so a whole batch of windows is
one fancy-indexing gather (no per-sample Python). Windows never cross a sequence boundary.

* Training: every stride-1 window of length T lying fully inside a sequence.
* Evaluation: one causal window per frame (the window ENDING at that frame), padded by repeating
  the sequence's first frame for the first T-1 frames, so every test frame is predicted exactly once
  by the last output of its window (Hossain after the evaluation fix; sequences shorter than T too).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liftbench.data.dataset import Sequence
from liftbench.data.normalize import normalize_inputs, normalize_targets
from liftbench.models.base import NormStats


@dataclass
class FrameTable:
    inputs: np.ndarray  # (F, 32) float32, normalised
    targets: np.ndarray  # (F, 48) float32, normalised
    starts: np.ndarray  # (S,) int64 first row of each sequence
    lengths: np.ndarray  # (S,) int64 frames per sequence
    keys: list[tuple[str, str, int]]  # (subject, action, camera) per sequence

    @property
    def n_frames(self) -> int:
        return int(self.lengths.sum())

    def sequence_ids(self) -> np.ndarray:
        """(F,) index of the sequence each row belongs to."""
        return np.repeat(np.arange(len(self.lengths)), self.lengths)

    def frame_numbers(self) -> np.ndarray:
        """(F,) frame number of each row within its sequence."""
        return np.arange(self.n_frames) - np.repeat(self.starts, self.lengths)


def build_table(sequences: list[Sequence], stats: NormStats) -> FrameTable:
    if not sequences:
        raise ValueError("no sequences to build a frame table from")
    lengths = np.array([s.n_frames for s in sequences], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    inputs = np.concatenate([normalize_inputs(s.keypoints_2d, stats) for s in sequences])  # (F, 32)
    targets = np.concatenate([normalize_targets(s.joints_3d, stats) for s in sequences])  # (F, 48)
    return FrameTable(inputs, targets, starts, lengths, [s.key for s in sequences])


def training_window_starts(table: FrameTable, window: int) -> np.ndarray:
    """(W,) global row of the first frame of every stride-1 window fully inside one sequence."""
    per_seq = [start + np.arange(n - window + 1) for start, n in zip(table.starts, table.lengths) if n >= window]
    return np.concatenate(per_seq).astype(np.int64) if per_seq else np.zeros(0, dtype=np.int64)


def causal_window_index(table: FrameTable, window: int) -> np.ndarray:
    """(F, T) global rows of the causal window ending at every frame (first frame repeated as padding)."""
    rows = np.arange(table.n_frames)  # (F,)
    first = np.repeat(table.starts, table.lengths)  # (F,) first row of each row's sequence
    offsets = np.arange(-window + 1, 1)  # (T,) -T+1 .. 0
    return np.maximum(rows[:, None] + offsets[None, :], first[:, None])  # (F, T)
