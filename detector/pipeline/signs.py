"""Sign plates as an inventory: what one drive's sightings of a plate say about the sign (standing, leaning, down).

A model with a ``traffic_sign`` class (``signs.class_name``) reports every plate it sees, standing or not. The
deduplicator gathers one drive's sightings of a plate frame to frame (:func:`~detector.pipeline.dedup.within_drive.
cluster_drive`, as any hazard's); here each such track is triangulated from the vehicle's poses through the camera
model (:func:`triangulate`): the rays from the camera through the box's centre in two or more frames meet at the
plate. Its height over the road says what the sign is (:func:`sign_state`): standing (the heights signs have),
down (at road level: on the ground, or its pole knocked over) or leaning (in between, or its plate tilted from
vertical by much, from the box's shape). A sign down or leaning becomes a ``fallen_sign`` hazard, its sightings
and evidence with it, and goes the way of every hazard (the same confirmation and filing policy). A standing one
is a :class:`DriveSign`, which the store maps (:mod:`detector.store.signs`) and watches for going missing; so is
one down or leaning, so that a mapped sign found fallen is known as down, not missing.

The inventory runs only when the model's classes include ``signs.class_name`` (:func:`inventory_on`). The same
geometry backs the model's own ``fallen_sign`` boxes with or without it (:func:`drop_standing_fallen`,
``signs.fallen_gate``): a track of them that triangulates to a standing plate is a sign on its pole, not a fallen one.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detector.camera import CameraModel
from detector.config import Config
from detector.config.pipeline import SignsConfig
from detector.geo import LocalFrame
from detector.pipeline.dedup.within_drive import components, merge_close
from detector.pipeline.localize import plate_points
from detector.records import DriveHazard

log = logging.getLogger(__name__)

FALLEN = "fallen_sign"
STATES = ("standing", "leaning", "down", "unknown")


def inventory_on(cfg: Config) -> bool:
    """Whether the model reports sign plates (``signs.class_name`` among ``detect.classes``)."""
    return cfg.signs.class_name in cfg.detect.classes


def inventory_line(cfg: Config) -> str:
    """One line for the start of a run: is the sign inventory on?"""
    if inventory_on(cfg):
        return f"sign inventory: on (class {cfg.signs.class_name})"
    return f"sign inventory: inactive (the model has no {cfg.signs.class_name} class)"


@dataclass(frozen=True)
class PlateFix:
    """Where one drive's sightings of a plate put it: ``x``, ``y`` (local metres), ``height_m`` (its centre over the
    road), ``tilt_deg`` from vertical (None where no box was large enough to tell), ``state`` (:data:`STATES`) and
    the frames it rests on. ``triangulated``: from rays that meet at an angle of ``parallax_deg``; else ranged by the
    plate's width alone."""

    x: float
    y: float
    height_m: float
    tilt_deg: float | None
    state: str
    views: int
    triangulated: bool
    parallax_deg: float


@dataclass
class DriveSign:
    """A sign seen on one drive: its plate's track (sightings placed at the fix) and what the fix says (its
    ``state``: standing, or leaning or down and also a ``fallen_sign`` hazard)."""

    hazard: DriveHazard
    fix: PlateFix

    @property
    def latlon(self) -> tuple[float, float]:
        return self.hazard.latlon


def triangulate(origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, float]:
    """The point nearest to all rays (least squares) from ``origins`` (N, 3) along ``directions`` (N, 3), and the
    widest angle between two of the rays in degrees (how well they pin it: parallel rays do not).

    >>> point, spread = triangulate(np.array([[0.0, 0, 0], [0, 5, 0]]), np.array([[1.0, 1, 1], [1, -4, 1]]))
    >>> np.round(point, 6).tolist(), round(spread, 1)
    ([1.0, 1.0, 1.0], 105.8)
    """
    d = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    projectors = np.eye(3)[None] - d[:, :, None] * d[:, None, :]
    a, b = projectors.sum(axis=0), np.einsum("nij,nj->i", projectors, origins)
    cosines = np.clip(d @ d.T, -1.0, 1.0)
    spread = float(np.degrees(np.arccos(cosines.min())))
    if spread < 1e-6:
        return np.full(3, np.nan), 0.0
    try:
        return np.linalg.solve(a, b), spread
    except np.linalg.LinAlgError:  # rays that all lie in one line
        return np.full(3, np.nan), 0.0


def sign_state(height_m: float, tilt_deg: float | None, settings: SignsConfig) -> str:
    """What a plate at ``height_m`` over the road, tilted ``tilt_deg`` from vertical, says about its sign.

    >>> from detector.config import load_config
    >>> rule = load_config().signs
    >>> [sign_state(h, t, rule) for h, t in ((2.2, 5.0), (2.2, 70.0), (1.1, None), (0.2, None), (7.0, 0.0))]
    ['standing', 'leaning', 'leaning', 'down', 'unknown']
    """
    low, high = settings.standing_height_m
    if not math.isfinite(height_m) or height_m > high:
        return "unknown"  # no sign stands that high: a mismeasured track is neither mapped nor a hazard
    if height_m <= settings.down_height_m:
        return "down"
    if height_m < low or (tilt_deg is not None and tilt_deg >= settings.lean_deg):
        return "leaning"
    return "standing"


def plate_tilt(cam: CameraModel, boxes: np.ndarray, settings: SignsConfig, profile_width: int = 0) -> float | None:
    """A plate's tilt from vertical in degrees, from its boxes (N, 4; pixels of ``cam``'s frames) large enough to
    tell (``signs.min_box_px``, at the camera profile's size: ``profile_width`` pixels wide, default ``cam``'s).

    A plate faces the road: its width lies along the vehicle's right, its height along the vertical, and a ray
    off those axes sees each foreshortened by the sine of its angle to it. So the angles the box spans from top to
    bottom and across (at its middle, through the lens, the mount's pitch and roll undone), each undone for that,
    are in the ratio ``plate_aspect`` for an upright plate, and the cosine of its tilt less for one tilted towards
    or away from the road. The median over frames.

    >>> from detector.config import load_config
    >>> cam, rule = CameraModel(width=1280, height=720, pitch_deg=0.0), load_config().signs
    >>> boxes = np.array([[600, 300, 640, 320], [700, 300, 740, 320]])  # half as tall as wide
    >>> plate_tilt(cam, boxes, rule), plate_tilt(cam, np.zeros((0, 4)), rule)
    (60.0, None)
    """
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    scale = (profile_width or cam.width) / cam.width
    big = (w * scale >= settings.min_box_px) & (h * scale >= settings.min_box_px)
    if not big.any():
        return None
    x1, y1, x2, y2 = boxes[big].T
    cu, cv = (x1 + x2) / 2, (y1 + y2) / 2
    ray = cam.rays(np.concatenate([cu, cu, x1, x2, cu]), np.concatenate([y1, y2, cv, cv, cv])).reshape(5, -1, 3)
    ray /= np.linalg.norm(ray, axis=2, keepdims=True)
    top, bottom, left, right, centre = ray
    spans_down = np.arccos(np.clip(np.einsum("ij,ij->i", top, bottom), -1.0, 1.0))
    spans_across = np.arccos(np.clip(np.einsum("ij,ij->i", left, right), -1.0, 1.0))
    # The plate's width lies along the vehicle's right, its height along down: each foreshortened by the ray.
    seen_across, seen_down = np.sqrt(1 - centre[:, 1] ** 2), np.sqrt(1 - centre[:, 2] ** 2)
    aspect = (spans_down / seen_down) / np.maximum(spans_across / seen_across, 1e-9)
    cosine = np.clip(aspect / settings.plate_aspect, 0.0, 1.0)
    return round(float(np.degrees(np.arccos(np.median(cosine)))), 1)


def plate_fix(
    track: DriveHazard, camera: CameraModel, size: tuple[int, int], local: LocalFrame, settings: SignsConfig,
    plate_width_m: float,
) -> PlateFix | None:  # fmt: skip
    """Triangulate one drive's track of a plate (its sightings' boxes, from the vehicle's poses) and judge it; None
    with fewer than ``signs.min_views`` frames."""
    by_frame = {}
    for s in track.sightings:  # one box per frame: its surest
        if s.frame_index not in by_frame or s.confidence > by_frame[s.frame_index].confidence:
            by_frame[s.frame_index] = s
    seen = list(by_frame.values())
    if len(seen) < settings.min_views:
        return None
    cam = camera.scaled_to(*size)
    boxes = np.array([s.bbox for s in seen], float)
    heading = np.radians([s.heading for s in seen])
    vx, vy = local.to_xy([s.vehicle_lat for s in seen], [s.vehicle_lon for s in seen])
    fwd, right = (
        np.column_stack([np.sin(heading), np.cos(heading)]),
        np.column_stack([np.cos(heading), -np.sin(heading)]),
    )
    antenna = np.column_stack([vx, vy])
    origins_xy = antenna + cam.offset_forward_m * fwd + cam.offset_right_m * right
    origins = np.column_stack([origins_xy, np.full(len(seen), cam.height_m)])
    ray = cam.rays((boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2)  # forward, right, down
    directions = np.column_stack([ray[:, :1] * fwd + ray[:, 1:2] * right, -ray[:, 2]])
    point, spread = triangulate(origins, directions)
    horizontal = np.hypot(ray[:, 0], ray[:, 1])
    elevation = -ray[:, 2] / horizontal  # rise per metre along the ground
    triangulated = bool(spread >= settings.min_parallax_deg and np.isfinite(point).all())
    if triangulated:  # the rays must meet ahead of every camera, not behind
        triangulated = bool(np.all(np.einsum("ij,ij->i", point[:2] - origins_xy, fwd) > 0))
    if triangulated:
        distance = np.hypot(*(point[:2] - origins_xy).T)
        x, y = float(point[0]), float(point[1])
    else:  # nearly parallel rays: each box ranged by a typical plate's width
        f, r, _, _ = plate_points(cam, boxes, plate_width_m)
        xy = origins_xy + (f - cam.offset_forward_m)[:, None] * fwd + (r - cam.offset_right_m)[:, None] * right
        x, y = (float(v) for v in np.median(xy, axis=0))
        distance = np.hypot(x - origins_xy[:, 0], y - origins_xy[:, 1])
    # Each frame's elevation angle at the plate's distance: robust to how well the rays meet in height.
    height = float(np.median(cam.height_m + distance * elevation))
    tilt = plate_tilt(cam, boxes, settings, camera.width)
    return PlateFix(x, y, round(height, 2), tilt, sign_state(height, tilt, settings), len(seen), triangulated,
                    round(spread, 1))  # fmt: skip


def placed_at(track: DriveHazard, class_name: str, x: float, y: float) -> DriveHazard:
    """``track``'s sightings as a hazard of ``class_name`` placed at ``x``, ``y`` (local metres)."""
    lat, lon = (float(v) for v in track.local.to_latlon(x, y))
    out = DriveHazard(class_name, track.local)
    for s in track.sightings:
        out.add(dataclasses.replace(s, class_name=class_name, lat=lat, lon=lon), x, y)
    return out


def judge_signs(
    hazards: Sequence[DriveHazard], camera: CameraModel, size: tuple[int, int], local: LocalFrame, cfg: Config
) -> tuple[list[DriveHazard], list[DriveSign] | None]:
    """A drive's clustered hazards with its plate tracks judged: those down or leaning become ``fallen_sign``
    hazards (among the others); each judged one is a :class:`DriveSign` record too; tracks too short to judge, or placed
    where no sign stands, are dropped (counted in the log). Without the sign class, ``hazards`` as they are and no
    signs (None: the drive could not have seen any, so it counts no mapped sign missed). Either way the model's own
    ``fallen_sign`` tracks that triangulate to a standing plate are left out first (:func:`drop_standing_fallen`)."""
    name = cfg.signs.class_name
    hazards = drop_standing_fallen(hazards, camera, size, local, cfg.signs, cfg.localize.plate_width_m)
    if not inventory_on(cfg):
        return hazards, None
    out = [h for h in hazards if h.class_name != name]
    signs, dropped = [], 0
    for track, fix in _one_per_sign([h for h in hazards if h.class_name == name], camera, size, local, cfg):
        if fix is None or fix.state == "unknown":
            dropped += 1
        else:
            signs.append(DriveSign(placed_at(track, name, fix.x, fix.y), fix))
            if fix.state != "standing":
                out.append(placed_at(track, FALLEN, fix.x, fix.y))
    if dropped:
        log.info("%d sign plate track(s) too short to judge or placed where no sign stands: left out", dropped)
    # A fallen sign the model also reported as one (fallen_sign boxes) and its plate's track are one hazard.
    return merge_close(out, cfg.dedup), signs


def drop_standing_fallen(
    hazards: Sequence[DriveHazard], camera: CameraModel, size: tuple[int, int], local: LocalFrame,
    settings: SignsConfig, plate_width_m: float,
) -> list[DriveHazard]:  # fmt: skip
    """``hazards`` less the ``fallen_sign`` tracks whose boxes put the plate where signs stand (:func:`plate_fix`:
    ``standing``): a sign on its pole that the model took for a fallen one (``signs.fallen_gate``; counted in the
    log). Tracks too short to judge, or placed where no sign stands, stay: the geometry cannot tell.

    Such a plate is not mapped, with the inventory on or off: the class fires on text, cars and lane arrows at
    that height too, and each one mapped would come back as a ``missing_sign`` on the next pass; a real plate is
    mapped from its ``traffic_sign`` track."""
    if not settings.fallen_gate:
        return list(hazards)
    kept, standing = [], 0
    for hazard in hazards:
        fix = None
        if hazard.class_name == FALLEN:
            fix = plate_fix(hazard, camera, size, local, settings, plate_width_m)
        if fix is not None and fix.state == "standing":
            standing += 1
        else:
            kept.append(hazard)
    if standing:
        log.info("%d fallen_sign track(s) triangulated where signs stand (a sign on its pole): left out", standing)
    return kept


def _one_per_sign(
    tracks: list[DriveHazard], camera: CameraModel, size: tuple[int, int], local: LocalFrame, cfg: Config
) -> list[tuple[DriveHazard, PlateFix | None]]:
    """Each track with its fix; tracks of one standing plate (a track the deduplicator split, seen far and then near)
    joined and fixed again: standing fixes within half of ``signs.match_m`` of each other at the height of one
    plate (0.5 m), which the store would otherwise map as two signs, one of them missed on every later drive."""
    fixes = [plate_fix(t, camera, size, local, cfg.signs, cfg.localize.plate_width_m) for t in tracks]
    standing = [i for i, f in enumerate(fixes) if f is not None and f.state == "standing"]
    pairs = [
        (i, j) for i in standing for j in standing
        if i < j and math.hypot(fixes[i].x - fixes[j].x, fixes[i].y - fixes[j].y) <= cfg.signs.match_m / 2
        and abs(fixes[i].height_m - fixes[j].height_m) <= 0.5
    ]  # fmt: skip
    if not pairs:
        return list(zip(tracks, fixes, strict=True))
    out = []
    for group in components(len(tracks), pairs):
        track = tracks[group[0]]
        if len(group) > 1:
            track = DriveHazard(track.class_name, track.local)
            for k in group:
                track.absorb(tracks[k])
            out.append((track, plate_fix(track, camera, size, local, cfg.signs, cfg.localize.plate_width_m)))
        else:
            out.append((track, fixes[group[0]]))
    return out
