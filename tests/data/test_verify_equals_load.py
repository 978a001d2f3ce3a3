"""``data verify`` accepts exactly what loading accepts: one check (``data/checks.py``) behind both, for
empty data, missing splits, impossible 2D/3D, malformed metadata and the mocap-mini cache."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from fixtures.h36m import CPN, CPN_FILE, assert_verify_matches_load, write_h36m_fixture

from liftbench.data import DATASETS, DatasetSource, PoseDataset, load_dataset, verify_dataset
from liftbench.data.cameras import h36m_cameras
from liftbench.data.safe.npz import load_npz
from liftbench.errors import DataError


def rewrite(path: Path, change) -> None:
    """Load an npz written by the fixture, let ``change(content)`` edit it, save it back as VideoPose3D does."""
    content = load_npz(path)
    change(content)
    np.savez_compressed(path, **content)


@pytest.fixture
def h36m(tmp_path):
    write_h36m_fixture(tmp_path, keypoints=("gt", CPN))
    return tmp_path


# ---- item 8: verify accepts exactly what load accepts -------------------------------------------

def test_empty_positions_3d(tmp_path):
    write_h36m_fixture(tmp_path, keypoints=())
    np.savez_compressed(tmp_path / "data_3d_h36m.npz", positions_3d={})
    problems = assert_verify_matches_load(tmp_path, "gt")
    assert "no takes" in problems[0] and "data_3d_h36m.npz" in problems[0]


@pytest.mark.parametrize("subjects,missing", [(("S1", "S5"), "test"), (("S9", "S11"), "training")])
def test_data_without_a_split_is_refused_by_verify_too(tmp_path, subjects, missing, run_cli):
    write_h36m_fixture(tmp_path, subjects=subjects, keypoints=())
    problems = assert_verify_matches_load(tmp_path, "gt")
    assert len(problems) == 1 and f"default {missing} subjects" in problems[0]
    code, _, err = run_cli("data", "verify", "h36m", "--data-dir", tmp_path)
    assert code == 2 and f"default {missing} subjects" in err
    # the same explicit split makes both accept it
    split = {"train_subjects": [subjects[0]], "test_subjects": [subjects[1]]}
    assert assert_verify_matches_load(tmp_path, "gt", **split) == []
    ds = load_dataset("h36m", tmp_path, "gt", **split)
    assert (ds.train_subjects, ds.test_subjects) == ((subjects[0],), (subjects[1],))
    code, out, _ = run_cli("data", "verify", "h36m", "--data-dir", tmp_path, "--train-subjects", subjects[0],
                           "--test-subjects", subjects[1])
    assert code == 0 and "no problems" in out


def test_unknown_or_overlapping_explicit_subjects(h36m):
    assert "S7" in assert_verify_matches_load(h36m, "gt", train_subjects=["S1", "S7"])[0]
    assert "both the train and the test" in assert_verify_matches_load(h36m, "gt", test_subjects=["S1"])[0]


def _set_2d(path: Path, subject: str, action: str, cam: int, frame: int, joint: int, uv) -> None:
    def change(content):
        content["positions_2d"][subject][action][cam][frame, joint] = uv
    rewrite(path, change)


@pytest.mark.parametrize("uv,ok", [
    ((1e33, 500.0), False),  # the reported case: MPJPE 2.6e34 mm, "ok"
    ((-10.5 * 1000, 500.0), False),  # 10.5 widths left of a 1000 px wide image
    ((500.0, 1000 + 10.5 * 1000), False),  # 10.5 heights below a 1000 px high image (cam 1: 1000x1000)
    ((-9.5 * 1000, 500.0), True),  # far out, but within the 10x margin: a detector's outlier, kept
    ((500.0, 1000 + 9.5 * 1000), True),
])
def test_2d_coordinates_no_camera_can_produce(h36m, uv, ok):
    _set_2d(h36m / CPN_FILE, "S9", "Directions", 1, 3, 2, uv)
    problems = assert_verify_matches_load(h36m, CPN)
    if ok:
        assert problems == []
        return
    assert len(problems) == 1
    assert problems[0].startswith(f"{h36m / CPN_FILE}: S9 Directions cam 1: ") and "frame 3" in problems[0]


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_non_finite_2d(h36m, value):
    _set_2d(h36m / CPN_FILE, "S11", "Walking 1", 3, 0, 0, (value, 1.0))
    problems = assert_verify_matches_load(h36m, CPN)
    assert "S11 Walking 1 cam 3" in problems[0] and "NaN/inf" in problems[0]


def test_3d_pose_larger_than_any_human(h36m):
    """One joint 20 m away: every coordinate is below the old 50 m limit, but no pose spans 20 m."""
    def change(content):
        content["positions_3d"]["S5"]["Walking 1"][7, 3, 0] += 20.0
    rewrite(h36m / "data_3d_h36m.npz", change)
    problems = assert_verify_matches_load(h36m, "gt")
    assert problems[0].startswith(f"{h36m / 'data_3d_h36m.npz'}: S5 Walking 1: frame 7 spans")


def test_3d_in_millimetres(tmp_path):
    write_h36m_fixture(tmp_path, keypoints=(), millimetres=True)
    problems = assert_verify_matches_load(tmp_path, "gt")
    assert "millimetre" in problems[0] and "metres" in problems[0]


def test_projected_gt_of_a_body_behind_a_camera(tmp_path):
    write_h36m_fixture(tmp_path, subjects=("S1", "S9"), keypoints=())
    cam = h36m_cameras()["S9"][2]
    behind_m = (cam.T + 500.0 * cam.R[2] * -1) / 1000.0  # half a metre behind camera 2's centre

    def change(content):
        take = content["positions_3d"]["S9"]["Directions"]
        content["positions_3d"]["S9"]["Directions"] = take - take.mean(axis=(0, 1)) + behind_m
    rewrite(tmp_path / "data_3d_h36m.npz", change)
    problems = assert_verify_matches_load(tmp_path, "gt")
    assert any("S9 Directions cam 2" in p and "behind the camera" in p for p in problems)


@pytest.mark.parametrize("options,keypoints", [
    ({"nan": "3d"}, "gt"), ({"nan": "2d"}, CPN), ({"wrong_shape": "2d"}, CPN), ({"wrong_dtype": "3d"}, "gt"),
    ({"length_mismatch": 30}, CPN), ({"length_mismatch": 3}, CPN), ({"legacy_names": True}, "gt"),
    ({"s11_directions_missing_cam0": True}, CPN), ({"subjects": ("S1", "S2", "S9")}, "gt"),
    ({"extra_2d_subjects": ("S3",)}, CPN), ({}, "sh_ft_h36m"), ({}, "detectron"),
])
def test_verify_and_load_agree(tmp_path, options, keypoints):
    write_h36m_fixture(tmp_path, keypoints=("gt", CPN), **options)
    assert_verify_matches_load(tmp_path, keypoints)


# ---- item 6: malformed values are one line, never a traceback -----------------------------------

@pytest.mark.parametrize("metadata,words", [
    ({"layout_name": np.array([1.0]), "num_joints": 17}, "'layout_name' is a 1-d array"),
    ({"layout_name": "h36m", "num_joints": np.array([17, 3])}, "'num_joints' is a 1-d array"),
    ({"layout_name": "h36m", "num_joints": 17.5}, "'num_joints' is a float"),
    (np.arange(3), "'metadata' is a 1-d array"),
    (np.array(5), "'metadata' is a 0-d array"),
])
def test_metadata_with_wrong_types(h36m, metadata, words, run_cli):
    rewrite(h36m / CPN_FILE, lambda content: content.__setitem__("metadata", metadata))
    problems = assert_verify_matches_load(h36m, CPN)
    assert problems[0].startswith(f"{h36m / CPN_FILE}: ") and words in problems[0]
    code, _, err = run_cli("data", "info", "h36m", "--data-dir", h36m, "--keypoints", CPN)
    assert code == 2 and words in err and "Traceback" not in err


@pytest.mark.parametrize("cameras,words", [(np.array(5.0), "0-d array"), (np.zeros((3, 5, 17, 2)), "4-d array"),
                                           ("abcd", "a str"), ({"0": 1}, "a dict")])
def test_camera_list_that_is_not_a_list_of_four(h36m, cameras, words):
    def change(content):
        content["positions_2d"]["S9"]["Directions"] = cameras
    rewrite(h36m / CPN_FILE, change)
    problems = assert_verify_matches_load(h36m, CPN)
    assert problems[0].startswith(f"{h36m / CPN_FILE}: S9 Directions: expected a list of 4") and words in problems[0]


def test_liftbench_data_pointing_at_a_file(tmp_path, monkeypatch, run_cli):
    not_a_dir = tmp_path / "data.txt"
    not_a_dir.write_text("x")
    monkeypatch.setenv("LIFTBENCH_DATA", str(not_a_dir))
    for args in (("data", "prepare", "mocap-mini"), ("data", "info", "mocap-mini"), ("data", "verify", "mocap-mini"),
                 ("train", "mlp", "--epochs", "1", "--out", tmp_path / "runs")):
        code, _, err = run_cli(*args)
        assert code == 2 and f"{not_a_dir} (LIFTBENCH_DATA) is a file" in err, (args, err)
        assert "Traceback" not in err
    code, _, err = run_cli("data", "info", "mocap-mini", "--data-dir", not_a_dir)
    assert code == 2 and "(--data-dir) is a file" in err


# ---- mocap-mini: the same one check behind load and verify ---------------------------------------

@pytest.fixture(scope="module")
def mocap_cache(tmp_path_factory):
    pytest.importorskip("pybullet_data")
    data_dir = tmp_path_factory.mktemp("mocap")
    DATASETS.get("mocap-mini")().prepare(data_dir)
    return data_dir / "mocap-mini" / "v1"


@pytest.fixture
def mocap_copy(tmp_path, mocap_cache):
    out = tmp_path / "mocap-mini" / "v1"
    out.mkdir(parents=True)
    for f in mocap_cache.iterdir():
        (out / f.name).write_bytes(f.read_bytes())
    return tmp_path, out


def _edit_manifest(out: Path, change) -> None:
    manifest = json.loads((out / "manifest.json").read_text())
    change(manifest)
    (out / "manifest.json").write_text(json.dumps(manifest))


def _edit_arrays(out: Path, change) -> None:
    """Change the cached arrays and re-hash them, so only the content checks can notice."""
    with np.load(out / "mocap-mini.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    np.savez(out / "mocap-mini.npz", **arrays)
    digest = hashlib.sha256((out / "mocap-mini.npz").read_bytes()).hexdigest()
    _edit_manifest(out, lambda m: m.__setitem__("npz_sha256", digest))


def _mocap_verdicts(data_dir: Path) -> tuple[list[str], str | None]:
    problems = verify_dataset("mocap-mini", data_dir)
    try:
        load_dataset("mocap-mini", data_dir)
        error = None
    except DataError as exc:
        error = str(exc)
    assert bool(problems) == (error is not None) and (not problems or error.startswith(problems[0]))
    return problems, error


@pytest.mark.parametrize("dotted", ["build", "build.subjects", "build.clips", "counts.frames",
                                    "in_view.worst_fraction"])
def test_manifest_with_the_right_hash_but_missing_keys(mocap_copy, dotted, run_cli):
    data_dir, out = mocap_copy

    def drop(manifest):
        *parents, last = dotted.split(".")
        for key in parents:
            manifest = manifest[key]
        del manifest[last]
    _edit_manifest(out, drop)
    problems, _ = _mocap_verdicts(data_dir)
    assert len(problems) == 1 and f"'{dotted}'" in problems[0] and "prepare mocap-mini --force" in problems[0]
    code, _, err = run_cli("data", "info", "mocap-mini", "--data-dir", data_dir)
    assert code == 2 and f"'{dotted}'" in err
    assert "built" in DATASETS.get("mocap-mini")().prepare(data_dir)  # prepare repairs it
    assert _mocap_verdicts(data_dir) == ([], None)


@pytest.mark.parametrize("edit,words", [
    (lambda a: a["keypoints_2d"].__setitem__((9, 3, 0), 1e33), "no camera produces"),
    (lambda a: a["joints_3d"].__setitem__((4, 0, 2), np.inf), "NaN/inf"),
    (lambda a: a.__setitem__("subject", np.arange(len(a["subject"]))), "dtypes/shapes"),
    (lambda a: a.__setitem__("camera", a["camera"] + 4), "offsets/labels"),
])
def test_mocap_content_problems_stop_load_too(mocap_copy, edit, words):
    data_dir, out = mocap_copy
    _edit_arrays(out, edit)
    problems, error = _mocap_verdicts(data_dir)
    assert any(words in p for p in problems) and error is not None


def test_mocap_split_without_test_subjects(mocap_copy):
    data_dir, out = mocap_copy
    _edit_manifest(out, lambda m: m["build"].__setitem__("test_subjects", []))
    problems, _ = _mocap_verdicts(data_dir)
    assert "default test subjects" in problems[0]


# ---- the one split check every source gets -------------------------------------------------------

if "no-test-split" not in DATASETS:
    @DATASETS.register("no-test-split")
    class _NoTestSource(DatasetSource):
        """A plug-in whose own checks pass but whose default split has no test subject."""

        name = "no-test-split"

        def load(self, data_dir, keypoints) -> PoseDataset:
            from fixtures.tiny import make_tiny_dataset

            ds = make_tiny_dataset()
            return PoseDataset("no-test-split", "gt", ds.fps, ds.sequences, ds.cameras, ("S1", "S5"), ())

        def verify(self, data_dir, keypoints):
            return []


def test_plugin_source_without_test_split():
    problems = verify_dataset("no-test-split")
    assert len(problems) == 1 and "default test subjects" in problems[0]
    with pytest.raises(DataError, match="default test subjects"):
        load_dataset("no-test-split")
    assert load_dataset("no-test-split", test_subjects=["S9"]).test_subjects == ("S9",)
