"""Read a released PyTorch checkpoint (VideoPose3D, MotionBERT, MixSTE ``.bin``) without running its code.

Released files pickle numpy objects beside the weights (the data generator's ``RandomState``, numpy
scalars), so ``torch.load(weights_only=True)`` refuses them as they are, and admitting numpy's own
``dtype`` / ``_reconstruct`` would let a file hand numpy states of its choosing. Here:

1. **Shape of the file.** A torch zip archive (torch >= 1.6) must hold stored (uncompressed) records
   whose sizes add up to at most the file's size and one ``<archive>/data.pkl``; a legacy file (torch
   < 1.6, ``_use_new_zipfile_serialization=False``: magic number, protocol, system info, the object, the
   storage keys, then the raw storages) must start with torch's magic number. Anything else (the
   torch <= 0.3 tar format included) is refused.
2. **Scan before loading.** Every pickle of the file is walked opcode by opcode (``pickletools.genops``
   only parses; nothing is called) with a small stack model: every global it names must be one of
   ``ADMITTED`` (tensor rebuilding, ``OrderedDict``, torch's storage types, protocol 2 bytes and the numpy
   names below), tuples may nest at most ``MAX_TUPLE_DEPTH`` deep (dict keys are hashed recursively), and
   every storage it declares must fit in the file: the sum over storages of elements x element size is at
   most the file size (legacy files allocate what they declare), or at most its record (zip); the bytes
   ``_codecs.encode`` would make (protocol 2's bytes, a copy per call) add up to at most the file size;
   opcodes naming classes outside the stack (INST, the extension registry) are refused. A refused global
   is one ``UnsafeFileError`` line naming it; nothing has been unpickled yet.
3. **Load.** ``torch.load(weights_only=True)`` (zip: ``mmap=True``, nothing read into memory that the
   file does not hold) inside ``torch.serialization.safe_globals`` admitting the numpy names, each mapped
   to a stand-in of our own (``checkpoint_numpy``): numeric dtypes built from a validated type string, arrays from
   ``np.frombuffer`` views of exactly ``prod(shape) * itemsize`` bytes, scalars likewise, and the random
   generators as inert records of their state (never a numpy generator). numpy's reconstructors are
   never called; numpy sees the file's data only through ``np.frombuffer`` on a checked buffer.
4. **Check the result.** An iterative walk (depth <= ``MAX_DEPTH``) keeps dicts, lists, tuples, tensors,
   numeric numpy values and plain scalars, replaces the stand-ins by plain values and refuses anything else.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from liftbench.data.safe.numpy_rebuild import is_numeric_dtype, printable
from liftbench.errors import CheckpointError, UnsafeFileError, one_line
from liftbench.wild.checkpoint_numpy import (
    FIX,
    NUMPY_NAMES,
    BitGeneratorRecord,
    NumpyArray,
    NumpyDtype,
    RandomStateRecord,
)

MAX_DEPTH = 64  # containers nested in the loaded object (released files: 5)
MAX_TUPLE_DEPTH = 64  # tuples nested in the pickle (hashing a dict key recurses through them)
LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"  # pickled torch MAGIC_NUMBER, protocol 2
_ELEMENT_BYTES = {"Float": 4, "Double": 8, "Half": 2, "BFloat16": 2, "Long": 8, "Int": 4, "Short": 2, "Char": 1,
                  "Byte": 1, "Bool": 1}
_STORAGES = {f"torch.{kind}Storage": size for kind, size in _ELEMENT_BYTES.items()}
ADMITTED = frozenset({"collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "_codecs.encode",
                      *_STORAGES, *NUMPY_NAMES})


# ---------------------------------------------------------------- the scan (parses only; calls nothing)
class _Global:
    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name


class _Tuple:
    __slots__ = ("items", "depth")

    def __init__(self, items: list[Any]):
        self.items = items
        self.depth = 1 + max((i.depth for i in items if type(i) is _Tuple), default=0)


_MARK, _ANY = object(), object()
_TEXT = {"BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"}
_INTS = {"BININT", "BININT1", "BININT2", "LONG1", "LONG4", "INT", "LONG"}


class Scan:
    """What the pickles of one file name and declare: globals, and storage key -> bytes."""

    def __init__(self, where: str):
        self.where = where
        self.globals: set[str] = set()
        self.storages: dict[str, int] = {}
        self.encoded = 0  # bytes ``_codecs.encode`` will make (each call copies its text: charged every time)

    def _refuse(self, problem: str) -> UnsafeFileError:
        return UnsafeFileError(f"{self.where}: {problem}; {FIX}")

    def pickle(self, stream: BinaryIO | bytes) -> None:
        """Walk one pickle (up to its STOP) of ``stream`` (a file positioned at it, or its bytes)."""
        source = io.BytesIO(stream) if isinstance(stream, bytes) else stream
        stack: list[Any] = []
        memo: dict[int, Any] = {}
        try:
            for op, arg, _ in pickletools.genops(source):
                self._step(op, arg, stack, memo)
        except (ValueError, EOFError, IndexError, KeyError) as exc:
            raise CheckpointError(f"{self.where} is not a readable PyTorch checkpoint (malformed pickle: "
                                  f"{one_line(exc)[:80]}); re-download it.") from None

    def _step(self, op: pickletools.OpcodeInfo, arg: Any, stack: list[Any], memo: dict[int, Any]) -> None:
        name = op.name
        if name in _TEXT:
            stack.append(arg.decode("latin1") if isinstance(arg, bytes) else arg)
        elif name in _INTS:
            stack.append(arg)
        elif name == "NONE":
            stack.append(None)
        elif name in ("GLOBAL", "STACK_GLOBAL"):
            if name == "GLOBAL":
                module, _, attr = str(arg).partition(" ")
            else:
                attr, module = stack.pop(), stack.pop()
                if type(attr) is not str or type(module) is not str:
                    raise self._refuse("names a global computed at load time")
            full = f"{module}.{attr}"
            if full not in ADMITTED:
                raise self._refuse(f"refuses to load '{printable(full)}' from the checkpoint (it names code, not "
                                   "data: the file may execute code)")
            self.globals.add(full)
            stack.append(_Global(full))
        elif name in ("TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_TUPLE"):
            n = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3, "EMPTY_TUPLE": 0}.get(name)
            items = _pop_mark(stack) if n is None else [stack.pop() for _ in range(n)][::-1]
            value = _Tuple(items)
            if value.depth > MAX_TUPLE_DEPTH:
                raise self._refuse(f"nests tuples more than {MAX_TUPLE_DEPTH} deep")
            stack.append(value)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            memo[len(memo) if name == "MEMOIZE" else int(arg)] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo[int(arg)])
        elif name in ("INST", "EXT1", "EXT2", "EXT4"):  # classes by name or from the extension registry
            raise self._refuse(f"uses pickle opcode {name}, which torch.save does not write")
        elif name == "REDUCE":
            args, func = stack.pop(), stack.pop()
            if type(func) is _Global and func.name == "_codecs.encode":
                if type(args) is not _Tuple or not args.items or type(args.items[0]) is not str:
                    raise self._refuse("encodes bytes from a value computed at load time")
                self.encoded += len(args.items[0])
            stack.append(_ANY)
        elif name in ("BINPERSID", "PERSID"):
            self._storage(stack.pop() if name == "BINPERSID" else arg)
            stack.append(_ANY)
        else:  # any other opcode: its stack effect only (pickletools' description of it)
            before = op.stack_before
            if pickletools.markobject in before:
                _pop_mark(stack)
                fixed = before.index(pickletools.markobject)
            else:
                fixed = len(before)
            for _ in range(fixed):
                stack.pop()
            stack.extend(_MARK if s is pickletools.markobject else _ANY for s in op.stack_after)

    def _storage(self, pid: Any) -> None:
        """A persistent id: ('storage', torch.<Kind>Storage, key, location, elements[, view])."""
        items = pid.items if type(pid) is _Tuple else []
        if (len(items) not in (5, 6) or items[0] != "storage" or type(items[1]) is not _Global
                or items[1].name not in _STORAGES or type(items[2]) is not str or type(items[4]) is not int
                or items[4] < 0):
            raise self._refuse("refers to a tensor storage in a form torch.save does not write")
        nbytes = items[4] * _STORAGES[items[1].name]
        self.storages[items[2]] = max(self.storages.get(items[2], 0), nbytes)


def _pop_mark(stack: list[Any]) -> list[Any]:
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is _MARK:
            items = stack[i + 1:]
            del stack[i:]
            return items
    raise IndexError("no MARK")


# ---------------------------------------------------------------- the file
def _zip_scan(path: Path, scan: Scan) -> None:
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if any(i.compress_type != zipfile.ZIP_STORED or i.file_size != i.compress_size for i in infos) \
                    or sum(i.file_size for i in infos) > size:
                raise scan._refuse("is a zip archive with compressed or oversized records, which torch.save does "
                                   "not write")
            pickles = [i for i in infos if i.filename.endswith("/data.pkl") and i.filename.count("/") == 1]
            if len(pickles) != 1:
                raise CheckpointError(f"{scan.where} is a zip archive but not a PyTorch checkpoint (no single "
                                      "<archive>/data.pkl); pass the .bin/.pth file torch.save wrote.")
            prefix = pickles[0].filename[: -len("data.pkl")]
            scan.pickle(archive.read(pickles[0]))
            records = {i.filename[len(prefix) + 5:]: i.file_size for i in infos
                       if i.filename.startswith(prefix + "data/")}
    except zipfile.BadZipFile as exc:
        raise CheckpointError(f"{scan.where} is a damaged zip archive ({one_line(exc)[:80]}); "
                              "re-download it.") from None
    for key, nbytes in scan.storages.items():
        if nbytes > records.get(key, -1):
            raise scan._refuse(f"declares a tensor storage '{printable(key, 20)}' of {nbytes} bytes that its record "
                               f"does not hold ({records.get(key, 0)} bytes)")


def _legacy_scan(path: Path, scan: Scan) -> None:
    size = path.stat().st_size
    with open(path, "rb") as fh:
        for _ in range(5):  # magic number, protocol version, system info, the object, the storage keys
            scan.pickle(fh)
    if sum(scan.storages.values()) > size:
        raise scan._refuse(f"declares {sum(scan.storages.values())} bytes of tensor storage in a file of {size} "
                           "bytes")


def _check_budget(scan: Scan, size: int) -> None:
    """Bytes the pickles make by copying (protocol 2 spells bytes as ``_codecs.encode(text)``, which a file
    may repeat on one memoised text): at most the file's size, as for data the file really holds."""
    if scan.encoded > size:
        raise scan._refuse(f"makes {scan.encoded} bytes from texts in a file of {size} bytes (one text copied "
                           "again and again)")


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The top-level dict of a torch checkpoint file, read without running code (module docstring)."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise CheckpointError(f"{where} does not exist or is not a file; pass the checkpoint file (.bin / .pth).")
    with open(path, "rb") as fh:
        head = fh.read(len(LEGACY_MAGIC))
    scan = Scan(where)
    zipped = head.startswith(b"PK\x03\x04")
    if zipped:
        _zip_scan(path, scan)
    elif head == LEGACY_MAGIC and not tarfile.is_tarfile(path):
        _legacy_scan(path, scan)
    else:
        raise CheckpointError(f"{where} is not a PyTorch checkpoint (neither a torch.save zip archive nor the "
                              "legacy format of torch < 1.6); pass the .bin/.pth file the authors released.")
    _check_budget(scan, path.stat().st_size)
    try:
        with torch.serialization.safe_globals([(v, k) for k, v in NUMPY_NAMES.items()]):
            loaded = torch.load(str(path), map_location="cpu", weights_only=True, mmap=zipped)
    except UnsafeFileError as exc:
        raise UnsafeFileError(f"{where}: {exc}") from None
    except (pickle.UnpicklingError, RuntimeError, ValueError, TypeError, EOFError, OSError) as exc:
        lines = [line for line in str(exc).strip().splitlines() if line.strip()] or [type(exc).__name__]
        first = next((line for line in lines if "WeightsUnpickler error" in line), lines[0])
        raise CheckpointError(f"{where} cannot be loaded safely ({one_line(Exception(first))[:160]}); "
                              f"{FIX}.") from None
    result = plain(loaded, where)
    if not isinstance(result, dict):
        raise CheckpointError(f"{where} holds a {type(result).__name__}, not a checkpoint dict or a state dict; "
                              "pass the file torch.save wrote from a dict.")
    return result


# ---------------------------------------------------------------- the loaded object
_LEAVES = (str, int, float, bool, bytes, type(None))


def plain(root: Any, where: str) -> Any:
    """The loaded object with dicts, lists and tuples rebuilt, stand-ins replaced by plain values (arrays,
    numbers, ``{"numpy": kind, "state": ...}`` records) and anything else refused; iterative, depth-bounded."""
    def leaf(value: Any) -> Any:
        if torch.is_tensor(value) or type(value) in _LEAVES:
            return value
        if isinstance(value, (np.ndarray, np.generic)) and is_numeric_dtype(value.dtype):
            return value
        if type(value) is NumpyArray and value.value is not None:
            return value.value
        if type(value) is NumpyDtype and value.value is not None:
            return str(value.value)
        raise UnsafeFileError(f"{where}: the checkpoint holds a {printable(type(value).__name__, 40)}, which liftbench "
                              f"does not load; {FIX}")

    def children(value: Any) -> Iterable[Any] | None:
        if isinstance(value, dict):
            return value.items()
        if type(value) in (list, tuple):
            return value
        if type(value) in (RandomStateRecord, BitGeneratorRecord):
            return [value.state]
        return None

    out: dict[int, Any] = {}
    stack: list[tuple[Any, int, bool]] = [(root, 0, False)]
    while stack:
        value, depth, done = stack.pop()
        kids = children(value)
        if kids is None or (not done and id(value) in out):
            continue
        if depth > MAX_DEPTH:
            raise UnsafeFileError(f"{where}: the checkpoint nests containers more than {MAX_DEPTH} deep; {FIX}")
        if not done:
            stack.append((value, depth, True))
            for kid in (v for pair in kids for v in pair) if isinstance(value, dict) else kids:
                if id(kid) not in out and children(kid) is not None:
                    stack.append((kid, depth + 1, False))
            continue

        def get(kid: Any) -> Any:
            return out[id(kid)] if children(kid) is not None else leaf(kid)

        if isinstance(value, dict):
            rebuilt: Any = {get(k): get(v) for k, v in value.items()}
        elif type(value) in (RandomStateRecord, BitGeneratorRecord):
            rebuilt = {"numpy": value.kind, "state": get(value.state)}
        else:
            rebuilt = type(value)(get(k) for k in value)
        out[id(value)] = rebuilt
    return out[id(root)] if children(root) is not None else leaf(root)
