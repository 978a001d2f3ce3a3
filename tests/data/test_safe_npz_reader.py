"""``liftbench.data.safe.npz.load_npz``: real files load bit-identically; crafted files are refused in one line,
without running code, crashing, recursing or allocating what the file merely declares."""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import struct
import sys
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy_format

from liftbench.data.safe.npz import load_npz
from liftbench.data.safe.pickle_vm import MAX_OPS
from liftbench.errors import DataError, UnsafeFileError

sys.path.insert(0, str(Path(__file__).parent))
from fixtures.h36m import write_h36m_fixture  # noqa: E402

MB = 1 << 20


def _assert_same(a, b, byte_order: bool = True) -> None:
    """Deep equality of nested dict/list/tuple/array structures, including types, dtypes and bytes
    (``byte_order=False``: arrays may differ in byte order only, as numpy's unpickler makes them native)."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _assert_same(a[k], b[k], byte_order)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y, byte_order)
    elif isinstance(a, np.ndarray) and not byte_order:
        assert a.dtype.newbyteorder("=") == b.dtype.newbyteorder("=") and a.shape == b.shape
        assert np.array_equal(a, b) and a.flags.f_contiguous == b.flags.f_contiguous
    elif isinstance(a, np.ndarray):
        assert a.dtype.str == b.dtype.str and a.shape == b.shape
        assert a.tobytes(order="A") == b.tobytes(order="A") and a.flags.f_contiguous == b.flags.f_contiguous
    else:
        assert a == b


def _np_load_all(path: Path) -> dict:
    """The independent reference: numpy's own reader, with the stock unpickler (trusted files only)."""
    with np.load(path, allow_pickle=True) as z:
        return {k: (z[k][()] if z[k].dtype == object and z[k].ndim == 0 else z[k]) for k in z.files}


def _videopose3d_like() -> tuple[dict, dict, dict]:
    rng = np.random.default_rng(0)
    p3d = {s: {a: rng.normal(size=(n, 32, 3)).astype(np.float32) for a, n in (("Directions", 7), ("Photo 1", 5))}
           for s in ("S1", "S11")}
    p2d = {s: {a: [rng.normal(size=(n, 17, 2)).astype(np.float32) for _ in range(4)]
               for a, n in (("Walking", 6), ("WalkDog 1", 3))} for s in ("S9",)}
    p2d["S9"]["Walking"][0] = None  # a missing camera, as in the fixture's S11 Directions
    meta = {"layout_name": "h36m", "num_joints": 17,
            "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]],
            "np_scalar": np.float64(2.5), "np_int": np.int64(7), "tuple": (1, "x"), "flag": True, "none": None,
            "big": 2**70, "neg": -5, "f": -1.5e-300, "nested": {("S1", 2): {"w": 1000, "h": 1002}},
            "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)), "be": np.arange(4, dtype=">i2"),
            "types": [np.zeros(2, t) for t in ("?", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4")]}
    return p3d, p2d, meta


def _object_member(path: Path, key: str, payload: bytes, compression: int = zipfile.ZIP_DEFLATED) -> None:
    """An npz whose member ``key`` is a 0-d object array with ``payload`` as its pickle stream."""
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": ()})
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        z.writestr(f"{key}.npy", buf.getvalue() + payload)


def _wrapped(obj: object) -> np.ndarray:
    wrapped = np.empty((), dtype=object)
    wrapped[()] = obj
    return wrapped


_PLACEHOLDER = "@@payload@@"


def _object_pickle(inner_ops: bytes, protocol: int = 3) -> bytes:
    """A numpy pickle of a 0-d object array whose item is whatever the opcodes ``inner_ops`` push."""
    data = pickle.dumps(_wrapped(_PLACEHOLDER), protocol=protocol)
    text = _PLACEHOLDER.encode()
    op = (b"\x8c" + bytes([len(text)]) if protocol >= 4 else b"X" + struct.pack("<I", len(text))) + text
    assert data.count(op) == 1
    return data.replace(op, inner_ops)


def _refused(path: Path, error: type, match: str) -> str:
    """Assert that loading ``path`` raises ``error`` with a one-line message naming the file."""
    with pytest.raises(error, match=match or None) as err:
        load_npz(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message, message
    return message


def _uni(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)


# ---- real files load exactly as numpy loads them ------------------------------------------------

@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_videopose3d_dicts_load_bit_identically(tmp_path, protocol):
    p3d, p2d, meta = _videopose3d_like()
    for key, value in (("positions_3d", p3d), ("positions_2d", p2d), ("metadata", meta)):
        _object_member(tmp_path / f"{key}.npz", key, pickle.dumps(_wrapped(value), protocol=protocol))
        got = load_npz(tmp_path / f"{key}.npz")
        _assert_same(got, _np_load_all(tmp_path / f"{key}.npz"))
        _assert_same(got[key], value, byte_order=False)
    got = load_npz(tmp_path / "positions_3d.npz")["positions_3d"]["S1"]["Directions"]
    got[0, 0, 0] = 1.0  # arrays are writable, as np.load's are


def test_numpy1_module_paths_load(tmp_path):
    """numpy 1.x wrote ``numpy.core.multiarray`` (not ``numpy._core``) in protocol-2 GLOBAL opcodes."""
    p3d, _, meta = _videopose3d_like()
    data = pickle.dumps(_wrapped({"p3d": p3d, "meta": meta}), protocol=2)
    assert b"numpy._core.multiarray\n" in data
    _object_member(tmp_path / "old.npz", "positions_3d", data.replace(b"numpy._core.", b"numpy.core."))
    _assert_same(load_npz(tmp_path / "old.npz")["positions_3d"], {"p3d": p3d, "meta": meta}, byte_order=False)


def test_h36m_fixture_files_load_like_np_load(tmp_path):
    written = write_h36m_fixture(tmp_path, subjects=("S1", "S11"), n_frames=20, keypoints=("gt", "cpn_ft_h36m_dbb"),
                                 s11_directions_missing_cam0=True)
    for path in written["files"]:
        _assert_same(load_npz(path), _np_load_all(path))


def test_plain_members_never_touch_pickle(tmp_path, monkeypatch):
    arrays = {"f32": np.arange(24, dtype=np.float32).reshape(2, 3, 4), "i64": np.array([-1, 2**40]),
              "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)), "bool": np.array([True, False]),
              "scalar": np.array(3.5), "empty": np.zeros((0, 17, 2)), "big_endian": np.arange(5, dtype=">i4"),
              "f16": np.arange(3, dtype=np.float16), "u8": np.arange(3, dtype=np.uint64)}
    np.savez(tmp_path / "plain.npz", **arrays)
    np.savez_compressed(tmp_path / "plain_c.npz", **arrays)
    reference = _np_load_all(tmp_path / "plain.npz")
    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, lambda *a, **k: pytest.fail("the stock unpickler was called"))
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("np.load was called"))
    for name in ("plain.npz", "plain_c.npz"):
        got = load_npz(tmp_path / name)
        _assert_same(dict(sorted(got.items())), dict(sorted(reference.items())))


def test_top_level_ragged_object_array_loads(tmp_path):
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = np.zeros(3), [np.ones((2, 2)), "x"]
    np.savez_compressed(tmp_path / "d.npz", ragged=ragged)
    got = load_npz(tmp_path / "d.npz")["ragged"]
    assert got.dtype == object and got.shape == (2,)
    _assert_same(list(got), list(ragged))


def test_legit_100mb_file_peaks_within_twice_its_arrays(tmp_path):
    """Plain member, protocol-3 pickle (numpy's), and protocol 2 (numpy 1.x), which spells the bytes as text."""
    big = np.arange(100 * MB // 4, dtype=np.float32)
    np.savez(tmp_path / "plain.npz", x=big)
    np.savez(tmp_path / "pickled.npz", positions_3d={"S1": {"Walking": big}})
    _object_member(tmp_path / "protocol2.npz", "positions_3d",
                   pickle.dumps(_wrapped({"S1": {"Walking": big}}), protocol=2), zipfile.ZIP_STORED)
    for name in ("plain.npz", "pickled.npz", "protocol2.npz"):
        tracemalloc.start()
        try:
            got = load_npz(tmp_path / name)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        array = got["x"] if name == "plain.npz" else got["positions_3d"]["S1"]["Walking"]
        assert np.array_equal(array, big) and array.dtype == big.dtype
        assert peak <= 2 * big.nbytes + 64 * MB, f"{name}: peak {peak / MB:.0f} MB"
        del got, array


# ---- what is not data is refused ----------------------------------------------------------------

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


def test_shell_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned_shell"
    p3d, _, _ = _videopose3d_like()
    p3d["S1"]["Evil"] = _Shell(f"touch {marker}")  # hidden deep inside the dict, after real arrays
    for protocol in (2, 3, 4):
        _object_member(tmp_path / "evil.npz", "positions_3d", pickle.dumps(_wrapped(p3d), protocol=protocol))
        _refused(tmp_path / "evil.npz", UnsafeFileError, r"refuses to load '(posix|nt|os)\.system'")
    assert not marker.exists()


def test_open_payload_is_potent_with_np_load_but_not_with_load_npz(tmp_path):
    safe_marker, control_marker = tmp_path / "not_created", tmp_path / "created_by_np_load"
    np.savez_compressed(tmp_path / "evil.npz", positions_3d={"S1": _Open(str(safe_marker))})
    _refused(tmp_path / "evil.npz", UnsafeFileError, r"refuses to load '(io|builtins)\.open'")
    assert not safe_marker.exists()
    # positive control: the same kind of file really does run code under np.load(allow_pickle=True)
    np.savez_compressed(tmp_path / "control.npz", positions_3d={"S1": _Open(str(control_marker))})
    with np.load(tmp_path / "control.npz", allow_pickle=True) as z:
        z["positions_3d"].item()["S1"].close()
    assert control_marker.exists()


@pytest.mark.parametrize("value, match", [
    ({1, 2}, "EMPTY_SET"), (b"raw", "raw byte buffer inside a container"), (bytearray(b"ab"), "builtins.bytearray"),
    (complex(1, 2), "builtins.complex"), (np.array(["S1"]), "dtype 'U2'"), (np.zeros(2, "c16"), "dtype 'c16'"),
    (np.zeros(2, [("x", "f8")]), "dtype 'V8'"), (_wrapped(None), "nested object array"),
    (np.frombuffer, "numpy.frombuffer"), (np.zeros(1, "f8").view("M8[s]"), "dtype 'M8'")])
def test_non_data_values_are_refused(tmp_path, value, match):
    np.savez(tmp_path / "bad.npz", metadata={"layout_name": "h36m", "x": [value]})
    _refused(tmp_path / "bad.npz", UnsafeFileError, match)


@pytest.mark.parametrize("array", [np.array(["S1", "S11"]), np.zeros(2, [("x", "<f8")]), np.zeros(3, "c8"),
                                   np.zeros(2, "V4"), np.zeros(2, "S3"), np.zeros(2, "f8").view("M8[s]"),
                                   np.zeros(2, "f16")])
def test_plain_members_of_non_numeric_dtypes_are_refused(tmp_path, array):
    np.savez(tmp_path / "bad.npz", x=array)
    _refused(tmp_path / "bad.npz", UnsafeFileError, "not admitted|not a plain numeric")


def _dtype_ops(typestr: str, state_ops: bytes) -> bytes:
    """numpy.dtype(typestr, False, True) followed by BUILD with the state the ops push."""
    return b"cnumpy\ndtype\n" + _uni(typestr) + b"\x89\x88\x87R" + state_ops + b"b"


def _array_ops(dtype_ops: bytes, shape: tuple[int, ...], data: bytes) -> bytes:
    """numpy's pickle of an ndarray: _reconstruct(ndarray, (0,), b'b') BUILD (1, shape, dtype, False, data)."""
    shape_ops = b"(" + b"".join(_int(d) for d in shape) + b"t"
    return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + _int(0) + b"\x85C\x01b\x87R"
            + b"(" + _int(1) + shape_ops + dtype_ops + b"\x89" + b"B" + struct.pack("<I", len(data)) + data
            + b"tb")


_OBJECT_FIELD = (b"(" + _int(3) + _uni("|") + b"N(" + _uni("x") + b"t}" + _uni("x")  # fields {'x': (dtype O, 0)}
                 + _dtype_ops("O8", b"(" + _int(3) + _uni("|") + b"NNN" + _int(-1) + _int(-1) + _int(63) + b"t")
                 + _int(0) + b"\x86s" + _int(8) + _int(1) + _int(63) + b"t")


@pytest.mark.parametrize("typestr", ["V8", "f8"])
def test_dtype_state_declaring_an_object_field_is_refused(tmp_path, typestr):
    """The segfault of issue 15: a dtype whose state makes numpy read 8 file bytes as a PyObject pointer
    (``np.load`` is not run on it: it would crash this process). ``V8`` is refused by its type string; a
    copied ``f8`` by its state, whose fields dict would have to hold a dtype."""
    payload = _object_pickle(_array_ops(_dtype_ops(typestr, _OBJECT_FIELD), (1,), b"\x41" * 8))
    pickletools.dis(payload, out=io.StringIO())  # a well-formed pickle: the refusal is about its content
    _object_member(tmp_path / "evil.npz", "positions_3d", payload)
    _refused(tmp_path / "evil.npz", UnsafeFileError, "dtype 'V8'" if typestr == "V8" else "dtype .*inside a container")


@pytest.mark.parametrize("state, match", [
    ((3, "<", None, None, None, -1, -1, 63), "byte order or flags"),
    ((3, "|", None, None, None, -1, -1, 0), "byte order"),
    ((3, "<", None, None, None, 16, 8, 0), "item size"), ((4, "<", None, None, None, -1, -1, 0, {"a": 1}), "metadata"),
    ((2, "<", None, None, None, -1, -1, 0), "version"), ((3, "<", (None,), None, None, -1, -1, 0), "subarray"),
    ((3, "<", None, ("x",), None, -1, -1, 0), "names"), ((3, "<", None, None, {}, -1, -1, 0), "fields"),
    ((3, "<", None, None, None, -1, -1), "layout")])
def test_unusual_dtype_states_are_refused(tmp_path, state, match):
    dtype = np.dtype("f8")
    payload = pickletools.optimize(pickle.dumps(_wrapped({"a": np.zeros(2, dtype)}), protocol=3))
    normal = pickletools.optimize(pickle.dumps(dtype.__reduce__()[2], protocol=3))[2:-1]  # the state's opcodes
    assert payload.count(normal) == 1
    crafted = pickletools.optimize(pickle.dumps(state, protocol=3))[2:-1]
    _object_member(tmp_path / "bad.npz", "metadata", payload.replace(normal, crafted))
    _refused(tmp_path / "bad.npz", UnsafeFileError, match)


@pytest.mark.parametrize("depth", [5000, 2_000_000])
def test_deeply_nested_tuple_key_is_refused(tmp_path, depth):
    """2 million deep overflowed the C stack while hashing; 5000 deep gave a RecursionError traceback."""
    ops = b"}" + _int(0) + b"\x85" * depth + b"Ns"  # {((((0,),),)...): None}
    _object_member(tmp_path / "deep.npz", "positions_3d", _object_pickle(ops))
    assert (tmp_path / "deep.npz").stat().st_size < 20_000
    start = time.perf_counter()
    _refused(tmp_path / "deep.npz", UnsafeFileError, "nests tuples more than 64 deep")
    assert time.perf_counter() - start < 5


def _put(index: int) -> bytes:
    return b"r" + struct.pack("<I", index)  # LONG_BINPUT, far above the memo indices of the wrapper pickle


def _get(index: int) -> bytes:
    return b"j" + struct.pack("<I", index)


@pytest.mark.parametrize("ops, match", [
    (b"]" * 100 + b"a" * 99, "nests containers more than 64 deep"),
    (b"]" + _put(5000) + _get(5000) + b"a", "includes itself"),  # L = []; L.append(L)
    (b"}" + _int(1) + b"]\x86Ns", "dict key that is not a plain value"),  # {(1, []): None}
    (b"}" + b"]" + b"Ns", "dict key that is not a plain value|unhashable|dict key of type list"),
    (b"]" + _int(1) + b"0a", "opcode POP"),
    (b"}" + _uni("k") + b"C\x03abcs", "raw byte buffer inside a container"),
    (b"]" + b"cnumpy\nndarray\na", "class or function inside a container"),
])
def test_structures_that_are_not_plain_data_are_refused(tmp_path, ops, match):
    _refused(_write_ops(tmp_path / "bad.npz", ops), UnsafeFileError, match)


def test_list_filled_through_the_memo_after_it_was_stored_is_checked(tmp_path):
    """X = [L]; then L (fetched from the memo) receives 70 nested lists: only the final walk sees the depth.
    X holds L twice, so the walk also meets a shared sub-list."""
    ops = b"]" + b"]" + _put(5000) + b"a" + _get(5000) + b"]" * 70 + b"a" * 70 + b"a"
    _refused(_write_ops(tmp_path / "bad.npz", ops), UnsafeFileError, "more than 64 deep")
    shallow = b"]" + b"]" + _put(5000) + b"a" + _get(5000) + b"]" * 3 + b"a" * 3 + b"a"
    inner = [[[[]]]]
    assert load_npz(_write_ops(tmp_path / "ok.npz", shallow))["metadata"] == [inner, inner]


def test_colliding_int_keys_are_refused(tmp_path):
    """ints that are multiples of 2**61 - 1 all hash to 0: a dict of them would be quadratic to build."""
    keys = b"".join(b"\x8a\x09" + (k * (2**61 - 1)).to_bytes(9, "little", signed=True) + b"N" for k in range(1, 70))
    _object_member(tmp_path / "bad.npz", "metadata", _object_pickle(b"}(" + keys + b"u"))
    _refused(tmp_path / "bad.npz", UnsafeFileError, "dict keys with one hash value")


def test_pickle_limits_hold_for_the_whole_file_not_each_member(tmp_path):
    """Many members that each stay under the opcode limit must not add up to a long load."""
    member = _object_pickle(b"](" + b"N" * (MAX_OPS // 40) + b"e")  # a list of None: ~MAX_OPS / 40 opcodes
    assert load_npz(_write_ops(tmp_path / "one.npz", b"](" + b"N" * (MAX_OPS // 40) + b"e"))["metadata"][0] is None
    header = io.BytesIO()
    npy_format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False, "shape": ()})
    with zipfile.ZipFile(tmp_path / "many.npz", "w", compression=zipfile.ZIP_DEFLATED) as z:
        for i in range(41):
            z.writestr(f"m{i}.npy", header.getvalue() + member)
    _refused(tmp_path / "many.npz", UnsafeFileError, f"more than {MAX_OPS} opcodes in the file")


def test_bytearray_of_3e9_is_refused_without_allocating(tmp_path):
    by_call = b"c__builtin__\nbytearray\n" + b"\x8a\x05" + (3 * 10**9).to_bytes(5, "little") + b"\x85R"
    by_opcode = b"\x96" + struct.pack("<Q", 3 * 10**9) + b"\x00" * 64
    for name, ops, match in (("call", by_call, "bytearray"), ("opcode", by_opcode, "runs past the end")):
        _object_member(tmp_path / f"{name}.npz", "positions_3d", _object_pickle(ops, protocol=5))
        assert (tmp_path / f"{name}.npz").stat().st_size < 1000
        tracemalloc.start()
        try:
            _refused(tmp_path / f"{name}.npz", DataError, match)
            assert tracemalloc.get_traced_memory()[1] < 16 * MB
        finally:
            tracemalloc.stop()


def test_raw_buffer_used_for_two_arrays_is_refused(tmp_path):
    data = struct.pack("<2d", 1.0, 2.0)
    dtype_ops = _dtype_ops("f8", b"(" + _int(3) + _uni("<") + b"NNN" + _int(-1) + _int(-1) + _int(0) + b"t")
    one = _array_ops(dtype_ops, (2,), data)
    assert load_npz(_write_ops(tmp_path / "ok.npz", b"]" + one + b"a"))["metadata"][0].tolist() == [1.0, 2.0]
    shared = one.replace(b"B" + struct.pack("<I", 16) + data, b"B" + struct.pack("<I", 16) + data + _put(5000))
    second = one.replace(b"B" + struct.pack("<I", 16) + data, _get(5000))
    _refused(_write_ops(tmp_path / "bad.npz", b"](" + shared + second + b"e"), UnsafeFileError, "two arrays")


@pytest.mark.parametrize("shape, nbytes, match", [((3,), 16, "gives 16 data bytes for an array that needs 24"),
                                                  ((-1,), 8, "shape"), ((2**50,), 8, "shape")])
def test_array_data_must_match_its_shape(tmp_path, shape, nbytes, match):
    dtype_ops = _dtype_ops("f8", b"(" + _int(3) + _uni("<") + b"NNN" + _int(-1) + _int(-1) + _int(0) + b"t")
    ops = _array_ops(dtype_ops, (0,), b"\x00" * nbytes)
    ops = ops.replace(b"(" + _int(0) + b"t", b"(" + b"".join(b"\x8a\x08" + struct.pack("<q", d) for d in shape) + b"t")
    _refused(_write_ops(tmp_path / "bad.npz", b"]" + ops + b"a"), UnsafeFileError, match)


def _write_ops(path: Path, ops: bytes) -> Path:
    _object_member(path, "metadata", _object_pickle(ops))
    return path


# ---- sizes: declared, real and trailing ---------------------------------------------------------

def _zip_member(path: Path, name: str, stream: bytes, declared: int, crc: int,
                method: int = zipfile.ZIP_DEFLATED) -> None:
    """A one-member zip written by hand, so that the declared uncompressed size can be anything."""
    fname = name.encode()
    local = struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, method, 0, 33, crc, len(stream), declared & 0xFFFFFFFF,
                        len(fname), 0) + fname
    central = struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, method, 0, 33, crc, len(stream),
                          declared & 0xFFFFFFFF, len(fname), 0, 0, 0, 0, 0, 0) + fname
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local) + len(stream), 0)
    path.write_bytes(local + stream + central + end)


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    npy_format.write_array(buf, array)
    return buf.getvalue()


@pytest.fixture(scope="module")
def zeros_bomb() -> tuple[bytes, bytes, int, int]:
    """(npy bytes of a valid array, raw deflate stream of them + 1.5 GiB of zeros, total size, CRC)."""
    head = _npy(np.arange(1000, dtype=np.float32).reshape(250, 4))
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH)
    zeros = bytes(16 * MB)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH) == block  # state reset: blocks repeat
    n_blocks = 96  # 1.5 GiB
    crc = zlib.crc32(head)
    for _ in range(n_blocks):
        crc = zlib.crc32(zeros, crc)
    return head, first + block * n_blocks + compressor.flush(), len(head) + n_blocks * len(zeros), crc


@pytest.mark.parametrize("honest", [True, False])
def test_zip_bomb_with_trailing_zeros_is_refused_quickly(tmp_path, zeros_bomb, honest):
    """1.8 MB on disk, a valid array followed by 1.5 GiB of zeros: refused without inflating it."""
    head, stream, total, crc = zeros_bomb
    path = tmp_path / "bomb.npz"
    # a dishonest size comes with the CRC of what it declares, so that zipfile sees a valid member
    _zip_member(path, "positions_3d.npy", stream, total if honest else len(head), crc if honest else zlib.crc32(head))
    assert path.stat().st_size < 2 * MB
    with np.load(path) as z:  # control: numpy reads the array and ignores what follows
        assert z["positions_3d"].shape == (250, 4)
    start = time.perf_counter()
    tracemalloc.start()
    try:
        _refused(path, UnsafeFileError,
                 r"declares \d+ data bytes but its \(250, 4\) float32 array needs 4000 \(\d+ bytes of trailing data\)"
                 if honest else "more data than its declared size")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * MB and time.perf_counter() - start < 10


def test_trailing_bytes_after_array_data(tmp_path):
    with zipfile.ZipFile(tmp_path / "t.npz", "w") as z:
        z.writestr("x.npy", _npy(np.arange(6.0)) + b"\x00" * 10)
    _refused(tmp_path / "t.npz", UnsafeFileError,
             r"declares 58 data bytes but its \(6,\) float64 array needs 48 \(10 bytes of trailing data\)")


def test_trailing_bytes_after_pickle_stop(tmp_path):
    _object_member(tmp_path / "t.npz", "positions_3d", pickle.dumps(_wrapped({"S1": {}}), protocol=3) + b"\x00" * 7)
    _refused(tmp_path / "t.npz", UnsafeFileError, r"7 bytes of trailing data after the pickle's STOP")


@pytest.mark.parametrize("delta, error, match", [
    (-8, UnsafeFileError, "declares 40 data bytes but .* needs 48 .the member is too short"),
    (+8, UnsafeFileError, "declares 56 data bytes"), (-150, DataError, "truncated")])
def test_declared_size_must_match_the_member(tmp_path, delta, error, match):
    content = _npy(np.arange(6.0))
    path = tmp_path / "sizes.npz"
    _zip_member(path, "x.npy", content, len(content) + delta, zlib.crc32(content), zipfile.ZIP_STORED)
    _refused(path, error, match)


def test_declared_size_beyond_the_stream_is_truncation(tmp_path):
    content = _npy(np.arange(6.0))
    header = content[: len(content) - 48]
    header = header.replace(b"(6,)", b"(7,)")  # header now wants 56 bytes, declared size says so, stream has 48
    path = tmp_path / "short.npz"
    stream = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = header + content[-48:]
    _zip_member(path, "x.npy", stream.compress(body) + stream.flush(), len(body) + 8, zlib.crc32(body))
    _refused(path, DataError, "truncated")


def test_huge_header_length_is_refused_before_reading(tmp_path):
    with zipfile.ZipFile(tmp_path / "h.npz", "w") as z:
        z.writestr("x.npy", b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**31) + b"{}")
    _refused(tmp_path / "h.npz", UnsafeFileError, "header of 2147483648 bytes")


def test_lzma_members_are_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "l.npz", "w", compression=zipfile.ZIP_LZMA) as z:
        z.writestr("x.npy", _npy(np.arange(3.0)))
    _refused(tmp_path / "l.npz", UnsafeFileError, "compression method 14")


# ---- broken files --------------------------------------------------------------------------------

def test_missing_file(tmp_path):
    _refused(tmp_path / "nope.npz", DataError, "does not exist")


def test_not_a_zip(tmp_path):
    path = tmp_path / "garbage.npz"
    path.write_bytes(b"this is not a zip archive" * 10)
    _refused(path, DataError, "not a valid .npz")


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_archive(tmp_path, keep):
    p3d, _, _ = _videopose3d_like()
    np.savez_compressed(tmp_path / "full.npz", positions_3d=p3d, x=np.arange(1000.0))
    data = (tmp_path / "full.npz").read_bytes()
    path = tmp_path / "cut.npz"
    path.write_bytes(data[: int(len(data) * keep)])
    _refused(path, DataError, "")


def test_corrupt_member_bytes(tmp_path):
    np.savez(tmp_path / "ok.npz", x=np.arange(4000.0))  # stored, not deflated: flip bytes inside the data
    data = bytearray((tmp_path / "ok.npz").read_bytes())
    data[2000:2010] = b"\xff" * 10
    path = tmp_path / "corrupt.npz"
    path.write_bytes(bytes(data))
    _refused(path, DataError, "CRC|corrupt")


def test_garbage_pickle_stream(tmp_path):
    _object_member(tmp_path / "bad.npz", "positions_3d", b"\x80\x03this is not a pickle")
    _refused(tmp_path / "bad.npz", DataError, "")


def test_unsafe_is_a_data_error():
    assert issubclass(UnsafeFileError, DataError)
