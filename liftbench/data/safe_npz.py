"""Read ``.npz`` archives, including VideoPose3D's pickled dicts, without running code from the file.

``np.load(..., allow_pickle=True)`` hands object arrays to the stock unpickler, which will call any
importable function the file names (``os.system``...). VideoPose3D stores its dicts exactly that way
(``positions_3d`` is a 0-d object array holding ``{subject: {action: array}}``), so liftbench reads
the archive itself:

* each ``<key>.npy`` member's header is parsed with ``numpy.lib.format`` (``read_magic`` and
  ``read_array_header_1_0/2_0``, which parse the header with ``ast.literal_eval``);
* plain dtypes are read straight from the bytes (``np.frombuffer``), never through pickle;
* object dtypes go through ``_RestrictedUnpickler``, whose ``find_class`` only returns the handful
  of callables needed to rebuild numpy arrays, scalars, dtypes and plain containers. Anything else
  is refused with ``UnsafeFileError`` before it can be called.

0-d object arrays are unwrapped (``.item()``), so ``load_npz(p)["positions_3d"]`` is the dict.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
import zlib
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from liftbench.errors import DataError, UnsafeFileError

try:  # numpy >= 2: the real module behind the public ``numpy.lib.format`` shim
    from numpy.lib import _format_impl as _npy_impl
except ImportError:  # numpy 1.x
    _npy_impl = npy_format

try:  # numpy >= 2 moved the C core to ``numpy._core``; pickles written by 1.x still say ``numpy.core``
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]

import _codecs  # noqa: E402  (protocol-2 pickles spell bytes as _codecs.encode(str, 'latin1'))

# (module, name) -> the object to hand back. A fixed table, not an import: the unpickler never
# imports a module named by the file, so even a harmless-looking name cannot trigger import side
# effects, and both numpy 1.x and 2.x spellings resolve to the installed numpy without the
# DeprecationWarning that importing ``numpy.core`` raises under numpy 2.
_ALLOWED: dict[tuple[str, str], object] = {
    **{(mod, "_reconstruct"): _multiarray._reconstruct
       for mod in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(mod, "scalar"): _multiarray.scalar for mod in ("numpy.core.multiarray", "numpy._core.multiarray")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
    # protocol <= 3 spell these containers as calls instead of opcodes (protocol 2: '__builtin__')
    **{(mod, t.__name__): t for mod in ("builtins", "__builtin__") for t in (set, frozenset, complex, bytearray)},
    ("_codecs", "encode"): _codecs.encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can only rebuild numpy arrays/scalars/dtypes and plain containers."""

    def __init__(self, file, source: str):
        super().__init__(file, encoding="latin1")  # numpy's own choice for Python-2-era pickles
        self._source = source

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeFileError(
                f"{self._source}: refuses to load '{module}.{name}' from the pickled data: the file may "
                "execute code; regenerate it with numpy arrays only") from None

    def persistent_load(self, pid):  # the stock one already refuses; say why in our words
        raise UnsafeFileError(f"{self._source}: pickled data uses persistent ids, which liftbench does not "
                              "load; regenerate it with numpy arrays only")


def _read_header(fp, where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Parse one ``.npy`` header: (shape, fortran_order, dtype)."""
    version = npy_format.read_magic(fp)
    if version == (1, 0):
        return npy_format.read_array_header_1_0(fp)
    if version == (2, 0):
        return npy_format.read_array_header_2_0(fp)
    if version == (3, 0) and hasattr(_npy_impl, "_read_array_header"):  # utf-8 field names
        return _npy_impl._read_array_header(fp, version=(3, 0))
    raise DataError(f"{where}: unsupported .npy format version {version}; re-save it with numpy.")


def _read_member(fp, where: str) -> object:
    """One ``.npy`` member -> ndarray (or the unwrapped object of a 0-d object array)."""
    shape, fortran_order, dtype = _read_header(fp, where)
    if dtype.hasobject:
        # numpy writes object arrays as one pickled ndarray after the header
        array = _RestrictedUnpickler(fp, where).load()
        if not isinstance(array, np.ndarray) or array.shape != tuple(shape):
            raise DataError(f"{where}: pickled payload is not the {tuple(shape)} array its header announces; "
                            "regenerate the file.")
        return array.item() if array.ndim == 0 else array
    count = int(np.prod(shape, dtype=np.int64))
    nbytes = count * dtype.itemsize
    data = fp.read(nbytes)
    if len(data) != nbytes:
        raise DataError(f"{where}: truncated ({len(data)} of {nbytes} data bytes); re-download or regenerate it.")
    array = np.frombuffer(data, dtype=dtype, count=count).copy()  # copy: writable, owns its memory
    if fortran_order:
        return array.reshape(shape[::-1]).transpose()
    return array.reshape(shape)


def load_npz(path: str | Path) -> dict[str, object]:
    """All ``<key>.npy`` members of the archive at ``path``: key -> array (0-d object arrays unwrapped).

    Raises ``DataError`` (missing, not a zip, truncated, bad header) or ``UnsafeFileError`` (pickled
    data that names anything beyond numpy arrays/scalars/dtypes and plain containers), both naming
    the file. Members that are not ``.npy`` files are ignored, as ``np.load`` never decodes them.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; check --data-dir and the file name.")
    out: dict[str, object] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if not member.endswith(".npy"):
                    continue
                where = f"{path} (member {member})"
                with archive.open(member) as raw:
                    fp = io.BufferedReader(raw, buffer_size=1 << 20)
                    out[member[: -len(".npy")]] = _read_member(fp, where)
                    fp.read()  # drain, so zipfile checks the CRC of the whole member
    except DataError:  # includes UnsafeFileError: already names the file
        raise
    except zipfile.BadZipFile as exc:
        raise DataError(f"{path}: not a valid .npz (zip) archive or truncated ({exc}); re-download or "
                        "regenerate it.") from exc
    except (EOFError, OSError, ValueError, zlib.error, pickle.UnpicklingError, TypeError,
            IndexError, KeyError, AttributeError, MemoryError, RecursionError) as exc:
        # EOFError/zlib.error: truncated or corrupt member; ValueError: bad header or reshape;
        # UnpicklingError & co.: malformed pickle stream
        raise DataError(f"{path}: unreadable .npz ({type(exc).__name__}: {exc}); re-download or "
                        "regenerate it.") from exc
    return out
