"""Shared CLI pieces: consoles, option types, small renderers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="What the dataset reads. h36m: the directory holding the VideoPose3D .npz files (required; no environment default). mocap-mini: its build cache (default: $LIFTBENCH_DATA, else the user cache dir).", rich_help_panel="Data")]
KeypointsOpt = Annotated[str | None, typer.Option("--keypoints", "-k", help="2D source: gt, cpn_ft_h36m_dbb, sh_ft_h36m or any data_2d_h36m_<name>.npz present.", rich_help_panel="Data")]
DataOpt = Annotated[str | None, typer.Option("--data", help="Dataset name (see `liftbench data list`); default mocap-mini.", rich_help_panel="Data")]
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def check_device(value: str) -> str:
    """--device is checked when the command line is parsed (whether it is available, later)."""
    from liftbench.errors import ConfigError

    text = (value or "").strip().lower()
    if not DEVICE_PATTERN.fullmatch(text):
        raise ConfigError(f"--device '{value}' is not a device; use auto, cpu, cuda, cuda:N or mps.")
    return text


DeviceOpt = Annotated[str, typer.Option("--device", callback=check_device, help="auto | cpu | cuda | cuda:N | mps (auto: cuda if available, else mps, else cpu).", rich_help_panel="Compute")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def fmt(value: float, digits: int = 1) -> str:
    return "—" if value != value else f"{value:.{digits}f}"  # NaN -> dash
