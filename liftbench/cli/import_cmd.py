"""`liftbench import-checkpoint` (released weights in as a run) and `liftbench export-checkpoint` (a run out in
its lifter's published layout)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from liftbench.cli._common import console
from liftbench.cli.app import app

FORMAT_HELP = ("Published layout: videopose3d (VideoPose3D TemporalModel: pretrained_h36m_cpn.bin ...), motionbert "
               "(DSTformer: best_epoch.bin, also mmpose's converted weights), mixste (MixSTE2).")


@app.command("import-checkpoint", rich_help_panel="Models")
def import_checkpoint(
    fmt: Annotated[str, typer.Argument(metavar="FORMAT", help=FORMAT_HELP)],
    file: Annotated[Path, typer.Argument(help="The released checkpoint file (.bin / .pth), read without running "
                                         "code.")],
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="What the weights cannot tell (e.g. --set causal=true, --set num_heads=8), and the data the run "
        "is scored on by default (--set data.name=h36m --set keypoints=cpn_ft_h36m_dbb). Repeatable.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Results root: the run directory is OUT/runs/<model>-<config "
                                      "hash>/, found by suites with the same --out like a trained run.")
                   ] = Path("results"),
) -> None:
    """Import released weights as a run directory that evaluate, predict, score, show, compare and suites use."""
    from rich.markup import escape

    from liftbench.config import parse_assignments
    from liftbench.wild.checkpoints import import_checkpoint as run_import

    done = run_import(fmt, file, parse_assignments(set_), out)
    src = done.source
    verb = "already imported" if done.already else "imported"
    console.print(f"{verb} {escape(src['name'])} ({src['size']:,} bytes, sha256 {src['sha256'][:12]}) as "
                  f"[bold]{done.model}[/] -> {done.run_dir}", soft_wrap=True)
    notes = []
    if done.weights.stripped_prefix:
        notes.append(f"stripped the DataParallel prefix '{done.weights.stripped_prefix}'")
    if done.weights.renamed:
        notes.append(f"renamed {done.weights.renamed} keys to the official names")
    if notes:
        console.print("weights: " + "; ".join(notes), soft_wrap=True)
    console.print("read from the tensors: " + _pairs(done.from_tensors), soft_wrap=True)
    if done.from_set:
        console.print("from --set: " + _pairs(done.from_set), soft_wrap=True)
    for key, (value, why) in done.defaults.items():
        console.print(f"[yellow]published default[/] {key}={_value(value)}: {escape(why)} (--set {key}=... to "
                      "change)", soft_wrap=True)
    for note in done.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
    console.print(f"next: liftbench evaluate {done.run_dir} --data <dataset> --keypoints <2D source>", soft_wrap=True)


@app.command("export-checkpoint", rich_help_panel="Models")
def export_checkpoint(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (trained or imported).")],
    fmt: Annotated[str, typer.Argument(metavar="FORMAT", help=FORMAT_HELP)],
    out: Annotated[Path, typer.Argument(help="The checkpoint file to write.")],
    legacy: Annotated[bool, typer.Option("--legacy", help="Write torch's pre-1.6 format (as VideoPose3D's 2019 "
                                         "files) instead of the zip archive.")] = False,
) -> None:
    """Write a run's weights in its lifter's published layout ({epoch, lr, model_pos, ...}, 'module.' keys)."""
    from liftbench.wild.checkpoints import export_checkpoint as run_export

    done = run_export(run_dir, fmt, out, legacy=legacy)
    console.print(f"wrote {done.path}: {done.tensors} tensors under model_pos ('module.' keys), entries "
                  f"{', '.join(done.entries)} ({done.format} layout)", soft_wrap=True)


def _value(value) -> str:
    return str(value).lower() if isinstance(value, bool) else f"{value:g}" if isinstance(value, float) else str(value)


def _pairs(values: dict) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in values.items()) or "(nothing)"
