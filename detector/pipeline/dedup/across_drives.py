"""Associate one drive's hazards with the stored ones: GPS shift, matching, expected views and misses.

Pure functions over records: :mod:`detector.store.merge` loads the stored hazards near a drive as
:class:`StoredHazard` records, calls :func:`associate` and writes what it returns, all in one transaction.
A drive hazard matches the stored hazard of its class it is closest to, after removing the drive's local
GPS offset; a stored hazard the drive had in good view without seeing it counts a miss, and a confirmed
one with enough misses becomes possibly repaired.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
from shapely import STRtree, points

from detector.camera import CameraModel
from detector.config.pipeline import DedupConfig
from detector.geo import LocalFrame
from detector.pipeline.dedup.within_drive import components
from detector.records import DriveHazard


@dataclass(frozen=True)
class FramePoses:
    """Where the camera was for each sampled frame of a drive (for counting misses)."""

    lat: np.ndarray
    lon: np.ndarray
    heading: np.ndarray
    width: int
    height: int


@dataclass(frozen=True)
class StoredHazard:
    """A stored hazard as the association sees it (from one ``hazards`` row)."""

    id: int
    class_name: str
    lat: float
    lon: float
    uncertainty_m: float
    status: str
    misses: int


@dataclass(frozen=True)
class Miss:
    """A stored hazard the drive had in good view for ``frames_in_view`` frames without seeing it."""

    hazard: StoredHazard
    frames_in_view: int
    misses: int  # the hazard's misses, this one counted
    status: str  # its status after this miss

    @property
    def flagged(self) -> bool:
        """Whether this miss made the hazard possibly repaired."""
        return self.status != self.hazard.status


@dataclass(frozen=True)
class Association:
    """What a drive did to the stored hazards: which each of its hazards is (None: a new one), and the misses."""

    matches: list[StoredHazard | None]
    misses: list[Miss]


def frames_in_view(
    hazard_xy: np.ndarray, poses_xy: np.ndarray, poses: FramePoses, camera: CameraModel,
    view_range_m: tuple[float, float],
) -> np.ndarray:  # fmt: skip
    """For each hazard (M, 2), how many frames had it inside the image at a good range (none without a heading).

    >>> poses = FramePoses(np.zeros(3), np.zeros(3), np.array([0.0, 180.0, np.nan]), 1280, 720)
    >>> frames_in_view(np.array([[0.0, 10.0]]), np.zeros((3, 2)), poses, CameraModel(1280, 720), (4.0, 18.0)).tolist()
    [1]
    """
    cam = camera.scaled_to(poses.width, poses.height)
    # Well inside the frame: a hazard at the image edge may be cut off or hidden by the bonnet.
    return np.count_nonzero(cam.sees(hazard_xy, poses_xy, poses.heading, view_range_m, (0.1, 0.0, 0.9, 0.9)), axis=1)


def match_gate(radius_m: float, sigma_a_m: float, sigma_b_m: float) -> float:
    """How far apart two positions of one hazard from different drives may lie: they differ by both drives' GPS
    errors, so the gate widens with the combined uncertainty, from the class radius up to three radii (two
    potholes a few metres apart stay two).

    >>> match_gate(2.5, 0.5, 0.5), round(match_gate(2.5, 2.0, 2.0), 2), match_gate(2.5, 5.0, 5.0)
    (2.5, 4.24, 7.5)
    """
    return min(max(radius_m, 1.5 * math.hypot(sigma_a_m, sigma_b_m)), 3 * radius_m)


def gps_shifts(
    drive_xy: np.ndarray, classes: Sequence[str], stored_xy: np.ndarray | None, stored: Sequence[StoredHazard],
    gps_sigma_m: float, window_m: float = 150.0, agree_m: float = 2.0,
) -> np.ndarray:  # fmt: skip
    """Per drive hazard, the local offset between this drive's GPS and the stored map.

    A drive's GPS error drifts slowly, so the hazards it re-observes nearby share one offset. Every pair of a drive
    hazard and a stored one of its class within three combined sigmas proposes an offset; the one that most other
    pairs within ``window_m`` agree with (to ``agree_m``) wins, and the median of those that agree estimates it.
    Nearest neighbours would not do: two drives' GPS errors differ by up to 10 m, more than half the spacing of
    potholes on a bad street, so one hazard's nearest stored hazard is often its neighbour's, and which drive came
    first would decide what matches. Matching after removing the offset lets the class radius stay tight
    (neighbouring potholes stay apart) while drives with metres of GPS error still merge.
    """
    shifts = np.zeros((len(drive_xy), 2))
    if stored_xy is None or not len(drive_xy):
        return shifts
    gate = 3 * math.sqrt(2) * gps_sigma_m
    stored_class = np.array([r.class_name for r in stored])
    pairs = [
        (i, stored_xy[j] - drive_xy[i])
        for i, (x, y) in enumerate(drive_xy)
        for j in np.flatnonzero(stored_class == classes[i])
        if math.hypot(stored_xy[j, 0] - x, stored_xy[j, 1] - y) <= gate
    ]
    if not pairs:
        return shifts
    owner = np.array([i for i, _ in pairs])
    disp = np.array([v for _, v in pairs])
    for i in range(len(drive_xy)):
        near = np.flatnonzero(np.hypot(*(drive_xy[owner] - drive_xy[i]).T) <= window_m)
        if not len(near):
            continue
        local = disp[near]
        agreeing = np.hypot(*(local[:, None, :] - local[None, :, :]).transpose(2, 0, 1)) <= agree_m
        support = agreeing.sum(axis=1)  # per nearby proposing pair, the nearby pairs that agree with it
        best = np.flatnonzero(support == support.max())
        chosen = best[np.argmin(np.hypot(*local[best].T))]  # a tie: the smaller offset
        shifts[i] = np.median(local[agreeing[chosen]], axis=0)
    return shifts


def match_stored(
    hazards: Sequence[DriveHazard],
    drive_xy: np.ndarray,
    stored: Sequence[StoredHazard],
    stored_xy: np.ndarray | None,
    settings: DedupConfig,
) -> list[int | None]:
    """For each drive hazard, the index of the stored hazard it is, or None: closest pairs first, one to one.

    The gate is :func:`match_gate` of the drive hazard's and the stored hazard's uncertainties.
    """
    matches: list[int | None] = [None] * len(hazards)
    if stored_xy is None or not hazards:
        return matches
    tree = STRtree(points(stored_xy))
    pairs = []
    for i, dh in enumerate(hazards):
        radius = settings.radius(dh.class_name)
        for j in tree.query(points(drive_xy[i]), predicate="dwithin", distance=3 * radius):
            row = stored[int(j)]
            if row.class_name != dh.class_name:
                continue
            d = float(np.hypot(*(stored_xy[int(j)] - drive_xy[i])))
            if d <= match_gate(radius, dh.sigma, row.uncertainty_m):
                pairs.append((d, i, int(j)))
    taken: set[int] = set()
    for _, i, j in sorted(pairs):
        if matches[i] is None and j not in taken:
            matches[i] = j
            taken.add(j)
    return matches


def count_misses(
    stored: Sequence[StoredHazard], stored_xy: np.ndarray | None, seen: set[int], poses_xy: np.ndarray,
    poses: FramePoses, camera: CameraModel, settings: DedupConfig, passed: Collection[int] = (),
) -> list[Miss]:  # fmt: skip
    """Stored hazards (open, not in ``seen``: indices) this drive passed in good view without seeing: a miss each;
    a confirmed hazard becomes possibly repaired at ``settings.miss_limit`` misses. ``passed``: ids of hazards the
    drive's trip passed already (an earlier live segment of the patrol): one patrol, one pass, no second miss."""
    unseen = [
        i for i in range(len(stored))
        if i not in seen and stored[i].id not in passed and stored[i].status in ("candidate", "confirmed")
    ]  # fmt: skip
    if not unseen or stored_xy is None:
        return []
    counts = frames_in_view(stored_xy[unseen], poses_xy, poses, camera, settings.view_range_m)
    found = []
    for i, count in zip(unseen, counts, strict=True):
        if count < settings.min_frames_in_view:
            continue
        hazard = stored[i]
        misses = hazard.misses + 1
        repaired = misses >= settings.miss_limit and hazard.status == "confirmed"
        found.append(Miss(hazard, int(count), misses, "possibly_repaired" if repaired else hazard.status))
    return found


def associate(
    hazards: Sequence[DriveHazard], stored: Sequence[StoredHazard], poses: FramePoses, camera: CameraModel,
    settings: DedupConfig, gps_sigma_m: float, passed: Collection[int] = (),
) -> Association:  # fmt: skip
    """Match a drive's hazards (clustered within the drive) with the stored ones near it, and count the misses of
    those it passed in view without seeing (not of those its trip ``passed`` already: ids). ``poses`` holds at
    least one frame; positions are compared in a local frame at the drive's median position."""
    local = LocalFrame.around(float(np.median(poses.lat)), float(np.median(poses.lon)))
    poses_xy = np.column_stack(local.to_xy(poses.lat, poses.lon))
    stored_xy = np.column_stack(local.to_xy([r.lat for r in stored], [r.lon for r in stored])) if stored else None
    latlon = np.array([dh.latlon for dh in hazards]).reshape(-1, 2)
    drive_xy = np.column_stack(local.to_xy(latlon[:, 0], latlon[:, 1])).reshape(-1, 2)
    shifts = gps_shifts(drive_xy, [dh.class_name for dh in hazards], stored_xy, stored, gps_sigma_m)
    matches = match_stored(hazards, drive_xy + shifts, stored, stored_xy, settings)
    seen = {j for j in matches if j is not None}
    misses = count_misses(stored, stored_xy, seen, poses_xy, poses, camera, settings, passed)
    return Association([None if j is None else stored[j] for j in matches], misses)


@dataclass(frozen=True)
class Piece:
    """What one drive (a live run's segments: their trip) saw of one stored hazard: its sightings' weighted
    position in a local frame, their least uncertainty and how many there are."""

    hazard_id: int
    class_name: str
    trip: str
    x: float
    y: float
    sigma: float
    sightings: int


def one_hazards(pieces: Sequence[Piece], settings: DedupConfig) -> list[list[int]]:
    """Groups of stored hazards (their ids, two or more) that are one, from what each drive saw of them.

    A hazard's position and uncertainty move as evidence accumulates, and a drive is matched with the store as it
    is when the drive arrives: a sighting that came early can start a hazard that a later, better placed one
    should have absorbed. So the drives' pieces near a drive are grouped afresh, as if all had come at once, in an
    order that depends on them alone: two pieces of one class from different drives, within :func:`match_gate` of
    each other, belong together, the closest for their gate first and pieces of a single sighting last; a group
    never takes two pieces of one drive (that drive kept them apart). Stored hazards whose pieces share a group
    are one. The grouping only ever merges: it never splits a stored hazard.
    """
    pieces = _within_reach_of_another(pieces, settings)
    if not pieces:
        return []
    xy = np.array([(p.x, p.y) for p in pieces], float)
    tree = STRtree(points(xy))
    links = []
    for i, a in enumerate(pieces):
        for j in (
            int(j) for j in tree.query(points(xy[i]), predicate="dwithin", distance=3 * settings.radius(a.class_name))
        ):
            b = pieces[j]
            if j <= i or b.class_name != a.class_name or b.trip == a.trip:
                continue
            ratio = math.hypot(a.x - b.x, a.y - b.y) / match_gate(settings.radius(a.class_name), a.sigma, b.sigma)
            if ratio <= 1.0:
                links.append((min(a.sightings, b.sightings) < 2, ratio, i, j))
    parent = list(range(len(pieces)))
    trips = [{p.trip} for p in pieces]

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for _, _, i, j in sorted(links):
        ri, rj = root(i), root(j)
        if ri != rj and not trips[ri] & trips[rj]:
            parent[rj] = ri
            trips[ri] |= trips[rj]
    hazards = sorted({p.hazard_id for p in pieces})
    index = {h: k for k, h in enumerate(hazards)}
    pairs = [(index[pieces[i].hazard_id], index[pieces[root(i)].hazard_id]) for i in range(len(pieces))]
    return [[hazards[k] for k in group] for group in components(len(hazards), pairs) if len(group) > 1]


def _within_reach_of_another(pieces: Sequence[Piece], settings: DedupConfig) -> list[Piece]:
    """The pieces of stored hazards that another stored hazard of their class could be one with: a link never
    spans more than three radii (:func:`match_gate`), so a hazard whose pieces' box, grown by that, meets no other
    hazard's of its class is one with none, and its pieces link only among themselves. Leaving them out changes no
    group, and keeps a merge from growing with the square of the drives that passed a lone hazard (a street
    patrolled daily: hundreds of pieces each)."""
    boxes: dict[int, list[float]] = {}
    for p in pieces:
        box = boxes.setdefault(p.hazard_id, [p.x, p.y, p.x, p.y])
        box[:] = [min(box[0], p.x), min(box[1], p.y), max(box[2], p.x), max(box[3], p.y)]
    kind = {p.hazard_id: p.class_name for p in pieces}
    reach = {h: 3 * settings.radius(kind[h]) for h in boxes}
    near = {
        h
        for h, (x0, y0, x1, y1) in boxes.items()
        for g, (u0, v0, u1, v1) in boxes.items()
        if g != h and kind[g] == kind[h]
        and u0 - reach[h] <= x1 and x0 - reach[h] <= u1 and v0 - reach[h] <= y1 and y0 - reach[h] <= v1
    }  # fmt: skip
    return [p for p in pieces if p.hazard_id in near]
