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
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import least_squares

from detector.camera import CameraModel
from detector.errors import InputError
from detector.pipeline.sources.drive import Drive
from detector.pipeline.sources.video import decode_frames

MIN_PAIRS = 12
MIN_HEIGHTS = 6  # stretches whose road plane gives the lens's height (each also needs the metres driven)
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
    height_m: float | None = None  # the lens above the road, from the road's motion and the GPS distance
    height_error: float = math.inf  # its standard error (of a median over the stretches)


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


@dataclass(frozen=True)
class Stretch:
    """One straight stretch: tracked points (pixels) between its two frames, the first frame's straight segments,
    and the metres driven between the frames (by the GPS; 0 where unknown)."""

    p0: np.ndarray
    p1: np.ndarray
    segments: np.ndarray
    metres: float = 0.0


def driven_between(drive: Drive, pair: FramePair) -> float:
    """Metres driven between a pair's two frames, by the GPS track's odometer."""
    odometer = drive.trajectory.at(drive.utc(np.array([pair.first_time, pair.second_time]))).distance
    return float(odometer[1] - odometer[0])


def stretch_of(
    pair: FramePair, exclude: np.ndarray | None, metres: float = 0.0, width: int | None = None, points: int = 2000
) -> Stretch:
    """The stretch a pair of frames shows, at most ``points`` tracked; with ``width``, measured on frames scaled to
    it (pixels of that size)."""
    first, second = pair.first, pair.second
    if width is not None and width < first.shape[1]:
        size = (width, round(first.shape[0] * width / first.shape[1]))
        first = cv2.resize(first, size, interpolation=cv2.INTER_AREA)
        second = cv2.resize(second, size, interpolation=cv2.INTER_AREA)
        if exclude is not None:
            exclude = cv2.resize(exclude.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    p0, p1 = flow(first, second, exclude, points)
    return Stretch(p0, p1, line_segments(first), metres)


def flow(
    g0: np.ndarray, g1: np.ndarray, exclude: np.ndarray | None, points: int = 2000
) -> tuple[np.ndarray, np.ndarray]:
    """Tracked points (pixels of the frames given) in the first frame and the second, forward-backward checked."""
    h = g0.shape[0]
    region = np.zeros_like(g0, np.uint8)
    region[int(0.3 * h) :] = 255
    if exclude is not None:
        region[exclude] = 0
    spacing = max(4, g0.shape[1] // 160)
    p0 = cv2.goodFeaturesToTrack(g0, maxCorners=points, qualityLevel=0.001, minDistance=spacing, mask=region)
    if p0 is None or len(p0) < 30:
        return np.zeros((0, 2)), np.zeros((0, 2))
    lk = {"winSize": (21, 21), "maxLevel": 4, "criteria": (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 0.01)}
    p1, ok, _ = cv2.calcOpticalFlowPyrLK(g0, g1, p0, None, **lk)
    back, ok2, _ = cv2.calcOpticalFlowPyrLK(g1, g0, p1, None, **lk)
    good = (ok.ravel() == 1) & (ok2.ravel() == 1) & (np.linalg.norm((back - p0).reshape(-1, 2), axis=1) < 0.7)
    p0, p1 = p0.reshape(-1, 2)[good], p1.reshape(-1, 2)[good]
    moving = np.linalg.norm(p1 - p0, axis=1) > 0.5  # a still point is fixed to the camera (a stamp), or far away
    return p0[moving], p1[moving]


def random_pairs(rng: np.random.Generator, n: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` pairs of distinct indices below ``n``, drawn at once (the RANSAC hypotheses)."""
    first = rng.integers(0, n, count)
    second = rng.integers(0, n - 1, count)
    return first, second + (second >= first)


def best_hypothesis(hits: np.ndarray, valid: np.ndarray) -> tuple[int, int]:
    """The first hypothesis with the most inliers (``hits``: hypotheses x points) among ``valid``, and its count."""
    counts = np.where(valid, hits.sum(axis=1), -1)
    best = int(np.argmax(counts))
    return best, int(counts[best])


def focus_of_expansion(q: np.ndarray, d: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """The point all flow lines (through ``q`` along ``d``, image-plane coordinates) point away from."""
    if len(q) < 20:
        return None
    unit = d / np.linalg.norm(d, axis=1, keepdims=True)
    normal = np.column_stack([-unit[:, 1], unit[:, 0]])
    offset = np.sum(normal * q, axis=1)
    squared_cos = math.cos(math.radians(4.0)) ** 2

    def inliers(e: np.ndarray) -> np.ndarray:  # e: (..., 2) candidate foci, a row of points each
        # the flow points away from e within 4 degrees: cos > c, squared to spare the square roots
        away_x, away_y = q[:, 0] - e[..., 0, None], q[:, 1] - e[..., 1, None]
        dot = away_x * unit[:, 0] + away_y * unit[:, 1]
        return (dot > 0) & (dot * dot > squared_cos * (away_x * away_x + away_y * away_y))

    # 200 hypotheses at once: the meeting point of two flow lines each (Cramer's rule)
    i, j = random_pairs(rng, len(q), 200)
    a, b, c, e_ = normal[i, 0], normal[i, 1], normal[j, 0], normal[j, 1]
    det = a * e_ - b * c
    valid = np.abs(det) >= 1e-6
    safe = np.where(valid, det, 1.0)
    foci = np.column_stack([(offset[i] * e_ - b * offset[j]) / safe, (a * offset[j] - c * offset[i]) / safe])
    best, best_n = best_hypothesis(inliers(foci), valid)
    if best_n < 0.5 * len(q):
        return None  # no one point: the vehicle turned, or the picture is not the road's
    keep = inliers(foci[best])
    return np.linalg.lstsq(normal[keep], offset[keep], rcond=None)[0]


def road_normal(q: np.ndarray, d: np.ndarray, e: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """The road plane's normal (unit, pointing down, camera axes) from how far its points move away from ``e``."""
    plane = road_plane(q, d, e, rng)
    return None if plane is None else plane / np.linalg.norm(plane)


def road_plane(q: np.ndarray, d: np.ndarray, e: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """The road plane as ``a = (t_z / h) n``: its unit normal ``n`` (down, camera axes) scaled by the forward motion
    between the frames over the camera's height above it (:func:`road_normal` is its direction)."""
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
    picks = rng.integers(0, len(s_b), (300, 3))  # 300 hypotheses at once, a plane through three points each
    matrices = r_b[picks]
    valid = (picks[:, 0] != picks[:, 1]) & (picks[:, 0] != picks[:, 2]) & (picks[:, 1] != picks[:, 2])
    valid &= np.abs(np.linalg.det(matrices)) > 1e-12
    planes = np.zeros((len(picks), 3))
    if valid.any():
        planes[valid] = np.linalg.solve(matrices[valid], s_b[picks[valid]][..., None])[..., 0]
    valid &= planes[:, 1] > 0.5 * np.linalg.norm(planes, axis=1)  # the road's normal points mostly down, not a facade
    tolerance = 0.04 * np.abs(s_b) + 1e-6
    best, best_n = best_hypothesis(np.abs(planes @ r_b.T - s_b) < tolerance, valid)
    if best_n < 15:
        return None
    keep = np.abs(r_b @ planes[best] - s_b) < tolerance
    return np.linalg.lstsq(r_b[keep], s_b[keep], rcond=None)[0]


def line_segments(grey: np.ndarray) -> np.ndarray:
    """The picture's straight segments (N, 4: x1, y1, x2, y2 in pixels), OpenCV's line segment detector."""
    segments = cv2.createLineSegmentDetector().detect(grey)[0]
    return np.zeros((0, 4), np.float32) if segments is None else segments.reshape(-1, 4)


def vertical_vanishing(
    segments: np.ndarray, height: int, camera: CameraModel, rng: np.random.Generator
) -> np.ndarray | None:
    """The world's down direction in camera axes from a picture's upright edges (poles, building corners, sign
    posts; ``segments`` of a picture ``height`` pixels high): their vanishing point, in homogeneous image-plane
    coordinates, is that direction itself."""
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

    squared_cos = math.cos(math.radians(1.0)) ** 2

    def inliers(v: np.ndarray) -> np.ndarray:  # v: (..., 3) candidate vanishing points, a row of segments each
        # the segment points towards the vanishing point (homogeneous: also at infinity) within a degree
        toward_x = v[..., 0, None] - mid[:, 0] * v[..., 2, None]
        toward_y = v[..., 1, None] - mid[:, 1] * v[..., 2, None]
        dot = toward_x * along[:, 0] + toward_y * along[:, 1]
        return dot * dot > squared_cos * np.maximum(toward_x * toward_x + toward_y * toward_y, 1e-24)

    i, j = random_pairs(rng, len(lines), 300)  # 300 hypotheses at once: where two segments' lines meet
    points = np.cross(lines[i], lines[j])
    best, best_n = best_hypothesis(inliers(points), np.linalg.norm(points, axis=1) >= 1e-9)
    if best_n < 6:
        return None
    best = points[best]
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
    stream = []
    for pair in frame_pairs(drive, times):
        if progress:
            progress()
        stream.append(stretch_of(pair, exclude, driven_between(drive, pair)))
    cam = camera.scaled_to(drive.video.width, drive.video.height)
    return mount_from_stretches(stream, cam, drive.video.path, len(times))


def mount_from_stretches(
    stream: list[Stretch], camera: CameraModel, source: Path, tried: int | None = None
) -> MountEstimate:
    """The mount's angles (and the lens's height where the stretches know the metres driven) from straight
    stretches measured in ``camera``'s pixels; an :class:`InputError` naming ``source`` where too few show the
    road's motion."""
    rng = np.random.default_rng(0)
    forwards, uprights, road_downs, flows = [], [], [], []
    for stretch in stream:
        down = vertical_vanishing(stretch.segments, camera.height, camera, rng)
        if down is not None:
            uprights.append(down)
        if len(stretch.p0) < 30:
            continue
        x0, y0 = camera.normalized(stretch.p0[:, 0], stretch.p0[:, 1])
        x1, y1 = camera.normalized(stretch.p1[:, 0], stretch.p1[:, 1])
        q, d = np.column_stack([x0, y0]), np.column_stack([x1 - x0, y1 - y0])
        e = focus_of_expansion(q, d, rng)
        if e is None:
            continue
        forwards.append(np.array([e[0], e[1], 1.0]) / math.hypot(e[0], e[1], 1.0))
        flows.append((q, d, e, stretch.metres))
        normal = road_normal(q, d, e, rng)
        if normal is not None:
            road_downs.append(normal)
    downs = uprights if len(uprights) >= MIN_PAIRS else road_downs
    if len(forwards) < MIN_PAIRS or len(downs) < MIN_PAIRS:
        raise InputError(
            source,
            f"the road's motion was measured in only {min(len(forwards), len(downs))} of {tried or len(stream)} "
            f"straight stretches (need {MIN_PAIRS}): too dark, too blurred, or the road too plain to track",
        )
    forward, down = _median_direction(forwards), _median_direction(downs)
    pitch, roll, yaw = _angles(forward, down, camera)
    # The spread of each cue's own angles: pitch and roll from the down directions, yaw from the forward ones.
    tilts = np.array([[math.degrees(math.asin(v[2])), math.degrees(math.atan2(v[0], v[1]))] for v in downs])
    yaws = np.array([_angles(f, down, camera)[2] for f in forwards])
    spread = [robust_spread(x) for x in (tilts[:, 0], tilts[:, 1], yaws)]
    cue = "upright edges" if downs is uprights else "the road's motion"
    found = (road_height(q, d, e, metres, down) for q, d, e, metres in flows)
    heights = [h for h in found if h is not None]
    height = float(np.median(heights)) if len(heights) >= MIN_HEIGHTS else None
    height_error = 1.2533 * robust_spread(np.array(heights)) / math.sqrt(len(heights)) if height else math.inf
    return MountEstimate(pitch, roll, yaw, *spread, min(len(forwards), len(downs)), cue, height, height_error)


def road_height(q: np.ndarray, d: np.ndarray, e: np.ndarray, metres: float, down: np.ndarray) -> float | None:
    """The lens's height above the road from one stretch (points ``q`` moving by ``d`` away from ``e``, image-plane
    coordinates) that drove ``metres``: a road point at depth ``Z`` moves ``s = t_z / Z`` (see the module's notes),
    and lies on the road, ``down . (Z r) = h``; so ``h = t_z (down . r) / s`` for each, ``t_z`` the metres driven
    along the optical axis. The road's points share ``s / (down . r) = t_z / h``: its value is the densest one
    (within 5%) among the points below the horizon; a car or a kerb is nearer and reads more, the bonnet and far
    things barely move and read less."""
    if metres <= 0:
        return None
    s = 1.0 - np.linalg.norm(q - e, axis=1) / np.maximum(np.linalg.norm(q + d - e, axis=1), 1e-12)
    along = np.column_stack([q, np.ones(len(q))]) @ down
    road = (q[:, 1] > e[1] + 0.05) & (np.abs(q[:, 0] - e[0]) < 2.5 * (q[:, 1] - e[1])) & (s > 1e-4) & (along > 0.02)
    if road.sum() < 15:
        return None
    ratios = np.sort(np.log(s[road] / along[road]))
    ends = np.searchsorted(ratios, ratios + 0.1)  # each point's window: ratios up to 10% (in log) above its own
    first = int(np.argmax(ends - np.arange(len(ratios))))
    if ends[first] - first < 10:
        return None
    t_z = metres / math.hypot(e[0], e[1], 1.0)
    return t_z / math.exp(float(np.median(ratios[first : ends[first]])))


def robust_spread(values: np.ndarray) -> float:
    """1.4826 x the median absolute deviation: the standard deviation of the values' normal core."""
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


def _median_direction(vectors: list[np.ndarray]) -> np.ndarray:
    """A robust mean of unit vectors: their componentwise median, made unit again."""
    v = np.median(np.array(vectors), axis=0)
    return v / np.linalg.norm(v)
