"""The embedded ``mocap-mini`` dataset: kinematics, body proportions, floor, split, cache, verification.

Expected values are computed here independently (hand-derived kinematics from the URDF numbers,
re-projection, re-hashing, motion signatures), never copied from the builder's own output.
"""

from __future__ import annotations

import hashlib
import json
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

pybullet_data = pytest.importorskip("pybullet_data")

from liftbench.data import load_dataset  # noqa: E402
from liftbench.data.cameras import camera_to_world, h36m_cameras, project  # noqa: E402
from liftbench.data.mocap import (  # noqa: E402
    URDF_FILE,
    MocapMiniSource,
    forward_kinematics,
    parse_urdf,
    resample,
)
from liftbench.data.skeleton import JOINT_NAMES, action_group, bone_lengths  # noqa: E402
from liftbench.errors import DataError, MissingExtraError  # noqa: E402

J = {name: i for i, name in enumerate(JOINT_NAMES)}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("mocap")
    return data_dir, load_dataset("mocap-mini", data_dir=data_dir)


def _npz_path(data_dir: Path) -> Path:
    return Path(MocapMiniSource().location(data_dir)) / "mocap-mini.npz"


def _rest_frame() -> np.ndarray:
    """One DeepMimic frame (44,): identity rotations, straight hinges, root at (0.1, 0.9, -0.2) m."""
    f = np.zeros(44)
    f[0], f[1:4] = 1 / 30, (0.1, 0.9, -0.2)
    for s in (4, 8, 12, 16, 21, 25, 30, 35, 39):
        f[s] = 1.0  # quaternion w first
    return f


def test_forward_kinematics_matches_hand_computed_poses():
    body = parse_urdf((Path(pybullet_data.getDataPath()) / URDF_FILE).read_text(errors="replace"))
    # URDF joint origins x 0.25 scale, in mm (humanoid.urdf): hip z, knee y, ankle y, wrist y
    hip, knee, ankle = 0.339548 * 250, -1.686184 * 250, -1.639480 * 250
    chest, shoulder, elbow, wrist = (0.944604 * 250, np.array([-0.0962, 0.974, 0.73244]) * 250,
                                     -1.099152 * 250, -1.035788 * 250)
    root = np.array([100.0, 900.0, -200.0])
    f = _rest_frame()
    f[20] = -np.pi / 2  # right knee flexed 90 deg: the shin points backwards (-x)
    f[29] = np.pi / 2  # right elbow flexed 90 deg: the forearm points forwards (+x)
    joints, _ = forward_kinematics(f[None], body)
    expect = {
        "RFoot": root + [ankle, knee, hip],  # ankle < 0: the shin's 409.9 mm now lie along -x
        "LFoot": root + [0, knee + ankle, -hip],
        "RWrist": root + [0, chest, 0] + shoulder + [0, elbow, 0] + [-wrist, 0, 0],
        "LKnee": root + [0, knee, -hip],
    }
    for name, xyz in expect.items():
        np.testing.assert_allclose(joints[0, J[name]], xyz, atol=1e-6, err_msg=name)
    # root quaternion (w, x, y, z) = 90 deg about +y maps the right hip (+z) onto +x
    f = _rest_frame()
    f[4:8] = (np.cos(np.pi / 4), 0, np.sin(np.pi / 4), 0)
    joints, _ = forward_kinematics(f[None], body)
    np.testing.assert_allclose(joints[0, J["RHip"]], root + [hip, 0, 0], atol=1e-6)


def test_resample_respects_uneven_key_frame_durations():
    keys = np.stack([_rest_frame()] * 3)
    keys[:, 0] = (0.1, 0.02, 0.0)  # key frames at t = 0, 0.1, 0.12 s
    keys[:, 1] = (0.0, 1.0, 3.0)  # root x
    keys[1:, 4:8] = (np.cos(np.pi / 4), 0, np.sin(np.pi / 4), 0)  # root turns 90 deg about y by t = 0.1
    keys[:, 20] = (0.0, -1.0, -1.0)  # right knee angle
    out = resample(keys, 50.0)
    np.testing.assert_allclose(out[:, 1], [0, 0.2, 0.4, 0.6, 0.8, 1.0, 3.0], atol=1e-12)
    np.testing.assert_allclose(out[:, 20], [0, -0.2, -0.4, -0.6, -0.8, -1.0, -1.0], atol=1e-12)
    angle = np.degrees(2 * np.arccos(np.clip(np.abs(out[:, 4]), 0, 1)))  # slerp: angle linear in time
    np.testing.assert_allclose(angle, [0, 18, 36, 54, 72, 90, 90], atol=1e-6)


def test_bone_lengths_constant_per_subject_and_different_between_subjects(built):
    _, ds = built
    mean_bones = {}
    for subject in ds.subjects:
        joints = np.concatenate([s.joints_3d for s in ds.sequences if s.subject == subject]).astype(np.float64)
        bones = bone_lengths(joints)  # (F, 16)
        assert (bones.max(0) - bones.min(0)).max() < 2e-3, subject  # float32 storage ~1e-3 mm
        mean_bones[subject] = bones.mean(0)
        hips = np.linalg.norm(joints[:, J["RHip"]] - joints[:, J["LHip"]], axis=-1)
        assert 200 < hips.mean() < 330, "hips widened towards H36M's ~266 mm (DeepMimic: 170 mm)"
        thigh = bones[0, J["RKnee"] - 1]
        assert 360 < thigh < 540
    subjects = list(mean_bones)
    for i, a in enumerate(subjects):
        for b in subjects[i + 1:]:
            assert np.abs(mean_bones[a] - mean_bones[b]).max() > 5.0, (a, b)
    table = np.stack(list(mean_bones.values()))  # (subjects, 16)
    assert np.all(np.ptp(table, axis=0) > 5.0)  # every bone (not just overall size) varies


def _world(ds, seq) -> np.ndarray:
    return camera_to_world(seq.joints_3d.astype(np.float64), ds.cameras[seq.subject][seq.camera])


def test_world_frame_is_z_up_and_feet_are_on_the_floor(built):
    _, ds = built
    by_take = {}
    for s in ds.sequences:
        by_take.setdefault((s.subject, s.action), []).append(_world(ds, s))
    for (subject, action), worlds in by_take.items():
        assert len(worlds) == 4
        for w in worlds[1:]:  # all 4 cameras see the same world motion
            assert np.abs(w - worlds[0]).max() < 0.05
        w = worlds[0]
        ankles = w[:, [J["RFoot"], J["LFoot"]], 2].min(axis=1)  # (N,) lower ankle height per frame
        assert 15 < ankles.min() < 150, (subject, action, ankles.min())
        assert w[..., 2].min() > -100, (subject, action)  # nothing far below the floor
        assert np.linalg.norm(w[:, 0, :2], axis=-1).max() < 2500  # inside the capture volume
        if action_group(action) in ("Walk", "Turn"):
            assert 55 < ankles.min() < 115 and 60 < np.median(ankles) < 130, (subject, action)
            assert np.all(w[:, J["Head"], 2] > w[:, J["Hip"], 2] + 400)  # upright: Z is up
            assert 750 < np.median(w[:, J["Hip"], 2]) < 1150


def _motion_signature(ds, seq) -> np.ndarray:
    """(N, 4) knee and elbow angles: independent of body size, placement and camera."""
    j = seq.joints_3d.astype(np.float64)
    out = []
    for a, b, c in (("RHip", "RKnee", "RFoot"), ("LHip", "LKnee", "LFoot"),
                    ("RShoulder", "RElbow", "RWrist"), ("LShoulder", "LElbow", "LWrist")):
        u, v = j[:, J[a]] - j[:, J[b]], j[:, J[c]] - j[:, J[b]]
        cos = (u * v).sum(-1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
        out.append(np.arccos(np.clip(cos, -1, 1)))
    return np.stack(out, axis=-1)


def test_no_test_clip_is_in_training(built):
    _, ds = built
    assert ds.train_subjects and ds.test_subjects and not set(ds.train_subjects) & set(ds.test_subjects)
    train, test = ds.split("train"), ds.split("test")
    assert {s.subject for s in train} == set(ds.train_subjects) and {s.subject for s in test} == set(ds.test_subjects)
    assert not {s.action for s in train} & {s.action for s in test}
    train_sigs = {(s.subject, s.action): _motion_signature(ds, s) for s in train if s.camera == 0}
    # control: the same clip on two different bodies has the same signature, so the check can fire
    a, b = ds.train_subjects[:2]
    assert np.abs(train_sigs[(a, "Walk 1")] - train_sigs[(b, "Walk 1")]).max() < 1e-3
    for s in test:
        if s.camera:
            continue
        sig = _motion_signature(ds, s)
        for key, other in train_sigs.items():
            if len(other) == len(sig):
                assert np.abs(other - sig).max() > 0.05, (s.action, key)
    groups = {action_group(s.action) for s in test}
    assert "Walk" in groups and len(groups) >= 3
    n_train, n_test = sum(s.n_frames for s in train), sum(s.n_frames for s in test)
    assert 0.15 < n_test / (n_train + n_test) < 0.35
    for split, subjects in ((train, ds.train_subjects), (test, ds.test_subjects)):
        takes = {subj: {(s.action, s.camera) for s in split if s.subject == subj} for subj in subjects}
        assert len({frozenset(t) for t in takes.values()}) == 1  # every subject has every clip x 4 cameras
        assert {c for _, c in next(iter(takes.values()))} == {0, 1, 2, 3}


def test_2d_is_the_projection_of_3d_and_inside_the_image(built):
    _, ds = built
    assert ds.name == "mocap-mini" and ds.keypoints == "gt" and ds.fps == 50.0
    cams = h36m_cameras()
    for subject, cameras in ds.cameras.items():
        assert any(all(np.array_equal(c.T, d.T) for c, d in zip(cameras, cams[s])) for s in cams), subject
    for s in ds.sequences:
        assert s.keypoints_2d.dtype == np.float32 and s.joints_3d.dtype == np.float32
        assert s.keypoints_2d.shape == (s.n_frames, 17, 2) and s.joints_3d.shape == (s.n_frames, 17, 3)
        cam = ds.cameras[s.subject][s.camera]
        reprojected = project(s.joints_3d.astype(np.float64), cam)
        assert np.abs(reprojected - s.keypoints_2d).max() < 0.01, s.key
        w, h = cam.resolution
        inside = np.all((s.keypoints_2d >= 0) & (s.keypoints_2d <= [w, h]), axis=(1, 2))
        assert inside.mean() >= 0.95, s.key
        assert np.all(s.joints_3d[..., 2] > 1000)  # in front of the camera, metres away


def test_build_is_deterministic(tmp_path, built):
    first, _ = built
    MocapMiniSource().prepare(tmp_path, force=True)
    with np.load(_npz_path(first), allow_pickle=False) as a, np.load(_npz_path(tmp_path), allow_pickle=False) as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), key
    assert load_dataset("mocap-mini", data_dir=tmp_path).fingerprint() == built[1].fingerprint()


def test_manifest_records_sources_and_verify_passes(built):
    data_dir, ds = built
    source = MocapMiniSource()
    manifest = json.loads((Path(source.location(data_dir)) / "manifest.json").read_text())
    root = Path(pybullet_data.getDataPath())
    files = manifest["source"]["files"]
    assert URDF_FILE in files and sum(k.startswith("data/motions/walker/") for k in files) == 5
    for rel, digest in files.items():
        assert hashlib.sha256((root / rel).read_bytes()).hexdigest() == digest, rel
    assert manifest["source"]["version"] == metadata.version("pybullet")
    assert hashlib.sha256(_npz_path(data_dir).read_bytes()).hexdigest() == manifest["npz_sha256"]
    assert manifest["counts"]["frames"] == sum(s.n_frames for s in ds.sequences)
    assert set(manifest["build"]["subjects"]) == set(ds.subjects)
    assert source.verify(data_dir, "gt") == []
    assert "up to date" in source.prepare(data_dir)


def test_corrupt_cache_is_reported_and_repaired_by_prepare(tmp_path):
    source = MocapMiniSource()
    assert "prepare mocap-mini" in source.verify(tmp_path, "gt")[0]  # not built yet
    source.prepare(tmp_path)
    npz = _npz_path(tmp_path)
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the arrays
    npz.write_bytes(bytes(data))
    problems = source.verify(tmp_path, "gt")
    assert len(problems) == 1 and "--force" in problems[0]
    with pytest.raises(DataError, match="prepare mocap-mini --force"):
        source.load(tmp_path, "gt")
    npz.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="corrupt"):
        source.load(tmp_path, "gt")
    assert "built" in source.prepare(tmp_path)  # a stale or corrupt cache is rebuilt
    assert source.verify(tmp_path, "gt") == []


def test_verify_finds_inconsistent_arrays(tmp_path):
    """A cache whose hashes match but whose content is wrong (bones, NaN) is still flagged."""
    source = MocapMiniSource()
    source.prepare(tmp_path)
    npz, manifest_path = _npz_path(tmp_path), _npz_path(tmp_path).with_name("manifest.json")
    with np.load(npz, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["joints_3d"][5, J["LWrist"]] += 30.0  # a forearm 30 mm longer in one frame
    arrays["keypoints_2d"][7, 0, 0] = np.nan
    np.savez(npz, **arrays)
    manifest = json.loads(manifest_path.read_text())
    manifest["npz_sha256"] = hashlib.sha256(npz.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    problems = source.verify(tmp_path, "gt")
    assert any("bone lengths vary" in p for p in problems) and any("NaN" in p for p in problems)


def test_interrupted_build_is_rebuilt_not_trusted(tmp_path):
    source = MocapMiniSource()
    out = Path(source.location(tmp_path))
    out.mkdir(parents=True)
    (out / "mocap-mini.npz").write_bytes(b"half-written")  # a crash before the manifest was written
    ds = source.load(tmp_path, "gt")
    assert ds.sequences and source.verify(tmp_path, "gt") == []


def test_unknown_keypoints_name_is_a_data_error(tmp_path):
    source = MocapMiniSource()
    assert source.available_keypoints(tmp_path) == ["gt"]
    for call in (source.load, source.verify):
        with pytest.raises(DataError, match="keypoints 'cpn'.*gt"):
            call(tmp_path, "cpn")


def test_missing_pybullet_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pybullet_data", None)  # import pybullet_data -> ImportError
    with pytest.raises(MissingExtraError, match=r"liftbench\[mocap\]"):
        MocapMiniSource().load(tmp_path, "gt")
