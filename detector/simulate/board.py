"""Pictures of a printed checkerboard through a given camera, lens included: ground truth for calibration.

Each view places the board at a random distance, tilt and position in the picture, and traces every pixel's ray
(through the lens model, :meth:`detector.camera.CameraModel.normalized`) to the board's plane, so the corners land
exactly where the lens puts them. A sheet of paper around the squares, a grey room behind, some blur and noise.

>>> from detector.camera import CameraModel
>>> from detector.calibration.board import Board, find_corners
>>> cam = CameraModel(width=320, height=240, hfov_deg=80.0)
>>> views = board_views(cam, Board(7, 5, 0.04), 2, np.random.default_rng(1))
>>> [find_corners(v, Board(7, 5, 0.04)) is not None for v in views]
[True, True]
"""

from __future__ import annotations

import cv2
import numpy as np

from detector.calibration.board import Board
from detector.camera import CameraModel

MARGIN_SQUARES = 1.0  # white paper around the squares


def _rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    return cv2.Rodrigues(np.array([rx, ry, rz], float))[0]


def render_view(camera: CameraModel, board: Board, rotation: np.ndarray, origin: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """One grey picture (as BGR) of ``board`` whose corner (0, 0) is at ``origin`` (camera metres) and whose plane
    is turned by ``rotation`` (board axes to camera axes)."""
    u, v = np.meshgrid(np.arange(camera.width, dtype=float), np.arange(camera.height, dtype=float))
    x, y = camera.normalized(u.ravel(), v.ravel())
    rays = np.column_stack([x, y, np.ones_like(x)])
    normal = rotation[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (origin @ normal) / (rays @ normal)
    hit = rays * s[:, None] - origin
    a, b = hit @ rotation[:, 0], hit @ rotation[:, 1]  # board coordinates, metres
    sq = board.square_m
    # The inner corners run 0..columns-1 squares; the printed squares extend one more on every side.
    i, j = np.floor(a / sq), np.floor(b / sq)
    on_squares = (i >= -1) & (i < board.columns) & (j >= -1) & (j < board.rows)
    on_paper = (
        (a >= -(1 + MARGIN_SQUARES) * sq) & (a < (board.columns + MARGIN_SQUARES) * sq)
        & (b >= -(1 + MARGIN_SQUARES) * sq) & (b < (board.rows + MARGIN_SQUARES) * sq) & (s > 0)
    )  # fmt: skip
    value = np.full(len(a), 110.0)
    value[on_paper] = 235.0
    dark = on_squares & on_paper & ((i + j) % 2 == 0)
    value[dark] = 25.0
    image = value.reshape(camera.height, camera.width).astype(np.float32)
    image = cv2.GaussianBlur(image, (0, 0), 0.8)
    image += rng.normal(0.0, 2.0, image.shape).astype(np.float32)
    grey = np.clip(image, 0, 255).astype(np.uint8)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def board_views(camera: CameraModel, board: Board, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` views with the board all over the picture (corners and edges too) at tilts up to 45 degrees,
    kept whole inside the frame."""
    views = []
    width_m, height_m = (board.columns + 1) * board.square_m, (board.rows + 1) * board.square_m
    corners = np.array([[-1, -1], [board.columns, -1], [-1, board.rows], [board.columns, board.rows]]) * board.square_m
    while len(views) < count:
        rotation = _rotation(*np.radians(rng.uniform(-45, 45, 2)), np.radians(rng.uniform(-20, 20)))
        distance = rng.uniform(2.0, 4.5) * max(width_m, height_m) * camera.focal / camera.width
        u, v = rng.uniform(0.12, 0.88) * camera.width, rng.uniform(0.12, 0.88) * camera.height
        x, y = camera.normalized(np.array([u]), np.array([v]))
        centre = np.array([x[0], y[0], 1.0]) * distance
        origin = centre - rotation[:, :2] @ np.array([width_m / 2 - board.square_m, height_m / 2 - board.square_m])
        points = origin + (rotation[:, :2] @ corners.T).T
        if (points[:, 2] <= 0.05).any():
            continue
        u, v = camera.to_pixels(points[:, 0] / points[:, 2], points[:, 1] / points[:, 2])
        inside = (u > 4) & (u < camera.width - 5) & (v > 4) & (v < camera.height - 5)
        if not np.all(inside):
            continue
        views.append(render_view(camera, board, rotation, origin, rng))
    return views
