"""Read ``.npz`` archives, including VideoPose3D's pickled dicts, without running code or trusting sizes.

``np.load(..., allow_pickle=True)`` hands object arrays to the stock unpickler, which will call any
importable function the file names (``os.system``...) and lets the file choose dtype states that make
numpy read file bytes as pointers. VideoPose3D stores its dicts exactly that way (``positions_3d`` is
a 0-d object array holding ``{subject: {action: array}}``), so liftbench reads the archive itself:

* only stored or deflated members (what numpy writes); each ``<key>.npy`` member is read through a
  reader that never returns more than the member's declared uncompressed size, and the member must
  end exactly where its array (or pickle) ends: trailing data, or data beyond the declared size, is
  refused (``UnsafeFileError``) without being read;
* the ``.npy`` header is parsed here (at most ``MAX_HEADER`` bytes, a fixed grammar, no ``eval``) and
  admits only plain numeric dtypes (bool, int, uint, float up to 8 bytes; any byte order), fixed-width
  text (``U``/``S`` up to ``MAX_TEXT_ITEM`` characters, for plain members only) and the object dtype
  ``|O`` that numpy uses for pickled payloads;
* numeric members are read straight into their array; a plain member's declared size must equal its
  header plus ``prod(shape) * itemsize`` before a byte of data is read;
* object members go through ``safe_pickle.RestrictedUnpickler``, a pure-Python interpreter that only
  rebuilds dicts, lists, tuples, str, int, float, bool, None and numeric arrays.

Memory (a guarantee, ``budget``): buffers grow with the bytes actually read (never with a size the
file declares), arrays are made over them without a copy, and every byte the reader materialises is
charged to one budget per file before it is allocated: at most 2 x the bytes the file's members really
hold + 64 MiB, whatever the file does (a 100 MB array: ~117 MB plain or in numpy's protocol-3 pickle,
~150 MB in protocol 2, which spells array bytes as text). 0-d object arrays are unwrapped, so
``load_npz(p)["positions_3d"]`` is the dict. ``load_npy`` reads a single ``.npy`` file the same way.
"""

from __future__ import annotations

import re
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from liftbench.data.safe.budget import Budget
from liftbench.data.safe.numpy_rebuild import numeric_dtype, printable
from liftbench.data.safe.pickle_vm import FIX, RestrictedUnpickler
from liftbench.errors import DataError, UnsafeFileError
from liftbench.values import user_file

MAX_HEADER = 10_000  # bytes of a .npy header (numpy's own default limit)
_CHUNK = 1 << 24  # bytes per read of large data: buffers grow with what is really there
_SMALL = 1 << 16  # read-ahead for opcodes and headers
_MAGIC = b"\x93NUMPY"
_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)

# {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } in any key order, either quote style;
# py2-era headers may write longs as 3L.
_ITEM = re.compile(r"""\s*(['"])(\w+)\1\s*:\s*"""  # 'key':
                   r"""(?:(['"])([^'"]*)\3|(True|False)|\(((?:\s*\d{1,15}L?\s*,)*(?:\s*\d{1,15}L?)?\s*)\))"""  # value
                   r"""\s*(,|(?=\}))""")
_DESCR = re.compile(r"([<>|=]?)([biuf])(\d+)")
_TEXT_DESCR = re.compile(r"([<>|=]?)([US])(\d{1,6})")
MAX_TEXT_ITEM = 4096  # characters of one fixed-width text item (a key, a layout name, a JSON blob)
MAX_FILE_BYTES = 1 << 40  # an .npz larger than 1 TiB is not a pose file


class _MemberStream:
    """The uncompressed bytes of one stored or deflated member, inflated here and never past its declared size.

    ``zipfile`` stops at the declared size too, but it silently ignores compressed data beyond it (a
    member can hide gigabytes of zeros after its array) and offers no way to ask; inflating here lets
    ``check_end`` refuse any output beyond the declared size, without producing more than one byte of it.
    """

    def __init__(self, fp, info: zipfile.ZipInfo, where: str):
        fp.seek(info.header_offset)
        local = fp.read(30)
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            raise DataError(f"{where}: bad local zip header; re-download or regenerate the file.")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        fp.seek(info.header_offset + 30 + name_len + extra_len)
        self._fp, self._where = fp, where
        self._compressed_left = info.compress_size
        self._declared_left = info.file_size
        self._inflater = zlib.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
        self._pending = b""  # compressed input not yet consumed by the inflater
        self._crc, self._expected_crc = 0, info.CRC

    def _input(self) -> bytes:
        if not self._pending and self._compressed_left > 0:
            self._pending = self._fp.read(min(self._compressed_left, _SMALL))
            self._compressed_left -= len(self._pending)
            if not self._pending:
                self._compressed_left = 0  # the file ends early: truncated
        return self._pending

    def read(self, n: int) -> bytes:
        """Up to n bytes (fewer only at the declared end or a truncated member)."""
        n = min(n, self._declared_left)
        if n <= 0:
            return b""
        if self._inflater is None:
            data = self._fp.read(min(n, self._compressed_left))
            self._compressed_left -= len(data)
        else:
            data = b""
            while not data and not self._inflater.eof and self._input():
                data = self._inflater.decompress(self._pending, n)  # at most n bytes out
                self._pending = self._inflater.unconsumed_tail
        self._declared_left -= len(data)
        self._crc = zlib.crc32(data, self._crc)
        return data

    def check_end(self) -> None:
        """After the declared size was read: nothing may follow, and the CRC must match."""
        if self._inflater is None:
            extra = self._compressed_left > 0
        else:
            extra = False
            while not extra and not self._inflater.eof and self._input():
                extra = bool(self._inflater.decompress(self._pending, 1))
                self._pending = self._inflater.unconsumed_tail
            if not extra and not self._inflater.eof:
                raise DataError(f"{self._where}: truncated compressed data; re-download or regenerate it.")
            extra = extra or bool(self._inflater.unused_data) or self._compressed_left > 0
        if extra:
            raise UnsafeFileError(f"{self._where}: member holds more data than its declared size; "
                                  "regenerate the file.")
        if self._crc != self._expected_crc:
            raise DataError(f"{self._where}: CRC-32 mismatch (corrupt member); re-download or regenerate it.")


class _MemberReader:
    """Exact-size reads from one member for the header parser and the unpickler (``remaining`` counts down).

    Small reads are served from a read-ahead buffer; ``read_buffer`` grows its result with the bytes
    really inflated, so a false length allocates nothing; ``finish`` refuses trailing bytes inside the
    declared size (without reading them) and any data beyond it.
    """

    def __init__(self, raw, declared: int, where: str, budget: Budget):
        self._raw = raw
        self._budget = budget
        self._unread = declared  # bytes of the declared size not yet pulled from ``raw``
        self._buffer = b""
        self._pos = 0
        self.remaining = declared  # bytes of the declared size not yet consumed by the caller
        self._where = where

    def _truncated(self, wanted: int) -> DataError:
        return DataError(f"{self._where}: truncated (needs {wanted} more bytes than the member holds); "
                         "re-download or regenerate it.")

    def _pull(self, n: int) -> bytes:
        """Up to n bytes from the member (fewer only at its end)."""
        n = min(n, self._unread)
        parts, got = [], 0
        while got < n:
            part = self._raw.read(n - got)
            if not part:
                break
            parts.append(part)
            got += len(part)
        self._unread -= got
        self._budget.note_read(got)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def read(self, n: int) -> bytes:
        """Exactly n bytes (small reads: opcodes, headers) or DataError."""
        if n > self.remaining:
            raise self._truncated(n - self.remaining)
        available = len(self._buffer) - self._pos
        if n > available:
            self._buffer = self._buffer[self._pos:] + self._pull(max(n - available, _SMALL))
            self._pos = 0
            if n > len(self._buffer):
                raise self._truncated(n - len(self._buffer))
        data = self._buffer[self._pos:self._pos + n]
        self._pos += n
        self.remaining -= n
        return data

    def read_buffer(self, n: int) -> bytearray:
        """Exactly n bytes as a new bytearray, grown chunk by chunk so a false length allocates nothing."""
        if n > self.remaining:
            raise self._truncated(n - self.remaining)
        buffered = self._buffer[self._pos:self._pos + n]
        self._pos += len(buffered)
        self._budget.charge(len(buffered), "data", self._where)
        out = bytearray(buffered)
        while len(out) < n:
            part = self._pull(min(n - len(out), _CHUNK))
            if not part:
                raise self._truncated(n - len(out))
            self._budget.charge(len(part), "data", self._where)
            out += part
        self.remaining -= n
        return out

    def readline(self, limit: int) -> bytes:
        """A line without its newline, at most ``limit`` bytes (protocol-2 GLOBAL arguments)."""
        line = bytearray()
        while True:
            byte = self.read(1)
            if byte == b"\n":
                return bytes(line)
            line += byte
            if len(line) > limit:
                raise UnsafeFileError(f"{self._where}: pickled data names a global longer than {limit} bytes; {FIX}")

    def finish(self, what: str) -> None:
        """The member must end here: no unread declared bytes, and nothing beyond the declared size."""
        if self.remaining:
            raise UnsafeFileError(f"{self._where}: {self.remaining} bytes of trailing data after the {what} "
                                  "(declared member size does not match its content); regenerate the file.")
        self._raw.check_end()


def _parse_header(reader: _MemberReader, where: str,
                  admit_text: bool = False) -> tuple[np.dtype | None, tuple[int, ...], bool]:
    """One ``.npy`` header -> (dtype, or None for the pickled object dtype; shape; fortran_order).
    ``admit_text``: fixed-width ``U``/``S`` dtypes are admitted too (plain text arrays, never pickled)."""
    if reader.read(6) != _MAGIC:
        raise DataError(f"{where}: not a .npy member (bad magic); re-download or regenerate it.")
    major, minor = reader.read(2)
    if (major, minor) == (1, 0):
        length = struct.unpack("<H", reader.read(2))[0]
    elif (major, minor) in ((2, 0), (3, 0)):
        length = struct.unpack("<I", reader.read(4))[0]
    else:
        raise DataError(f"{where}: unsupported .npy format version {major}.{minor}; re-save it with numpy.")
    if length > MAX_HEADER:
        raise UnsafeFileError(f"{where}: .npy header of {length} bytes (limit {MAX_HEADER}); regenerate the file.")
    try:
        text = reader.read(length).decode("utf-8" if major == 3 else "latin1").strip()
    except UnicodeDecodeError:
        raise DataError(f"{where}: .npy header is not text; re-download or regenerate it.") from None
    fields: dict[str, str | bool | tuple[int, ...]] = {}
    body, pos = text[1:-1] if text[:1] == "{" and text[-1:] == "}" else None, 0
    while body is not None and pos < len(body.rstrip()):
        match = _ITEM.match(body + "}", pos)
        if match is None or match.group(2) in fields:
            body = None
            break
        key, text_value, flag, shape = match.group(2, 4, 5, 6)
        if shape is not None:
            fields[key] = tuple(int(d.strip().rstrip("L")) for d in shape.split(",") if d.strip())
        else:
            fields[key] = text_value if text_value is not None else flag == "True"
        pos = match.end()
    if body is None or set(fields) != {"descr", "fortran_order", "shape"} or type(fields["descr"]) is not str \
            or type(fields["fortran_order"]) is not bool or type(fields["shape"]) is not tuple:
        raise UnsafeFileError(f"{where}: .npy header '{printable(text)}' is not a plain numeric or object array "
                              "header (structured, string and void dtypes are not admitted); regenerate the file.")
    descr, shape = fields["descr"], fields["shape"]
    if len(shape) > 32:
        raise UnsafeFileError(f"{where}: .npy header declares {len(shape)} dimensions (limit 32); regenerate the file.")
    if descr in ("|O", "O", "<O", ">O", "=O"):
        return None, shape, fields["fortran_order"]
    parts = _DESCR.fullmatch(descr)
    dtype = numeric_dtype(parts[2] + parts[3], parts[1] or "=") if parts else None
    texts = _TEXT_DESCR.fullmatch(descr) if admit_text else None
    if texts and 1 <= int(texts[3]) <= MAX_TEXT_ITEM and (texts[2] == "S" or texts[1] != "|"):
        dtype = np.dtype(f"{texts[1] or '='}{texts[2]}{int(texts[3])}")
    if dtype is None:
        raise UnsafeFileError(f"{where}: dtype '{printable(descr)}' is not admitted (bool, int, uint, float up to "
                              "8 bytes only); regenerate the file.")
    return dtype, shape, fields["fortran_order"]


def _read_member(raw, declared: int, where: str, budget: Budget, text: bool = False) -> object:
    """One ``.npy`` member -> ndarray (or the unwrapped object of a 0-d object array)."""
    reader = _MemberReader(raw, declared, where, budget)
    dtype, shape, fortran_order = _parse_header(reader, where, text)
    count = 1
    for d in shape:
        count *= d
    if dtype is None:  # numpy writes object arrays as one pickled ndarray after the header
        array = RestrictedUnpickler(reader, where, budget).load()
        reader.finish("pickle's STOP")
        if type(array) is not np.ndarray or not array.dtype.hasobject or array.shape != shape:
            raise DataError(f"{where}: pickled payload is not the {shape} object array its header announces; "
                            "regenerate the file.")
        return array[()] if array.ndim == 0 else array
    nbytes = count * dtype.itemsize
    if nbytes != reader.remaining:
        excess = (f"{reader.remaining - nbytes} bytes of trailing data" if reader.remaining > nbytes
                  else "the member is too short")
        raise UnsafeFileError(f"{where}: declares {reader.remaining} data bytes but its {shape} {dtype} array needs "
                              f"{nbytes} ({excess}); regenerate the file.")
    data = reader.read_buffer(nbytes)
    reader.finish("array")
    if count == 0:
        return np.empty(shape, dtype=dtype)
    flat = np.frombuffer(data, dtype=dtype, count=count)  # writable: ``data`` is our own bytearray
    return flat.reshape(shape[::-1]).transpose() if fortran_order else flat.reshape(shape)


def load_npz(path: str | Path, *, text: bool = False) -> dict[str, object]:
    """All ``<key>.npy`` members of the archive at ``path``: key -> array (0-d object arrays unwrapped).

    Raises ``DataError`` (missing, not a regular file, not a zip, truncated, corrupt, bad header) or
    ``UnsafeFileError`` (anything beyond plain data and numeric arrays, sizes that do not match, trailing
    data, memory past the file's budget), both naming the file and member in one line. Members that are
    not ``.npy`` files are ignored, as ``np.load`` never decodes them. ``text``: admit plain fixed-width
    text members too (prediction files store names and JSON that way).
    """
    path = user_file(path, "an .npz archive (check --data-dir and the file name)", MAX_FILE_BYTES)
    out: dict[str, object] = {}
    budget = Budget(str(path))  # bytes, opcodes and containers for the whole file
    try:
        with zipfile.ZipFile(path) as archive:  # the central directory; members are read from ``fp``
            infos = archive.infolist()
        with open(path, "rb") as fp:
            for info in infos:
                if not info.filename.endswith(".npy"):
                    continue
                where = f"{path} (member {printable(info.filename)})"
                key = info.filename[: -len(".npy")]
                if key in out:
                    raise DataError(f"{where}: the archive holds this member twice; regenerate the file.")
                if info.compress_type not in _COMPRESSIONS or info.flag_bits & 0x1:
                    raise UnsafeFileError(f"{where}: compression method {info.compress_type} or encryption is not "
                                          "admitted (numpy writes stored or deflated members); regenerate the file.")
                out[key] = _read_member(_MemberStream(fp, info, where), info.file_size, where, budget, text)
    except DataError:  # includes UnsafeFileError: already names the file
        raise
    except MemoryError as exc:  # the machine is smaller than the file's honest budget
        raise DataError(f"{path}: out of memory while reading it ({budget.charged >> 20} MiB held); the arrays it "
                        "holds do not fit in this machine's memory.") from exc
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise DataError(f"{path}: not a valid .npz (zip) archive, or truncated or corrupt "
                        f"({printable(str(exc))}); re-download or regenerate it.") from exc
    except (EOFError, OSError, ValueError, zlib.error, RuntimeError, NotImplementedError, struct.error,
            OverflowError, IndexError, KeyError, TypeError, RecursionError) as exc:
        # EOFError/zlib.error: truncated or corrupt deflate stream; RuntimeError/NotImplementedError:
        # zip features numpy never writes; ValueError & co.: malformed local headers
        raise DataError(f"{path}: unreadable .npz ({type(exc).__name__}: {printable(str(exc))}); re-download or "
                        "regenerate it.") from exc
    return out


def load_members(path: str | Path) -> dict[str, object]:
    """Every ``.npy`` member of a user's ``.npz`` (predictions for ``score``/``show``, keypoint arrays):
    ``load_npz`` with plain text members admitted. Never ``np.load``, whose reader allocates whatever
    size a header declares before reading a byte."""
    return load_npz(path, text=True)


class _FileStream:
    """A plain ``.npy`` file as a member stream: ``read`` up to n bytes; ``check_end`` finds no more."""

    def __init__(self, fp, size: int):
        self._fp, self._left = fp, size

    def read(self, n: int) -> bytes:
        data = self._fp.read(min(n, self._left))
        self._left -= len(data)
        return data

    def check_end(self) -> None:
        if self._fp.read(1):
            raise UnsafeFileError(f"{self._fp.name}: the file grew while it was read; read it again.")


def load_npy(path: str | Path, *, text: bool = False) -> np.ndarray:
    """One ``.npy`` file through the same reader as an ``.npz`` member (same dtypes, same memory bound):
    a plain array, or the object array/unwrapped object of a pickled one (through the restricted
    interpreter). Errors name the file in one line."""
    path = user_file(path, "a .npy array file", MAX_FILE_BYTES)
    budget = Budget(str(path))
    try:
        with open(path, "rb") as fp:
            size = path.stat().st_size
            return _read_member(_FileStream(fp, size), size, str(path), budget, text)
    except DataError:
        raise
    except MemoryError as exc:
        raise DataError(f"{path}: out of memory while reading it; the array does not fit in this machine's "
                        "memory.") from exc
    except (OSError, ValueError, struct.error, OverflowError, TypeError, RecursionError) as exc:
        raise DataError(f"{path}: unreadable .npy ({type(exc).__name__}: {printable(str(exc))}); regenerate it "
                        "with numpy.save.") from exc
