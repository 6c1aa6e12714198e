"""One segment upload into the central store: checked whole, then merged as ``detector batch`` merges a drive.

The receipt (the segment's digest, the sending vehicle's counters) is written in the same transaction as the
merge, so a segment is either merged and recorded or neither: a retry after a lost answer is recognised by its
digest and answered "already merged". Every refusal leaves the store as it was.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass

from detector.camera import CameraModel
from detector.config import Config
from detector.hub.payload import PayloadError, digest, owned_id, parse_payload, to_analysis
from detector.hub.vehicles import Vehicle
from detector.pipeline.analysis import DriveAnalysis, commit_analysis
from detector.pipeline.signs import inventory_on
from detector.store import HazardStore
from detector.store.db import now_text
from detector.store.merge import DriveAlreadyStored, MergeReport, MergeSettings
from detector.store.schema import TRIP

log = logging.getLogger(__name__)


class SegmentRefused(Exception):
    """An upload the hub will never merge (a 4xx answer): the vehicle gives up on it."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class IngestAnswer:
    status: int  # 200 already merged, 201 merged now
    detail: str
    segment_id: str
    sightings: int = 0


@dataclass(frozen=True)
class Segment:
    """An upload as read before the store is touched (:func:`read_segment`): its digest, and either what it merges
    as or why the hub will never merge it (kept until the digest is checked: a repeat is answered as a repeat)."""

    key: str
    segment_id: str = ""  # as the vehicle named it
    drive_id: str = ""  # as the vehicle named it
    analysis: DriveAnalysis | None = None
    camera: CameraModel | None = None
    refusal: SegmentRefused | None = None


def read_segment(body: bytes, vehicle: str, cfg: Config) -> Segment:
    """Parse and check an upload from ``vehicle`` against the hub's classes, without the store: the part of
    ingesting that hub threads and workers do side by side (:func:`ingest_segment` is the part under the lock)."""
    key = digest(body)
    try:
        payload = parse_payload(body)
    except PayloadError as e:
        return Segment(key, refusal=SegmentRefused(400, f"bad segment: {e}"))
    known = cfg.detect.classes
    for i, hazard in enumerate(payload.hazards):
        if hazard.class_name not in known:
            return Segment(key, refusal=SegmentRefused(
                400, f"bad segment: hazards.{i}.class_name: {hazard.class_name[:40]!r} is not a hazard class this "
                f"hub knows ({', '.join(known)})",
            ))  # fmt: skip
    if payload.signs is not None and not inventory_on(cfg):
        # A hub configured without the sign class still merges the hazards: refusing the segment would lose them.
        log.warning("segment %s of %s: its sign plates set aside, this hub keeps no sign inventory (add %s to "
                    "detect.classes)", payload.segment_id[:80], vehicle, cfg.signs.class_name)  # fmt: skip
        payload = payload.model_copy(update={"signs": None})
    for i, sign in enumerate(payload.signs or []):
        if sign.hazard.class_name != cfg.signs.class_name:
            return Segment(key, refusal=SegmentRefused(
                400, f"bad segment: signs.{i}.hazard.class_name: {sign.hazard.class_name[:40]!r}: this hub keeps "
                f"{cfg.signs.class_name} plates",
            ))  # fmt: skip
    analysis = to_analysis(payload, vehicle)
    return Segment(key, payload.segment_id, payload.record.id, analysis, payload.camera.camera())


def ingest_segment(
    store: HazardStore, vehicle: Vehicle, segment: Segment, merge: MergeSettings, queued: int | None = None
) -> IngestAnswer:
    """Merge one upload from ``vehicle`` (already authenticated and not revoked; ``segment`` read for it by
    :func:`read_segment`) as ``merge`` says (resolved once, when the hub starts: its hold layer is not read again
    per upload); :class:`SegmentRefused` for anything the hub will not merge. On SQLite the caller serialises calls:
    the checks and the merge must not interleave. On PostgreSQL calls run side by side, in one hub process and in
    several: a race with one upload is settled by the merge's own check inside its transaction, and the answer is
    the one a repeat gets."""
    key = segment.key
    known = store.query("SELECT segment_id, vehicle FROM hub_segments WHERE digest = ?", (key,))
    if known:
        segment_id, sender = known[0]
        if sender != vehicle.name:
            raise SegmentRefused(409, "segment already sent by another vehicle")
        return IngestAnswer(200, "already merged", segment_id.removeprefix(f"{vehicle.name}/"))
    if segment.refusal is not None:
        raise segment.refusal
    analysis, camera = segment.analysis, segment.camera
    assert analysis is not None and camera is not None
    # The vehicle's ids under its name: the same id from two vehicles is two drives (trips, segments).
    segment_id = owned_id(vehicle.name, segment.segment_id)
    if store.query("SELECT 1 FROM hub_segments WHERE segment_id = ?", (segment_id,)):
        raise SegmentRefused(409, f"segment {segment.segment_id} replayed with other content")
    record = analysis.record
    if store.query("SELECT 1 FROM drives WHERE id = ? OR content_hash = ?", (record.id, record.content_hash)):
        raise SegmentRefused(409, f"drive {segment.drive_id} (or its content) is already in the store")

    def receipt(conn: sqlite3.Connection, _: MergeReport) -> None:
        conn.execute(
            "INSERT INTO hub_segments (digest, segment_id, vehicle, drive_id, sightings, received_at)"
            " VALUES (?,?,?,?,?,?)",
            (key, segment_id, vehicle.name, record.id, len(analysis.sightings), now_text()),
        )
        drives = conn.execute(
            f"SELECT count(DISTINCT {TRIP}) FROM hub_segments h JOIN drives d ON d.id = h.drive_id WHERE h.vehicle = ?",
            (vehicle.name,),
        )
        conn.execute(
            "UPDATE hub_vehicles SET segments = segments + 1, drives = ?, last_contact_at = ?,"
            " queued = COALESCE(?, queued) WHERE name = ?",
            (drives.fetchone()[0], now_text(), _left(queued), vehicle.name),
        )

    try:
        merged = commit_analysis(store, analysis, merge, camera, receipt)
    except DriveAlreadyStored:  # another hub thread or process (PostgreSQL) merged it since the checks above
        if store.query("SELECT 1 FROM hub_segments WHERE digest = ? AND vehicle = ?", (key, vehicle.name)):
            return IngestAnswer(200, "already merged", segment.segment_id)
        raise SegmentRefused(409, f"drive {segment.drive_id} (or its content) is already in the store") from None
    return IngestAnswer(201, merged.line(), segment.segment_id, merged.sightings)


def note_contact(store: HazardStore, vehicle: Vehicle, queued: int | None = None) -> None:
    """An already-merged segment sent again still counts as contact."""
    with store.transaction() as conn:
        conn.execute(
            "UPDATE hub_vehicles SET last_contact_at = ?, queued = COALESCE(?, queued) WHERE name = ?",
            (now_text(), _left(queued), vehicle.name),
        )


def _left(queued: int | None) -> int | None:
    """Segments still queued once this one is in (the vehicle counts it among its queued)."""
    return None if queued is None else max(0, queued - 1)
