"""Merge repeat sightings of one drive into hazards.

A sighting joins the hazard seen in the last few seconds if it is close enough
(frame-to-frame association over the last metres driven, gated by its position uncertainty; a stop
in front of a pothole does not break the association), else any hazard of its class
within the class radius; a last pass merges hazards that ended up within the radius of each
other (a shapely STRtree finds the pairs). :mod:`detector.pipeline.dedup.across_drives` then matches the
drive's hazards with the stored ones of the same class.

A hazard lies still while the vehicle drives past it. What the detector fires on in the same place of every frame
(the vehicle's own shadow, a reflection in the windscreen, dirt on the lens) is placed the same distance ahead
each time, so its sightings move with the vehicle: a new false hazard every few metres. :func:`riding` finds
them, and :func:`cluster_drive` leaves them out.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Hashable, Iterable, Sequence

import numpy as np
from shapely import STRtree, points

from detector.config.pipeline import DedupConfig
from detector.geo import LocalFrame
from detector.records import DriveHazard, Sighting

log = logging.getLogger(__name__)


def evidence(confidences) -> float:
    """A hazard's evidence from all its sightings: the noisy-OR of their confidences, the chance that at least one
    is right were they independent. Three faint sightings can outweigh one sure one; one sighting never reaches 1.

    >>> round(evidence([0.3, 0.3, 0.3]), 3), round(evidence([0.6]), 3)
    (0.657, 0.6)
    """
    return 1.0 - float(np.prod(1.0 - np.clip(np.asarray(confidences, float), 0.0, 1.0)))


def views(frames: Iterable[Hashable], confidences: Iterable[float]) -> list[float]:
    """A hazard's views from its sightings: per frame (``frames``, one key per sighting, e.g. drive and time) the
    confidence of its surest sighting there. Two boxes on one pothole in one frame are one look at it, not two
    independent ones, so the evidence rule counts frames.

    >>> views([("d1", 0.0), ("d1", 0.0), ("d1", 0.5)], [0.3, 0.6, 0.4])
    [0.6, 0.4]
    """
    best: dict[Hashable, float] = {}
    for frame, confidence in zip(frames, confidences, strict=True):
        best[frame] = max(best.get(frame, 0.0), float(confidence))
    return list(best.values())


def confirms(rule: DedupConfig, class_name: str, confidences) -> bool:
    """Do these views of a hazard of ``class_name`` (:func:`views`: all of them, every drive) confirm it? At least
    ``confirm_sightings`` of them, whose evidence reaches ``confirm_evidence``.

    >>> from detector.config import load_config
    >>> rule = load_config(overrides=["dedup.confirm_sightings.pothole=2", "dedup.confirm_evidence.pothole=0.6"]).dedup
    >>> confirms(rule, "pothole", [0.9]), confirms(rule, "pothole", [0.3, 0.3]), confirms(rule, "pothole", [0.3] * 3)
    (False, False, True)
    """
    need = rule.confirm_sightings[class_name]
    return len(confidences) >= need and evidence(confidences) >= rule.confirm_evidence[class_name]


def riding(sightings: list[Sighting], settings: DedupConfig, before: Sequence[Sighting] = ()) -> np.ndarray:
    """Which sightings ride along with the vehicle: linked with a sighting of the same class at nearly the same
    range and offset in one of the last two frames 1 m to ``dedup.track_gap_m`` of driving earlier, in chains of
    three frames or more over ``dedup.ride_along_travel_m`` driven.

    A still hazard's range shrinks by about what the vehicle drove; a link allows it to shrink by at most
    ``1 - dedup.ride_along_follow`` of that (plus 1% of the range: the box's jitter). Only sightings placed within
    ``dedup.ride_along_range_m`` are judged, where a mount nobody measured cannot fake it: pitched 3 degrees more
    than its profile says, the camera places a still pothole 10 m ahead that closes 0.4 m per metre driven (farther
    out, the ranges compress towards a false horizon and the pattern fades).

    ``before``: the last sightings of the previous live segment of the same trip, so that a chain is not cut where
    a segment closes; they join the chains, only ``sightings`` are marked.

    >>> from detector.config import load_config
    >>> from detector.records import Sighting
    >>> def at(frame, range_m):
    ...     return Sighting(drive_id="d1", frame_index=frame, utc=0.3 * frame, odometer_m=3.0 * frame,
    ...                     class_name="pothole", confidence=0.6, lat=0, lon=0, range_m=range_m, lateral_m=0.5,
    ...                     uncertainty_m=1, width_m=0.5, bbox=(0, 0, 1, 1), vehicle_lat=0, vehicle_lon=0, heading=0,
    ...                     far=False)
    >>> shadow = [at(k, 6.0) for k in range(4)]  # 6 m ahead in every frame, 3 m apart
    >>> pothole = [at(k, 14.0 - 3.0 * k) for k in range(4)]
    >>> riding(shadow + pothole, load_config().dedup).tolist()
    [True, True, True, True, False, False, False, False]
    """
    if before and sightings:
        drive = sightings[0].drive_id
        pooled = [dataclasses.replace(s, drive_id=drive) for s in before] + list(sightings)
        return riding(pooled, settings)[len(before) :]
    follow = settings.ride_along_follow
    frames: dict[tuple[str, int], list[int]] = {}
    for i in sorted(range(len(sightings)), key=lambda i: (sightings[i].drive_id, sightings[i].odometer_m)):
        s = sightings[i]
        if s.range_m <= settings.ride_along_range_m:
            frames.setdefault((s.drive_id, s.frame_index), []).append(i)
    keys = list(frames)
    odometer = np.array([sightings[frames[key][0]].odometer_m for key in keys])
    links = []
    for k, key in enumerate(keys):
        # The last two frames of the drive 1 m to dedup.track_gap_m back (seen again only further on: a new chain).
        first = int(np.searchsorted(odometer[:k], odometer[k] - settings.track_gap_m, side="left"))
        last = int(np.searchsorted(odometer[:k], odometer[k] - 1.0, side="right"))
        for back in range(max(first, last - 2), last):
            if keys[back][0] != key[0]:
                continue
            moved = odometer[k] - odometer[back]
            for i in frames[keys[back]]:
                a = sightings[i]
                jitter = 0.01 * a.range_m
                links += [
                    (i, j)
                    for j in frames[key]
                    if sightings[j].class_name == a.class_name
                    and abs(sightings[j].range_m - a.range_m) <= (1 - follow) * moved + jitter
                    and abs(sightings[j].lateral_m - a.lateral_m) <= 0.3 + jitter
                ]
    out = np.zeros(len(sightings), bool)
    for chain in components(len(sightings), links):
        driven = [sightings[i].odometer_m for i in chain]
        frames_seen = {(sightings[i].drive_id, sightings[i].frame_index) for i in chain}
        if len(frames_seen) >= 3 and max(driven) - min(driven) >= settings.ride_along_travel_m:
            out[chain] = True
    return out


def components(n: int, pairs: Iterable[tuple[int, int]]) -> list[list[int]]:
    """The connected groups of ``range(n)`` that ``pairs`` link (union-find), each in ascending order.

    >>> components(5, [(0, 3), (3, 4)])
    [[0, 3, 4], [1], [2]]
    """
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        parent[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def cluster_drive(
    sightings: list[Sighting], local: LocalFrame, settings: DedupConfig, before: Sequence[Sighting] = ()
) -> list[DriveHazard]:
    """Group one drive's sightings into hazards, leaving out those that ride along with the vehicle
    (:func:`riding`; ``before``: the previous live segment's last sightings)."""
    rides = riding(sightings, settings, before)
    if rides.any():
        log.info("%s: %d of %d sightings moved with the vehicle (its shadow, a reflection, lens dirt?): left out",
                 sightings[0].drive_id, int(rides.sum()), len(sightings))  # fmt: skip
    hazards: list[DriveHazard] = []
    for s in sorted((s for s, r in zip(sightings, rides, strict=True) if not r), key=lambda s: s.utc):
        x, y = (float(c) for c in local.to_xy(s.lat, s.lon))
        radius = settings.radius(s.class_name)
        best, best_d = None, math.inf
        for h in hazards:
            if h.class_name != s.class_name:
                continue
            hx, hy = h.position
            d = math.hypot(hx - x, hy - y)
            recent = s.odometer_m - h.last_odometer <= settings.track_gap_m
            # Consecutive frames see one hazard from a moving car: allow for the sighting's own
            # uncertainty, but never beyond three radii (two potholes a few metres apart stay two).
            gate = min(max(radius, 1.5 * s.uncertainty_m), 3 * radius) if recent else radius
            if d <= gate and d < best_d:
                best, best_d = h, d
        if best is None:
            best = DriveHazard(s.class_name, local)
            hazards.append(best)
        best.add(s, x, y)
    return merge_close(hazards, settings)


def merge_close(hazards: list[DriveHazard], settings: DedupConfig) -> list[DriveHazard]:
    """Union hazards of one class whose positions lie within that class's radius."""
    if len(hazards) < 2:
        return hazards
    pos = np.array([h.position for h in hazards])
    tree = STRtree(points(pos))
    pairs = [
        (i, int(j))
        for i, h in enumerate(hazards)
        for j in tree.query(points(pos[i]), predicate="dwithin", distance=settings.radius(h.class_name))
        if j != i and hazards[j].class_name == h.class_name
    ]
    merged = []
    for group in components(len(hazards), pairs):
        first = hazards[group[0]]
        for k in group[1:]:
            first.absorb(hazards[k])
        merged.append(first)
    return merged
