"""Frame tables and window indices for training and for exact-coverage evaluation.

All sequences of a split are concatenated into one (F, D) array so a whole batch of windows is
one fancy-indexing gather (no per-sample Python). Windows never cross a sequence boundary.

A lifter's temporal footprint (``WindowSpec``, part of its contract) says how:

* ``size`` frames per window (the receptive field; 1 for frame models);
* ``alignment``: ``"causal"`` (frame t from frames t-size+1 .. t) or ``"centred"`` (t from t-r .. t+r,
  size = 2r + 1);
* ``training``: ``"inside"`` (every stride-1 window lying fully inside a sequence: Hossain) or
  ``"padded"`` (one window per frame, edges replicated: VideoPose3D);
* ``targets``: ``"window"`` (the model outputs, and is trained on, every frame of its window) or
  ``"aligned"`` (only the aligned frame).

Evaluation: one window per frame, aligned as declared, edge frames replicated at both ends, so every
test frame is predicted exactly once by the aligned output of its window (Hossain after the evaluation
fix, VideoPose3D's whole-sequence padding; sequences shorter than the window too).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liftbench.data.dataset import Sequence
from liftbench.data.normalize import DEFAULT_REPRESENTATION, NormStats, Representation, encode_inputs, normalize_targets
from liftbench.errors import ConfigError

ALIGNMENTS = ("causal", "centred")
TRAINING_WINDOWS = ("inside", "padded")
TRAINING_TARGETS = ("window", "aligned")


@dataclass(frozen=True)
class WindowSpec:
    size: int = 1
    alignment: str = "causal"
    training: str = "inside"
    targets: str = "window"

    def validate(self, where: str = "lifter") -> None:
        if self.size < 1:
            raise ConfigError(f"{where}: window size must be >= 1, got {self.size}.")
        for name, allowed in (("alignment", ALIGNMENTS), ("training", TRAINING_WINDOWS), ("targets", TRAINING_TARGETS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{where}: window {name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}.")
        if self.alignment == "centred" and self.size % 2 == 0:
            raise ConfigError(f"{where}: a centred window needs an odd size, got {self.size}.")

    @property
    def offsets(self) -> np.ndarray:
        """(T,) row offsets of a window relative to its aligned frame."""
        if self.alignment == "causal":
            return np.arange(-self.size + 1, 1)  # -T+1 .. 0
        r = self.size // 2
        return np.arange(-r, r + 1)  # -r .. r

    @property
    def aligned_position(self) -> int:
        """Index of the aligned frame inside a window (the last one if causal, the centre if centred)."""
        return self.size - 1 if self.alignment == "causal" else self.size // 2

    def describe(self) -> str:
        """The evaluation window policy in words (protocol card)."""
        if self.size == 1:
            return "single frame: each frame predicted on its own"
        if self.alignment == "causal":
            return (f"causal: frame t is predicted by the {self.size}-frame window ending at t; the first frames use "
                    "windows padded by repeating the first frame")
        return (f"centred: frame t is predicted by the {self.size}-frame window t-{self.size // 2} .. t+{self.size // 2}; "
                "frames beyond either end of the video are replicated edge frames")


@dataclass
class FrameTable:
    inputs: np.ndarray  # (F, D_in) float32, encoded
    targets: np.ndarray  # (F, D_out) float32, encoded
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

    def row_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(F,) first and (F,) last row of each row's sequence (edge replication clamps to these)."""
        first = np.repeat(self.starts, self.lengths)
        return first, first + np.repeat(self.lengths, self.lengths) - 1


def build_table(sequences: list[Sequence], stats: NormStats, rep: Representation = DEFAULT_REPRESENTATION) -> FrameTable:
    if not sequences:
        raise ValueError("no sequences to build a frame table from")
    lengths = np.array([s.n_frames for s in sequences], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    inputs = np.concatenate([encode_inputs(s, stats, rep) for s in sequences])  # (F, D_in)
    targets = np.concatenate([normalize_targets(s.joints_3d, stats, rep) for s in sequences])  # (F, D_out)
    return FrameTable(inputs, targets, starts, lengths, [s.key for s in sequences])


def training_window_starts(table: FrameTable, window: int) -> np.ndarray:
    """(W,) global row of the first frame of every stride-1 window fully inside one sequence."""
    per_seq = [start + np.arange(n - window + 1) for start, n in zip(table.starts, table.lengths) if n >= window]
    return np.concatenate(per_seq).astype(np.int64) if per_seq else np.zeros(0, dtype=np.int64)


@dataclass
class TrainingWindows:
    """How the trainer gathers a batch: rows = anchors[i] + offsets (clamped to the anchor's sequence
    when ``clamp``), targets at rows (``target_offset`` None) or at anchors[i] + target_offset."""

    anchors: np.ndarray  # (W,) int64
    offsets: np.ndarray  # (T,) int64
    target_offset: int | None
    clamp: bool


def training_windows(table: FrameTable, spec: WindowSpec) -> TrainingWindows:
    """The training samples a window spec declares (module docstring), in row order."""
    if spec.training == "inside":  # windows fully inside: anchored at their first frame
        anchors = training_window_starts(table, spec.size)
        offsets = np.arange(spec.size, dtype=np.int64)
        target = None if spec.targets == "window" else spec.aligned_position
        return TrainingWindows(anchors, offsets, target, clamp=False)
    anchors = np.arange(table.n_frames, dtype=np.int64)  # one window per frame, anchored at the aligned frame
    return TrainingWindows(anchors, spec.offsets.astype(np.int64), None if spec.targets == "window" else 0, clamp=True)


def window_index(table: FrameTable, spec: WindowSpec) -> np.ndarray:
    """(F, T) global rows of the evaluation window of every frame, edge frames replicated at both ends."""
    rows = np.arange(table.n_frames)  # (F,)
    first, last = table.row_bounds()  # (F,), (F,)
    return np.clip(rows[:, None] + spec.offsets[None, :], first[:, None], last[:, None])  # (F, T)
