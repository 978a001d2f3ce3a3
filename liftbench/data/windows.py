"""Frame tables and window indices for training and for exact-coverage evaluation.

All sequences of a split are concatenated into one (F, D) array so a whole batch of windows is
one fancy-indexing gather (no per-sample Python). Windows never cross a sequence boundary.

A lifter's temporal footprint (``WindowSpec``, part of its contract) says how:

* ``size`` frames per window (the receptive field; 1 for frame models; the clip length of a clip model);
* ``alignment``: ``"causal"`` (frame t from frames t-size+1 .. t), ``"centred"`` (t from t-r .. t+r,
  size = 2r + 1) or ``"clip"`` (a seq2seq clip model: every frame of a clip is an output);
* ``training``: ``"inside"`` (every ``stride``-th window lying fully inside a sequence: Hossain with
  stride 1, MotionBERT's 243-frame clips with stride 81, tails dropped), ``"padded"`` (one window per
  frame, edges replicated: VideoPose3D) or ``"grid"`` (non-overlapping clips on a grid centred on the
  sequence, both ends edge-padded: MixSTE);
* ``targets``: ``"window"`` (the model outputs, and is trained on, every frame of its window) or
  ``"aligned"`` (only the aligned frame);
* ``short`` (clip models): a video shorter than the clip is one ``"shorter"`` clip (the model's own
  shorter-clip path: MotionBERT) or one clip right-padded by repeating the last frame (``"pad"``: MixSTE,
  whose positional table has exactly ``size`` frames).

Evaluation: one window per frame, aligned as declared, edge frames replicated at both ends, so every
test frame is predicted exactly once by the aligned output of its window (Hossain after the evaluation
fix, VideoPose3D's whole-sequence padding; sequences shorter than the window too). Clip models
(``clip_plan``): consecutive non-overlapping clips from the first frame; a tail that does not fill a clip
is covered by one more clip aligned to the video's end, from which only the frames no earlier clip
covered are taken; so every frame is taken from exactly one clip, whatever the video length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liftbench.data.dataset import Sequence
from liftbench.data.normalize import (
    DEFAULT_REPRESENTATION,
    NormStats,
    Representation,
    encode_inputs,
    encode_targets,
    output_scale,
)
from liftbench.errors import ConfigError

ALIGNMENTS = ("causal", "centred", "clip")
TRAINING_WINDOWS = ("inside", "padded", "grid")
TRAINING_TARGETS = ("window", "aligned")
SHORT_CLIPS = ("shorter", "pad")


@dataclass(frozen=True)
class WindowSpec:
    size: int = 1
    alignment: str = "causal"
    training: str = "inside"
    targets: str = "window"
    stride: int = 1  # training "inside": every stride-th window start
    short: str = "shorter"  # clip models: a video shorter than the clip (module docstring)

    def validate(self, where: str = "lifter") -> None:
        if self.size < 1:
            raise ConfigError(f"{where}: window size must be >= 1, got {self.size}.")
        if self.stride < 1:
            raise ConfigError(f"{where}: window stride must be >= 1, got {self.stride}.")
        for name, allowed in (("alignment", ALIGNMENTS), ("training", TRAINING_WINDOWS), ("targets", TRAINING_TARGETS),
                              ("short", SHORT_CLIPS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{where}: window {name} must be one of {', '.join(allowed)}, "
                                  f"got {getattr(self, name)!r}.")
        if self.alignment == "centred" and self.size % 2 == 0:
            raise ConfigError(f"{where}: a centred window needs an odd size, got {self.size}.")
        if self.training == "grid" and self.alignment != "clip":
            raise ConfigError(f"{where}: grid training windows are for clip models (alignment clip).")
        if self.alignment == "clip" and (self.targets != "window" or self.training == "padded"):
            raise ConfigError(f"{where}: a clip model trains on whole clips (targets window, training inside or grid).")

    @property
    def is_clip(self) -> bool:
        return self.alignment == "clip"

    @property
    def offsets(self) -> np.ndarray:
        """(T,) row offsets of a window relative to its aligned frame (a clip: relative to its first frame)."""
        if self.alignment == "causal":
            return np.arange(-self.size + 1, 1)  # -T+1 .. 0
        if self.alignment == "clip":
            return np.arange(self.size)  # 0 .. T-1
        r = self.size // 2
        return np.arange(-r, r + 1)  # -r .. r

    @property
    def aligned_position(self) -> int:
        """Index of the aligned frame inside a window (the last one if causal, the centre if centred; a clip
        has no single aligned frame: its first)."""
        if self.alignment == "clip":
            return 0
        return self.size - 1 if self.alignment == "causal" else self.size // 2

    def describe(self) -> str:
        """The evaluation window policy in words (protocol card)."""
        if self.alignment == "clip":
            short = ("one shorter clip (the model takes any length up to its clip)" if self.short == "shorter" else
                     f"one {self.size}-frame clip right-padded by repeating the last frame, the padding discarded")
            return (f"clips of {self.size} frames: consecutive non-overlapping clips from the first frame; a tail that "
                    f"does not fill a clip is covered by one more clip aligned to the video's end, from which only the "
                    f"frames no earlier clip covered are taken; a video shorter than a clip: {short}. Every frame is "
                    "taken from exactly one clip")
        if self.size == 1:
            return "single frame: each frame predicted on its own"
        if self.alignment == "causal":
            return (f"causal: frame t is predicted by the {self.size}-frame window ending at t; the first frames use "
                    "windows padded by repeating the first frame")
        return (f"centred: frame t is predicted by the {self.size}-frame window "
                f"t-{self.size // 2} .. t+{self.size // 2}; "
                "frames beyond either end of the video are replicated edge frames")


@dataclass
class FrameTable:
    inputs: np.ndarray  # (F, D_in) float32, encoded
    targets: np.ndarray  # (F, D_out) float32, encoded
    starts: np.ndarray  # (S,) int64 first row of each sequence
    lengths: np.ndarray  # (S,) int64 frames per sequence
    keys: list[tuple[str, str, int]]  # (subject, action, camera) per sequence
    out_scale: np.ndarray | None = None  # (F,) mm per encoded unit of each frame (image25d), None: NormStats' scale

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


def build_table(sequences: list[Sequence], stats: NormStats, rep: Representation = DEFAULT_REPRESENTATION,
                ground_truth: bool = True) -> FrameTable:
    """The encoded frames of ``sequences``; ``ground_truth=False`` (2D without 3D: ``predict``): zero targets
    and no per-frame output scale (an image-plane 2.5D lifter's output then keeps its nominal scale)."""
    if not sequences:
        raise ValueError("no sequences to build a frame table from")
    lengths = np.array([s.n_frames for s in sequences], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    inputs = np.concatenate([encode_inputs(s, stats, rep) for s in sequences])  # (F, D_in)
    if not ground_truth:
        targets = np.zeros((int(lengths.sum()), rep.output_dim), dtype=np.float32)
        return FrameTable(inputs, targets, starts, lengths, [s.key for s in sequences])
    targets = np.concatenate([encode_targets(s, stats, rep) for s in sequences])  # (F, D_out)
    scales = [output_scale(s, rep) for s in sequences]
    out_scale = np.concatenate(scales) if scales[0] is not None else None  # (F,) float64, absolute mm per unit
    return FrameTable(inputs, targets, starts, lengths, [s.key for s in sequences], out_scale)


def training_window_starts(table: FrameTable, window: int, stride: int = 1) -> np.ndarray:
    """(W,) global row of the first frame of every ``stride``-th window fully inside one sequence (a tail
    shorter than a window is left out, as MotionBERT's clip slicing does)."""
    per_seq = [start + np.arange(0, n - window + 1, stride) for start, n in zip(table.starts, table.lengths)
               if n >= window]
    return np.concatenate(per_seq).astype(np.int64) if per_seq else np.zeros(0, dtype=np.int64)


def grid_clips(n: int, size: int) -> np.ndarray:
    """(ceil(n / size),) first frame (possibly negative) of each clip of a non-overlapping grid centred on a
    sequence of n frames: the grid is n_clips * size long and overhangs both ends by (n_clips * size - n)
    / 2 frames (floor at the start), which are edge-padded (MixSTE's ``ChunkedGenerator_Seq``)."""
    n_clips = -(-n // size)
    return np.arange(n_clips) * size - (n_clips * size - n) // 2


@dataclass
class TrainingWindows:
    """How the trainer gathers a batch: rows = anchors[i] + offsets (clamped to the anchor's sequence
    when ``clamp``), targets at rows (``target_offset`` None) or at anchors[i] + target_offset."""

    anchors: np.ndarray  # (W,) int64
    offsets: np.ndarray  # (T,) int64
    target_offset: int | None
    clamp: bool
    shifts: np.ndarray | None = None  # (W,) int64 added to each anchor's rows (grid clips overhanging the start)


def training_windows(table: FrameTable, spec: WindowSpec) -> TrainingWindows:
    """The training samples a window spec declares (module docstring), in row order."""
    if spec.training == "inside":  # windows fully inside: anchored at their first frame
        anchors = training_window_starts(table, spec.size, spec.stride)
        offsets = np.arange(spec.size, dtype=np.int64)
        target = None if spec.targets == "window" else spec.aligned_position
        return TrainingWindows(anchors, offsets, target, clamp=False)
    if spec.training == "grid":  # anchored at the clip's first frame inside its sequence; clamped at both ends
        firsts = [start + grid_clips(int(n), spec.size) for start, n in zip(table.starts, table.lengths)]
        seq_starts = [np.full(len(f), s) for f, s in zip(firsts, table.starts)]
        first = np.concatenate(firsts).astype(np.int64)  # (W,) may lie before its sequence
        anchors = np.maximum(first, np.concatenate(seq_starts)).astype(np.int64)
        return TrainingWindows(anchors, np.arange(spec.size, dtype=np.int64), None, clamp=True,
                               shifts=first - anchors)
    anchors = np.arange(table.n_frames, dtype=np.int64)  # one window per frame, anchored at the aligned frame
    return TrainingWindows(anchors, spec.offsets.astype(np.int64), None if spec.targets == "window" else 0, clamp=True)


def clip_plan(n: int, spec: WindowSpec) -> list[tuple[int, int, int, int]]:
    """How a clip model covers a video of n frames (module docstring): per clip (first frame, clip length,
    first and end position of the outputs taken). Rows past the video's end (``short = "pad"``) repeat its
    last frame. Every frame 0..n-1 is taken from exactly one clip."""
    size = spec.size
    if n <= 0:
        return []
    if n < size:
        return [(0, n if spec.short == "shorter" else size, 0, n)]
    plan = [(a, size, 0, size) for a in range(0, n - size + 1, size)]
    covered = plan[-1][0] + size
    if covered < n:  # the tail: one more clip aligned to the end; take only what no clip covered
        plan.append((n - size, size, covered - (n - size), size))
    return plan


def window_index(table: FrameTable, spec: WindowSpec) -> np.ndarray:
    """(F, T) global rows of the evaluation window of every frame, edge frames replicated at both ends.
    A clip model's windows are its clips (``clip_plan``, cut from the sequences): (F, 1), each frame's own row."""
    rows = np.arange(table.n_frames)  # (F,)
    if spec.is_clip:
        return rows[:, None]
    first, last = table.row_bounds()  # (F,), (F,)
    return np.clip(rows[:, None] + spec.offsets[None, :], first[:, None], last[:, None])  # (F, T)
