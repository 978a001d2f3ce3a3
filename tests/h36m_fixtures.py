"""A tiny synthetic Human3.6M in VideoPose3D ``.npz`` layout, written in code, with optional breakages.

``write_h36m_fixture(dir)`` writes ``data_3d_h36m.npz`` (``positions_3d``: subject -> action ->
(N, 32, 3) world metres) and one ``data_2d_h36m_<name>.npz`` per requested keypoints name
(``positions_2d``: subject -> action -> [4 x (N, J, 2) px], ``metadata``), exactly as VideoPose3D's
``np.savez_compressed`` calls store them (dicts become pickled 0-d object arrays).

The body is a deterministic 32-joint skeleton with adult proportions, standing near the world
origin (4-5.6 m in front of every H36M camera) and swaying a little. 2D files are projected here
with this module's own copy of the H36M distortion formula (not liftbench's), detector files get
deterministic pixel noise, and MPII-16 files are built by joint *name*, independently of the
loader's index permutation. Import as ``from tests.h36m_fixtures import write_h36m_fixture`` (run
pytest from the repository root) or ``from h36m_fixtures import ...`` with ``tests/`` on sys.path.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from liftbench.data.cameras import h36m_cameras

# The 17 used joints (32-joint indices 0,1,2,3,6,7,8,12,13,14,15,17,18,19,25,26,27), world metres,
# Z up, body facing -Y: name -> (32-index, rest position).
USED = {
    "Hip": (0, (0.00, 0.00, 0.92)), "RHip": (1, (-0.13, 0.00, 0.92)), "RKnee": (2, (-0.14, 0.02, 0.48)),
    "RFoot": (3, (-0.14, 0.05, 0.08)), "LHip": (6, (0.13, 0.00, 0.92)), "LKnee": (7, (0.14, 0.02, 0.48)),
    "LFoot": (8, (0.14, 0.05, 0.08)), "Spine": (12, (0.00, 0.01, 1.15)), "Thorax": (13, (0.00, 0.00, 1.40)),
    "Neck/Nose": (14, (0.00, -0.08, 1.51)), "Head": (15, (0.00, -0.01, 1.62)),
    "LShoulder": (17, (0.16, 0.00, 1.38)), "LElbow": (18, (0.20, 0.02, 1.10)), "LWrist": (19, (0.22, -0.05, 0.86)),
    "RShoulder": (25, (-0.16, 0.00, 1.38)), "RElbow": (26, (-0.20, 0.02, 1.10)), "RWrist": (27, (-0.22, -0.05, 0.86)),
}
# The 15 unused joints (toes, sites, hands, duplicates): 32-index -> (anchor 32-index, offset metres).
UNUSED = {4: (3, (0.0, -0.12, -0.05)), 5: (3, (0.0, -0.18, -0.06)), 9: (8, (0.0, -0.12, -0.05)),
          10: (8, (0.0, -0.18, -0.06)), 11: (0, (0.0, 0.0, 0.0)), 16: (13, (0.0, 0.0, 0.0)),
          20: (19, (0.0, 0.0, 0.0)), 21: (19, (0.02, -0.04, -0.06)), 22: (19, (0.02, -0.06, -0.12)),
          23: (19, (-0.02, -0.05, -0.03)), 24: (19, (-0.02, -0.07, -0.05)), 28: (27, (0.0, 0.0, 0.0)),
          29: (27, (-0.02, -0.04, -0.06)), 30: (27, (-0.02, -0.06, -0.12)), 31: (27, (0.02, -0.05, -0.03))}
H36M17_NAMES = tuple(USED)  # H36M-17 order (matches liftbench.data.skeleton.JOINT_NAMES)
# MPII-16 joint order (Stacked Hourglass output) by the H36M-17 name each one is taken to be.
MPII16_AS_H36M = ("RFoot", "RKnee", "RHip", "LHip", "LKnee", "LFoot", "Hip", "Spine", "Thorax", "Head",
                  "RWrist", "RElbow", "RShoulder", "LShoulder", "LElbow", "LWrist")
SYMMETRY = {17: [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]], 16: [[3, 4, 5, 13, 14, 15], [0, 1, 2, 10, 11, 12]]}
DEFAULT_ACTIONS = ("Directions", "Photo 1", "WalkDog", "Walking 1")
LEGACY = {"Photo": "TakingPhoto", "WalkDog": "WalkingDog"}


def _seed(*parts: object) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())  # stable across runs (unlike hash())


def rest_pose_32() -> np.ndarray:
    """(32, 3) rest pose, world metres."""
    pose = np.zeros((32, 3))
    for idx, pos in USED.values():
        pose[idx] = pos
    for idx, (anchor, offset) in UNUSED.items():
        pose[idx] = pose[anchor] + offset
    return pose


def body_motion(subject: str, action: str, n_frames: int) -> np.ndarray:
    """(N, 32, 3) world metres: the rest pose scaled per subject, drifting and swaying smoothly."""
    rng = np.random.default_rng(_seed(subject, action))
    t = np.arange(n_frames)[:, None] / 50.0  # (N, 1) seconds
    phase, scale = rng.uniform(0, 2 * np.pi), 0.95 + 0.1 * rng.uniform()
    pose = rest_pose_32()[None] * scale  # (1, 32, 3)
    sway = 0.04 * np.sin(2 * np.pi * 0.8 * t[:, :, None] + phase + np.arange(32)[None, :, None] * [0.3, 0.5, 0.7])
    drift = np.concatenate([0.3 * np.sin(0.6 * t + phase), 0.2 * np.cos(0.5 * t + phase),
                            np.zeros_like(t)], axis=1)  # (N, 3)
    offset = rng.uniform(-0.3, 0.3, size=3) * [1, 1, 0]
    return pose + sway + (drift + offset)[:, None, :]  # (N, 32, 3)


def project_h36m(world_m: np.ndarray, cam) -> np.ndarray:
    """(N, J, 3) world metres -> (N, J, 2) pixels: X_cam = R (X - T) in mm, H36M radial/tangential model."""
    x = (world_m * 1000.0 - cam.T) @ cam.R.T  # (N, J, 3) camera mm
    u, v = x[..., 0] / x[..., 2], x[..., 1] / x[..., 2]
    r2 = u**2 + v**2
    radial = 1 + cam.k[0] * r2 + cam.k[1] * r2**2 + cam.k[2] * r2**3
    tan = cam.p[0] * v + cam.p[1] * u
    ud, vd = u * (radial + tan) + cam.p[1] * r2, v * (radial + tan) + cam.p[0] * r2
    return np.stack([cam.f[0] * ud + cam.c[0], cam.f[1] * vd + cam.c[1]], axis=-1)


def to_mpii16(h36m17: np.ndarray) -> np.ndarray:
    """(N, 17, 2) H36M order -> (N, 16, 2) MPII order, by joint name."""
    return h36m17[:, [H36M17_NAMES.index(n) for n in MPII16_AS_H36M]]


def write_h36m_fixture(dirpath: str | Path, subjects: tuple[str, ...] = ("S1", "S5", "S9", "S11"),
                       actions: tuple[str, ...] = DEFAULT_ACTIONS, n_frames: int = 60,
                       keypoints: tuple[str, ...] = ("gt",), *,
                       mpii_keypoints: tuple[str, ...] = ("sh_ft_h36m", "sh_pt_mpii"),
                       joints_3d: int = 32, noise_px: float = 2.0,
                       missing_key: str | None = None, wrong_shape: str | None = None,
                       wrong_dtype: str | None = None, nan: str | None = None,
                       length_mismatch: int = 0, s11_directions_missing_cam0: bool = False,
                       legacy_names: bool = False, millimetres: bool = False,
                       extra_2d_subjects: tuple[str, ...] = (), drop_2d_take: tuple[str, str] | None = None,
                       extra_2d_take: tuple[str, str] | None = None) -> dict:
    """Write the fixture into ``dirpath``; return what was written (for independent checks).

    Take ``a`` of ``actions`` has ``n_frames + 4 a`` frames. Keypoints ``"gt"`` writes exact
    projections (H36M-17); other names add ``noise_px`` of noise; names in ``mpii_keypoints`` are
    written as 16 MPII-order joints (``metadata['num_joints'] == 16``). Pass ``keypoints=()`` to
    write no 2D file (the loader then projects ``gt`` itself). Breakages (all off by default):

    * ``missing_key``: ``"positions_3d"`` / ``"positions_2d"`` stored under another key;
    * ``wrong_shape`` / ``wrong_dtype`` / ``nan``: ``"3d"`` or ``"2d"``: S5's first take (2D: camera 1)
      gets shape (N, J, 2|3), int32, or NaN at frame 5;
    * ``length_mismatch``: S9's first take, camera 2, has this many extra (negative: fewer) 2D frames;
    * ``s11_directions_missing_cam0``: S11 ``Directions`` camera 0 is ``None`` in every 2D file;
    * ``legacy_names``: S1's ``Photo``/``WalkDog`` takes are spelled ``TakingPhoto``/``WalkingDog`` in 3D;
    * ``millimetres``: 3D written in mm instead of metres; ``joints_3d=17``: the H36M-17 subset;
    * ``extra_2d_subjects``: subjects present only in the 2D files (like S2-S4 in the CPN file);
    * ``drop_2d_take`` / ``extra_2d_take``: (subject, action) missing from / only in the 2D files.

    Returns ``{"dir", "files", "world_m": {s: {a: (N, 32, 3)}}, "keypoints_2d": {kp: {s: {a: [4 x (N, 17, 2)]}}}}``
    with canonical action names; ``keypoints_2d`` is in H36M-17 order even for MPII files.
    """
    out = Path(dirpath)
    out.mkdir(parents=True, exist_ok=True)
    cams = h36m_cameras()
    world = {s: {a: body_motion(s, a, n_frames + 4 * i) for i, a in enumerate(actions)} for s in subjects}
    extra_world = {s: {a: body_motion(s, a, n_frames + 4 * i) for i, a in enumerate(actions)}
                   for s in extra_2d_subjects}
    if extra_2d_take:
        extra_world.setdefault(extra_2d_take[0], {})[extra_2d_take[1]] = body_motion(*extra_2d_take, n_frames)
    first = actions[0]

    positions_3d = {}
    for s, takes in world.items():
        positions_3d[s] = {}
        for a, arr in takes.items():
            word, sep, rest = a.partition(" ")
            name = LEGACY.get(word, word) + sep + rest if legacy_names and s == "S1" else a
            arr = arr[:, [idx for idx, _ in USED.values()]] if joints_3d == 17 else arr
            arr = (arr * 1000.0 if millimetres else arr).astype(np.float32)
            if s == "S5" and a == first:
                arr = _break(arr, wrong_shape == "3d", wrong_dtype == "3d", nan == "3d")
            positions_3d[s][name] = arr
    files = [out / "data_3d_h36m.npz"]
    np.savez_compressed(files[0], **{("poses_3d" if missing_key == "positions_3d" else "positions_3d"): positions_3d})

    keypoints_2d = {}
    for kp in keypoints:
        mpii = kp in mpii_keypoints
        rng = np.random.default_rng(_seed("noise", kp))
        in_h36m_order, stored = {}, {}
        for s in {**world, **extra_world}:
            takes = {**world.get(s, {}), **extra_world.get(s, {})}
            in_h36m_order[s], stored[s] = {}, {}
            for a, arr in takes.items():
                if drop_2d_take == (s, a):
                    continue
                views = []
                for c, cam in enumerate(cams.get(s, cams["S1"])):  # no cameras (S2-S4): any will do
                    n_extra = length_mismatch if (s, a, c) == ("S9", first, 2) else 0
                    src = arr if n_extra <= 0 else np.concatenate([arr, arr[-1:].repeat(n_extra, 0)])
                    src = src[:len(src) + n_extra] if n_extra < 0 else src
                    uv = project_h36m(src[:, [idx for idx, _ in USED.values()]], cam)  # (N, 17, 2)
                    if kp != "gt":
                        uv = uv + rng.normal(0.0, noise_px, uv.shape)
                    views.append(uv.astype(np.float32))
                in_h36m_order[s][a] = list(views)
                if s == "S11" and a == "Directions" and s11_directions_missing_cam0:
                    views[0] = in_h36m_order[s][a][0] = None
                views = [to_mpii16(v) if mpii and v is not None else v for v in views]
                if s == "S5" and a == first:
                    views[1] = _break(views[1], wrong_shape == "2d", wrong_dtype == "2d", nan == "2d")
                stored[s][a] = views
        joints = 16 if mpii else 17
        metadata = {"layout_name": "mpii" if mpii else "h36m", "num_joints": joints,
                    "keypoints_symmetry": SYMMETRY[joints]}
        path = out / f"data_2d_h36m_{kp}.npz"
        key = "poses_2d" if missing_key == "positions_2d" else "positions_2d"
        np.savez_compressed(path, **{key: stored, "metadata": metadata})
        files.append(path)
        keypoints_2d[kp] = in_h36m_order
    return {"dir": out, "files": files, "world_m": world, "keypoints_2d": keypoints_2d}


def _break(arr: np.ndarray, shape: bool, dtype: bool, nan: bool) -> np.ndarray:
    """One deliberate defect in a pose array."""
    if shape:
        arr = np.concatenate([arr, arr[..., :1]], axis=-1) if arr.shape[-1] == 2 else arr[..., :2]
    if dtype:
        arr = arr.astype(np.int32)
    if nan:
        arr = arr.copy()
        arr[5, 0, 0] = np.nan
    return arr
