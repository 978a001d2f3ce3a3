"""Evaluation conventions on a fixture test set of videos of 100, 243, 300 and 700 frames: the frames each
convention scores counted against a hand count, and the values against hand computation."""

from __future__ import annotations

import numpy as np
import pytest

from liftbench.conventions import available_conventions, convention_weights, get_convention
from liftbench.errors import ConfigError
from liftbench.evaluate import Predictions, score, score_convention

LENGTHS = (100, 243, 300, 700)
ACTIONS = ("Walking", "Eating", "Posing", "Smoking")  # one action group per video


def fixture_predictions(excluded_take: bool = False) -> Predictions:
    """Video v (of LENGTHS) is action ACTIONS[v]; its prediction is the target with every joint, root included,
    moved by d = 10 (v + 1) + t / 100 mm along x at frame t, so a frame's MPJPE is exactly d (and 16 d / 17
    with the root zeroed)."""
    subject, action, camera, frame, pred, target = [], [], [], [], [], []
    for v, n in enumerate(LENGTHS):
        t = np.arange(n)
        poses = np.random.default_rng(v).normal(0, 300, (n, 17, 3))
        poses[:, 0] = 0.0  # root-centred targets
        shift = np.zeros((n, 17, 3))
        shift[..., 0] = (10.0 * (v + 1) + t / 100.0)[:, None]
        name = "Waiting 1" if excluded_take and v == 3 else ACTIONS[v]
        subject += ["S9"] * n
        action += [name] * n
        camera += [0] * n
        frame.append(t)
        target.append(poses)
        pred.append(poses + shift)
    return Predictions(np.array(subject), np.array(action), np.array(camera), np.concatenate(frame),
                       np.concatenate(pred).astype(np.float64), np.concatenate(target).astype(np.float64))


def video_weights(convention: str, n: int, subject: str = "", action: str = "") -> np.ndarray:
    return get_convention(convention).video_weights(n, subject, action)


def d(v: int, t: np.ndarray) -> np.ndarray:
    return 10.0 * (v + 1) + t / 100.0


def test_frames_each_convention_scores_by_hand():
    """liftbench / videopose3d: 100 + 243 + 300 + 700 = 1343 frames once. motionbert: full 243-windows only:
    0 + 243 + 243 + 486 = 972. mixste: 100 -> one padded window (243 counted, the last frame 144 times);
    243 -> 243; 300 -> windows [0, 243) and [57, 300): 486 counted, 186 twice; 700 -> [0, 243), [243, 486),
    [457, 700): 729 counted, 29 twice: 1701 in all."""
    p = fixture_predictions()
    w = {c: convention_weights(c, p.subject, p.action, p.camera, p.frame) for c in available_conventions()}
    assert w["liftbench"].sum() == w["videopose3d"].sum() == 1343 and (w["liftbench"] == 1).all()
    assert (w["motionbert"] > 0).sum() == 972 and set(np.unique(w["motionbert"])) == {0.0, 1.0}
    assert w["mixste"].sum() == 243 + 243 + 486 + 729 == 1701
    assert (w["mixste"] == 2).sum() == 186 + 29
    assert video_weights("mixste", 100)[-1] == 1 + 143 and (video_weights("mixste", 100)[:-1] == 1).all()
    assert video_weights("motionbert", 100).sum() == 0  # a video under one clip is never scored
    assert video_weights("motionbert", 700)[486:].sum() == 0 and video_weights("motionbert", 700)[:486].all()


def test_motionbert_leaves_out_its_three_s9_takes():
    p = fixture_predictions(excluded_take=True)  # the 700-frame video is S9 "Waiting 1"
    w = convention_weights("motionbert", p.subject, p.action, p.camera, p.frame)
    assert (w > 0).sum() == 243 + 243  # 0 + 243 + 243 + (700-frame video left out)
    assert video_weights("motionbert", 486, "S11", "Waiting 1").sum() == 486  # only S9's take is left out
    assert set(available_conventions()) == {"liftbench", "videopose3d", "motionbert", "mixste"}


def _row(rows, metric: str, slc: str) -> dict:
    (row,) = [r for r in rows if r["metric"] == metric and r["slice"] == slc]
    return row


def test_values_by_hand():
    p = fixture_predictions()
    # liftbench: every frame once; per action the mean of d over the video's frames
    lift = {r["slice"]: r["value"] for r in score(p, per_joint=False) if r["metric"] == "mpjpe"}
    per_action = [d(v, np.arange(n)).mean() for v, n in enumerate(LENGTHS)]
    assert lift["action_mean"] == pytest.approx(np.mean(per_action), abs=1e-9)
    vp3d = score_convention(p, "videopose3d")
    assert _row(vp3d, "mpjpe", "action_mean")["value"] == pytest.approx(lift["action_mean"], abs=1e-12)
    # motionbert: the root zeroed (16 of 17 joints off by d), full windows only, the 100-frame video unscored
    mb = score_convention(p, "motionbert")
    scored = {1: np.arange(243), 2: np.arange(243), 3: np.arange(486)}
    expected = np.mean([16 / 17 * d(v, t).mean() for v, t in scored.items()])
    assert _row(mb, "mpjpe", "action_mean")["value"] == pytest.approx(expected, abs=1e-9)
    assert _row(mb, "mpjpe", "action_mean")["n_frames"] == 972
    assert {r["slice"] for r in mb if r["slice_type"] == "action"} == {"Eating", "Posing", "Smoking"}
    frame_mean = np.concatenate([16 / 17 * d(v, t) for v, t in scored.items()]).mean()
    assert _row(mb, "mpjpe", "frame_mean")["value"] == pytest.approx(frame_mean, abs=1e-9)
    # mixste: weighted by window frames, root kept
    mx = score_convention(p, "mixste")
    per_action = []
    for v, n in enumerate(LENGTHS):
        w = video_weights("mixste", n)
        per_action.append((w * d(v, np.arange(n))).sum() / w.sum())
    assert _row(mx, "mpjpe", "action_mean")["value"] == pytest.approx(np.mean(per_action), abs=1e-9)
    headline = _row(mx, "mpjpe", "action_mean")
    assert headline["n_counted"] == 1701 and headline["n_frames"] == 1343
    # a translation-only error vanishes under Procrustes alignment in every convention
    assert _row(mx, "p_mpjpe", "action_mean")["value"] == pytest.approx(0.0, abs=1e-6)


def test_unknown_convention_is_named():
    p = fixture_predictions()
    with pytest.raises(ConfigError, match="Unknown convention 'motionbret'.*motionbert"):
        score_convention(p, "motionbret")
