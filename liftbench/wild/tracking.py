"""Who is who across frames: stable person ids for detector files, whether or not they carry track ids.

Why: most detector files have no identities (OpenPose, the MMPose inferencer and demo, COCO results,
YOLO without ``track``, MediaPipe, AlphaPose without ``--pose_track``) and list people by score, so "the
i-th person of each frame" swaps identities whenever a second person scores higher. Here people are
associated across frames instead, and every output person says how it was identified.

* **ids from the file** (``Detections.ids_from_file``: AlphaPose's scalar ``idx``, ``track_id`` of
  COCO/MMPose/YOLO records, easy_ViTPose's SORT ids, the person axis of an array): kept as they are.
* **associated across frames** (no ids): frames are visited in order; each live track predicts where its
  person is now, ``c_pred = c_last + v * gap`` (constant velocity ``v`` from its last two observations,
  zero after one, ``gap`` = frames since it was last seen), and costs a detection

      cost = |c_det - c_pred| / s + |ln(s_det / s_track)|,   s = max(s_det, s_track)

  where ``c`` is the hip midpoint (the centre of the confident points when a hip is missing) and ``s`` the
  person's size, the larger side of the box around its confident points, in pixels. The costs of one
  frame are matched by minimum total cost (``scipy.optimize.linear_sum_assignment``); a pair costing
  more than ``GATE`` is no match. An unmatched detection starts a new track; a track unseen for more
  than ``MAX_GAP`` frames ends. Ties are broken by file order, so the result is deterministic.

A detection without a single confident point (score >= threshold and not at (0, 0)) cannot be placed and
is dropped (``Identification.dropped``; the terminal always shows it). For every person, ``jumps`` lists
the frames where it moved more than ``JUMP`` person sizes from where it was predicted: with ids from the
file these are likely identity switches of the file's tracker; when associating they are fast motion
that was still within the gate. Nothing here reads the image; it cannot undo an identity switch of a
file's own tracker.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from liftbench.wild.keypoints import LAYOUTS, Detections

GATE = 1.0  # largest cost of a match: about one person size between prediction and detection
MAX_GAP = 25  # frames a track waits for its person before it ends (0.5 s at 50 fps)
JUMP = 0.5  # reported: moved more than half a person size from the prediction in one step

ASSOCIATED = "associated across frames"


@dataclass
class PersonIdentity:
    person_id: int
    identified_by: str  # 'track id from the file (<key>)' | 'associated across frames' | 'single person'
    detections: int
    jumps: list[int] = field(default_factory=list)  # frames with a jump of more than JUMP person sizes


@dataclass
class Identification:
    """The detections with stable person ids, and what was done to get them."""

    dets: Detections
    method: str
    people: dict[int, PersonIdentity]
    dropped: int = 0  # detections without a confident point: not placed, not lifted
    dropped_frames: list[int] = field(default_factory=list)
    merged_boxes: int = 0  # AlphaPose records that pose-NMS merged from several boxes
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the terminal: method, detections -> people, dropped, merged boxes."""
        kept = sum(p.detections for p in self.people.values())
        text = f"people: {self.method}; {kept} detection(s) -> {len(self.people)} person(s); dropped {self.dropped}"
        if self.dropped:
            more = " ..." if len(self.dropped_frames) > 8 else ""
            shown = ", ".join(str(f) for f in self.dropped_frames[:8]) + more
            text += f" (no confident point; frame(s) {shown})"
        if self.merged_boxes:
            text += f"; {self.merged_boxes} record(s) merged from several boxes by AlphaPose pose-NMS"
        return text


def _centres_and_sizes(dets: Detections, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(D, 2) hip midpoint (else centre of the confident points' box) and (D,) size in pixels; NaN if none."""
    names = LAYOUTS[dets.layout]
    pts = np.where(valid[..., None], dets.points, np.nan)  # (D, K, 2)
    with warnings.catch_warnings():  # a detection without any confident point: all-NaN, not placed
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanmin(pts, axis=1), np.nanmax(pts, axis=1)  # (D, 2)
    centre = (low + high) / 2  # (D, 2)
    if "left_hip" in names and "right_hip" in names:
        hips = [names.index("left_hip"), names.index("right_hip")]
        both = valid[:, hips].all(axis=1)  # (D,)
        centre[both] = dets.points[both][:, hips].mean(axis=1)
    elif dets.layout == "h36m17":
        root = valid[:, 0]
        centre[root] = dets.points[root, 0]
    size = np.maximum(np.max(high - low, axis=1), 1.0)  # (D,)
    return centre, size


class _Track:
    """A person being followed: its last two observations (frame, x, y) and its last size."""

    __slots__ = ("pid", "last", "prev", "size")

    def __init__(self, pid: int, frame: int, x: float, y: float, size: float):
        self.pid, self.last, self.prev, self.size = pid, (frame, x, y), None, size

    def add(self, frame: int, x: float, y: float, size: float) -> None:
        self.prev, self.last, self.size = self.last, (frame, x, y), size

    def predict(self, frame: int) -> tuple[float, float]:
        """Constant velocity from the last two observations (none after one)."""
        f1, x1, y1 = self.last
        if self.prev is None:
            return x1, y1
        f0, x0, y0 = self.prev
        step = (frame - f1) / (f1 - f0)
        return x1 + (x1 - x0) * step, y1 + (y1 - y0) * step

    def offset(self, frame: int, x: float, y: float, size: float) -> float:
        """|c - c_pred| in person sizes (the larger of the two)."""
        px, py = self.predict(frame)
        return math.hypot(x - px, y - py) / max(size, self.size)

    def cost(self, frame: int, x: float, y: float, size: float) -> float:
        return self.offset(frame, x, y, size) + abs(math.log(size / self.size))


def _jump_frames(frames: list[int], centres: list[tuple[float, float]], sizes: list[float]) -> list[int]:
    """Frames (of one person, in order) where it landed more than JUMP sizes from its predicted position."""
    track, jumps = None, []
    for f, (x, y), s in zip(frames, centres, sizes):
        if track is not None and track.offset(f, x, y, s) > JUMP:
            jumps.append(int(f))
            track = None  # predict from the new place on: one jump is reported once
        if track is None:
            track = _Track(0, f, x, y, s)
        else:
            track.add(f, x, y, s)
    return jumps


def _associate(frames: np.ndarray, centres: np.ndarray, sizes: np.ndarray, placed: np.ndarray,
               gate: float, max_gap: int) -> np.ndarray:
    """(D,) person id per detection (-1 where not placed): minimum-cost matching frame by frame."""
    from scipy.optimize import linear_sum_assignment  # heavy: only when a file has no ids

    person = np.full(len(frames), -1, dtype=np.int64)
    order = np.flatnonzero(placed)
    order = order[np.argsort(frames[order], kind="stable")]  # by frame, file order within a frame
    starts = np.flatnonzero(np.r_[True, np.diff(frames[order]) != 0])
    xs, ys, ss, fs = centres[:, 0].tolist(), centres[:, 1].tolist(), sizes.tolist(), frames.tolist()
    live: list[_Track] = []
    next_id = 0
    for rows in np.split(order, starts[1:]) if len(order) else []:  # the detections of one frame
        frame = fs[rows[0]]
        live = [t for t in live if frame - t.last[0] <= max_gap]
        cost = [[t.cost(frame, xs[r], ys[r], ss[r]) for r in rows] for t in live]  # (T, D)
        matched: dict[int, _Track] = {}
        if live and (len(live) == 1 or len(rows) == 1):  # one row or column: the cheapest pair is the optimum
            t, d = min(itertools.product(range(len(live)), range(len(rows))), key=lambda td: cost[td[0]][td[1]])
            matched = {d: live[t]} if cost[t][d] <= gate else {}
        elif live:
            table = np.asarray(cost)  # (T, D)
            ti, di = linear_sum_assignment(np.where(table <= gate, table, gate * 1e3))
            matched = {int(d): live[int(t)] for t, d in zip(ti, di) if table[t, d] <= gate}
        for j, r in enumerate(rows.tolist()):
            track = matched.get(j)
            if track is None:
                track = _Track(next_id, frame, xs[r], ys[r], ss[r])
                next_id += 1
                live.append(track)
            else:
                track.add(frame, xs[r], ys[r], ss[r])
            person[r] = track.pid
    return person


def identify(dets: Detections, score_threshold: float, *, gate: float = GATE, max_gap: int = MAX_GAP
             ) -> Identification:
    """Stable person ids for ``dets`` (points in pixels): the file's ids, or association across frames."""
    valid = (dets.scores >= score_threshold) & (dets.points != 0).any(axis=2)  # (D, K)
    placed = valid.any(axis=1)  # (D,)
    centres, sizes = _centres_and_sizes(dets, valid)
    if dets.person_key == "single person":
        method, person = "single person (one person in the array)", dets.person.copy()
    elif dets.ids_from_file:
        method, person = f"track id from the file ({dets.person_key})", dets.person.copy()
    else:
        method, person = ASSOCIATED, _associate(dets.frames, centres, sizes, placed, gate, max_gap)
    keep = placed if method == ASSOCIATED else np.ones(len(person), dtype=bool)
    people = {}
    for pid in np.unique(person[keep]).tolist():
        rows = np.flatnonzero((person == pid) & keep & placed)
        rows = rows[np.argsort(dets.frames[rows], kind="stable")]
        people[pid] = PersonIdentity(pid, method, int(np.sum((person == pid) & keep)),
                                     _jump_frames(dets.frames[rows].tolist(), centres[rows].tolist(),
                                                  sizes[rows].tolist()))
    kept = Detections(dets.source, dets.format, dets.layout, dets.frames[keep], person[keep], dets.points[keep],
                      dets.scores[keep], dets.video_frames, dets.person_key, dets.width, dets.height,
                      dets.ids_from_file, dets.normalised, dets.merged_boxes, list(dets.notes))
    dropped = ~keep
    return Identification(kept, method, people, int(dropped.sum()), sorted(set(dets.frames[dropped].tolist())),
                          dets.merged_boxes, list(dets.notes))
