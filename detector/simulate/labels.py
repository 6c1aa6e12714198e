"""Exact image boxes of the hazards in every simulated frame: the training labels of simulator frames.

The oracle (:mod:`detector.simulate.oracle`) stands every hazard upright on its ground point, which is what
the localizer needs to be measured alone. A detector must instead learn the box of what the camera shows: a
pothole's footprint, and a fallen sign's plate wherever the fall left it (a leaning plate hangs a metre or more
above its ground point). These boxes come from the world's own geometry through the renderer's camera, cut at
the bonnet and the frame edge.

>>> from detector.simulate.generate import build_world
>>> world = build_world(3)
>>> shapes = hazard_shapes(world)
>>> sorted({s.cls for s in shapes}) == [0, 1]
True
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.simulate.motion import DriveMotion
from detector.simulate.real_camera import CameraLook
from detector.simulate.render import HOOD_FRACTION, NEAR_M, CameraPose, SimulatedCamera, project_points
from detector.simulate.world import World, forward, right_of, sign_geometry

CLASS_IDS = {"pothole": 0, "fallen_sign": 1}
LABEL_FIELDS = ("frame", "id", "class", "x1", "y1", "x2", "y2", "range_m", "visible", "fill")
MAX_RANGE_M = 40.0  # farther hazards are a few pixels wide: not worth a label row


@dataclass(frozen=True)
class HazardShape:
    """A hazard's outline in world coordinates (x east, y north, z up, metres)."""

    id: str
    cls: int
    outline: np.ndarray  # (N, 3)

    @property
    def centre(self) -> np.ndarray:
        return self.outline.mean(axis=0)


@dataclass(frozen=True)
class HazardBox:
    """Where one hazard shows in one frame. ``visible``: the share of its box inside the picture; ``fill``: the
    share of its (uncut) box that its outline covers: about 0.8 for a pothole or a plate seen face-on, near 0
    for a plate seen edge-on, a sliver a detector cannot be asked to find."""

    id: str
    cls: int
    box: tuple[float, float, float, float]  # x1 y1 x2 y2, pixels
    range_m: float  # ahead of the camera, along the heading
    visible: float
    fill: float


def outline_area(uv: np.ndarray) -> float:
    """Area in pixels of the polygon with vertices ``uv`` (N, 2) in order (the shoelace formula).

    >>> outline_area(np.array([[0.0, 0.0], [4.0, 0.0], [4.0, 3.0], [0.0, 3.0]]))
    12.0
    """
    x, y = uv[:, 0], uv[:, 1]
    return float(abs(x @ np.roll(y, -1) - y @ np.roll(x, -1)) / 2)


def hazard_shapes(world: World) -> list[HazardShape]:
    """Potholes as their elliptic footprint, fallen signs as their plate (standing signs are not hazards)."""
    shapes = []
    theta = np.linspace(0.0, 2 * np.pi, 16, endpoint=False)
    for p in world.potholes:
        along, across = forward(p.rotation_deg), right_of(p.rotation_deg)
        a, b = p.width_m / 2, p.width_m * p.aspect / 2
        xy = np.array([p.x, p.y]) + np.outer(a * np.cos(theta), along) + np.outer(b * np.sin(theta), across)
        shapes.append(HazardShape(p.id, CLASS_IDS["pothole"], np.column_stack([xy, np.zeros(len(xy))])))
    for s in world.signs:
        if s.hazard:
            shapes.append(HazardShape(s.id, CLASS_IDS["fallen_sign"], sign_geometry(s).plate))
    return shapes


def frame_boxes(
    shapes: list[HazardShape], camera: SimulatedCamera, pose: CameraPose, look: CameraLook | None = None
) -> list[HazardBox]:
    """The boxes of the hazards in view from ``pose``, up to :data:`MAX_RANGE_M` ahead; with ``look``, projected by
    its renderer's camera and carried through the real camera's lens into its frame (``camera`` is the frame's)."""
    ahead = forward(pose.heading_deg)
    hood = max(HOOD_FRACTION, look.bottom_fraction) if look else HOOD_FRACTION
    bottom = camera.height * (1.0 - hood)  # the bonnet hides what is below
    boxes = []
    for shape in shapes:
        range_m = float((shape.centre[:2] - [pose.x, pose.y]) @ ahead)
        if not 0.0 < range_m <= MAX_RANGE_M:
            continue
        uv, depth = project_points(look.render_camera if look else camera, pose, shape.outline)
        if depth.min() < NEAR_M:
            continue
        if look is not None:
            uv = look.to_output(uv)
        x1, y1 = uv.min(axis=0)
        x2, y2 = uv.max(axis=0)
        full = (x2 - x1) * (y2 - y1)
        cx1, cy1 = max(x1, 0.0), max(y1, 0.0)
        cx2, cy2 = min(x2, camera.width - 1.0), min(y2, bottom)
        if cx2 <= cx1 or cy2 <= cy1 or full <= 0:
            continue
        visible = (cx2 - cx1) * (cy2 - cy1) / full
        fill = outline_area(uv) / full
        boxes.append(HazardBox(shape.id, shape.cls, (cx1, cy1, cx2, cy2), range_m, visible, fill))
    return boxes


def write_labels(path: Path, world: World, drive: DriveMotion, fps: int, frames: int, look: CameraLook) -> int:
    """``labels.csv``: one row per hazard per frame it shows in (as ``look``'s camera records it); returns the
    number of rows."""
    camera = look.camera
    shapes = hazard_shapes(world)
    x, y, heading, _ = drive.state(np.arange(frames) / fps)
    rows = 0
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(LABEL_FIELDS)
        for k in range(frames):
            for b in frame_boxes(shapes, camera, CameraPose(float(x[k]), float(y[k]), float(heading[k])), look):
                values = (*(f"{v:.1f}" for v in b.box), f"{b.range_m:.2f}", f"{b.visible:.2f}", f"{b.fill:.2f}")
                out.writerow([k, b.id, b.cls, *values])
                rows += 1
    return rows


def labels_current(path: Path) -> bool:
    """Whether ``path`` exists with today's columns (older caches lack ``fill``)."""
    if not path.is_file():
        return False
    with path.open(encoding="utf-8") as f:
        return f.readline().strip().split(",") == list(LABEL_FIELDS)


def read_labels(path: Path) -> dict[int, list[HazardBox]]:
    """The rows of ``labels.csv`` by frame index."""
    by_frame: dict[int, list[HazardBox]] = {}
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            box = tuple(float(row[k]) for k in ("x1", "y1", "x2", "y2"))
            by_frame.setdefault(int(row["frame"]), []).append(
                HazardBox(row["id"], int(row["class"]), box, *(float(row[k]) for k in ("range_m", "visible", "fill")))
            )
    return by_frame
