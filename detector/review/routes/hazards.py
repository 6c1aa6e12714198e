"""The map and list: their pages, the hazards (filtered), one hazard's detail, decisions, and the drives."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from detector.export import hazard_rows
from detector.gis_layers import StreetNames
from detector.review.basemap import basemap
from detector.review.deps import Language, MaybeSession, Problem, Reviewer, Settings, SignedIn, StoreOpener
from detector.review.filters import FilterParams
from detector.review.fleet import DRIVE_VEHICLE
from detector.review.i18n import Messages
from detector.review.names import held_words
from detector.review.pages import signed_in_page
from detector.store import HazardStore
from detector.store import review as decisions
from detector.store.streets import street_of
from detector.store.tracks import drive_tracks
from detector.store.values import checked, checked_rows

log = logging.getLogger(__name__)
router = APIRouter()
PRIVATE_FIELDS = ("evidence_path",)  # raw frame paths stay inside the store
PLAIN_ACTIONS = ("confirm", "reject", "mark_repaired", "open_request")


class Decision(BaseModel):
    action: str
    note: str | None = Field(default=None, max_length=2000)
    lat: float | None = None
    lon: float | None = None
    target: int | None = None  # merge: the hazard this one merges into


@router.get("/", include_in_schema=False)
def index(request: Request, session: MaybeSession, messages: Language) -> Response:
    return signed_in_page("index.html", request, session, messages)


@router.get("/hazards/{hazard_id}", include_in_schema=False)
def hazard_page(  # linked from every 106 request
    hazard_id: int, request: Request, session: MaybeSession, messages: Language
) -> Response:
    return signed_in_page("index.html", request, session, messages)


@router.get("/api/hazards")
def hazards(
    _: SignedIn, query: FilterParams, settings: Settings, stores: StoreOpener, messages: Language
) -> dict[str, Any]:
    filt = query.hazard_filter()
    with stores.opened() as store:
        rows = hazard_rows(store, filt, settings.streets, partial(held_words, messages))
    for row in rows:
        for key in PRIVATE_FIELDS:
            row.pop(key, None)
    return {"hazards": rows}


@router.get("/api/hazards/{hazard_id}")
def hazard(_: SignedIn, hazard_id: int, settings: Settings, stores: StoreOpener, messages: Language) -> dict[str, Any]:
    with stores.opened() as store:
        return _detail(store, hazard_id, settings.streets, messages)


@router.post("/api/hazards/{hazard_id}/decision")
def decide(found: Reviewer, hazard_id: int, body: Decision, settings: Settings, stores: StoreOpener) -> dict[str, Any]:
    actor = found.user.name
    with stores.opened() as store:
        outcome = _apply(store, hazard_id, body, actor, settings.decisions)
    log.info("review: %s: %s on hazard #%d", actor, outcome.action, hazard_id)
    return {"hazard_id": outcome.hazard_id, "action": outcome.action, "status": outcome.status}


@router.get("/api/drives")
def drives(_: SignedIn, stores: StoreOpener) -> dict[str, Any]:
    with stores.opened() as store:
        rows = store.query(
            "SELECT d.id, d.started_utc, d.distance_m, COUNT(DISTINCT s.hazard_id) AS hazards,"
            f" {DRIVE_VEHICLE.format(drive='d.id')} AS vehicle FROM drives d"
            " LEFT JOIN sightings s ON s.drive_id = d.id GROUP BY d.id ORDER BY d.started_utc, d.id"
        )
        return {"drives": checked_rows(rows, lambda r: f"drive {r['id']!r}"), "tracks": drive_tracks(store)}


@router.get("/api/basemap")
def city_layers(_: SignedIn, settings: Settings, stores: StoreOpener) -> dict[str, Any]:
    """The city under the map: how to draw it, its streets with their last patrol, and its other layers."""
    streets = settings.streets.features if settings.streets else None
    with stores.opened() as store:
        drawn = basemap(streets, settings.basemap_layers, store)
    return {"map": settings.map_config, **drawn}


def _apply(
    store: HazardStore, hazard_id: int, body: Decision, actor: str, settings: decisions.ReviewSettings
) -> decisions.Outcome:
    """One reviewer's decision, through the store's own decision functions."""
    if body.action == "move":
        if body.lat is None or body.lon is None:
            raise Problem(400, "A move needs the new position.")
        return decisions.move(store, hazard_id, body.lat, body.lon, actor, body.note)
    if body.action == "merge":
        if body.target is None:
            raise Problem(400, "A merge needs the hazard to merge into.")
        return decisions.merge(store, hazard_id, body.target, actor, settings, body.note)
    if body.action in PLAIN_ACTIONS:
        return getattr(decisions, body.action)(store, hazard_id, actor, body.note)
    raise Problem(400, "Unknown action {action}.", action=body.action)


def _detail(store: HazardStore, hazard_id: int, streets: StreetNames | None, messages: Messages) -> dict[str, Any]:
    rows = store.query(
        "SELECT h.*, t.service_code, t.service_request_id, t.status AS request_status, t.opened_at, t.closed_at,"
        " t.status_notes, t.service_notice, t.linked, o.state AS outbox_state, o.attempts, o.last_error FROM hazards h"
        " LEFT JOIN tickets t ON t.hazard_id = h.id LEFT JOIN outbox o ON o.hazard_id = h.id WHERE h.id = ?",
        (hazard_id,),
    )
    if not rows:
        raise Problem(404, "Hazard #{id} does not exist.", id=str(hazard_id))
    found = checked(rows[0], f"hazard #{hazard_id}", drop_unplaced=False)  # its page opens, whatever is wrong
    assert found is not None
    hazard = {k: v for k, v in found.items() if k not in PRIVATE_FIELDS}
    hazard["street"] = street_of(hazard, streets)
    sightings = store.query(
        "SELECT s.id, s.drive_id, s.frame_index, s.utc, s.confidence, s.lat, s.lon, s.range_m, s.uncertainty_m, s.far,"
        f" s.vehicle_lat, s.vehicle_lon, {DRIVE_VEHICLE.format(drive='s.drive_id')} AS vehicle FROM sightings s"
        " WHERE s.hazard_id = ? ORDER BY s.utc",
        (hazard_id,),
    )
    merged = store.query("SELECT id FROM hazards WHERE merged_into = ? ORDER BY id", (hazard_id,))
    # Its history and that of every hazard merged into it, each event naming its hazard.
    events = [
        {**dict(e), "detail": held_words(messages, e["detail"]) if e["action"] == "held" else e["detail"]}
        for e in store.query(
            "SELECT hazard_id, at, actor, action, detail FROM events"
            " WHERE hazard_id = ? OR hazard_id IN (SELECT id FROM hazards WHERE merged_into = ?) ORDER BY id",
            (hazard_id, hazard_id),
        )
    ]
    held = [e["detail"] for e in events if e["action"] == "held" and e["hazard_id"] == hazard_id]
    hazard["held_reason"] = held[-1] if held and hazard["status"] == "candidate" else None
    return {
        "hazard": hazard,
        "sightings": checked_rows(sightings, lambda r: f"sighting #{r['id']}"),
        "events": events,
        "merged_from": [r["id"] for r in merged],
        "photo": f"/api/hazards/{hazard_id}/photo" if rows[0]["evidence_path"] else None,
    }
