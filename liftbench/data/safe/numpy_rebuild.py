"""What ``safe_pickle`` may rebuild from numpy's pickles, and how: its own handlers, validated first.

numpy pickles an array as ``_reconstruct(ndarray, (0,), b'b')`` followed by BUILD with the state
``(1, shape, dtype, is_fortran, data)``, a dtype as ``dtype('f4', False, True)`` followed by BUILD with
``(3, byteorder, subarray, names, fields, elsize, alignment, flags)``, a scalar as
``scalar(dtype, raw_bytes)``, protocol 5 arrays as ``_frombuffer(buffer, dtype, shape, order)`` and
protocol 2 bytes as ``_codecs.encode(text, 'latin1')``. None of those numpy functions is called here:
the names map to the handlers of ``NumpyRebuilder``, which accept only the states numpy writes for
plain numeric dtypes, build the dtype from a validated type string, and make the array with
``np.frombuffer`` over a buffer whose length is exactly ``prod(shape) * itemsize``. Object arrays
are built element by element (only as the member's own top-level array; ``safe_pickle`` refuses
them anywhere else).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from liftbench.data.safe.budget import REUSE_FREE, SLOT_BYTES
from liftbench.errors import UnsafeFileError


class Internal:
    """Objects that exist only while unpickling; never part of a result."""

    __slots__ = ()
    kind = "internal object"


class Callable(Internal):
    """An admitted global, e.g. ``numpy.dtype``; REDUCE dispatches on ``name``."""

    __slots__ = ("name",)
    kind = "class or function"

    def __init__(self, name: str):
        self.name = name


class Raw(Internal):
    """Raw bytes from the file: only ever the data of one array or scalar (``data`` is None once used)."""

    __slots__ = ("data",)
    kind = "raw byte buffer"

    def __init__(self, data: bytearray):
        self.data: bytearray | None = data


class Text(Raw):
    """Text longer than ``LONG_TEXT`` bytes, kept as its latin1 bytes: protocol 2 spells array data this way.

    Decoding it chunk by chunk straight into bytes keeps memory at about the size of the array it
    becomes (a whole ``str`` plus its encoding would take four times that)."""

    __slots__ = ()
    kind = "text of more than 1 MiB (admitted only as array data)"


class DtypeBuilder(Internal):
    """``numpy.dtype(typestr)`` waiting for its BUILD state; ``dtype`` is set once validated."""

    __slots__ = ("typestr", "dtype")
    kind = "numpy dtype"

    def __init__(self, typestr: str):
        self.typestr = typestr
        self.dtype: np.dtype | None = None


class ArrayBuilder(Internal):
    """``_reconstruct(ndarray, (0,), b'b')`` waiting for its BUILD state; ``array`` is set by BUILD."""

    __slots__ = ("array",)
    kind = "unfinished numpy array"

    def __init__(self):
        self.array: np.ndarray | None = None


GLOBALS: dict[tuple[str, str], str] = {
    **{(mod, "_reconstruct"): "reconstruct" for mod in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(mod, "scalar"): "scalar" for mod in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(mod, "_frombuffer"): "frombuffer" for mod in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "dtype",
    ("_codecs", "encode"): "encode",
}
_NUMERIC = {t: np.dtype(t) for t in ("b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8")}
_OBJECT_TYPESTRS = ("O8", "O4")
SCALAR_TYPES = (str, int, float, bool, type(None))
LONG_TEXT = 1 << 20  # bytes: longer texts become ``Text``


def printable(text: str, limit: int = 80) -> str:
    """File-chosen text made safe for a one-line message (escaped, shortened)."""
    shown = text.encode("unicode_escape").decode("ascii").replace("'", "\\'")
    return shown if len(shown) <= limit else shown[:limit] + "..."


def is_numeric_dtype(dtype: np.dtype) -> bool:
    """A dtype liftbench admits: bool/int/uint/float up to 8 bytes, no fields, no subarray, no object."""
    return (dtype.kind in "biuf" and dtype.itemsize <= 8 and dtype.fields is None and dtype.subdtype is None
            and not dtype.hasobject and dtype.byteorder in "<>=|")


def numeric_dtype(typestr: str, byteorder: str) -> np.dtype | None:
    """The admitted dtype for a type string like ``f4`` and a byte order, or None."""
    base = _NUMERIC.get(typestr)
    if base is None or byteorder not in "<>=|" or len(byteorder) != 1:
        return None
    if base.itemsize == 1:
        return base
    if byteorder == "|":
        return None
    return base.newbyteorder(byteorder)


class NumpyRebuilder:
    """REDUCE and BUILD handlers for the admitted numpy names; mixed into ``RestrictedUnpickler``."""

    _used_texts: set[int]  # ids of texts longer than REUSE_FREE already used as data (kept alive in _pinned)
    _pinned: list[Any]

    def _unsafe(self, problem: str) -> UnsafeFileError:
        """The error for a refused construct (the unpickler names the file and member)."""
        raise NotImplementedError

    def _charge(self, n: int, what: str) -> None:
        """Charge ``n`` bytes about to be allocated to the file's budget (the unpickler's)."""
        raise NotImplementedError

    def _text_bytes(self, text: str) -> bytearray:
        """The latin1 bytes of a text used as data: a copy, charged first; a text longer than ``REUSE_FREE``
        may be used so only once (a memoised text fetched again must not become a second copy)."""
        if len(text) > REUSE_FREE:
            if id(text) in self._used_texts:
                raise self._unsafe("uses one text as the data of two arrays or buffers")
            self._used_texts.add(id(text))
            self._pinned.append(text)
        self._charge(len(text) + 64, "a text copied into bytes")
        try:
            return bytearray(text, "latin1")
        except UnicodeEncodeError:
            raise self._unsafe("gives binary data as text that is not latin1") from None

    def reduce(self, func: Callable, args: tuple) -> Any:
        """The result of calling the admitted name ``func`` with ``args`` (our handler, not numpy's)."""
        return getattr(self, f"_reduce_{func.name}")(args)

    def build(self, target: Any, state: Any) -> Any:
        """Apply BUILD ``state`` to ``target``; return what replaces it on the stack."""
        if type(target) is DtypeBuilder and target.dtype is None:
            target.dtype = self._dtype_from_state(target.typestr, state)
            return target
        if type(target) is ArrayBuilder and target.array is None:
            target.array = self._array_from_state(state)
            return target.array
        raise self._unsafe("sets the state of an object that has none")

    def _reduce_dtype(self, args: tuple) -> DtypeBuilder:
        if not 1 <= len(args) <= 3 or type(args[0]) is not str or any(type(a) is not bool for a in args[1:]):
            raise self._unsafe("calls numpy.dtype with arguments other than a type string and flags")
        if args[1:2] == (True,):
            raise self._unsafe("asks for an aligned (structured) dtype")
        if args[0] not in _NUMERIC and args[0] not in _OBJECT_TYPESTRS:
            raise self._unsafe(f"uses dtype '{printable(args[0])}' (admitted: bool, int, uint, float up to 8 bytes)")
        return DtypeBuilder(args[0])

    def _dtype_from_state(self, typestr: str, state: Any) -> np.dtype:
        if type(state) is not tuple or len(state) not in (8, 9):
            raise self._unsafe("sets a dtype state of an unknown layout")
        version, order, subarray, names, fields, elsize, alignment, flags = state[:8]
        metadata = state[8] if len(state) == 9 else None
        if type(version) is not int or version not in (3, 4):
            raise self._unsafe("sets a dtype state of an unknown version")
        if subarray is not None or names is not None or fields is not None or metadata is not None:
            raise self._unsafe("sets a dtype state with fields, names, a subarray or metadata")
        if type(elsize) is not int or type(alignment) is not int or (elsize, alignment) != (-1, -1):
            raise self._unsafe("sets a dtype state with an explicit item size or alignment")
        if typestr in _OBJECT_TYPESTRS:
            if type(order) is not str or type(flags) is not int or (order, flags) != ("|", 63):
                raise self._unsafe("sets an object dtype state with unusual flags")
            return np.dtype(object)
        dtype = numeric_dtype(typestr, order) if type(order) is str else None
        if dtype is None or type(flags) is not int or flags != 0:
            raise self._unsafe(f"sets dtype '{typestr}' to byte order or flags liftbench does not admit")
        return dtype

    def _built_dtype(self, value: Any, numeric_only: bool) -> np.dtype:
        if type(value) is not DtypeBuilder or value.dtype is None:
            raise self._unsafe("gives an array a dtype that is not a validated numpy dtype")
        if numeric_only and value.dtype.hasobject:
            raise self._unsafe("uses an object dtype where only numbers are admitted")
        return value.dtype

    def _shape(self, value: Any) -> tuple[int, ...]:
        if type(value) is not tuple or len(value) > 32 or any(type(d) is not int or not 0 <= d < 2**48 for d in value):
            raise self._unsafe("gives an array a shape that is not a tuple of at most 32 sizes")
        return value

    def _take_raw(self, value: Any, nbytes: int) -> bytearray:
        """The buffer of ``value`` (raw bytes, or latin1 text from protocol 2) if it holds exactly nbytes."""
        if isinstance(value, Raw):  # Raw or Text
            if value.data is None:
                raise self._unsafe("uses one raw byte buffer for two arrays")
            data, value.data = value.data, None
        elif type(value) is str:
            if len(value) != nbytes:
                raise self._unsafe(f"gives {len(value)} data bytes for an array that needs {nbytes}")
            data = self._text_bytes(value)
        else:
            raise self._unsafe("gives array data that is not a byte buffer")
        if len(data) != nbytes:
            raise self._unsafe(f"gives {len(data)} data bytes for an array that needs {nbytes}")
        return data

    def _numeric_array(self, raw: Any, dtype: np.dtype, shape: tuple[int, ...], fortran: bool,
                       swap: bool) -> np.ndarray:
        """The array over ``raw``'s buffer (no copy); ``swap``: to native byte order, as ndarray.__setstate__ does."""
        count = 1
        for d in shape:
            count *= d
        data = self._take_raw(raw, count * dtype.itemsize)
        native = dtype.newbyteorder("=")
        if count == 0:
            return np.empty(shape, dtype=native if swap else dtype)
        flat = np.frombuffer(data, dtype=dtype, count=count)  # writable: ``data`` is our own bytearray
        if swap and not dtype.isnative:  # numpy's own __setstate__ does the same (in place here)
            flat = flat.byteswap(inplace=True).view(native)
        return flat.reshape(shape[::-1]).transpose() if fortran else flat.reshape(shape)

    def _reduce_reconstruct(self, args: tuple) -> ArrayBuilder:
        if (len(args) != 3 or type(args[0]) is not Callable or args[0].name != "ndarray"
                or type(args[1]) is not tuple or len(args[1]) != 1 or type(args[1][0]) is not int):
            raise self._unsafe("calls numpy's array reconstructor with unusual arguments")
        typecode = args[2].data if type(args[2]) is Raw else args[2]  # placeholder b'b', memoised and reused
        if type(typecode) not in (str, bytearray) or len(typecode) != 1:
            raise self._unsafe("calls numpy's array reconstructor with unusual arguments")
        return ArrayBuilder()

    def _array_from_state(self, state: Any) -> np.ndarray:
        versioned = type(state) is tuple and len(state) == 5
        if type(state) is not tuple or len(state) not in (4, 5) or (versioned and (type(state[0]) is not int
                                                                               or state[0] != 1)):
            raise self._unsafe("sets an array state of an unknown layout")
        shape, dtype_builder, fortran, data = state[-4:]
        shape = self._shape(shape)
        dtype = self._built_dtype(dtype_builder, numeric_only=False)
        if type(fortran) not in (bool, int) or fortran not in (0, 1):
            raise self._unsafe("sets an array state with a bad order flag")
        if not dtype.hasobject:
            return self._numeric_array(data, dtype, shape, bool(fortran), swap=True)
        count = 1
        for d in shape:
            count *= d
        if type(data) is not list or len(data) != count:
            raise self._unsafe("sets an object array state whose items do not match its shape")
        self._charge(SLOT_BYTES * count + 128, "an object array")
        flat = np.empty(count, dtype=object)
        for i, item in enumerate(data):  # items were checked when they were appended to ``data``
            flat[i] = item
        return flat.reshape(shape[::-1]).transpose() if fortran else flat.reshape(shape)

    def _reduce_frombuffer(self, args: tuple) -> np.ndarray:  # protocol 5, in-band buffers
        if len(args) != 4 or type(args[3]) is not str or args[3] not in ("C", "F"):
            raise self._unsafe("calls numpy's _frombuffer with unusual arguments")
        dtype = self._built_dtype(args[1], numeric_only=True)
        return self._numeric_array(args[0], dtype, self._shape(args[2]), args[3] == "F", swap=False)

    def _reduce_scalar(self, args: tuple) -> np.generic:
        if len(args) != 2:
            raise self._unsafe("calls numpy's scalar constructor with unusual arguments")
        dtype = self._built_dtype(args[0], numeric_only=True)
        return np.frombuffer(self._take_raw(args[1], dtype.itemsize), dtype=dtype)[0]

    def _reduce_encode(self, args: tuple) -> Raw:  # protocol 2 bytes: _codecs.encode(text, 'latin1')
        if len(args) != 2 or type(args[0]) not in (str, Text) or type(args[1]) is not str \
                or args[1] not in ("latin1", "latin-1"):
            raise self._unsafe("calls _codecs.encode with arguments other than text and 'latin1'")
        if type(args[0]) is Text:
            return Raw(self._take_raw(args[0], len(args[0].data or b"")))
        return Raw(self._text_bytes(args[0]))

    def _reduce_ndarray(self, args: tuple) -> Any:
        raise self._unsafe("calls numpy.ndarray directly")
