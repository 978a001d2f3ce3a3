"""The memory bound of the safe ``.npz`` reader: one budget per file, charged before every allocation.

A file can only make the reader hold about as much as it really contains: the budget of a file is
``FACTOR`` x the bytes its members really yielded so far (inflated, counted as they are read, never a
size the file declares) + ``SLACK`` bytes. Everything the reader materialises is charged *before* it
is allocated: array data, text, byte buffers, copies (``_codecs.encode``, text used as array data),
container slots and a flat amount per opcode (the Python objects it creates). A charge that would pass
the budget is an ``UnsafeFileError`` naming the file, raised before the allocation. Temporaries that
are freed at once (a decoded text's raw bytes) are refunded.

What this closes: a short text memoised once and fetched again for free (``BINGET``), each fetch then
copied by a reduce, let a 1.3 KB file allocate 1.5 GB (issue 22). With the budget the copies are
charged (and a text or buffer longer than ``REUSE_FREE`` bytes may become array data only once).
The opcode count, the stack, the memo and the container count have their own limits.
"""

from __future__ import annotations

from liftbench.errors import UnsafeFileError

MiB = 1 << 20
FACTOR = 2  # the reader may hold twice the bytes the file really holds (protocol 2: text + its bytes)
SLACK = 64 * MiB  # + this, for Python objects, read-ahead and small values
OP_BYTES = 64  # charged per opcode: the int, float or empty container an opcode may create
SLOT_BYTES = 8  # charged per container slot (a list/tuple item, a dict value)
MAX_OPS = 500_000  # opcodes per file: real VideoPose3D files need ~45 per array (~40k for H36M 2D)
MAX_CONTAINERS = 200_000  # dicts, lists, tuples and MARKs per file (~9 per array)
MAX_STACK = 100_000  # entries on the pickle stack, counting those set aside by MARK (real files: < 20)
MAX_MEMO = 200_000  # memo entries per pickle (real files: ~6 per array)
REUSE_FREE = 256  # bytes: a longer text or buffer may become array data only once


class Budget:
    """Bytes, opcodes and containers left for one file: shared by all its members (a thousand small
    members cannot each spend the whole allowance)."""

    def __init__(self, where: str = "", *, factor: int | None = None, slack: int | None = None) -> None:
        self.where = where
        self.ops = MAX_OPS
        self.containers = MAX_CONTAINERS
        self.read = 0  # member bytes really read (inflated) so far
        self.charged = 0  # bytes of values the reader holds (or held: only known temporaries are refunded)
        self.peak = 0
        self._factor = FACTOR if factor is None else factor
        self._slack = SLACK if slack is None else slack

    @property
    def limit(self) -> int:
        return self._factor * self.read + self._slack

    def note_read(self, n: int) -> None:
        """``n`` more bytes came out of a member (the stream, after inflation)."""
        self.read += n

    def charge(self, n: int, what: str, where: str | None = None) -> None:
        """Account for ``n`` bytes about to be allocated for ``what``; refuse them past the limit."""
        self.charged += n
        if self.charged > self.limit:
            raise UnsafeFileError(
                f"{where or self.where}: reading it would take more than {self._factor} x the "
                f"{self.read / MiB:.1f} MiB of data it holds + {self._slack // MiB} MiB of memory ({what}; a file "
                "that reuses one value many times?); regenerate it with numpy arrays and plain dicts/lists only")
        self.peak = max(self.peak, self.charged)

    def refund(self, n: int) -> None:
        """``n`` charged bytes were freed (a temporary)."""
        self.charged -= n
