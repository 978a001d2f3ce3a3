"""Gaussian input noise for robustness tests (Hossain Table 3, Martinez Table 3).

i.i.d. N(0, sigma^2) pixels on every 2D coordinate, added BEFORE normalisation. The noise of one
sequence depends only on (seed, subject, action, camera), never on which other sequences or
models are evaluated, so every model evaluated with the same seed sees exactly the same inputs.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np

from liftbench.data.dataset import Sequence


def sequence_noise(seq: Sequence, sigma: float, seed: int) -> np.ndarray:
    """(N, 17, 2) float64 noise for one sequence, reproducible from (seed, sequence key)."""
    key = zlib.crc32(f"{seq.subject}|{seq.action}|{seq.camera}".encode())
    rng = np.random.default_rng([int(seed), key])
    return rng.normal(0.0, sigma, size=seq.keypoints_2d.shape)


def add_gaussian_noise(sequences: list[Sequence], sigma: float, seed: int) -> list[Sequence]:
    """Copies of the sequences with noisy 2D keypoints (3D untouched); sigma 0 returns them unchanged."""
    if sigma < 0:
        raise ValueError(f"noise sigma must be >= 0 pixels, got {sigma}")
    if sigma == 0:
        return sequences
    return [dataclasses.replace(s, keypoints_2d=(s.keypoints_2d + sequence_noise(s, sigma, seed)).astype(np.float32))
            for s in sequences]
