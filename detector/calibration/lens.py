"""The lens without a board: focal length and radial distortion from an ordinary drive.

**Focal length from two vanishing points of orthogonal directions.** On a straight stretch the picture flows away
from the focus of expansion ``e``, the image of the forward direction; upright edges (poles, building corners)
meet at ``v``, the image of the down direction (:mod:`detector.calibration.mount`). The two directions are at right
angles, so with ideal image-plane coordinates measured in units of a nominal focal length ``f0`` (pixels from the
centre divided by ``f0``), ``(f0 / f)^2 e . v + 1 = 0``:

    f = f0 sqrt(-e . v).

It needs the camera pitched a little (``e`` off the centre; every dashcam looks a few degrees down) and a scene
with upright edges (a town, not an open highway).

**Distortion from lines along the road.** Lane markings, kerbs and the facades' horizontal edges run along a
straight road, and through the right lens their lines all point at ``e``; a barrel lens bends those towards the
edges of the picture away from it. The radial coefficients ``(k1, k2)`` in units of ``f0`` (hence found before
``f``) are those that make most of each picture's segments point at its ``e`` (a truncated quadratic of the angle),
searched on a grid, then refined with the upright edges' meeting at their own vanishing point as a second cue;
they are then converted to the profile's units (``k1 (f / f0)^2``,
``k2 (f / f0)^4``).

Each stretch with both vanishing points gives its own focal length; their spread is the estimate's uncertainty.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from detector.calibration.mount import (
    MIN_PAIRS,
    MountSettings,
    Stretch,
    driven_between,
    enough_straight_times,
    focus_of_expansion,
    frame_pairs,
    robust_spread,
    stretch_of,
    vertical_vanishing,
)
from detector.camera import CameraModel
from detector.errors import InputError
from detector.pipeline.sources.drive import Drive

MAX_STRETCHES = 40
FLOW_POINTS = 400  # tracked points per stretch kept for the focus of expansion (a random subset)
ANGLE_CAP_DEG = 4.0  # a segment further than this from pointing at the focus is not along the road: a flat cost
MIN_PITCH_DEG = 2.0  # below this the focus sits on the centre and e . v carries no focal length


@dataclass(frozen=True)
class LensEstimate:
    """The focal length (pixels) with its spread over the stretches, and the distortion in the profile's units."""

    focal_px: float
    focal_spread: float  # 1.4826 x the median absolute deviation of the stretches' focal lengths
    distortion: tuple[float, float, float, float]
    stretches: int

    @property
    def focal_error(self) -> float:
        """The standard error of the estimate (of a median over the stretches)."""
        return 1.2533 * self.focal_spread / math.sqrt(self.stretches)


def stretches(drive: Drive, exclude: np.ndarray | None, progress: Callable[[], None] | None = None) -> list[Stretch]:
    """The drive's straight stretches with enough tracked points, at most :data:`MAX_STRETCHES`."""
    settings = MountSettings(max_pairs=MAX_STRETCHES)
    times = enough_straight_times(drive, settings, "measure the lens")
    out = []
    for pair in frame_pairs(drive, times):
        if progress:
            progress()
        stretch = stretch_of(pair, exclude, driven_between(drive, pair))
        if len(stretch.p0) >= 30:
            out.append(stretch)
    if len(out) < MIN_PAIRS:
        raise InputError(
            drive.video.path,
            f"the road's motion was tracked in only {len(out)} of {len(times)} straight stretches (need {MIN_PAIRS}): "
            f"too dark, too blurred, or the road too plain to track",
        )
    return out


def nominal_camera(width: int, height: int, k1: float = 0.0, k2: float = 0.0) -> CameraModel:
    """A camera with focal length f0 = half the width and radial distortion (k1, k2) in units of f0."""
    return CameraModel(width=width, height=height, focal_px=width / 2, distortion=(k1, k2, 0.0, 0.0))


def focus(stretch: Stretch, camera: CameraModel, rng: np.random.Generator) -> np.ndarray | None:
    """The stretch's focus of expansion in ``camera``'s ideal image-plane coordinates."""
    p0, p1 = stretch.p0, stretch.p1
    if len(p0) > FLOW_POINTS:  # a subset: the focus is found once per stretch for every lens the search tries
        keep = np.random.default_rng(0).choice(len(p0), FLOW_POINTS, replace=False)
        p0, p1 = p0[keep], p1[keep]
    x0, y0 = camera.normalized(p0[:, 0], p0[:, 1])
    x1, y1 = camera.normalized(p1[:, 0], p1[:, 1])
    q, d = np.column_stack([x0, y0]), np.column_stack([x1 - x0, y1 - y0])
    ok = np.isfinite(q).all(axis=1) & np.isfinite(d).all(axis=1) & (np.abs(d).sum(axis=1) > 0)
    return focus_of_expansion(q[ok], d[ok], rng)


def _capped_angles(ax, ay, bx, by, toward_x, toward_y) -> np.ndarray:
    """Squared angles (degrees) between segments (a, b) and the directions ``toward``, capped at ANGLE_CAP_DEG."""
    dx, dy = bx - ax, by - ay
    sine = (dx * toward_y - dy * toward_x) / np.maximum(np.hypot(dx, dy) * np.hypot(toward_x, toward_y), 1e-12)
    angle = np.degrees(np.arcsin(np.clip(np.abs(np.nan_to_num(sine, nan=1.0)), 0.0, 1.0)))
    return np.minimum(angle, ANGLE_CAP_DEG) ** 2


def along_road_cost(stream: list[Stretch], camera: CameraModel) -> float:
    """How badly the pictures' non-upright segments miss their focus of expansion through ``camera``: their mean
    squared angle to it (degrees, capped at :data:`ANGLE_CAP_DEG`; a lens that loses the focus pays the cap).

    Upright edges are left out: through a lens with far too little distortion their vanishing point flies off to
    infinity, where their pieces agree better than through the right lens (measured); :func:`lines_cost` adds them
    for the refinement near this cost's minimum, where they are the sharper cue."""
    rng = np.random.default_rng(0)
    costs = []
    for stretch in stream:
        seg = stretch.segments
        length = np.hypot(seg[:, 2] - seg[:, 0], seg[:, 3] - seg[:, 1])
        seg = seg[(length > 0.05 * camera.height) & (np.abs(seg[:, 3] - seg[:, 1]) < 0.8 * length)]
        e = focus(stretch, camera, rng)
        if len(seg) == 0:
            continue
        if e is None:
            costs.append(np.full(len(seg), ANGLE_CAP_DEG**2))
            continue
        ax, ay = camera.normalized(seg[:, 0], seg[:, 1])
        bx, by = camera.normalized(seg[:, 2], seg[:, 3])
        costs.append(_capped_angles(ax, ay, bx, by, e[0] - (ax + bx) / 2, e[1] - (ay + by) / 2))
    return float(np.mean(np.concatenate(costs))) if costs else ANGLE_CAP_DEG**2


def upright_cost(stream: list[Stretch], camera: CameraModel) -> float:
    """How badly the upright segments miss their own vanishing point through ``camera`` (as :func:`along_road_cost`)."""
    rng = np.random.default_rng(0)
    costs = []
    for stretch in stream:
        seg = stretch.segments
        length = np.hypot(seg[:, 2] - seg[:, 0], seg[:, 3] - seg[:, 1])
        chosen = seg[(length > 0.04 * camera.height) & (np.abs(seg[:, 3] - seg[:, 1]) > 0.9 * length)]
        down = vertical_vanishing(seg, camera.height, camera, rng)
        if len(chosen) == 0:
            continue
        if down is None:
            costs.append(np.full(len(chosen), ANGLE_CAP_DEG**2))
            continue
        ax, ay = camera.normalized(chosen[:, 0], chosen[:, 1])
        bx, by = camera.normalized(chosen[:, 2], chosen[:, 3])
        mx, my = (ax + bx) / 2, (ay + by) / 2
        costs.append(_capped_angles(ax, ay, bx, by, down[0] - mx * down[2], down[1] - my * down[2]))
    return float(np.mean(np.concatenate(costs))) if costs else ANGLE_CAP_DEG**2


def lines_cost(stream: list[Stretch], camera: CameraModel) -> float:
    """Both families of lines: along the road to the focus, upright to their vanishing point."""
    return along_road_cost(stream, camera) + upright_cost(stream, camera)


def estimate_distortion(stream: list[Stretch], width: int, height: int) -> tuple[float, float]:
    """(k1, k2) in units of f0 = width / 2 that make the lines meet at their vanishing points: on a grid by the lines
    along the road alone, then refined with the upright ones too."""
    grid = [(k1, k2) for k2 in (0.0, 0.2, 0.4) for k1 in np.arange(-0.8, 0.11, 0.15)]
    costs = [along_road_cost(stream, nominal_camera(width, height, *k)) for k in grid]
    start = np.array(grid[int(np.argmin(costs))])
    best = minimize(
        lambda k: lines_cost(stream, nominal_camera(width, height, float(k[0]), float(k[1]))),
        start,
        method="Nelder-Mead",
        options={
            "initial_simplex": start + np.array([[0.0, 0.0], [0.08, 0.0], [0.0, 0.08]]),
            "maxfev": 25,
            "xatol": 0.01,
        },
    )
    return float(best.x[0]), float(best.x[1])


def stretch_focals(stream: list[Stretch], camera: CameraModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Foci, down vanishing directions (both in ``camera``'s ideal coordinates) and each stretch's focal length
    ``f0 sqrt(-e . v)`` (NaN where a stretch lacks one of the two)."""
    rng = np.random.default_rng(0)
    foci, downs, focals = [], [], []
    for stretch in stream:
        e = focus(stretch, camera, rng)
        down = vertical_vanishing(stretch.segments, camera.height, camera, rng)
        if e is not None:
            foci.append(e)
        if down is not None:
            downs.append(down)
        if e is not None and down is not None and abs(down[2]) > 1e-9:
            product = -float(e @ (down[:2] / down[2]))
            focals.append(camera.focal * math.sqrt(product) if product > 0 else np.nan)
    return np.array(foci), np.array(downs), np.array(focals)


def estimate_lens(
    drive: Drive, exclude: np.ndarray | None = None, progress: Callable[[], None] | None = None
) -> LensEstimate:
    """The lens from ``drive``'s straight stretches (see the module's notes); ``exclude``: pixels never tracked."""
    return lens_from_stretches(stretches(drive, exclude, progress), drive.video.width, drive.video.height,
                               drive.video.path)  # fmt: skip


def lens_from_stretches(stream: list[Stretch], width: int, height: int, source: Path) -> LensEstimate:
    """The lens from straight stretches measured in pixels of a ``width`` x ``height`` picture; an
    :class:`InputError` naming ``source`` where they cannot give the focal length."""
    k1, k2 = estimate_distortion(stream, width, height)
    camera = nominal_camera(width, height, k1, k2)
    foci, downs, focals = stretch_focals(stream, camera)
    if len(foci) < MIN_PAIRS or len(downs) < MIN_PAIRS:
        raise InputError(
            source,
            f"the focus of the road's motion was found in {len(foci)} and the upright edges' vanishing point in "
            f"{len(downs)} of {len(stream)} straight stretches (need {MIN_PAIRS} of each; a scene with poles or "
            f"buildings): the focal length cannot be measured from this drive; calibrate with --board",
        )
    e = np.median(foci, axis=0)
    down = np.median(downs, axis=0)
    product = -float(e @ (down[:2] / down[2])) if abs(down[2]) > 1e-9 else 0.0
    pitch = math.degrees(math.atan(abs(e[1]) / math.sqrt(product))) if product > 0 else 0.0
    if product <= 0 or pitch < MIN_PITCH_DEG:
        raise InputError(
            source,
            f"the camera looks level (pitched {pitch:.1f} degrees, need {MIN_PITCH_DEG:g}): the road's vanishing "
            f"point sits on the picture's centre and gives no focal length; calibrate with --board",
        )
    focal = camera.focal * math.sqrt(product)
    valid = focals[np.isfinite(focals)]
    spread = robust_spread(valid) if len(valid) else math.inf
    ratio = focal / camera.focal
    return LensEstimate(focal, spread, (k1 * ratio**2, k2 * ratio**4, 0.0, 0.0), max(1, len(valid)))
