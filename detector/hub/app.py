"""The hub's web service (FastAPI): vehicles upload finished segments; the review app is mounted beside it.

``POST /api/v1/segments`` with ``Authorization: Bearer <token>`` and a segment (:mod:`detector.hub.payload`):
201 merged, 200 already merged; 400 a bad segment, 409 a clash (its content already in the store, a segment
replayed with other content), 413 too large: the vehicle gives up on that segment. 401 unknown token, 403 revoked
vehicle, 408 a body that did not arrive within ``hub.body_timeout_s``, 503 the store is busy: it tries again
later. The token is checked before the body is read, and the body is read only up to ``hub.max_segment_mb``.
Every refusal is one line in the hub's log; the token never is.
"""

from __future__ import annotations

import asyncio
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
from detector.holds import load_holds
from detector.hub.ingest import SegmentRefused, ingest_segment, note_contact, read_segment
from detector.hub.payload import QUEUED_HEADER
from detector.hub.vehicles import Vehicle, vehicle_for_token
from detector.pipeline.analysis import merge_settings
from detector.store import HazardStore
from detector.store.db import is_postgres

log = logging.getLogger("detector.hub")
MERGES_PER_WORKER = 2  # PostgreSQL: segments one hub process merges at once


@dataclass(frozen=True)
class HubSettings:
    db: Path
    cfg: Config
    on_merged: Callable[[], None] | None = None  # the ticket sender's wake


def _answer(status: int, detail: str, **extra) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status)


def _closing(answer: JSONResponse) -> JSONResponse:
    """An answer before the body was read whole: the connection is closed after it, not kept reading the rest."""
    answer.headers["connection"] = "close"
    return answer


def _queued(request: Request) -> int | None:
    """What the vehicle says it still has queued; None when it says nothing readable."""
    value = request.headers.get(QUEUED_HEADER, "")
    return int(value) if value.isdigit() and len(value) <= 9 else None


class _TooLarge(Exception):
    """The body passed the hub's limit while it was read."""


async def _capped_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The request's body, read as it streams in: :class:`_TooLarge` as soon as it passes ``limit`` bytes,
    TimeoutError if it has not all arrived within ``timeout_s``."""
    chunks, size = [], 0
    async with asyncio.timeout(timeout_s):
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)
    return b"".join(chunks)


def create_hub_app(settings: HubSettings, review: FastAPI | None = None) -> FastAPI:
    """The hub over the central store at ``settings.db``; ``review`` (the review app) is mounted at ``/``."""
    app = FastAPI(title="Road hazards hub", docs_url=None, redoc_url=None, openapi_url=None)
    # SQLite: one segment at a time, its checks and its merge must not interleave with another's. PostgreSQL: the
    # merge's transaction settles races (as between hub processes); a second merge per process overlaps one
    # waiting on the database, more would only wait on the area's lock or the connection pool.
    writer = threading.BoundedSemaphore(MERGES_PER_WORKER if is_postgres(settings.db) else 1)
    limit = int(settings.cfg.hub.max_segment_mb * 1e6)
    merge = merge_settings(settings.cfg, load_holds(settings.cfg))  # the hold layer read once, a bad one before serving
    lock_timeout_s = settings.cfg.store.lock_timeout_s

    def store() -> HazardStore:
        return HazardStore(settings.db, lock_timeout_s)

    def authorised(central: HazardStore, token: str, client: str) -> Vehicle | JSONResponse:
        """The vehicle with ``token``, or the refusal to answer."""
        vehicle = vehicle_for_token(central, token)
        if vehicle is None:
            log.warning("hub: refused an upload from %s: unknown token (401)", client)
            return _answer(401, "unknown vehicle token")
        if vehicle.revoked_at:
            log.warning("hub: refused an upload from vehicle %s: revoked (403)", vehicle.name)
            return _answer(403, f"vehicle {vehicle.name} is revoked")
        return vehicle

    def ingest(token: str, vehicle_name: str, body: bytes, client: str, queued: int | None) -> JSONResponse:
        segment = read_segment(body, vehicle_name, settings.cfg)  # parsed outside the lock: uploads overlap here
        with writer, store() as central:
            vehicle = authorised(central, token, client)  # again: it may have been revoked while its body arrived
            if isinstance(vehicle, JSONResponse):
                return vehicle
            try:
                answer = ingest_segment(central, vehicle, segment, merge, queued)
            except SegmentRefused as e:
                log.warning("hub: refused a segment from vehicle %s: %s (%d)", vehicle.name, e, e.status)
                return _answer(e.status, str(e))
            if answer.status == 200:
                note_contact(central, vehicle, queued)
        log.info("hub: %s from %s: %s", answer.segment_id, vehicle.name, answer.detail)
        if answer.status == 201 and settings.on_merged:
            settings.on_merged()
        return _answer(answer.status, answer.detail, segment_id=answer.segment_id, sightings=answer.sightings)

    def check_token(token: str, client: str) -> Vehicle | JSONResponse:
        with store() as central:
            return authorised(central, token, client)

    def too_large(who: str, size: str) -> JSONResponse:
        log.warning("hub: refused an upload from %s: %s bytes, over hub.max_segment_mb (413)", who, size)
        return _closing(_answer(413, f"segment over {settings.cfg.hub.max_segment_mb:g} MB"))

    @app.post("/api/v1/segments")
    async def upload_segment(request: Request) -> JSONResponse:
        client = request.client.host if request.client else "?"
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            log.warning("hub: refused an upload from %s: no bearer token (401)", client)
            return _closing(_answer(401, "needs Authorization: Bearer <vehicle token>"))
        try:  # the token before the body: nobody without one makes the hub read (or hold) an upload
            vehicle = await run_in_threadpool(check_token, token, client)
            if isinstance(vehicle, JSONResponse):
                return _closing(vehicle)
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                return too_large(f"vehicle {vehicle.name}", declared)
            try:
                body = await _capped_body(request, limit, settings.cfg.hub.body_timeout_s)
            except _TooLarge:
                return too_large(f"vehicle {vehicle.name}", f"over {limit}")
            except TimeoutError:
                log.warning("hub: refused an upload from vehicle %s: body too slow (408)", vehicle.name)
                return _closing(_answer(408, f"segment not received within {settings.cfg.hub.body_timeout_s:g} s"))
            return await run_in_threadpool(ingest, token, vehicle.name, body, client, _queued(request))
        except InputError as e:  # the store locked for longer than its timeout, a full disk: try again later
            log.error("hub: segment not merged, the vehicle will retry: %s", e)
            return _answer(503, "the central store is busy; try again later")

    @app.get("/api/v1/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    if review is not None:
        app.mount("/", review)
    return app
