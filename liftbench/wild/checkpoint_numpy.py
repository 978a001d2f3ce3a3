"""Stand-ins for the numpy names released checkpoints pickle (``checkpoint_reader``): each is called by
torch's weights-only unpickler in place of numpy's own reconstructor and accepts only what numpy writes for
plain numeric data.

numpy pickles an array as ``_reconstruct(ndarray, (0,), b'b')`` then BUILD ``(1, shape, dtype, is_fortran,
raw bytes)``, a dtype as ``dtype('f4', False, True)`` then BUILD ``(3, byteorder, None, None, None, -1, -1,
0)``, a scalar as ``scalar(dtype, raw bytes)`` and a ``RandomState`` in one of three ways over the numpy
versions (``__RandomState_ctor()`` + the legacy state tuple in 1.16; ``__randomstate_ctor('MT19937')`` +
a state dict in 1.17-1.2x; ``__randomstate_ctor(__bit_generator_ctor(MT19937))`` in 2.x). Here dtypes are
built from a validated type string, arrays are read-only ``np.frombuffer`` views of exactly
``prod(shape) * itemsize`` bytes, scalars likewise, and generators become inert records of their state.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from liftbench.data.safe.numpy_rebuild import numeric_dtype, printable
from liftbench.errors import UnsafeFileError

FIX = "use the file as released by the authors (or re-save its state dict with plain torch.save)"


def _unsafe(problem: str) -> UnsafeFileError:
    return UnsafeFileError(f"pickled numpy data {problem}; {FIX}")


class NumpyDtype:
    """``numpy.dtype(code, align, copy)`` then BUILD ``(3, byteorder, None, None, None, -1, -1, 0)``: a
    plain numeric dtype only (no fields, subarray, object or metadata)."""

    def __init__(self, code: Any = None, align: Any = False, copy: Any = True):
        if not isinstance(code, str) or numeric_dtype(code, "<" if code not in ("b1", "i1", "u1") else "|") is None:
            raise _unsafe(f"asks for dtype {printable(str(code), 20)}, which is not a plain number type")
        self.code, self.value = code, None

    def __setstate__(self, state: Any) -> None:
        if (type(state) is not tuple or len(state) != 8 or state[0] != 3 or not isinstance(state[1], str)
                or state[2:] != (None, None, None, -1, -1, 0)):
            raise _unsafe("has a dtype state numpy writes for no plain number type")
        self.value = numeric_dtype(self.code, state[1])
        if self.value is None:
            raise _unsafe(f"has byte order {printable(state[1], 8)} for dtype {self.code}")


def _dtype_of(value: Any) -> np.dtype:
    if type(value) is not NumpyDtype or value.value is None:
        raise _unsafe("builds an array or scalar without a complete plain dtype")
    return value.value


def _raw(data: Any) -> bytes:
    """Array data: the bytes object itself (arrays are read-only views of it, so a file that hands one
    memoised buffer to many arrays makes no copies)."""
    if type(data) is not bytes:
        raise _unsafe(f"holds array data of type {type(data).__name__}, not raw bytes (an object array?)")
    return data


class NumpyArray:
    """``_reconstruct(ndarray, (0,), b'b')`` then BUILD ``(1, shape, dtype, is_fortran, raw bytes)``."""

    def __init__(self, *args: Any):
        self.value: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if type(state) is not tuple or len(state) != 5 or state[0] != 1 or type(state[1]) is not tuple:
            raise _unsafe("has an array state numpy does not write")
        shape = state[1]
        if not all(type(n) is int and n >= 0 for n in shape) or len(shape) > 32:
            raise _unsafe(f"has an array of shape {printable(str(shape), 40)}")
        dtype, data = _dtype_of(state[2]), _raw(state[4])
        count = 1
        for n in shape:
            count *= n
        if count * dtype.itemsize != len(data):
            raise _unsafe(f"declares an array of {count} x {dtype.itemsize} bytes over {len(data)} bytes of data")
        order = "F" if state[3] is True else "C"
        self.value = np.frombuffer(data, dtype=dtype).reshape(shape, order=order)  # a read-only view, no copy


def reconstruct(cls: Any, shape: Any = None, typecode: Any = None) -> NumpyArray:
    if cls is not NumpyArray or shape != (0,) or typecode not in (b"b", "b"):
        raise _unsafe("calls numpy's _reconstruct with other arguments than numpy writes for an array")
    return NumpyArray()


def scalar(dtype: Any, data: Any = None) -> Any:
    """``scalar(dtype, raw bytes)``: one number of a plain numeric dtype."""
    kind, raw = _dtype_of(dtype), _raw(data)
    if len(raw) != kind.itemsize:
        raise _unsafe(f"declares a {kind} scalar over {len(raw)} bytes")
    return np.frombuffer(raw, dtype=kind)[0]


class RandomStateRecord:
    """numpy's ``RandomState`` (any numpy version's pickle) kept as an inert record of its state."""

    kind = "numpy.random.RandomState"

    def __init__(self, *args: Any):
        for arg in args:  # a bit-generator name, class or (numpy >= 1.25) instance
            if not (isinstance(arg, str) or arg is MT19937 or type(arg) is BitGeneratorRecord):
                raise _unsafe(f"builds a random generator from a {type(arg).__name__}")
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class BitGeneratorRecord(RandomStateRecord):
    kind = "numpy.random.BitGenerator"


class MT19937:
    """Stands for numpy's ``MT19937`` class, which numpy >= 1.25 passes to ``__bit_generator_ctor``."""


NUMPY_NAMES: dict[str, Any] = {
    "numpy.core.multiarray._reconstruct": reconstruct, "numpy._core.multiarray._reconstruct": reconstruct,
    "numpy.ndarray": NumpyArray, "numpy.dtype": NumpyDtype,
    "numpy.core.multiarray.scalar": scalar, "numpy._core.multiarray.scalar": scalar,
    "numpy.random.__RandomState_ctor": RandomStateRecord, "numpy.random._pickle.__randomstate_ctor": RandomStateRecord,
    "numpy.random._pickle.__bit_generator_ctor": BitGeneratorRecord, "numpy.random._mt19937.MT19937": MT19937,
}
