"""Values a keypoint reader takes from a file are checked like values from the command line (issue 22 §2-4):
image sizes finite and >= 1 pixel, ids whole numbers in int64, arrays of the right shape; CSVs with a
byte-order mark keep their first frame; what is not a regular file is named as such. Every case made
013b506 accept a wrong value (mirrored poses, merged frames, a lost frame) or end in a traceback."""

from __future__ import annotations

import io
import json
import os
import tracemalloc

import numpy as np
import pytest

from liftbench.errors import DataError
from liftbench.wild.readers import read_keypoints

RNG = np.random.default_rng(3)


def _records(ids, n_points: int = 17) -> list[dict]:
    out = []
    for image_id in ids:
        xy = RNG.uniform(100, 900, size=(n_points, 2))
        flat = np.concatenate([xy, np.ones((n_points, 1))], axis=1).reshape(-1).tolist()
        out.append({"image_id": image_id, "category_id": 1, "keypoints": flat, "score": 0.9})
    return out


def _coco_dataset(path, width, height, n: int = 3):
    """A COCO dataset dict whose images have the given size (NaN written as JSON's NaN literal)."""
    doc = {"images": [{"id": i, "width": width, "height": height} for i in range(n)], "annotations": _records(range(n))}
    path.write_text(json.dumps(doc))
    return path


def _refused(path, *needles, fmt: str = "auto") -> str:
    with pytest.raises(DataError) as err:
        read_keypoints(path, fmt)
    message = str(err.value)
    assert "\n" not in message and str(path) in message, message
    for needle in needles:
        assert needle in message, message
    return message


@pytest.mark.parametrize("width, needle", [(float("nan"), "finite number"), (1e-300, ">= 1"), (-1920, ">= 1"),
                                           (0, ">= 1"), ("1920", "the text 1920"), ([1920], "a list"),
                                           (1e308, "<= 1000000")])
def test_coco_image_size_is_checked_like_the_width_option(tmp_path, width, needle):
    _refused(_coco_dataset(tmp_path / "coco.json", width, 1080), "images[0] width", needle)


def test_coco_image_size_that_is_valid_is_read(tmp_path):
    dets, _ = read_keypoints(_coco_dataset(tmp_path / "coco.json", 1920, 1080.0))
    assert (dets.width, dets.height) == (1920.0, 1080.0)


def _npz(path, **arrays):
    arrays.setdefault("keypoints", RNG.uniform(100, 900, size=(6, 17, 2)))
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("extra, needles", [
    ({"width": np.nan, "height": 1000.0}, ["member width", "finite number"]),
    ({"width": 1e-300, "height": 1000.0}, ["member width", ">= 1"]),
    ({"width": -1000.0, "height": 1000.0}, ["member width", ">= 1"]),  # 013b506 mirrored the poses
    ({"width": np.array([1000.0, 2.0]), "height": 1000.0}, ["member width", "shape (2,)"]),
    ({"width": np.array("1000"), "height": 1000.0}, ["member width", "the text 1000"]),
    ({"width": 1000.0}, ["member height", "single number"]),  # one of the two: 013b506 ignored it
    ({"scores": np.ones((3, 4))}, ["'scores' has shape (3, 4)", "(1, 6, 17)"]),
    ({"frames": np.array([0, 1, 2, 3, 4, 5.5])}, ["member 'frames'", "whole numbers"]),
    ({"frames": np.array([0, 1, 2, 3, 4, 2.0**70])}, ["member 'frames'", "2**63"]),
    ({"frames": np.array([0, 1, 1, 2, 3, 4])}, ["repeats a frame"]),
    ({"layout": np.array(["coco17", "h36m"])}, ["member 'layout' must be one name"]),
])
def test_npz_members_are_checked(tmp_path, extra, needles):
    _refused(_npz(tmp_path / "k.npz", **extra), *needles)


def test_npz_with_valid_members_is_read(tmp_path):
    frames = np.array([3, 4, 5, 7, 8, 9])
    dets, _ = read_keypoints(_npz(tmp_path / "k.npz", width=np.float32(640), height=480, frames=frames))
    assert (dets.width, dets.height) == (640.0, 480.0) and dets.frames.tolist() == frames.tolist()


@pytest.mark.parametrize("ids", [[0.5, 1.5, 2.5], [1.0, 1.5, 2.0]])
def test_fractional_image_ids_are_refused_not_merged(tmp_path, ids):
    """013b506 turned 0.5, 1.5, 2.5 into one frame (and three one-frame 'people')."""
    path = tmp_path / "ids.json"
    path.write_text(json.dumps(_records(ids)))
    _refused(path, "record", "image_id must be a whole number")


@pytest.mark.parametrize("ids, needle", [([10**30, 1, 2], "<= 9223372036854775807"),
                                         ([[0], [1], [2]], "must be a number or an image name"),
                                         (["img_" + "9" * 5000, "img_1", "img_2"], "does not fit in 64 bits")])
def test_ids_too_large_or_not_scalar_are_one_line(tmp_path, ids, needle):
    path = tmp_path / "ids.json"
    path.write_text(json.dumps(_records(ids)))
    _refused(path, needle)


def test_frame_number_too_large_in_a_file_name(tmp_path):
    folder = tmp_path / "openpose"
    folder.mkdir()
    (folder / "clip_000000000000.json").write_text(json.dumps({"people": []}))
    (folder / "clip_99999999999999999999999.json").write_text(json.dumps({"people": []}))
    with pytest.raises(DataError, match="does not fit in 64 bits") as err:
        read_keypoints(folder, "openpose")
    assert "clip_99999999999999999999999.json" in str(err.value)


def _csv_rows(n: int = 4) -> list[str]:
    return [",".join(f"{v:.1f}" for v in RNG.uniform(100, 900, size=34)) for _ in range(n)]


def test_csv_with_a_byte_order_mark_keeps_its_first_frame(tmp_path):
    """013b506 read '\\ufeff123.4' as text, took the first row for a header and renumbered the rest."""
    rows = _csv_rows()
    path = tmp_path / "k.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(rows).encode() + b"\n")
    dets, _ = read_keypoints(path)
    assert dets.frames.tolist() == [0, 1, 2, 3]
    assert np.allclose(dets.points[0, 0], [float(v) for v in rows[0].split(",")[:2]])


def test_csv_header_is_skipped_only_when_it_is_not_numeric(tmp_path):
    header = ",".join(f"{axis}{j}" for j in range(17) for axis in "xy")
    rows = _csv_rows(3)
    (tmp_path / "h.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    assert read_keypoints(tmp_path / "h.csv")[0].frames.tolist() == [0, 1, 2]
    typo = rows[0].split(",")
    typo[5] = "12.3.4"  # a damaged first data row is an error, not a header
    (tmp_path / "t.csv").write_text(",".join(typo) + "\n" + "\n".join(rows[1:]) + "\n")
    _refused(tmp_path / "t.csv", "12.3.4", "not a number")
    (tmp_path / "r.csv").write_text(rows[0] + "\n" + rows[1] + ",1.0\n")
    _refused(tmp_path / "r.csv", "data row 2 has 35 cells")


def test_inputs_that_are_not_regular_files_are_refused_before_reading(tmp_path):
    fifo = tmp_path / "keypoints.json"
    os.mkfifo(fifo)  # reading it would block forever
    _refused(fifo, "is a FIFO (named pipe), not a regular file")
    for fmt in ("coco", "npz"):
        with pytest.raises(DataError, match="is a FIFO"):
            read_keypoints(fifo, fmt)
    folder = tmp_path / "frames"
    folder.mkdir()
    os.mkfifo(folder / "frame_000001.json")
    _refused(folder, "frame_000001.json is a FIFO", fmt="openpose")
    (tmp_path / "dev.csv").symlink_to("/dev/zero")
    _refused(tmp_path / "dev.csv", "is a character device")


def test_deeply_nested_json_is_one_line(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    _refused(path, fmt="coco")


def test_npy_with_a_lying_header_is_refused_without_allocating(tmp_path):
    from numpy.lib import format as npy_format

    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (2**26, 17, 2)})
    path = tmp_path / "k.npy"
    path.write_bytes(buf.getvalue() + bytes(64))
    tracemalloc.start()
    try:
        _refused(path)
        assert tracemalloc.get_traced_memory()[1] < 16 << 20  # 013b506: np.load allocated the declared 17 GiB
    finally:
        tracemalloc.stop()
