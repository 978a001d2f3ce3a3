"""How ``mocap-mini`` is built from the real motion capture shipped with pybullet (the source is ``mocap.py``).

Source: the DeepMimic humanoid clips (``data/motions/humanoid3d_*.txt``, ``data/motions/walker/*.txt``)
and skeleton (``humanoid/humanoid.urdf``, used at scale 0.25) in the ``pybullet_data`` package of the
``pybullet`` wheel, zlib licence. The clips are motion capture retargeted to one humanoid; DeepMimic
credits the CMU Graphics Lab Motion Capture Database (mocap.cs.cmu.edu) and the SFU Motion Capture
Database (mocap.cs.sfu.ca). Only the plain ``pybullet_data`` package is read, never the C extension.

Build: parse joint rotations, resample every clip to 50 Hz (slerp; per-keyframe durations), run our
own forward kinematics with per-pseudo-subject bone lengths (towards Human3.6M proportions), place
the body in the H36M capture volume (Z-up, mm) and project through the real H36M cameras. The
result is cached as one plain ``.npz`` plus ``manifest.json`` under ``cache_home()/mocap-mini/v1``.
It is ~40 s of one performer's motion: a smoke-scale default, not a substitute for Human3.6M.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from liftbench import __version__ as LIFTBENCH_VERSION
from liftbench._files import file_sha256
from liftbench.data.cameras import h36m_cameras, project, world_to_camera
from liftbench.errors import DataError, MissingExtraError

BUILDER_VERSION = 1  # bump whenever the arrays would change: the cache directory is keyed by it
FPS = 50.0
URDF_SCALE = 0.25  # humanoid_stable_pd.py loads the URDF with globalScaling=0.25
KEYPOINTS = ("gt",)

# (file under data/motions, action name, split). Takes of one motion type share the first word
# (skeleton.action_group). Each clip is in exactly one split, so no test motion is ever trained on;
# the test clips cover several motion types and ~21% of all frames with 2 of 6 subjects.
CLIPS: tuple[tuple[str, str, str], ...] = (
    ("humanoid3d_walk.txt", "Walk 1", "train"), ("walker/0walk_forward.txt", "Walk 2", "test"),
    ("walker/turn_left0.txt", "Turn Left 1", "train"), ("walker/turn_left1.txt", "Turn Left 2", "train"),
    ("walker/turn_right0.txt", "Turn Right 1", "train"), ("walker/turn_right1.txt", "Turn Right 2", "test"),
    ("humanoid3d_run.txt", "Run", "train"), ("humanoid3d_jump.txt", "Jump", "test"),
    ("humanoid3d_backflip.txt", "Backflip", "train"), ("humanoid3d_cartwheel.txt", "Cartwheel", "train"),
    ("humanoid3d_crawl.txt", "Crawl", "train"), ("humanoid3d_roll.txt", "Roll", "train"),
    ("humanoid3d_spin.txt", "Spin", "train"), ("humanoid3d_punch.txt", "Punch", "test"),
    ("humanoid3d_dance_a.txt", "Dance A", "train"), ("humanoid3d_dance_b.txt", "Dance B", "test"),
    ("humanoid3d_getup_facedown.txt", "Getup FaceDown", "train"),
    ("humanoid3d_getup_faceup.txt", "Getup FaceUp", "test"),
    ("humanoid3d_kick.txt", "Kick Front", "train"), ("humanoid3d_spinkick.txt", "Kick Spin", "test"),
)
URDF_FILE = "humanoid/humanoid.urdf"

# DeepMimic frame vector (44 values): [duration, root xyz (m), root quat wxyz, then per joint below].
# (joint, parent link, first index, kind); FK visits them in this order, parents first.
JOINTS: tuple[tuple[str, str, int, str], ...] = (
    ("chest", "root", 8, "quat"), ("neck", "chest", 12, "quat"),
    ("right_hip", "root", 16, "quat"), ("right_knee", "right_hip", 20, "hinge"),
    ("right_ankle", "right_knee", 21, "quat"), ("right_shoulder", "chest", 25, "quat"),
    ("right_elbow", "right_shoulder", 29, "hinge"), ("right_wrist", "right_elbow", -1, "fixed"),
    ("left_hip", "root", 30, "quat"), ("left_knee", "left_hip", 34, "hinge"),
    ("left_ankle", "left_knee", 35, "quat"), ("left_shoulder", "chest", 39, "quat"),
    ("left_elbow", "left_shoulder", 43, "hinge"), ("left_wrist", "left_elbow", -1, "fixed"),
)
# H36M-17 joint -> DeepMimic point ('nose'/'head' are virtual points on the neck link).
H36M_FROM_DM = ("root", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
                "chest", "neck", "nose", "head", "left_shoulder", "left_elbow", "left_wrist",
                "right_shoulder", "right_elbow", "right_wrist")
NOSE_ON_NECK = np.array([50.0, 110.0, 0.0])  # mm in the neck link frame: ~121 mm above the Thorax
HEAD_ON_NECK = np.array([20.0, 220.0, 0.0])  # ~114 mm above Neck/Nose
# Y-up DeepMimic (x forward, z right) -> Z-up H36M-like world (x forward, y left): a proper rotation.
Y_UP_TO_Z_UP = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])

# Human3.6M reference bone lengths (mm, one subject); 'sole' = ankle height over a flat floor,
# which H36M's "foot" joint has at ~60-110 mm (DeepMimic's foot box gives only 50 mm).
H36M_BONES = {"hip": 132.9, "thigh": 442.9, "shin": 454.2, "spine": 233.4, "thorax": 257.1, "neck": 121.1,
              "head": 115.0, "shoulder": 151.0, "upper_arm": 278.9, "forearm": 251.7, "sole": 80.0}


@dataclass(frozen=True)
class PseudoSubject:
    name: str
    camera_subject: str  # real H36M subject whose 4 calibrated cameras film this one
    scale: float  # overall body size relative to the H36M reference
    offset_mm: tuple[float, float]  # horizontal placement of the clip centre in the capture volume
    yaw_deg: float  # rotation about the vertical axis


# Test subjects are filmed by the cameras of H36M's own test subjects (S9, S11). The capture volume's
# centre is ~0.5 m towards +y (camera 4 is the closest); placements and yaws were picked from a grid
# search (10 deg, 150 mm) so every frame of every take keeps all 17 joints inside all 4 images.
SUBJECTS = (
    PseudoSubject("M1", "S1", 1.00, (150.0, 600.0), 50.0),
    PseudoSubject("M2", "S5", 0.92, (150.0, 450.0), -120.0),
    PseudoSubject("M3", "S6", 1.07, (0.0, 450.0), -140.0),
    PseudoSubject("M4", "S7", 0.96, (150.0, 600.0), 100.0),
    PseudoSubject("M5", "S9", 1.04, (300.0, 600.0), -60.0),
    PseudoSubject("M6", "S11", 0.94, (450.0, 450.0), 150.0),
)
TRAIN_SUBJECTS = ("M1", "M2", "M3", "M4")
TEST_SUBJECTS = ("M5", "M6")
PROPORTION_SEED = 20240917  # fixed seed: per-segment variation is reproducible


def subject_bones(index: int, subject: PseudoSubject) -> dict[str, float]:
    """Target segment lengths (mm): H36M reference x overall scale x per-segment factor in [0.95, 1.05]."""
    rng = np.random.Generator(np.random.PCG64([PROPORTION_SEED, index]))
    factors = np.round(rng.uniform(0.95, 1.05, size=len(H36M_BONES)), 3)
    return {k: round(v * subject.scale * f, 2) for (k, v), f in zip(H36M_BONES.items(), factors)}


@dataclass
class Body:
    """Offsets (mm) of each joint in its parent link frame, virtual points and the foot box corners."""

    offsets: dict[str, np.ndarray]
    axes: dict[str, np.ndarray]  # hinge axes (URDF <axis>)
    nose: np.ndarray
    head: np.ndarray
    foot_corners: np.ndarray  # (8, 3) in the ankle link frame

    def lengths(self) -> dict[str, float]:
        o = self.offsets
        return {"hip": _norm(o["right_hip"]), "thigh": _norm(o["right_knee"]), "shin": _norm(o["right_ankle"]),
                "spine": _norm(o["chest"]), "thorax": _norm(o["neck"]), "neck": _norm(self.nose),
                "head": _norm(self.head - self.nose), "shoulder": _norm(o["right_shoulder"] - o["neck"]),
                "upper_arm": _norm(o["right_elbow"]), "forearm": _norm(o["right_wrist"]),
                "sole": float(-self.foot_corners[:, 1].min())}

    def resized(self, target: dict[str, float]) -> Body:
        """The same skeleton with each segment stretched to ``target`` mm (directions kept)."""
        o, src = self.offsets, self.lengths()
        fit = lambda v, seg: v * (target[seg] / src[seg])  # noqa: E731
        new = {"chest": fit(o["chest"], "spine"), "neck": fit(o["neck"], "thorax")}
        for side in ("right", "left"):
            new[f"{side}_hip"] = fit(o[f"{side}_hip"], "hip")
            new[f"{side}_knee"] = fit(o[f"{side}_knee"], "thigh")
            new[f"{side}_ankle"] = fit(o[f"{side}_ankle"], "shin")
            # shoulders hang off the chest; keep their position relative to the (moved) neck base
            new[f"{side}_shoulder"] = new["neck"] + fit(o[f"{side}_shoulder"] - o["neck"], "shoulder")
            new[f"{side}_elbow"] = fit(o[f"{side}_elbow"], "upper_arm")
            new[f"{side}_wrist"] = fit(o[f"{side}_wrist"], "forearm")
        nose = fit(self.nose, "neck")
        feet = self.foot_corners * (target["shin"] / src["shin"])  # foot length/width follow the leg
        feet[:, 1] = np.where(self.foot_corners[:, 1] < 0, -target["sole"], feet[:, 1])  # sole depth
        return Body(new, self.axes, nose, nose + fit(self.head - self.nose, "head"), feet)


def _norm(v: np.ndarray) -> float:
    return float(np.linalg.norm(v))


def _leg(bones: dict[str, float]) -> float:
    """Hip-to-floor length: the root path is scaled by its ratio so longer legs do not skate."""
    return bones["thigh"] + bones["shin"] + bones["sole"]


def parse_urdf(text: str) -> Body:
    """The DeepMimic humanoid at scale 0.25, in mm: joint origins, hinge axes and the foot box."""
    root = ET.fromstring(text.replace("\x00", "").strip())  # the shipped file ends with a NUL byte
    mm = URDF_SCALE * 1000.0
    offsets, axes = {}, {}
    for joint in root.iter("joint"):
        name = joint.get("name")
        offsets[name] = np.array(joint.find("origin").get("xyz").split(), float) * mm
        if joint.find("axis") is not None:
            axes[name] = np.array(joint.find("axis").get("xyz").split(), float)
    box = next(link for link in root.iter("link") if link.get("name") == "right_ankle").find("collision")
    centre = np.array(box.find("origin").get("xyz").split(), float) * mm
    half = np.array(box.find("geometry/box").get("size").split(), float) * mm / 2
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)  # (8, 3)
    missing = [j for j, *_ in JOINTS if j not in offsets]
    if missing:
        raise DataError(f"{URDF_FILE}: joint(s) {', '.join(missing)} missing; reinstall pybullet.")
    return Body(offsets, axes, NOSE_ON_NECK.copy(), HEAD_ON_NECK.copy(), centre + signs * half)


def read_clip(path: Path) -> np.ndarray:
    """(K, 44) key frames of one DeepMimic JSON clip; each key frame needs a positive duration."""
    try:
        frames = np.asarray(json.loads(path.read_text())["Frames"], dtype=np.float64)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: not a readable DeepMimic clip ({exc}); reinstall pybullet.") from exc
    if frames.ndim != 2 or frames.shape[1] != 44 or len(frames) < 2 or np.any(frames[:-1, 0] <= 0):
        raise DataError(f"{path}: expected >= 2 key frames of 44 values with positive durations.")
    return frames


def resample(frames: np.ndarray, fps: float = FPS) -> np.ndarray:
    """(K, 44) key frames -> (N, 44) at ``fps``: slerp rotations, linear root position and hinges.

    Key frame k starts at the sum of the durations before it, so uneven durations are respected.
    """
    key_t = np.concatenate([[0.0], np.cumsum(frames[:-1, 0])])  # (K,)
    t = np.minimum(np.arange(int(np.floor(key_t[-1] * fps + 1e-9)) + 1) / fps, key_t[-1])  # (N,) s
    out = np.empty((len(t), frames.shape[1]))
    out[:, 0] = 1.0 / fps
    for i in range(1, 4):
        out[:, i] = np.interp(t, key_t, frames[:, i])
    for start in [4] + [s for _, _, s, kind in JOINTS if kind == "quat"]:
        wxyz = frames[:, start:start + 4]
        rot = Slerp(key_t, Rotation.from_quat(wxyz[:, [1, 2, 3, 0]]))(t)  # scipy wants (x, y, z, w)
        out[:, start:start + 4] = rot.as_quat()[:, [3, 0, 1, 2]]
    for _, _, s, kind in JOINTS:
        if kind == "hinge":
            out[:, s] = np.interp(t, key_t, frames[:, s])
    return out


def forward_kinematics(frames: np.ndarray, body: Body, root_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(N, 44) frames -> H36M-17 joints (N, 17, 3) mm and foot box corners (N, 16, 3), DeepMimic Y-up.

    ``p_child = p_parent + R_parent offset`` and ``R_child = R_parent R_joint`` (all URDF rpy are 0).
    ``root_scale`` scales the root translation with the legs so a longer stride does not skate.
    """
    quat = lambda s: Rotation.from_quat(frames[:, [s + 1, s + 2, s + 3, s]])  # noqa: E731  (w,x,y,z) in file
    pos = {"root": frames[:, 1:4] * 1000.0 * root_scale}
    rot = {"root": quat(4)}
    for name, parent, s, kind in JOINTS:
        pos[name] = pos[parent] + rot[parent].apply(body.offsets[name])
        if kind == "quat":
            rot[name] = rot[parent] * quat(s)
        elif kind == "hinge":
            rot[name] = rot[parent] * Rotation.from_rotvec(frames[:, s:s + 1] * body.axes[name])  # (N, 3)
        else:
            rot[name] = rot[parent]
    pos["nose"] = pos["neck"] + rot["neck"].apply(body.nose)
    pos["head"] = pos["neck"] + rot["neck"].apply(body.head)
    joints = np.stack([pos[j] for j in H36M_FROM_DM], axis=1)  # (N, 17, 3)
    corners = [pos[a][:, None] + np.einsum("nij,kj->nki", rot[a].as_matrix(), body.foot_corners)
               for a in ("right_ankle", "left_ankle")]  # 2 x (N, 8, 3)
    return joints, np.concatenate(corners, axis=1)  # (N, 16, 3)


def lowest_point(joints: np.ndarray, corners: np.ndarray) -> float:
    """Lowest height (Y-up) over a clip of all joints and foot box corners: the clip's floor contact."""
    return float(min(joints[..., 1].min(), corners[..., 1].min()))


def place(joints_yup: np.ndarray, subject: PseudoSubject) -> np.ndarray:
    """Y-up clip (N, 17, 3) -> Z-up world mm: centre the root path, turn by yaw, move to the offset."""
    world = joints_yup @ Y_UP_TO_Z_UP.T  # (N, 17, 3)
    root_xy = world[:, 0, :2]  # (N, 2)
    centre = (root_xy.min(0) + root_xy.max(0)) / 2
    yaw = np.deg2rad(subject.yaw_deg)
    rz = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1.0]])
    shift = np.array([-centre[0], -centre[1], 0.0])
    return (world + shift) @ rz.T + np.array([*subject.offset_mm, 0.0])




def source_root() -> Path:
    try:
        import pybullet_data  # plain data package; the pybullet C extension is never imported
    except ImportError as exc:
        raise MissingExtraError("mocap-mini is built from the motion capture clips in pybullet_data; install "
                                "the 'mocap' extra: pip install 'liftbench[mocap]' (or pip install pybullet)") from exc
    return Path(pybullet_data.getDataPath())


def source_files() -> dict[str, Path]:
    root = source_root()
    files = {URDF_FILE: root / URDF_FILE, **{f"data/motions/{f}": root / "data/motions" / f for f, _, _ in CLIPS}}
    missing = [k for k, p in files.items() if not p.is_file()]
    if missing:
        raise DataError(f"pybullet_data at {root} lacks {', '.join(missing)}; reinstall pybullet>=3.2.5.")
    return files


def source_package() -> dict[str, str]:
    dist = (metadata.packages_distributions().get("pybullet_data") or ["pybullet"])[0]  # -> "pybullet"
    try:
        version = metadata.version(dist)
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {"module": "pybullet_data", "distribution": dist, "version": version}


def build_arrays() -> tuple[dict[str, np.ndarray], dict]:
    """Build every sequence from the installed source: (npz arrays, manifest without the npz hash)."""
    files = source_files()
    base = parse_urdf(files[URDF_FILE].read_text(errors="replace"))
    base_lengths = base.lengths()
    cams = h36m_cameras()
    subjects = {s.name: (s, subject_bones(i, s)) for i, s in enumerate(SUBJECTS)}
    split_of = {s: "train" for s in TRAIN_SUBJECTS} | {s: "test" for s in TEST_SUBJECTS}
    kp, j3, subj_col, act_col, cam_col, clips_info, in_view = [], [], [], [], [], [], {}
    for fname, action, split in CLIPS:
        keys = read_clip(files[f"data/motions/{fname}"])
        frames = resample(keys)
        floor = lowest_point(*forward_kinematics(frames, base))  # contact height of the captured body
        clips_info.append({"file": fname, "action": action, "split": split, "key_frames": len(keys),
                           "seconds": round(float(keys[:-1, 0].sum()), 4), "frames": len(frames)})
        for name, (subject, bones) in subjects.items():
            if split_of[name] != split:
                continue
            joints, corners = forward_kinematics(frames, base.resized(bones), _leg(bones) / _leg(base_lengths))
            joints[..., 1] += floor - lowest_point(joints, corners)  # same floor contact as the capture
            world = place(joints, subject)  # (N, 17, 3) Z-up mm
            for cam in cams[subject.camera_subject]:
                x3 = world_to_camera(world, cam)  # (N, 17, 3) camera mm
                x2 = project(x3, cam)  # (N, 17, 2) px
                w, h = cam.resolution
                inside = np.all((x2 >= 0) & (x2 <= [w, h]) & (x3[..., 2:] > 0), axis=(1, 2))  # (N,)
                in_view[f"{name}|{action}|{cam.index}"] = float(inside.mean())
                kp.append(x2.astype(np.float32))
                j3.append(x3.astype(np.float32))
                subj_col.append(name)
                act_col.append(action)
                cam_col.append(cam.index)
    lengths = np.array([len(k) for k in kp])
    arrays = {"keypoints_2d": np.concatenate(kp), "joints_3d": np.concatenate(j3),
              "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
              "subject": np.array(subj_col, dtype=str), "action": np.array(act_col, dtype=str),
              "camera": np.array(cam_col, dtype=np.int64)}
    frames_per_split = {sp: int(sum(n for n, s in zip(lengths, subj_col) if split_of[s] == sp))
                        for sp in ("train", "test")}
    worst = min(in_view, key=in_view.get)
    manifest = {
        "dataset": "mocap-mini", "builder_version": BUILDER_VERSION, "liftbench_version": LIFTBENCH_VERSION,
        "source": {**source_package(), "files": {k: file_sha256(p) for k, p in sorted(files.items())},
                   "licence": "zlib (pybullet_data); DeepMimic clips from CMU and SFU motion capture"},
        "build": {"fps": FPS, "urdf_scale": URDF_SCALE, "proportion_seed": PROPORTION_SEED,
                  "h36m_reference_bones_mm": H36M_BONES,
                  "deepmimic_bones_mm": {k: round(v, 2) for k, v in base_lengths.items()},
                  "subjects": {n: {"camera_subject": s.camera_subject, "scale": s.scale, "offset_mm": list(s.offset_mm),
                                   "yaw_deg": s.yaw_deg, "bones_mm": b} for n, (s, b) in subjects.items()},
                  "train_subjects": list(TRAIN_SUBJECTS), "test_subjects": list(TEST_SUBJECTS), "clips": clips_info},
        "counts": {"sequences": len(lengths), "frames": int(lengths.sum()), "frames_per_split": frames_per_split},
        "in_view": {"mean": round(float(np.mean(list(in_view.values()))), 4), "worst": worst,
                    "worst_fraction": round(in_view[worst], 4)},
    }
    return arrays, manifest
