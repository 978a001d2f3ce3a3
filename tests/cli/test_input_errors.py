"""Hostile or broken input files through the real commands (issue 22 §2-4): every one ends in exit 2 and one
line on stderr naming the file (never a traceback, never a numpy warning line, never an all-NaN output),
and messages say what is wrong (a FIFO is not "missing", a full disk names the checkpoint, a key read
from a file cannot print a line of its own). Each case ended in a traceback, a wrong message or exit 0
on 013b506."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures.cli import assert_one_line_error

from liftbench.errors import DataError
from liftbench.results import rows_frame, write_rows

RNG = np.random.default_rng(5)
QUICK = ["--data", "tiny", "--set", "epochs=1", "--set", "hidden_size=8", "--set", "batch_size=16", "--device", "cpu"]


def _coco(path, records_xy: list[np.ndarray], **record) -> object:
    recs = []
    for i, xy in enumerate(records_xy):
        flat = np.concatenate([xy, np.ones((17, 1))], axis=1).reshape(-1).tolist()
        recs.append({"image_id": i, "category_id": 1, "keypoints": flat, "score": 1.0, **record})
    path.write_text(json.dumps(recs))
    return path


# ------------------------------------------------------------------ predict: derived arrays are checked finite


def test_predict_with_coordinates_that_overflow_writes_nothing(runs, run_cli, tmp_path):
    """1e308 px is finite in the file but not after the pixel mapping: 013b506 exited 0 with NaN poses."""
    xy = [RNG.uniform(100, 900, size=(17, 2)) for _ in range(6)]
    xy[2][0, 0] = 1e308
    path = _coco(tmp_path / "big.json", xy)
    code, _, err = run_cli("predict", runs["done"], path, "--width", "1000", "--height", "1000",
                           "--out", tmp_path / "out.npz")
    assert_one_line_error(code, err, str(path), "not finite")
    assert not list(tmp_path.glob("out*"))


@pytest.mark.parametrize("width", ["nan", "1e-300", "-1000"])
def test_predict_with_a_bad_image_size_in_the_file(runs, run_cli, tmp_path, width):
    path = tmp_path / "k.npz"
    np.savez(path, keypoints=RNG.uniform(100, 900, size=(6, 17, 2)), width=float(width), height=1000.0)
    code, _, err = run_cli("predict", runs["done"], path, "--out", tmp_path / "out.npz")
    assert_one_line_error(code, err, str(path), "member width")
    assert not list(tmp_path.glob("out*"))


def test_the_width_option_and_a_file_width_follow_one_rule(runs, run_cli, tmp_path):
    path = _coco(tmp_path / "k.json", [RNG.uniform(100, 900, size=(17, 2)) for _ in range(4)])
    code, _, err = run_cli("predict", runs["done"], path, "--width", "-1000", "--height", "1000")
    assert_one_line_error(code, err, "--width must be >= 1")


# ------------------------------------------------------------------ score / show: prediction files


def _predictions(path, **override):
    m = 4
    arrays = {"subject": np.array(["S9"] * m), "action": np.array(["Walking"] * m), "camera": np.zeros(m, np.int64),
              "frame": np.arange(m), "pred": np.zeros((m, 17, 3))}
    np.savez(path, **{**arrays, **override})
    return path


@pytest.mark.parametrize("override, needle", [
    ({"frame": np.array(["a", "b", "c", "d"])}, "member 'frame' must be a numeric array"),
    ({"frame": np.array(3)}, "member 'frame' has shape ()"),
    ({"frame": np.array([0, 1, 2.5, 3])}, "member 'frame' must hold whole numbers"),
    ({"pred": np.full((4, 17, 3), 1e300)}, "too large for float32"),
])
@pytest.mark.parametrize("command", ["score", "show"])
def test_prediction_members_are_checked(run_cli, tmp_path, override, needle, command):
    path = _predictions(tmp_path / "p.npz", **override)
    extra = ["--data", "tiny"] if command == "score" else ["--out", tmp_path / "x.gif"]
    code, _, err = run_cli(command, path, *extra)
    assert_one_line_error(code, err, str(path), needle)


def test_a_zip_member_with_the_encryption_flag_is_one_line(run_cli, tmp_path):
    buf = io.BytesIO()
    np.savez(buf, frame=np.arange(3))
    data = bytearray(buf.getvalue())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # general-purpose flag bit 0: encrypted
        data[data.find(signature) + offset] |= 1
    (tmp_path / "enc.npz").write_bytes(bytes(data))
    code, _, err = run_cli("score", tmp_path / "enc.npz", "--data", "tiny")
    assert_one_line_error(code, err, str(tmp_path / "enc.npz"), "encryption")


# ------------------------------------------------------------------ config and suite files, --set


def test_deeply_nested_config_toml(run_cli, tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text("[model]\nx = " + "[" * 3000 + "]" * 3000 + "\n")
    code, _, err = run_cli("train", "mlp", "--config", path, "--out", tmp_path / "out", *QUICK)
    assert_one_line_error(code, err, str(path), "nested deeper")


@pytest.mark.parametrize("value", ["1" * 100_000, "1" * 5000, "[" * 3000 + "]" * 3000])
def test_set_values_python_cannot_hold(run_cli, tmp_path, value):
    code, _, err = run_cli("train", "mlp", "--set", f"lr={value}", "--out", tmp_path / "out", *QUICK)
    assert_one_line_error(code, err, "--set value")


def test_config_integer_beyond_int64(run_cli, tmp_path):
    path = tmp_path / "big.toml"
    path.write_text("[train]\nlr = " + "9" * 400 + "\n")  # float() of it raises OverflowError
    code, _, err = run_cli("train", "mlp", "--config", path, "--out", tmp_path / "out", *QUICK)
    assert_one_line_error(code, err, "fits in 64 bits")


def _suite(path, body: str):
    path.write_text('name = "x"\nversion = 1\n' + body)
    return path


@pytest.mark.parametrize("body, needle", [
    ('[[variants]]\nname = "a"\nmodel = "mlp"\nparams = {x = ' + "[" * 3000 + "]" * 3000 + "}\n", "nested deeper"),
    ('[[variants]]\nname = "../../x"\nmodel = "mlp"\n', "the name ../../x is not allowed"),
    ('[[variants]]\nname = "a b"\nmodel = "mlp"\n', "the name a b is not allowed"),
    ('test_noise = [' + "9" * 400 + ']\n[[variants]]\nname = "a"\nmodel = "mlp"\n', "test_noise"),
    ('[[variants]]\nname = "a"\nmodel = "mlp"\ntrain = {lr = ' + "9" * 400 + "}\n", "finite number"),
    ('[[variants]]\nname = "a"\nmodel = "mlp"\n[presets."..".all.train]\nepochs = 1\n', "preset"),
])
def test_suite_files(run_cli, tmp_path, body, needle):
    path = _suite(tmp_path / "s.toml", body)
    code, _, err = run_cli("run", path, "--out", tmp_path / "out")
    assert_one_line_error(code, err, str(path), needle)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ not a regular file; messages


def test_a_fifo_is_named_as_a_fifo_not_as_missing(runs, run_cli, tmp_path):
    fifo = tmp_path / "in.json"
    os.mkfifo(fifo)  # opening it for reading would block forever
    for args in (["predict", runs["done"], fifo, "--width", "10", "--height", "10"],
                 ["score", fifo, "--data", "tiny"],
                 ["train", "mlp", "--config", fifo, "--out", tmp_path / "o", *QUICK]):
        code, _, err = run_cli(*args)
        assert_one_line_error(code, err, str(fifo), "is a FIFO")


def test_full_disk_during_train_names_the_checkpoint(run_cli, tmp_path, monkeypatch):
    """torch reports a full disk as a RuntimeError without the path; the message must name it."""
    import torch

    def full_disk(obj, f, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    monkeypatch.setattr(torch, "save", full_disk)
    code, _, err = run_cli("train", "mlp", "--out", tmp_path / "out", *QUICK)
    line = assert_one_line_error(code, err, "checkpoint", "free disk space")
    assert str(tmp_path / "out") in line
    assert not list((tmp_path / "out").rglob("*.tmp"))


def test_check_escapes_keys_read_from_files(run_cli, tmp_path):
    """A key holding a newline would print a line of its own: a fake verdict."""
    row = {"model": "mlp", "variant": "default", "seed": 0, "dataset": "d", "keypoints": "gt", "train_noise": 0.0,
           "test_noise": 0.0, "seq_len": 1, "metric": "mpjpe", "slice_type": "all", "slice": "action_mean",
           "value": 50.0, "unit": "mm", "higher_is_better": False, "status": "ok"}
    ref = write_rows(tmp_path / "ref.csv", rows_frame([row]))
    fake = "x\nPASS: every value within tolerance\n[green]ok[/]"
    cur = write_rows(tmp_path / "cur.csv", rows_frame([{**row, "model": fake}]))
    code, out, _ = run_cli("check", cur, "--reference", ref)
    assert code == 2
    lines = [line.strip() for line in out.splitlines()]
    assert not any(line.startswith("PASS") for line in lines), out
    assert "x\\x0aPASS: every value within tolerance" in out and "[green]ok[/]" in out


# ------------------------------------------------------------------ the last-resort rule and LIFTBENCH_DEBUG


def test_an_unexpected_error_while_reading_names_the_file_and_debug_shows_the_cause(runs, run_cli, tmp_path,
                                                                                    monkeypatch):
    """A reader bug triggered by a file is one line naming the file; LIFTBENCH_DEBUG=1 re-raises it with its
    original exception chained (the traceback)."""
    import liftbench.wild.readers as readers

    def broken(path, layout):
        raise KeyError("an internal detail")

    path = _coco(tmp_path / "k.json", [RNG.uniform(100, 900, size=(17, 2)) for _ in range(4)])
    monkeypatch.setitem(readers.READERS, "coco", broken)
    code, _, err = run_cli("predict", runs["done"], path, "--width", "1000", "--height", "1000")
    assert_one_line_error(code, err, str(path), "KeyError", "LIFTBENCH_DEBUG=1")
    monkeypatch.setenv("LIFTBENCH_DEBUG", "1")
    with pytest.raises(DataError) as exc:
        run_cli("predict", runs["done"], path, "--width", "1000", "--height", "1000")
    assert isinstance(exc.value.__cause__, KeyError)


def test_numpy_warnings_never_reach_stderr(runs, tmp_path):
    """1e308 px overflows in the pixel mapping and the float32 casts (013b506 printed three RuntimeWarning
    lines and exited 0). The command runs in a child process: in pytest, warnings are captured and never reach
    stderr. Its stderr is the one error line."""
    xy = [RNG.uniform(100, 900, size=(17, 2)) for _ in range(6)]
    xy[2][0, 0] = 1e308
    path = _coco(tmp_path / "big.json", xy)
    here = Path(__file__).resolve()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here.parents[1]), str(here.parents[2])])}
    env.pop("LIFTBENCH_DEBUG", None)
    code = "import sys, fixtures.tiny; from liftbench.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, "predict", str(runs["done"]), str(path), "--width", "1000",
                           "--height", "1000", "--out", str(tmp_path / "out.npz")], capture_output=True, text=True,
                          timeout=300, env=env, cwd=here.parents[2])
    assert_one_line_error(proc.returncode, proc.stderr, str(path))
    assert "Warning" not in proc.stderr
