"""Shared CLI pieces: consoles, option types, small renderers.

Without a terminal (a log file, CI, a pipe) rich would render at 80 columns and wrap wide tables into
unreadable 8-character columns; the consoles then render at ``$COLUMNS`` if set, else ``LOG_WIDTH``.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.console import Console

LOG_WIDTH = 160  # columns of tables written to a file or pipe (no terminal to ask)


def interactive(stream: TextIO) -> bool:
    """Someone watches ``stream``: it is a terminal and ``TERM`` is not 'dumb' (live bars make sense)."""
    try:
        return stream.isatty() and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def render_width(stream: TextIO) -> int | None:
    """None on a terminal (rich asks it, or reads $COLUMNS); otherwise $COLUMNS, else ``LOG_WIDTH``."""
    if interactive(stream):
        return None
    columns = os.environ.get("COLUMNS", "").strip()
    return int(columns) if columns.isdigit() and int(columns) > 0 else LOG_WIDTH


console = Console(highlight=False, width=render_width(sys.stdout))
err_console = Console(stderr=True, highlight=False, width=render_width(sys.stderr))

DataDirOpt = Annotated[Path | None, typer.Option(
    "--data-dir", help="What the dataset reads. h36m: the directory holding the VideoPose3D .npz files (required; no "
    "environment default). mocap-mini: its build cache (default: $LIFTBENCH_DATA, else the user cache dir).",
    rich_help_panel="Data")]
KeypointsOpt = Annotated[str | None, typer.Option(
    "--keypoints", "-k", help="2D source: gt, cpn_ft_h36m_dbb, sh_ft_h36m or any data_2d_h36m_<name>.npz present.",
    rich_help_panel="Data")]
DataOpt = Annotated[str | None, typer.Option(
    "--data", help="Dataset name (see `liftbench data list`); default mocap-mini.", rich_help_panel="Data")]
TensorBoardOpt = Annotated[bool, typer.Option(
    "--tensorboard", help="Also log loss, lr, step time, test MPJPE per epoch and the resolved config to "
    "<run dir>/tensorboard/ (pip install 'liftbench\\[tensorboard]'). No effect on results or run ids.",
    rich_help_panel="Logging")]
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def check_device(value: str) -> str:
    """--device is checked when the command line is parsed (whether it is available, later)."""
    from liftbench.errors import ConfigError

    text = (value or "").strip().lower()
    if not DEVICE_PATTERN.fullmatch(text):
        raise ConfigError(f"--device '{value}' is not a device; use auto, cpu, cuda, cuda:N or mps.")
    return text


DeviceOpt = Annotated[str, typer.Option(
    "--device", callback=check_device, help="auto | cpu | cuda | cuda:N | mps (auto: cuda if available, else mps, "
    "else cpu).", rich_help_panel="Compute")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def fmt(value: float, digits: int = 1) -> str:
    return "—" if value != value else f"{value:.{digits}f}"  # NaN -> dash
