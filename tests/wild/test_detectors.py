"""Every detector format against the same points given as a plain array: each fixture (tests/fixtures/
detectors.py) follows its tool's documented schema; reading it, turning it into pixels, identifying and
filling people must give exactly the Human3.6M-17 joints the array gives (to the precision the format
stores: YOLO labels are '%g' fractions of the image). Also: the BODY_25 / BODY_25B check, the per-format
score thresholds, auto-detection of folders that start empty, and wrong-format messages."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures.detectors import (
    BODY25B,
    COCO17,
    HALPE26,
    MEDIAPIPE33,
    VITPOSE25,
    as_array,
    rtmlib_recipe,
    standing,
    write_alphapose,
    write_coco,
    write_detectron2,
    write_json,
    write_mediapipe,
    write_openpose,
    write_vitpose,
    write_yolo_json,
    write_yolo_txt,
)

from liftbench.errors import ConfigError, DataError
from liftbench.wild.keypoints import default_score_threshold, mapping_table, person_tracks
from liftbench.wild.readers import detect_format, read_keypoints
from liftbench.wild.sources import in_pixels
from liftbench.wild.tracking import identify

W, H = 1920.0, 1080.0
MISSING = 0.01  # below every format's default threshold (detectron2's is 0.05)


def walking(n_frames: int = 12) -> list[list]:
    """One person walking right, 7 px per frame; the left wrist is missed (score 0.01) in frames 3 and 4."""
    frames = []
    for f in range(n_frames):
        person = standing(dx=7.0 * f, dy=60.0)
        if f in (3, 4):
            person.scores[COCO17.index("left_wrist")] = MISSING
        frames.append([person])
    return frames


def lifted(path, fmt="auto", layout=None, threshold=None):
    """read -> pixels -> identify -> map and fill, as ``predict`` does (without a lifter)."""
    dets, how = read_keypoints(path, fmt, layout)
    threshold = default_score_threshold(dets.format)[0] if threshold is None else threshold
    ident = identify(in_pixels(dets, W, H), threshold)
    tracks, skipped = person_tracks(ident.dets, threshold)
    assert not skipped
    return dets, how, ident, tracks


def reference(tmp_path, frames, person: int = 0) -> np.ndarray:
    """The same points given as an array (F, 17, 3) -> H36M-17 pixels (F, 17, 2)."""
    pts = as_array(frames, person)
    scores = np.stack([f[person].scores for f in frames])[..., None]  # (F, 17, 1)
    np.save(tmp_path / "same.npy", np.concatenate([pts, scores], axis=2))
    (track,) = lifted(tmp_path / "same.npy")[3]
    return track.keypoints_2d


# ------------------------------------------------------------------------------------ mapping of the new layouts
@pytest.mark.parametrize("layout,names", [("body25b", BODY25B), ("mediapipe33", MEDIAPIPE33),
                                          ("vitpose25", VITPOSE25), ("halpe26", HALPE26)])
def test_new_layouts_map_the_same_named_points(layout, names):
    coco = {r["joint"]: r["sources"] for r in mapping_table("coco17")}
    for row in mapping_table(layout):
        assert row["sources"] == coco[row["joint"]]
        assert [names[i] for i in row["source_indices"]] == row["sources"]  # indices from independent name lists


# ------------------------------------------------------------------------------------ each format = the array
FORMATS = {
    "openpose_body25": lambda d, fr: write_openpose(d / "op", fr),
    "openpose_body25b": lambda d, fr: write_openpose(d / "op25b", fr, names=BODY25B),
    "openpose_old": lambda d, fr: write_openpose(d / "old", fr, old=True),
    "alphapose_untracked": lambda d, fr: write_alphapose(d / "alphapose-results.json", fr),
    "coco": lambda d, fr: write_coco(d / "res.json", fr),
    "detectron2": lambda d, fr: write_detectron2(d / "coco_instances_results.json", fr),
    "yolo_txt": lambda d, fr: write_yolo_txt(d / "labels", fr, W, H),
    "yolo_txt_conf": lambda d, fr: write_yolo_txt(d / "labels", fr, W, H, save_conf=True),
    "yolo_json": lambda d, fr: write_yolo_json(d / "yolo.json", fr),
    "yolo_json_normalised": lambda d, fr: write_yolo_json(d / "yolo.json", fr, W, H),
    "mediapipe_tasks": lambda d, fr: write_mediapipe(d / "mp.json", fr, W, H),
    "mediapipe_legacy": lambda d, fr: write_mediapipe(d / "mp.json", fr, W, H, api="legacy"),
    "vitpose_coco25": lambda d, fr: write_vitpose(d / "vid_result.json", fr),
    "vitpose_coco": lambda d, fr: write_vitpose(d / "vid_result.json", fr, skeleton="coco"),
    "rtmlib_recipe": lambda d, fr: rtmlib_recipe(d / "rtm.json", fr),
}
EXPECTED = {"openpose_body25": ("openpose", "body25"), "openpose_body25b": ("openpose", "body25b"),
            "openpose_old": ("openpose", "body25"), "alphapose_untracked": ("halpe", "halpe26"),
            "coco": ("coco", "coco17"), "detectron2": ("detectron2", "coco17"), "yolo_txt": ("yolo", "coco17"),
            "yolo_txt_conf": ("yolo", "coco17"), "yolo_json": ("yolo", "coco17"),
            "yolo_json_normalised": ("yolo", "coco17"), "mediapipe_tasks": ("mediapipe", "mediapipe33"),
            "mediapipe_legacy": ("mediapipe", "mediapipe33"), "vitpose_coco25": ("vitpose", "vitpose25"),
            "vitpose_coco": ("vitpose", "coco17"), "rtmlib_recipe": ("coco", "coco17")}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_format_equals_the_same_points_as_an_array(tmp_path, name):
    frames = walking()
    path = FORMATS[name](tmp_path, frames)
    dets, how, ident, tracks = lifted(path)
    assert (dets.format, dets.layout) == EXPECTED[name] and how.startswith("auto-detected")
    first = 1 if name.startswith("yolo_txt") else 0  # Ultralytics names video frames from 1
    assert ident.dropped == 0 and len(tracks) == 1 and tracks[0].frames.tolist() == list(range(first, first + 12))
    expected = reference(tmp_path, frames)
    atol = 2e-3 if name.startswith("yolo_txt") else 1e-9  # save_txt writes fractions with %g (6 digits)
    np.testing.assert_allclose(tracks[0].keypoints_2d, expected, atol=atol, rtol=0)
    lw = 13  # LWrist: missed in frames 3 and 4, filled the same way from every format
    assert tracks[0].filled[:, lw].tolist() == [f in (3, 4) for f in range(len(frames))]


def test_yolo_txt_needs_the_image_size_and_keeps_frame_numbers_from_names(tmp_path):
    frames = walking(5)
    for person in (f[0] for f in frames):
        person.track = 3
    folder = write_yolo_txt(tmp_path / "labels", frames[:2] + [[]] + frames[3:], W, H, tracked=True)
    assert sorted(p.name for p in folder.iterdir()) == ["clip_1.txt", "clip_2.txt", "clip_4.txt", "clip_5.txt"]
    dets, how = read_keypoints(folder)
    assert dets.normalised and dets.ids_from_file and "YOLO-pose labels" in how and set(dets.person) == {3}
    assert dets.frames.tolist() == [1, 2, 4, 5]  # Ultralytics numbers video frames from 1
    assert (dets.points <= 1).all() and in_pixels(dets, W, H).points.max() > 1


def test_yolo_points_below_half_confidence_are_absent(tmp_path):
    frames = walking(6)
    frames[2][0].scores[COCO17.index("right_knee")] = 0.4  # Ultralytics writes it as (0, 0)
    dets, _, _, (track,) = lifted(write_yolo_txt(tmp_path / "labels", frames, W, H))
    assert default_score_threshold("yolo")[0] == 0.5
    assert track.filled[2, 2] and not track.filled[1, 2]  # H36M RKnee (index 2)


# ------------------------------------------------------------------------------------ BODY_25 vs BODY_25B
def test_body25b_is_recognised_and_said(tmp_path):
    folder = write_openpose(tmp_path / "b", walking(4), names=BODY25B)
    dets, _ = read_keypoints(folder)
    assert dets.layout == "body25b" and any("BODY_25B order" in n for n in dets.notes)
    forced, _ = read_keypoints(folder, "openpose", layout="body25")  # the explicit choice wins
    assert forced.layout == "body25" and "given by --layout" in forced.notes[-1]
    plain, _ = read_keypoints(write_openpose(tmp_path / "p", walking(4)))
    assert plain.layout == "body25" and "layout body25 (" in plain.notes[-1]


def test_25_points_that_fit_neither_layout_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "x").mkdir()
    for f in range(3):  # 25 points without any anatomy
        flat = np.concatenate([rng.uniform(0, 1000, size=(25, 2)), np.ones((25, 1))], axis=1).reshape(-1)
        write_json(tmp_path / "x" / f"v_{f:012d}_keypoints.json", {"people": [{"pose_keypoints_2d": flat.tolist()}]})
    with pytest.raises(DataError, match="fit neither OpenPose BODY_25 nor BODY_25B.*--layout body25b"):
        read_keypoints(tmp_path / "x")


def test_layout_option_only_where_it_means_something(tmp_path):
    path = write_coco(tmp_path / "c.json", walking(2))
    with pytest.raises(ConfigError, match="--layout body25b does not apply to --format coco"):
        read_keypoints(path, layout="body25b")


# ------------------------------------------------------------------------------------ thresholds per format
def test_detectron2_is_detected_by_scores_above_one_and_gets_its_threshold(tmp_path):
    frames = walking(3)
    for person in (f[0] for f in frames):
        person.scores = np.linspace(0.06, 3.0, 17)  # spatial-softmax scores: not probabilities
    fmt, why = detect_format(write_detectron2(tmp_path / "preds.json", frames))
    assert fmt == "detectron2" and "not probabilities" in why
    threshold, reason = default_score_threshold("detectron2")
    assert threshold == 0.05 and "Visualizer" in reason
    *_, (track,) = lifted(tmp_path / "preds.json")
    assert not track.filled.any()  # 0.06 is kept at 0.05; the COCO default 0.3 would have dropped points
    assert detect_format(write_coco(tmp_path / "plain.json", walking(2)))[0] == "coco"


# ------------------------------------------------------------------------------------ auto-detection, messages
def test_folder_detection_reads_past_empty_frames(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for f in range(60):  # nobody for 60 frames, then a person
        write_json(folder / f"f_{f:03d}.json", [])
    write_coco(tmp_path / "one.json", walking(1))
    (folder / "f_060.json").write_text((tmp_path / "one.json").read_text())
    assert detect_format(folder)[0] == "coco"


@pytest.mark.parametrize("case,fmt,needles", [
    ("coco_as_mmpose", "mmpose", ["use --format coco", "COCO keypoint records"]),
    ("yolo_txt_as_coco", "coco", ["use --format yolo", "YOLO-pose labels"]),
    ("mmpose_3d", "auto", ["MMPose 3D (pose lifter) result"]),
    ("world_landmarks", "auto", ["pose_world_landmarks"]),
    ("openpose_as_coco", "coco", ["use --format openpose"]),
])
def test_wrong_format_messages_name_what_the_file_looks_like(tmp_path, case, fmt, needles):
    frames = walking(2)
    path = {"coco_as_mmpose": lambda: write_coco(tmp_path / "c.json", frames),
            "yolo_txt_as_coco": lambda: write_yolo_txt(tmp_path / "labels", frames, W, H) / "clip_1.txt",
            "mmpose_3d": lambda: write_json(tmp_path / "m3d.json", {"meta_info": {"dataset_name": "h36m"},
                                            "instance_info": [{"frame_id": 1, "instances": [
                                                {"keypoints": [[0.1, 0.2, 0.3]] * 17, "keypoint_scores": [1] * 17}]}]}),
            "world_landmarks": lambda: write_json(tmp_path / "w.json", [{"frame": 0, "pose_world_landmarks": [[
                {"x": -0.1, "y": -0.4, "z": 0.1, "visibility": 0.9}] * 33]}]),
            "openpose_as_coco": lambda: write_openpose(tmp_path / "op", frames)}[case]()
    with pytest.raises(DataError) as info:
        dets, _ = read_keypoints(path, fmt)
    message = str(info.value)
    assert "\n" not in message and all(n in message for n in needles), message


def test_old_openpose_pose_keypoints_are_read_and_said(tmp_path):
    dets, how = read_keypoints(write_openpose(tmp_path / "old", walking(2), old=True))
    assert "before 1.2" in how and any("pose_keypoints, before OpenPose 1.2" in n for n in dets.notes)


def test_an_unknown_folder_points_at_labels(tmp_path):
    write_yolo_txt(tmp_path / "run" / "labels", walking(2), W, H)
    with pytest.raises(DataError, match="labels"):
        read_keypoints(tmp_path / "run")
