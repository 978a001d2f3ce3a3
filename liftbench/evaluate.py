"""Evaluation engine: every test frame predicted and scored exactly once, aggregated as published.

* Inference: one window per frame (``windows.window_index``), causal or centred as the lifter's
  contract declares, edge frames replicated; the prediction of frame t is the aligned output of its
  window; batched on the model's device.
* Coverage: the set of (subject, action, camera, frame) scored is rebuilt from the prediction
  arrays and compared with the test split; a missing or duplicated frame raises ``CoverageError``.
* Aggregation (labelled in every row): per action group (first word of the action), frame-weighted
  over subjects, takes and cameras; ``action_mean`` = unweighted mean over groups (the headline);
  ``frame_mean`` = mean over all frames; optional ``video_mean`` = Hossain's reference weighting
  (mean of per-video means within a group, then over groups), with its per-group values as
  ``slice_type = action_video`` rows (suites always emit both; reports use the one a published
  number used).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from liftbench import metrics as M
from liftbench._files import write_bytes_atomic
from liftbench.conventions import apply_convention, convention_weights
from liftbench.data.dataset import Sequence
from liftbench.data.normalize import outputs_to_poses, scored_targets
from liftbench.data.safe.npz import load_members
from liftbench.data.skeleton import JOINT_NAMES, action_group
from liftbench.data.windows import build_table, window_index
from liftbench.errors import CoverageError, DataError
from liftbench.fast import predict_frames
from liftbench.models.base import Lifter, NormStats
from liftbench.values import float32_safe, id_array


def _reported_metrics() -> dict[str, dict]:
    """Row name -> registry metadata of every metric the evaluator reports: the metric registry
    (``metrics.METRICS``) is the one source of names, units, directions and scales. A one-sequence
    metric with ``of_target`` is also reported on the ground truth under that name (jitter_gt)."""
    out = {}
    for entry in M.METRICS.entries():
        meta = {"scale": 1.0, **entry.meta, "function": entry.target, "name": entry.name}
        out[meta.get("row", entry.name)] = meta
        if meta.get("of_target"):
            out[meta["of_target"]] = {**meta, "on_target": True}
    return out


REPORTED = _reported_metrics()
_LAG = {"transition": 1, "frame_triplet": 2}  # first differences need 2 frames, second differences 3
FRAME_METRICS = tuple(r for r, m in REPORTED.items() if m["per"] == "frame")
TEMPORAL_METRICS = tuple(r for r, m in REPORTED.items() if m["per"] != "frame")
UNITS = {r: m["unit"] for r, m in REPORTED.items()}
HIGHER_IS_BETTER = {r: bool(m["higher_is_better"]) for r, m in REPORTED.items()}


@dataclass
class Predictions:
    """Per-frame predictions of a test split, in sequence order; poses root-relative, camera frame, mm."""

    subject: np.ndarray  # (M,) str
    action: np.ndarray  # (M,) str
    camera: np.ndarray  # (M,) int 0-3
    frame: np.ndarray  # (M,) int
    pred: np.ndarray  # (M, 17, 3) float32
    target: np.ndarray  # (M, 17, 3) float32

    def __len__(self) -> int:
        return len(self.frame)

    def save(self, path) -> None:
        import io

        buf = io.BytesIO()
        np.savez_compressed(buf, subject=self.subject.astype(str), action=self.action.astype(str),
                            camera=self.camera.astype(np.int64), frame=self.frame.astype(np.int64),
                            pred=self.pred.astype(np.float32), target=self.target.astype(np.float32))
        write_bytes_atomic(path, buf.getvalue())

    @classmethod
    def load(cls, path) -> Predictions:
        """A predictions.npz written by ``save``, through the one safe reader (memory-bounded, no pickle);
        members checked for shape, dtype and finiteness like any value read from a file."""
        z = load_members(path)
        fix = "re-run evaluate with --save-predictions"
        missing = [k for k in ("subject", "action", "camera", "frame", "pred", "target") if k not in z]
        if missing:
            raise DataError(f"{path} is not a liftbench predictions.npz (no {', '.join(missing)}); {fix}.")
        pred = float32_safe(z["pred"], f"{path} member 'pred'", shape=(None, 17, 3))
        n = len(pred)
        target = float32_safe(z["target"], f"{path} member 'target'", shape=(n, 17, 3))
        frame = id_array(z["frame"], f"{path} member 'frame'", shape=(n,))
        camera = id_array(z["camera"], f"{path} member 'camera'", shape=(n,))
        names = []
        for key in ("subject", "action"):
            value = np.asarray(z[key])
            if value.dtype.kind not in "US" or value.shape != (n,):
                raise DataError(f"{path} member '{key}' must be {n} names (text), got {value.dtype} {value.shape}; "
                                f"{fix}.")
            names.append(value.astype(str))
        return cls(names[0], names[1], camera, frame, pred, target)

    def segments(self) -> list[slice]:
        """Contiguous row ranges of one (subject, action, camera) video each."""
        change = np.ones(len(self), dtype=bool)
        change[1:] = ((self.subject[1:] != self.subject[:-1]) | (self.action[1:] != self.action[:-1])
                      | (self.camera[1:] != self.camera[:-1]) | (self.frame[1:] != self.frame[:-1] + 1))
        bounds = np.append(np.flatnonzero(change), len(self))
        return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


@torch.no_grad()
def predict_sequences(model: Lifter, stats: NormStats, sequences: list[Sequence], device: torch.device,
                      batch_size: int = 2048, ground_truth: bool = True) -> Predictions:
    """Aligned predictions for every frame of ``sequences``, in the representation and window the
    model's contract declares (no per-frame Python loop); poses decoded to 17 joints in mm.
    ``ground_truth=False``: the sequences' 3D is a placeholder (``predict``): targets are zero and a lifter
    whose scale comes from the ground truth (image-plane 2.5D) keeps its nominal, training-split scale."""
    if not sequences:
        raise DataError("The test split is empty: check test_subjects and the dataset (liftbench data info).")
    contract = model.contract
    rep = contract.representation
    model.eval().to(device)
    table = build_table(sequences, stats, rep, ground_truth=ground_truth)
    index = torch.from_numpy(window_index(table, contract.window)).to(device)  # (F, T)
    inputs = torch.from_numpy(table.inputs).to(device)  # (F, D_in)
    stats_dev = stats.to(device)
    segments = [(int(a), int(n)) for a, n in zip(table.starts, table.lengths)]
    # the lifter's speed path (liftbench.fast) where it has one, else its own predict_frames
    encoded = predict_frames(model, inputs, index, batch_size, segments)  # (F, D_out)
    if encoded.shape != (table.n_frames, rep.output_dim):
        raise DataError(f"{type(model).__name__}.predict_frames returned shape {tuple(encoded.shape)}, expected "
                        f"({table.n_frames}, {rep.output_dim}); this is a bug in the lifter, not in your data.")
    if table.out_scale is not None:  # a per-frame scale (image-plane 2.5D: from the ground-truth root depth)
        out = encoded.double().cpu().numpy() * table.out_scale[:, None]  # (F, D_out) mm; zero-mean representation
    else:
        out = stats_dev.unnormalize_output(encoded).double().cpu().numpy()  # (F, D_out) mm
    pred = outputs_to_poses(out, rep).astype(np.float32)  # (F, 17, 3)
    if ground_truth:
        target = np.concatenate([scored_targets(s, rep) for s in sequences]).astype(np.float32)  # (F, 17, 3)
    else:
        target = np.zeros_like(pred)
    seq_ids = table.sequence_ids()
    keys = table.keys
    return Predictions(
        subject=np.array([keys[i][0] for i in range(len(keys))])[seq_ids],
        action=np.array([keys[i][1] for i in range(len(keys))])[seq_ids],
        camera=np.array([keys[i][2] for i in range(len(keys))], dtype=np.int64)[seq_ids],
        frame=table.frame_numbers(), pred=pred, target=target)


def check_coverage(sequences: list[Sequence], preds: Predictions) -> int:
    """Raise ``CoverageError`` unless every test frame is scored exactly once; returns the frame count."""
    key_index = {s.key: i for i, s in enumerate(sequences)}
    lengths = np.array([s.n_frames for s in sequences], dtype=np.int64)
    big = int(lengths.max()) + 1
    expected = np.concatenate([i * big + np.arange(n) for i, n in enumerate(lengths)])  # (F,)
    triples = list(zip(preds.subject.tolist(), preds.action.tolist(), preds.camera.tolist()))
    unknown = {t for t in set(triples) if t not in key_index}
    if unknown:
        raise CoverageError(f"Evaluation scored {len(unknown)} video(s) that are not in the test split, e.g. "
                            f"{sorted(unknown)[0]}; this is a bug in the evaluator, not in your data.")
    ids = np.array([key_index[t] for t in triples], dtype=np.int64)
    scored = ids * big + preds.frame.astype(np.int64)
    values, counts = np.unique(scored, return_counts=True)
    dup = values[counts > 1]
    missing = np.setdiff1d(expected, values, assume_unique=True)
    outside = np.setdiff1d(values, expected, assume_unique=True)
    if len(dup) or len(missing) or len(outside):
        def describe(code: int) -> str:
            s = sequences[int(code) // big]
            return f"{s.subject}/{s.action}/cam{s.camera}/frame{int(code) % big}"
        parts = []
        if len(missing):
            parts.append(f"{len(missing)} test frame(s) never scored (e.g. {describe(missing[0])})")
        if len(dup):
            parts.append(f"{len(dup)} frame(s) scored more than once (e.g. {describe(dup[0])})")
        if len(outside):
            parts.append(f"{len(outside)} scored frame(s) outside the sequences")
        raise CoverageError("Evaluation coverage check failed: " + "; ".join(parts) + f" (expected {len(expected)}).")
    return len(expected)


def per_frame_metrics(preds: Predictions) -> dict[str, np.ndarray]:
    """Frame metrics over all M frames, shape (M,) each."""
    pred, target = preds.pred, preds.target
    return {row: REPORTED[row]["scale"] * REPORTED[row]["function"](pred, target) for row in FRAME_METRICS}


def temporal_metrics(preds: Predictions) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Temporal metrics per video (never differencing across two videos): name -> (values, row of each value)."""
    out: dict[str, list] = {m: [[], []] for m in TEMPORAL_METRICS}
    for seg in preds.segments():
        p, t = preds.pred[seg], preds.target[seg]
        rows = np.arange(seg.start, seg.stop)
        for name in TEMPORAL_METRICS:
            meta = REPORTED[name]
            lag = _LAG[meta["per"]]  # frames a value needs: its row is the last of them
            if len(rows) <= lag:
                continue
            fn = meta["function"]
            values = fn(t) if meta.get("on_target") else fn(p) if meta["inputs"] == 1 else fn(p, t)
            out[name][0].append(meta["scale"] * values)
            out[name][1].append(rows[lag:])
    return {m: (np.concatenate(v) if v else np.zeros(0),
                np.concatenate(r).astype(np.int64) if r else np.zeros(0, np.int64))
            for m, (v, r) in out.items()}


def _aggregate(values: np.ndarray, groups: np.ndarray,
               videos: np.ndarray | None) -> list[tuple[str, str, str, float, int]]:
    """(slice_type, slice, averaging, value, n) rows for one metric from per-frame values."""
    rows = []
    if len(values) == 0:
        return rows
    names, inverse = np.unique(groups, return_inverse=True)
    sums = np.bincount(inverse, weights=values.astype(np.float64))
    counts = np.bincount(inverse)
    group_means = sums / counts
    for name, mean, n in zip(names, group_means, counts):
        rows.append(("action", str(name), "frame-weighted within action group", float(mean), int(n)))
    rows.append(("all", "action_mean", "unweighted mean over action groups", float(group_means.mean()),
                 int(counts.sum())))
    rows.append(("all", "frame_mean", "mean over all frames", float(values.mean(dtype=np.float64)), len(values)))
    if videos is not None:
        vid_names, vid_inv = np.unique(videos, return_inverse=True)
        vid_means = np.bincount(vid_inv, weights=values.astype(np.float64)) / np.bincount(vid_inv)
        vid_group = np.empty(len(vid_names), dtype=object)
        vid_group[vid_inv] = groups
        per_group = [vid_means[vid_group == g].mean() for g in names]
        for name, mean, n in zip(names, per_group, counts):  # beside a published per-video-weighted action value
            rows.append(("action_video", str(name), "mean of per-video means within action group (Hossain reference)",
                         float(mean), int(n)))
        rows.append(("all", "video_mean", "mean of per-video means per group, then over groups (Hossain reference)",
                     float(np.mean(per_group)), int(counts.sum())))
    return rows


def score(preds: Predictions, video_mean: bool = False, per_joint: bool = True) -> list[dict]:
    """Aggregate every metric into tidy rows (metric, slice_type, slice, averaging, value, unit, n_frames)."""
    groups = np.array([action_group(a) for a in preds.action])
    videos = np.char.add(np.char.add(np.char.add(preds.subject.astype(str), "|"),
                                     np.char.add(preds.action.astype(str), "|")),
                         preds.camera.astype(str)) if video_mean else None
    rows = []
    for metric, values in per_frame_metrics(preds).items():
        for slice_type, slc, averaging, value, n in _aggregate(values, groups, videos):
            rows.append({"metric": metric, "slice_type": slice_type, "slice": slc, "averaging": averaging,
                         "value": value, "unit": UNITS[metric], "higher_is_better": HIGHER_IS_BETTER[metric],
                         "n_frames": n})
    for metric, (values, at) in temporal_metrics(preds).items():
        per_video = videos[at] if videos is not None else None
        for slice_type, slc, averaging, value, n in _aggregate(values, groups[at], per_video):
            rows.append({"metric": metric, "slice_type": slice_type, "slice": slc, "averaging": averaging,
                         "value": value, "unit": UNITS[metric], "higher_is_better": HIGHER_IS_BETTER[metric],
                         "n_frames": n})
    if per_joint:
        aligned = M.procrustes_align(preds.pred, preds.target)
        for metric, errors in (("mpjpe", M.per_joint_error(preds.pred, preds.target)),
                               ("p_mpjpe", M.per_joint_error(aligned, preds.target))):
            names, inverse = np.unique(groups, return_inverse=True)
            for j, joint in enumerate(JOINT_NAMES):
                sums = np.bincount(inverse, weights=errors[:, j])
                value = float((sums / np.bincount(inverse)).mean())
                rows.append({"metric": metric, "slice_type": "joint", "slice": joint,
                             "averaging": "unweighted mean over action groups", "value": value, "unit": "mm",
                             "higher_is_better": False, "n_frames": len(errors)})
    return rows


def score_convention(preds: Predictions, convention: str,
                     lengths: dict[tuple[str, str, int], int] | None = None) -> list[dict]:
    """Frame-metric rows as another codebase's evaluation scores the same predictions (``conventions``):
    its per-frame weights (0 = not scored, 2 = counted twice) and prediction edits; within each action group
    the weighted mean, ``action_mean`` the groups' unweighted mean, ``frame_mean`` the weighted mean over
    frames. ``n_frames`` counts the distinct frames scored; each row carries ``convention`` and
    ``n_counted`` (frames with their multiplicity). ``lengths``: each video's test-split length, for
    predictions that do not cover every frame (``score --allow-partial``)."""
    weights = convention_weights(convention, preds.subject, preds.action, preds.camera, preds.frame, lengths)  # (M,)
    keep = weights > 0
    scored = Predictions(preds.subject[keep], preds.action[keep], preds.camera[keep], preds.frame[keep],
                         apply_convention(convention, preds.pred[keep]), preds.target[keep])
    w = weights[keep]
    groups = np.array([action_group(a) for a in scored.action])
    rows = []
    if not len(w):
        return rows
    names, inverse = np.unique(groups, return_inverse=True)
    for metric, values in per_frame_metrics(scored).items():
        sums = np.bincount(inverse, weights=values.astype(np.float64) * w)
        totals = np.bincount(inverse, weights=w)
        frames = np.bincount(inverse)
        means = sums / totals
        base = {"metric": metric, "unit": UNITS[metric], "higher_is_better": HIGHER_IS_BETTER[metric],
                "convention": convention}
        for name, mean, n, counted in zip(names, means, frames, totals):
            rows.append({**base, "slice_type": "action", "slice": str(name), "value": float(mean), "n_frames": int(n),
                         "n_counted": int(counted), "averaging": f"{convention}: weighted within action group"})
        rows.append({**base, "slice_type": "all", "slice": "action_mean", "value": float(means.mean()),
                     "n_frames": int(frames.sum()), "n_counted": int(w.sum()),
                     "averaging": f"{convention}: unweighted mean over action groups"})
        rows.append({**base, "slice_type": "all", "slice": "frame_mean",
                     "value": float((values.astype(np.float64) * w).sum() / w.sum()), "n_frames": int(frames.sum()),
                     "n_counted": int(w.sum()), "averaging": f"{convention}: weighted mean over frames"})
    return rows
