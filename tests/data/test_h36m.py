"""The ``h36m`` source on the synthetic VideoPose3D-layout fixture (``tests/fixtures/h36m.py``).

Expected values are recomputed here from the fixture's world metres and the raw camera JSON with
scalar Python arithmetic, never with liftbench's own transform/projection code.
"""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
from fixtures.h36m import write_h36m_fixture

from liftbench.data import DATASETS, load_dataset
from liftbench.data.h36m import H36MSource
from liftbench.data.safe.npz import load_npz
from liftbench.errors import DataError, UnsafeFileError

# H36M-17 joint -> index among the 32 mocap joints, written out by name (Martinez data_utils.py table)
IDX32 = {"Hip": 0, "RHip": 1, "RKnee": 2, "RFoot": 3, "LHip": 6, "LKnee": 7, "LFoot": 8, "Spine": 12,
         "Thorax": 13, "Neck/Nose": 14, "Head": 15, "LShoulder": 17, "LElbow": 18, "LWrist": 19,
         "RShoulder": 25, "RElbow": 26, "RWrist": 27}
NAMES17 = list(IDX32)


@pytest.fixture(scope="module")
def raw_cameras() -> dict:
    return json.loads(resources.files("liftbench.data").joinpath("h36m_cameras.json").read_text())["cameras"]


def to_camera_mm(point_m, cam: dict) -> list[float]:
    """R (X - T) with X in metres -> mm, by hand."""
    d = [1000.0 * point_m[i] - cam["T"][i] for i in range(3)]
    return [sum(cam["R"][r][j] * d[j] for j in range(3)) for r in range(3)]


def project_by_hand(p_cam: list[float], cam: dict) -> tuple[float, float]:
    """H36M-toolbox distortion (reference doc section 6), scalar arithmetic."""
    x, y = p_cam[0] / p_cam[2], p_cam[1] / p_cam[2]
    r2 = x * x + y * y
    k1, k2, k3 = cam["k"]
    p0, p1 = cam["p"]
    radial = 1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3
    tan = p0 * y + p1 * x
    xd, yd = x * (radial + tan) + p1 * r2, y * (radial + tan) + p0 * r2
    return cam["f"][0] * xd + cam["c"][0], cam["f"][1] * yd + cam["c"][1]


def seq(ds, subject, action, cam):
    found = [s for s in ds.sequences if s.key == (subject, action, cam)]
    assert len(found) == 1, f"{subject} {action} cam {cam}: {len(found)} sequences"
    return found[0]


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("h36m_ok")
    info = write_h36m_fixture(path, keypoints=("gt", "cpn_ft_h36m_dbb", "sh_ft_h36m"))
    return path, info


# ---- values --------------------------------------------------------------------------------------

def test_registered_and_loadable_by_name(fixture_dir):
    path, _ = fixture_dir
    assert DATASETS.get("h36m") is H36MSource
    ds = load_dataset("h36m", path, "gt")
    assert ds.name == "h36m" and ds.fps == 50 and ds.keypoints == "gt"
    assert ds.train_subjects == ("S1", "S5") and ds.test_subjects == ("S9", "S11")
    assert len(ds.sequences) == 4 * 4 * 4  # subjects x actions x cameras, nothing skipped
    assert all(s.keypoints_2d.shape == (s.n_frames, 17, 2) and s.joints_3d.shape == (s.n_frames, 17, 3)
               and s.keypoints_2d.dtype == np.float32 and s.joints_3d.dtype == np.float32 for s in ds.sequences)


@pytest.mark.parametrize("subject,action,cam,frame", [("S1", "Directions", 0, 0), ("S9", "Walking 1", 2, 17),
                                                      ("S11", "WalkDog", 3, 41), ("S5", "Photo 1", 1, 63)])
def test_camera_frame_mm_matches_hand_computation(fixture_dir, raw_cameras, subject, action, cam, frame):
    path, info = fixture_dir
    ds = H36MSource().load(path, "gt")
    got = seq(ds, subject, action, cam).joints_3d[frame]  # (17, 3)
    world = info["world_m"][subject][action][frame]  # (32, 3) metres
    for j, name in enumerate(NAMES17):  # also checks the 32 -> 17 selection joint by joint
        expected = to_camera_mm(world[IDX32[name]], raw_cameras[subject][cam])
        np.testing.assert_allclose(got[j], expected, atol=0.05, err_msg=name)  # float32 of ~5000 mm


def test_metres_become_millimetres(fixture_dir):
    path, info = fixture_dir
    s = seq(H36MSource().load(path, "gt"), "S5", "Walking 1", 2)
    w = info["world_m"]["S5"]["Walking 1"]  # (N, 32, 3) m
    thigh_m = np.linalg.norm(w[:, IDX32["LHip"]] - w[:, IDX32["LKnee"]], axis=-1)
    thigh_mm = np.linalg.norm(s.joints_3d[:, 4] - s.joints_3d[:, 5], axis=-1)  # LHip, LKnee in the 17
    np.testing.assert_allclose(thigh_mm, 1000.0 * thigh_m, rtol=1e-5)
    assert 380 < thigh_mm.mean() < 520


def test_17_joint_3d_input_gives_the_same_result(tmp_path, fixture_dir):
    path32, _ = fixture_dir
    write_h36m_fixture(tmp_path, keypoints=(), joints_3d=17)
    a, b = H36MSource().load(path32, "gt"), H36MSource().load(tmp_path, "gt")
    for s32, s17 in zip(a.sequences, b.sequences):
        assert s32.key == s17.key
        np.testing.assert_array_equal(s32.joints_3d, s17.joints_3d)


def test_gt_projection_without_a_gt_file_matches_hand_formula(tmp_path, raw_cameras):
    info = write_h36m_fixture(tmp_path, keypoints=())  # no data_2d_h36m_gt.npz
    ds = H36MSource().load(tmp_path, "gt")
    assert any("projected" in n for n in ds.notes)
    for subject, action, cam, frame, joint in [("S9", "Directions", 1, 3, "RWrist"), ("S1", "WalkDog", 3, 30, "Head")]:
        p_cam = to_camera_mm(info["world_m"][subject][action][frame][IDX32[joint]], raw_cameras[subject][cam])
        u, v = project_by_hand(p_cam, raw_cameras[subject][cam])
        got = seq(ds, subject, action, cam).keypoints_2d[frame, NAMES17.index(joint)]
        np.testing.assert_allclose(got, [u, v], atol=1e-3)
        assert 0 < u < 1000 and 0 < v < 1002  # the body is in view


def test_gt_file_is_used_as_is(fixture_dir):
    path, info = fixture_dir
    s = seq(H36MSource().load(path, "gt"), "S11", "Photo 1", 2)
    np.testing.assert_array_equal(s.keypoints_2d, info["keypoints_2d"]["gt"]["S11"]["Photo 1"][2])


def test_detections_17_joints_used_as_is(fixture_dir):
    path, info = fixture_dir
    ds = H36MSource().load(path, "cpn_ft_h36m_dbb")
    s = seq(ds, "S9", "Walking 1", 0)
    np.testing.assert_array_equal(s.keypoints_2d, info["keypoints_2d"]["cpn_ft_h36m_dbb"]["S9"]["Walking 1"][0])
    gt = seq(H36MSource().load(path, "gt"), "S9", "Walking 1", 0)
    np.testing.assert_array_equal(s.joints_3d, gt.joints_3d)  # same 3D whatever the 2D source
    assert 0.5 < np.abs(s.keypoints_2d - gt.keypoints_2d).mean() < 5  # the fixture's ~2 px noise


def test_mpii16_detections_are_mapped_by_joint(fixture_dir):
    path, info = fixture_dir
    ds = H36MSource().load(path, "sh_ft_h36m")
    s = seq(ds, "S1", "Photo 1", 3)
    expected = info["keypoints_2d"]["sh_ft_h36m"]["S1"]["Photo 1"][3]  # (N, 17, 2) H36M order, by name
    for j, name in enumerate(NAMES17):
        if name == "Neck/Nose":  # MPII has no such joint: midpoint of Thorax and Head
            np.testing.assert_allclose(s.keypoints_2d[:, j], (expected[:, 8] + expected[:, 10]) / 2, atol=1e-3)
        else:
            np.testing.assert_allclose(s.keypoints_2d[:, j], expected[:, j], atol=1e-4, err_msg=name)
    assert any("MPII" in n and "Neck/Nose" in n for n in ds.notes)


# ---- trims and quirks ----------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [3, -2])
def test_small_length_mismatch_is_trimmed_and_noted(tmp_path, extra):
    info = write_h36m_fixture(tmp_path, keypoints=("cpn_ft_h36m_dbb",), length_mismatch=extra)
    ds = H36MSource().load(tmp_path, "cpn_ft_h36m_dbb")
    n3 = len(info["world_m"]["S9"]["Directions"])
    s = seq(ds, "S9", "Directions", 2)
    assert s.n_frames == len(s.keypoints_2d) == min(n3, n3 + extra)
    file_2d = info["keypoints_2d"]["cpn_ft_h36m_dbb"]["S9"]["Directions"][2]
    np.testing.assert_array_equal(s.keypoints_2d, file_2d[:s.n_frames])
    longer = "2D" if extra > 0 else "3D"
    trims = [n for n in ds.notes if "trimmed" in n]
    assert len(trims) == 1 and trims[0].startswith("S9 Directions cam 2")
    assert f"{longer} has {abs(extra)} more" in trims[0]
    assert seq(ds, "S9", "Directions", 1).n_frames == n3  # other cameras untouched


def test_large_length_mismatch_is_an_error(tmp_path):
    write_h36m_fixture(tmp_path, keypoints=("cpn_ft_h36m_dbb",), length_mismatch=30)
    with pytest.raises(DataError, match=r"data_2d_h36m_cpn_ft_h36m_dbb\.npz: S9 Directions cam 2"):
        H36MSource().load(tmp_path, "cpn_ft_h36m_dbb")


def test_s11_directions_missing_camera_is_skipped(tmp_path):
    write_h36m_fixture(tmp_path, keypoints=("sh_ft_h36m",), s11_directions_missing_cam0=True)
    ds = H36MSource().load(tmp_path, "sh_ft_h36m")
    keys = {s.key for s in ds.sequences}
    assert ("S11", "Directions", 0) not in keys
    assert {("S11", "Directions", c) for c in (1, 2, 3)} <= keys and ("S9", "Directions", 0) in keys
    assert any(n.startswith("S11 Directions cam 0") and "skipped" in n for n in ds.notes)
    assert H36MSource().verify(tmp_path, "sh_ft_h36m") == []  # a known quirk, not a problem


def test_legacy_action_names_are_normalised(tmp_path):
    write_h36m_fixture(tmp_path, keypoints=("gt",), legacy_names=True)
    ds = H36MSource().load(tmp_path, "gt")
    s1_actions = {s.action for s in ds.sequences if s.subject == "S1"}
    assert s1_actions == {"Directions", "Photo 1", "WalkDog", "Walking 1"}  # matched with the 2D names
    assert any("'TakingPhoto 1'" in n and "'Photo 1'" in n for n in ds.notes)
    assert any("'WalkingDog'" in n for n in ds.notes)


def test_takes_and_subjects_on_one_side_only_are_skipped(tmp_path):
    write_h36m_fixture(tmp_path, keypoints=("cpn_ft_h36m_dbb",), extra_2d_subjects=("S2",),
                       drop_2d_take=("S5", "WalkDog"), extra_2d_take=("S9", "Sitting 2"))
    ds = H36MSource().load(tmp_path, "cpn_ft_h36m_dbb")
    keys = {(s.subject, s.action) for s in ds.sequences}
    assert ("S5", "WalkDog") not in keys and ("S9", "Sitting 2") not in keys and "S2" not in ds.subjects
    assert any(n.startswith("S5 WalkDog") and "not in data_2d" in n for n in ds.notes)
    assert any(n.startswith("S9 Sitting 2") and "not in data_3d" in n for n in ds.notes)
    assert any(n.startswith("S2:") and "skipped" in n for n in ds.notes)


def test_actions_are_whatever_the_files_contain(tmp_path):
    write_h36m_fixture(tmp_path, keypoints=(), actions=("Juggling 3", "Moonwalk"))
    assert {s.action for s in H36MSource().load(tmp_path, "gt").sequences} == {"Juggling 3", "Moonwalk"}


def test_subject_without_cameras_is_an_error(tmp_path):
    write_h36m_fixture(tmp_path, subjects=("S1", "S2", "S9"), keypoints=())
    with pytest.raises(DataError, match=r"data_3d_h36m\.npz: subject S2 has no camera parameters"):
        H36MSource().load(tmp_path, "gt")


def test_default_split_needs_a_test_subject(tmp_path):
    write_h36m_fixture(tmp_path, subjects=("S1", "S5"), keypoints=())
    with pytest.raises(DataError, match=r"S9, S11.*subjects: S1, S5.*explicit splits"):
        H36MSource().load(tmp_path, "gt")
    ds = H36MSource().load(tmp_path, "gt", train_subjects=["S1"], test_subjects=["S5"])
    assert ds.train_subjects == ("S1",) and ds.test_subjects == ("S5",)


# ---- bad input -----------------------------------------------------------------------------------

BREAKAGES = [  # (fixture options, keypoints, file named in the message, words in the message)
    ({"missing_key": "positions_3d"}, "gt", "data_3d_h36m.npz", "positions_3d"),
    ({"missing_key": "positions_2d"}, "cpn_ft_h36m_dbb", "data_2d_h36m_cpn_ft_h36m_dbb.npz", "positions_2d"),
    ({"wrong_shape": "3d"}, "gt", "data_3d_h36m.npz", "shape"),
    ({"wrong_shape": "2d"}, "cpn_ft_h36m_dbb", "data_2d_h36m_cpn_ft_h36m_dbb.npz", "shape"),
    ({"wrong_dtype": "3d"}, "gt", "data_3d_h36m.npz", "dtype int32"),
    ({"wrong_dtype": "2d"}, "sh_ft_h36m", "data_2d_h36m_sh_ft_h36m.npz", "dtype int32"),
    ({"nan": "3d"}, "gt", "data_3d_h36m.npz", "NaN"),
    ({"nan": "2d"}, "cpn_ft_h36m_dbb", "data_2d_h36m_cpn_ft_h36m_dbb.npz", "NaN"),
    ({"millimetres": True}, "gt", "data_3d_h36m.npz", "metres"),
    ({"length_mismatch": 25}, "cpn_ft_h36m_dbb", "data_2d_h36m_cpn_ft_h36m_dbb.npz", "frames"),
]


@pytest.mark.parametrize("options,keypoints,filename,words", BREAKAGES)
def test_bad_input_is_a_one_line_data_error_naming_the_file(tmp_path, options, keypoints, filename, words):
    write_h36m_fixture(tmp_path, keypoints=("gt", "cpn_ft_h36m_dbb", "sh_ft_h36m"), **options)
    with pytest.raises(DataError) as err:
        H36MSource().load(tmp_path, keypoints)
    message = str(err.value)
    assert str(tmp_path / filename) in message and words in message and "\n" not in message
    assert any(str(tmp_path / filename) in p and words in p for p in H36MSource().verify(tmp_path, keypoints))


@pytest.mark.parametrize("which,damage", [("data_3d_h36m.npz", "garbage"), ("data_3d_h36m.npz", "truncated"),
                                          ("data_3d_h36m.npz", "missing"),
                                          ("data_2d_h36m_cpn_ft_h36m_dbb.npz", "garbage"),
                                          ("data_2d_h36m_cpn_ft_h36m_dbb.npz", "truncated")])
def test_unreadable_files(tmp_path, which, damage):
    write_h36m_fixture(tmp_path, keypoints=("cpn_ft_h36m_dbb",))
    path = tmp_path / which
    if damage == "garbage":
        path.write_bytes(b"not a zip" * 100)
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:-200])
    else:
        path.unlink()
    with pytest.raises(DataError, match=str(path).replace(".", r"\.")):
        H36MSource().load(tmp_path, "cpn_ft_h36m_dbb")


def test_pickled_code_in_a_data_file_is_refused(tmp_path):
    write_h36m_fixture(tmp_path, keypoints=())
    np.savez_compressed(tmp_path / "data_3d_h36m.npz", positions_3d={"S1": {"Walking": np.frombuffer}})
    with pytest.raises(UnsafeFileError, match="numpy.frombuffer"):
        H36MSource().load(tmp_path, "gt")


def test_unknown_keypoints_lists_the_available_ones(fixture_dir):
    path, _ = fixture_dir
    assert H36MSource().available_keypoints(path) == ["gt", "cpn_ft_h36m_dbb", "sh_ft_h36m"]
    with pytest.raises(DataError, match=r"data_2d_h36m_detectron\.npz.*gt, cpn_ft_h36m_dbb, sh_ft_h36m"):
        H36MSource().load(path, "detectron")
    with pytest.raises(DataError, match="not found"):
        H36MSource().load(path, "../../etc/passwd")


def test_missing_or_unset_directory(tmp_path):
    with pytest.raises(DataError, match="--data-dir DIR"):
        H36MSource().load(None, "gt")
    with pytest.raises(DataError, match=str(tmp_path / "nowhere")):
        H36MSource().load(tmp_path / "nowhere", "gt")
    assert "--data-dir" in H36MSource().verify(None, "gt")[0]
    assert H36MSource().available_keypoints(None) == ["gt"]


def test_verify_lists_every_problem(tmp_path):
    write_h36m_fixture(tmp_path, subjects=("S1", "S2", "S5", "S9", "S11"), keypoints=("cpn_ft_h36m_dbb",),
                       nan="3d", wrong_shape="2d", length_mismatch=40)
    problems = H36MSource().verify(tmp_path, "cpn_ft_h36m_dbb")
    expected = [("data_3d_h36m.npz", "S5 Directions", "NaN"), ("data_3d_h36m.npz", "subject S2", "camera"),
                ("data_2d_h36m_cpn_ft_h36m_dbb.npz", "S5 Directions cam 1", "shape"),
                ("data_2d_h36m_cpn_ft_h36m_dbb.npz", "S9 Directions cam 2", "frames")]
    for filename, what, word in expected:
        assert sum(filename in p and what in p and word in p for p in problems) == 1, (filename, what, problems)
    assert len(problems) == len(expected)
    with pytest.raises(DataError, match=r"\+3 more problem"):
        H36MSource().load(tmp_path, "cpn_ft_h36m_dbb")
    with pytest.raises(DataError):
        H36MSource().prepare(tmp_path)


def test_verify_and_prepare_on_good_data(fixture_dir):
    path, _ = fixture_dir
    for keypoints in H36MSource().available_keypoints(path):
        assert H36MSource().verify(path, keypoints) == []
    summary = H36MSource().prepare(path)
    assert "4 subjects" in summary and "16 takes" in summary and "sh_ft_h36m" in summary
    assert H36MSource().location(path) == str(path)


@pytest.mark.parametrize("extra,ok", [(8, True), (12, False)])
def test_length_tolerance_is_ten_frames_on_long_takes(tmp_path, extra, ok):
    write_h36m_fixture(tmp_path, subjects=("S1", "S9"), actions=("Directions",), n_frames=400,
                       keypoints=("cpn_ft_h36m_dbb",), length_mismatch=extra)  # 8 and 12 are both < 5% of 400
    if ok:
        assert seq(H36MSource().load(tmp_path, "cpn_ft_h36m_dbb"), "S9", "Directions", 2).n_frames == 400
    else:
        with pytest.raises(DataError, match="more than 10 frames"):
            H36MSource().load(tmp_path, "cpn_ft_h36m_dbb")


def test_two_spellings_of_one_take_is_an_error(tmp_path):
    write_h36m_fixture(tmp_path, keypoints=())
    take = np.zeros((10, 32, 3), np.float32) + [0.0, 0.0, 1.0]
    np.savez_compressed(tmp_path / "data_3d_h36m.npz", positions_3d={"S9": {"Photo 1": take, "TakingPhoto 1": take}})
    with pytest.raises(DataError, match=r"data_3d_h36m\.npz: S9: actions 'Photo 1' and 'TakingPhoto 1' are both"):
        H36MSource().load(tmp_path, "gt")


def test_2d_file_without_metadata_infers_the_layout(tmp_path):
    info = write_h36m_fixture(tmp_path, keypoints=("sh_ft_h36m",))
    positions_2d = load_npz(tmp_path / "data_2d_h36m_sh_ft_h36m.npz")["positions_2d"]
    np.savez_compressed(tmp_path / "data_2d_h36m_sh_ft_h36m.npz", positions_2d=positions_2d)  # no metadata
    ds = H36MSource().load(tmp_path, "sh_ft_h36m")
    assert any("no 'metadata'" in n and "MPII" in n for n in ds.notes)
    np.testing.assert_allclose(seq(ds, "S9", "WalkDog", 1).keypoints_2d[:, 16],
                               info["keypoints_2d"]["sh_ft_h36m"]["S9"]["WalkDog"][1][:, 16], atol=1e-4)


def test_unsupported_keypoint_layout_is_an_error(tmp_path):
    write_h36m_fixture(tmp_path, keypoints=("detectron_pt_coco",))
    positions_2d = load_npz(tmp_path / "data_2d_h36m_detectron_pt_coco.npz")["positions_2d"]
    np.savez_compressed(tmp_path / "data_2d_h36m_detectron_pt_coco.npz", positions_2d=positions_2d,
                        metadata={"layout_name": "coco", "num_joints": 17})
    with pytest.raises(DataError, match=r"data_2d_h36m_detectron_pt_coco\.npz: keypoint layout coco"):
        H36MSource().load(tmp_path, "detectron_pt_coco")
