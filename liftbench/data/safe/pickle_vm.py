"""A pure-Python pickle interpreter that can only rebuild plain data and plain numeric numpy arrays.

Why not ``pickle.Unpickler`` with a restrictive ``find_class``: even admitted numpy names let a file
hand numpy a dtype state of its own choosing (``dtype.__setstate__`` with an object field makes
numpy read file bytes as pointers), the C unpickler hashes file-built dict keys recursively (a tuple
nested 2 million deep overflows the C stack), and ``bytearray(3e9)`` allocates 3 GB from 394 bytes.
Here every opcode has its own handler, nothing from the file reaches a numpy constructor before it
is validated, and no file-chosen structure drives recursion:

* admitted opcodes: the protocol 2-5 subset numpy and Python emit for dicts, lists, tuples, str,
  int, float, bool, None, bytes and numpy arrays/dtypes/scalars (``_DISPATCH``); anything else is
  refused with ``UnsafeFileError``;
* admitted names: numpy's array, dtype and scalar reconstructors and ``_codecs.encode`` (protocol 2
  spells bytes with it), each replaced by our own handler; numpy itself is never called with file data
  except ``np.frombuffer`` on a buffer whose length was checked against ``prod(shape) * itemsize``;
* dtypes: built by us from a validated type string (``b1``, ``i1``-``i8``, ``u1``-``u8``, ``f2``-``f8``;
  object ``O8`` only for the member's own top-level array), after checking the pickled state has no
  fields, names, subarray or flags;
* raw bytes only ever become array data (each buffer used once), never objects of the result;
* limits: ``MAX_OPS`` opcodes, ``MAX_STACK`` stack entries, ``MAX_MEMO`` memo entries, ``MAX_DEPTH``
  nesting, dict keys of str/int/float/bool/None or tuples of them at most ``MAX_KEY_DEPTH`` deep, no
  cycles; every length is checked against the bytes the member declares before anything is allocated;
* memory: every byte the interpreter materialises (text, bytes, copies, container slots, a flat amount
  per opcode) is charged to the file's ``budget.Budget`` before it is allocated, and a text or buffer
  longer than ``REUSE_FREE`` bytes becomes array data at most once (``budget`` explains the bound).
"""

from __future__ import annotations

import codecs
import collections
import re
import struct
import sys
from typing import Any, Protocol

import numpy as np

from liftbench.data.safe.budget import (
    MAX_CONTAINERS,
    MAX_MEMO,
    MAX_OPS,
    MAX_STACK,
    OP_BYTES,
    SLOT_BYTES,
    Budget,
)
from liftbench.data.safe.numpy_rebuild import (
    GLOBALS,
    LONG_TEXT,
    ArrayBuilder,
    Callable,
    Internal,
    NumpyRebuilder,
    Raw,
    Text,
    printable,
)
from liftbench.data.safe.tree import check_tree
from liftbench.errors import DataError, UnsafeFileError

MAX_DEPTH = 64  # nesting of containers in the result (real files: 4)
MAX_KEY_DEPTH = 8  # nesting of tuples used as dict keys
MAX_EQUAL_HASHES = 64  # non-str dict keys sharing one hash value (crafted collisions make dicts quadratic)
_SPARSE_MEMO_MAX = 1000  # memo indices a file sets out of order (pickle itself numbers them 0, 1, 2...)
_GLOBAL_LINE_MAX = 256
_TEXT_CHUNK = 1 << 24  # bytes of a long text decoded at a time
_ASTRAL_OR_WIDE = re.compile(rb"[\xe0-\xff]")  # UTF-8 lead bytes of characters that widen a str past 1 byte each

FIX = "regenerate it with numpy arrays and plain dicts/lists only"


class Source(Protocol):
    """What the interpreter reads from: a member of known declared size (``safe_npz._MemberReader``)."""

    remaining: int

    def read(self, n: int) -> bytes: ...

    def read_buffer(self, n: int) -> bytearray: ...

    def readline(self, limit: int) -> bytes: ...


class RestrictedUnpickler(NumpyRebuilder):
    """Reads one pickle from ``source``; ``load()`` returns the unpickled object (see module doc)."""

    def __init__(self, source: Source, where: str, budget: Budget | None = None):
        self._budget = budget if budget is not None else Budget(where)
        self._src = source
        self._where = where
        self._stack: list[Any] = []
        self._metastack: list[list[Any]] = []
        self._saved = 0  # entries of the stacks set aside by MARK (``_metastack``)
        self._memo: list[Any] = []  # pickles number memo entries 0, 1, 2...: a list is compact
        self._sparse_memo: dict[int, Any] = {}  # any other index a file may choose
        # tuples that hold containers or internal objects: id -> depth << 2 | internal << 1 | hashable;
        # ``_pinned`` keeps them alive so that an id cannot be reused. Tuples of scalars are not listed.
        self._tuples: dict[int, int] = {}
        self._pinned: list[Any] = []
        self._used_texts: set[int] = set()
        self._key_hashes: collections.Counter[int] = collections.Counter()

    # ---- errors --------------------------------------------------------------------------------
    def _unsafe(self, problem: str) -> UnsafeFileError:
        return UnsafeFileError(f"{self._where}: pickled data {problem}; {FIX}")

    def _malformed(self, problem: str) -> DataError:
        return DataError(f"{self._where}: malformed pickled data ({problem}); re-download or regenerate it.")

    # ---- main loop -----------------------------------------------------------------------------
    def load(self) -> Any:
        dispatch = _DISPATCH
        read = self._src.read
        budget = self._budget
        while True:
            code = read(1)[0]
            budget.ops -= 1
            if budget.ops < 0:
                raise self._unsafe(f"has more than {MAX_OPS} opcodes in the file")
            if len(self._stack) + self._saved >= MAX_STACK:
                raise self._unsafe(f"puts more than {MAX_STACK} entries on the pickle stack")
            budget.charge(OP_BYTES, "objects", self._where)
            entry = dispatch.get(code)
            if entry is None:
                raise self._unsafe(f"uses opcode {_OPNAMES.get(code, hex(code))}, which liftbench does not load")
            if entry[0](self, entry[1]) is _STOP:
                break
        if len(self._stack) != 1 or self._metastack:
            raise self._malformed("stack not empty at STOP")
        result = self._stack.pop()
        self._check_tree(result)
        return result

    # ---- stack helpers -------------------------------------------------------------------------
    def _pop(self) -> Any:
        if not self._stack:
            raise self._malformed("stack underflow")
        return self._stack.pop()

    def _top(self) -> Any:
        if not self._stack:
            raise self._malformed("stack underflow")
        return self._stack[-1]

    def _pop_mark(self) -> list[Any]:
        if not self._metastack:
            raise self._malformed("no MARK")
        items = self._stack
        self._stack = self._metastack.pop()
        self._saved -= len(self._stack)
        return items

    # ---- classification ------------------------------------------------------------------------
    def _tuple_info(self, value: tuple) -> tuple[int, bool, bool]:
        """(depth, internal, hashable) of a tuple built here (or a literal tuple of scalars)."""
        packed = self._tuples.get(id(value))
        return (packed >> 2, bool(packed & 2), bool(packed & 1)) if packed is not None else (1, False, True)

    def _charge(self, n: int, what: str) -> None:
        self._budget.charge(n, what, self._where)

    def _count_container(self) -> None:
        self._budget.containers -= 1
        if self._budget.containers < 0:
            raise self._unsafe(f"builds more than {MAX_CONTAINERS} dicts, lists and tuples in the file")

    def _new_tuple(self, items: list[Any] | tuple[Any, ...]) -> tuple:
        self._count_container()
        self._charge(SLOT_BYTES * len(items), "tuple items")
        value = tuple(items)
        depth, internal, hashable = 1, False, True
        for item in value:
            if type(item) is tuple:
                d, i, h = self._tuple_info(item)
                depth, internal, hashable = max(depth, d + 1), internal or i, hashable and h
            elif type(item) in (list, dict):
                depth, hashable = max(depth, 2), False
            elif isinstance(item, Internal) or (isinstance(item, np.ndarray) and item.dtype.hasobject):
                internal, hashable = True, False
            elif isinstance(item, np.ndarray):
                hashable = False
        if depth > MAX_DEPTH:
            raise self._unsafe(f"nests tuples more than {MAX_DEPTH} deep")
        if depth > 1 or internal or not hashable:
            self._tuples[id(value)] = depth << 2 | internal << 1 | hashable
            self._pinned.append(value)
        return value

    def _check_value(self, value: Any) -> None:
        """Refuse a value that may not be stored in a list or dict of the result."""
        if type(value) is tuple:
            if self._tuple_info(value)[1]:
                raise self._unsafe("stores a numpy class, dtype or raw bytes inside a container")
        elif isinstance(value, Internal):
            raise self._unsafe(f"stores a {value.kind} inside a container (only arrays, numbers, "
                               "strings, None and containers are admitted)")
        elif isinstance(value, np.ndarray) and value.dtype.hasobject:
            raise self._unsafe("holds a nested object array")

    def _check_key(self, key: Any) -> None:
        """Dict keys: str, int, float, bool, None, or tuples of them at most MAX_KEY_DEPTH deep."""
        kind = type(key)
        if kind is str:
            return  # str hashes are randomised per process: collisions cannot be crafted
        if kind is tuple:
            depth, internal, hashable = self._tuple_info(key)
            if internal or not hashable:
                raise self._unsafe("uses a dict key that is not a plain value")
            if depth > MAX_KEY_DEPTH:
                raise self._unsafe(f"uses a dict key nested more than {MAX_KEY_DEPTH} deep")
        elif kind not in (int, float, bool, type(None)):
            raise self._unsafe(f"uses a dict key of type {kind.__name__}")
        code = hash(key)  # bounded: tuple depth <= MAX_KEY_DEPTH and built of hashable plain values
        self._key_hashes[code] += 1
        if self._key_hashes[code] > MAX_EQUAL_HASHES:
            raise self._unsafe(f"has more than {MAX_EQUAL_HASHES} dict keys with one hash value")

    # ---- opcode handlers (``arg`` comes from the dispatch table) ----------------------------------
    def op_proto(self, _):
        if self._src.read(1)[0] not in (2, 3, 4, 5):
            raise self._unsafe("uses a pickle protocol other than 2-5")

    def op_frame(self, _):
        if struct.unpack("<Q", self._src.read(8))[0] > self._src.remaining:
            raise self._malformed("frame longer than the member")

    def op_mark(self, _):
        self._count_container()
        self._metastack.append(self._stack)
        self._saved += len(self._stack)
        self._stack = []

    def op_new(self, kind: type):  # EMPTY_DICT, EMPTY_LIST
        self._count_container()
        self._stack.append(kind())

    def op_tuple(self, n: int | None):
        if n is None:
            items = self._pop_mark()
        elif len(self._stack) < n:
            raise self._malformed("stack underflow")
        else:
            items = self._stack[len(self._stack) - n:]
            del self._stack[len(self._stack) - n:]
        self._stack.append(self._new_tuple(items))

    def op_append(self, many: bool):
        items = self._pop_mark() if many else [self._pop()]
        target = self._top()
        if type(target) is not list:
            raise self._malformed("APPEND to a non-list")
        for value in items:
            self._check_value(value)
        self._charge(SLOT_BYTES * len(items), "list items")
        target.extend(items)

    def op_setitem(self, many: bool):
        if many:
            items = self._pop_mark()
        elif len(self._stack) < 3:
            raise self._malformed("stack underflow")
        else:
            items = self._stack[-2:]
            del self._stack[-2:]
        target = self._top()
        if type(target) is not dict:
            raise self._malformed("SETITEM on a non-dict")
        if len(items) % 2:
            raise self._malformed("odd number of items for SETITEMS")
        self._charge(3 * SLOT_BYTES * len(items), "dict items")  # a dict entry: hash, key, value
        for key, value in zip(items[::2], items[1::2]):
            self._check_key(key)
            self._check_value(value)
            target[key] = value

    def op_const(self, value: Any):  # NONE, NEWTRUE, NEWFALSE, EMPTY_TUPLE
        self._stack.append(value)

    def op_number(self, fmt: str):  # BININT, BININT1, BININT2, BINFLOAT
        self._stack.append(struct.unpack(fmt, self._src.read(struct.calcsize(fmt)))[0])

    def op_long1(self, _):
        n = self._src.read(1)[0]
        self._stack.append(int.from_bytes(self._src.read(n), "little", signed=True))

    def _length(self, fmt: str) -> int:
        n = struct.unpack(fmt, self._src.read(struct.calcsize(fmt)))[0]
        if n < 0 or n > self._src.remaining:
            raise self._malformed(f"a length of {n} bytes runs past the end of the member")
        return n

    def op_text(self, how: tuple[str, str]):  # (SHORT_)BINUNICODE(8); Python 2 (SHORT_)BINSTRING as latin1
        n = self._length(how[0])
        if n > LONG_TEXT:
            self._stack.append(self._long_text(n, how[1]))
            return
        data = self._src.read_buffer(n)  # charged by the source
        # a str takes 1, 2 or 4 bytes per character: charge the widest its bytes allow before decoding
        width = 4 if how[1] != "latin1" and _ASTRAL_OR_WIDE.search(data) else 1
        self._charge(width * n + 64, "text")
        try:
            text = str(data, how[1])
        except UnicodeDecodeError:
            raise self._malformed("invalid UTF-8 text") from None
        self._budget.refund(len(data) + width * n + 64 - sys.getsizeof(text))
        del data
        self._stack.append(text)

    def _long_text(self, n: int, encoding: str) -> Text:
        """A long text decoded chunk by chunk into its latin1 bytes (it can only be array data)."""
        decoder = codecs.getincrementaldecoder(encoding)()
        out = bytearray()
        while n:
            chunk = self._src.read_buffer(min(n, _TEXT_CHUNK))  # charged by the source
            n -= len(chunk)
            self._charge(len(chunk), "text")  # what ``out`` grows by: at most the bytes read
            try:
                decoded = chunk if encoding == "latin1" else decoder.decode(chunk, final=not n).encode("latin1")
            except UnicodeDecodeError:
                raise self._malformed("invalid UTF-8 text") from None
            except UnicodeEncodeError:
                raise self._unsafe("holds a text of more than 1 MiB that is not array data") from None
            out += decoded
            self._budget.refund(2 * len(chunk) - len(decoded))  # the chunk is freed; ``out`` grew by len(decoded)
            del chunk, decoded
        return Text(out)

    def op_bytes(self, fmt: str):  # (SHORT_)BINBYTES(8), BYTEARRAY8: only ever array data
        self._stack.append(Raw(self._src.read_buffer(self._length(fmt))))

    def op_put(self, fmt: str | None):  # BINPUT, LONG_BINPUT, MEMOIZE
        index = struct.unpack(fmt, self._src.read(struct.calcsize(fmt)))[0] if fmt else len(self._memo)
        value = self._top()
        if index == len(self._memo):
            if index >= MAX_MEMO:
                raise self._unsafe(f"stores more than {MAX_MEMO} memo entries")
            self._memo.append(value)
        elif index < len(self._memo):
            self._memo[index] = value
        elif len(self._sparse_memo) < _SPARSE_MEMO_MAX:
            self._sparse_memo[index] = value
        else:
            raise self._unsafe(f"stores more than {_SPARSE_MEMO_MAX} memo entries out of order")

    def op_get(self, fmt: str):  # BINGET, LONG_BINGET
        index = struct.unpack(fmt, self._src.read(struct.calcsize(fmt)))[0]
        value = self._memo[index] if index < len(self._memo) else self._sparse_memo.get(index, _MISSING)
        if value is _MISSING:
            raise self._malformed(f"memo entry {index} used before it was stored")
        if type(value) is ArrayBuilder and value.array is not None:
            value = value.array
        self._stack.append(value)

    # ---- globals, REDUCE, BUILD ------------------------------------------------------------------
    def _global(self, module: str, name: str) -> None:
        try:
            self._stack.append(Callable(GLOBALS[(module, name)]))
        except KeyError:
            raise UnsafeFileError(
                f"{self._where}: refuses to load '{printable(module)}.{printable(name)}' from the pickled "
                f"data (it names code, not data: the file may execute code); {FIX}") from None

    def op_global(self, _):
        module = self._src.readline(_GLOBAL_LINE_MAX)
        name = self._src.readline(_GLOBAL_LINE_MAX)
        self._global(module.decode("latin1"), name.decode("latin1"))

    def op_stack_global(self, _):
        name, module = self._pop(), self._pop()
        if type(name) is not str or type(module) is not str:
            raise self._malformed("STACK_GLOBAL without two strings")
        self._global(module, name)

    def op_reduce(self, _):
        args = self._pop()
        func = self._top()
        if type(func) is not Callable or type(args) is not tuple:
            raise self._malformed("REDUCE without an admitted callable and an argument tuple")
        self._stack[-1] = self.reduce(func, args)

    def op_build(self, _):
        state = self._pop()
        self._stack[-1] = self.build(self._top(), state)

    def op_stop(self, _):
        return _STOP

    # ---- the result ------------------------------------------------------------------------------
    def _check_tree(self, root: Any) -> None:
        """The finished result: admitted leaves, no cycles, depth <= MAX_DEPTH (``tree.check_tree``)."""
        problem = check_tree(root, MAX_DEPTH)
        if problem:
            raise self._unsafe(problem)


_STOP = object()
_MISSING = object()
_U = RestrictedUnpickler
_DISPATCH: dict[int, tuple[Any, Any]] = {  # opcode -> (handler, its argument)
    0x80: (_U.op_proto, None), 0x95: (_U.op_frame, None), ord("("): (_U.op_mark, None),
    ord("}"): (_U.op_new, dict), ord("]"): (_U.op_new, list), ord(")"): (_U.op_const, ()),
    ord("t"): (_U.op_tuple, None), 0x85: (_U.op_tuple, 1), 0x86: (_U.op_tuple, 2), 0x87: (_U.op_tuple, 3),
    ord("a"): (_U.op_append, False), ord("e"): (_U.op_append, True),
    ord("s"): (_U.op_setitem, False), ord("u"): (_U.op_setitem, True),
    ord("N"): (_U.op_const, None), 0x88: (_U.op_const, True), 0x89: (_U.op_const, False),
    ord("J"): (_U.op_number, "<i"), ord("K"): (_U.op_number, "<B"), ord("M"): (_U.op_number, "<H"),
    ord("G"): (_U.op_number, ">d"), 0x8A: (_U.op_long1, None),
    0x8C: (_U.op_text, ("<B", "utf-8")), ord("X"): (_U.op_text, ("<I", "utf-8")), 0x8D: (_U.op_text, ("<Q", "utf-8")),
    ord("U"): (_U.op_text, ("<B", "latin1")), ord("T"): (_U.op_text, ("<i", "latin1")),
    ord("C"): (_U.op_bytes, "<B"), ord("B"): (_U.op_bytes, "<I"), 0x8E: (_U.op_bytes, "<Q"), 0x96: (_U.op_bytes, "<Q"),
    ord("q"): (_U.op_put, "<B"), ord("r"): (_U.op_put, "<I"), 0x94: (_U.op_put, None),
    ord("h"): (_U.op_get, "<B"), ord("j"): (_U.op_get, "<I"),
    ord("c"): (_U.op_global, None), 0x93: (_U.op_stack_global, None), ord("R"): (_U.op_reduce, None),
    ord("b"): (_U.op_build, None), ord("."): (_U.op_stop, None),
}


def _opcode_names() -> dict[int, str]:
    import pickletools

    return {ord(op.code.encode("latin1")): op.name for op in pickletools.opcodes}


_OPNAMES = _opcode_names()
