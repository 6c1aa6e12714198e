"""The hub's web service (FastAPI): vehicles upload finished segments; the review app is mounted beside it.

``POST /api/v1/segments`` with ``Authorization: Bearer <token>`` and a segment (:mod:`detector.hub.payload`):
201 merged, 200 already merged; 400 a bad segment, 401 unknown token, 403 revoked vehicle, 409 a clash (a drive
of another vehicle, a segment replayed with other content), 413 too large: the vehicle gives up on that segment.
503 the store is busy: it tries again later. Every refusal is one line in the hub's log; the token never is.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from detector.config import Config
from detector.errors import InputError
from detector.hub.ingest import SegmentRefused, ingest_segment, note_contact
from detector.hub.payload import QUEUED_HEADER
from detector.hub.vehicles import vehicle_for_token
from detector.store import HazardStore

log = logging.getLogger("detector.hub")


@dataclass(frozen=True)
class HubSettings:
    db: Path
    cfg: Config
    on_merged: Callable[[], None] | None = None  # the ticket sender's wake


def _answer(status: int, detail: str, **extra) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status)


def _queued(request: Request) -> int | None:
    """What the vehicle says it still has queued; None when it says nothing readable."""
    value = request.headers.get(QUEUED_HEADER, "")
    return int(value) if value.isdigit() and len(value) <= 9 else None


def create_hub_app(settings: HubSettings, review: FastAPI | None = None) -> FastAPI:
    """The hub over the central store at ``settings.db``; ``review`` (the review app) is mounted at ``/``."""
    app = FastAPI(title="Road hazards hub", docs_url=None, redoc_url=None, openapi_url=None)
    writer = threading.Lock()  # one segment at a time: its checks and its merge must not interleave with another's
    limit = int(settings.cfg.hub.max_segment_mb * 1e6)
    lock_timeout_s = settings.cfg.store.lock_timeout_s

    def store() -> HazardStore:
        return HazardStore(settings.db, lock_timeout_s)

    def ingest(token: str, body: bytes, client: str, queued: int | None) -> JSONResponse:
        with writer, store() as central:
            vehicle = vehicle_for_token(central, token)
            if vehicle is None:
                log.warning("hub: refused an upload from %s: unknown token (401)", client)
                return _answer(401, "unknown vehicle token")
            if vehicle.revoked_at:
                log.warning("hub: refused an upload from vehicle %s: revoked (403)", vehicle.name)
                return _answer(403, f"vehicle {vehicle.name} is revoked")
            try:
                answer = ingest_segment(central, vehicle, body, settings.cfg, queued)
            except SegmentRefused as e:
                log.warning("hub: refused a segment from vehicle %s: %s (%d)", vehicle.name, e, e.status)
                return _answer(e.status, str(e))
            if answer.status == 200:
                note_contact(central, vehicle, queued)
        log.info("hub: %s from %s: %s", answer.segment_id, vehicle.name, answer.detail)
        if answer.status == 201 and settings.on_merged:
            settings.on_merged()
        return _answer(answer.status, answer.detail, segment_id=answer.segment_id, sightings=answer.sightings)

    @app.post("/api/v1/segments")
    async def upload_segment(request: Request) -> JSONResponse:
        client = request.client.host if request.client else "?"
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            log.warning("hub: refused an upload from %s: no bearer token (401)", client)
            return _answer(401, "needs Authorization: Bearer <vehicle token>")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            log.warning("hub: refused an upload from %s: %s bytes, over hub.max_segment_mb (413)", client, declared)
            return _answer(413, f"segment over {settings.cfg.hub.max_segment_mb:g} MB")
        body = await request.body()
        if len(body) > limit:
            log.warning("hub: refused an upload from %s: %d bytes, over hub.max_segment_mb (413)", client, len(body))
            return _answer(413, f"segment over {settings.cfg.hub.max_segment_mb:g} MB")
        try:
            return await run_in_threadpool(ingest, token.strip(), body, client, _queued(request))
        except InputError as e:  # the store locked for longer than its timeout, a full disk: try again later
            log.error("hub: segment not merged, the vehicle will retry: %s", e)
            return _answer(503, "the central store is busy; try again later")

    @app.get("/api/v1/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    if review is not None:
        app.mount("/", review)
    return app
