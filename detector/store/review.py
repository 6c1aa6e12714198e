"""Reviewers' decisions on hazards, each in one store transaction with an ``events`` row naming who and when.

These are the only writes the review app makes to hazards; they use the pipeline's own store
code (:func:`recompute_hazard` for merges, :func:`queue_request` for the 106 outbox), so a
hazard a reviewer confirms is queued exactly as one the pipeline confirms.

A rejected hazard keeps its sightings and frames: :func:`negative_examples` lists them for
retraining (a false alarm is a labelled negative).
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from typing import Any

from detector.config import Config
from detector.config.pipeline import DedupConfig
from detector.errors import InputError
from detector.store.db import HazardStore, now_text
from detector.store.merge import absorb, log_event, queue_request, recompute_hazard

ACTIONS = ("confirm", "reject", "merge", "move", "open_request", "mark_repaired")


class DecisionError(InputError):
    """A decision that does not apply to the hazard as it is now (e.g. rejecting a merged hazard).

    ``message`` names its values in braces, so that the review app can say it in its user's language.

    >>> str(DecisionError("hazard #{id} does not exist", id=7))
    'hazard #7 does not exist'
    """

    def __init__(self, message: str, **values: Any) -> None:
        super().__init__(None, message.format(**values))
        self.message, self.values = message, values


@dataclass(frozen=True)
class Outcome:
    """What a decision did, for the app's answer and the audit trail."""

    hazard_id: int
    action: str
    status: str
    detail: str


@dataclass(frozen=True)
class ReviewSettings:
    """What merges need to recompute a hazard: the dedup settings and the GPS sigma of the pipeline."""

    dedup: DedupConfig
    gps_sigma_m: float

    @classmethod
    def from_config(cls, cfg: Config) -> ReviewSettings:
        return cls(cfg.dedup, float(cfg.localize.gps_sigma_m))


def _hazard(conn: sqlite3.Connection, hazard_id: int) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM hazards WHERE id = ?", (hazard_id,)).fetchone()
    if row is None:
        raise DecisionError("hazard #{id} does not exist", id=hazard_id)
    return row


def _require(row: sqlite3.Row, allowed: tuple[str, ...], action: str) -> None:
    if row["status"] not in allowed:
        raise DecisionError(
            "hazard #{id} is {status}: cannot {action}",
            id=row["id"],
            status=row["status"],
            action=action.replace("_", " "),
        )


def _set_status(conn: sqlite3.Connection, hazard_id: int, status: str) -> None:
    conn.execute("UPDATE hazards SET status = ?, updated_at = ? WHERE id = ?", (status, now_text(), hazard_id))


def confirm(store: HazardStore, hazard_id: int, actor: str, note: str | None = None) -> Outcome:
    """Confirm a candidate (or a possibly repaired or rejected hazard) and queue its 106 request."""
    with store.transaction() as conn:
        row = _hazard(conn, hazard_id)
        _require(row, ("candidate", "possibly_repaired", "rejected"), "confirm")
        _set_status(conn, hazard_id, "confirmed")
        queued = queue_request(conn, hazard_id)
        detail = log_event(
            conn, hazard_id, actor, "confirm", {"from": row["status"], "request_queued": queued, "note": note}
        )
    return Outcome(hazard_id, "confirm", "confirmed", detail)


def _close(store: HazardStore, hazard_id: int, actor: str, action: str, status: str, note: str | None) -> Outcome:
    """Move an open hazard (candidate, confirmed, possibly repaired) to ``status``, with its audit row."""
    with store.transaction() as conn:
        row = _hazard(conn, hazard_id)
        _require(row, ("candidate", "confirmed", "possibly_repaired"), action)
        _set_status(conn, hazard_id, status)
        detail = log_event(conn, hazard_id, actor, action, {"from": row["status"], "note": note})
    return Outcome(hazard_id, action, status, detail)


def reject(store: HazardStore, hazard_id: int, actor: str, note: str | None = None) -> Outcome:
    """A false alarm: kept with its frames (a negative example), never sent (the sender skips rejected hazards)."""
    return _close(store, hazard_id, actor, "reject", "rejected", note)


def mark_repaired(store: HazardStore, hazard_id: int, actor: str, note: str | None = None) -> Outcome:
    return _close(store, hazard_id, actor, "mark_repaired", "repaired", note)


def move(store: HazardStore, hazard_id: int, lat: float, lon: float, actor: str, note: str | None = None) -> Outcome:
    """Put the hazard where the reviewer says; later sightings no longer move it (``position_locked``)."""
    if not (math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90 and abs(lon) <= 180):
        raise DecisionError("not a position: {lat}, {lon}", lat=lat, lon=lon)
    with store.transaction() as conn:
        row = _hazard(conn, hazard_id)
        _require(row, ("candidate", "confirmed", "possibly_repaired", "rejected", "repaired"), "move")
        conn.execute(
            # its stored street was named where it was: named again from here (detector.store.streets)
            "UPDATE hazards SET lat = ?, lon = ?, position_locked = 1, street = NULL, updated_at = ? WHERE id = ?",
            (lat, lon, now_text(), hazard_id),
        )
        detail = log_event(
            conn, hazard_id, actor, "move", {"from": [row["lat"], row["lon"]], "to": [lat, lon], "note": note}
        )
    return Outcome(hazard_id, "move", row["status"], detail)


def open_request(store: HazardStore, hazard_id: int, actor: str, note: str | None = None) -> Outcome:
    """Open a 106 request now: confirm if needed, queue it, or make a waiting/failed one due at once."""
    with store.transaction() as conn:
        row = _hazard(conn, hazard_id)
        _require(row, ("candidate", "confirmed", "possibly_repaired"), "open a request for")
        queued = conn.execute("SELECT state FROM outbox WHERE hazard_id = ?", (hazard_id,)).fetchone()
        if queued is not None and queued["state"] == "sent":
            raise DecisionError("hazard #{id} already has a 106 request", id=hazard_id)
        if row["status"] != "confirmed":
            _set_status(conn, hazard_id, "confirmed")
        if queued is None:
            queue_request(conn, hazard_id)
        else:  # due now; a failed one is tried again
            conn.execute("UPDATE outbox SET state = 'pending', next_attempt_at = 0 WHERE hazard_id = ?", (hazard_id,))
        detail = log_event(
            conn,
            hazard_id,
            actor,
            "open_request",
            {"from": row["status"], "outbox": queued["state"] if queued else "new", "note": note},
        )
    return Outcome(hazard_id, "open_request", "confirmed", detail)


def merge(
    store: HazardStore, source_id: int, target_id: int, actor: str, settings: ReviewSettings, note: str | None = None
) -> Outcome:
    """Merge ``source`` into ``target``: its sightings and passes move, the target is recomputed from all of them.

    The source keeps its row with status ``merged`` and ``merged_into`` (and hazards merged into
    it earlier now point at the target); its 106 request moves, is cancelled or linked (:func:`absorb`). A target
    confirmed by the extra sightings is queued for its 106 request like any other.
    """
    if source_id == target_id:
        raise DecisionError("cannot merge a hazard into itself")
    with store.transaction() as conn:
        source, target = _hazard(conn, source_id), _hazard(conn, target_id)
        open_ = ("candidate", "confirmed", "possibly_repaired", "repaired")
        _require(source, (*open_, "rejected"), "merge")
        _require(target, open_, "merge into")
        if source["class"] != target["class"]:
            raise DecisionError(
                "hazard #{id} is a {class}, #{target} a {target_class}",
                id=source_id, target=target_id, **{"class": source["class"]}, target_class=target["class"],
            )  # fmt: skip
        (moved,) = conn.execute("SELECT COUNT(*) FROM sightings WHERE hazard_id = ?", (source_id,)).fetchone()
        request = absorb(conn, source_id, target_id)
        queued = False
        if moved and recompute_hazard(conn, target_id, settings.dedup, settings.gps_sigma_m):
            queued = queue_request(conn, target_id)
        status = conn.execute("SELECT status FROM hazards WHERE id = ?", (target_id,)).fetchone()["status"]
        info = {
            "source": source_id, "target": target_id, "sightings_moved": moved, "request_queued": queued,
            "request": request,
        }  # fmt: skip
        log_event(conn, source_id, actor, "merge", {**info, "note": note})
        detail = log_event(conn, target_id, actor, "merge", {**info, "note": note})
    return Outcome(target_id, "merge", status, detail)


def negative_examples(store: HazardStore) -> list[dict[str, Any]]:
    """Every sighting of a rejected hazard: frame (under the evidence folder), box and class, for retraining."""
    rows = store.query(
        "SELECT h.id AS hazard_id, s.class, s.drive_id, s.frame_index, s.evidence_path AS frame,"
        " s.x1, s.y1, s.x2, s.y2, s.confidence FROM sightings s JOIN hazards h ON h.id = s.hazard_id"
        " WHERE h.status = 'rejected' ORDER BY h.id, s.utc"
    )
    return [dict(r) for r in rows]
