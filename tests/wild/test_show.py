("``liftbench show`` / ``liftbench.wild.show.render``: files written with the expected frames and sizes; "
 "bad input is one line.")

from __future__ import annotations

import json

import numpy as np
import pytest
from fixtures.tiny import REST_POSE
from PIL import Image

from liftbench.errors import ConfigError, MissingExtraError
from liftbench.evaluate import Predictions
from liftbench.wild.show import LEFT_COLOUR, PANEL_INCHES, RIGHT_COLOUR, render

DPI = 20  # tiny images: rendering tests stay fast


def _clip(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pred, target, keypoints_2d) of n frames: a camera-frame pose (y down, z forward) moving a little."""
    pose = REST_POSE[:, [0, 2, 1]] * [1, -1, 1] + [0, 0, 4000]  # Z-up world -> camera: y = -height, 4 m away
    t = np.arange(n)[:, None, None]
    target = pose[None] + 10.0 * np.sin(0.3 * t + np.arange(17)[None, :, None])  # (n, 17, 3)
    pred = target + [5.0, 0.0, 0.0]
    kp = 1000.0 * target[..., :2] / target[..., 2:] + 500.0  # (n, 17, 2) pinhole pixels
    return pred, target, kp


def test_gif_has_one_frame_per_pose_and_three_panels(tmp_path):
    pred, target, kp = _clip(5)
    out = render(tmp_path / "a.gif", pred, keypoints_2d=kp, target=target, fps=10, title="t", dpi=DPI)
    with Image.open(out) as gif:
        assert gif.n_frames == 5
        assert gif.size == (round(3 * PANEL_INCHES * DPI), round(PANEL_INCHES * DPI))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def test_long_clips_are_subsampled_to_max_frames(tmp_path):
    pred, _, _ = _clip(12)
    out = render(tmp_path / "a.gif", pred, max_frames=5, dpi=DPI)  # stride ceil(12/5) = 3: frames 0 3 6 9
    with Image.open(out) as gif:
        assert gif.n_frames == 4
        assert gif.size == (round(PANEL_INCHES * DPI), round(PANEL_INCHES * DPI))  # prediction only


def test_png_strip_size_and_left_right_colours(tmp_path):
    from matplotlib.colors import to_rgb

    pred, target, _ = _clip(7)
    dpi = 40  # thin lines need a few pixels to keep their colour
    out = render(tmp_path / "s.png", pred, target=target, dpi=dpi)
    with Image.open(out) as png:
        # 5 frames as columns, 2 panels (prediction, ground truth) as rows
        assert png.size == (round(5 * PANEL_INCHES * dpi), round(2 * PANEL_INCHES * dpi))
        pixels = np.asarray(png.convert("RGB")).reshape(-1, 3).astype(float)
    for colour in (LEFT_COLOUR, RIGHT_COLOUR):
        rgb = 255 * np.array(to_rgb(colour))
        assert (np.abs(pixels - rgb).max(axis=1) < 20).sum() > 10, colour  # both sides drawn in their colour


def test_bad_extension_and_missing_ffmpeg(tmp_path, monkeypatch):
    pred, _, _ = _clip(3)
    with pytest.raises(ConfigError, match="unknown extension '.avi'"):
        render(tmp_path / "a.avi", pred)
    from matplotlib import animation

    monkeypatch.setattr(animation.writers, "is_available", lambda name: False)
    with pytest.raises(MissingExtraError, match="needs ffmpeg"):
        render(tmp_path / "a.mp4", pred)
    assert not (tmp_path / "a.mp4").exists()


def _predictions_file(path, n: int = 8) -> None:
    pred, target, _ = _clip(n)
    rows = [("S9", "Walking 1", 0), ("S9", "Walking 1", 1), ("S9", "Photo 1", 0)]
    Predictions(np.repeat([r[0] for r in rows], n), np.repeat([r[1] for r in rows], n),
                np.repeat([r[2] for r in rows], n), np.tile(np.arange(n), len(rows)),
                np.concatenate([pred] * 3).astype(np.float32),
                np.concatenate([target] * 3).astype(np.float32)).save(path)


def test_cli_show_predictions_video_and_frame_range(tmp_path, run_cli):
    _predictions_file(tmp_path / "predictions.npz")
    code, stdout, stderr = run_cli("show", tmp_path, "--subject", "S9", "--action", "TakingPhoto 1", "--camera", "0",
                                   "--frames", "2:6", "--dpi", DPI, "--out", tmp_path / "v.gif")
    assert code == 0, stderr
    assert "S9 Photo 1 cam0" in stdout and "frames 2-5" in stdout
    with Image.open(tmp_path / "v.gif") as gif:
        assert gif.n_frames == 4
        assert gif.size == (round(2 * PANEL_INCHES * DPI), round(PANEL_INCHES * DPI))


def test_cli_show_predict_output_with_2d(tmp_path, run_cli):
    pred, _, kp = _clip(6)
    filled = np.zeros((6, 17), bool)
    filled[2, 13] = True
    np.savez(tmp_path / "clip.npz", poses_3d=pred.astype(np.float32), keypoints_2d=kp.astype(np.float32),
             frames=np.arange(10, 16), filled=filled, joint_names=np.array(["j"] * 17),
             meta=np.array(json.dumps({"fps": 25.0})))
    code, stdout, stderr = run_cli("show", tmp_path / "clip.npz", "--frames", "11:", "--dpi", DPI,
                                   "--out", tmp_path / "c.gif")
    assert code == 0, stderr
    with Image.open(tmp_path / "c.gif") as gif:
        assert gif.n_frames == 5
        assert gif.size == (round(2 * PANEL_INCHES * DPI), round(PANEL_INCHES * DPI))  # 2D input + prediction
        assert gif.info["duration"] == 40  # 25 fps from the file's meta


@pytest.mark.parametrize("args, needle", [
    (["--subject", "S10"], "Unknown subject 'S10'"),
    (["--action", "Dancing"], "Unknown action of S9 'Dancing'"),
    (["--camera", "3"], "--camera 3: S9/Walking 1 has cameras 0, 1"),
    (["--frames", "20:30"], "--frames 20:30 selects no frame; this video has frames 0..7"),
    (["--frames", "5"], "--frames '5' is not a range"),
    (["--max-frames", "0"], "--max-frames must be >= 1"),
])
def test_cli_show_bad_input_is_one_line_exit_2(tmp_path, run_cli, args, needle):
    _predictions_file(tmp_path / "predictions.npz")
    code, stdout, stderr = run_cli("show", tmp_path / "predictions.npz", *args, "--out", tmp_path / "x.gif")
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and needle in stderr, stderr
    assert not (tmp_path / "x.gif").exists()


def test_cli_show_run_dir_without_predictions_and_bad_extension(tmp_path, run_cli):
    code, _, stderr = run_cli("show", tmp_path, "--out", tmp_path / "x.gif")
    assert code == 2 and "evaluate" in stderr and "--save-predictions" in stderr
    _predictions_file(tmp_path / "predictions.npz")
    code, _, stderr = run_cli("show", tmp_path, "--out", tmp_path / "x.webm")
    assert code == 2 and "unknown extension '.webm'" in stderr


def test_cli_show_adds_the_2d_input_from_the_dataset(tmp_path, run_cli, tiny_dataset):
    seq = next(s for s in tiny_dataset.split("test") if s.n_frames >= 10)
    n = seq.n_frames
    target = (seq.joints_3d - seq.joints_3d[:, :1]).astype(np.float32)
    Predictions(np.array([seq.subject] * n), np.array([seq.action] * n), np.full(n, seq.camera), np.arange(n),
                target, target).save(tmp_path / "predictions.npz")
    code, stdout, stderr = run_cli("show", tmp_path, "--data", "tiny", "--frames", "0:3", "--dpi", DPI,
                                   "--out", tmp_path / "d.gif")
    assert code == 0, stderr
    with Image.open(tmp_path / "d.gif") as gif:
        assert gif.n_frames == 3
        assert gif.size == (round(3 * PANEL_INCHES * DPI), round(PANEL_INCHES * DPI))  # 2D + prediction + truth
    from liftbench.wild.show import load_clip

    clip = load_clip(tmp_path, frames="2:5", data="tiny")
    np.testing.assert_array_equal(clip.keypoints_2d, seq.keypoints_2d[2:5])
    # a video the dataset does not have is named
    Predictions(np.array(["S7"] * n), np.array([seq.action] * n), np.full(n, seq.camera), np.arange(n),
                target, target).save(tmp_path / "predictions.npz")
    code, _, stderr = run_cli("show", tmp_path, "--data", "tiny", "--out", tmp_path / "e.gif")
    assert code == 2 and f"video S7/{seq.action}/{seq.camera} is not in dataset 'tiny'" in stderr
