"""The Typer application every ``*_cmd.py`` module registers its commands on."""

from __future__ import annotations

import typer

from liftbench import __version__
from liftbench.cli._common import console

app = typer.Typer(name="liftbench", no_args_is_help=True, rich_markup_mode="rich", add_completion=True,
                  pretty_exceptions_enable=False,
                  help="Benchmark and ablate 2D->3D human-pose lifters with honest Protocol #1/#2 numbers.")


def _version(value: bool) -> None:
    if value:
        console.print(f"liftbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """liftbench: train, evaluate and compare lifters on Human3.6M or the embedded mocap-mini."""
