"""Shared fixtures: a tiny synthetic dataset registered as the 'tiny' source, built in code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from liftbench.data import DATASETS, DatasetSource, PoseDataset, Sequence
from liftbench.data.cameras import h36m_cameras, project, world_to_camera

# A rest pose (mm, Z up) for the 17 H36M joints, roughly human-sized.
REST_POSE = np.array([
    [0, 0, 900], [-130, 0, 900], [-130, 0, 460], [-130, 0, 60], [130, 0, 900], [130, 0, 460], [130, 0, 60],
    [0, 0, 1130], [0, 0, 1390], [0, -20, 1500], [0, 0, 1620], [150, 0, 1380], [150, 0, 1100], [150, 0, 850],
    [-150, 0, 1380], [-150, 0, 1100], [-150, 0, 850]], dtype=np.float64)


def synth_world_motion(n_frames: int, phase: float, scale: float = 1.0) -> np.ndarray:
    """(N, 17, 3) smooth, deterministic motion: walking-like sway plus a drift of the whole body."""
    t = np.arange(n_frames)[:, None] / 50.0  # (N, 1) seconds
    pose = REST_POSE[None] * scale  # (1, 17, 3)
    wobble = np.zeros((n_frames, 17, 3))
    wobble[:, :, 0] = 60 * np.sin(2 * np.pi * 1.1 * t + phase + np.arange(17)[None] * 0.3)
    wobble[:, :, 1] = 80 * np.cos(2 * np.pi * 0.9 * t + phase + np.arange(17)[None] * 0.5)
    wobble[:, 0, :] = 0.0
    drift = np.concatenate([200 * np.sin(0.5 * t + phase), 150 * np.cos(0.4 * t), np.zeros_like(t)], axis=1)  # (N, 3)
    return pose + wobble + drift[:, None, :]


def make_tiny_dataset(lengths: dict[str, int] | None = None, cameras: tuple[int, ...] = (0, 1)) -> PoseDataset:
    lengths = lengths or {"Walk 1": 60, "Walk 2": 45, "Sit": 30, "Jump": 3}
    cams = h36m_cameras()
    seqs = []
    for si, subject in enumerate(("S1", "S5", "S9")):
        for ai, (action, n) in enumerate(lengths.items()):
            world = synth_world_motion(n, phase=0.7 * si + 1.3 * ai, scale=1.0 + 0.05 * si)
            for c in cameras:
                cam = cams[subject][c]
                x3 = world_to_camera(world, cam)
                seqs.append(Sequence(subject, action, c, project(x3, cam).astype(np.float32), x3.astype(np.float32)))
    return PoseDataset("tiny", "gt", 50.0, seqs, {s: cams[s] for s in ("S1", "S5", "S9")}, ("S1", "S5"), ("S9",))


if "tiny" not in DATASETS:
    @DATASETS.register("tiny")
    class TinySource(DatasetSource):
        name = "tiny"
        description = "synthetic test dataset (tests only)"

        def load(self, data_dir: Path | None, keypoints: str) -> PoseDataset:
            return make_tiny_dataset()

        def verify(self, data_dir, keypoints):
            return []

        def prepare(self, data_dir, force=False):
            return "tiny: nothing to prepare"


@pytest.fixture
def tiny_dataset() -> PoseDataset:
    return make_tiny_dataset()


@pytest.fixture
def run_cli(capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""
    from liftbench.cli import main

    def _run(*args: str):
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return _run
