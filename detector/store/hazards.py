"""Hazard records in the store: merging a drive's hazards, recomputing aggregates, reading them back.

All writes for one drive happen in one transaction: its sightings, new and updated hazards,
misses of hazards it passed without seeing, and the outbox rows of hazards it confirmed (the
ticket issue's exactly-once guarantee starts here).
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass

import numpy as np
from shapely import STRtree, points

from detector.camera import CameraModel
from detector.dedup import DedupSettings, DriveHazard, position_weight
from detector.geo import LocalFrame
from detector.holds import Hold
from detector.localize import Sighting
from detector.store.db import HazardStore, now_text
from detector.store.tracks import write_drive_track

OPEN_STATUSES = ("candidate", "confirmed", "possibly_repaired", "rejected")
LANE_HALF_M = 1.75


@dataclass(frozen=True)
class DriveRecord:
    id: str
    content_hash: str
    video: str
    track: str
    started_utc: float
    ended_utc: float
    distance_m: float
    frames_sampled: int
    camera: str


@dataclass(frozen=True)
class FramePoses:
    """Where the camera was for each sampled frame of a drive (for counting misses)."""

    lat: np.ndarray
    lon: np.ndarray
    heading: np.ndarray
    width: int
    height: int


@dataclass
class MergeReport:
    sightings: int = 0
    new: int = 0
    merged: int = 0
    confirmed: int = 0
    held: int = 0  # newly held for a reviewer (a mapped feature, the filing policy: detector.holds); once per hazard
    possibly_repaired: int = 0

    def line(self) -> str:
        return (
            f"{self.sightings} sightings: {self.new} new hazards, {self.merged} merged into known ones, "
            f"{self.confirmed} newly confirmed, {self.possibly_repaired} possibly repaired" + held_phrase(self.held)
        )


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


def _insert_sighting(conn: sqlite3.Connection, hazard_id: int, s: Sighting, evidence: str | None) -> int:
    cur = conn.execute(
        "INSERT INTO sightings (hazard_id, drive_id, frame_index, utc, class, confidence, lat, lon, range_m,"
        " lateral_m, uncertainty_m, width_m, x1, y1, x2, y2, vehicle_lat, vehicle_lon, heading, far, evidence_path)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            hazard_id, s.drive_id, s.frame_index, s.utc, s.class_name, s.confidence, s.lat, s.lon, s.range_m,
            s.lateral_m, s.uncertainty_m, s.width_m, *s.bbox, s.vehicle_lat, s.vehicle_lon, s.heading, int(s.far),
            evidence,
        ),
    )  # fmt: skip
    return int(cur.lastrowid)


def recompute_hazard(
    conn: sqlite3.Connection,
    hazard_id: int,
    settings: DedupSettings,
    gps_sigma_m: float,
    hold: Hold | None = None,
) -> bool | None:
    """Refresh a hazard's aggregates from all its sightings; True if it became confirmed now, None if it would
    have but ``hold`` holds it for a reviewer (a mapped feature, the filing policy) and had not before (it stays a
    candidate, with one ``held`` event), else False."""
    rows = conn.execute("SELECT * FROM sightings WHERE hazard_id = ? ORDER BY utc", (hazard_id,)).fetchall()
    hazard = conn.execute("SELECT * FROM hazards WHERE id = ?", (hazard_id,)).fetchone()
    conf = np.array([r["confidence"] for r in rows])
    sigma = np.array([r["uncertainty_m"] for r in rows])
    weight = position_weight(conf, sigma)
    lat = float(np.sum(weight * [r["lat"] for r in rows]) / weight.sum())
    lon = float(np.sum(weight * [r["lon"] for r in rows]) / weight.sum())
    drives = {r["drive_id"] for r in rows}
    # The GPS error is shared by the sightings of one drive and averages out only across drives.
    geometric = np.sqrt(np.maximum(sigma**2 - gps_sigma_m**2, 0.3**2))
    uncertainty = math.sqrt(gps_sigma_m**2 / len(drives) + 1.0 / float(np.sum(1.0 / geometric**2)))
    near = [r for r in rows if not r["far"]] or list(rows)
    width = float(np.median([r["width_m"] for r in near]))
    lane_offset = float(np.median([r["lateral_m"] for r in near]))
    best = max(rows, key=lambda r: r["confidence"] / (1 + r["range_m"] / 15))
    top = float(conf.max())
    status = hazard["status"]
    if hazard["position_locked"]:  # a reviewer moved it: keep their position
        lat, lon = hazard["lat"], hazard["lon"]
    became_confirmed: bool | None = status == "candidate" and settings.confirms(hazard["class"], conf)
    reason = hold.reason(hazard["class"], lat, lon) if became_confirmed and hold else None
    if reason:
        became_confirmed = None if _note_hold(conn, hazard_id, reason) else False
    elif became_confirmed or status == "possibly_repaired":
        status = "confirmed"
    conn.execute(
        "UPDATE hazards SET lat=?, lon=?, uncertainty_m=?, first_seen=?, last_seen=?, sighting_count=?, drive_count=?,"
        " confidence=?, width_m=?, area_class=?, lane_offset_m=?, severity=?, status=?, best_sighting_id=?,"
        " evidence_path=?, updated_at=? WHERE id=?",
        (
            lat, lon, uncertainty, rows[0]["utc"], rows[-1]["utc"], len(rows), len(drives), top, width,
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


def _stored_near(conn: sqlite3.Connection, lat: np.ndarray, lon: np.ndarray, margin_deg: float) -> list[sqlite3.Row]:
    marks = ",".join("?" * len(OPEN_STATUSES))
    return conn.execute(
        f"SELECT * FROM hazards WHERE status IN ({marks}) AND lat BETWEEN ? AND ? AND lon BETWEEN ? AND ?",
        (
            *OPEN_STATUSES,
            float(lat.min()) - margin_deg, float(lat.max()) + margin_deg,
            float(lon.min()) - margin_deg, float(lon.max()) + margin_deg,
        ),
    ).fetchall()  # fmt: skip


def frames_in_view(
    hazard_xy: np.ndarray, poses_xy: np.ndarray, heading: np.ndarray, poses: FramePoses, camera: CameraModel,
    view_range_m: tuple[float, float],
) -> np.ndarray:  # fmt: skip
    """For each hazard (M, 2), how many frames had it inside the image at a good range (none without a heading)."""
    cam = camera.scaled_to(poses.width, poses.height)
    # Well inside the frame: a hazard at the image edge may be cut off or hidden by the bonnet.
    return np.count_nonzero(cam.sees(hazard_xy, poses_xy, heading, view_range_m, (0.1, 0.0, 0.9, 0.9)), axis=1)


def gps_shifts(
    drive_xy: np.ndarray, classes: list[str], stored_xy: np.ndarray | None, stored: list, gps_sigma_m: float,
    window_m: float = 150.0,
) -> np.ndarray:  # fmt: skip
    """Per drive hazard, the local offset between this drive's GPS and the stored map.

    A drive's GPS error drifts slowly, so the hazards it re-observes nearby share one offset;
    the median displacement to their nearest stored counterparts (same class, within three
    combined sigmas) estimates it. Matching after removing it lets the class radius stay tight
    (neighbouring potholes stay apart) while drives with metres of GPS error still merge.
    """
    shifts = np.zeros((len(drive_xy), 2))
    if stored_xy is None or not len(drive_xy):
        return shifts
    gate = 3 * math.sqrt(2) * gps_sigma_m
    stored_class = np.array([r["class"] for r in stored])
    pairs = []  # (drive index, displacement)
    for i, (x, y) in enumerate(drive_xy):
        same = np.flatnonzero(stored_class == classes[i])
        if not len(same):
            continue
        d = np.hypot(stored_xy[same, 0] - x, stored_xy[same, 1] - y)
        j = int(np.argmin(d))
        if d[j] <= gate:
            pairs.append((i, stored_xy[same[j]] - drive_xy[i]))
    if not pairs:
        return shifts
    idx = np.array([i for i, _ in pairs])
    disp = np.array([v for _, v in pairs])
    for i in range(len(drive_xy)):
        close = np.hypot(*(drive_xy[idx] - drive_xy[i]).T) <= window_m
        if close.any():
            shifts[i] = np.median(disp[close], axis=0)
    return shifts


def match_stored(
    hazards: list[DriveHazard],
    drive_xy: np.ndarray,
    stored: list,
    stored_xy: np.ndarray | None,
    settings: DedupSettings,
) -> list[int | None]:
    """For each drive hazard, the index of the stored hazard it is, or None: closest pairs first, one to one.

    Two sightings of one hazard on different drives differ by both drives' GPS errors, so the
    gate widens with the combined uncertainty, from the class radius up to three radii.
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
            if row["class"] != dh.class_name:
                continue
            d = float(np.hypot(*(stored_xy[int(j)] - drive_xy[i])))
            gate = min(max(radius, 1.5 * math.hypot(dh.sigma, row["uncertainty_m"])), 3 * radius)
            if d <= gate:
                pairs.append((d, i, int(j)))
    taken: set[int] = set()
    for _, i, j in sorted(pairs):
        if matches[i] is None and j not in taken:
            matches[i] = j
            taken.add(j)
    return matches


def merge_drive(
    store: HazardStore,
    drive: DriveRecord,
    hazards: list[DriveHazard],
    poses: FramePoses,
    camera: CameraModel,
    settings: DedupSettings,
    gps_sigma_m: float,
    evidence: dict[int, str] | None = None,
    hold: Hold | None = None,
) -> MergeReport:
    """Write one drive's hazards into the store in a single transaction; see the module docstring."""
    evidence = evidence or {}
    report = MergeReport()
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO drives (id, content_hash, video, track, started_utc, ended_utc, distance_m, frames_sampled,"
            " camera, processed_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                drive.id, drive.content_hash, drive.video, drive.track, drive.started_utc, drive.ended_utc,
                drive.distance_m, drive.frames_sampled, drive.camera, now_text(),
            ),
        )  # fmt: skip
        write_drive_track(conn, drive.id, poses.lat, poses.lon)
        if len(poses.lat) == 0:
            return report
        local = LocalFrame(float(np.median(poses.lat)), float(np.median(poses.lon)))
        px, py = local.to_xy(poses.lat, poses.lon)
        poses_xy = np.column_stack([px, py])
        stored = _stored_near(conn, poses.lat, poses.lon, margin_deg=60 / 111_000)
        stored_xy = (
            np.column_stack(local.to_xy([r["lat"] for r in stored], [r["lon"] for r in stored])) if stored else None
        )
        seen: set[int] = set()
        touched: list[int] = []
        latlon = np.array([dh.latlon for dh in hazards]).reshape(-1, 2)
        drive_xy = np.column_stack(local.to_xy(latlon[:, 0], latlon[:, 1])).reshape(-1, 2)
        shifts = gps_shifts(drive_xy, [dh.class_name for dh in hazards], stored_xy, stored, gps_sigma_m)
        matches = match_stored(hazards, drive_xy + shifts, stored, stored_xy, settings)
        for dh, match in zip(hazards, matches, strict=True):
            if match is None:
                hazard_id = _new_hazard(conn, dh)
                report.new += 1
            else:
                seen.add(match)
                hazard_id = int(stored[match]["id"])
                report.merged += 1
            for s in dh.sightings:
                _insert_sighting(conn, hazard_id, s, evidence.get(s.frame_index))
            report.sightings += len(dh.sightings)
            touched.append(hazard_id)
            conn.execute(
                "INSERT INTO passes (hazard_id, drive_id, frames_in_view, seen) VALUES (?,?,?,1)"
                " ON CONFLICT (hazard_id, drive_id) DO UPDATE SET seen = 1",
                (hazard_id, drive.id, len(dh.sightings)),
            )
        for hazard_id in touched:
            conn.execute("UPDATE hazards SET misses = 0 WHERE id = ?", (hazard_id,))
            confirmed = recompute_hazard(conn, hazard_id, settings, gps_sigma_m, hold)
            if confirmed:
                report.confirmed += 1
                queue_request(conn, hazard_id)
            elif confirmed is None:
                report.held += 1
        report.possibly_repaired = _count_misses(
            conn, stored, stored_xy, seen, poses_xy, poses, camera, settings, drive.id
        )
    return report


def _count_misses(conn, stored, stored_xy, seen, poses_xy, poses, camera, settings, drive_id) -> int:
    """Stored hazards this drive passed in good view without seeing: count a miss, flag after enough."""
    unseen = [i for i in range(len(stored)) if i not in seen and stored[i]["status"] in ("candidate", "confirmed")]
    if not unseen:
        return 0
    counts = frames_in_view(stored_xy[unseen], poses_xy, poses.heading, poses, camera, settings.view_range_m)
    flagged = 0
    for i, count in zip(unseen, counts, strict=True):
        if count < settings.min_frames_in_view:
            continue
        row = stored[i]
        conn.execute(
            "INSERT OR IGNORE INTO passes (hazard_id, drive_id, frames_in_view, seen) VALUES (?,?,?,0)",
            (row["id"], drive_id, int(count)),
        )
        misses = row["misses"] + 1
        status = (
            "possibly_repaired" if misses >= settings.miss_limit and row["status"] == "confirmed" else row["status"]
        )
        flagged += status != row["status"]
        conn.execute(
            "UPDATE hazards SET misses = ?, status = ?, updated_at = ? WHERE id = ?",
            (misses, status, now_text(), row["id"]),
        )
    return flagged
