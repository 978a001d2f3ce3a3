"""Shared CLI pieces: consoles, option types, small renderers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Dataset directory (h36m: the VideoPose3D .npz files; mocap-mini: cache dir). Env: LIFTBENCH_DATA.", rich_help_panel="Data")]
KeypointsOpt = Annotated[str | None, typer.Option("--keypoints", "-k", help="2D source: gt, cpn_ft_h36m_dbb, sh_ft_h36m or any data_2d_h36m_<name>.npz present.", rich_help_panel="Data")]
DataOpt = Annotated[str | None, typer.Option("--data", help="Dataset name (see `liftbench data list`); default mocap-mini.", rich_help_panel="Data")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto | cpu | cuda | cuda:N | mps.", rich_help_panel="Compute")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def fmt(value: float, digits: int = 1) -> str:
    return "—" if value != value else f"{value:.{digits}f}"  # NaN -> dash
