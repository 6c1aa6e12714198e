"""The check picture: a frame of the drive with what the profile believes drawn over it.

The horizon (where the road plane meets the sky, curved by the lens), a ground grid (lines across the road every
5 m from 5 m to 30 m ahead, and along it every metre and a half to either side), and the masked regions in red.
If the grid does not lie flat on the road, or the horizon does not run through the far end of the road, the
profile is wrong, whatever its numbers say.
"""

from __future__ import annotations

import cv2
import numpy as np

from detector.camera import CameraModel

GRID_AHEAD_M = (5.0, 10.0, 15.0, 20.0, 25.0, 30.0)
GRID_SIDE_M = (-4.5, -3.0, -1.5, 0.0, 1.5, 3.0, 4.5)


def _polyline(camera: CameraModel, forward: np.ndarray, right: np.ndarray, up: float = 0.0) -> np.ndarray | None:
    u, v = camera.ground_to_pixel(forward, right, up)
    keep = np.isfinite(u) & np.isfinite(v)
    keep &= (u > -camera.width) & (u < 2 * camera.width) & (v > -camera.height) & (v < 2 * camera.height)
    if keep.sum() < 2:
        return None
    return np.round(np.column_stack([u[keep], v[keep]])).astype(np.int32)


def check_picture(frame: np.ndarray, camera: CameraModel, mask: np.ndarray | None = None) -> np.ndarray:
    """``frame`` (BGR) with the horizon, the ground grid and ``mask`` (bool, the frame's size) drawn."""
    out = frame.copy()
    cam = camera.scaled_to(out.shape[1], out.shape[0])
    if mask is not None and mask.any():
        red = np.zeros_like(out)
        red[..., 2] = 255
        out[mask] = cv2.addWeighted(out, 0.55, red, 0.45, 0)[mask]
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, (0, 0, 255), 2)
    thick = max(1, round(out.shape[0] / 360))
    azimuth = np.radians(np.linspace(-85, 85, 341))
    horizon = _polyline(cam, 1e5 * np.cos(azimuth), 1e5 * np.sin(azimuth), cam.height_m)
    if horizon is not None:
        cv2.polylines(out, [horizon], False, (255, 255, 0), thick + 1, cv2.LINE_AA)
    side = np.linspace(GRID_SIDE_M[0], GRID_SIDE_M[-1], 60)
    ahead = np.linspace(GRID_AHEAD_M[0], GRID_AHEAD_M[-1], 120)
    last_label_y = None
    for metres in GRID_AHEAD_M:
        line = _polyline(cam, np.full_like(side, metres), side)
        if line is not None:
            cv2.polylines(out, [line], False, (0, 255, 0), thick, cv2.LINE_AA)
            x, y = line[-1]
            if last_label_y is None or last_label_y - y >= 16 * thick:  # far lines crowd: label those with room
                cv2.putText(out, f"{metres:g} m", (int(x) + 4, int(y) + 4), cv2.FONT_HERSHEY_SIMPLEX,
                            0.45 * thick, (0, 255, 0), thick, cv2.LINE_AA)  # fmt: skip
                last_label_y = y
    for metres in GRID_SIDE_M:
        line = _polyline(cam, ahead, np.full_like(ahead, metres))
        if line is not None:
            cv2.polylines(out, [line], False, (0, 200, 0), max(1, thick - 1), cv2.LINE_AA)
    return out
