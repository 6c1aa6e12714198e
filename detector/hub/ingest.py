"""One segment upload into the central store: checked whole, then merged as ``detector batch`` merges a drive.

The receipt (the segment's digest, the sending vehicle's counters) is written in the same transaction as the
merge, so a segment is either merged and recorded or neither: a retry after a lost answer is recognised by its
digest and answered "already merged". Every refusal leaves the store as it was.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass

from detector.config import Config
from detector.hub.payload import PayloadError, digest, owned_id, parse_payload, to_analysis
from detector.hub.vehicles import Vehicle
from detector.pipeline.analysis import commit_analysis
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


def ingest_segment(
    store: HazardStore, vehicle: Vehicle, body: bytes, cfg: Config, merge: MergeSettings, queued: int | None = None
) -> IngestAnswer:
    """Merge one upload from ``vehicle`` (already authenticated and not revoked) as ``merge`` says (resolved once,
    when the hub starts: its hold layer is not read again per upload); :class:`SegmentRefused` for anything the
    hub will not merge. The caller serialises calls: the checks and the merge must not interleave.
    Several hub processes on one PostgreSQL store may still race with one upload: the merge's own check inside
    its transaction finds the other's, and the answer is the one a repeat gets."""
    key = digest(body)
    known = store.query("SELECT segment_id, vehicle FROM hub_segments WHERE digest = ?", (key,))
    if known:
        segment_id, sender = known[0]
        if sender != vehicle.name:
            raise SegmentRefused(409, "segment already sent by another vehicle")
        return IngestAnswer(200, "already merged", segment_id.removeprefix(f"{vehicle.name}/"))
    try:
        payload = parse_payload(body)
    except PayloadError as e:
        raise SegmentRefused(400, f"bad segment: {e}") from None
    known = cfg.detect.classes
    for i, hazard in enumerate(payload.hazards):
        if hazard.class_name not in known:
            raise SegmentRefused(
                400, f"bad segment: hazards.{i}.class_name: {hazard.class_name[:40]!r} is not a hazard class this hub "
                f"knows ({', '.join(known)})",
            )  # fmt: skip
    if payload.signs is not None and not inventory_on(cfg):
        # A hub configured without the sign class still merges the hazards: refusing the segment would lose them.
        log.warning("segment %s of %s: its sign plates set aside, this hub keeps no sign inventory (add %s to "
                    "detect.classes)", payload.segment_id[:80], vehicle.name, cfg.signs.class_name)  # fmt: skip
        payload = payload.model_copy(update={"signs": None})
    for i, sign in enumerate(payload.signs or []):
        if sign.hazard.class_name != cfg.signs.class_name:
            raise SegmentRefused(
                400, f"bad segment: signs.{i}.hazard.class_name: {sign.hazard.class_name[:40]!r}: this hub keeps "
                f"{cfg.signs.class_name} plates",
            )  # fmt: skip
    # The vehicle's ids under its name: the same id from two vehicles is two drives (trips, segments).
    segment_id = owned_id(vehicle.name, payload.segment_id)
    if store.query("SELECT 1 FROM hub_segments WHERE segment_id = ?", (segment_id,)):
        raise SegmentRefused(409, f"segment {payload.segment_id} replayed with other content")
    analysis = to_analysis(payload, vehicle.name)
    record = analysis.record
    if store.query("SELECT 1 FROM drives WHERE id = ? OR content_hash = ?", (record.id, record.content_hash)):
        raise SegmentRefused(409, f"drive {payload.record.id} (or its content) is already in the store")

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
        merged = commit_analysis(store, analysis, merge, payload.camera.camera(), receipt)
    except DriveAlreadyStored:  # another hub process (PostgreSQL) merged it since the checks above
        if store.query("SELECT 1 FROM hub_segments WHERE digest = ? AND vehicle = ?", (key, vehicle.name)):
            return IngestAnswer(200, "already merged", payload.segment_id)
        raise SegmentRefused(409, f"drive {payload.record.id} (or its content) is already in the store") from None
    return IngestAnswer(201, merged.line(), payload.segment_id, merged.sightings)


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
