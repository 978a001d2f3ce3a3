"""`liftbench score` (external predictions, liftbench's protocol) and `liftbench show` (skeleton animations)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from liftbench.cli._common import DataDirOpt, KeypointsOpt, console, fmt
from liftbench.cli.app import app


@app.command("score", rich_help_panel="Evaluation")
def score(
    predictions: Annotated[Path, typer.Argument(
        help="Predictions .npz: liftbench's predictions.npz, a VideoPose3D-style "
        "dict {subject: {action: [4 cameras x (N, 17, 3)]}}, or arrays named "
        "'<subject>/<action>/<camera>'.")],
    data: Annotated[str, typer.Option("--data", help="Dataset whose test split is the ground truth, e.g. h36m.",
                                      rich_help_panel="Data")],
    data_dir: DataDirOpt = None, keypoints: KeypointsOpt = None,
    units: Annotated[str | None, typer.Option("--units", help="mm | m: units of the file (required for dict/flat "
                                              "layouts; liftbench's own file is mm).")] = None,
    root: Annotated[str | None, typer.Option(
        "--root", help="subtract | keep: make predictions root-relative by "
        "subtracting joint 0 (default for dict/flat files), or score the predicted "
        "root as is (default for liftbench's own file).")] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="Label for model/run_id in the rows (default: file stem).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Directory for results.csv and protocol.json "
                                             "(default results/external/<name>).")] = None,
    convention: Annotated[list[str] | None, typer.Option("--convention", help="Also score as a codebase's own "
                          "evaluation does (repeatable): videopose3d, motionbert, mixste.")] = None,
    allow_partial: Annotated[bool, typer.Option("--allow-partial", help="Score predictions that do not cover the "
                             "test set (rows flagged coverage=partial, never beside published numbers).")] = False,
) -> None:
    """Score predictions made by any codebase with liftbench's protocol (every test frame exactly once)."""
    from liftbench.report.render import conventions_table
    from liftbench.wild.score import score_file

    res = score_file(predictions, data, data_dir=data_dir, keypoints=keypoints, units=units, name=name, out=out,
                     root=root, conventions=tuple(convention or ()), allow_partial=allow_partial)
    for warning in res.warnings:
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    card = res.card
    table = Table(title=f"{card['model']} on {card['dataset']['name']} ({card['dataset']['keypoints']} frames), "
                        f"input {card['input']['layout']} layout in {card['input']['units']}")
    table.add_column("average")
    for metric in ("P1 MPJPE (mm)", "P2 P-MPJPE (mm)"):
        table.add_column(metric, justify="right")
    rows = res.rows[(res.rows["slice_type"] == "all") & (res.rows["convention"].astype(str) == "liftbench")]
    values = {(r.metric, r.slice): float(r.value) for r in rows.itertuples()}
    for averaging in ("action_mean", "frame_mean", "video_mean"):
        table.add_row(averaging, fmt(values.get(("mpjpe", averaging), float("nan"))),
                      fmt(values.get(("p_mpjpe", averaging), float("nan"))))
    console.print(table)
    if len(card["conventions"]) > 1:
        console.print(conventions_table(res.rows, card["conventions"]))
    if card.get("coverage", {}).get("partial"):
        cov = card["coverage"]
        console.print(f"[yellow]partial:[/] {cov['frames']:,} of {cov['test_frames']:,} test frames, "
                      f"{cov['videos']} of "
                      f"{cov['test_videos']} videos; per action group: "
                      + ", ".join(f"{g} {v['frames']}/{v['test_frames']}" for g, v in cov["per_action"].items()),
                      soft_wrap=True)
    frames = card["frames"]
    console.print(f"frames scored {frames['test_scored']:,} of {frames['test_expected']:,} (every frame exactly "
                  f"once: {frames['every_frame_exactly_once']}); sha256 {card['input']['sha256'][:16]}...",
                  soft_wrap=True)
    console.print(f"wrote {res.out_dir / 'results.csv'}, {res.out_dir / 'protocol.json'}", soft_wrap=True)


@app.command("show", rich_help_panel="Evaluation")
def show(
    source: Annotated[Path, typer.Argument(help="predictions.npz (evaluate --save-predictions), a run directory "
                                           "holding one, or a liftbench predict output .npz.")],
    out: Annotated[Path, typer.Option(
        "--out", help="anim.gif | anim.mp4 (needs ffmpeg) | still.png (a strip of frames).")],
    subject: Annotated[str | None, typer.Option("--subject", help="Video to show (default: the first one).")] = None,
    action: Annotated[str | None, typer.Option("--action", help="Action of that video, e.g. 'Walking 1'.")] = None,
    camera: Annotated[int | None, typer.Option("--camera", help="Camera index 0-3.")] = None,
    frames: Annotated[str | None, typer.Option("--frames", help="Frame numbers a:b (b excluded), a: or :b.")] = None,
    max_frames: Annotated[int, typer.Option(
        "--max-frames", help="Draw at most this many frames (every k-th beyond).")] = 300,
    fps: Annotated[float | None, typer.Option(
        "--fps", help="Playback rate of the source (default: the file's, else 50).")] = None,
    dpi: Annotated[int, typer.Option("--dpi", help="Resolution (a panel is 3 inches square).")] = 80,
    data: Annotated[str | None, typer.Option(
        "--data", help="Also draw a predictions.npz video's 2D input, taken from "
        "this dataset (the one it was evaluated on).", rich_help_panel="Data")] = None,
    data_dir: DataDirOpt = None, keypoints: KeypointsOpt = None,
) -> None:
    """Animate the 2D input, the predicted 3D and the ground truth side by side (bones coloured left/right)."""
    from liftbench.errors import ConfigError
    from liftbench.wild.show import frame_stride, load_clip, render

    if dpi < 10:
        raise ConfigError(f"--dpi must be >= 10, got {dpi}.")
    clip = load_clip(source, subject=subject, action=action, camera=camera, frames=frames, data=data,
                     data_dir=data_dir, keypoints=keypoints)
    rate = fps if fps is not None else (clip.fps or 50.0)
    stride = frame_stride(len(clip.frames), max_frames)
    if stride > 1 and out.suffix.lower() != ".png":
        console.print(f"{len(clip.frames)} frames > --max-frames {max_frames}: drawing one frame in {stride} "
                      "(use --frames a:b for a full-rate excerpt)", soft_wrap=True)
    path = render(out, clip.pred, keypoints_2d=clip.keypoints_2d, target=clip.target, frames=clip.frames, fps=rate,
                  title=clip.title, max_frames=max_frames, dpi=dpi, filled=clip.filled)
    console.print(f"wrote {path} ({clip.title}, frames {int(clip.frames[0])}-{int(clip.frames[-1])})", soft_wrap=True)
