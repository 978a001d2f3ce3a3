"""`liftbench predict` (lift your own 2D keypoints with a trained run) and `liftbench data export-2d`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from liftbench.cli._common import DataDirOpt, DeviceOpt, console, err_console
from liftbench.cli.app import app
from liftbench.cli.data_cmd import data_app
from liftbench.wild.keypoints import FORMATS, LAYOUT_OPTIONS

FORMAT_HELP = (f"{' | '.join(FORMATS)}. yolo: Ultralytics save_txt labels or Results.to_json(); mediapipe: "
               "pose_landmarks dumps; vitpose: easy_ViTPose --save-json; detectron2: coco_instances_results.json.")
LAYOUT_HELP = (f"Plain arrays: {' | '.join(LAYOUT_OPTIONS)} (default by joint count; 17 = COCO-17); OpenPose: body25 | "
               "body25b | coco18 (default: checked from the points).")
THRESHOLD_HELP = ("Points scoring below this are missing and interpolated over time. Default per format: 0.3; yolo, "
                  "mediapipe, vitpose 0.5; detectron2 0.05 (its scores are not probabilities).")


@app.command("predict", rich_help_panel="Evaluation")
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A trained run directory (results/runs/<run_id>).")],
    input: Annotated[Path, typer.Argument(help="2D keypoints of ONE video: a JSON file, a folder of per-frame JSON "
                                          "or YOLO .txt labels, or .npz/.npy/.csv.")],
    fmt: Annotated[str, typer.Option("--format", help=FORMAT_HELP, rich_help_panel="Input")] = "auto",
    layout: Annotated[str | None, typer.Option("--layout", help=LAYOUT_HELP, rich_help_panel="Input")] = None,
    width: Annotated[float | None, typer.Option("--width", help="Image width in pixels (required when the file "
                                                "does not store it).", rich_help_panel="Input")] = None,
    height: Annotated[float | None, typer.Option("--height", help="Image height in pixels.",
                                                 rich_help_panel="Input")] = None,
    score_threshold: Annotated[float | None, typer.Option("--score-threshold", help=THRESHOLD_HELP,
                                                          rich_help_panel="Input")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output .npz (a .json is written beside it); several "
                                             "people: <stem>_person<ID>.npz. Default <input>_3d.npz.",
                                             rich_help_panel="Output")] = None,
    render: Annotated[Path | None, typer.Option("--render", help="Also write an animation (.gif/.mp4/.png) per "
                                                "person.", rich_help_panel="Output")] = None,
    fps: Annotated[float, typer.Option("--fps", help="Frame rate of the video, for --render.",
                                       rich_help_panel="Output")] = 50.0,
    device: DeviceOpt = "auto",
) -> None:
    """Lift your own 2D keypoints (one video) to 3D with a trained run; writes .npz + .json per person."""
    from rich.markup import escape

    from liftbench.wild.predict import predict_file

    outcome = predict_file(run_dir, input, fmt=fmt, out=out, width=width, height=height,
                           score_threshold=score_threshold, layout=layout, device=device, render=render, fps=fps)
    console.print(f"format: [bold]{outcome.format}[/] ({escape(outcome.format_how)}); layout {outcome.layout}; "
                  f"image {outcome.image_size[0]:g} x {outcome.image_size[1]:g} from {outcome.image_size_source}; "
                  f"score threshold {outcome.score_threshold:g} ({escape(outcome.score_threshold_source)})",
                  soft_wrap=True)
    for note in outcome.notes:
        console.print(f"note: {escape(note)}", soft_wrap=True)
    identity = outcome.identification
    console.print(escape(identity.summary()), soft_wrap=True)
    for person in outcome.people:
        console.print(escape(_person_line(person)), soft_wrap=True)
    if identity.dropped:
        err_console.print(f"[yellow]dropped {identity.dropped} detection(s)[/] without a point scoring >= "
                          f"{outcome.score_threshold:g}: they cannot be placed; lower --score-threshold to keep them",
                          soft_wrap=True)
    for skipped in outcome.skipped:
        err_console.print(f"[yellow]skipped person {skipped.person_id}:[/] {skipped.reason}", soft_wrap=True)
    err_console.print(f"[yellow]warning:[/] {outcome.warning}", soft_wrap=True)


def _person_line(person) -> str:
    """'person 3: 62 frames (associated across frames, 62 detections, dropped 0 duplicate(s)), ... -> files'."""
    who = person.identity
    how = f"{who.identified_by}, {who.detections} detections, " if who else ""
    jumps = ""
    if who and who.jumps:
        more = " ..." if len(who.jumps) > 5 else ""
        jumps = (f", {len(who.jumps)} sudden jump(s) (possible identity switch) at frame(s) "
                 f"{', '.join(map(str, who.jumps[:5]))}{more}")
    files = f"{person.npz_path} + {person.json_path.name}" + (f", {person.render_path}" if person.render_path else "")
    return (f"person {person.person_id}: {person.n_frames} frames ({how}dropped {person.duplicates_dropped} "
            f"duplicate(s){jumps}), {person.n_frames_without_person} without the person (filled), "
            f"{person.n_joint_frames_filled} joint-frames filled -> {files}")


@data_app.command("export-2d")
def export_2d(
    name: Annotated[str, typer.Argument(help="Dataset name, e.g. mocap-mini.")],
    subject: Annotated[str, typer.Option("--subject", help="Subject, e.g. S9 (see liftbench data info).")],
    action: Annotated[str, typer.Option("--action", help="Action / take name as in the dataset.")],
    out: Annotated[Path, typer.Option("--out", help="Output .json (COCO-17 keypoint results).")],
    camera: Annotated[int, typer.Option("--camera", help="Camera index 0-3.")] = 0,
    fmt: Annotated[str, typer.Option("--format", help="coco (COCO-17 results JSON; eyes/ears invented from "
                                     "Head).")] = "coco",
    data_dir: DataDirOpt = None,
) -> None:
    """Export one clip's 2D keypoints as COCO-17 results JSON, to try `liftbench predict` on."""
    from liftbench.wild.predict import export_2d as export

    done = export(name, subject, action, camera, out, fmt=fmt, data_dir=data_dir)
    w, h = done.image_size
    console.print(f"wrote {done.path}: {done.n_frames} frames of {done.sequence[0]} '{done.sequence[1]}' camera "
                  f"{done.sequence[2]} as COCO-17 results (eyes/ears invented); image {w} x {h}: pass "
                  f"--width {w} --height {h} to liftbench predict", soft_wrap=True)
