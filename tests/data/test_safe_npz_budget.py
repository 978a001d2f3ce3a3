"""The memory bound of the safe ``.npz`` reader is structural (issue 22 §1): every byte the interpreter
materialises is charged to one budget per file before it is allocated, a value used as array data is
consumed once, and the stack and memo have limits. Each crafted file here made the reader of 013b506
allocate far more than the file holds (or have no limit at all); peaks are measured with tracemalloc.
"""

from __future__ import annotations

import io
import pickle
import struct
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy_format

from liftbench.data.safe import budget as budget_module
from liftbench.data.safe import npz as npz_module
from liftbench.data.safe.budget import MAX_MEMO, MAX_STACK
from liftbench.data.safe.npz import load_members, load_npy, load_npz
from liftbench.errors import DataError, UnsafeFileError

MB = 1 << 20


def _object_npz(path: Path, payload: bytes, key: str = "positions_3d") -> Path:
    """An npz (deflated) whose member ``key`` is a 0-d object array with ``payload`` as its pickle."""
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": ()})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{key}.npy", buf.getvalue() + payload)
    return path


def _item(inner_ops: bytes) -> bytes:
    """A protocol-2 pickle of a 0-d object array whose item is what ``inner_ops`` push."""
    wrapped = np.empty((), dtype=object)
    wrapped[()] = "@@item@@"
    return pickle.dumps(wrapped, protocol=2).replace(_text(b"@@item@@"), inner_ops)


def _text(data: bytes) -> bytes:
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def _peak(fn) -> tuple[BaseException | None, int, float]:
    """(the exception ``fn`` raised or None, tracemalloc peak in bytes, seconds)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        fn()
        raised = None
    except Exception as exc:  # noqa: BLE001  (returned to the test, which asserts its type)
        raised = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return raised, peak, time.perf_counter() - start


def _encode_copies(text_len: int, repeats: int) -> bytes:
    """The issue's file: one text memoised, then ``_codecs.encode(memo[text], 'latin1')`` ``repeats`` times;
    the copies pile up on the stack (they need not reach the result)."""
    return (b"\x80\x02c_codecs\nencode\nq\x00" + _text(b"a" * text_len) + b"q\x01U\x06latin1q\x02("
            + b"h\x00h\x01h\x02\x86R" * repeats + b".")


def test_memoised_text_copied_by_many_reduces_stays_within_the_bound(tmp_path):
    path = _object_npz(tmp_path / "copies.npz", _encode_copies(1 * MB, 300))
    assert path.stat().st_size < 4000  # 300 MiB of copies from a ~1.5 KB file on 013b506
    raised, peak, took = _peak(lambda: load_npz(path))
    assert isinstance(raised, UnsafeFileError), raised
    assert "one text as the data of two arrays" in str(raised) and str(path) in str(raised)
    assert peak < 2 * MB + 64 * MB and took < 5, (peak / MB, took)


def test_text_used_as_array_data_twice_is_refused(tmp_path):
    """Protocol-2 array data spelled as a text, fetched from the memo for a second array."""
    data = bytes(range(256)) * 8  # 2048 bytes: 256 float64
    dtype = b"cnumpy\ndtype\nX\x02\x00\x00\x00f8\x89\x88\x87R(J\x03\x00\x00\x00X\x01\x00\x00\x00<NNNJ\xff\xff\xff" \
            b"\xffJ\xff\xff\xff\xffJ\x00\x00\x00\x00tb"

    def array(data_ops: bytes) -> bytes:
        return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nJ\x00\x00\x00\x00\x85U\x01b\x87R(J\x01\x00"
                b"\x00\x00(J\x00\x01\x00\x00t" + dtype + b"\x89" + data_ops + b"tb")

    text = _text(data.decode("latin1").encode("utf-8"))
    one = _item(b"](" + array(text) + b"e")
    assert load_npz(_object_npz(tmp_path / "ok.npz", one))["positions_3d"][0].tobytes() == data
    two = _item(b"](" + array(text + b"r\x10\x27\x00\x00") + array(b"j\x10\x27\x00\x00") + b"e")
    with pytest.raises(UnsafeFileError, match="one text as the data of two arrays"):
        load_npz(_object_npz(tmp_path / "bad.npz", two))


def test_small_copies_are_charged_to_the_budget(tmp_path, monkeypatch):
    """Texts of <= 256 bytes may be reused (numpy's one-character typecodes are), but every copy is charged:
    with a 1 MiB slack, 20,000 copies of a 200-byte text pass the bound and are refused."""
    monkeypatch.setattr(budget_module, "SLACK", 1 * MB)
    path = _object_npz(tmp_path / "small.npz", _encode_copies(200, 20_000))
    with pytest.raises(UnsafeFileError, match=r"more than 2 x the 0\.\d MiB of data it holds \+ 1 MiB"):
        load_npz(path)


def test_the_stack_has_a_limit(tmp_path):
    path = _object_npz(tmp_path / "stack.npz", b"\x80\x02(" + b"N" * (MAX_STACK + 1) + b"t.")
    with pytest.raises(UnsafeFileError, match=f"more than {MAX_STACK} entries on the pickle stack"):
        load_npz(path)


def test_the_memo_has_a_limit(tmp_path):
    path = _object_npz(tmp_path / "memo.npz", b"\x80\x04N" + b"\x94" * (MAX_MEMO + 1) + b".")
    with pytest.raises(UnsafeFileError, match=f"more than {MAX_MEMO} memo entries"):
        load_npz(path)


def _lying_npy(shape: tuple[int, ...]) -> bytes:
    """A .npy whose header declares ``shape`` float64 but which holds 64 data bytes."""
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buf.getvalue() + bytes(64)


def test_load_members_never_allocates_a_declared_size(tmp_path):
    """013b506 read plain members with np.load, which allocates the declared 1 GiB before reading."""
    path = tmp_path / "lie.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("poses_3d.npy", _lying_npy((2**27,)))
    raised, peak, _ = _peak(lambda: load_members(path))
    assert isinstance(raised, DataError) and str(path) in str(raised), raised
    assert peak < 16 * MB, peak / MB


def test_load_npy_never_allocates_a_declared_size(tmp_path):
    path = tmp_path / "lie.npy"
    path.write_bytes(_lying_npy((2**27,)))
    raised, peak, _ = _peak(lambda: load_npy(path))
    assert isinstance(raised, DataError) and str(path) in str(raised), raised
    assert peak < 16 * MB, peak / MB
    good = np.arange(12, dtype=">i4").reshape(3, 4)
    np.save(tmp_path / "good.npy", good)
    assert np.array_equal(load_npy(tmp_path / "good.npy"), good)


def test_load_members_reads_text_members_like_np_load(tmp_path):
    arrays = {"keys": np.array(["S9/Walking", "S11/Sitting 1"]), "raw": np.array([b"ab", b"c"]),
              "poses": np.arange(6.0).reshape(1, 2, 3), "meta": np.array('{"a": 1}')}
    np.savez_compressed(tmp_path / "p.npz", **arrays)
    got = load_members(tmp_path / "p.npz")
    with np.load(tmp_path / "p.npz") as z:
        for key in arrays:
            assert got[key].dtype == z[key].dtype and np.array_equal(got[key], z[key])
    with pytest.raises(UnsafeFileError, match="not admitted"):  # the VideoPose3D reader keeps refusing text
        load_npz(tmp_path / "p.npz")


def test_out_of_memory_while_reading_names_the_file(tmp_path, monkeypatch):
    """On a machine too small for an honest file, the error says which file (013b506: a bare MemoryError,
    which the CLI reported as 'use a smaller model')."""
    np.savez(tmp_path / "big.npz", x=np.arange(10.0))

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(npz_module.np, "frombuffer", no_memory)
    with pytest.raises(DataError, match="out of memory while reading it") as err:
        load_npz(tmp_path / "big.npz")
    assert str(tmp_path / "big.npz") in str(err.value)


def test_honest_protocol2_file_of_many_arrays_charges_at_most_twice_what_it_holds(tmp_path):
    """The budget admits real files: protocol 2 spells array bytes as text, which costs the text and its copy."""
    rng = np.random.default_rng(0)
    value = {f"S{s}": {f"A{a}": [rng.normal(size=(200, 17, 2)).astype(np.float32) for _ in range(4)]
                       for a in range(10)} for s in range(3)}
    wrapped = np.empty((), dtype=object)
    wrapped[()] = value
    path = _object_npz(tmp_path / "p2.npz", pickle.dumps(wrapped, protocol=2), key="positions_2d")
    seen = []
    original = budget_module.Budget.charge

    def spy(self, n, what, where=None):
        original(self, n, what, where)
        seen.append((self.charged, self.read))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(budget_module.Budget, "charge", spy)
        got = load_npz(path)["positions_2d"]
    assert np.array_equal(got["S2"]["A9"][3], value["S2"]["A9"][3])
    assert max(charged - 2 * read for charged, read in seen) < 8 * MB  # well inside the 64 MiB slack
