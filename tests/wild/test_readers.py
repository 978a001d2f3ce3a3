"""2D keypoint input: every adapter on small synthetic files, the mapping table against hand-computed
midpoints, gap filling against hand-computed interpolation, several people, the pixel-frame mapping
and the one-line errors. Keypoint orders are written out here again from the reference tables
(official_data_and_2d_formats.md §3.1), independently of ``keypoints2d.LAYOUTS``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from liftbench.data.skeleton import JOINT_NAMES
from liftbench.errors import ConfigError, DataError
from liftbench.wild.keypoints import coco17_from_h36m, coco_results, mapping_matrix, mapping_table, person_tracks
from liftbench.wild.predict import to_h36m_pixels
from liftbench.wild.readers import detect_format, read_keypoints

# index of each named point in each layout, transcribed from the reference table
COCO = {"nose": 0, "left_eye": 1, "right_eye": 2, "left_ear": 3, "right_ear": 4, "left_shoulder": 5,
        "right_shoulder": 6, "left_elbow": 7, "right_elbow": 8, "left_wrist": 9, "right_wrist": 10, "left_hip": 11,
        "right_hip": 12, "left_knee": 13, "right_knee": 14, "left_ankle": 15, "right_ankle": 16}
BODY25 = {"nose": 0, "neck": 1, "right_shoulder": 2, "right_elbow": 3, "right_wrist": 4, "left_shoulder": 5,
          "left_elbow": 6, "left_wrist": 7, "mid_hip": 8, "right_hip": 9, "right_knee": 10, "right_ankle": 11,
          "left_hip": 12, "left_knee": 13, "left_ankle": 14, "right_eye": 15, "left_eye": 16, "right_ear": 17,
          "left_ear": 18}
# a hand-made body in pixels (names -> (x, y)); the H36M joints expected from it, computed by hand
BODY = {"nose": (500, 100), "left_eye": (510, 90), "right_eye": (490, 90), "left_ear": (520, 95),
        "right_ear": (480, 95), "left_shoulder": (560, 200), "right_shoulder": (440, 200), "left_elbow": (580, 300),
        "right_elbow": (420, 300), "left_wrist": (590, 400), "right_wrist": (410, 400), "left_hip": (540, 420),
        "right_hip": (460, 424), "left_knee": (545, 600), "right_knee": (455, 600), "left_ankle": (550, 780),
        "right_ankle": (450, 780), "neck": (500, 200), "mid_hip": (500, 422)}  # BODY_25's own neck and mid-hip
EXPECTED_H36M = {"Hip": (500, 422), "RHip": (460, 424), "RKnee": (455, 600), "RFoot": (450, 780),
                 "LHip": (540, 420), "LKnee": (545, 600), "LFoot": (550, 780), "Spine": (500, 311),
                 "Thorax": (500, 200), "Neck/Nose": (500, 100), "Head": (500, 90), "LShoulder": (560, 200),
                 "LElbow": (580, 300), "LWrist": (590, 400), "RShoulder": (440, 200), "RElbow": (420, 300),
                 "RWrist": (410, 400)}


def body_in(order: dict[str, int], size: int, shift=(0.0, 0.0)) -> np.ndarray:
    pts = np.full((size, 2), 7.0)  # points the mapping must not use get an arbitrary value
    for name, idx in order.items():
        if name in BODY:
            pts[idx] = np.add(BODY[name], shift)
    return pts


def flat(points: np.ndarray, scores=None) -> list[float]:
    scores = np.ones(len(points)) if scores is None else scores
    return np.concatenate([points, np.asarray(scores)[:, None]], axis=1).reshape(-1).tolist()


def expected_array(shift=(0.0, 0.0)) -> np.ndarray:
    return np.array([np.add(EXPECTED_H36M[j], shift) for j in JOINT_NAMES])


def write_json(path, obj):
    path.write_text(json.dumps(obj))
    return path


# ------------------------------------------------------------------------------------ mapping table
@pytest.mark.parametrize("layout,order,size", [("coco17", COCO, 17), ("halpe26", COCO, 26), ("body25", BODY25, 25)])
def test_mapping_table_gives_hand_computed_midpoints(layout, order, size):
    mapped = mapping_matrix(layout) @ body_in(order, size)  # (17, 2)
    np.testing.assert_allclose(mapped, expected_array(), atol=1e-12)


def test_mapping_table_documents_formulas_and_h36m_passthrough():
    rows = {r["joint"]: r for r in mapping_table("coco17")}
    assert rows["Hip"]["formula"] == "mid(left_hip, right_hip)" and rows["Hip"]["source_indices"] == [11, 12]
    assert rows["Spine"]["sources"] == ["left_hip", "right_hip", "left_shoulder", "right_shoulder"]
    assert rows["Head"]["source_indices"] == [1, 2] and rows["Neck/Nose"]["source_indices"] == [0]
    body25 = {r["joint"]: r for r in mapping_table("body25")}
    assert body25["Hip"]["source_indices"] == [12, 9] and body25["Thorax"]["source_indices"] == [5, 2]
    np.testing.assert_array_equal(mapping_matrix("h36m17"), np.eye(17))


# ------------------------------------------------------------------------------------ adapters
def test_coco_results_list_with_string_image_ids_sorted_numerically(tmp_path):
    records = [{"image_id": f"frame_{f}.jpg", "category_id": 1, "keypoints": flat(body_in(COCO, 17, (f, 0))),
                "score": 0.9} for f in (10, 9, 11)]
    path = write_json(tmp_path / "res.json", records)
    assert detect_format(path)[0] == "coco"
    dets, how = read_keypoints(path)
    assert how.startswith("auto-detected") and dets.layout == "coco17"
    tracks, skipped = person_tracks(dets)
    assert not skipped and len(tracks) == 1
    np.testing.assert_array_equal(tracks[0].frames, [9, 10, 11])
    for i, f in enumerate((9, 10, 11)):
        np.testing.assert_allclose(tracks[0].keypoints_2d[i], expected_array((f, 0)))
    assert not tracks[0].filled.any()


def test_coco_dataset_dict_carries_the_image_size(tmp_path):
    obj = {"images": [{"id": 5, "width": 1920, "height": 1080}],
           "annotations": [{"image_id": 5, "category_id": 1, "keypoints": flat(body_in(COCO, 17))}]}
    dets, _ = read_keypoints(write_json(tmp_path / "gt.json", obj), "coco")
    assert (dets.width, dets.height) == (1920, 1080)
    np.testing.assert_array_equal(dets.frames, [5])


def test_coco_folder_of_per_frame_json(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for f in (1, 2, 10):  # frame 10 must come after 2 (numeric, not lexical); frame 2 is empty
        recs = [] if f == 2 else [{"image_id": 0, "keypoints": flat(body_in(COCO, 17, (f, f)))}]
        write_json(folder / f"img_{f}.json", recs)
    dets, _ = read_keypoints(folder, "coco")
    np.testing.assert_array_equal(dets.video_frames, [1, 2, 10])
    (track,), _ = person_tracks(dets)
    np.testing.assert_array_equal(track.frames, np.arange(1, 11))
    np.testing.assert_array_equal(track.frames_without_person, np.arange(2, 10))
    np.testing.assert_allclose(track.keypoints_2d[4], expected_array((5, 5)))  # frame 5, linear between 1 and 10


def test_halpe_alphapose_scalar_idx_is_the_track_id(tmp_path):
    records = []
    for f in range(3):
        for idx, dx in ((7, 0.0), (3.0, 1000.0)):  # AlphaPose's trackers write idx as a number
            records.append({"image_id": f"{f}.jpg", "category_id": 1, "idx": idx, "score": 2.1,
                            "keypoints": flat(body_in(COCO, 26, (dx + f, 0)))})
    path = write_json(tmp_path / "alphapose-results.json", records)
    assert detect_format(path)[0] == "halpe"
    dets, _ = read_keypoints(path)
    assert dets.layout == "halpe26" and dets.person_key == "idx"
    tracks, _ = person_tracks(dets)
    assert [t.person_id for t in tracks] == [3, 7]
    np.testing.assert_allclose(tracks[0].keypoints_2d[2], expected_array((1002, 0)))
    np.testing.assert_allclose(tracks[1].keypoints_2d[2], expected_array((2, 0)))


def test_openpose_folder_body25_zero_points_are_missing(tmp_path):
    folder = tmp_path / "op"
    folder.mkdir()
    for f in range(3):
        pts, scores = body_in(BODY25, 25, (10 * f, 0)), np.full(25, 0.8)
        if f == 1:
            pts[BODY25["left_wrist"]] = 0.0  # OpenPose's "not detected": (0, 0, 0)
            scores[BODY25["left_wrist"]] = 0.0
        people = [{"person_id": [-1], "pose_keypoints_2d": flat(pts, scores), "face_keypoints_2d": []}]
        write_json(folder / f"clip_{f:012d}_keypoints.json", {"version": 1.3, "people": people})
    write_json(folder / f"clip_{3:012d}_keypoints.json", {"version": 1.3, "people": []})  # nobody
    assert detect_format(folder)[0] == "openpose"
    dets, _ = read_keypoints(folder)
    assert dets.layout == "body25"
    np.testing.assert_array_equal(dets.video_frames, [0, 1, 2, 3])
    (track,), _ = person_tracks(dets)
    np.testing.assert_array_equal(track.frames, [0, 1, 2])  # the span ends at the last detection
    lwrist = JOINT_NAMES.index("LWrist")
    np.testing.assert_allclose(track.keypoints_2d[1, lwrist], (600, 400))  # mean of 590 and 610
    assert track.filled[:, lwrist].tolist() == [False, True, False] and track.filled.sum() == 1


def test_mmpose_inferencer_list_and_demo_dict(tmp_path):
    def instance(dx, track=None):
        pts = body_in(COCO, 17, (dx, 0))
        inst = {"keypoints": pts.tolist(), "keypoint_scores": [0.9] * 17, "bbox": [[0, 0, 10, 10]], "bbox_score": 0.9}
        return inst if track is None else {**inst, "track_id": track}

    listing = [{"frame_id": f, "instances": [instance(f), instance(f + 300)]} for f in range(2)]
    path = write_json(tmp_path / "results_clip.json", listing)
    assert detect_format(path)[0] == "mmpose"
    dets, _ = read_keypoints(path)
    tracks, _ = person_tracks(dets)
    assert [t.person_id for t in tracks] == [0, 1] and dets.person_key == "index within the frame"
    np.testing.assert_allclose(tracks[1].keypoints_2d[1], expected_array((301, 0)))
    demo = {"meta_info": {"dataset_name": "coco"},
            "instance_info": [{"frame_id": f, "instances": [instance(f, track=4)]} for f in (1, 2)]}
    path = write_json(tmp_path / "demo.json", demo)
    assert detect_format(path)[0] == "mmpose"
    dets, _ = read_keypoints(path)
    (track,), _ = person_tracks(dets)
    assert track.person_id == 4 and track.frames.tolist() == [1, 2]


def test_mmpose_image_mode_folder(tmp_path):
    folder = tmp_path / "preds"
    folder.mkdir()
    for f in (3, 4, 5):
        insts = [] if f == 4 else [{"keypoints": body_in(COCO, 17, (f, 0)).tolist(), "keypoint_scores": [1.0] * 17}]
        write_json(folder / f"img{f}.json", insts)
    dets, how = read_keypoints(folder)
    assert dets.format == "mmpose" and "MMPose" in how
    np.testing.assert_array_equal(dets.video_frames, [3, 4, 5])
    (track,), _ = person_tracks(dets)
    assert track.frames_without_person.tolist() == [4] and track.filled[1].all()
    np.testing.assert_allclose(track.keypoints_2d[1], expected_array((4, 0)))


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv"])
def test_plain_arrays(tmp_path, suffix):
    frames = np.stack([np.concatenate([body_in(COCO, 17, (f, 2 * f)), np.full((17, 1), 0.9)], axis=1)
                       for f in range(4)])  # (4, 17, 3)
    path = tmp_path / f"kp{suffix}"
    if suffix == ".npy":
        np.save(path, frames)
    elif suffix == ".npz":
        np.savez(path, keypoints=frames, width=640, height=480)
    else:
        header = ",".join(f"{n}_{c}" for n in COCO for c in "xys")
        np.savetxt(path, frames.reshape(4, -1), delimiter=",", header=header, comments="")
    assert detect_format(path)[0] == "npz"
    dets, _ = read_keypoints(path)
    assert dets.layout == "coco17" and dets.person_key == "single person"
    assert (dets.width, dets.height) == ((640, 480) if suffix == ".npz" else (None, None))
    (track,), _ = person_tracks(dets)
    np.testing.assert_allclose(track.keypoints_2d[3], expected_array((3, 6)))


def test_plain_array_in_h36m_order_passes_through(tmp_path):
    h36m = np.random.default_rng(0).uniform(100, 900, size=(5, 17, 2))
    np.save(tmp_path / "h.npy", h36m)
    dets, _ = read_keypoints(tmp_path / "h.npy", "npz", layout="h36m")
    (track,), _ = person_tracks(dets)
    np.testing.assert_allclose(track.keypoints_2d, h36m)


# ------------------------------------------------------------------------------------ filling, people
def test_interpolation_by_hand(tmp_path):
    """LWrist x over frames 0..5: scores [0.1, 0.9, 0.2, 0.25, 0.9, 0.05] -> valid at frames 1 and 4;
    frame 0 holds frame 1's value, frames 2-3 are linear, frame 5 holds frame 4's value."""
    xs = [999.0, 100.0, 999.0, 999.0, 160.0, 999.0]
    scores = [0.1, 0.9, 0.2, 0.25, 0.9, 0.05]
    frames = np.repeat(body_in(COCO, 17)[None], 6, axis=0)  # (6, 17, 2)
    frames[:, COCO["left_wrist"], 0] = xs
    sc = np.full((6, 17), 0.95)
    sc[:, COCO["left_wrist"]] = scores
    np.savez(tmp_path / "a.npz", keypoints=np.concatenate([frames, sc[..., None]], axis=2))
    dets, _ = read_keypoints(tmp_path / "a.npz")
    (track,), _ = person_tracks(dets, score_threshold=0.3)
    lw = JOINT_NAMES.index("LWrist")
    np.testing.assert_allclose(track.keypoints_2d[:, lw, 0], [100, 100, 120, 140, 160, 160])
    assert track.filled[:, lw].tolist() == [True, False, True, True, False, True]
    assert track.fill_counts()["LWrist"] == 4 and track.filled.sum() == 4
    assert track.filled_points["left_wrist"] == 4
    (low,), _ = person_tracks(dets, score_threshold=0.2)  # 0.2 and 0.25 now count as detected
    assert low.fill_counts()["LWrist"] == 2


def test_missing_derived_source_marks_every_joint_using_it(tmp_path):
    records = []
    for f in range(3):
        scores = np.ones(17)
        if f == 1:
            scores[COCO["left_hip"]] = 0.0
        records.append({"image_id": f, "keypoints": flat(body_in(COCO, 17, (4 * f, 0)), scores)})
    dets, _ = read_keypoints(write_json(tmp_path / "r.json", records))
    (track,), _ = person_tracks(dets)
    assert {JOINT_NAMES[j] for j in np.flatnonzero(track.filled[1])} == {"Hip", "LHip", "Spine"}
    np.testing.assert_allclose(track.keypoints_2d[1], expected_array((4, 0)))  # linear fill = exact here


def test_person_with_a_point_never_seen_is_skipped_and_reported(tmp_path):
    records = [{"image_id": 0, "track_id": 1, "keypoints": flat(body_in(COCO, 17))},
               {"image_id": 0, "track_id": 2, "keypoints": flat(body_in(COCO, 17), np.r_[np.zeros(3), np.ones(14)])}]
    dets, _ = read_keypoints(write_json(tmp_path / "r.json", records))
    tracks, skipped = person_tracks(dets)
    assert [t.person_id for t in tracks] == [1]
    assert skipped[0].person_id == 2 and "nose, left_eye, right_eye" in skipped[0].reason


def test_duplicate_track_in_one_frame_keeps_the_better_detection(tmp_path):
    good, bad = body_in(COCO, 17), body_in(COCO, 17, (50, 0))
    records = [{"image_id": 0, "track_id": 1, "keypoints": flat(bad, np.full(17, 0.4))},
               {"image_id": 0, "track_id": 1, "keypoints": flat(good, np.full(17, 0.9))}]
    dets, _ = read_keypoints(write_json(tmp_path / "r.json", records))
    (track,), _ = person_tracks(dets)
    assert track.duplicates_dropped == 1
    np.testing.assert_allclose(track.keypoints_2d[0], expected_array())


# ------------------------------------------------------------------------------------ pixel frame, export
def test_pixel_frame_mapping_by_hand():
    same, info = to_h36m_pixels(np.array([[0.0, 0.0], [1000.0, 1002.0], [500.0, 501.0]]), 1000, 1002)
    np.testing.assert_allclose(same, [[0, 0], [1000, 1002], [500, 501]], atol=1e-9)
    wide, info = to_h36m_pixels(np.array([[0.0, 0.0], [2000.0, 1000.0], [1000.0, 500.0]]), 2000, 1000)
    # scale 1000/2000 = 0.5; the 500 px tall image is centred in 1002: offset (1002 - 500) / 2 = 251
    np.testing.assert_allclose(wide, [[0, 251], [1000, 751], [500, 501]], atol=1e-9)
    assert info["scale"] == 0.5 and info["offset_px"] == [0.0, 251.0]


def test_coco_export_maps_back_to_the_same_limbs_and_head():
    rng = np.random.default_rng(1)
    h36m = rng.uniform(100, 900, size=(3, 17, 2))
    coco = coco17_from_h36m(h36m)
    back = np.einsum("jk,nkc->njc", mapping_matrix("coco17"), coco)
    exact = [JOINT_NAMES.index(n) for n in JOINT_NAMES if n not in ("Hip", "Spine", "Thorax")]
    np.testing.assert_allclose(back[:, exact], h36m[:, exact], atol=1e-9)  # Head = mid(invented eyes)
    np.testing.assert_allclose(back[:, 0], (h36m[:, 1] + h36m[:, 4]) / 2)  # Hip = mid(RHip, LHip)
    recs = coco_results(coco)
    assert len(recs) == 3 and len(recs[0]["keypoints"]) == 51 and recs[2]["image_id"] == 2


# ------------------------------------------------------------------------------------ bad input
def test_bad_inputs_are_one_line_errors(tmp_path):
    cases = []
    cases.append((write_json(tmp_path / "empty.json", []), "auto", "empty JSON"))
    cases.append((write_json(tmp_path / "h26.json", [{"image_id": 0, "keypoints": flat(np.ones((26, 2)))}]),
                  "coco", "26 keypoints per person, but --format coco expects 17"))
    cases.append((write_json(tmp_path / "nan.json", [{"image_id": 0, "keypoints": [float("nan")] * 51}]),
                  "auto", "NaN"))
    cases.append((write_json(tmp_path / "other.json", {"hello": 1}), "auto", "Cannot detect the keypoint format"))
    (tmp_path / "x.txt").write_text("1 2 3")
    cases.append((tmp_path / "x.txt", "auto", "Cannot detect the keypoint format"))
    np.save(tmp_path / "j19.npy", np.ones((3, 19, 2)))
    cases.append((tmp_path / "j19.npy", "npz", "19 joints per frame"))
    np.save(tmp_path / "nan.npy", np.full((3, 17, 2), np.nan))
    cases.append((tmp_path / "nan.npy", "auto", "NaN"))
    (tmp_path / "broken.json").write_text("[{")
    cases.append((tmp_path / "broken.json", "auto", "is not valid JSON"))
    cases.append((write_json(tmp_path / "op.json", [{"image_id": 0, "keypoints": flat(np.ones((17, 2)))}]),
                  "openpose", "no 'people' list"))
    far = [{"image_id": i, "keypoints": flat(body_in(COCO, 17))} for i in (7, 397133 * 10)]
    cases.append((write_json(tmp_path / "far.json", far), "coco", "do not look like the frame numbers"))
    twice = tmp_path / "twice"
    twice.mkdir()
    for name in ("camA_0001.json", "camB_0001.json"):
        write_json(twice / name, [{"image_id": 0, "keypoints": flat(body_in(COCO, 17))}])
    cases.append((twice, "coco", "both hold frame 1"))
    for path, fmt, needle in cases:
        with pytest.raises(DataError, match=needle) as info:
            dets, _ = read_keypoints(path, fmt)
            person_tracks(dets)
        assert "\n" not in str(info.value) and str(path) in str(info.value)
    with pytest.raises(ConfigError, match="--format 'yolov5' is unknown"):
        read_keypoints(tmp_path / "empty.json", "yolov5")
    with pytest.raises(ConfigError, match="--layout h36m does not apply to --format coco"):
        read_keypoints(tmp_path / "h26.json", "coco", layout="h36m")
