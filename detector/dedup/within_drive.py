"""Merge repeat sightings of one drive into hazards.

A sighting joins the hazard seen in the last few seconds if it is close enough
(frame-to-frame association over the last metres driven, gated by its position uncertainty; a stop
in front of a pothole does not break the association), else any hazard of its class
within the class radius; a last pass merges hazards that ended up within the radius of each
other (a shapely STRtree finds the pairs). :mod:`detector.dedup.across_drives` then matches the
drive's hazards with the stored ones of the same class.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable

import numpy as np
from shapely import STRtree, points

from detector.config.pipeline import DedupConfig
from detector.geo import LocalFrame
from detector.records import DriveHazard, Sighting


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


def cluster_drive(sightings: list[Sighting], local: LocalFrame, settings: DedupConfig) -> list[DriveHazard]:
    """Group one drive's sightings into hazards."""
    hazards: list[DriveHazard] = []
    for s in sorted(sightings, key=lambda s: s.utc):
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
    return _merge_close(hazards, settings)


def _merge_close(hazards: list[DriveHazard], settings: DedupConfig) -> list[DriveHazard]:
    """Union hazards of one class whose positions lie within that class's radius."""
    if len(hazards) < 2:
        return hazards
    parent = list(range(len(hazards)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    pos = np.array([h.position for h in hazards])
    tree = STRtree(points(pos))
    for i, h in enumerate(hazards):
        for j in tree.query(points(pos[i]), predicate="dwithin", distance=settings.radius(h.class_name)):
            if j != i and hazards[j].class_name == h.class_name:
                parent[root(int(j))] = root(i)
    groups: dict[int, DriveHazard] = {}
    for i, h in enumerate(hazards):
        r = root(i)
        if r not in groups:
            groups[r] = h
        elif groups[r] is not h:
            groups[r].absorb(h)
    return list(groups.values())
