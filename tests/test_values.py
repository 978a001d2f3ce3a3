"""``liftbench.values``: the one validation path for values from options, TOML and file fields, and the
capped readers of user files (issue 22 §2-4). Every case is a value a user or a file can really give."""

from __future__ import annotations

import os

import numpy as np
import pytest

from liftbench.errors import ConfigError, DataError
from liftbench.values import (
    INT64_MAX,
    finite_array,
    finite_number,
    float32_safe,
    frame_id,
    id_array,
    id_from_digits,
    identifier,
    image_size,
    load_json_capped,
    load_toml_capped,
    nesting_depth,
    parse_toml,
    printable,
    read_text_capped,
    reading,
    user_file,
)


@pytest.mark.parametrize("value, expected", [(3, 3), (3.5, 3.5), (np.float32(2.0), 2.0), (np.int64(-7), -7),
                                              (np.array(1.25), 1.25), (10**30, 10**30)])
def test_finite_number_accepts_plain_numbers(value, expected):
    got = finite_number(value, "x")
    assert got == expected and type(got) in (int, float)


@pytest.mark.parametrize("value, needle", [
    (float("nan"), "finite"), (float("inf"), "finite"), (True, "single number"), ("3", "the text 3"),
    ([1], "a list (1 items)"), (np.array([1.0, 2.0]), "shape (2,)"), (None, "single number"), ({"w": 1}, "dict"),
])
def test_finite_number_refuses_what_is_not_one_finite_number(value, needle):
    with pytest.raises(DataError, match="must be") as err:
        finite_number(value, "clip.json images[0].width")
    assert "clip.json images[0].width" in str(err.value) and needle in str(err.value)


def test_finite_number_range_and_error_class():
    assert finite_number(1, "--width", minimum=1) == 1
    with pytest.raises(ConfigError, match=r"--width must be >= 1, got 1e-300"):
        finite_number(1e-300, "--width", minimum=1, error=ConfigError)
    with pytest.raises(DataError, match="<= 10"):
        finite_number(11, "n", maximum=10)
    with pytest.raises(DataError, match="an integer of 333 bits"):  # str() of such an int raises in 3.11
        finite_number(10**100, "n", maximum=10)


@pytest.mark.parametrize("value, expected", [(0, 0), (7.0, 7), (np.uint32(5), 5), (INT64_MAX, INT64_MAX)])
def test_frame_id_accepts_whole_numbers_in_int64(value, expected):
    assert frame_id(value, "image_id") == expected


@pytest.mark.parametrize("value, needle", [(0.5, "whole number"), (1.5, "whole number"), (-1, ">= 0"),
                                           (2**63, "<= 9223372036854775807"), (10**30, "<= 9223372036854775807"),
                                           ("12", "the text"), ([3], "list"), (True, "single number")])
def test_frame_id_refuses_fractions_overflow_and_non_numbers(value, needle):
    with pytest.raises(DataError) as err:
        frame_id(value, "x.json record 3 image_id")
    assert needle in str(err.value) and "x.json record 3 image_id" in str(err.value)


def test_id_from_digits_checks_the_text_before_int():
    assert id_from_digits("000012", "f") == 12
    assert id_from_digits("9223372036854775807", "f") == INT64_MAX
    for digits in ("9223372036854775808", "1" * 5000):  # int("1" * 5000) raises ValueError in 3.11
        with pytest.raises(DataError, match="does not fit in 64 bits"):
            id_from_digits(digits, "frame_x.json")


def test_image_size_is_the_rule_for_options_and_files_alike():
    assert image_size(1920, 1080.0, "f") == (1920.0, 1080.0)
    for w, h in ((float("nan"), 10), (1e-300, 10), (-1920, 1080), (0, 10), (10, 2e6), ("1920", 1080), ([1], 2)):
        with pytest.raises(DataError, match="width|height"):
            image_size(w, h, "clip.json images[0]")
    with pytest.raises(ConfigError, match="^--width must be >= 1"):
        image_size(-5, 10, "", error=ConfigError, labels=("--width", "--height"))


def test_finite_array_shape_dtype_and_first_bad_index():
    out = finite_array([[1, 2], [3, 4]], "a", shape=(None, 2))
    assert out.dtype == np.float64 and out.tolist() == [[1, 2], [3, 4]]
    with pytest.raises(DataError, match=r"shape \(2, 2\), expected \(N, 3\)"):
        finite_array(np.zeros((2, 2)), "a", shape=(None, 3))
    with pytest.raises(DataError, match=r"NaN or infinite value at index \(1, 0\)"):
        finite_array([[1, 2], [np.nan, 4]], "a")
    for bad in (np.array(["a", "b"]), np.array([True, False]), [[1, 2], [3]], np.array([None], dtype=object)):
        with pytest.raises(DataError, match="numeric array"):
            finite_array(bad, "a")


def test_float32_safe_refuses_a_finite_float64_that_overflows():
    assert float32_safe([1.0, -3e38], "p").dtype == np.float32
    with pytest.raises(DataError, match=r"at index \(1,\) \(too large for float32\)"):
        float32_safe(np.array([1.0, 1e39]), "p")


def test_id_array():
    assert id_array([0, 2.0, 5], "frames").tolist() == [0, 2, 5]
    for bad, needle in (([0.5], "whole numbers"), ([-1], ">= 0"), ([np.nan], "whole numbers"), ([2.0**63], r"2\*\*63"),
                        (np.array([2**64 - 1], dtype=np.uint64), "64-bit"), (np.array(["1"]), "numeric")):
        with pytest.raises(DataError, match=needle):
            id_array(np.asarray(bad), "frames")
    with pytest.raises(DataError, match="shape"):
        id_array(np.zeros(()), "frames")


def test_identifier():
    for good in ("no_dropout", "lr=1e-3,bs=64", "T+5", "v1.2"):
        assert identifier(good, "v") == good
    for bad in ("../../x", "a/b", "..", "a..b", "", " x", "x\ny", ".hidden", "a" * 101, 5):
        with pytest.raises(ConfigError, match="not allowed"):
            identifier(bad, "suite.toml variant 1")


def test_printable_escapes_control_characters_and_cuts():
    assert printable("ok\nPASS: fake") == "ok\\x0aPASS: fake"
    assert printable("\x1b[31mred\u202e") == "\\x1b[31mred\\u202e"
    assert printable("a\\b") == "a\\\\b"  # reversible: a literal backslash is not an escape
    assert printable("x" * 100, 10) == "x" * 10 + "..."


def test_nesting_depth_is_iterative():
    deep: list = []
    for _ in range(100_000):  # far beyond the recursion limit
        deep = [deep]
    assert nesting_depth(deep, 64) == 65
    assert nesting_depth({"a": [1, {"b": 2}]}, 64) == 3
    assert nesting_depth(5, 64) == 0


def test_user_file_refuses_what_is_not_a_regular_file(tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="is a FIFO .named pipe., not a regular file"):  # never opened: no hang
        user_file(fifo, "a keypoint file", 100)
    with pytest.raises(DataError, match="is a character device"):
        user_file("/dev/zero", "a keypoint file", 100)
    with pytest.raises(DataError, match="is a directory"):
        user_file(tmp_path, "a keypoint file", 100)
    with pytest.raises(DataError, match="does not exist"):
        user_file(tmp_path / "nope", "a keypoint file", 100)
    (tmp_path / "big").write_bytes(b"x" * 101)
    with pytest.raises(DataError, match="101 bytes, over the 100 bytes limit"):
        user_file(tmp_path / "big", "a keypoint file", 100)
    link = tmp_path / "link"
    link.symlink_to("/dev/zero")
    with pytest.raises(DataError, match="character device"):
        read_text_capped(link, "a CSV", 100)


def test_text_is_utf8_with_an_optional_bom(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(b"\xef\xbb\xbf1,2\n")
    assert read_text_capped(path, "a CSV", 100) == "1,2\n"
    path.write_bytes(b"\xff\xfe1")
    with pytest.raises(DataError, match="not UTF-8 text"):
        read_text_capped(path, "a CSV", 100)


def test_json_depth_and_huge_numbers_are_one_line(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("[" * 100_000 + "]" * 100_000)  # json.loads raises RecursionError
    with pytest.raises(DataError, match="nested deeper than 64"):
        load_json_capped(path, "a JSON", 1 << 20)
    path.write_text("[" * 70 + "]" * 70)  # parses, but deeper than the limit
    with pytest.raises(DataError, match="nested deeper than 64"):
        load_json_capped(path, "a JSON", 1 << 20)
    path.write_text('{"id": ' + "1" * 5000 + "}")
    with pytest.raises(DataError, match="cannot be read"):
        load_json_capped(path, "a JSON", 1 << 20)
    path.write_text('\ufeff{"a": [1, 2]}', encoding="utf-8")
    assert load_json_capped(path, "a JSON", 1 << 20) == {"a": [1, 2]}


def test_toml_depth_digits_and_size(tmp_path):
    path = tmp_path / "a.toml"
    path.write_text("x = " + "[" * 5000 + "]" * 5000)
    with pytest.raises(ConfigError, match=f"{path}: TOML nested deeper"):
        load_toml_capped(path, "a config")
    path.write_text("a" + ".a" * 40 + " = 1")  # dotted keys nest without recursing
    with pytest.raises(ConfigError, match="nested deeper than 32"):
        load_toml_capped(path, "a config")
    with pytest.raises(ConfigError, match="cannot be read"):
        parse_toml("x = " + "1" * 100_000, "--set")
    path.write_text("x = 1\n" * 200_000)
    with pytest.raises(ConfigError, match="over the 1 MiB limit"):
        load_toml_capped(path, "a config")


def test_reading_names_the_file_and_keeps_the_cause():
    with pytest.raises(DataError) as err:
        with reading("clip.json", "COCO keypoints"):
            int("x")
    assert str(err.value).startswith("clip.json: cannot read it as COCO keypoints (ValueError")
    assert "LIFTBENCH_DEBUG=1" in str(err.value) and isinstance(err.value.__cause__, ValueError)
    with pytest.raises(DataError, match="out of memory while reading it"):
        with reading("big.npz"):
            raise MemoryError
    with pytest.raises(ConfigError, match="mine"):  # liftbench's own errors pass through unchanged
        with reading("x"):
            raise ConfigError("mine")
    with pytest.raises(ZeroDivisionError):  # not a reading error: a bug keeps its traceback
        with reading("x"):
            raise ZeroDivisionError
