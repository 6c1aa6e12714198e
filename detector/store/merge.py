"""Hazard records in the store: merging a drive's hazards, recomputing aggregates, reading them back.

All writes for one drive happen in one transaction: its sightings, new and updated hazards,
misses of hazards it passed without seeing, stored hazards near it that turn out to be one (merged, their 106
requests handed over: :func:`absorb`), and the outbox rows of hazards it confirmed (the ticket issue's
exactly-once guarantee starts here). Which stored hazards the drive saw again and which it
missed is association, decided by :func:`detector.pipeline.dedup.across_drives.associate` over the rows read here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

import numpy as np

from detector.config.pipeline import DedupConfig
from detector.errors import InputError
from detector.geo import LocalFrame
from detector.holds import Hold
from detector.pipeline.dedup.across_drives import FramePoses, Piece, StoredHazard, associate, gps_shifts, one_hazards
from detector.pipeline.dedup.within_drive import confirms, views
from detector.records import DriveHazard, DriveRecord, Sighting, position_weight
from detector.store.db import HazardStore, dialect_of, now_text
from detector.store.schema import TRIP
from detector.store.signs import MISSING_CLASS, merge_signs
from detector.store.streets import merge_streets, name_hazards
from detector.store.tracks import write_drive_track

if TYPE_CHECKING:
    from detector.camera import CameraModel
    from detector.pipeline.signs import DriveSign
    from detector.store.layers import RememberedLayer

OPEN_STATUSES = ("candidate", "confirmed", "possibly_repaired", "rejected")
# Hazards the pipeline may merge with each other (not those a reviewer rejected or marked repaired).
MERGEABLE_STATUSES = ("candidate", "confirmed", "possibly_repaired")
LANE_HALF_M = 1.75
NEAR_M = 60  # stored hazards this near a drive's path are candidates for what it saw, and for its misses


@dataclass(frozen=True)
class DriveResult:
    """One drive to merge: its row, its hazards (clustered within the drive), its frames' poses and camera, and
    ``evidence``, the evidence frame's path (under the store's evidence folder) of each frame index."""

    record: DriveRecord
    hazards: list[DriveHazard]
    poses: FramePoses
    camera: CameraModel
    evidence: dict[int, str] = field(default_factory=dict)
    signs: list[DriveSign] | None = None  # standing signs seen (the sign inventory); None: it was off


@dataclass(frozen=True)
class MergeSettings:
    """How drives merge: the dedup rules, the GPS error (1 sigma, metres) and what holds hazards for a reviewer."""

    dedup: DedupConfig
    gps_sigma_m: float
    hold: Hold | None = None
    layers: tuple[RememberedLayer, ...] = ()  # the city's GIS layers the drives are merged with, remembered
    missing_after: int = 2  # signs.missing_after: passes without seeing a mapped sign before it is missing
    sign_match_m: float = 8.0  # signs.match_m: how far apart a drive's plate and a mapped sign may be and be one
    sign_map_within_m: float = 12.0  # signs.map_within_m: a sign is mapped only from a drive that saw it this close
    street_within_m: float = 25.0  # streets.max_distance_m: a hazard farther from every street is named by none


@dataclass
class MergeReport:
    """What merging drives did, counted: one drive's, or a batch's or a live run's totals (:meth:`add`)."""

    sightings: int = 0
    new: int = 0
    merged: int = 0
    confirmed: int = 0
    held: int = 0  # newly held for a reviewer (a mapped feature, the filing policy: detector.holds); once per hazard
    possibly_repaired: int = 0
    joined: int = 0  # stored hazards found to be one with another and merged into it
    signs_new: int = 0  # standing signs new to the inventory
    signs_seen: int = 0  # mapped signs seen again
    signs_missing: int = 0  # mapped signs that went missing (each a missing_sign hazard held for review)
    signs_down: int = 0  # mapped signs found down or leaning (each a fallen_sign hazard too)

    def line(self) -> str:
        joined = f", {self.joined} stored hazards merged into others" if self.joined else ""
        return (
            f"{self.sightings} sightings: {self.new} new hazards, {self.merged} merged into known ones, "
            f"{self.confirmed} newly confirmed, {self.possibly_repaired} possibly repaired{joined}"
            + held_phrase(self.held)
            + self.signs_phrase()
        )

    def signs_phrase(self) -> str:
        """What the drives did to the sign inventory; nothing when they saw no sign and missed none."""
        if not (self.signs_new or self.signs_seen or self.signs_missing or self.signs_down):
            return ""
        return (
            f"; signs: {self.signs_new} new, {self.signs_seen} seen again, {self.signs_down} down,"
            f" {self.signs_missing} missing"
        )

    def add(self, other: MergeReport) -> None:
        """Add every counter of ``other`` (one drive's merge) to these.

        >>> total = MergeReport(sightings=3, new=1)
        >>> total.add(MergeReport(sightings=2, merged=1, held=1, possibly_repaired=1))
        >>> total.sightings, total.new, total.merged, total.held, total.possibly_repaired
        (5, 1, 1, 1, 1)
        """
        for counter in fields(MergeReport):
            setattr(self, counter.name, getattr(self, counter.name) + getattr(other, counter.name))


Receipt = Callable[[sqlite3.Connection, MergeReport], None]  # rows written in a merge's own transaction


def held_phrase(held: int) -> str:
    """How a report says that hazards were held for a reviewer (:mod:`detector.holds`); nothing when none were."""
    return f", {held} held for review" if held else ""


def drive_processed(store: HazardStore, content_hash: str) -> bool:
    return bool(store.query("SELECT 1 FROM drives WHERE content_hash = ?", (content_hash,)))


def severity(class_name: str, width_m: float | None, confidence: float, lane_offset_m: float | None) -> float:
    """0-100: size (a fallen sign counts as large), confidence, and how far into the driving lane.

    >>> severity("pothole", 1.0, 0.9, 0.2) > severity("pothole", 0.3, 0.9, 0.2) > severity("pothole", 0.3, 0.9, 6.0)
    True
    """
    size = 1.0 if class_name == "fallen_sign" else min(1.0, (width_m or 0.0) / 1.0)
    offset = abs(lane_offset_m) if lane_offset_m is not None else LANE_HALF_M * 3
    lane = 1.0 if offset <= LANE_HALF_M else 0.6 if offset <= 3 * LANE_HALF_M else 0.2
    return round(100 * (0.45 * size + 0.2 * confidence + 0.35 * lane), 1)


def area_class(class_name: str, width_m: float | None) -> str | None:
    """Pothole area class from its width (taken as roughly round): small, medium or large."""
    if class_name != "pothole" or width_m is None:
        return None
    area = math.pi / 4 * width_m**2
    return "small" if area < 0.25 else "medium" if area < 1.0 else "large"


def _insert_sightings(
    conn: sqlite3.Connection, hazard_id: int, sightings: list[Sighting], evidence: dict[int, str]
) -> None:
    """A hazard's sightings of one drive, each with its evidence frame's path (if the drive kept that frame)."""
    conn.executemany(
        "INSERT INTO sightings (hazard_id, drive_id, frame_index, utc, class, confidence, lat, lon, range_m,"
        " lateral_m, uncertainty_m, width_m, x1, y1, x2, y2, vehicle_lat, vehicle_lon, heading, far, evidence_path)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [
            (
                hazard_id, s.drive_id, s.frame_index, s.utc, s.class_name, s.confidence, s.lat, s.lon, s.range_m,
                s.lateral_m, s.uncertainty_m, s.width_m, *s.bbox, s.vehicle_lat, s.vehicle_lon, s.heading,
                int(s.far), evidence.get(s.frame_index),
            )
            for s in sightings
        ],
    )  # fmt: skip


def recompute_hazard(
    conn: sqlite3.Connection,
    hazard_id: int,
    settings: DedupConfig,
    gps_sigma_m: float,
    hold: Hold | None = None,
) -> bool | None:
    """Refresh a hazard's aggregates from all its sightings; True if it became confirmed now, None if it would
    have but ``hold`` holds it for a reviewer (a mapped feature, the filing policy) and had not before (it stays a
    candidate, with one ``held`` event), else False."""
    rows = conn.execute(
        f"SELECT s.id, s.drive_id, s.utc, s.confidence, s.uncertainty_m, s.lat, s.lon, s.far, s.width_m, s.lateral_m,"
        f" s.range_m, s.evidence_path, {TRIP} AS trip FROM sightings s JOIN drives d ON d.id = s.drive_id"
        " WHERE s.hazard_id = ? ORDER BY s.utc",
        (hazard_id,),
    ).fetchall()
    hazard = conn.execute("SELECT * FROM hazards WHERE id = ?", (hazard_id,)).fetchone()
    # By column, not row by row: a hazard on a street patrolled daily has thousands of sightings.
    _, drive_ids, utcs, conf, sigma, lats, lons, far, widths, laterals, ranges, _, trips = zip(*rows, strict=True)
    conf, sigma, far, widths, laterals, ranges = (
        np.asarray(column, dtype=float) for column in (conf, sigma, far, widths, laterals, ranges)
    )
    weight = position_weight(conf, sigma)
    lat = float(np.sum(weight * np.asarray(lats, dtype=float)) / weight.sum())
    lon = float(np.sum(weight * np.asarray(lons, dtype=float)) / weight.sum())
    drives = set(trips)
    # The GPS error is shared by the sightings of one drive (a live run's segments: one trip) and averages out
    # only across drives.
    geometric = np.sqrt(np.maximum(sigma**2 - gps_sigma_m**2, 0.3**2))
    uncertainty = math.sqrt(gps_sigma_m**2 / len(drives) + 1.0 / float(np.sum(1.0 / geometric**2)))
    near = far == 0
    if not near.any():
        near[:] = True
    width = float(np.median(widths[near]))
    lane_offset = float(np.median(laterals[near]))
    best = rows[int(np.argmax(conf / (1 + ranges / 15)))]
    top = float(conf.max())
    status = hazard["status"]
    if hazard["position_locked"]:  # a reviewer moved it: keep their position
        lat, lon = hazard["lat"], hazard["lon"]
    became_confirmed: bool | None = status == "candidate" and confirms(
        settings, hazard["class"], views(zip(drive_ids, utcs, strict=True), conf)
    )
    reason = hold.reason(hazard["class"], lat, lon) if became_confirmed and hold else None
    if reason:
        became_confirmed = None if _note_hold(conn, hazard_id, reason) else False
    elif became_confirmed or status == "possibly_repaired":
        status = "confirmed"
    # A hazard that moves loses its stored street (named where it was): the merge names it again, last.
    conn.execute(
        "UPDATE hazards SET street = CASE WHEN lat = ? AND lon = ? THEN street END, lat=?, lon=?, uncertainty_m=?,"
        " first_seen=?, last_seen=?, sighting_count=?, drive_count=?, confidence=?, width_m=?, area_class=?,"
        " lane_offset_m=?, severity=?, status=?, best_sighting_id=?, evidence_path=?, updated_at=? WHERE id=?",
        (
            lat, lon, lat, lon, uncertainty, utcs[0], utcs[-1], len(rows), len(drives), top, width,
            area_class(hazard["class"], width), lane_offset, severity(hazard["class"], width, top, lane_offset),
            status, best["id"], best["evidence_path"], now_text(), hazard_id,
        ),
    )  # fmt: skip
    return became_confirmed


def _note_hold(conn: sqlite3.Connection, hazard_id: int, reason: str) -> bool:
    """One ``held`` event per hazard: later drives that see it again add none, though its distance may shift.
    True if this is the hazard's first."""
    known = conn.execute("SELECT 1 FROM events WHERE hazard_id = ? AND action = 'held'", (hazard_id,)).fetchone()
    if not known:
        conn.execute(
            "INSERT INTO events (hazard_id, at, actor, action, detail) VALUES (?, ?, 'pipeline', 'held', ?)",
            (hazard_id, now_text(), reason),
        )
    return not known


def queue_request(conn: sqlite3.Connection, hazard_id: int) -> bool:
    """Queue the hazard's 106 request in the outbox (inside the caller's transaction); False if already queued."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO outbox (hazard_id, state, created_at) VALUES (?, 'pending', ?)", (hazard_id, now_text())
    )
    return cur.rowcount > 0


def _new_hazard(conn: sqlite3.Connection, dh: DriveHazard) -> int:
    s = dh.sightings[0]
    stamp = now_text()
    cur = conn.execute(
        "INSERT INTO hazards (class, lat, lon, uncertainty_m, first_seen, last_seen, sighting_count, drive_count,"
        " confidence, status, created_at, updated_at) VALUES (?,?,?,?,?,?,0,0,?, 'candidate', ?, ?)",
        (dh.class_name, s.lat, s.lon, s.uncertainty_m, s.utc, s.utc, s.confidence, stamp, stamp),
    )
    return int(cur.lastrowid)


def _stored_near(
    conn: sqlite3.Connection, lat: np.ndarray, lon: np.ndarray, margin_deg: float,
    statuses: tuple[str, ...] = OPEN_STATUSES,
) -> list[StoredHazard]:  # fmt: skip
    """Stored hazards of ``statuses`` within ``margin_deg`` of the positions' box (on PostgreSQL: within as many
    metres of it, ``ST_DWithin`` on geography, which the ``hazards_geog`` GiST index answers)."""
    marks = ",".join("?" * len(statuses))
    if dialect_of(conn) == "postgresql":
        rows = conn.execute(
            f"SELECT * FROM hazards WHERE status IN ({marks})"
            " AND ST_DWithin(geom::geography, ST_MakeEnvelope(?, ?, ?, ?, 4326)::geography, ?) ORDER BY id",
            (*statuses, float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()), margin_deg * 111_000),
        ).fetchall()
    else:
        rows = conn.execute(
            f"SELECT * FROM hazards WHERE status IN ({marks}) AND lat BETWEEN ? AND ? AND lon BETWEEN ? AND ?",
            (
                *statuses,
                float(lat.min()) - margin_deg, float(lat.max()) + margin_deg,
                float(lon.min()) - margin_deg, float(lon.max()) + margin_deg,
            ),
        ).fetchall()  # fmt: skip
    return [
        StoredHazard(r["id"], r["class"], r["lat"], r["lon"], r["uncertainty_m"], r["status"], r["misses"])
        for r in rows
    ]


def merge_area(drive: DriveResult, margin_m: float = NEAR_M + 40) -> list[tuple[int, int]]:
    """The lock cells (:func:`detector.store.postgres.cells`) of what merging ``drive`` reads and writes: hazards
    near its path (:func:`_stored_near`) and where its sightings are, with ``margin_m`` around them."""
    from detector.store.postgres import cells

    lat = np.concatenate([drive.poses.lat, [s.lat for h in drive.hazards for s in h.sightings]])
    lon = np.concatenate([drive.poses.lon, [s.lon for h in drive.hazards for s in h.sightings]])
    lat, lon = lat[np.isfinite(lat)], lon[np.isfinite(lon)]
    if not len(lat) or not len(lon):
        return []
    dlat = margin_m / 111_000
    dlon = margin_m / (111_000 * max(0.01, math.cos(math.radians(min(89.0, float(np.abs(lat).max()))))))
    return cells(float(lat.min()) - dlat, float(lat.max()) + dlat, float(lon.min()) - dlon, float(lon.max()) + dlon)


def merge_drive(
    store: HazardStore, drive: DriveResult, settings: MergeSettings, receipt: Receipt | None = None
) -> MergeReport:
    """Write one drive's hazards into the store in a single transaction; see the module docstring. ``receipt``
    writes its own rows in that transaction (the hub's record of the segment): merged and recorded, or neither."""
    report = MergeReport()
    # PostgreSQL: merges lock the cells of their area, so that hub workers merge drives elsewhere at the same time
    # and never two drives of one place (SQLite: one writer at a time, area unused).
    area = merge_area(drive) if store.dialect == "postgresql" else None
    with store.transaction(area=area) as conn:
        _merge(conn, drive, settings, report)
        if receipt is not None:
            receipt(conn, report)
    return report


class DriveAlreadyStored(InputError):
    """The drive's content is already in the store: another run (or batch worker) merged it after this one
    looked. Nothing of this one is written; a caller reports it as it reports a drive found there at the start."""

    def __init__(self, drive_id: str) -> None:
        super().__init__(None, f"{drive_id}: already in the store (same content)")


def _merge(conn: sqlite3.Connection, drive: DriveResult, settings: MergeSettings, report: MergeReport) -> None:
    record, poses = drive.record, drive.poses
    # Checked again inside the transaction (BEGIN IMMEDIATE: one writer at a time): a run of the same drive
    # started at the same moment passed the first check too.
    if conn.execute("SELECT 1 FROM drives WHERE content_hash = ?", (record.content_hash,)).fetchone():
        raise DriveAlreadyStored(record.id)
    if conn.execute("SELECT 1 FROM drives WHERE id = ?", (record.id,)).fetchone():
        raise InputError(None, f"drive id {record.id!r} is already in the store for another video (set drive.id)")
    conn.execute(
        "INSERT INTO drives (id, content_hash, video, track, started_utc, ended_utc, distance_m, frames_sampled,"
        " camera, trip, processed_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            record.id, record.content_hash, record.video, record.track, record.started_utc, record.ended_utc,
            record.distance_m, record.frames_sampled, record.camera, record.trip or None, now_text(),
        ),
    )  # fmt: skip
    write_drive_track(conn, record.id, poses.lat, poses.lon)
    if len(poses.lat) == 0:
        return
    stored = _stored_near(conn, poses.lat, poses.lon, margin_deg=NEAR_M / 111_000)
    passed = _passed_on_trip(conn, record)
    found = associate(drive.hazards, stored, poses, drive.camera, settings.dedup, settings.gps_sigma_m, passed)
    touched: list[int] = []
    for dh, match in zip(drive.hazards, found.matches, strict=True):
        if match is None:
            hazard_id = _new_hazard(conn, dh)
            report.new += 1
        else:
            hazard_id = match.id
            report.merged += 1
        _insert_sightings(conn, hazard_id, dh.sightings, drive.evidence)
        report.sightings += len(dh.sightings)
        touched.append(hazard_id)
        conn.execute(
            "INSERT INTO passes (hazard_id, drive_id, frames_in_view, seen) VALUES (?,?,?,1)"
            " ON CONFLICT (hazard_id, drive_id) DO UPDATE SET seen = 1",
            (hazard_id, record.id, len(dh.sightings)),
        )
    for hazard_id in touched:
        conn.execute("UPDATE hazards SET misses = 0 WHERE id = ?", (hazard_id,))
        confirmed = recompute_hazard(conn, hazard_id, settings.dedup, settings.gps_sigma_m, settings.hold)
        if confirmed:
            report.confirmed += 1
            queue_request(conn, hazard_id)
        elif confirmed is None:
            report.held += 1
    for miss in found.misses:
        conn.execute(
            "INSERT OR IGNORE INTO passes (hazard_id, drive_id, frames_in_view, seen) VALUES (?,?,?,0)",
            (miss.hazard.id, record.id, miss.frames_in_view),
        )
        conn.execute(
            "UPDATE hazards SET misses = ?, status = ?, updated_at = ? WHERE id = ?",
            (miss.misses, miss.status, now_text(), miss.hazard.id),
        )
    report.possibly_repaired = sum(miss.flagged for miss in found.misses)
    _merge_signs(conn, drive, settings, report)
    _join_stored(conn, poses, settings, report)
    _name_streets(conn, poses, settings, touched)


def _name_streets(conn: sqlite3.Connection, poses: FramePoses, settings: MergeSettings, touched: list[int]) -> None:
    """Each hazard's street (:mod:`detector.store.streets`), last, where recompute and joins left them: the
    hazards the drive touched and every stored one near its path (named before a layer was set, or moved)."""
    streets = merge_streets(conn, settings.layers, settings.street_within_m)
    if streets is None:
        return
    near = _stored_near(conn, poses.lat, poses.lon, NEAR_M / 111_000, (*OPEN_STATUSES, "repaired"))
    name_hazards(conn, streets, [*touched, *(h.id for h in near)])


def _merge_signs(conn: sqlite3.Connection, drive: DriveResult, settings: MergeSettings, report: MergeReport) -> None:
    """The drive's standing signs into the inventory (:mod:`detector.store.signs`): a sign that went missing now
    gets a ``missing_sign`` hazard, held for a reviewer (never filed automatically); one seen standing again closes
    its missing_sign hazard, if no one has decided on it yet, as repaired."""
    if drive.signs is None:  # a model without the sign class saw no sign: no mapped sign is missed either
        return
    record = drive.record
    merged = merge_signs(
        conn, drive.signs, drive.poses, drive.camera, settings.dedup, settings.gps_sigma_m, record.trip or record.id,
        drive.evidence, settings.missing_after, settings.sign_match_m, settings.sign_map_within_m,
    )  # fmt: skip
    report.signs_new += merged.new
    report.signs_seen += merged.seen
    report.signs_down += merged.down
    for row in merged.missing:
        stamp = now_text()
        hazard_id = conn.execute(
            "INSERT INTO hazards (class, lat, lon, uncertainty_m, first_seen, last_seen, sighting_count, drive_count,"
            " confidence, status, evidence_path, created_at, updated_at) VALUES (?,?,?,?,?,?,0,0,?,'candidate',?,?,?)",
            (MISSING_CLASS, row["lat"], row["lon"], row["uncertainty_m"], row["first_seen"], row["last_seen"],
             row["confidence"], row["photo_path"], stamp, stamp),
        ).lastrowid  # fmt: skip
        conn.execute("UPDATE signs SET missing_hazard_id = ? WHERE id = ?", (hazard_id, row["id"]))
        reason = f"mapped sign {row['id']} not seen on {row['misses']} passes in good view"
        if _note_hold(conn, int(hazard_id), reason):
            report.held += 1
        report.signs_missing += 1
    for hazard_id in merged.back:
        cur = conn.execute(
            "UPDATE hazards SET status = 'repaired', updated_at = ? WHERE id = ? AND status = 'candidate'",
            (now_text(), hazard_id),
        )
        if cur.rowcount:
            log_event(conn, hazard_id, "pipeline", "repaired", {"why": "the sign was seen standing again"})


def _join_stored(conn: sqlite3.Connection, poses: FramePoses, settings: MergeSettings, report: MergeReport) -> None:
    """Merge the stored hazards near the drive that what each drive saw of them shows to be one
    (:func:`one_hazards`): each group into its survivor, recomputed once."""
    stored = _stored_near(conn, poses.lat, poses.lon, NEAR_M / 111_000, MERGEABLE_STATUSES)
    if not stored:
        return
    local = LocalFrame.around(stored[0].lat, stored[0].lon)
    pieces = _on_the_map(_pieces(conn, [h.id for h in stored], local), stored, local, settings.gps_sigma_m)
    for group in one_hazards(pieces, settings.dedup):
        members = [h for h in stored if h.id in group]
        target = max(members, key=lambda h: _survivor_rank(conn, h))
        for source in (h for h in members if h.id != target.id):
            handed = absorb(conn, source.id, target.id)
            detail = {"source": source.id, "target": target.id, "request": handed, "why": "one hazard, seen apart"}
            for hazard_id in (source.id, target.id):
                log_event(conn, hazard_id, "pipeline", "merge", detail)
            report.joined += 1
        conn.execute("UPDATE hazards SET misses = ? WHERE id = ?", (min(h.misses for h in members), target.id))
        confirmed = recompute_hazard(conn, target.id, settings.dedup, settings.gps_sigma_m, settings.hold)
        if confirmed or (target.status != "confirmed" and any(h.status == "confirmed" for h in members)):
            if confirmed:
                report.confirmed += 1
            _set_confirmed(conn, target.id)


def _on_the_map(pieces: list[Piece], stored: list[StoredHazard], local: LocalFrame, gps_sigma_m: float) -> list[Piece]:
    """The pieces with each trip's local GPS offset to the stored map removed (:func:`gps_shifts`)."""
    if not pieces:
        return pieces
    stored_xy = np.column_stack(local.to_xy([h.lat for h in stored], [h.lon for h in stored]))
    by_trip: dict[str, list[Piece]] = {}
    for p in pieces:
        by_trip.setdefault(p.trip, []).append(p)
    out = []
    for trip in sorted(by_trip):
        own = by_trip[trip]
        xy = np.array([(p.x, p.y) for p in own])
        shifts = gps_shifts(xy, [p.class_name for p in own], stored_xy, stored, gps_sigma_m)
        out += [dataclasses.replace(p, x=p.x + dx, y=p.y + dy) for p, (dx, dy) in zip(own, shifts, strict=True)]
    return out


def _set_confirmed(conn: sqlite3.Connection, hazard_id: int) -> None:
    """A hazard one of whose parts was confirmed is confirmed, its 106 request queued (once: see queue_request)."""
    conn.execute("UPDATE hazards SET status = 'confirmed' WHERE id = ? AND status = 'candidate'", (hazard_id,))
    queue_request(conn, hazard_id)


def _pieces(conn: sqlite3.Connection, hazard_ids: list[int], local: LocalFrame) -> list[Piece]:
    """What each trip saw of each of these hazards (:class:`Piece`), in ``local``."""
    if not hazard_ids:
        return []
    rows = conn.execute(
        f"SELECT s.hazard_id, s.class, s.lat, s.lon, s.confidence, s.uncertainty_m, {TRIP} AS trip FROM sightings s"
        f" JOIN drives d ON d.id = s.drive_id WHERE s.hazard_id IN ({','.join('?' * len(hazard_ids))})"
        " ORDER BY s.hazard_id, trip, s.id",
        hazard_ids,
    ).fetchall()
    if not rows:
        return []
    # By column (a street patrolled daily: thousands of rows); rows of one hazard and trip come together (ORDER BY).
    hazard, kind, lat, lon, conf, sigma, trip = zip(*rows, strict=True)
    conf, sigma = np.asarray(conf, dtype=float), np.asarray(sigma, dtype=float)
    x, y = local.to_xy(lat, lon)
    weight = position_weight(conf, sigma)
    keys = list(zip(hazard, trip, strict=True))
    starts = [0] + [i for i in range(1, len(keys)) if keys[i] != keys[i - 1]]
    pieces = []
    for a, b in zip(starts, [*starts[1:], len(keys)], strict=True):
        w = weight[a:b]
        pieces.append(Piece(hazard[a], kind[a], trip[a], float(np.sum(w * x[a:b]) / w.sum()),
                            float(np.sum(w * y[a:b]) / w.sum()), float(sigma[a:b].min()), b - a))  # fmt: skip
    return pieces


def _survivor_rank(conn: sqlite3.Connection, h: StoredHazard) -> tuple:
    """Of hazards that are one, the one that keeps its id ranks highest: the one whose 106 request is open or may
    be (sent, or attempted), then one a reviewer placed, then confirmed, then the one seen on more drives, then
    the older."""
    row = conn.execute(
        "SELECT h.position_locked, h.drive_count, h.sighting_count, o.state, o.attempts, t.hazard_id AS ticket"
        " FROM hazards h LEFT JOIN outbox o ON o.hazard_id = h.id LEFT JOIN tickets t ON t.hazard_id = h.id"
        " WHERE h.id = ?",
        (h.id,),
    ).fetchone()
    requested = row["ticket"] is not None or row["state"] == "sent"
    attempted = row["state"] == "pending" and row["attempts"] > 0
    return (requested, attempted, row["position_locked"], h.status == "confirmed", row["drive_count"],
            row["sighting_count"], -h.id)  # fmt: skip


def absorb(conn: sqlite3.Connection, source_id: int, target_id: int) -> str:
    """Merge hazard ``source`` into ``target`` (inside the caller's transaction; the caller recomputes the target
    and writes the events): its sightings and passes move, it keeps its row as ``merged``, pointing at the target
    (as do hazards merged into it earlier). Its 106 request, so that the city hears of one hazard once: one queued
    but not sent moves to the target, or is cancelled if the target has its own; one already open is linked to a
    target that has none; where both are open, each stays (the city has both). Returns what became of it:
    ``none``, ``moved``, ``cancelled``, ``linked`` or ``kept``."""
    conn.execute("UPDATE sightings SET hazard_id = ? WHERE hazard_id = ?", (target_id, source_id))
    for p in conn.execute("SELECT * FROM passes WHERE hazard_id = ?", (source_id,)).fetchall():
        conn.execute(
            "INSERT INTO passes (hazard_id, drive_id, frames_in_view, seen) VALUES (?,?,?,?)"
            " ON CONFLICT (hazard_id, drive_id) DO UPDATE SET"
            " frames_in_view = MAX(passes.frames_in_view, excluded.frames_in_view),"
            " seen = MAX(passes.seen, excluded.seen)",  # named by table: PostgreSQL finds a bare name ambiguous
            (target_id, p["drive_id"], p["frames_in_view"], p["seen"]),
        )
    conn.execute("DELETE FROM passes WHERE hazard_id = ?", (source_id,))
    conn.execute("UPDATE hazards SET merged_into = ? WHERE merged_into = ?", (target_id, source_id))
    conn.execute(
        "UPDATE hazards SET status = 'merged', merged_into = ?, sighting_count = 0, updated_at = ? WHERE id = ?",
        (target_id, now_text(), source_id),
    )
    return _hand_over_request(conn, source_id, target_id)


def _hand_over_request(conn: sqlite3.Connection, source_id: int, target_id: int) -> str:
    """The 106 request of a hazard merged into another; see :func:`absorb`."""
    src = conn.execute("SELECT id, state, attempts FROM outbox WHERE hazard_id = ?", (source_id,)).fetchone()
    dst = conn.execute("SELECT id, state FROM outbox WHERE hazard_id = ?", (target_id,)).fetchone()
    src_ticket = conn.execute("SELECT 1 FROM tickets WHERE hazard_id = ?", (source_id,)).fetchone()
    dst_ticket = conn.execute("SELECT 1 FROM tickets WHERE hazard_id = ?", (target_id,)).fetchone()
    if src_ticket is None and (src is None or src["state"] == "failed"):
        return "none"
    if src_ticket is not None:
        if dst_ticket is not None:
            return "kept"
        conn.execute("UPDATE tickets SET hazard_id = ? WHERE hazard_id = ?", (target_id, source_id))
        if dst is not None:  # the target's own request is not needed: the city has the source's
            conn.execute("DELETE FROM outbox WHERE id = ?", (dst["id"],))
        if src is not None:
            conn.execute("UPDATE outbox SET hazard_id = ? WHERE id = ?", (target_id, src["id"]))
        return "linked"
    if dst is None and dst_ticket is None:
        conn.execute("UPDATE outbox SET hazard_id = ? WHERE id = ?", (target_id, src["id"]))
        return "moved"
    conn.execute("DELETE FROM outbox WHERE id = ?", (src["id"],))
    return "cancelled"


def log_event(conn: sqlite3.Connection, hazard_id: int, actor: str, action: str, detail: dict) -> str:
    """An ``events`` row (inside the caller's transaction), its detail as JSON; returns that JSON."""
    text = json.dumps(detail, ensure_ascii=False, sort_keys=True)
    conn.execute(
        "INSERT INTO events (hazard_id, at, actor, action, detail) VALUES (?,?,?,?,?)",
        (hazard_id, now_text(), actor, action, text),
    )
    return text


def _passed_on_trip(conn: sqlite3.Connection, record: DriveRecord) -> set[int]:
    """Hazards an earlier segment of ``record``'s trip already passed, seen or not: a patrol passes a hazard once,
    so a later segment's view of it is no second miss."""
    if not record.trip:
        return set()
    rows = conn.execute(
        f"SELECT DISTINCT p.hazard_id FROM passes p JOIN drives d ON d.id = p.drive_id WHERE {TRIP} = ? AND d.id != ?",
        (record.trip, record.id),
    )
    return {r[0] for r in rows}
