"""What the data layer reads from the user's paths: a missing, dangling or unreadable detector file is an
error naming the file (only ``gt`` is ever synthesised), OSErrors on caches are one line, and
``--data-dir`` says what each dataset reads."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from fixtures.h36m import CPN, CPN_FILE, assert_verify_matches_load, load_error, write_h36m_fixture

from liftbench.data import load_dataset
from liftbench.errors import DataError


@pytest.fixture
def h36m(tmp_path):
    write_h36m_fixture(tmp_path, keypoints=("gt", CPN))
    return tmp_path


# ---- item 3: only gt is ever synthesised ----------------------------------------------------------

def test_dangling_symlink_for_detections_is_an_error_naming_the_file(tmp_path, run_cli):
    write_h36m_fixture(tmp_path, keypoints=("gt",))
    link = tmp_path / CPN_FILE
    link.symlink_to(tmp_path / "unmounted" / "cpn.npz")  # a shared disk that is not mounted
    problems = assert_verify_matches_load(tmp_path, CPN)
    assert len(problems) == 1 and problems[0].startswith(f"{link}: ") and "symbolic link" in problems[0]
    code, out, err = run_cli("data", "info", "h36m", "--data-dir", tmp_path, "--keypoints", CPN)
    assert code == 2 and str(link) in err and "projected" not in out + err


def test_dangling_gt_symlink_is_not_replaced_by_a_projection(tmp_path):
    write_h36m_fixture(tmp_path, keypoints=())
    (tmp_path / "data_2d_h36m_gt.npz").symlink_to(tmp_path / "elsewhere.npz")
    assert str(tmp_path / "data_2d_h36m_gt.npz") in load_error(tmp_path, "gt")
    (tmp_path / "data_2d_h36m_gt.npz").unlink()  # no entry at all: projecting gt is the documented behaviour
    assert any("projected" in note for note in load_dataset("h36m", tmp_path, "gt").notes)


def test_missing_detection_file_is_an_error_naming_the_file(tmp_path, run_cli):
    write_h36m_fixture(tmp_path, keypoints=("gt",))
    problems = assert_verify_matches_load(tmp_path, CPN)
    assert problems[0].startswith(f"{tmp_path / CPN_FILE}: ")
    code, _, err = run_cli("train", "mlp", "--data", "h36m", "--data-dir", tmp_path, "--keypoints", CPN,
                           "--epochs", "1", "--out", tmp_path / "runs")
    assert code == 2 and str(tmp_path / CPN_FILE) in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.pt"))


def test_detection_path_that_is_a_directory_is_an_error(h36m):
    (h36m / CPN_FILE).unlink()
    (h36m / CPN_FILE).mkdir()
    assert "not a regular file" in assert_verify_matches_load(h36m, CPN)[0]


# ---- OSErrors on the user's paths ----------------------------------------------------------------

def test_cache_path_blocked_by_a_file(tmp_path, run_cli):
    (tmp_path / "mocap-mini").write_text("not a directory")  # the cache's own sub-directory is a file
    code, _, err = run_cli("data", "prepare", "mocap-mini", "--data-dir", tmp_path)
    assert code == 2 and str(tmp_path / "mocap-mini") in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("failure", [errno.EACCES, errno.EROFS, errno.ENOSPC])
def test_unwritable_cache_is_one_line_and_leaves_no_temp_file(tmp_path, monkeypatch, run_cli, failure):
    """Permission denied / read-only filesystem / disk full while writing the cache (simulated: tests run as root)."""
    import liftbench.data.mocap as mocap

    real_fsync = os.fsync

    def failing_fsync(fd):
        real_fsync(fd)
        raise OSError(failure, os.strerror(failure), str(tmp_path / "mocap-mini" / "v1"))
    monkeypatch.setattr(mocap.os, "fsync", failing_fsync)
    code, _, err = run_cli("data", "prepare", "mocap-mini", "--data-dir", tmp_path)
    assert code == 2 and os.strerror(failure) in err and str(tmp_path / "mocap-mini" / "v1") in err
    assert len(err.strip().splitlines()) == 1
    assert not [p for p in (tmp_path / "mocap-mini" / "v1").iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(DataError, match=os.strerror(failure)):
        load_dataset("mocap-mini", tmp_path)


def test_unreadable_h36m_file_is_one_line(h36m, monkeypatch):
    import liftbench.data.h36m_files as files

    real = files.load_npz

    def denied(path):
        if Path(path).name == CPN_FILE:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)
    monkeypatch.setattr(files, "load_npz", denied)
    problems = assert_verify_matches_load(h36m, CPN)
    assert problems[0].startswith(f"{h36m / CPN_FILE}: ") and "Permission denied" in problems[0]


# ---- item 11: what --data-dir means for each dataset ---------------------------------------------

def test_data_dir_help_says_what_each_dataset_reads():
    import typer.main

    from liftbench.cli import app

    command = typer.main.get_command(app)
    helps = {name: p.help for name, sub in command.commands.items() for p in getattr(sub, "params", [])
             if p.name == "data_dir"}
    assert "train" in helps
    for name, help_text in helps.items():
        h36m_part, _, mocap_part = help_text.partition("mocap-mini")
        assert "h36m" in h36m_part and "required" in h36m_part and "LIFTBENCH_DATA" not in h36m_part, name
        assert "LIFTBENCH_DATA" in mocap_part, name


def test_h36m_without_data_dir_says_what_to_pass(tmp_path, monkeypatch, run_cli):
    write_h36m_fixture(tmp_path / "h36m", keypoints=())
    monkeypatch.setenv("LIFTBENCH_DATA", str(tmp_path / "h36m"))  # a valid h36m directory, yet not read
    code, _, err = run_cli("train", "mlp", "--data", "h36m", "--epochs", "1", "--out", tmp_path / "runs")
    assert code == 2 and "--data-dir DIR" in err and "LIFTBENCH_DATA is not read for h36m" in err
