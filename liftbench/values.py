"""One validation path for every value the user hands liftbench: command-line options, TOML files and the
fields a reader takes out of a data file. A width is checked the same way whether it came from ``--width``,
a config file or a COCO ``images`` entry: finite, in range, the right type and shape, integral where it is
a frame or an id. Only the error class differs (``ConfigError`` for options and config files, ``DataError``
for data files: pass ``error=``), and every message is one line naming where the value came from.

The second half reads user files: ``user_file`` refuses what is not a regular file (a FIFO, ``/dev/zero``, a
directory) and files over a stated size cap *before* reading a byte; ``read_text_capped`` /
``load_json_capped`` / ``load_toml_capped`` read through it (``utf-8-sig``: a byte-order mark is dropped) and
bound the nesting depth; ``reading(path, what)`` wraps a reader body so that an unexpected exception raised
by a malformed file (``ValueError``, ``OverflowError``, ``RecursionError``, ``MemoryError``, ...) becomes one
``DataError`` naming the file, with the original chained for ``LIFTBENCH_DEBUG=1``.

Standard library and numpy only; imports nothing from liftbench but ``errors`` (every layer may use it).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import stat
import struct
import tomllib
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from liftbench.errors import ConfigError, DataError, LiftbenchError, OutputError, one_line

INT64_MAX = 2**63 - 1
MAX_IMAGE_SIDE = 1_000_000.0  # pixels: a larger "image size" is a unit mistake, not a video

# Size caps of the files liftbench reads as text (stated in the docs; checked before reading).
MiB = 1 << 20
KEYPOINT_FILE_MAX_BYTES = 256 * MiB  # one keypoint JSON/CSV/.npy of a whole video (hours of frames)
CONFIG_MAX_BYTES = 1 * MiB  # a run config, suite or baselines TOML, a check tolerance sidecar
TABLE_MAX_BYTES = 1024 * MiB  # a results / reference / baselines CSV
JSON_MAX_DEPTH = 64  # detector JSON is ~6 levels deep
TOML_MAX_DEPTH = 32  # config tables are 2-4 levels deep

#: what a malformed file can raise from inside a reader; ``reading`` turns these into one ``DataError``
READ_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, TypeError, OverflowError, RecursionError, KeyError, IndexError, AttributeError, UnicodeError,
    struct.error, zlib.error, zipfile.BadZipFile, EOFError, MemoryError, OSError)

_FILE_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


# ----------------------------------------------------------------------------------------------- showing values
def printable(value: Any, limit: int = 80) -> str:
    """``value`` as text safe for one terminal line: control and format characters (newlines, escapes, bidi
    overrides) escaped as ``\\xNN``/``\\uNNNN``, long text cut with '...'. Use it on anything read from a file
    before printing it (a crafted key must not print a fake ``PASS:`` line)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        text = f"an integer of {value.bit_length()} bits"  # str() of a 100,000-digit int raises in Python 3.11
    else:
        try:
            text = value if isinstance(value, str) else repr(value)
        except (ValueError, RecursionError):
            text = f"a {type(value).__name__}"
    if len(text) > limit:
        text = text[:limit] + "..."
    out = []
    for ch in text:
        if unicodedata.category(ch)[0] == "C" or ch == "\\":
            out.append("\\\\" if ch == "\\" else f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return f"the text {printable(value, 40)}"
    if isinstance(value, (list, tuple, dict)):
        return f"a {type(value).__name__} ({len(value)} items)"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    return printable(value, 40)


# ----------------------------------------------------------------------------------------------- scalar values
def finite_number(value: Any, where: str, *, minimum: float | None = None, maximum: float | None = None,
                  integral: bool = False, error: type[LiftbenchError] = DataError, fix: str = "") -> float | int:
    """``value`` as a finite Python number (``int`` when ``integral``), or ``error`` naming ``where``.

    Accepted: Python ints and floats, numpy integer/float scalars and 0-d arrays; refused: bools, text,
    lists, arrays of another shape, NaN/inf, values outside ``[minimum, maximum]``, and (``integral``)
    values with a fraction. ``where`` names the source: ``"--width"``, ``"train.lr in run.toml"``,
    ``"clip.json images[0].width"``; ``fix`` is appended after '; '."""
    tail = f"; {fix}" if fix else ""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, np.generic) and value.dtype.kind in "iuf":
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"{where} must be a single number, got {_kind(value)}{tail}.")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise error(f"{where} must be a finite number, got {value}{tail}.")
        if integral:
            if not value.is_integer():
                raise error(f"{where} must be a whole number, got {value!r}{tail}.")
            value = int(value)
    # compare exactly (a huge int must not overflow a float conversion)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        lo = "" if minimum is None else f">= {_bound(minimum)}"
        hi = "" if maximum is None else f"<= {_bound(maximum)}"
        raise error(f"{where} must be {' and '.join(p for p in (lo, hi) if p)}, got {_kind(value)}{tail}.")
    return value


def _bound(x: float) -> str:
    """A range limit as people write it: 1000000, 9223372036854775807, 0.5."""
    return str(int(x)) if float(x).is_integer() and abs(x) <= INT64_MAX else f"{x:g}"


def frame_id(value: Any, where: str, *, minimum: int = 0, error: type[LiftbenchError] = DataError) -> int:
    """A frame number or image/track id: a whole number in ``[minimum, 2**63 - 1]`` (int64), not a bool,
    text or list. ``3.0`` is 3; ``0.5`` is refused (it would share a frame with 0)."""
    return int(finite_number(value, where, minimum=minimum, maximum=INT64_MAX, integral=True, error=error,
                             fix="frame and image ids are whole numbers that fit in 64 bits"))


def id_from_digits(digits: str, where: str, *, error: type[LiftbenchError] = DataError) -> int:
    """The number a run of decimal digits in a name or id spells ('frame_000012' -> 12), or ``error`` when
    it does not fit in int64 (checked on the text: ``int()`` of a 5,000-digit string raises)."""
    stripped = digits.lstrip("0") or "0"
    if not stripped.isdigit() or len(stripped) > 19 or int(stripped) > INT64_MAX:
        raise error(f"{where}: the number {printable(digits, 30)} does not fit in 64 bits; "
                    "frame and image ids are whole numbers below 2**63.")
    return int(stripped)


def image_size(width: Any, height: Any, where: str, *, error: type[LiftbenchError] = DataError,
               labels: tuple[str, str] | None = None) -> tuple[float, float]:
    """(width, height) in pixels: finite numbers in ``[1, 1e6]`` (a zero, negative or NaN size would mirror or
    blank every pose after normalisation). Messages say '<where> width' and '<where> height', or ``labels``
    (``("--width", "--height")`` for the options: the same rule, whatever the source)."""
    fix = "pass the video's size in pixels"
    label_w, label_h = labels or (f"{where} width", f"{where} height")
    return (float(finite_number(width, label_w, minimum=1.0, maximum=MAX_IMAGE_SIDE, error=error, fix=fix)),
            float(finite_number(height, label_h, minimum=1.0, maximum=MAX_IMAGE_SIDE, error=error, fix=fix)))


def identifier(name: Any, where: str, *, error: type[LiftbenchError] = ConfigError, max_length: int = 100) -> str:
    """A name that may become part of a path or a results key (suite variant, preset): letters, digits and
    ``_ . = , + -``, starting with a letter, digit or '_', no '..', at most ``max_length`` characters."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.=,+-]*", name) or ".." in name \
            or len(name) > max_length:
        raise error(f"{where}: the name {printable(name, 40)} is not allowed; use letters, digits and _ . = , + - "
                    f"(no '/', no '..', no spaces, at most {max_length} characters).")
    return name


# ----------------------------------------------------------------------------------------------- arrays
def _numeric_array(a: Any, where: str, error: type[LiftbenchError]) -> np.ndarray:
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise error(f"{where} must be a numeric array ({one_line(exc)[:80]}).") from exc
    if arr.dtype.kind not in "iuf":
        raise error(f"{where} must be a numeric array, got dtype {arr.dtype}"
                    f"{' (text or mixed values)' if arr.dtype.kind in 'OUS' else ''}.")
    return arr


def _check_shape(arr: np.ndarray, where: str, shape: tuple[int | None, ...] | None,
                 error: type[LiftbenchError]) -> None:
    if shape is None:
        return
    if arr.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, arr.shape)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        raise error(f"{where} has shape {arr.shape}, expected {want}.")


def finite_array(a: Any, where: str, *, shape: tuple[int | None, ...] | None = None, dtype: Any = np.float64,
                 error: type[LiftbenchError] = DataError, fix: str = "") -> np.ndarray:
    """``a`` as a numeric ``dtype`` array whose every value is finite, of ``shape`` (``None`` = any length on
    that axis), or ``error`` naming ``where`` (and the first bad index). Bools, text and objects are refused."""
    arr = _numeric_array(a, where, error)
    _check_shape(arr, where, shape, error)
    with np.errstate(all="ignore"):
        out = arr.astype(dtype, copy=False)
    if out.dtype.kind == "f":
        bad = ~np.isfinite(out)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise error(f"{where} holds a NaN or infinite value at index {index}"
                        f"{' (too large for ' + str(out.dtype) + ')' if np.isfinite(arr[index]) else ''}"
                        f"{'; ' + fix if fix else ''}.")
    return out


def float32_safe(a: Any, where: str, *, shape: tuple[int | None, ...] | None = None,
                 error: type[LiftbenchError] = DataError) -> np.ndarray:
    """``a`` as a finite float32 array: a finite float64 beyond float32's range (3.4e38) is refused instead of
    becoming inf in the cast."""
    return finite_array(a, where, shape=shape, dtype=np.float32, error=error)


def id_array(a: Any, where: str, *, minimum: int = 0, shape: tuple[int | None, ...] | None = (None,),
             error: type[LiftbenchError] = DataError) -> np.ndarray:
    """Frame numbers / ids as an int64 array: integral values in ``[minimum, 2**63 - 1]`` (floats with a
    fraction, NaN, bools, text and out-of-range values refused), of ``shape`` (default: one axis)."""
    arr = _numeric_array(a, where, error)
    _check_shape(arr, where, shape, error)
    if arr.dtype.kind == "f":
        with np.errstate(all="ignore"):
            bad = ~np.isfinite(arr) | (arr != np.floor(arr)) | (arr < minimum) | (arr >= 2.0**63)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise error(f"{where} must hold whole numbers in [{minimum}, 2**63), got {arr[index]!r} at index {index}.")
        return arr.astype(np.int64)
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > INT64_MAX:
        raise error(f"{where} holds {int(arr.max())}, more than 64-bit ids allow.")
    out = arr.astype(np.int64)
    if out.size and int(out.min()) < minimum:
        raise error(f"{where} must hold whole numbers >= {minimum}, got {int(out.min())}.")
    return out


def finite_result(a: Any, what: str, source: str | Path, fix: str) -> None:
    """A derived array (normalised input, model output) must be finite before anything is written: a NaN here
    comes from the input (huge coordinates, a degenerate image size), so the error names the input file."""
    with np.errstate(all="ignore"):
        ok = bool(np.isfinite(np.asarray(a)).all())
    if not ok:
        raise DataError(f"{source}: the {what} is not finite (NaN or infinite); {fix}.")


# ----------------------------------------------------------------------------------------------- user files
def _human(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", MiB), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{n} bytes"


def user_file(path: str | Path, what: str, max_bytes: int, *, error: type[LiftbenchError] = DataError) -> Path:
    """``path`` if it is a regular file of at most ``max_bytes``; otherwise ``error`` saying what it is (missing,
    a directory, a FIFO, a device) or how large, before a byte is read. ``what`` completes 'pass ...'."""
    path = Path(path)
    try:
        st = path.stat()  # follows symlinks: a link to /dev/zero is a device
    except FileNotFoundError:
        raise error(f"{path} does not exist; pass {what}.") from None
    except OSError as exc:
        raise error(f"{path}: cannot read it ({exc.strerror or exc}); pass {what}.") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{path} is a directory; pass {what} (a file).")
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _FILE_KINDS if test(st.st_mode)), "not a regular file")
        raise error(f"{path} is {kind}, not a regular file; pass {what} saved as a file.")
    if st.st_size > max_bytes:
        raise error(f"{path} is {_human(st.st_size)}, over the {_human(max_bytes)} limit for {what}; "
                    "check that this is the right file.")
    return path


def read_bytes_capped(path: str | Path, what: str, max_bytes: int, *, error: type[LiftbenchError] = DataError) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (re-checked while reading: the file may grow)."""
    path = user_file(path, what, max_bytes, error=error)
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read it ({exc.strerror or exc}); pass {what}.") from exc
    if len(data) > max_bytes:
        raise error(f"{path} grew past the {_human(max_bytes)} limit for {what} while being read.")
    return data


def read_text_capped(path: str | Path, what: str, max_bytes: int, *, error: type[LiftbenchError] = DataError) -> str:
    """A user's text file as ``str``: regular, at most ``max_bytes``, UTF-8 with an optional byte-order mark
    (``utf-8-sig``); otherwise ``error`` naming the file."""
    data = read_bytes_capped(path, what, max_bytes, error=error)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{path} is not UTF-8 text (byte {exc.start}); pass {what}.") from exc


def nesting_depth(obj: Any, limit: int) -> int:
    """Depth of nested lists/tuples/dicts in ``obj`` (a scalar is 0), counted without recursion; stops and
    returns ``limit + 1`` as soon as the depth exceeds ``limit``."""
    deepest = 0
    stack = [(obj, 1)] if isinstance(obj, (list, tuple, dict)) else []
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return limit + 1
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, (list, tuple, dict)))
    return deepest


def load_json_capped(path: str | Path, what: str, max_bytes: int = KEYPOINT_FILE_MAX_BYTES, *,
                     max_depth: int = JSON_MAX_DEPTH, error: type[LiftbenchError] = DataError) -> Any:
    """A user's JSON file: ``read_text_capped`` then ``json.loads``; malformed JSON, numbers Python cannot hold
    (a 5,000-digit integer) and nesting deeper than ``max_depth`` are ``error`` naming the file."""
    path = Path(path)
    text = read_text_capped(path, what, max_bytes, error=error)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg}); pass {what}.") from exc
    except RecursionError as exc:
        raise error(f"{path}: JSON nested deeper than {max_depth} levels; pass {what}.") from exc
    except ValueError as exc:  # e.g. "Exceeds the limit (4300 digits) for integer string conversion"
        raise error(f"{path}: a value in this JSON cannot be read ({one_line(exc)[:100]}); pass {what}.") from exc
    if nesting_depth(data, max_depth) > max_depth:
        raise error(f"{path}: JSON nested deeper than {max_depth} levels; pass {what}.")
    return data


def load_toml_capped(path: str | Path, what: str, max_bytes: int = CONFIG_MAX_BYTES, *,
                     max_depth: int = TOML_MAX_DEPTH, error: type[LiftbenchError] = ConfigError) -> dict[str, Any]:
    """A user's TOML file (config, suite, baselines): size-capped before reading, UTF-8 (a BOM is dropped),
    nesting bounded (``tomllib`` recurses on inline arrays/tables; dotted keys nest without recursing)."""
    path = Path(path)
    text = read_text_capped(path, what, max_bytes, error=error)
    return parse_toml(text, str(path), max_depth=max_depth, error=error)


def parse_toml(text: str, where: str, *, max_depth: int = TOML_MAX_DEPTH,
               error: type[LiftbenchError] = ConfigError) -> dict[str, Any]:
    """``tomllib.loads`` with every failure (syntax, recursion, a 100,000-digit integer) as one ``error``
    line naming ``where``; nesting deeper than ``max_depth`` refused."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{where} is not valid TOML ({one_line(exc)}).") from exc
    except RecursionError as exc:
        raise error(f"{where}: TOML nested deeper than {max_depth} levels.") from exc
    except ValueError as exc:  # int() of a huge literal
        raise error(f"{where}: a value cannot be read ({one_line(exc)[:100]}).") from exc
    if nesting_depth(data, max_depth) > max_depth:
        raise error(f"{where}: TOML nested deeper than {max_depth} levels.")
    return data


@contextlib.contextmanager
def reading(path: str | Path, what: str = "the file") -> Iterator[None]:
    """Around a reader body: an unexpected exception a malformed file triggers (``READ_ERRORS``) becomes one
    ``DataError`` naming ``path``; liftbench's own errors pass through. The original stays chained
    (``LIFTBENCH_DEBUG=1`` prints it). Only for code that interprets a user's file: elsewhere such an
    exception is a bug and must stay a traceback."""
    try:
        yield
    except (LiftbenchError, OutputError):
        raise
    except READ_ERRORS as exc:
        raise DataError(read_failure(path, what, exc)) from exc


def read_failure(path: str | Path, what: str, exc: BaseException) -> str:
    """The one-line message of ``reading``: the file, what went wrong, the fix."""
    if isinstance(exc, MemoryError):
        return (f"{path}: out of memory while reading it as {what}; the file declares more data than this machine "
                "can hold (or is malformed) (LIFTBENCH_DEBUG=1 shows the traceback).")
    if isinstance(exc, OSError) and not isinstance(exc, zipfile.BadZipFile):
        return f"{path}: cannot read it ({printable(exc.strerror or one_line(exc), 100)}); pass {what}."
    try:
        detail = one_line(exc)
    except (ValueError, RecursionError):
        detail = ""
    detail = f": {printable(detail, 100)}" if detail and detail != type(exc).__name__ else ""
    return (f"{path}: cannot read it as {what} ({type(exc).__name__}{detail}); the file is malformed or not this "
            "format (LIFTBENCH_DEBUG=1 shows the traceback).")


def debug_enabled() -> bool:
    """``LIFTBENCH_DEBUG`` set to anything but '' or '0': show tracebacks instead of one-line messages."""
    return os.environ.get("LIFTBENCH_DEBUG", "") not in ("", "0")
