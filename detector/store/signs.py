"""The sign inventory in the store: standing signs merged across drives, and the mapped ones gone missing.

A drive's standing signs (:class:`~detector.pipeline.signs.DriveSign`) are associated with the mapped ones near it
as hazards are (:func:`~detector.pipeline.dedup.across_drives.associate`: the drive's GPS offset removed, matched
within the class radius, the misses of those it had in good view and did not see). A mapped sign seen again is
updated (position averaged over its views, last seen, photo); one missed on ``signs.missing_after`` passes becomes
``missing``, and :mod:`detector.store.merge` holds a ``missing_sign`` hazard for a reviewer. One whose plate the
drive saw down or leaning is ``down`` (its ``fallen_sign`` hazard goes the hazards' way), not missing; a fallen
plate no mapped sign matches is not mapped. Seen standing again, a sign stands again. Called inside the drive's
merge transaction.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from detector.camera import CameraModel
from detector.config.pipeline import DedupConfig
from detector.geo import LocalFrame
from detector.pipeline.dedup.across_drives import FramePoses, StoredHazard, associate, match_stored
from detector.pipeline.signs import DriveSign
from detector.store.db import now_text

SIGN_CLASS = "traffic_sign"
MISSING_CLASS = "missing_sign"
# As the association sees a mapped sign: one standing can be missed; one missing already counts no more misses.
AS_HAZARD_STATUS = {"standing": "candidate", "down": "rejected", "missing": "rejected"}


@dataclass
class SignsMerged:
    """What a drive did to the inventory: signs new to it, mapped signs seen again, and those that went missing
    now (their rows), and the ``missing_sign`` hazards of signs seen standing again (to close)."""

    new: int = 0
    seen: int = 0
    down: int = 0
    missing: list[sqlite3.Row] = field(default_factory=list)
    back: list[int] = field(default_factory=list)


def _stored_signs(conn: sqlite3.Connection, poses: FramePoses, margin_deg: float) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT * FROM signs WHERE lat BETWEEN ? AND ? AND lon BETWEEN ? AND ?",
        (
            float(poses.lat.min()) - margin_deg, float(poses.lat.max()) + margin_deg,
            float(poses.lon.min()) - margin_deg, float(poses.lon.max()) + margin_deg,
        ),
    ).fetchall()  # fmt: skip


def _best_frame(sign: DriveSign) -> int:
    """The frame of a sign's surest, nearest sighting: its photo."""
    best = max(sign.hazard.sightings, key=lambda s: s.confidence / (1 + s.range_m / 15))
    return best.frame_index


def merge_signs(
    conn: sqlite3.Connection, signs: Sequence[DriveSign], poses: FramePoses, camera: CameraModel,
    dedup: DedupConfig, gps_sigma_m: float, trip: str, evidence: dict[int, str], missing_after: int,
    match_m: float = 8.0, map_within_m: float = 12.0,
) -> SignsMerged:  # fmt: skip
    """Merge a drive's standing ``signs`` into the inventory and count the misses of the mapped signs it passed in
    good view without seeing (once per patrol ``trip``); see the module docstring.

    A plate and a mapped sign up to ``match_m`` apart (``signs.match_m``, after the drive's GPS offset; more where
    both positions are less sure) are one sign. That is wider than a hazard's radius: a plate's position is
    triangulated over metres of driving, on the drive's own GPS, and signs stand tens of metres apart. A plate the
    drive saw only farther than ``map_within_m`` may match a mapped sign but starts none (its position is metres
    out; a drive that passes it closer maps it)."""
    out = SignsMerged()
    dedup = dedup.model_copy(update={"radius_m": {**dedup.radius_m, SIGN_CLASS: match_m}})  # the gate: match_m up
    rows = _stored_signs(conn, poses, 60 / 111_000)
    stored = [
        StoredHazard(r["id"], SIGN_CLASS, r["lat"], r["lon"], r["uncertainty_m"], AS_HAZARD_STATUS[r["status"]],
                     r["misses"])
        for r in rows
    ]  # fmt: skip
    passed = {r["id"] for r in rows if r["last_trip"] == trip}
    # Standing plates first: a fallen plate a few metres from a standing sign must not take that sign's row.
    standing = [s for s in signs if s.fix.state == "standing"]
    fallen = [s for s in signs if s.fix.state != "standing"]
    found = associate([s.hazard for s in standing], stored, poses, camera, dedup, gps_sigma_m, passed)
    taken = {m.id for m in found.matches if m is not None}
    fallen_matches = _match_fallen(fallen, [h for h in stored if h.id not in taken], dedup)
    down_ids = {m.id for m in fallen_matches if m is not None}
    stamp = now_text()
    for sign, match in zip([*standing, *fallen], [*found.matches, *fallen_matches], strict=True):
        if sign.fix.state != "standing":
            if match is not None:  # a mapped sign found fallen: down, not missing
                conn.execute(
                    "UPDATE signs SET status='down', misses=0, last_seen=MAX(last_seen, ?), last_trip=?, updated_at=?"
                    " WHERE id=?",
                    (max(s.utc for s in sign.hazard.sightings), trip, stamp, match.id),
                )
                out.down += 1
            continue
        lat, lon = sign.latlon
        seen = sign.hazard.sightings
        views = len({s.frame_index for s in seen})
        sigma = sign.hazard.sigma
        photo = evidence.get(_best_frame(sign))
        top = max(s.confidence for s in seen)
        first, last = min(s.utc for s in seen), max(s.utc for s in seen)
        if match is None:
            if min(s.range_m for s in seen) > map_within_m:
                continue
            conn.execute(
                "INSERT INTO signs (lat, lon, uncertainty_m, height_m, tilt_deg, first_seen, last_seen, views,"
                " drive_count, confidence, photo_path, status, misses, last_trip, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,1,?,?,'standing',0,?,?,?)",
                (lat, lon, sigma, sign.fix.height_m, sign.fix.tilt_deg, first, last, views, top, photo, trip,
                 stamp, stamp),
            )  # fmt: skip
            out.new += 1
            continue
        row = next(r for r in rows if r["id"] == match.id)
        total = row["views"] + views
        mean_lat = (row["lat"] * row["views"] + lat * views) / total
        mean_lon = (row["lon"] * row["views"] + lon * views) / total
        fused = 1.0 / math.sqrt(1.0 / row["uncertainty_m"] ** 2 + 1.0 / sigma**2)
        height = float(np.average([row["height_m"], sign.fix.height_m], weights=[row["views"], views]))
        newer_drive = row["last_trip"] != trip
        conn.execute(
            "UPDATE signs SET lat=?, lon=?, uncertainty_m=?, height_m=?, tilt_deg=COALESCE(?, tilt_deg),"
            " first_seen=MIN(first_seen, ?), last_seen=MAX(last_seen, ?), views=?, drive_count=drive_count+?,"
            " confidence=MAX(confidence, ?), photo_path=COALESCE(?, photo_path), status='standing', misses=0,"
            " last_trip=?, updated_at=? WHERE id=?",
            (mean_lat, mean_lon, fused, round(height, 2), sign.fix.tilt_deg, first, last, total, int(newer_drive),
             top, photo, trip, stamp, match.id),
        )  # fmt: skip
        if row["status"] == "missing" and row["missing_hazard_id"] is not None:
            out.back.append(int(row["missing_hazard_id"]))
        out.seen += 1
    for miss in (m for m in found.misses if m.hazard.id not in down_ids):  # a sign found down was seen
        row = next(r for r in rows if r["id"] == miss.hazard.id)
        gone = miss.misses >= missing_after
        conn.execute(
            "UPDATE signs SET misses=?, status=?, last_trip=?, updated_at=? WHERE id=?",
            (miss.misses, "missing" if gone else row["status"], trip, stamp, row["id"]),
        )
        if gone:
            out.missing.append(conn.execute("SELECT * FROM signs WHERE id = ?", (row["id"],)).fetchone())
    return out


def _match_fallen(
    fallen: Sequence[DriveSign], stored: Sequence[StoredHazard], dedup: DedupConfig
) -> list[StoredHazard | None]:
    """The mapped sign each fallen plate is, if any (among those no standing plate of the drive took): the closest
    within the class gate (:func:`~detector.pipeline.dedup.across_drives.match_stored`)."""
    if not fallen or not stored:
        return [None] * len(fallen)
    local = LocalFrame.around(stored[0].lat, stored[0].lon)
    latlon = np.array([s.latlon for s in fallen])
    drive_xy = np.column_stack(local.to_xy(latlon[:, 0], latlon[:, 1]))
    stored_xy = np.column_stack(local.to_xy([h.lat for h in stored], [h.lon for h in stored]))
    matches = match_stored([s.hazard for s in fallen], drive_xy, stored, stored_xy, dedup)
    return [None if j is None else stored[j] for j in matches]
