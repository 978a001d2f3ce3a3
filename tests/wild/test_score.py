"""``liftbench score``: external predictions scored with evaluate's coverage rule, metrics and rows."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pandas as pd
import pytest
from fixtures.h36m import write_h36m_fixture

from liftbench.data import load_dataset
from liftbench.errors import ConfigError, CoverageError, DataError, UnsafeFileError
from liftbench.evaluate import Predictions
from liftbench.results import read_rows
from liftbench.wild.score import score_file

OFFSET_MM = np.array([3.0, 4.0, 0.0])  # added to one joint: MPJPE = |offset| / 17 = 5/17 mm on every frame
SHIFT_MM = np.array([250.0, -400.0, 3000.0])  # added to every joint: removed by root-centring


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A tiny MLP run evaluated with --save-predictions and --video-mean (trained once per module)."""
    import liftbench

    tmp = tmp_path_factory.mktemp("score")
    cfg = liftbench.load_config("mlp", options={"data.name": "tiny", "train.epochs": 1},
                                overrides={"hidden_size": 16, "batch_size": 16})
    run = liftbench.train_run(cfg, out_dir=tmp, device="cpu")
    res = liftbench.evaluate_run(run.run_dir, save_predictions=True, video_mean=True, device="cpu", out=tmp / "eval")
    return res, tmp / "eval" / "predictions.npz", tmp


def _values(rows: pd.DataFrame) -> dict:
    return {(r.metric, r.slice_type, r.slice): (float(r.value), int(r.n_frames)) for r in rows.itertuples()}


def test_liftbench_predictions_score_like_evaluate(evaluated, tmp_path):
    res, npz, _ = evaluated
    out = score_file(npz, "tiny", out=tmp_path / "ext")
    expected = _values(res.rows)
    got = _values(out.rows)
    assert got.keys() == expected.keys() and len(got) > 50
    for key, value in expected.items():
        assert got[key] == value, key  # same frames, same order, same arithmetic: bit-equal
    sha = hashlib.sha256(npz.read_bytes()).hexdigest()
    first = out.rows.iloc[0]
    assert first["origin"] == "external" and first["config_hash"] == sha
    assert first["run_id"] == f"predictions-{sha[:12]}"
    assert first["model"] == "predictions" and first["dataset_fingerprint"] == res.rows.iloc[0]["dataset_fingerprint"]
    assert int(first["n_frames_expected"]) == res.card["frames"]["test_expected"]
    on_disk = read_rows(tmp_path / "ext" / "results.csv")
    assert len(on_disk) == len(out.rows) and set(on_disk["origin"]) == {"external"}
    card = json.loads((tmp_path / "ext" / "protocol.json").read_text())
    assert card["input"]["sha256"] == sha and card["input"]["units"] == "mm"
    assert card["frames"] == res.card["frames"]
    for key in ("dataset", "joints_scored", "root_handling", "alignment", "averaging", "frames"):
        assert key in card
    assert out.warnings == []


def test_row_order_in_the_file_does_not_matter(evaluated, tmp_path):
    res, npz, _ = evaluated
    p = Predictions.load(npz)
    perm = np.random.default_rng(0).permutation(len(p))
    Predictions(p.subject[perm], p.action[perm], p.camera[perm], p.frame[perm], p.pred[perm], p.target[perm]).save(
        tmp_path / "shuffled.npz")
    got = _values(score_file(tmp_path / "shuffled.npz", "tiny", out=tmp_path / "o").rows)
    for key, value in _values(res.rows).items():
        assert got[key] == value, key


def test_stored_target_that_differs_is_a_warning_not_used(evaluated, tmp_path):
    res, npz, _ = evaluated
    p = Predictions.load(npz)
    Predictions(p.subject, p.action, p.camera, p.frame, p.pred, p.target + 10.0 * np.arange(17)[None, :, None]).save(
        tmp_path / "t.npz")
    out = score_file(tmp_path / "t.npz", "tiny", out=tmp_path / "o")
    assert len(out.warnings) == 1 and "differs from the dataset's ground truth" in out.warnings[0]
    assert _values(out.rows)[("mpjpe", "all", "action_mean")] == _values(res.rows)[("mpjpe", "all", "action_mean")]


def test_cli_score_prints_table_and_writes_files(evaluated, run_cli, tmp_path):
    res, npz, _ = evaluated
    code, stdout, stderr = run_cli("score", npz, "--data", "tiny", "--name", "peer", "--out", tmp_path / "cli")
    assert code == 0, stderr
    assert "action_mean" in stdout and "video_mean" in stdout and "frame_mean" in stdout
    p1 = _values(res.rows)[("mpjpe", "all", "action_mean")][0]
    assert f"{p1:.1f}" in stdout
    rows = read_rows(tmp_path / "cli" / "results.csv")
    assert set(rows["model"]) == {"peer"}


# --- VideoPose3D-style dicts on a synthetic Human3.6M -------------------------------------------------


@pytest.fixture(scope="module")
def h36m(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("h36m")
    write_h36m_fixture(data_dir, subjects=("S1", "S9", "S11"), n_frames=20)
    test = load_dataset("h36m", data_dir, "gt").split("test")
    return data_dir, test


def _offset_tree(test, units_scale: float = 1.0, legacy: bool = True) -> dict:
    """{subject: {action: [4 cameras]}} = ground truth + SHIFT on every joint + OFFSET on LKnee, in file units."""
    tree: dict = {}
    for s in test:
        pose = s.joints_3d.astype(np.float64) + SHIFT_MM
        pose[:, 5] += OFFSET_MM
        action = s.action.replace("Photo", "TakingPhoto") if legacy and s.subject == "S9" else s.action
        tree.setdefault(s.subject, {}).setdefault(action, [None] * 4)[s.camera] = pose / units_scale
    return tree


def test_dict_layout_in_metres_gives_the_hand_computed_offset(h36m, tmp_path):
    data_dir, test = h36m
    np.savez_compressed(tmp_path / "vp3d.npz", positions_3d=_offset_tree(test, 1000.0))
    out = score_file(tmp_path / "vp3d.npz", "h36m", data_dir, units="m", out=tmp_path / "o")
    v = _values(out.rows)
    n = sum(s.n_frames for s in test)
    for averaging in ("action_mean", "frame_mean", "video_mean"):
        assert v[("mpjpe", "all", averaging)][0] == pytest.approx(5.0 / 17.0, abs=1e-3)
    assert v[("mpjpe", "all", "frame_mean")][1] == n
    assert v[("mpjpe", "joint", "LKnee")][0] == pytest.approx(5.0, abs=1e-2)
    assert v[("mpjpe", "joint", "RKnee")][0] == pytest.approx(0.0, abs=1e-2)
    assert out.card["input"]["layout"] == "dict" and out.card["frames"]["test_scored"] == n


def test_flat_layout_with_camera_ids(h36m, tmp_path):
    data_dir, test = h36m
    from liftbench.data.cameras import CAMERA_IDS

    arrays = {f"{subject}/{action}/{CAMERA_IDS[c]}": pose
              for subject, actions in _offset_tree(test, legacy=False).items()
              for action, cams in actions.items() for c, pose in enumerate(cams)}
    np.savez(tmp_path / "flat.npz", **arrays)
    out = score_file(tmp_path / "flat.npz", "h36m", data_dir, units="mm", out=tmp_path / "o")
    assert _values(out.rows)[("mpjpe", "all", "frame_mean")][0] == pytest.approx(5.0 / 17.0, abs=1e-4)


def test_missing_frame_is_named(h36m, tmp_path):
    data_dir, test = h36m
    tree = _offset_tree(test)
    s = test[0]
    action = s.action.replace("Photo", "TakingPhoto") if s.subject == "S9" else s.action
    tree[s.subject][action][s.camera] = tree[s.subject][action][s.camera][:-1]
    np.savez_compressed(tmp_path / "short.npz", positions_3d=tree)
    first_missing = f"{s.subject}/{s.action}/cam{s.camera}/frame{s.n_frames - 1}"
    with pytest.raises(CoverageError, match=rf"never scored \(e.g. {first_missing}\)"):
        score_file(tmp_path / "short.npz", "h36m", data_dir, units="mm", out=tmp_path / "o")


def test_missing_camera_is_named_with_its_frames(h36m, tmp_path):
    data_dir, test = h36m
    tree = _offset_tree(test, legacy=False)
    tree["S11"]["Directions"][2] = None
    np.savez_compressed(tmp_path / "nocam.npz", positions_3d=tree)
    n = next(s.n_frames for s in test if s.key == ("S11", "Directions", 2))
    with pytest.raises(CoverageError,
                       match=rf"1 test video\(s\) with {n} frame\(s\) never predicted \(S11/Directions/cam2\)"):
        score_file(tmp_path / "nocam.npz", "h36m", data_dir, units="mm", out=tmp_path / "o")


def test_duplicated_frame_is_named(evaluated, tmp_path):
    _, npz, _ = evaluated
    p = Predictions.load(npz)
    frame = p.frame.copy()
    frame[5] = frame[4]  # row 5 claims frame 4 again; frame 5 of that video is then missing too
    Predictions(p.subject, p.action, p.camera, frame, p.pred, p.target).save(tmp_path / "dup.npz")
    name = f"{p.subject[4]}/{p.action[4]}/cam{p.camera[4]}/frame{p.frame[4]}"
    with pytest.raises(CoverageError, match=rf"scored more than once \(e.g. {name}\)"):
        score_file(tmp_path / "dup.npz", "tiny", out=tmp_path / "o")


def test_unknown_action_or_training_subject_is_named(h36m, tmp_path):
    data_dir, test = h36m
    tree = _offset_tree(test)
    tree["S9"]["Dancing"] = tree["S9"]["Directions"]
    np.savez_compressed(tmp_path / "a.npz", positions_3d=tree)
    with pytest.raises(DataError, match="action 'Dancing' of S9 is not in the test split"):
        score_file(tmp_path / "a.npz", "h36m", data_dir, units="mm", out=tmp_path / "o")
    tree = _offset_tree(test)
    tree["S1"] = {"Directions": tree["S9"]["Directions"]}
    np.savez_compressed(tmp_path / "s.npz", positions_3d=tree)
    with pytest.raises(DataError, match="subject 'S1' is not in the test split"):
        score_file(tmp_path / "s.npz", "h36m", data_dir, units="mm", out=tmp_path / "o")


def test_wrong_or_missing_units_are_errors(h36m, tmp_path, run_cli):
    data_dir, test = h36m
    np.savez_compressed(tmp_path / "m.npz", positions_3d=_offset_tree(test, 1000.0))
    np.savez_compressed(tmp_path / "mm.npz", positions_3d=_offset_tree(test, 1.0))
    with pytest.raises(DataError, match="units look wrong: pass --units m"):
        score_file(tmp_path / "m.npz", "h36m", data_dir, units="mm", out=tmp_path / "o")
    with pytest.raises(DataError, match="units look wrong: pass --units mm"):
        score_file(tmp_path / "mm.npz", "h36m", data_dir, units="m", out=tmp_path / "o")
    with pytest.raises(ConfigError, match="--units mm|m is required"):
        score_file(tmp_path / "mm.npz", "h36m", data_dir, out=tmp_path / "o")
    code, stdout, stderr = run_cli("score", tmp_path / "m.npz", "--data", "h36m", "--data-dir", data_dir,
                                   "--units", "mm", "--out", tmp_path / "o")
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and "--units m" in stderr
    assert not (tmp_path / "o" / "results.csv").exists()


def test_bad_arrays_are_one_line_errors(h36m, tmp_path):
    data_dir, test = h36m
    tree = _offset_tree(test)
    tree["S9"]["Directions"][1] = tree["S9"]["Directions"][1].copy()
    tree["S9"]["Directions"][1][3, 2, 0] = np.nan
    np.savez_compressed(tmp_path / "nan.npz", positions_3d=tree)
    with pytest.raises(DataError, match=r"S9/Directions/cam1: NaN/inf in 1 frame\(s\), first at frame 3"):
        score_file(tmp_path / "nan.npz", "h36m", data_dir, units="mm", out=tmp_path / "o")
    tree = _offset_tree(test)
    tree["S9"]["Directions"][0] = tree["S9"]["Directions"][0][:, :16]
    np.savez_compressed(tmp_path / "j16.npz", positions_3d=tree)
    with pytest.raises(DataError, match=r"shape \(\d+, 16, 3\), expected \(frames, 17, 3\)"):
        score_file(tmp_path / "j16.npz", "h36m", data_dir, units="mm", out=tmp_path / "o")


class _Shell:
    """Pickles as ``os.system(cmd)``: would run a shell command under the stock unpickler."""

    def __init__(self, cmd: str):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def test_crafted_pickle_is_refused_and_never_runs(h36m, tmp_path):
    data_dir, test = h36m
    marker = tmp_path / "pwned"
    tree = _offset_tree(test)
    tree["S9"]["Evil"] = _Shell(f"touch {marker}")
    np.savez_compressed(tmp_path / "evil.npz", positions_3d=tree)
    with pytest.raises(UnsafeFileError, match="refuses to load"):
        score_file(tmp_path / "evil.npz", "h36m", data_dir, units="mm", out=tmp_path / "o")
    assert not marker.exists()


def test_root_keep_or_subtract(tiny_dataset, tmp_path, monkeypatch):
    # every joint, the root included, predicted (3, 4, 0) mm off: keeping the root costs exactly 5 mm,
    # subtracting it removes the offset entirely
    test = tiny_dataset.split("test")
    target = np.concatenate([s.joints_3d - s.joints_3d[:, :1] for s in test]).astype(np.float64)
    keys = [(s.subject, s.action, s.camera, f) for s in test for f in range(s.n_frames)]
    subject, action, camera, frame = (np.array(col) for col in zip(*keys))
    Predictions(subject, action, camera, frame, (target + OFFSET_MM).astype(np.float32),
                target.astype(np.float32)).save(tmp_path / "p.npz")
    kept = _values(score_file(tmp_path / "p.npz", "tiny", out=tmp_path / "k").rows)
    subtracted = _values(score_file(tmp_path / "p.npz", "tiny", out=tmp_path / "s", root="subtract").rows)
    assert kept[("mpjpe", "all", "frame_mean")][0] == pytest.approx(5.0, abs=1e-3)
    assert kept[("p_mpjpe", "all", "frame_mean")][0] == pytest.approx(0.0, abs=1e-3)  # a translation: P2 removes it
    assert subtracted[("mpjpe", "all", "frame_mean")][0] == pytest.approx(0.0, abs=1e-3)
    with pytest.raises(ConfigError, match="--root 'centre'"):
        score_file(tmp_path / "p.npz", "tiny", out=tmp_path / "x", root="centre")


def test_raw_pickle_or_garbage_is_refused(tmp_path):
    import pickle

    marker = tmp_path / "pwned"
    (tmp_path / "raw.npz").write_bytes(pickle.dumps(_Shell(f"touch {marker}")))
    with pytest.raises(DataError, match="raw.npz"):
        score_file(tmp_path / "raw.npz", "tiny", units="mm", out=tmp_path / "o")
    assert not marker.exists()
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(DataError, match="junk.npz"):
        score_file(tmp_path / "junk.npz", "tiny", units="mm", out=tmp_path / "o")
