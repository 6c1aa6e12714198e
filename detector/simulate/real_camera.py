"""What a real dashcam adds to the simulator's picture: a distorting wide-angle lens, a bonnet, a burned-in stamp.

The renderer draws a pinhole picture. With a lens (``simulate.lens``: OpenCV's radial-tangential or fisheye
coefficients, :mod:`detector.camera`), the scene is drawn by a wider pinhole camera of the same focal length and
remapped into the distorted picture, pixel by pixel: what the renderer's camera sees at each ideal direction is
what the lens puts at its distorted pixel. Labels go through the same mapping (:meth:`CameraLook.to_output`), and
the drive's ``profile.yaml`` is the true profile, lens included, for ``detector calibrate`` to recover.

A bonnet (``simulate.bonnet``: the share of the frame height it covers at the centre) is a dark curved shape at
the bottom with the sky's reflection in it, fixed to the camera. A stamp (``simulate.overlay``: a style seed) is
the date, time and speed a dashcam burns in, its digits changing every second (:mod:`detector.simulate.overlay`).

>>> look = CameraLook(SimulatedCamera(320, 180, hfov_deg=100.0), RealCamera(distortion=(-0.25, 0.06, 0.0, 0.0)))
>>> look.render_camera.width > 320 and bool(abs(look.render_camera.focal_px - look.model.focal) < 1e-6)
True
>>> uv = look.to_output(np.array([[look.render_camera.width / 2 - 0.5, look.render_camera.height / 2 - 0.5]]))
>>> np.round(uv, 3).tolist()  # the optical axis stays at the centre
[[159.5, 89.5]]
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import cv2
import numpy as np

from detector.camera import CameraModel
from detector.simulate.overlay import OverlayStyle, draw_overlay, random_style
from detector.simulate.render import SimulatedCamera

MAX_RENDER_SCALE = 2.2  # the widest pinhole picture drawn, as a multiple of the output's sides


@dataclass(frozen=True)
class RealCamera:
    """The ``simulate`` keys for a real camera; the defaults add nothing."""

    lens: str = "pinhole"
    distortion: tuple[float, ...] = ()
    bonnet: float = 0.0  # share of the frame height at the centre; 0: the simulator's own sliver of bonnet
    overlay: int | None = None  # stamp style seed (detector.simulate.overlay.random_style); None: no stamp

    @property
    def adds_anything(self) -> bool:
        return any(abs(c) > 0 for c in self.distortion) or self.bonnet > 0 or self.overlay is not None


def profile_of(camera: SimulatedCamera, real: RealCamera, name: str = "simulated") -> CameraModel:
    """The true camera profile of a simulated drive (what ``drive.camera`` should be for it)."""
    return CameraModel(
        width=camera.width,
        height=camera.height,
        hfov_deg=camera.hfov_deg,
        focal_px=camera.focal_px,
        height_m=camera.height_m,
        pitch_deg=camera.pitch_deg,
        roll_deg=camera.roll_deg,
        name=name,
        lens=real.lens,
        distortion=tuple(real.distortion),
    )


class CameraLook:
    """Turns the renderer's pinhole frames into the real camera's (lens, bonnet, stamp)."""

    def __init__(self, camera: SimulatedCamera, real: RealCamera, start: datetime | None = None) -> None:
        self.camera = camera
        self.real = real
        self.model = profile_of(camera, real)
        self.start_utc = start.timestamp() if start else 0.0
        self.style: OverlayStyle | None = (
            random_style(np.random.default_rng(real.overlay)) if real.overlay is not None else None
        )
        self.render_camera = camera
        self._maps = None
        if self.model.distorted:
            self._setup_lens()
        self._bonnet = _bonnet(camera.width, camera.height, real.bonnet) if real.bonnet > 0 else None

    def _setup_lens(self) -> None:
        cam, model = self.camera, self.model
        u, v = np.meshgrid(np.arange(cam.width, dtype=float), np.arange(cam.height, dtype=float))
        x, y = model.normalized(u.ravel(), v.ravel())
        f = model.focal
        half_w = min(np.nanmax(np.abs(x)) * f + 2, MAX_RENDER_SCALE * cam.width / 2)
        half_h = min(np.nanmax(np.abs(y)) * f + 2, MAX_RENDER_SCALE * cam.height / 2)
        width, height = 2 * int(np.ceil(half_w)), 2 * int(np.ceil(half_h))
        hfov = float(np.degrees(2 * np.arctan(width / 2 / f)))
        self.render_camera = SimulatedCamera(width, height, hfov, cam.height_m, cam.pitch_deg, cam.roll_deg)
        map_x = (x * f + (width - 1) / 2).reshape(cam.height, cam.width).astype(np.float32)
        map_y = (y * f + (height - 1) / 2).reshape(cam.height, cam.width).astype(np.float32)
        self._maps = cv2.convertMaps(map_x, map_y, cv2.CV_16SC2)

    def to_output(self, uv: np.ndarray) -> np.ndarray:
        """Pixels (N, 2) of the renderer's camera where they show in the real camera's frame."""
        if self._maps is None:
            return uv
        rc = self.render_camera
        x = (uv[:, 0] - (rc.width - 1) / 2) / rc.focal_px
        y = (uv[:, 1] - (rc.height - 1) / 2) / rc.focal_px
        return np.column_stack(self.model.to_pixels(x, y))

    @property
    def bottom_fraction(self) -> float:
        """The share of the frame height the bonnet hides at the centre (labels are cut there)."""
        return self.real.bonnet

    def fixed_pixels(self, duration_s: float, speeds_mps: np.ndarray) -> np.ndarray:
        """The true mask of what rides along with the camera over a drive of ``duration_s``: the bonnet and every
        pixel the stamp draws at some time (its digits change each second; ``speeds_mps``, one per second)."""
        fixed = np.zeros((self.camera.height, self.camera.width), bool)
        if self._bonnet is not None:
            fixed |= self._bonnet[0][..., 0]
        if self.style is not None:
            blank = np.zeros((self.camera.height, self.camera.width, 3), np.uint8)
            for second in range(max(1, int(np.ceil(duration_s)))):
                speed = float(speeds_mps[min(second, len(speeds_mps) - 1)])
                fixed |= draw_overlay(blank, self.style, self.start_utc + second, speed, 31.2520, 34.7915)[1]
        return fixed

    def apply(self, frame: np.ndarray, video_time: float, speed_mps: float) -> np.ndarray:
        """One rendered frame as the real camera records it."""
        if self._maps is not None:
            frame = cv2.remap(frame, *self._maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if self._bonnet is not None:
            mask, colour = self._bonnet
            np.copyto(frame, colour, where=mask)
        if self.style is not None:
            frame, _ = draw_overlay(frame, self.style, self.start_utc + video_time, speed_mps, 31.2520, 34.7915)
        return frame


def _bonnet(width: int, height: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """A bonnet's mask and colours: a dark curved shape rising to ``fraction`` of the height at the centre, with a
    pale streak where it reflects the sky."""
    u = (np.arange(width) - width / 2) / (width / 2)
    top = height * (1.0 - fraction * (1.0 - 0.55 * u**2))
    rows = np.arange(height)[:, None]
    mask = rows >= top[None, :]
    depth = np.clip((rows - top[None, :]) / max(1.0, fraction * height), 0, 1)
    colour = np.float32([40, 37, 36])[None, None, :] * (1 - 0.5 * depth[..., None])
    streak = np.exp(-(((rows - top[None, :]) / max(2.0, 0.08 * fraction * height) - 2.0) ** 2))
    colour = colour + np.float32([150, 140, 128]) * 0.35 * (streak * (np.abs(u) < 0.5))[..., None]
    return np.repeat(mask[..., None], 3, axis=2), np.clip(colour, 0, 255).astype(np.uint8)
