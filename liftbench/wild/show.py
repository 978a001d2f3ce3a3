"""Skeleton animations and stills of predicted (and ground-truth) 3D poses (``liftbench show``).

Why: a number says how wrong a lifter is, a picture says *how* (depth flips, left/right swaps,
jitter). ``render`` draws, side by side, the 2D input (when known), the predicted 3D and the ground
truth (when known), bones coloured left (blue) / right (red) / centre (grey), and the per-frame
MPJPE in the title when a target is known. Output by extension: ``.gif`` (Pillow), ``.mp4``
(ffmpeg, when installed) or ``.png`` (a strip of a few frames, one column per frame).

3D poses are root-relative camera-frame millimetres (the title's MPJPE compares them as given, as
``evaluate`` does), drawn around the origin (joint 0 subtracted) with the camera's
"down" axis pointing down the screen: plot axes (x, z, -y). matplotlib is imported lazily and only
through ``matplotlib.figure.Figure`` (no pyplot, no global backend switch), so importing this
module costs nothing and rendering is headless.

``load_clip`` reads what there is to show: a liftbench ``predictions.npz`` (pick a video), a run
directory holding one, or a ``liftbench predict`` output ``.npz`` (``poses_3d``, ``keypoints_2d``,
``frames``, ``filled``, ``joint_names``, ``meta``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from liftbench._files import write_bytes_atomic
from liftbench.data import load_dataset
from liftbench.data.h36m import normalise_action
from liftbench.data.safe.npz import load_members
from liftbench.data.skeleton import LEFT_JOINTS, NUM_JOINTS, PARENTS, RIGHT_JOINTS, root_centre
from liftbench.errors import ConfigError, DataError, MissingExtraError, unknown_name_message
from liftbench.values import finite_array, float32_safe, id_array, printable, reading, user_file

FORMATS = (".gif", ".mp4", ".png")
PANEL_INCHES = 3.0  # each panel is a PANEL_INCHES square, so a file's pixel size is predictable
STRIP_FRAMES = 5  # frames in a PNG strip
DEFAULT_MAX_FRAMES = 300
LEFT_COLOUR, RIGHT_COLOUR, CENTRE_COLOUR = "tab:blue", "tab:red", "0.35"
PREDICTIONS_FILE = "predictions.npz"
LIFTBENCH_KEYS = ("subject", "action", "camera", "frame", "pred")


def bone_colours() -> list[str]:
    """Colour of the bone ending at each non-root joint (index j - 1 for joint j)."""
    side = {**{j: LEFT_COLOUR for j in LEFT_JOINTS}, **{j: RIGHT_COLOUR for j in RIGHT_JOINTS}}
    return [side.get(j, CENTRE_COLOUR) for j in range(1, NUM_JOINTS)]


def frame_stride(n_frames: int, max_frames: int) -> int:
    """Every k-th frame is drawn so at most ``max_frames`` are (the whole clip stays covered)."""
    if max_frames < 1:
        raise ConfigError(f"--max-frames must be >= 1, got {max_frames}.")
    return max(1, math.ceil(n_frames / max_frames))


def strip_indices(n_frames: int, count: int = STRIP_FRAMES) -> np.ndarray:
    """Up to ``count`` evenly spaced frame positions, first and last included."""
    return np.unique(np.linspace(0, n_frames - 1, min(count, n_frames)).round().astype(np.int64))


def _poses(arr, name: str, n: int | None, dims: int, allow_nan: bool = False) -> np.ndarray:
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1:] != (NUM_JOINTS, dims) or (n is not None and len(arr) != n):
        want = f"({n if n is not None else 'N'}, {NUM_JOINTS}, {dims})"
        raise DataError(f"{name}: shape {arr.shape}, expected {want}.")
    if not allow_nan and not np.isfinite(arr).all():
        raise DataError(f"{name}: contains NaN/inf; only finite poses can be drawn.")
    return arr


def _plot_xyz(poses: np.ndarray) -> np.ndarray:
    """(..., 17, 3) camera frame (x right, y down, z forward) -> plot (x, z, -y): up is up."""
    return np.stack([poses[..., 0], poses[..., 2], -poses[..., 1]], axis=-1)


class _Panels:
    """The figure with one axis per panel and the line artists a frame update moves."""

    def __init__(self, fig, cells: list[tuple[int, int, int]], keypoints_2d, poses_3d: list[tuple[str, np.ndarray]]):
        """``cells``: the (rows, cols, index) subplot position of each panel, 2D panel first."""
        self.lines_2d, self.lines_3d, self.points_2d, self.axes = [], [], None, []
        colours = bone_colours()
        cells = iter(cells)
        if keypoints_2d is not None:
            ax = fig.add_subplot(*next(cells))
            self.axes.append(ax)
            finite = keypoints_2d[np.isfinite(keypoints_2d).all(axis=-1)]  # (K, 2)
            lo, hi = (finite.min(axis=0), finite.max(axis=0)) if len(finite) else (np.zeros(2), np.ones(2))
            pad = 0.1 * float(max(hi - lo)) + 1.0
            centre, half = (lo + hi) / 2, float(max(hi - lo)) / 2 + pad
            ax.set_xlim(centre[0] - half, centre[0] + half)
            ax.set_ylim(centre[1] + half, centre[1] - half)  # image rows grow downwards
            ax.set_aspect("equal")
            ax.set_title("2D input (px)", fontsize=8)
            ax.tick_params(labelsize=6)
            self.lines_2d = [ax.plot([], [], color=c, lw=2)[0] for c in colours]
            self.points_2d = ax.plot([], [], "x", color="k", ms=5)[0]  # joints filled by interpolation
        reach = max(float(np.abs(p).max()) for _, p in poses_3d) * 1.05 + 1.0
        for label, _ in poses_3d:
            ax = fig.add_subplot(*next(cells), projection="3d")
            self.axes.append(ax)
            ax.set_xlim(-reach, reach), ax.set_ylim(-reach, reach), ax.set_zlim(-reach, reach)
            ax.set_box_aspect((1, 1, 1), zoom=1.2)
            ax.view_init(elev=12, azim=-75)
            ax.set_title(label, fontsize=8)
            ax.set_xticklabels([]), ax.set_yticklabels([]), ax.set_zticklabels([])  # the grid shows scale enough
            self.lines_3d.append([ax.plot([], [], [], color=c, lw=2)[0] for c in colours])

    def update(self, i: int, keypoints_2d, poses_3d: list[tuple[str, np.ndarray]], filled) -> None:
        if keypoints_2d is not None:
            kp = keypoints_2d[i]
            for j, line in enumerate(self.lines_2d, start=1):
                line.set_data([kp[j, 0], kp[PARENTS[j], 0]], [kp[j, 1], kp[PARENTS[j], 1]])
            mask = filled[i] if filled is not None else np.zeros(NUM_JOINTS, bool)
            self.points_2d.set_data(kp[mask, 0], kp[mask, 1])
        for lines, (_, poses) in zip(self.lines_3d, poses_3d):
            p = poses[i]
            for j, line in enumerate(lines, start=1):
                line.set_data_3d([p[j, 0], p[PARENTS[j], 0]], [p[j, 1], p[PARENTS[j], 1]], [p[j, 2], p[PARENTS[j], 2]])


def render(out_path, pred, keypoints_2d=None, target=None, frames=None, fps: float = 50.0, title: str = "", *,
           max_frames: int = DEFAULT_MAX_FRAMES, dpi: int = 80, filled=None) -> Path:
    """Draw ``pred`` (N, 17, 3) mm [+ ``keypoints_2d`` (N, 17, 2) px, ``target`` (N, 17, 3) mm] to ``out_path``.

    ``.gif``/``.mp4``: one frame per pose, every ``frame_stride(N, max_frames)``-th pose when N is
    larger (the playback rate divided accordingly, so the clip keeps its duration); ``.png``: a
    strip of ``STRIP_FRAMES`` evenly spaced frames. ``frames`` (N,) are the frame numbers shown in
    the titles (default 0..N-1); ``filled`` (N, 17) bool marks 2D joints that were interpolated.
    """
    out_path = Path(out_path)
    suffix = out_path.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"--out {out_path}: unknown extension '{out_path.suffix}'; use one of {', '.join(FORMATS)}.")
    if not fps > 0:
        raise ConfigError(f"--fps must be > 0, got {fps}.")
    pred = _poses(pred, "pred", None, 3)
    n = len(pred)
    if n == 0:
        raise DataError("pred: no frames to draw; choose a non-empty --frames range.")
    target = None if target is None else _poses(target, "target", n, 3)
    keypoints_2d = None if keypoints_2d is None else _poses(keypoints_2d, "keypoints_2d", n, 2, allow_nan=True)
    frames = np.arange(n) if frames is None else np.asarray(frames).reshape(-1)
    if len(frames) != n:
        raise DataError(f"frames: {len(frames)} frame numbers for {n} poses.")
    filled = None if filled is None else np.asarray(filled, dtype=bool).reshape(n, NUM_JOINTS)
    pred_rel = root_centre(pred)  # (N, 17, 3) drawn around the origin
    errors = None
    if target is not None:
        target_rel = root_centre(target)
        # MPJPE of the poses as given (as evaluate scores them: a predicted root keeps its error), 17 joints
        errors = np.linalg.norm(pred - target, axis=-1).mean(axis=-1)  # (N,) mm
    poses_3d = [("predicted 3D (mm)", _plot_xyz(pred_rel))]
    if target is not None:
        poses_3d.append(("ground truth 3D (mm)", _plot_xyz(target_rel)))
    n_panels = len(poses_3d) + (keypoints_2d is not None)

    def caption(i: int) -> str:
        text = f"{title}  frame {frames[i]}".strip()
        return text + (f"  MPJPE {errors[i]:.1f} mm" if errors is not None else "")

    from matplotlib.figure import Figure

    if suffix == ".png":
        picks = strip_indices(n)
        fig = Figure(figsize=(PANEL_INCHES * len(picks), PANEL_INCHES * n_panels))
        fig.subplots_adjust(left=0.04, right=0.98, bottom=0.02, top=0.92, wspace=0.15, hspace=0.25)
        for col, i in enumerate(picks):
            # one column per frame: panel r of column col is grid cell r * columns + col + 1
            panels = _Panels(fig, [(n_panels, len(picks), r * len(picks) + col + 1) for r in range(n_panels)],
                             keypoints_2d, poses_3d)
            panels.update(int(i), keypoints_2d, poses_3d, filled)
            top = panels.axes[0]
            top.set_title(caption(int(i)) + "\n" + top.get_title(), fontsize=7)
        import io

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        write_bytes_atomic(out_path, buf.getvalue())
        return out_path

    from matplotlib import animation

    if suffix == ".mp4" and not animation.writers.is_available("ffmpeg"):
        raise MissingExtraError(f"--out {out_path}: writing MP4 needs ffmpeg on PATH, which was not found; install "
                                "ffmpeg (e.g. apt install ffmpeg) or write a .gif or .png instead.")
    stride = frame_stride(n, max_frames)
    fig = Figure(figsize=(PANEL_INCHES * n_panels, PANEL_INCHES))
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.04, top=0.84, wspace=0.15)
    panels = _Panels(fig, [(1, n_panels, k + 1) for k in range(n_panels)], keypoints_2d, poses_3d)
    heading = fig.suptitle("", fontsize=9)
    writer = (animation.PillowWriter(fps=fps / stride) if suffix == ".gif"
              else animation.FFMpegWriter(fps=fps / stride, codec="libx264", extra_args=["-pix_fmt", "yuv420p"]))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.stem}.{os.getpid()}.tmp{suffix}")  # the writer picks the format by suffix
    try:
        with writer.saving(fig, str(tmp), dpi):
            for i in range(0, n, stride):
                panels.update(i, keypoints_2d, poses_3d, filled)
                heading.set_text(caption(i))
                writer.grab_frame()
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return out_path


@dataclass
class Clip:
    """One video to draw: poses and what is known beside them."""

    pred: np.ndarray  # (N, 17, 3) mm
    keypoints_2d: np.ndarray | None  # (N, 17, 2) px
    target: np.ndarray | None  # (N, 17, 3) mm
    frames: np.ndarray  # (N,)
    title: str
    fps: float | None  # None: not recorded in the file
    filled: np.ndarray | None = None  # (N, 17) bool
    key: tuple[str, str, int] | None = None  # (subject, action, camera) of a predictions.npz video


def parse_frames(spec: str | None) -> tuple[int | None, int | None]:
    """'a:b' -> (a, b) frame numbers, half-open; ':b' and 'a:' leave a side open."""
    if spec is None:
        return None, None
    start, sep, stop = spec.partition(":")
    try:
        if not sep:
            raise ValueError
        return (int(start) if start.strip() else None), (int(stop) if stop.strip() else None)
    except ValueError:
        raise ConfigError(f"--frames '{spec}' is not a range; use a:b (frame numbers, b excluded), a: or :b.") from None


def _select_frames(clip: Clip, spec: str | None) -> Clip:
    start, stop = parse_frames(spec)
    keep = np.ones(len(clip.frames), bool)
    if start is not None:
        keep &= clip.frames >= start
    if stop is not None:
        keep &= clip.frames < stop
    if not keep.any():
        raise ConfigError(f"--frames {spec} selects no frame; this video has frames {int(clip.frames.min())}"
                          f"..{int(clip.frames.max())}.")
    cut = lambda a: None if a is None else a[keep]  # noqa: E731
    return Clip(clip.pred[keep], cut(clip.keypoints_2d), cut(clip.target), clip.frames[keep], clip.title, clip.fps,
                cut(clip.filled), clip.key)


def _pick_video(members: dict, path: Path, subject: str | None, action: str | None, camera: int | None) -> Clip:
    subjects = np.asarray(members["subject"]).astype(str)
    actions = np.array([normalise_action(a) for a in np.asarray(members["action"]).astype(str)])
    cameras = np.asarray(members["camera"]).astype(np.int64)
    if len(subjects) == 0:
        raise DataError(f"{path}: holds no predicted frame.")
    subject = subject if subject is not None else str(subjects[0])
    if subject not in set(subjects.tolist()):
        raise ConfigError(f"--subject: {unknown_name_message('subject', subject, set(subjects.tolist()))} (in {path}).")
    rows = subjects == subject
    action = normalise_action(action) if action is not None else str(actions[rows][0])
    if action not in set(actions[rows].tolist()):
        known = set(actions[rows].tolist())
        raise ConfigError(f"--action: {unknown_name_message(f'action of {subject}', action, known)}"
                          f" (in {path}).")
    rows &= actions == action
    camera = camera if camera is not None else int(cameras[rows][0])
    if camera not in set(cameras[rows].tolist()):
        raise ConfigError(f"--camera {camera}: {subject}/{action} has cameras "
                          f"{', '.join(map(str, sorted(set(cameras[rows].tolist()))))} in {path}.")
    rows &= cameras == camera
    frames = np.asarray(members["frame"]).astype(np.int64)[rows]
    order = np.argsort(frames, kind="stable")
    pred = np.asarray(members["pred"])[rows][order]
    target = np.asarray(members["target"])[rows][order] if "target" in members else None
    return Clip(pred, None, target, frames[order], f"{subject} {action} cam{camera}", None, None,
                (subject, action, camera))


def _checked(members: dict, path: Path) -> dict:
    """The members ``load_clip`` uses, checked like values from the command line: frames whole numbers,
    poses finite in float32 and of one length, names text (``values``); a bad member is one line naming it."""
    out = dict(members)
    if all(k in members for k in LIFTBENCH_KEYS):
        out["frame"] = id_array(members["frame"], f"{path}: member 'frame'")
        n = len(out["frame"])
        out["camera"] = id_array(members["camera"], f"{path}: member 'camera'", shape=(n,))
        for key in ("pred", "target"):
            if key in members:
                out[key] = float32_safe(members[key], f"{path}: member '{key}'", shape=(n, NUM_JOINTS, 3))
        for key in ("subject", "action"):
            value = members[key]
            if not isinstance(value, np.ndarray) or value.dtype.kind not in "US" or value.shape != (n,):
                raise DataError(f"{path}: member '{key}' must be {n} names (text), got {printable(value, 40)}.")
    elif "poses_3d" in members:
        out["poses_3d"] = float32_safe(members["poses_3d"], f"{path}: member 'poses_3d'", shape=(None, NUM_JOINTS, 3))
        n = len(out["poses_3d"])
        if "frames" in members:
            out["frames"] = id_array(members["frames"], f"{path}: member 'frames'", shape=(n,))
        if members.get("keypoints_2d") is not None:
            out["keypoints_2d"] = finite_array(members["keypoints_2d"], f"{path}: member 'keypoints_2d'",
                                               shape=(n, NUM_JOINTS, 2))
        if members.get("filled") is not None:
            filled = np.asarray(members["filled"])
            if filled.dtype.kind != "b" or filled.shape != (n, NUM_JOINTS):
                raise DataError(f"{path}: member 'filled' must be ({n}, {NUM_JOINTS}) booleans, got {filled.dtype} "
                                f"{filled.shape}.")
    return out


def _predict_output(members: dict, path: Path) -> Clip:
    pred = members["poses_3d"]
    n = len(pred) if isinstance(pred, np.ndarray) else 0
    frames = np.asarray(members.get("frames", np.arange(n))).reshape(-1)
    meta: dict = {}
    raw = members.get("meta")
    if raw is not None:
        try:
            meta = json.loads(str(np.asarray(raw).item()))
        except (ValueError, TypeError, RecursionError):
            raise DataError(f"{path}: 'meta' is not a JSON string; re-run liftbench predict.") from None
    fps = meta.get("fps") if isinstance(meta, dict) else None
    return Clip(np.asarray(pred), members.get("keypoints_2d"), None, frames, path.stem,
                float(fps) if isinstance(fps, (int, float)) and fps > 0 else None, members.get("filled"))


def _dataset_2d(clip: Clip, data: str, data_dir, keypoints: str | None) -> Clip:
    """The 2D input of a predictions.npz video, taken from the dataset it was evaluated on."""
    from dataclasses import replace


    ds = load_dataset(data, data_dir, keypoints)
    seq = next((s for s in ds.sequences if s.key == clip.key), None)
    if seq is None:
        raise ConfigError(f"--data {data}: video {'/'.join(map(str, clip.key))} is not in dataset '{ds.name}'; "
                          "pass the dataset the predictions were made on.")
    if clip.frames.min() < 0 or clip.frames.max() >= seq.n_frames:
        raise ConfigError(f"--data {data}: {'/'.join(map(str, clip.key))} has {seq.n_frames} frames there, the "
                          f"predictions reach frame {int(clip.frames.max())}; pass the dataset they were made on.")
    return replace(clip, keypoints_2d=seq.keypoints_2d[clip.frames], fps=ds.fps)


def load_clip(source: str | Path, subject: str | None = None, action: str | None = None, camera: int | None = None,
              frames: str | None = None, data: str | None = None, data_dir=None, keypoints: str | None = None) -> Clip:
    """The video to draw from a predictions.npz, a run directory or a ``liftbench predict`` output;
    ``data`` adds a predictions.npz video's 2D input from that dataset (noise-free, ``keypoints`` source)."""
    source = Path(source)
    if source.is_dir():
        path = source / PREDICTIONS_FILE
        if not path.is_file():
            raise DataError(f"{source} has no {PREDICTIONS_FILE}; run liftbench evaluate {source} --save-predictions "
                            "first.")
    elif source.exists():
        path = user_file(source, "a predictions.npz, a run directory or a liftbench predict output", 1 << 40)
    else:
        raise DataError(f"{source}: no such file or run directory.")
    members = load_members(path)
    with reading(path, "a predictions .npz"):  # anything else a malformed file raises: one line naming it
        members = _checked(members, path)
    if all(k in members for k in LIFTBENCH_KEYS):
        clip = _pick_video(members, path, subject, action, camera)
    elif "poses_3d" in members:
        options = (("--subject", subject), ("--action", action), ("--camera", camera))
        given = [opt for opt, v in options if v is not None]
        if given:
            raise ConfigError(f"{' '.join(given)}: {path} is a liftbench predict output (one video); drop the option.")
        if data is not None:
            raise ConfigError(f"--data: {path} is a liftbench predict output, which holds its 2D input; drop --data.")
        clip = _predict_output(members, path)
    else:
        raise DataError(f"{path}: neither a liftbench predictions.npz ({', '.join(LIFTBENCH_KEYS)}) nor a liftbench "
                        f"predict output (poses_3d, keypoints_2d, frames); it has: "
                        f"{', '.join(sorted(members)) or 'nothing'}.")
    clip = _select_frames(clip, frames)
    return _dataset_2d(clip, data, data_dir, keypoints) if data is not None else clip
