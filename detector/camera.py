"""A pinhole camera on a vehicle, and the flat-road geometry between pixels and the ground.

Vehicle frame: ``forward`` along the heading, ``right``, ``up``; metres from the GPS antenna.
Camera frame: x right, y down, z along the optical axis. The camera is pitched down by
``pitch_deg``, rolled clockwise by ``roll_deg`` and yawed right by ``yaw_deg``.

>>> cam = CameraModel(width=1280, height=720, hfov_deg=90.0, height_m=1.4, pitch_deg=8.0)
>>> fwd, right = cam.pixel_to_ground(np.array([640.0]), np.array([600.0]))
>>> u, v = cam.ground_to_pixel(fwd, right)
>>> round(float(u[0]), 3), round(float(v[0]), 3)
(640.0, 600.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import yaml

from detector.errors import ConfigError, InputError
from detector.geo import ahead_and_right


@dataclass(frozen=True)
class CameraModel:
    width: int
    height: int
    hfov_deg: float = 90.0
    focal_px: float | None = None
    height_m: float = 1.4
    pitch_deg: float = 8.0
    roll_deg: float = 0.0
    yaw_deg: float = 0.0
    offset_forward_m: float = 0.0
    offset_right_m: float = 0.0
    name: str = "camera"

    @property
    def focal(self) -> float:
        if self.focal_px:
            return float(self.focal_px)
        return self.width / 2 / math.tan(math.radians(self.hfov_deg) / 2)

    @property
    def cx(self) -> float:
        """Principal point, with pixel centres at integer coordinates."""
        return (self.width - 1) / 2

    @property
    def cy(self) -> float:
        return (self.height - 1) / 2

    @property
    def _rotation(self) -> np.ndarray:
        """Columns: the camera's x (right), y (down), z (axis) in vehicle (forward, right, down) axes."""
        p, r, y = (math.radians(a) for a in (self.pitch_deg, self.roll_deg, self.yaw_deg))
        roll = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
        # camera (x right, y down, z axis) -> level camera pitched down by p, in (forward, right, down)
        pitch = np.array(
            [
                [0, -math.sin(p), math.cos(p)],
                [1, 0, 0],
                [0, math.cos(p), math.sin(p)],
            ]
        )
        yaw = np.array([[math.cos(y), -math.sin(y), 0], [math.sin(y), math.cos(y), 0], [0, 0, 1]])
        return yaw @ pitch @ roll

    def scaled_to(self, width: int, height: int) -> CameraModel:
        """The same camera for frames of another size (same field of view)."""
        if (width, height) == (self.width, self.height):
            return self
        focal = self.focal * width / self.width
        return replace(self, width=width, height=height, focal_px=focal)

    def rays(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """(N, 3) ray directions in vehicle axes (forward, right, down) through pixels (u, v)."""
        cam = np.stack(
            [(u - self.cx) / self.focal, (v - self.cy) / self.focal, np.ones_like(u, dtype=float)],
            axis=-1,
        )
        return cam @ self._rotation.T

    def pixel_to_ground(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where pixels meet a flat road: (forward, right) metres from the GPS antenna.

        NaN for pixels at or above the horizon (their ray never reaches the road).
        """
        d = self.rays(np.asarray(u, float), np.asarray(v, float))
        down = d[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(down > 1e-6, self.height_m / down, np.nan)
        return t * d[:, 0] + self.offset_forward_m, t * d[:, 1] + self.offset_right_m

    def ground_to_pixel(self, forward: np.ndarray, right: np.ndarray, up: np.ndarray | float = 0.0):
        """Pixels (u, v) of vehicle-frame points; NaN for points behind the camera."""
        forward, right, up = np.broadcast_arrays(np.asarray(forward, float), np.asarray(right, float), up)
        rel = np.stack(
            [forward - self.offset_forward_m, right - self.offset_right_m, self.height_m - up], axis=-1
        ).reshape(-1, 3)
        cam = rel @ self._rotation  # vehicle -> camera axes (rotation is orthonormal)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(cam[:, 2] > 1e-3, cam[:, 2], np.nan)
            return cam[:, 0] / z * self.focal + self.cx, cam[:, 1] / z * self.focal + self.cy

    def metres_per_pixel(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Ground metres spanned by one horizontal pixel at (u, v): depth along the axis over focal length."""
        d = self.rays(np.asarray(u, float), np.asarray(v, float))
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(d[:, 2] > 1e-6, self.height_m / d[:, 2], np.nan)
        return t / self.focal

    def sees(
        self, points_xy: np.ndarray, poses_xy: np.ndarray, heading_deg, range_m: tuple[float, float],
        region: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0),
    ) -> np.ndarray:  # fmt: skip
        """(M, N): whether ground point m lies ``range_m`` ahead of the camera at pose n (local metres, heading in
        degrees) and inside ``region`` of the image: left, top, right, bottom as fractions of its size.

        >>> cam = CameraModel(width=1280, height=720)  # facing north, south, and with no heading
        >>> cam.sees(np.array([[0.0, 10.0]]), np.zeros((3, 2)), np.array([0.0, 180.0, np.nan]), (3.0, 30.0)).tolist()
        [[True, False, False]]
        """
        ahead, right = ahead_and_right(points_xy, poses_xy, heading_deg)
        u, v = (c.reshape(ahead.shape) for c in self.ground_to_pixel(ahead, right))
        left, top, right_edge, bottom = region
        inside = (u >= left * self.width) & (u < right_edge * self.width)
        inside &= (v >= top * self.height) & (v < bottom * self.height)
        return inside & (ahead >= range_m[0]) & (ahead <= range_m[1])

    def horizon_row(self) -> float:
        """Image row of the horizon at the image centre (rows below it see the road)."""
        return self.cy - self.focal * math.tan(math.radians(self.pitch_deg))


def load_camera(path: str | Path) -> CameraModel:
    """Read a camera profile YAML (``configs/cameras/*.yaml``); unknown keys are an error naming them."""
    path = Path(path)
    if not path.is_absolute() and not path.exists():
        path = Path(__file__).resolve().parent.parent / path
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as e:
        raise InputError(path, f"cannot read camera profile ({e.strerror or e})") from None
    except yaml.YAMLError:
        raise InputError(path, "camera profile is not valid YAML") from None
    known = {f.name for f in fields(CameraModel)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"camera.{unknown[0]}", f"unknown camera key (known: {', '.join(sorted(known))})", path)
    for key in ("width", "height"):
        if not isinstance(data.get(key), int) or data[key] <= 0:
            raise ConfigError(f"camera.{key}", f"expected a positive whole number, got {data.get(key)!r}", path)
    for key, value in data.items():
        if key not in ("name", "width", "height", "focal_px") and not isinstance(value, int | float):
            raise ConfigError(f"camera.{key}", f"expected a number, got {value!r}", path)
    if not data.get("height_m", 1.4) > 0:
        raise ConfigError("camera.height_m", "must be positive", path)
    return CameraModel(**data)
