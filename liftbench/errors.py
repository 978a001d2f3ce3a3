"""The liftbench error family and the one place that turns an exception into a user message.

Every error a user can cause (bad file, bad option, unknown name) is a ``LiftbenchError`` whose
message is one line naming the file or option and the fix. The CLI prints that line and exits
with ``exit_code``; a traceback is shown only when ``LIFTBENCH_DEBUG=1``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class LiftbenchError(Exception):
    """Base class: a problem the user can fix. ``str(err)`` is the one-line message."""

    exit_code = 2


class ConfigError(LiftbenchError):
    """A bad config file, key, value or command-line option."""


class DataError(LiftbenchError):
    """A missing, malformed or inconsistent dataset file."""


class UnsafeFileError(DataError):
    """A file that would execute code or load non-data objects when read."""


class CheckpointError(LiftbenchError):
    """A missing, incompatible or unsafe checkpoint / run directory."""


class OutputError(LiftbenchError, OSError):
    """A file liftbench must write cannot be written (disk full, read-only, a file where a directory
    belongs). Also an ``OSError``, so code that already handles I/O failures keeps doing so."""


class CoverageError(LiftbenchError):
    """Evaluation did not score every test frame exactly once (a protocol violation)."""

    exit_code = 3


class UnknownNameError(LiftbenchError, KeyError):
    """An unknown registry name (lifter, dataset, metric, suite...)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingExtraError(LiftbenchError):
    """An optional dependency is not installed."""


def unknown_name_message(kind: str, name: str, available: Iterable[str]) -> str:
    """``Unknown lifter 'seq2sq'. Did you mean: seq2seq? Available: mlp, seq2seq``."""
    available = sorted(available)
    close = difflib.get_close_matches(name, available, n=3, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return f"Unknown {kind} '{name}'.{hint} Available: {', '.join(available) or '(none)'}"


def one_line(exc: BaseException) -> str:
    """Collapse an exception message to a single line for terminal output."""
    text = str(exc).strip() or exc.__class__.__name__
    return " ".join(text.split())
