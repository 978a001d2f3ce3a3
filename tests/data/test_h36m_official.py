"""`liftbench data prepare h36m --from-official DIR`: official D3_Positions CDF files -> data_3d_h36m.npz.

The release is synthesised here with cdflib's writer (tests/fixtures/official.py); expected keys are
derived in this file from the VideoPose3D rules (substring renames, S11 'Directions' dropped) and the
expected values straight from the poses written, never from the converter's output.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures.official import POSE_DIR, SUBJECTS, official_stems, take_poses_mm, write_official_tree, write_pose_cdf

import liftbench
from liftbench.cli import main
from liftbench.data import h36m_official, load_dataset
from liftbench.data.cameras import h36m_cameras
from liftbench.data.h36m_official import MANIFEST, convert_official
from liftbench.errors import ConfigError, DataError, MissingExtraError

NPZ = "data_3d_h36m.npz"
# H36M-17 as indices of the 32 raw joints (reference doc table 1.4), written out independently here
RAW_TO_17 = [0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27]


def expected_key(subject: str, stem: str) -> str | None:
    """VideoPose3D's name for a file stem (None: the take it drops)."""
    if subject == "S11" and stem == "Directions":
        return None
    return stem.replace("TakingPhoto", "Photo").replace("WalkingDog", "WalkDog")


def load_positions(path: Path) -> dict:
    with np.load(path, allow_pickle=True) as z:  # our own freshly written file: plain numpy reading is fine
        return z["positions_3d"].item()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("official")
    return root, write_official_tree(root)


@pytest.fixture(scope="module")
def converted(release, tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("converted") / "h36m"
    return out, convert_official(release[0], out)


@pytest.fixture
def release_copy(release, tmp_path) -> tuple[Path, dict]:
    root = tmp_path / "release"
    shutil.copytree(release[0], root)
    return root, release[1]


def test_fixture_has_the_official_file_counts():
    stems = official_stems()
    assert [len(stems[s]) for s in SUBJECTS] == [30] * 7
    assert all(len(set(v)) == 30 for v in stems.values())
    assert {"TakingPhoto", "TakingPhoto 1", "WalkingDog", "WalkingDog 1"} <= set(stems["S1"])


def test_npz_equals_the_written_poses_in_metres(release, converted):
    _, written = release
    out, _ = converted
    positions = load_positions(out / NPZ)
    assert set(positions) == set(SUBJECTS)
    for subject in SUBJECTS:
        expected = {expected_key(subject, stem): poses for stem, poses in written[subject].items()
                    if expected_key(subject, stem) is not None}
        assert set(positions[subject]) == set(expected), subject
        for key, poses in expected.items():
            arr = positions[subject][key]
            assert arr.dtype == np.float32 and arr.shape == (len(poses), 32, 3)
            np.testing.assert_allclose(arr, poses / 1000.0, rtol=0, atol=1e-6)
    assert len(positions["S11"]) == 29 and "Directions" not in positions["S11"]
    assert "Directions 1" in positions["S11"]
    assert {"Photo", "Photo 1", "WalkDog", "WalkDog 1"} <= set(positions["S1"])
    assert not [k for k in positions["S1"] if "Taking" in k or ("Walking" in k and "Dog" in k)]
    assert all(len(positions[s]) == 30 for s in SUBJECTS if s != "S11")


def test_manifest_lists_hashes_frames_and_provenance(release, converted):
    root, written = release
    out, result = converted
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["liftbench_version"] == liftbench.__version__
    created = dt.datetime.strptime(manifest["created_utc"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert abs((dt.datetime.now(dt.UTC) - created).total_seconds()) < 600
    assert manifest["subjects"] == list(SUBJECTS) and manifest["partial"] is False
    assert manifest["output"]["sha256"] == sha256(out / NPZ)
    for subject in SUBJECTS:
        takes = manifest["takes"][subject]
        for stem, poses in written[subject].items():
            key = expected_key(subject, stem)
            if key is None:
                assert key not in takes
                continue
            path = root / subject / POSE_DIR / f"{stem}.cdf"
            assert takes[key] == {"file": f"{subject}/MyPoseFeatures/D3_Positions/{stem}.cdf",
                                  "sha256": sha256(path), "frames": len(poses)}
        assert manifest["frames"][subject] == sum(t["frames"] for t in takes.values())
    assert any("S11" in d and "Directions" in d for d in manifest["dropped"])
    assert len(result.takes) == 209 and "209 takes" in result.summary()


def test_reader_gives_the_camera_frame_of_the_written_poses(release, converted):
    _, written = release
    out, _ = converted
    ds = load_dataset("h36m", out, "gt")
    assert len(ds.sequences) == 209 * 4
    assert set(ds.train_subjects) == {"S1", "S5", "S6", "S7", "S8"} and set(ds.test_subjects) == {"S9", "S11"}
    by_key = {s.key: s for s in ds.sequences}
    for subject, stem, camera in (("S1", "TakingPhoto", 2), ("S11", "Phoning 3", 0), ("S9", "Walking 1", 3)):
        cam = h36m_cameras()[subject][camera]
        world = written[subject][stem][:, RAW_TO_17]  # (N, 17, 3) mm
        expected = np.einsum("ij,nkj->nki", cam.R, world - cam.T)  # X_cam = R (X - T)
        seq = by_key[(subject, expected_key(subject, stem), camera)]
        np.testing.assert_allclose(seq.joints_3d, expected, rtol=0, atol=5e-3)  # float32 metres -> mm


def _remove_subject(root: Path) -> Path:
    shutil.rmtree(root / "S7")
    return root / "S7"


def _empty_take(root: Path) -> Path:
    path = root / "S5" / POSE_DIR / "Eating 1.cdf"
    path.unlink()
    write_pose_cdf(path, None, dims=[12, 96])  # declared, no records
    return path


def _truncate(root: Path) -> Path:
    path = root / "S9" / POSE_DIR / "Greeting 1.cdf"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _wrong_shape(root: Path) -> Path:
    path = root / "S6" / POSE_DIR / "Posing 2.cdf"
    write_pose_cdf(path, np.full((1, 8, 64), 500.0))  # a D2 file (32 joints x 2) in the D3 folder
    return path


def _metres(root: Path) -> Path:
    path = root / "S8" / POSE_DIR / "Walking 1.cdf"
    write_pose_cdf(path, take_poses_mm(3, 9, np.random.default_rng(1))
                   .reshape(1, 9, 96) / 1000.0)
    return path


def _wrong_variable(root: Path) -> Path:
    path = root / "S1" / POSE_DIR / "Smoking 1.cdf"
    write_pose_cdf(path, np.full((1, 6, 96), 500.0), variable="Positions")
    return path


def _nan(root: Path) -> Path:
    path = root / "S11" / POSE_DIR / "Sitting 1.cdf"
    data = take_poses_mm(5, 7, np.random.default_rng(2)).reshape(1, 7, 96)
    data[0, 4, 10] = np.nan
    write_pose_cdf(path, data)
    return path


def _missing_take(root: Path) -> Path:
    (root / "S5" / POSE_DIR / "Discussion 3.cdf").unlink()
    return root / "S5" / POSE_DIR


def _stray_file(root: Path) -> Path:
    path = root / "S1" / POSE_DIR / "Directions 1.54138969.cdf"  # a mono/D2 file copied into D3
    shutil.copy(root / "S1" / POSE_DIR / "Directions 1.cdf", path)
    return path


FAILURES = {
    "missing subject folder": (_remove_subject, "not found"),
    "empty take": (_empty_take, "empty take"),
    "truncated CDF": (_truncate, "truncated or corrupt"),
    "wrong shape": (_wrong_shape, "(1, N, 96)"),
    "metres given as mm": (_metres, "metres"),
    "wrong variable": (_wrong_variable, "no variable 'Pose'"),
    "NaN": (_nan, "NaN"),
    "missing take": (_missing_take, "Discussion"),
    "stray file": (_stray_file, "unexpected file"),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_each_failure_names_the_file_and_leaves_nothing(case, release_copy, tmp_path):
    root, _ = release_copy
    breaker, phrase = FAILURES[case]
    named = breaker(root)
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("user file")
    with pytest.raises(DataError) as info:
        convert_official(root, out)
    message = str(info.value)
    assert "\n" not in message and str(named) in message and phrase in message
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    fresh = tmp_path / "not-yet"  # a data dir that does not exist is not created by a failed conversion
    with pytest.raises(DataError):
        convert_official(root, fresh)
    assert not fresh.exists()


def test_failure_while_writing_keeps_the_previous_conversion(release, tmp_path, monkeypatch):
    out = tmp_path / "data"
    convert_official(release[0], out, subjects="S9,S11")
    before = {p.name: sha256(p) for p in out.iterdir()}

    def disk_full(*_args, **_kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr("liftbench.data.h36m_official.write_json_atomic", disk_full)
    with pytest.raises(OSError):
        convert_official(release[0], out, force=True)
    assert {p.name: sha256(p) for p in out.iterdir()} == before  # old npz + manifest, no temp dir
    monkeypatch.undo()

    real_load = h36m_official.load_npz

    def bit_flip(path):
        content = real_load(path)
        content["positions_3d"]["S1"]["Eating 2"][0, 0, 0] += 1.0
        return content

    monkeypatch.setattr(h36m_official, "load_npz", bit_flip)
    with pytest.raises(DataError, match="re-reading the converted file"):
        convert_official(release[0], out, force=True)
    assert {p.name: sha256(p) for p in out.iterdir()} == before


def test_existing_output_needs_force(release, tmp_path):
    out = tmp_path / "data"
    convert_official(release[0], out, subjects=["S11"])
    with pytest.raises(DataError, match="--force") as info:
        convert_official(release[0], out)
    assert str(out / NPZ) in str(info.value)
    convert_official(release[0], out, force=True)
    assert set(load_positions(out / NPZ)) == set(SUBJECTS)
    assert json.loads((out / MANIFEST).read_text())["partial"] is False


def test_partial_release_is_converted_and_stated(tmp_path):
    root = tmp_path / "release"
    written = write_official_tree(root, subjects=("S9", "S11"), seed=3)
    with pytest.raises(DataError, match="S1"):
        convert_official(root, tmp_path / "all")  # S1 missing: the full release is the default
    result = convert_official(root, tmp_path / "part", subjects="S11, S9")
    positions = load_positions(tmp_path / "part" / NPZ)
    assert set(positions) == {"S9", "S11"} and result.subjects == ("S9", "S11")
    np.testing.assert_allclose(positions["S9"]["Discussion 2"], written["S9"]["Discussion 2"] / 1000.0, atol=1e-6)
    manifest = json.loads((tmp_path / "part" / MANIFEST).read_text())
    assert manifest["partial"] is True and manifest["subjects"] == ["S9", "S11"]
    assert "partial release" in result.summary()
    with pytest.raises(ConfigError, match="S2"):
        convert_official(root, tmp_path / "x", subjects="S2,S9")


def test_dropped_take_is_never_read_and_may_be_absent(release_copy, tmp_path):
    root, _ = release_copy
    dropped = root / "S11" / POSE_DIR / "Directions.cdf"
    dropped.write_bytes(b"not a cdf")  # damaged: fine, the reference drops it unread
    convert_official(root, tmp_path / "a", subjects="S11")
    dropped.unlink()  # deleted by the user: still the same 29 takes
    convert_official(root, tmp_path / "b", subjects="S11")
    a, b = load_positions(tmp_path / "a" / NPZ), load_positions(tmp_path / "b" / NPZ)
    assert len(a["S11"]) == len(b["S11"]) == 29


def test_float32_and_record_major_pose_are_read(release_copy, tmp_path):
    root, written = release_copy
    poses = written["S7"]["Waiting 2"]
    write_pose_cdf(root / "S7" / POSE_DIR / "Waiting 2.cdf", poses.reshape(1, -1, 96), float32=True)
    write_pose_cdf(root / "S7" / POSE_DIR / "Walking 2.cdf", written["S7"]["Walking 2"].reshape(-1, 96))  # (N, 96)
    convert_official(root, tmp_path / "out", subjects="S7")
    positions = load_positions(tmp_path / "out" / NPZ)["S7"]
    np.testing.assert_allclose(positions["Waiting 2"], poses / 1000.0, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(positions["Walking 2"], written["S7"]["Walking 2"] / 1000.0, atol=1e-6)


def test_missing_cdflib_says_what_to_install(release, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cdflib", None)  # import cdflib -> ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'liftbench\[h36m\]'"):
        convert_official(release[0], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_converts_and_reports_errors_in_one_line(release, tmp_path, capsys):
    root = str(release[0])
    out = tmp_path / "cli"
    assert main(["data", "prepare", "h36m", "--from-official", root, "--data-dir", str(out)]) == 0
    assert "209 takes" in capsys.readouterr().out and (out / NPZ).is_file() and (out / MANIFEST).is_file()
    assert main(["data", "prepare", "h36m", "--from-official", root, "--data-dir", str(out)]) == 2  # exists
    assert "--force" in capsys.readouterr().err
    missing = tmp_path / "nowhere"
    assert main(["data", "prepare", "h36m", "--from-official", str(missing), "--data-dir", str(out), "--force"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(missing) in err
    assert main(["data", "prepare", "h36m", "--from-official", root]) == 2
    assert "--data-dir" in capsys.readouterr().err
    assert main(["data", "prepare", "mocap-mini", "--from-official", root, "--data-dir", str(out)]) == 2
    assert "h36m" in capsys.readouterr().err
