"""Output paths that cannot be written (a file, read-only, a full disk): one line, nothing partial left."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch
from fixtures.cli import assert_one_line_error

from liftbench._files import write_text_atomic
from liftbench.train import CHECKPOINT

# Whatever a test gives on top, a regression (the value accepted) trains for seconds, not hours.
QUICK = ["--data", "tiny", "--set", "epochs=1", "--set", "hidden_size=8", "--set", "batch_size=16", "--device", "cpu"]
TRAIN_ARGS = ["--data", "tiny", "--epochs", "1", "--set", "hidden_size=8", "--set", "batch_size=16", "--set", "lr=1e-3",
              "--device", "cpu"]


# ------------------------------------------------------------------ output paths and failed writes


def test_out_on_an_existing_file(tmp_path, run_cli, runs):
    file = tmp_path / "afile"
    file.write_text("x")
    code, _, err = run_cli("train", "mlp", *TRAIN_ARGS, "--out", file)
    assert_one_line_error(code, err, f"--out {file} is an existing file")
    code, _, err = run_cli("run", "ablation", "--out", file / "sub", *QUICK)
    assert_one_line_error(code, err, f"--out {file / 'sub'}", "which is a file")
    code, _, err = run_cli("evaluate", runs["done"], "--device", "cpu", "--results-dir", file)
    assert_one_line_error(code, err, f"--results-dir {file} is an existing file")
    assert file.read_text() == "x"


def test_out_on_a_read_only_place(tmp_path, run_cli, monkeypatch, runs):
    import os

    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: (False if Path(p) == ro and mode & os.W_OK
                                                             else real_access(p, mode, **kw)))
    code, _, err = run_cli("train", "mlp", *TRAIN_ARGS, "--out", ro / "out")
    assert_one_line_error(code, err, f"--out {ro / 'out'}", "not writable")
    code, _, err = run_cli("run", "ablation", "--out", ro, *QUICK)
    assert_one_line_error(code, err, f"--out {ro}", "not writable")
    code, _, err = run_cli("evaluate", runs["done"], "--device", "cpu", "--results-dir", ro)
    assert_one_line_error(code, err, f"--results-dir {ro}", "not writable")


def test_write_failing_with_erofs_is_one_line(tmp_path, run_cli, monkeypatch):
    """Where the probe cannot tell (a filesystem turned read-only mid-run), the OSError is still one line."""
    real_mkdir = Path.mkdir

    def mkdir(self, *a, **kw):
        if tmp_path / "out" in (self, *self.parents):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *a, **kw)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    code, _, err = run_cli("train", "mlp", *TRAIN_ARGS, "--out", tmp_path / "out")
    assert_one_line_error(code, err, "Read-only file system", str(tmp_path / "out"))


class _FullDisk:
    """A file object whose write stores a few bytes, then fails as a full disk does."""

    def __init__(self, fh):
        self.fh = fh

    def write(self, data):
        self.fh.write(data[:3])
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()


def test_atomic_write_on_a_full_disk_leaves_nothing(tmp_path, monkeypatch):
    import liftbench._files as files
    from liftbench.errors import OutputError

    target = tmp_path / "results.csv"
    target.write_text("old\n")
    monkeypatch.setattr(files, "open", lambda p, mode="r", **kw: _FullDisk(open(p, mode, **kw)), raising=False)
    with pytest.raises(OutputError) as info:
        write_text_atomic(target, "new rows\n")
    message = str(info.value)
    assert str(target) in message and "No space left on device" in message and "\n" not in message
    assert isinstance(info.value, OSError)  # callers that handle I/O errors keep handling it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]  # the .tmp is gone
    assert target.read_text() == "old\n"  # the old file is untouched


def test_checkpoint_on_a_full_disk_leaves_no_temp_file(tmp_path, run_cli, monkeypatch):
    real_save = torch.save

    def full_disk_save(obj, f, *a, **kw):
        if str(f).endswith(".tmp"):
            Path(f).write_bytes(b"PK\x03\x04partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", full_disk_save)
    code, _, err = run_cli("train", "mlp", *TRAIN_ARGS, "--out", tmp_path)
    assert_one_line_error(code, err, "checkpoint.pt", "No space left on device", "free disk space")
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    assert not (run_dir / CHECKPOINT).exists()
