"""Typer command-line interface. Commands parse, call the library, render; no numerics here.

``app.py`` holds the Typer app, each ``*_cmd.py`` registers its commands on it; this module wires them
together (importing every command module) and is the ``liftbench`` script's entry point.

``main()`` is the single place that turns a ``LiftbenchError`` into one line on stderr and its exit
code (2 for user errors); tracebacks appear only with ``LIFTBENCH_DEBUG=1``. The last-resort rule for
input files lives with the readers: ``values.reading(path)`` turns any unexpected exception a malformed
file triggers into a ``DataError`` naming that file (its traceback chained, shown under
``LIFTBENCH_DEBUG=1``); an unexpected exception anywhere else is a bug and keeps its traceback. numpy's
floating-point ``RuntimeWarning`` lines never reach stderr (outside debug): where they matter, the
derived arrays are checked finite and the error names the input.
"""

from __future__ import annotations

import sys
import warnings

from liftbench.cli import (  # noqa: F401  (registration)
    bench_cmd,
    check_cmd,
    data_cmd,
    import_cmd,
    model_cmd,
    predict_cmd,
    score_cmd,
    suite_cmd,
)
from liftbench.cli._common import err_console
from liftbench.cli.app import app
from liftbench.errors import LiftbenchError, one_line
from liftbench.values import debug_enabled

# numpy's floating-point warnings ("overflow encountered in multiply"...): expected on hostile inputs, whose
# results are checked finite where it matters; printed they would break the one-line error rule
_NUMPY_FP_WARNINGS = r"(overflow|invalid value|divide by zero|underflow) encountered|Mean of empty slice"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``liftbench`` script; returns the exit code (also usable from tests)."""
    debug = debug_enabled()
    try:
        with warnings.catch_warnings():
            if not debug:
                warnings.filterwarnings("ignore", message=_NUMPY_FP_WARNINGS, category=RuntimeWarning)
            app(args=argv, prog_name="liftbench")  # standalone mode: usage errors print and exit 2
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except LiftbenchError as exc:
        if debug:
            raise
        from rich.markup import escape  # messages quote things like 'liftbench[ray]': not markup

        err_console.print(f"[bold red]error:[/] {escape(one_line(exc))}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except OSError as exc:  # the user's paths: disk full, read-only filesystem, a file where a directory belongs
        if debug:
            raise
        from rich.markup import escape

        err_console.print(f"[bold red]error:[/] {escape(one_line(exc))} (check the path, its permissions and free "
                          "disk space; LIFTBENCH_DEBUG=1 shows where)", highlight=False, soft_wrap=True)
        return 2
    except MemoryError:  # a legitimately huge input or model on a small machine: say so, never a traceback
        if debug:
            raise
        err_console.print("[bold red]error:[/] out of memory while computing (input files name themselves when "
                          "they are what does not fit); use a smaller model, batch or data subset "
                          "(LIFTBENCH_DEBUG=1 shows where)", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("aborted (completed work is saved; re-run the same command to continue)")
        return 130


def entry() -> None:
    sys.exit(main())
