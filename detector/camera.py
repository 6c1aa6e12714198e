"""A camera on a vehicle, its lens, and the flat-road geometry between pixels and the ground.

Vehicle frame: ``forward`` along the heading, ``right``, ``up``; metres from the GPS antenna.
Camera frame: x right, y down, z along the optical axis. The camera is pitched down by
``pitch_deg``, rolled clockwise by ``roll_deg`` and yawed right by ``yaw_deg``.

The lens is a pinhole unless the profile says otherwise: ``lens: pinhole`` with OpenCV's radial-tangential
``distortion`` (k1, k2, p1, p2[, k3]) or ``lens: fisheye`` with OpenCV's fisheye model (k1..k4), as
``detector calibrate`` measures them. Pixels are undistorted before they are ranged; a profile without
distortion is the plain pinhole. ``mask`` lists regions of the frame (left, top, right, bottom fractions) where
nothing the detector finds is kept: a dashcam's burned-in text, the bonnet.

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

import cv2
import numpy as np
import yaml

from detector.errors import ConfigError, InputError
from detector.geo import ahead_and_right
from detector.project import PROJECT

LENSES = ("pinhole", "fisheye")
DISTORTION_TERMS = {"pinhole": (4, 5, 8), "fisheye": (4,)}  # how many coefficients each model takes
AUTO = "auto"  # drive.camera: no profile given; the one beside the drive, or estimated from it
DEFAULT_PROFILE = "configs/cameras/sim_dashcam.yaml"  # with auto, where nothing better is known
BESIDE_PROFILE = "profile.yaml"  # a vehicle's profile kept in its drives' folder (the simulator writes one too)


def profile_beside(setting: str, video: Path | None) -> Path | None:
    """With ``drive.camera: auto``, the profile kept beside the drive's video, if there is one."""
    if setting != AUTO or video is None:
        return None
    path = Path(video).parent / BESIDE_PROFILE
    return path if path.is_file() else None


def configured_profile(setting: str, video: Path | None = None) -> Path:
    """The profile ``drive.camera`` names without estimating one: its path, or with ``auto`` the profile beside
    ``video``, else :data:`DEFAULT_PROFILE` (tools and tests that need one profile and have no drive to measure)."""
    if setting != AUTO:
        return Path(setting)
    return profile_beside(setting, video) or Path(DEFAULT_PROFILE)


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
    principal_px: tuple[float, float] | None = None  # (cx, cy); default the image centre
    lens: str = "pinhole"
    distortion: tuple[float, ...] = ()  # OpenCV coefficients of the lens model; empty: none
    mask: tuple[tuple[float, float, float, float], ...] = ()  # left, top, right, bottom fractions: ignored

    @property
    def focal(self) -> float:
        if self.focal_px:
            return float(self.focal_px)
        return self.width / 2 / math.tan(math.radians(self.hfov_deg) / 2)

    @property
    def cx(self) -> float:
        """Principal point, with pixel centres at integer coordinates."""
        return float(self.principal_px[0]) if self.principal_px else (self.width - 1) / 2

    @property
    def cy(self) -> float:
        return float(self.principal_px[1]) if self.principal_px else (self.height - 1) / 2

    @property
    def distorted(self) -> bool:
        return any(abs(c) > 0 for c in self.distortion)

    def matrix(self) -> np.ndarray:
        """The intrinsic matrix K."""
        return np.array([[self.focal, 0.0, self.cx], [0.0, self.focal, self.cy], [0.0, 0.0, 1.0]])

    def normalized(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ideal (undistorted) image-plane coordinates x/z, y/z of pixels (u, v) through the lens model."""
        u, v = np.asarray(u, float), np.asarray(v, float)
        if not self.distorted:
            return (u - self.cx) / self.focal, (v - self.cy) / self.focal
        pts = np.stack([u.ravel(), v.ravel()], axis=-1).reshape(-1, 1, 2)
        coeffs = np.array(self.distortion, float)
        if self.lens == "fisheye":
            ideal = cv2.fisheye.undistortPoints(pts, self.matrix(), coeffs)
        else:
            criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 40, 1e-9)
            ideal = cv2.undistortPointsIter(pts, self.matrix(), coeffs, None, None, criteria)
        return ideal[:, 0, 0].reshape(u.shape), ideal[:, 0, 1].reshape(u.shape)

    def to_pixels(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels of ideal image-plane coordinates (x/z, y/z), through the lens model; NaN stays NaN."""
        x, y = np.asarray(x, float), np.asarray(y, float)
        if not self.distorted:
            return x * self.focal + self.cx, y * self.focal + self.cy
        finite = np.isfinite(x) & np.isfinite(y)
        u, v = np.full(x.shape, np.nan), np.full(x.shape, np.nan)
        if finite.any():
            pts = np.stack([x[finite], y[finite], np.ones(int(finite.sum()))], axis=-1).reshape(-1, 1, 3)
            coeffs = np.array(self.distortion, float)
            zero = np.zeros(3)
            if self.lens == "fisheye":
                out, _ = cv2.fisheye.projectPoints(pts, zero, zero, self.matrix(), coeffs)
            else:
                out, _ = cv2.projectPoints(pts, zero, zero, self.matrix(), coeffs)
            u[finite], v[finite] = out[:, 0, 0], out[:, 0, 1]
        return u, v

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
        sx, sy = width / self.width, height / self.height
        principal = (self.cx * sx, self.cy * sy) if self.principal_px else None
        return replace(self, width=width, height=height, focal_px=self.focal * sx, principal_px=principal)

    def rays(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """(N, 3) ray directions in vehicle axes (forward, right, down) through pixels (u, v)."""
        x, y = self.normalized(u, v)
        cam = np.stack([x, y, np.ones_like(x, dtype=float)], axis=-1)
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
            return self.to_pixels(cam[:, 0] / z, cam[:, 1] / z)

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
        """(M, N): whether ground point m lies at least ``range_m[0]`` ahead of the camera at pose n and at most
        ``range_m[1]`` from it along the ground (local metres, heading in degrees), inside ``region`` of the image:
        left, top, right, bottom as fractions of its size. The far limit is a distance, not only a range ahead: a wide
        lens sees a point 45 m to the side at 30 m ahead, drawn a few pixels wide (:func:`within_range`).

        >>> cam = CameraModel(width=1280, height=720)  # facing north, south, and with no heading
        >>> cam.sees(np.array([[0.0, 10.0]]), np.zeros((3, 2)), np.array([0.0, 180.0, np.nan]), (3.0, 30.0)).tolist()
        [[True, False, False]]
        """
        ahead, right = ahead_and_right(points_xy, poses_xy, heading_deg)
        u, v = (c.reshape(ahead.shape) for c in self.ground_to_pixel(ahead, right))
        left, top, right_edge, bottom = region
        inside = (u >= left * self.width) & (u < right_edge * self.width)
        inside &= (v >= top * self.height) & (v < bottom * self.height)
        return inside & within_range(ahead, right, range_m)

    def horizon_row(self) -> float:
        """Image row of the horizon straight ahead (rows below it see the road), through the lens."""
        if not self.distorted:
            return self.cy - self.focal * math.tan(math.radians(self.pitch_deg))
        return float(self.to_pixels(np.array([0.0]), np.array([-math.tan(math.radians(self.pitch_deg))]))[1][0])


def within_range(ahead: np.ndarray, right: np.ndarray, range_m: tuple[float, float]) -> np.ndarray:
    """Whether ground points ``ahead``/``right`` of the camera (metres) lie at least ``range_m[0]`` ahead and at most
    ``range_m[1]`` away along the ground.

    >>> within_range(np.array([10.0, 28.0, 2.0]), np.array([0.0, 12.0, 0.0]), (3.0, 30.0)).tolist()
    [True, False, False]
    """
    return (ahead >= range_m[0]) & (np.hypot(ahead, right) <= range_m[1])


def load_camera(path: str | Path) -> CameraModel:
    """Read a camera profile YAML (``configs/cameras/*.yaml``); unknown keys are an error naming them."""
    path = Path(path)
    if not path.is_absolute() and not path.exists():
        path = PROJECT / path
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
    lists = {"principal_px", "distortion", "mask", "lens"}
    for key, value in data.items():
        if key not in ("name", "width", "height", "focal_px", *lists) and not isinstance(value, int | float):
            raise ConfigError(f"camera.{key}", f"expected a number, got {value!r}", path)
    if not data.get("height_m", 1.4) > 0:
        raise ConfigError("camera.height_m", "must be positive", path)
    return CameraModel(**{**data, **_lens(data, path)})


def _numbers(key: str, value, count: tuple[int, ...], path: Path) -> tuple[float, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, int | float) for v in value):
        raise ConfigError(f"camera.{key}", f"expected a list of numbers, got {value!r}", path)
    if len(value) not in count:
        raise ConfigError(f"camera.{key}", f"expected {' or '.join(map(str, count))} numbers, got {len(value)}", path)
    return tuple(float(v) for v in value)


def _lens(data: dict, path: Path) -> dict:
    """The lens keys of a profile, checked: a lens model we know, its number of coefficients, regions in frame."""
    out = {}
    lens = data.get("lens", "pinhole")
    if lens not in LENSES:
        raise ConfigError("camera.lens", f"unknown lens model {lens!r} (known: {', '.join(LENSES)})", path)
    if data.get("distortion") is not None:
        out["distortion"] = _numbers("distortion", data["distortion"], DISTORTION_TERMS[lens], path)
    elif "distortion" in data:
        out["distortion"] = ()
    if data.get("principal_px") is not None:
        out["principal_px"] = _numbers("principal_px", data["principal_px"], (2,), path)
    regions = []
    for region in data.get("mask") or []:
        left, top, right, bottom = _numbers("mask", region, (4,), path)
        if not (0 <= left < right <= 1 and 0 <= top < bottom <= 1):
            raise ConfigError(
                "camera.mask", f"a region is left, top, right, bottom fractions of the frame: {region}", path
            )
        regions.append((left, top, right, bottom))
    if "mask" in data:
        out["mask"] = tuple(regions)
    return out


def save_camera(camera: CameraModel, path: str | Path, comment: str = "") -> Path:
    """Write ``camera`` as a profile :func:`load_camera` reads, all at once (a partial file is never left).

    >>> import tempfile
    >>> cam = CameraModel(width=1280, height=720, focal_px=700.0, lens="fisheye", distortion=(0.1, 0.0, 0.0, 0.0))
    >>> load_camera(save_camera(cam, Path(tempfile.mkdtemp()) / "cam.yaml")) == cam
    True
    """
    path = Path(path)
    doc: dict = {}
    for f in fields(CameraModel):
        value = getattr(camera, f.name)
        if f.name in ("principal_px", "distortion", "mask"):
            if not value:
                continue
            value = [[float(x) for x in v] if isinstance(v, tuple) else float(v) for v in value]
        elif isinstance(value, int | float) and not isinstance(value, bool | int):
            value = float(value)  # numpy scalars to plain numbers
        doc[f.name] = value
    header = "".join(f"# {line}\n" for line in comment.splitlines()) if comment else ""
    tmp = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(header + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        tmp.replace(path)
    except OSError as e:
        raise InputError(path, f"cannot write the camera profile ({e.strerror or e})") from None
    return path
