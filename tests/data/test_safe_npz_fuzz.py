"""Fuzz ``load_npz``: mutated ``.npz`` files and pickle opcode streams, each loaded in a child process.

Whatever the bytes, the outcome must be success, or exit code 2 with exactly one line naming the
file: never a signal (segfault), a traceback, a hang, or memory beyond the bound of issues 15 and 22: the
child runs under a 1 GB address-space limit and reports its peak RSS, which may grow by at most twice
what the file really holds (its members inflated) + 64 MB. Besides random mutations, a generator of
reuse patterns (memo fetches, repeated reduces, arrays built from one memoised text, nested containers
of the same object) targets the budget. About 80 examples in all, derandomised, so CI stays fast and
reproducible.
"""

from __future__ import annotations

import io
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fixtures.mutation import mutate_bytes
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from numpy.lib import format as npy_format

ADDRESS_SPACE = 1 << 30  # RLIMIT_AS of the child
RSS_MARGIN_KB = 64 * 1024  # peak RSS growth allowed beyond twice what the file holds
LOAD_SECONDS = 5.0

# The child imports only the loader: a stub ``liftbench.data`` package skips the dataset registry
# (scipy, mocap), which has nothing to do with reading a file and would slow every example down.
_CHILD = r"""
import os, resource, sys, time, types
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import liftbench
package = types.ModuleType("liftbench.data")
package.__path__ = [os.path.join(os.path.dirname(liftbench.__file__), "data")]
sys.modules["liftbench.data"] = package
from liftbench.data.safe.npz import load_npz
from liftbench.errors import LiftbenchError
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
    load_npz(sys.argv[1])
    print("OK")
    code = 0
except LiftbenchError as exc:
    print(str(exc))
    code = exc.exit_code
took = time.perf_counter() - start
print("STATS", base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, took, file=sys.stderr)
sys.exit(code)
"""

SETTINGS = settings(derandomize=True, deadline=None, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


def _load_in_child(path: Path) -> str:
    """Load ``path`` in a fresh interpreter; assert the outcome contract; return the one output line."""
    env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(ADDRESS_SPACE)], capture_output=True,
                          text=True, timeout=120, env=env)
    out_lines = proc.stdout.splitlines()
    err_lines = proc.stderr.splitlines()
    context = f"rc={proc.returncode}\nstdout={proc.stdout[-2000:]}\nstderr={proc.stderr[-3000:]}"
    assert proc.returncode in (0, 2), context  # negative: a signal; 1: an uncaught exception
    assert len(out_lines) == 1 and len(err_lines) == 1 and err_lines[0].startswith("STATS"), context
    if proc.returncode == 0:
        assert out_lines == ["OK"], context
    else:
        assert out_lines[0].startswith(str(path)), context
    base_kb, peak_kb, took = err_lines[0].split()[1:]
    assert int(peak_kb) - int(base_kb) <= RSS_MARGIN_KB + 2 * _holds(path) // 1024, context
    assert float(took) < LOAD_SECONDS, context
    return out_lines[0]


def _holds(path: Path) -> int:
    """What a file really holds: its members' uncompressed sizes (when the zip directory reads), else its size."""
    try:
        with zipfile.ZipFile(path) as z:
            inflated = sum(info.file_size for info in z.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        inflated = 0
    return max(inflated, path.stat().st_size)


def _wrapped(obj: object) -> np.ndarray:
    wrapped = np.empty((), dtype=object)
    wrapped[()] = obj
    return wrapped


def _corpus() -> dict[str, object]:
    """Small valid VideoPose3D-style payloads (generated here, not copied from anywhere)."""
    rng = np.random.default_rng(1)
    p3d = {s: {a: rng.normal(size=(3, 32, 3)).astype(np.float32) for a in ("Directions", "Photo 1")}
           for s in ("S1", "S9")}
    p2d = {"S1": {"Walking": [rng.normal(size=(2, 17, 2)).astype(np.float32) for _ in range(3)] + [None]}}
    meta = {"layout_name": "h36m", "num_joints": 17, "keypoints_symmetry": [[4, 5, 6], [1, 2, 3]],
            "video": {("cam", 1): {"w": 1000, "h": 1002}}, "scale": np.float64(0.5), "flags": (True, None, -3.5),
            "be": np.arange(3, dtype=">i4"), "f": np.asfortranarray(np.arange(6, dtype="<f8").reshape(2, 3))}
    return {"positions_3d": p3d, "positions_2d": p2d, "metadata": meta}


def _npz_bytes(members: dict[str, bytes], deflate: bool) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _object_npy(payload: bytes) -> bytes:
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": ()})
    return buf.getvalue() + payload


def _plain_npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    npy_format.write_array(buf, array)
    return buf.getvalue()


CORPUS = _corpus()
PROTOCOLS = (2, 3, 4, 5)
PICKLES = {(key, p): pickle.dumps(_wrapped(value), protocol=p) for key, value in CORPUS.items() for p in PROTOCOLS}
FILES = [
    _npz_bytes({"positions_3d.npy": _object_npy(PICKLES["positions_3d", 3])}, deflate=True),
    _npz_bytes({"positions_2d.npy": _object_npy(PICKLES["positions_2d", 2]),
                "metadata.npy": _object_npy(PICKLES["metadata", 2])}, deflate=False),
    _npz_bytes({"x.npy": _plain_npy(np.arange(12, dtype="<f4").reshape(3, 4)),
                "y.npy": _plain_npy(np.asfortranarray(np.ones((2, 2), ">i2")))}, deflate=False),
    _npz_bytes({"metadata.npy": _object_npy(PICKLES["metadata", 5])}, deflate=True),
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def test_corpus_loads_in_the_child(workdir):
    """The unmutated corpus loads (so the mutations below start from files that are valid)."""
    for i, data in enumerate(FILES):
        (workdir / f"valid{i}.npz").write_bytes(data)
        assert _load_in_child(workdir / f"valid{i}.npz") == "OK"




EDITS = st.lists(st.tuples(st.sampled_from(["flip", "insert", "delete", "cut", "repeat"]),
                           st.integers(0, 1 << 16), st.binary(min_size=1, max_size=12)), min_size=1, max_size=4)


@settings(SETTINGS, max_examples=14)
@given(which=st.integers(0, len(FILES) - 1), edits=EDITS)
def test_mutated_zip_files(workdir, which, edits):
    path = workdir / "zip.npz"
    path.write_bytes(mutate_bytes(FILES[which], edits))
    _load_in_child(path)


@settings(SETTINGS, max_examples=18)
@given(key=st.sampled_from(sorted(CORPUS)), protocol=st.sampled_from(PROTOCOLS), edits=EDITS,
       deflate=st.booleans())
def test_mutated_pickle_streams(workdir, key, protocol, edits, deflate):
    """Mutations inside the pickle, repackaged in a valid zip so that they reach the interpreter."""
    path = workdir / "pickle.npz"
    path.write_bytes(_npz_bytes({f"{key}.npy": _object_npy(mutate_bytes(PICKLES[key, protocol], edits))}, deflate))
    _load_in_child(path)


def _uni(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


# Opcode snippets (with arguments) that a generated stream is assembled from: the admitted opcodes with
# ordinary and hostile arguments, numpy's reconstruction calls, and names that must be refused.
_SNIPPETS = [
    b"}", b"]", b")", b"(", b"t", b"\x85", b"\x86", b"\x87", b"a", b"e", b"s", b"u", b"N", b"\x88", b"\x89",
    b"K\x05", b"J\xff\xff\xff\xff", b"M\x00\x01", b"\x8a\x09" + b"\xff" * 9, b"\x8a\x00", b"G" + struct.pack(">d", 1.5),
    b"G\x7f\xf8\x00\x00\x00\x00\x00\x00", _uni("S1"), _uni("Walking"), b"\x8c\x02ab",
    b"\x8d" + struct.pack("<Q", 2) + b"cd",
    b"U\x01x", b"T\x01\x00\x00\x00y", b"C\x08" + b"\x00" * 8, b"B\x04\x00\x00\x00abcd",
    b"\x8e" + struct.pack("<Q", 1 << 40), b"\x96" + struct.pack("<Q", 3 * 10**9),
    b"\x96" + struct.pack("<Q", 8) + b"\x01" * 8,
    b"q\x00", b"q\x01", b"h\x00", b"h\x01", b"r\x00\x00\x01\x00", b"j\x00\x00\x01\x00", b"\x94",
    b"\x95" + struct.pack("<Q", 9), b"cnumpy\ndtype\n", b"cnumpy\nndarray\n", b"cnumpy.core.multiarray\n_reconstruct\n",
    b"cnumpy.core.multiarray\nscalar\n", b"c_codecs\nencode\n", b"cnumpy._core.numeric\n_frombuffer\n",
    b"cbuiltins\nbytearray\n", b"cbuiltins\neval\n", b"cos\nsystem\n", _uni("numpy") + _uni("dtype") + b"\x93",
    _uni("f8") + b"\x89\x88\x87", _uni("O8") + b"\x89\x88\x87", _uni("V8") + b"\x89\x88\x87",
    b"(K\x03" + _uni("<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t",
    b"(K\x03" + _uni("|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?t",
    b"K\x00\x85C\x01b\x87", b"(K\x01K\x02\x85", _uni("latin1") + b"\x86", b"R", b"b", b"0", b"2", b"\x00", b"\xff",
]


@settings(SETTINGS, max_examples=14)
@given(snippets=st.lists(st.sampled_from(_SNIPPETS), min_size=1, max_size=40), protocol=st.sampled_from(PROTOCOLS),
       as_item=st.booleans())
def test_generated_opcode_streams(workdir, snippets, protocol, as_item):
    """Streams assembled from opcode snippets, alone or as the item of a valid 0-d object array."""
    ops = b"".join(snippets)
    if as_item:
        placeholder = "@@item@@"
        data = pickle.dumps(_wrapped(placeholder), protocol=protocol)
        text = placeholder.encode()
        op = (b"\x8c" + bytes([len(text)]) if protocol >= 4 else b"X" + struct.pack("<I", len(text))) + text
        payload = data.replace(op, ops)
    else:
        payload = b"\x80" + bytes([protocol]) + ops + b"."
    path = workdir / "ops.npz"
    path.write_bytes(_npz_bytes({"positions_3d.npy": _object_npy(payload)}, deflate=True))
    _load_in_child(path)


_HEADER_PARTS = st.one_of(st.sampled_from(["'<f4'", "'|O'", "'>i2'", "'<U3'", "[('x', '<f8')]", "'V8'", "'|b1'",
                                           "'<f16'", "'c8'", "'O'", "''", "'<f4", "b'<f4'"]),
                          st.text(alphabet="()[]{}'\",:0123456789LTrueFals -", max_size=30))
_SHAPES = st.one_of(st.sampled_from(["(3,)", "()", "(0, 4)", "(2, 2)", "(-1,)", "(3L,)", "(10**9,)", "(1, 2, 3, 4)",
                                     "(4294967296, 4294967296)", "[3]", "(3,,)"]),
                    st.text(alphabet="()0123456789, L-", max_size=20))


@settings(SETTINGS, max_examples=10)
@given(descr=_HEADER_PARTS, shape=_SHAPES, fortran=st.sampled_from(["False", "True", "0", "None"]),
       data_len=st.sampled_from([0, 8, 12, 16, 100]), version=st.sampled_from([b"\x01\x00", b"\x02\x00", b"\x03\x00",
                                                                               b"\x09\x00"]))
def test_generated_npy_headers(workdir, descr, shape, fortran, data_len, version):
    text = f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}"
    header = text.encode("utf-8") + b" \n"
    size = struct.pack("<H", len(header)) if version == b"\x01\x00" else struct.pack("<I", len(header))
    npy = b"\x93NUMPY" + version + size + header + bytes(range(256))[:data_len]
    path = workdir / "header.npz"
    path.write_bytes(_npz_bytes({"x.npy": npy}, deflate=False))
    _load_in_child(path)


# ---- reuse patterns: one value fetched and reused many times (issue 22: memory the file does not hold) ------------
_F8 = (b"cnumpy\ndtype\nX\x02\x00\x00\x00f8\x89\x88\x87R(J\x03\x00\x00\x00X\x01\x00\x00\x00<NNNJ\xff\xff\xff\xff"
       b"J\xff\xff\xff\xffJ\x00\x00\x00\x00tb")


def _array_of_memo_text(items: int) -> bytes:
    """numpy's protocol-2 array of ``items`` float64 whose data is the memoised text (memo 1)."""
    return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nJ\x00\x00\x00\x00\x85U\x01b\x87R(J\x01\x00"
            b"\x00\x00(J" + struct.pack("<i", items) + b"t" + _F8 + b"\x89h\x01tb")


_REUSE_PATTERNS = {
    "encode": b"h\x00h\x01h\x02\x86R",  # _codecs.encode(memo text, 'latin1'): a copy per fetch
    "fetch": b"h\x01",  # the text itself, again
    "pair": b"h\x01h\x01\x86",  # a tuple holding it twice
    "list": b"]h\x01a",  # a new list holding it
    "nest": b"](h\x01]h\x01a]]h\x01aaae",  # nested containers of the same object
    "memo_list": b"h\x03h\x03a",  # the memoised list appended to itself... refused as a cycle
}


@settings(SETTINGS, max_examples=16)
@example(size=1 << 20, patterns=["encode"], repeats=1500, arrays=0, collect=False)  # the 1.3 KB -> 1.5 GB
@example(size=1 << 20, patterns=["pair", "encode"], repeats=3000, arrays=2, collect=False)
@example(size=64 * 1024, patterns=["nest", "list"], repeats=3000, arrays=3, collect=True)
@given(size=st.sampled_from([304, 64 * 1024, 1 << 20]), patterns=st.lists(st.sampled_from(sorted(_REUSE_PATTERNS)),
       min_size=1, max_size=3), repeats=st.sampled_from([1, 64, 1500, 3000]), arrays=st.integers(0, 3),
       collect=st.booleans())
def test_reuse_patterns_stay_within_the_bound(workdir, size, patterns, repeats, arrays, collect):
    """A memoised text (memo 1) and list (memo 3), the encode callable (memo 0) and 'latin1' (memo 2), then
    the patterns repeated and arrays built over the text. ``collect``: the text, the list and what the
    patterns push are the items of a list that becomes the result (encode becomes fetch there);
    otherwise everything stays on the stack (refused at STOP, after the copies were made)."""
    if collect:  # encode needs memo 0, which only the stack variant sets up
        patterns = ["fetch" if p == "encode" else p for p in patterns]
    body = b"".join(_REUSE_PATTERNS[p] for p in patterns) * repeats + _array_of_memo_text(size // 8) * arrays
    text = b"X" + struct.pack("<I", size) + b"a" * size + b"q\x01"
    if collect:
        payload = pickle.dumps(_wrapped("@@item@@"), protocol=2).replace(
            b"X" + struct.pack("<I", 8) + b"@@item@@", b"](" + text + b"]q\x03" + body + b"e")
    else:
        payload = b"\x80\x02c_codecs\nencode\nq\x00" + text + b"U\x06latin1q\x02]q\x03(" + body + b"."
    path = workdir / "reuse.npz"
    path.write_bytes(_npz_bytes({"positions_3d.npy": _object_npy(payload)}, deflate=True))
    _load_in_child(path)
