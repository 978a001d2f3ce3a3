"""Stable identities: files without track ids (people listed by score, as detectors do) are associated
across frames; files with ids keep them, and their sudden jumps are reported; nothing is dropped silently.
Each scene is written in a real detector's schema (tests/fixtures/detectors.py) and every output person is
compared with the ground truth of the person it should be: the same points given as an array."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fixtures.detectors import standing, write_alphapose, write_coco, write_openpose

from liftbench.wild.keypoints import person_tracks
from liftbench.wild.readers import read_keypoints
from liftbench.wild.sources import assemble
from liftbench.wild.tracking import ASSOCIATED, GATE, MAX_GAP, identify


def by_score(people):
    """Detectors list people by score: highest first."""
    return sorted(people, key=lambda p: -p.scores.mean())


def crossing(n_frames: int = 41) -> tuple[list, np.ndarray, np.ndarray]:
    """A walks right, B walks left at the same height and size; they cross at frame 20. Their scores
    alternate, so 'the first person of each frame' switches between them. Returns frames, A's and B's points."""
    frames, a_pts, b_pts = [], [], []
    for f in range(n_frames):
        a = standing(dx=-400 + 20 * f, score=0.9 if f % 3 else 0.7)
        b = standing(dx=400 - 20 * f, score=0.8)
        a.points[5] += [0, 3]  # a little asymmetry so the two are not the same pose
        frames.append(by_score([a, b]))
        a_pts.append(a.points)
        b_pts.append(b.points)
    return frames, np.stack(a_pts), np.stack(b_pts)


def people_of(path, threshold=0.3):
    dets, _ = read_keypoints(path)
    ident = identify(dets, threshold)
    tracks, skipped = person_tracks(ident.dets, threshold)
    assert not skipped
    return dets, ident, {t.person_id: t for t in tracks}


def hip(points: np.ndarray) -> np.ndarray:
    """COCO-17 (F, 17, 2) -> (F, 2) mid-hip, the Human3.6M Hip the mapping gives."""
    return (points[:, 11] + points[:, 12]) / 2


def test_two_people_crossing_keep_their_identity(tmp_path):
    frames, a, b = crossing()
    dets, ident, tracks = people_of(write_openpose(tmp_path / "op", frames))
    assert not dets.ids_from_file and ident.method == ASSOCIATED and ident.dropped == 0
    assert sorted(tracks) == [0, 1] and all(len(t.frames) == 41 for t in tracks.values())
    first_listed = np.array([f[0].points[0, 0] for f in frames])  # index-within-frame would follow this person
    assert len(set(np.sign(np.diff(first_listed)))) == 2  # ... which jumps between A and B
    np.testing.assert_allclose(tracks[0].keypoints_2d[:, 0], hip(a if frames[0][0].points[0, 0] < 500 else b))
    for track in tracks.values():  # each output person is exactly one of them, all the way through
        truth = a if np.allclose(track.keypoints_2d[0, 0], hip(a)[0]) else b
        np.testing.assert_allclose(track.keypoints_2d[:, 0], hip(truth), atol=1e-9)
    assert all(not p.jumps for p in ident.people.values())


def test_a_person_entering_mid_clip_does_not_take_over_person_0(tmp_path):
    frames = []
    for f in range(40):
        people = [standing(dx=-300 + 2 * f, score=0.6)]
        if f >= 20:  # B walks in from the right and scores higher: listed first from frame 20
            people.append(standing(dx=700 - 10 * (f - 20), scale=0.9, score=0.95))
        frames.append(by_score(people))
    dets, ident, tracks = people_of(write_coco(tmp_path / "res.json", frames))
    assert sorted(tracks) == [0, 1]
    assert tracks[0].frames.tolist() == list(range(40)) and tracks[1].frames.tolist() == list(range(20, 40))
    a = np.stack([standing(dx=-300 + 2 * f).points for f in range(40)])
    np.testing.assert_allclose(tracks[0].keypoints_2d[:, 0], hip(a), atol=1e-9)  # never B's 499+ px hip
    assert ident.people[1].detections == 20 and "2 person(s)" in ident.summary()


def test_untracked_alphapose_with_merged_boxes_is_read_not_refused(tmp_path):
    frames, a, b = crossing(30)
    merged = frozenset({(4, 0), (4, 1), (17, 1)})  # pose-NMS merged two boxes into these people
    path = write_alphapose(tmp_path / "alphapose-results.json", frames, merged=merged)
    records = json.loads(path.read_text())
    assert records[8]["idx"] == [[0.0], [0.0]] and records[0]["idx"] == [0.0]  # the shapes AlphaPose writes
    dets, ident, tracks = people_of(path)
    assert not dets.ids_from_file and dets.person_key == "index within the frame"
    assert ident.merged_boxes == 3 and "3 record(s) merged from several boxes" in ident.summary()
    assert ident.dropped == 0 and sum(p.detections for p in ident.people.values()) == 60  # 2 x 30: none vanished
    assert len(tracks) == 2 and all(len(t.frames) == 30 for t in tracks.values())
    for track in tracks.values():
        truth = a if np.allclose(track.keypoints_2d[0, 0], hip(a)[0]) else b
        np.testing.assert_allclose(track.keypoints_2d[:, 0], hip(truth), atol=1e-9)


def test_tracked_alphapose_keeps_its_ids_and_reports_a_switch(tmp_path):
    frames = []
    for f in range(20):
        a, b = standing(dx=-400, track=1), standing(dx=400, track=2)
        if f >= 10:  # the file's tracker swapped the two ids at frame 10
            a.track, b.track = 2, 1
        frames.append([a, b])
    dets, ident, tracks = people_of(write_alphapose(tmp_path / "a.json", frames, tracked=True))
    assert dets.ids_from_file and dets.person_key == "idx" and sorted(tracks) == [1, 2]
    assert ident.method == "track id from the file (idx)"
    assert ident.people[1].jumps == [10] and ident.people[2].jumps == [10]


def _scene(frames_people) -> object:
    rows = [(f, None, p.points, p.scores) for f, people in frames_people for p in people]
    return assemble(__import__("pathlib").Path("scene"), "coco", "coco17", rows, [f for f, _ in frames_people],
                    [None] * len(rows), (None, None))


def test_gap_within_max_gap_keeps_the_id_longer_gap_starts_a_new_one():
    short = _scene([(f, [standing(dx=3 * f)]) for f in list(range(10)) + list(range(10 + MAX_GAP - 1, 45))])
    assert set(identify(short, 0.3).dets.person.tolist()) == {0}
    long = _scene([(f, [standing(dx=3 * f)]) for f in list(range(10)) + list(range(11 + MAX_GAP, 50))])
    assert set(identify(long, 0.3).dets.person.tolist()) == {0, 1}


def test_a_far_detection_beyond_the_gate_is_someone_else():
    size = 680.0  # the standing person's height in pixels
    scene = _scene([(0, [standing()]), (1, [standing(dx=1.2 * GATE * size)])])
    assert identify(scene, 0.3).dets.person.tolist() == [0, 1]


def test_a_detection_without_confident_points_is_dropped_and_said():
    ghost = standing()
    ghost.scores[:] = 0.05
    scene = _scene([(0, [standing()]), (1, [standing(dx=2), ghost]), (2, [standing(dx=4)])])
    ident = identify(scene, 0.3)
    assert ident.dropped == 1 and ident.dropped_frames == [1] and len(ident.dets.frames) == 3
    assert "dropped 1 (no confident point; frame(s) 1)" in ident.summary()


@pytest.mark.parametrize("seed", range(3))
def test_association_is_deterministic(seed):
    rng = np.random.default_rng(seed)
    scene = _scene([(f, by_score([standing(dx=-300 + 9 * f, score=rng.uniform(0.5, 1)),
                                  standing(dx=300 - 9 * f, score=rng.uniform(0.5, 1))])) for f in range(30)])
    first, second = identify(scene, 0.3), identify(scene, 0.3)
    np.testing.assert_array_equal(first.dets.person, second.dets.person)


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    from fixtures.lifters import small_set_options

    from liftbench.cli import main

    out = tmp_path_factory.mktemp("runs")
    assert main(["train", "mlp", "--data", "tiny", "--epochs", "1", "--device", "cpu", "--out", str(out),
                 "--set", "batch_size=32", *small_set_options("mlp")]) == 0
    (run,) = [d for d in out.rglob("mlp-*") if (d / "run.json").is_file()]
    return run


def test_predict_says_how_people_were_identified_and_what_was_dropped(mlp_run, run_cli, tmp_path):
    frames, _, _ = crossing(12)
    ghost = standing(dx=900)
    ghost.scores[:] = 0.0
    frames[5].append(ghost)  # a detection without a single confident point
    folder = write_openpose(tmp_path / "clip", frames)
    code, out, err = run_cli("predict", mlp_run, folder, "--width", "1920", "--height", "1080", "--device", "cpu")
    assert code == 0, err
    text, warn = " ".join(out.split()), " ".join(err.split())
    assert "score threshold 0.3 (default for openpose" in text and "layout body25 (" in text
    assert "people: associated across frames; 24 detection(s) -> 2 person(s); dropped 1" in text
    assert text.count("(associated across frames, 12 detections, dropped 0 duplicate(s))") == 2
    assert "dropped 1 detection(s) without a point scoring >= 0.3" in warn
    meta = json.loads((tmp_path / "clip_3d_person0.json").read_text())
    assert meta["person"]["method"] == ASSOCIATED and meta["detections_dropped"]["count"] == 1
