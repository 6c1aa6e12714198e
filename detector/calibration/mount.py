"""How the camera sits on the vehicle (pitch, roll, yaw) from an ordinary drive: the road's own motion.

Two cues, both robust to the lens (points are undistorted first). **The world's vertical**: poles, building corners
and sign posts are upright, and their edges meet at a vanishing point that is the down direction in camera axes
(pitch and roll) whatever the road does. **The road's motion**, where the scene has too few upright edges (an open
highway), and always for yaw: on a straight stretch the vehicle translates along its forward axis, and the picture
flows away from one point,
the focus of expansion ``e``: the image of the forward axis (yaw and pitch). How far each road point moves tells
its depth, and the depths of a flat road are those of a plane: with image-plane coordinates ``r = (x, y, 1)`` (lens
undistorted), a road point seen at ``q`` and then ``q'`` satisfies ``1 - |q - e| / |q' - e| = a . r``, linear in
``a``, which points along the road's normal in camera axes (pitch and roll). Both are fitted per pair of frames
about a metre apart, robustly (RANSAC: cars, kerbs and facades are other planes, a turn has no single focus), and
the drive's estimate is the median over its pairs, with their spread.

Only the angles come from the picture: the mount's height and the GPS antenna offset are the user's to measure.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import cv2
import numpy as np
from scipy.optimize import least_squares

from detector.camera import CameraModel
from detector.errors import InputError
from detector.pipeline.sources.drive import Drive
from detector.pipeline.sources.video import decode_frames

MIN_PAIRS = 12
WORK_WIDTH = 960


@dataclass(frozen=True)
class MountSettings:
    pair_m: float = 1.0  # driven between the two frames of a pair
    every_s: float = 0.4  # one pair per this many seconds of straight driving
    min_speed_mps: float = 3.0
    max_turn_dps: float = 1.5  # heading change (GPS) above which a stretch is not straight
    max_pairs: int = 120


@dataclass(frozen=True)
class MountEstimate:
    """The mount's angles (degrees) with their spread over the pairs (1.4826 x the median absolute deviation)."""

    pitch_deg: float
    roll_deg: float
    yaw_deg: float
    pitch_spread: float
    roll_spread: float
    yaw_spread: float
    pairs: int
    cue: str = "upright edges"  # what gave pitch and roll: upright edges, or the road's motion where none


def straight_times(drive: Drive, settings: MountSettings) -> list[tuple[float, float]]:
    """Video-time pairs (t, t + dt), about ``pair_m`` apart, on straight stretches at speed."""
    t0, t1 = drive.covered
    grid = np.arange(t0, t1 - 0.5, settings.every_s)
    out = []
    for t in grid:
        state = drive.trajectory.at(drive.utc(np.array([t - 0.5, t, t + 0.5])))
        if not state.valid.all() or state.speed[1] < settings.min_speed_mps:
            continue
        turn = abs((state.heading[2] - state.heading[0] + 180.0) % 360.0 - 180.0)
        if turn > settings.max_turn_dps:
            continue
        out.append((float(t), float(t + settings.pair_m / state.speed[1])))
    if len(out) > settings.max_pairs:
        out = [out[i] for i in np.linspace(0, len(out) - 1, settings.max_pairs).round().astype(int)]
    return out


def enough_straight_times(drive: Drive, settings: MountSettings, purpose: str) -> list[tuple[float, float]]:
    """:func:`straight_times`, at least :data:`MIN_PAIRS` of them, or a one-line error saying what for."""
    times = straight_times(drive, settings)
    if len(times) < MIN_PAIRS:
        raise InputError(
            drive.video.path,
            f"too short or too stationary to {purpose}: {len(times)} straight stretches at "
            f"{settings.min_speed_mps:g} m/s or more (need {MIN_PAIRS}); drive a few hundred metres of straight road",
        )
    return times


@dataclass(frozen=True)
class FramePair:
    """Two grey frames of a straight stretch and their video times."""

    first: np.ndarray
    second: np.ndarray
    first_time: float
    second_time: float


def frame_pairs(drive: Drive, times: list[tuple[float, float]]) -> Iterator[FramePair]:
    """The grey frames at t and t + dt for each time pair, decoded once in video order."""
    spans = [(a - 0.02, b + 0.05) for a, b in times]
    wanted = list(times)
    first: np.ndarray | None = None
    first_time = 0.0
    k = 0
    for frame in decode_frames(drive.video.path, spans):
        while k < len(wanted) and frame.time > wanted[k][1] + 0.05:
            k, first = k + 1, None
        if k == len(wanted):
            break
        a, b = wanted[k]
        if first is None and frame.time >= a - 0.02:
            first, first_time = frame.luma().copy(), frame.time
        elif first is not None and frame.time >= b:
            yield FramePair(first, frame.luma().copy(), first_time, frame.time)
            k, first = k + 1, None


def flow(g0: np.ndarray, g1: np.ndarray, exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Tracked points (pixels of the frames given) in the first frame and the second, forward-backward checked."""
    h = g0.shape[0]
    region = np.zeros_like(g0, np.uint8)
    region[int(0.3 * h) :] = 255
    if exclude is not None:
        region[exclude] = 0
    spacing = max(4, g0.shape[1] // 160)
    p0 = cv2.goodFeaturesToTrack(g0, maxCorners=2000, qualityLevel=0.001, minDistance=spacing, mask=region)
    if p0 is None or len(p0) < 30:
        return np.zeros((0, 2)), np.zeros((0, 2))
    lk = {"winSize": (21, 21), "maxLevel": 4, "criteria": (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 0.01)}
    p1, ok, _ = cv2.calcOpticalFlowPyrLK(g0, g1, p0, None, **lk)
    back, ok2, _ = cv2.calcOpticalFlowPyrLK(g1, g0, p1, None, **lk)
    good = (ok.ravel() == 1) & (ok2.ravel() == 1) & (np.linalg.norm((back - p0).reshape(-1, 2), axis=1) < 0.7)
    p0, p1 = p0.reshape(-1, 2)[good], p1.reshape(-1, 2)[good]
    moving = np.linalg.norm(p1 - p0, axis=1) > 0.5  # a still point is fixed to the camera (a stamp), or far away
    return p0[moving], p1[moving]


def focus_of_expansion(q: np.ndarray, d: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """The point all flow lines (through ``q`` along ``d``, image-plane coordinates) point away from."""
    if len(q) < 20:
        return None
    unit = d / np.linalg.norm(d, axis=1, keepdims=True)
    normal = np.column_stack([-unit[:, 1], unit[:, 0]])
    offset = np.sum(normal * q, axis=1)

    def inliers(e: np.ndarray) -> np.ndarray:
        away = q - e
        cos = np.sum(away * unit, axis=1) / np.maximum(np.linalg.norm(away, axis=1), 1e-9)
        return cos > math.cos(math.radians(4.0))

    best, best_n = None, 0
    for _ in range(200):
        i, j = rng.choice(len(q), 2, replace=False)
        a = np.array([normal[i], normal[j]])
        if abs(np.linalg.det(a)) < 1e-6:
            continue
        e = np.linalg.solve(a, [offset[i], offset[j]])
        n = int(inliers(e).sum())
        if n > best_n:
            best, best_n = e, n
    if best is None or best_n < 0.5 * len(q):
        return None  # no one point: the vehicle turned, or the picture is not the road's
    keep = inliers(best)
    return np.linalg.lstsq(normal[keep], offset[keep], rcond=None)[0]


def road_normal(q: np.ndarray, d: np.ndarray, e: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """The road plane's normal (unit, pointing down, camera axes) from how far its points move away from ``e``."""
    away = q - e
    # The road is below the horizon, which runs through the focus; keep to the road ahead (within 2.5 camera
    # heights to either side): a pavement is a plane a little higher, and one side's alone would tilt the fit.
    below = (q[:, 1] > e[1] + 0.02) & (np.abs(q[:, 0] - e[0]) < 2.5 * (q[:, 1] - e[1]))
    # Exact for a translation: the point moves along its line from e, and 1 - |q - e| / |q' - e| = t_z / depth.
    s = 1.0 - np.linalg.norm(away, axis=1) / np.maximum(np.linalg.norm(q + d - e, axis=1), 1e-12)
    r = np.column_stack([q, np.ones(len(q))])
    s_b, r_b = s[below], r[below]
    if len(s_b) < 20:
        return None
    best, best_n = None, 0
    for _ in range(300):
        pick = rng.choice(len(s_b), 3, replace=False)
        try:
            a = np.linalg.solve(r_b[pick], s_b[pick])
        except np.linalg.LinAlgError:
            continue
        if a[1] <= 0.5 * np.linalg.norm(a):  # the road's normal points mostly down, not at a facade
            continue
        n = int((np.abs(r_b @ a - s_b) < 0.04 * np.abs(s_b) + 1e-6).sum())
        if n > best_n:
            best, best_n = a, n
    if best is None or best_n < 15:
        return None
    keep = np.abs(r_b @ best - s_b) < 0.04 * np.abs(s_b) + 1e-6
    a = np.linalg.lstsq(r_b[keep], s_b[keep], rcond=None)[0]
    return a / np.linalg.norm(a)


def line_segments(grey: np.ndarray) -> np.ndarray:
    """The picture's straight segments (N, 4: x1, y1, x2, y2 in pixels), OpenCV's line segment detector."""
    segments = cv2.createLineSegmentDetector().detect(grey)[0]
    return np.zeros((0, 4), np.float32) if segments is None else segments.reshape(-1, 4)


def vertical_direction(grey: np.ndarray, camera: CameraModel, rng: np.random.Generator) -> np.ndarray | None:
    """The world's down direction in camera axes from the picture's upright edges (poles, building corners, sign
    posts): their vanishing point, in homogeneous image-plane coordinates, is that direction itself."""
    return vertical_vanishing(line_segments(grey), grey.shape[0], camera, rng)


def vertical_vanishing(
    segments: np.ndarray, height: int, camera: CameraModel, rng: np.random.Generator
) -> np.ndarray | None:
    """:func:`vertical_direction` from segments already found in a picture ``height`` pixels high."""
    seg = segments
    length = np.hypot(seg[:, 2] - seg[:, 0], seg[:, 3] - seg[:, 1])
    upright = np.abs(seg[:, 3] - seg[:, 1]) > 0.9 * length  # within 25 degrees of the picture's vertical
    seg = seg[(length > 0.04 * height) & upright]
    if len(seg) < 8:
        return None
    x1, y1 = camera.normalized(seg[:, 0], seg[:, 1])
    x2, y2 = camera.normalized(seg[:, 2], seg[:, 3])
    a, b = np.column_stack([x1, y1, np.ones(len(x1))]), np.column_stack([x2, y2, np.ones(len(x2))])
    lines = np.cross(a, b)
    lines /= np.linalg.norm(lines[:, :2], axis=1, keepdims=True)
    mid = (a + b) / 2
    along = (b - a)[:, :2] / np.linalg.norm((b - a)[:, :2], axis=1, keepdims=True)

    def inliers(v: np.ndarray) -> np.ndarray:
        toward = v[:2] - mid[:, :2] * v[2]  # towards the vanishing point (homogeneous: also at infinity)
        cos = np.abs(np.sum(toward * along, axis=1)) / np.maximum(np.linalg.norm(toward, axis=1), 1e-12)
        return cos > math.cos(math.radians(1.0))

    best, best_n = None, 0
    for _ in range(300):
        i, j = rng.choice(len(lines), 2, replace=False)
        v = np.cross(lines[i], lines[j])
        if np.linalg.norm(v) < 1e-9:
            continue
        n = int(inliers(v).sum())
        if n > best_n:
            best, best_n = v, n
    if best is None or best_n < 6:
        return None
    _, _, vt = np.linalg.svd(lines[inliers(best)])
    down = vt[-1]
    down = down if down[1] > 0 else -down
    return down / np.linalg.norm(down)


def _angles(forward: np.ndarray, down: np.ndarray, camera: CameraModel) -> tuple[float, float, float]:
    """Pitch, roll, yaw (degrees) of a mount whose forward and down axes appear as these camera-axis vectors."""

    def residual(angles):
        rot = replace(camera, pitch_deg=angles[0], roll_deg=angles[1], yaw_deg=angles[2])._rotation
        return np.concatenate([rot[0] - forward, rot[2] - down])

    start = [camera.pitch_deg, camera.roll_deg, 0.0]
    fit = least_squares(residual, start, bounds=([-30, -30, -30], [60, 30, 30]))
    return tuple(float(v) for v in fit.x)


def estimate_mount(
    drive: Drive, camera: CameraModel, settings: MountSettings, exclude: np.ndarray | None = None, progress=None
) -> MountEstimate:
    """The mount's angles from ``drive``'s straight stretches; ``camera`` gives the lens (its angles are ignored),
    ``exclude`` the pixels never tracked (a stamp, the bonnet)."""
    times = enough_straight_times(drive, settings, "find the horizon")
    rng = np.random.default_rng(0)
    cam = camera.scaled_to(drive.video.width, drive.video.height)
    forwards, uprights, road_downs = [], [], []
    for pair in frame_pairs(drive, times):
        if progress:
            progress()
        down = vertical_direction(pair.first, cam, rng)
        if down is not None:
            uprights.append(down)
        p0, p1 = flow(pair.first, pair.second, exclude)
        if len(p0) < 30:
            continue
        x0, y0 = cam.normalized(p0[:, 0], p0[:, 1])
        x1, y1 = cam.normalized(p1[:, 0], p1[:, 1])
        q, d = np.column_stack([x0, y0]), np.column_stack([x1 - x0, y1 - y0])
        e = focus_of_expansion(q, d, rng)
        if e is None:
            continue
        forwards.append(np.array([e[0], e[1], 1.0]) / math.hypot(e[0], e[1], 1.0))
        normal = road_normal(q, d, e, rng)
        if normal is not None:
            road_downs.append(normal)
    downs = uprights if len(uprights) >= MIN_PAIRS else road_downs
    if len(forwards) < MIN_PAIRS or len(downs) < MIN_PAIRS:
        raise InputError(
            drive.video.path,
            f"the road's motion was measured in only {min(len(forwards), len(downs))} of {len(times)} straight "
            f"stretches (need {MIN_PAIRS}): too dark, too blurred, or the road too plain to track",
        )
    forward, down = _median_direction(forwards), _median_direction(downs)
    pitch, roll, yaw = _angles(forward, down, camera)
    # The spread of each cue's own angles: pitch and roll from the down directions, yaw from the forward ones.
    tilts = np.array([[math.degrees(math.asin(v[2])), math.degrees(math.atan2(v[0], v[1]))] for v in downs])
    yaws = np.array([_angles(f, down, camera)[2] for f in forwards])
    spread = [1.4826 * float(np.median(np.abs(x - np.median(x)))) for x in (tilts[:, 0], tilts[:, 1], yaws)]
    cue = "upright edges" if downs is uprights else "the road's motion"
    return MountEstimate(pitch, roll, yaw, *spread, min(len(forwards), len(downs)), cue)


def _median_direction(vectors: list[np.ndarray]) -> np.ndarray:
    """A robust mean of unit vectors: their componentwise median, made unit again."""
    v = np.median(np.array(vectors), axis=0)
    return v / np.linalg.norm(v)
