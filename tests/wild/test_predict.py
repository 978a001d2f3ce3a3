"""`liftbench predict` end to end on tiny runs trained here (every registered lifter), `data export-2d`,
several people, and the one-line errors. The reference predictions come from
``evaluate.predict_sequences`` called directly on the original H36M-order sequence, so a wrong pixel
mapping, joint order, frame order or person split makes a test fail."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fixtures.cli import assert_one_line_error
from fixtures.lifters import (
    one_torch_thread,  # noqa: F401  (the fixture, used by pytestmark)
    small_set_options,
)

from liftbench.data.skeleton import JOINT_NAMES
from liftbench.models import list_lifters

ALL_LIFTERS = list_lifters()


def _tiny_settings(model: str) -> list[str]:
    """--set options that make any registered lifter tiny (only the fields it has)."""
    return small_set_options(model)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny run per registered lifter, trained through the CLI on the synthetic 'tiny' data (seconds)."""
    from liftbench.cli import main

    out = tmp_path_factory.mktemp("runs")
    found = {}
    for model in ALL_LIFTERS:
        code = main(["train", model, "--data", "tiny", "--epochs", "1", "--device", "cpu", "--out", str(out),
                     "--set", "batch_size=32", *_tiny_settings(model)])
        assert code == 0
        (found[model],) = [d for d in out.rglob(f"{model}-*") if (d / "run.json").is_file()]
    return found


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def reference_poses(run_dir, keypoints_2d: np.ndarray) -> np.ndarray:
    """The run's predictions for an H36M-order pixel sequence, straight through the evaluator."""
    from liftbench.data.dataset import Sequence
    from liftbench.evaluate import predict_sequences
    from liftbench.pipeline import load_run

    run = load_run(run_dir, "cpu")
    seq = Sequence("X", "x", 0, keypoints_2d.astype(np.float32), np.zeros((len(keypoints_2d), 17, 3), np.float32),
                   resolution=(1000, 1002))
    preds = predict_sequences(run.model, run.stats, [seq], torch.device("cpu"), ground_truth=False)
    pred = preds.pred.astype(np.float64)
    return pred - pred[:, :1]  # root-relative, as predict writes it (lifters that predict the root too)


@pytest.mark.parametrize("model", ALL_LIFTERS)
def test_h36m_order_input_reproduces_the_run_and_is_resolution_invariant(runs, model, tiny_dataset, tmp_path):
    from liftbench.wild.predict import predict_file

    seq = tiny_dataset.split("test")[0]
    expected = reference_poses(runs[model], seq.keypoints_2d)
    np.savez(tmp_path / "clip.npz", keypoints=seq.keypoints_2d, width=1000, height=1002)
    done = predict_file(runs[model], tmp_path / "clip.npz", layout="h36m", device="cpu")
    (person,) = done.people
    assert person.npz_path == tmp_path / "clip_3d.npz" and person.json_path == tmp_path / "clip_3d.json"
    with np.load(person.npz_path, allow_pickle=False) as z:
        np.testing.assert_allclose(z["poses_3d"], expected, atol=1e-3)
        np.testing.assert_allclose(z["keypoints_2d"], seq.keypoints_2d, atol=1e-3)
        assert z["frames"].tolist() == list(range(seq.n_frames)) and not z["filled"].any()
        assert z["joint_names"].tolist() == list(JOINT_NAMES)
        assert np.all(z["poses_3d"][:, 0] == 0)  # root-relative
        meta = json.loads(str(z["meta"]))
    assert meta["run"]["model"] == model and meta["pixel_mapping"]["scale"] == 1.0
    # the same clip filmed at twice the resolution (aspect kept) must give the same 3D
    big = seq.keypoints_2d.astype(np.float64) * 2.0
    np.save(tmp_path / "big.npy", big)
    done = predict_file(runs[model], tmp_path / "big.npy", layout="h36m", width=2000, height=2004, device="cpu",
                        out=tmp_path / "big_out.npz")
    with np.load(done.people[0].npz_path) as z:
        np.testing.assert_allclose(z["poses_3d"], expected, atol=1e-2)
        np.testing.assert_allclose(z["keypoints_2d"], big, atol=1e-3)  # outputs stay in the user's pixels


def test_export_then_predict_through_the_cli(runs, run_cli, tmp_path, tiny_dataset):
    model = ALL_LIFTERS[0]
    clip = tmp_path / "clip.json"
    code, out, err = run_cli("data", "export-2d", "tiny", "--subject", "S9", "--action", "Walk 1", "--camera", "1",
                             "--format", "coco", "--out", clip)
    assert code == 0, err
    assert "--width 1000 --height 1000" in " ".join(out.split())  # camera 1 of H36M is 1000 x 1000
    seq = [s for s in tiny_dataset.sequences if s.key == ("S9", "Walk 1", 1)][0]
    records = json.loads(clip.read_text())
    assert len(records) == seq.n_frames and len(records[0]["keypoints"]) == 51
    np.testing.assert_allclose(records[3]["keypoints"][15 * 3:15 * 3 + 2], seq.keypoints_2d[3, 6], atol=1e-3)  # LFoot
    code, out, err = run_cli("predict", runs[model], clip, "--width", "1000", "--height", "1000", "--device", "cpu",
                             "--out", tmp_path / "lifted.npz")
    assert code == 0, err
    text = " ".join(out.split())
    assert "format: coco (auto-detected" in text and f"{seq.n_frames} frames" in text
    assert "different skeleton definition and camera" in " ".join(err.split())
    with np.load(tmp_path / "lifted.npz") as z:
        poses, kp = z["poses_3d"], z["keypoints_2d"]
        meta = json.loads(str(z["meta"]))
    doc = json.loads((tmp_path / "lifted.json").read_text())
    assert poses.shape == (seq.n_frames, 17, 3) and np.isfinite(poses).all()
    np.testing.assert_allclose(np.array(doc["poses_3d"]), poses, atol=0.051)  # rounded to 0.1 mm
    assert doc["joint_names"] == list(JOINT_NAMES) and doc["warning"] == meta["warning"]
    assert meta["format"] == "coco" and meta["mapping"][0]["formula"] == "mid(left_hip, right_hip)"
    assert meta["image_size"] == {"width": 1000.0, "height": 1000.0, "source": "--width/--height"}
    assert meta["pixel_mapping"]["offset_px"] == [0.0, 1.0]  # 1000-tall image centred in 1002
    # the COCO hip is the midpoint of the exported hips
    np.testing.assert_allclose(kp[:, 0], (seq.keypoints_2d[:, 1] + seq.keypoints_2d[:, 4]) / 2, atol=1e-2)
    np.testing.assert_allclose(poses, reference_poses(runs[model], to_h36m(kp, 1000, 1000)), atol=1e-3)


def to_h36m(kp: np.ndarray, w: float, h: float) -> np.ndarray:
    """The pixel-frame mapping written out again: scale 1000 / w, centre vertically in 1002."""
    s = 1000.0 / w
    return kp * s + np.array([0.0, (1002.0 - h * s) / 2.0])


def test_several_people_are_written_per_track_id(runs, tmp_path, tiny_dataset):
    from liftbench.wild.keypoints import coco17_from_h36m
    from liftbench.wild.predict import predict_file

    model = ALL_LIFTERS[-1]
    a, b = [s for s in tiny_dataset.split("test") if s.n_frames >= 20][:2]
    records = []
    for track, seq, offset in ((5, a, 0), (9, b, 3)):  # person 9 appears from frame 3, and skips frame 6
        coco = coco17_from_h36m(seq.keypoints_2d.astype(np.float64))
        for f in range(20):
            if track == 9 and f == 6:
                continue
            records.append({"image_id": f + offset, "track_id": track, "category_id": 1, "score": 1.0,
                            "keypoints": np.concatenate([coco[f], np.ones((17, 1))], axis=1).reshape(-1).tolist()})
    (tmp_path / "two.json").write_text(json.dumps(records))
    done = predict_file(runs[model], tmp_path / "two.json", width=1000, height=1002, device="cpu")
    assert [p.person_id for p in done.people] == [5, 9]
    assert [p.npz_path.name for p in done.people] == ["two_3d_person5.npz", "two_3d_person9.npz"]
    with np.load(done.people[1].npz_path) as z:
        assert z["frames"].tolist() == list(range(3, 23)) and z["filled"][9 - 3].all()  # frame 9 = row 6
        assert not z["filled"][[0, 1, 2, 4]].any()
        meta = json.loads(str(z["meta"]))
        single = z["poses_3d"]
    assert meta["frames"]["without_person"] == [[9, 9]] and meta["person"]["identified_by"] == "track_id"
    assert done.people[1].n_frames_without_person == 1
    with np.load(done.people[0].npz_path) as z:
        assert z["frames"].tolist() == list(range(20)) and not np.allclose(z["poses_3d"], single)


def test_render_writes_an_animation(runs, tmp_path, tiny_dataset):
    pytest.importorskip("liftbench.wild.show", reason="liftbench.wild.show (issue 17 part 4) is not in this tree yet")
    pytest.importorskip("matplotlib", reason="rendering needs matplotlib")
    from liftbench.wild.predict import predict_file

    seq = tiny_dataset.split("test")[0]
    np.savez(tmp_path / "c.npz", keypoints=seq.keypoints_2d[:6], width=1000, height=1002)
    done = predict_file(runs[ALL_LIFTERS[0]], tmp_path / "c.npz", layout="h36m", device="cpu",
                        render=tmp_path / "c.png")
    assert done.people[0].render_path == tmp_path / "c.png" and (tmp_path / "c.png").stat().st_size > 0




def test_bad_input_is_one_line_and_exit_2(runs, run_cli, tmp_path):
    run = runs[ALL_LIFTERS[0]]
    good = tmp_path / "good.json"
    good.write_text(json.dumps([{"image_id": 0, "keypoints": [float(v) for v in range(1, 52)]}]))
    (tmp_path / "empty.json").write_text("[]")
    (tmp_path / "nan.json").write_text(json.dumps([{"image_id": 0, "keypoints": [float("nan")] * 51}]))
    (tmp_path / "h26.json").write_text(json.dumps([{"image_id": 0, "keypoints": [1.0] * 78}]))
    (tmp_path / "what.json").write_text(json.dumps({"frames": []}))
    (tmp_path / "norun").mkdir()
    cases = [
        ((run, good), ["does not store the image size", "--width W --height H"]),
        ((run, tmp_path / "empty.json", "--width", "9", "--height", "9"), ["empty JSON"]),
        ((run, tmp_path / "nan.json", "--width", "9", "--height", "9"), ["NaN"]),
        ((run, tmp_path / "h26.json", "--format", "coco", "--width", "9", "--height", "9"),
         ["26 keypoints per person", "--format coco expects 17", "use --format halpe"]),
        ((run, tmp_path / "what.json", "--width", "9", "--height", "9"), ["Cannot detect the keypoint format"]),
        ((tmp_path / "norun", good, "--width", "9", "--height", "9"), ["checkpoint", "does not exist"]),
        ((run, good, "--width", "9"), ["--width and --height go together"]),
        ((run, good, "--width", "9", "--height", "9", "--score-threshold", "-1"), ["--score-threshold"]),
        ((run, good, "--width", "9", "--height", "9", "--out", tmp_path / "x.json"), ["give a .npz file name"]),
        ((run, good, "--format", "yolov5"), ["--format 'yolov5' is unknown"]),
    ]
    for args, needles in cases:
        code, _, err = run_cli("predict", *args, "--device", "cpu")
        assert_one_line_error(code, err, *needles)
    code, _, err = run_cli("data", "export-2d", "tiny", "--subject", "S9", "--action", "Nope",
                           "--out", tmp_path / "a.json")
    assert_one_line_error(code, err, "no clip", "Walk 1")
