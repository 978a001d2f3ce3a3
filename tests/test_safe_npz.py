"""``liftbench.data.safe_npz.load_npz``: VideoPose3D-style pickled dicts load, code never runs."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy_format

from liftbench.data.safe_npz import load_npz
from liftbench.errors import DataError, UnsafeFileError


def _assert_same(a, b) -> None:
    """Deep equality of nested dict/list/array structures, including dtypes."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


def _videopose3d_like() -> tuple[dict, dict, dict]:
    rng = np.random.default_rng(0)
    p3d = {s: {a: rng.normal(size=(n, 32, 3)).astype(np.float32) for a, n in (("Directions", 7), ("Photo 1", 5))}
           for s in ("S1", "S11")}
    p2d = {s: {a: [rng.normal(size=(n, 17, 2)).astype(np.float32) for _ in range(4)]
               for a, n in (("Walking", 6), ("WalkDog 1", 3))} for s in ("S9",)}
    meta = {"layout_name": "h36m", "num_joints": 17,
            "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]],
            "np_scalar": np.float64(2.5), "np_int": np.int64(7), "a_set": {1, 2}, "tuple": (1, "x")}
    return p3d, p2d, meta


def test_roundtrip_videopose3d_dicts(tmp_path):
    p3d, p2d, meta = _videopose3d_like()
    np.savez_compressed(tmp_path / "d3.npz", positions_3d=p3d)
    np.savez_compressed(tmp_path / "d2.npz", positions_2d=p2d, metadata=meta)
    d3, d2 = load_npz(tmp_path / "d3.npz"), load_npz(tmp_path / "d2.npz")
    assert set(d3) == {"positions_3d"} and set(d2) == {"positions_2d", "metadata"}
    _assert_same(d3["positions_3d"], p3d)  # the 0-d object array is unwrapped to the dict itself
    _assert_same(d2["positions_2d"], p2d)
    _assert_same(d2["metadata"], meta)


def test_plain_arrays_never_touch_pickle(tmp_path, monkeypatch):
    arrays = {"f32": np.arange(24, dtype=np.float32).reshape(2, 3, 4), "i64": np.array([-1, 2**40]),
              "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)), "bool": np.array([True, False]),
              "text": np.array(["S1", "S11"]), "scalar": np.array(3.5), "empty": np.zeros((0, 17, 2)),
              "big_endian": np.arange(5, dtype=">i4")}
    np.savez(tmp_path / "plain.npz", **arrays)
    np.savez_compressed(tmp_path / "plain_c.npz", **arrays)

    def forbidden(*args, **kwargs):
        raise AssertionError("the default unpickler / np.load was called")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)  # our subclass was bound at import time
    monkeypatch.setattr(np, "load", forbidden)
    for name in ("plain.npz", "plain_c.npz"):
        got = load_npz(tmp_path / name)
        _assert_same(dict(sorted(got.items())), dict(sorted(arrays.items())))
        assert got["fortran"].flags["F_CONTIGUOUS"]


def test_object_arrays_load_without_the_default_unpickler(tmp_path, monkeypatch):
    p3d, _, _ = _videopose3d_like()
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = np.zeros(3), np.ones((2, 2))
    np.savez_compressed(tmp_path / "d.npz", positions_3d=p3d, ragged=ragged)
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("pickle.load called"))
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("np.load called"))
    got = load_npz(tmp_path / "d.npz")
    _assert_same(got["positions_3d"], p3d)
    assert got["ragged"].dtype == object and got["ragged"].shape == (2,)  # 1-d object arrays stay arrays
    _assert_same(got["ragged"][1], ragged[1])


# ---- malicious files ---------------------------------------------------------------------------

class _Shell:
    """Pickles as ``os.system(cmd)``: runs a shell command when unpickled by the stock unpickler."""

    def __init__(self, cmd: str):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


class _Open:
    """Pickles as ``open(path, 'w')``: creates a file when unpickled by the stock unpickler."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


class _NumpyFunction:
    """Pickles as ``numpy.frombuffer(...)``: a numpy name that is still not a data constructor."""

    def __reduce__(self):
        return (np.frombuffer, (b"\x00" * 8,))


def _npz_with_raw_object_member(path: Path, key: str, payload: bytes) -> None:
    """An npz whose member ``key`` is a 0-d object array with ``payload`` as its pickle stream."""
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": ()})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{key}.npy", buf.getvalue() + payload)


def _as_numpy1_pickle(obj: object, protocol: int) -> bytes:
    """Pickle ``obj`` as numpy 1.x does: ``numpy.core.multiarray`` names in GLOBAL opcodes (protocol <= 3)."""
    data = pickle.dumps(obj, protocol=protocol)
    assert b"numpy._core.multiarray\n" in data or b"numpy.core.multiarray\n" in data
    return data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


def test_shell_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned_shell"
    p3d, _, _ = _videopose3d_like()
    p3d["S1"]["Evil"] = _Shell(f"touch {marker}")  # hidden deep inside the dict, after real arrays
    np.savez_compressed(tmp_path / "evil.npz", positions_3d=p3d)
    with pytest.raises(UnsafeFileError, match=r"refuses to load '(posix|nt|os)\.system'") as err:
        load_npz(tmp_path / "evil.npz")
    assert str(tmp_path / "evil.npz") in str(err.value) and "regenerate it with numpy arrays only" in str(err.value)
    assert not marker.exists()


def test_open_payload_is_potent_with_np_load_but_not_with_load_npz(tmp_path):
    safe_marker, control_marker = tmp_path / "not_created", tmp_path / "created_by_np_load"
    np.savez_compressed(tmp_path / "evil.npz", positions_3d={"S1": _Open(str(safe_marker))})
    with pytest.raises(UnsafeFileError, match=r"refuses to load '(io|builtins)\.open'"):
        load_npz(tmp_path / "evil.npz")
    assert not safe_marker.exists()
    # positive control: the same kind of file really does run code under np.load(allow_pickle=True)
    np.savez_compressed(tmp_path / "control.npz", positions_3d={"S1": _Open(str(control_marker))})
    with np.load(tmp_path / "control.npz", allow_pickle=True) as z:
        z["positions_3d"].item()["S1"].close()
    assert control_marker.exists()


def test_numpy_names_outside_the_allow_list_are_refused(tmp_path):
    np.savez_compressed(tmp_path / "evil.npz", x={"a": _NumpyFunction()})
    with pytest.raises(UnsafeFileError, match=r"refuses to load 'numpy\.frombuffer'"):
        load_npz(tmp_path / "evil.npz")


@pytest.mark.parametrize("protocol", [2, 3])
def test_numpy1_module_paths_load(tmp_path, protocol):
    p3d, _, meta = _videopose3d_like()
    wrapped = np.empty((), dtype=object)
    wrapped[()] = {"p3d": p3d, "meta": meta}
    _npz_with_raw_object_member(tmp_path / "old.npz", "positions_3d", _as_numpy1_pickle(wrapped, protocol))
    got = load_npz(tmp_path / "old.npz")["positions_3d"]
    _assert_same(got["p3d"], p3d)
    _assert_same(got["meta"], meta)


@pytest.mark.parametrize("protocol", [2, 3])
def test_numpy1_module_paths_with_payload_are_refused(tmp_path, protocol):
    marker = tmp_path / "pwned_old"
    wrapped = np.empty((), dtype=object)
    wrapped[()] = {"S1": {"Walking": np.zeros((2, 32, 3), np.float32), "x": _Shell(f"touch {marker}")}}
    _npz_with_raw_object_member(tmp_path / "old_evil.npz", "positions_3d", _as_numpy1_pickle(wrapped, protocol))
    with pytest.raises(UnsafeFileError, match=r"system'"):
        load_npz(tmp_path / "old_evil.npz")
    assert not marker.exists()


def test_unsafe_is_a_data_error():
    assert issubclass(UnsafeFileError, DataError)


# ---- broken files ------------------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found") as err:
        load_npz(tmp_path / "nope.npz")
    assert str(tmp_path / "nope.npz") in str(err.value)


def test_not_a_zip(tmp_path):
    path = tmp_path / "garbage.npz"
    path.write_bytes(b"this is not a zip archive" * 10)
    with pytest.raises(DataError) as err:
        load_npz(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_archive(tmp_path, keep):
    p3d, _, _ = _videopose3d_like()
    np.savez_compressed(tmp_path / "full.npz", positions_3d=p3d, x=np.arange(1000.0))
    data = (tmp_path / "full.npz").read_bytes()
    path = tmp_path / "cut.npz"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(DataError) as err:
        load_npz(path)
    assert str(path) in str(err.value)


def test_corrupt_member_bytes(tmp_path):
    np.savez(tmp_path / "ok.npz", x=np.arange(4000.0))  # stored, not deflated: flip bytes inside the data
    data = bytearray((tmp_path / "ok.npz").read_bytes())
    data[2000:2010] = b"\xff" * 10
    path = tmp_path / "corrupt.npz"
    path.write_bytes(bytes(data))
    with pytest.raises(DataError) as err:
        load_npz(path)
    assert str(path) in str(err.value)


def test_member_shorter_than_its_header(tmp_path):
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (10, 17, 2)})
    with zipfile.ZipFile(tmp_path / "short.npz", "w") as z:
        z.writestr("x.npy", buf.getvalue() + b"\x00" * 100)
    with pytest.raises(DataError, match="truncated"):
        load_npz(tmp_path / "short.npz")


def test_garbage_pickle_stream(tmp_path):
    _npz_with_raw_object_member(tmp_path / "bad.npz", "positions_3d", b"\x80\x03this is not a pickle")
    with pytest.raises(DataError) as err:
        load_npz(tmp_path / "bad.npz")
    assert str(tmp_path / "bad.npz") in str(err.value)
