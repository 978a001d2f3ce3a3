"""A tiny synthetic official Human3.6M release (``D3_Positions`` CDF files), written in code with cdflib.

``write_official_tree(root)`` writes ``root/<S>/MyPoseFeatures/D3_Positions/<stem>.cdf`` for the 7
subjects and their 30 file stems each (the ``metadata.xml`` mapping as transcribed in
``/work/shared/reference/official_data_and_2d_formats.md`` table 1.2, S1 spelled ``TakingPhoto`` /
``WalkingDog``), each with one zVariable ``Pose`` of shape (1, N, 96) in world millimetres, and returns
the poses it wrote so tests can compare the conversion with them. N differs per file (5-20) and every
take has its own offset, so a mixed-up file is caught. ``write_pose_cdf`` writes one file (also broken
ones: another variable name, another shape, no records).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from h36m_fixtures import rest_pose_32

SUBJECTS = ("S1", "S5", "S6", "S7", "S8", "S9", "S11")
POSE_DIR = Path("MyPoseFeatures") / "D3_Positions"
# Action -> per subject (S1 S5 S6 S7 S8 S9 S11) the suffixes of its two take files; "-" is the bare name.
_STEM_TABLE = """
Directions   1/- 1/2 1/- 1/- 1/- 1/- 1/-
Discussion   1/- 2/3 1/- 1/- 1/- 1/2 1/2
Eating       2/- 1/- 1/2 1/- 1/- 1/- 1/-
Greeting     1/- 1/2 1/- 1/- 1/- 1/- 2/-
Phoning      1/- 1/- 1/- 2/- 1/- 1/- 3/2
Posing       1/- 1/- 2/- 1/- 1/- 1/- 1/-
Purchases    1/- 1/- 1/- 1/- 1/- 1/- 1/-
Sitting      1/2 1/- 1/2 1/- 1/- 1/- 1/-
SittingDown  2/- -/1 1/- -/1 -/1 -/1 -/1
Smoking      1/- 1/- 1/- 1/- 1/- 1/- 2/-
Photo        1/- -/2 -/1 -/1 1/- 1/- 1/-
Waiting      1/- 1/2 3/- 1/2 1/- 1/- 1/-
Walking      1/- 1/- 1/- 1/2 1/- 1/- 1/-
WalkDog      1/- 1/- 1/- 1/- 1/- 1/- 1/-
WalkTogether 1/- 1/- 1/- 1/- 1/2 1/- 1/-
"""
S1_SPELLING = {"Photo": "TakingPhoto", "WalkDog": "WalkingDog"}


def official_stems() -> dict[str, list[str]]:
    """Subject -> its 30 D3_Positions file stems, spelled as in the official release."""
    out: dict[str, list[str]] = {s: [] for s in SUBJECTS}
    for line in _STEM_TABLE.strip().splitlines():
        action, *cells = line.split()
        for subject, cell in zip(SUBJECTS, cells, strict=True):
            name = S1_SPELLING.get(action, action) if subject == "S1" else action
            out[subject] += [name if suffix == "-" else f"{name} {suffix}" for suffix in cell.split("/")]
    return out


def write_pose_cdf(path: Path, data: np.ndarray | None, *, variable: str = "Pose", dims: list[int] | None = None,
                   float32: bool = False) -> None:
    """One CDF file with a single zVariable; ``data`` (1, N, V) or None (declared but no records)."""
    from cdflib.cdfwrite import CDF

    path.parent.mkdir(parents=True, exist_ok=True)
    if dims is None:
        dims = list(np.shape(data)[1:])
    spec = {"Variable": variable, "Data_Type": CDF.CDF_FLOAT if float32 else CDF.CDF_DOUBLE, "Num_Elements": 1,
            "Rec_Vary": True, "Dim_Sizes": dims, "Compress": 0}
    with CDF(str(path), delete=True) as cdf:  # full name with .cdf: cdflib would replace a '.5413...' suffix
        cdf.write_var(spec, var_data=data)


def take_poses_mm(index: int, frames: int, rng: np.random.Generator) -> np.ndarray:
    """(frames, 32, 3) world mm: the rest pose with random joint jitter, moved per take and per frame."""
    pose = rest_pose_32() * 1000.0  # (32, 3) mm
    jitter = rng.normal(0.0, 30.0, size=(frames, 32, 3))  # (frames, 32, 3)
    shift = np.array([7.0 * index - 700.0, 3.0 * index, 0.0])  # per take, within the capture room
    walk = np.arange(frames)[:, None, None] * np.array([4.0, -2.0, 0.0])  # (frames, 1, 3)
    return pose + jitter + shift + walk


def write_official_tree(root: Path, subjects: tuple[str, ...] = SUBJECTS, seed: int = 0
                        ) -> dict[str, dict[str, np.ndarray]]:
    """Write the release under ``root``; returns subject -> stem -> the (N, 32, 3) mm poses written."""
    rng = np.random.default_rng(seed)
    stems = official_stems()
    written: dict[str, dict[str, np.ndarray]] = {}
    index = 0
    for subject in subjects:
        written[subject] = {}
        for stem in stems[subject]:
            frames = 5 + (7 * index) % 16  # 5..20, differs between neighbouring files
            poses = take_poses_mm(index, frames, rng)
            write_pose_cdf(root / subject / POSE_DIR / f"{stem}.cdf", poses.reshape(1, frames, 96))  # (1, N, 96)
            written[subject][stem] = poses
            index += 1
    return written
