"""Human3.6M cameras: parameters shipped with the package, world<->camera transforms, projection.

Conventions (``h36m_cameras.json``, from the published ``cameras.h5``; agrees with VideoPose3D):
``X_cam = R (X_world - T)`` with T the camera centre in world millimetres, and the H36M-toolbox
distortion model used by Martinez and Hossain (``project_point_radial``), which is *not* the
textbook Brown model: tan = p0*y + p1*x; x_d = x*(radial + tan) + p1*r^2; y_d = y*(radial + tan) + p0*r^2.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

CAMERA_IDS: tuple[str, ...] = ("54138969", "55011271", "58860488", "60457274")


@dataclass(frozen=True)
class Camera:
    """One calibrated camera. Arrays are float64; T in mm (world), f and c in pixels."""

    id: str
    index: int  # 0..3, VideoPose3D list order
    R: np.ndarray  # (3, 3) world -> camera rotation
    T: np.ndarray  # (3,) camera centre, world mm
    f: np.ndarray  # (2,)
    c: np.ndarray  # (2,)
    k: np.ndarray  # (3,) radial
    p: np.ndarray  # (2,) tangential, cameras.h5 order
    resolution: tuple[int, int]  # (width, height)

    def to_dict(self) -> dict:
        return {"id": self.id, "index": self.index, "R": self.R.tolist(), "T": self.T.tolist(),
                "f": self.f.tolist(), "c": self.c.tolist(), "k": self.k.tolist(), "p": self.p.tolist(),
                "resolution": list(self.resolution)}

    @classmethod
    def from_dict(cls, d: dict) -> Camera:
        return cls(id=str(d["id"]), index=int(d["index"]), R=np.asarray(d["R"], float), T=np.asarray(d["T"], float),
                   f=np.asarray(d["f"], float), c=np.asarray(d["c"], float), k=np.asarray(d["k"], float),
                   p=np.asarray(d["p"], float), resolution=(int(d["resolution"][0]), int(d["resolution"][1])))


@lru_cache(maxsize=1)
def h36m_cameras() -> dict[str, tuple[Camera, ...]]:
    """The published Human3.6M cameras: subject ('S1'...'S11') -> 4 cameras in index order."""
    text = resources.files("liftbench.data").joinpath("h36m_cameras.json").read_text()
    raw = json.loads(text)["cameras"]
    out = {}
    for subject, cams in raw.items():
        out[subject] = tuple(Camera.from_dict({**c, "index": i}) for i, c in enumerate(cams))
    return out


def world_to_camera(points: np.ndarray, cam: Camera) -> np.ndarray:
    """(..., 3) world mm -> (..., 3) camera-frame mm: X_cam = R (X - T)."""
    return (points - cam.T) @ cam.R.T


def camera_to_world(points: np.ndarray, cam: Camera) -> np.ndarray:
    """(..., 3) camera-frame mm -> (..., 3) world mm: X = R^T X_cam + T."""
    return points @ cam.R + cam.T


def project(points_cam: np.ndarray, cam: Camera) -> np.ndarray:
    """(..., 3) camera-frame mm -> (..., 2) pixels with the full H36M distortion model."""
    xy = points_cam[..., :2] / points_cam[..., 2:3]  # (..., 2)
    x, y = xy[..., 0], xy[..., 1]
    r2 = x * x + y * y
    radial = 1.0 + cam.k[0] * r2 + cam.k[1] * r2**2 + cam.k[2] * r2**3
    tan = cam.p[0] * y + cam.p[1] * x
    xd = x * (radial + tan) + cam.p[1] * r2
    yd = y * (radial + tan) + cam.p[0] * r2
    return np.stack([cam.f[0] * xd + cam.c[0], cam.f[1] * yd + cam.c[1]], axis=-1)
