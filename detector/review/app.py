"""The review web app (FastAPI): map and list, evidence, decisions, dashboard, exports, and the public map.

Every request opens the store for its own duration (SQLite connections stay in one thread; WAL
lets the pipeline write meanwhile). Pages need a signed-in user except ``/public`` and the
blurred photo a 106 request links to; decisions need a reviewer and the session's CSRF token.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from math import ceil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from detector.errors import ConfigError, InputError
from detector.export import (
    FORMATS,
    STATUSES,
    HazardFilter,
    check_layers,
    check_statuses,
    export_layers,
    hazard_rows,
    parse_since,
    write_layers,
)
from detector.features import StreetNames
from detector.review import auth
from detector.review.dashboard import Neighbourhoods, dashboard
from detector.review.photos import Photos, resolve_evidence
from detector.review.public import public_hazards
from detector.store import HazardStore
from detector.store import review as decisions
from detector.store.db import store_path
from detector.store.tracks import drive_tracks
from detector.tickets.evidence import EvidenceSettings

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "review_session"
PHOTO_NAME = re.compile(r"^tickets/hazard_(\d+)\.jpe?g$")
PRIVATE_FIELDS = ("evidence_path",)  # raw frame paths stay inside the store
Classes = Annotated[list[str] | None, Query(alias="class")]  # repeatable filters: ?class=a&class=b
Statuses = Annotated[list[str] | None, Query()]


@dataclass(frozen=True)
class AppSettings:
    """What the app needs from the config (the ``review`` section and a few others), checked at start."""

    db: Path
    lock_timeout_s: float
    tile_url: str | None
    tile_attribution: str
    session_lifetime_s: float
    secure_cookie: bool
    timezone: str
    classes: tuple[str, ...]
    neighbourhoods: Neighbourhoods | None
    streets: StreetNames | None
    decisions: decisions.ReviewSettings
    evidence: EvidenceSettings
    sign_in_limit: int = 5
    sign_in_window_s: float = 900.0
    sign_in_name_wait_max_s: float = 60.0
    trusted_proxies: tuple[str, ...] = ()  # whose X-Forwarded-For names the client (review.trusted_proxies)

    @classmethod
    def from_config(cls, cfg: dict[str, Any], db: Path | None = None) -> AppSettings:
        section = cfg["review"]
        path = store_path(cfg, db)
        if not path.is_file():
            raise InputError(path, "no hazard store here (run a drive first, or give --db)")
        layer = section.get("neighbourhoods")
        for key in ("session_hours", "sign_in_failures", "sign_in_window_min", "sign_in_name_wait_max_s"):
            if section[key] <= 0:
                raise InputError(None, f"config key 'review.{key}' must be positive")
        return cls(
            db=path,
            lock_timeout_s=float(cfg["store"]["lock_timeout_s"]),
            tile_url=section.get("tile_url") or None,
            tile_attribution=str(section.get("tile_attribution") or ""),
            session_lifetime_s=float(section["session_hours"]) * 3600,
            secure_cookie=bool(section["secure_cookie"]),
            timezone=str(cfg["tickets"]["timezone"]),
            classes=tuple(cfg["detect"]["classes"]),
            neighbourhoods=Neighbourhoods.load(layer, section["neighbourhood_name"]) if layer else None,
            streets=StreetNames.load(cfg["streets"]),
            decisions=decisions.ReviewSettings.from_config(cfg),
            evidence=EvidenceSettings.from_config(cfg["tickets"]["evidence"]),
            sign_in_limit=int(section["sign_in_failures"]),
            sign_in_window_s=float(section["sign_in_window_min"]) * 60,
            sign_in_name_wait_max_s=float(section["sign_in_name_wait_max_s"]),
            trusted_proxies=_proxies(section["trusted_proxies"]),
        )


def _proxies(value: list[Any]) -> tuple[str, ...]:
    for entry in value:
        try:
            ipaddress.ip_network(str(entry), strict=False)
        except ValueError:
            raise ConfigError("review.trusted_proxies", f"{entry!r} is not an IP address or network") from None
    return tuple(str(entry) for entry in value)


def server_config(settings: AppSettings, log_level: str = "info") -> uvicorn.Config:
    """How uvicorn serves the app. ``X-Forwarded-For`` names the client only on connections from
    ``trusted_proxies``: uvicorn by default believes it from loopback, from where anyone on the machine could
    set it and sign in as many addresses (the sign-in limit per address would then limit nobody)."""
    import uvicorn

    proxies = list(settings.trusted_proxies)
    return uvicorn.Config(
        create_app(settings), log_level=log_level, access_log=False,
        proxy_headers=bool(proxies), forwarded_allow_ips=proxies or None,
    )  # fmt: skip


class Login(BaseModel):
    name: str = Field(max_length=64)
    password: str = Field(max_length=auth.MAX_PASSWORD)


class Decision(BaseModel):
    action: str
    note: str | None = Field(default=None, max_length=2000)
    lat: float | None = None
    lon: float | None = None
    target: int | None = None  # merge: the hazard this one merges into


def _csp(tile_url: str | None) -> str:
    images = "'self' data:"
    if tile_url:  # the basemap's own server, with a {s} subdomain as a wildcard
        parts = urlsplit(tile_url.replace("{s}", "x"))
        host = parts.netloc.replace("x.", "*.", 1) if "{s}." in tile_url else parts.netloc
        images += f" {parts.scheme}://{host}"
    return (
        f"default-src 'self'; img-src {images}; style-src 'self' 'unsafe-inline'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )


def _day(text: str | None, end: bool) -> float | None:
    """A date (or time) from a filter; the end of a date range includes its whole day."""
    if not text:
        return None
    value = parse_since(text)
    return value + timedelta(days=1).total_seconds() if end and len(text) == 10 else value


@dataclass(frozen=True)
class FilterQuery:
    """The list's filters as the query string gives them (shared by the list and its exports)."""

    cls: list[str] | None
    status: list[str] | None
    min_confidence: float | None
    since: str | None
    until: str | None
    drive: str | None

    def hazard_filter(self) -> HazardFilter:
        """Checked and converted; call after the sign-in check, so a stranger gets 401, not a 400."""
        return HazardFilter(
            status=check_statuses([s for s in self.status or [] if s]),
            since=_day(self.since, end=False),
            until=_day(self.until, end=True),
            classes=tuple(c for c in self.cls or [] if c),
            min_confidence=self.min_confidence,
            drive=self.drive or None,
        )


def _filter_query(
    cls: Classes = None,
    status: Statuses = None,
    min_confidence: float | None = None,
    since: str | None = None,
    until: str | None = None,
    drive: str | None = None,
) -> FilterQuery:
    return FilterQuery(cls, status, min_confidence, since, until, drive)


FilterParams = Annotated[FilterQuery, Depends(_filter_query)]


def create_app(settings: AppSettings) -> FastAPI:
    """The app over the store at ``settings.db``."""
    app = FastAPI(title="Road hazards review", docs_url=None, redoc_url=None, openapi_url=None)
    photos = Photos(settings.evidence)
    throttle = auth.SignInThrottle(settings.sign_in_limit, settings.sign_in_window_s, settings.sign_in_name_wait_max_s)
    csp = _csp(settings.tile_url)

    @contextmanager
    def opened() -> Iterator[HazardStore]:
        store = HazardStore(settings.db, settings.lock_timeout_s)
        try:
            yield store
        finally:
            store.close()

    def session(request: Request) -> auth.Session | None:
        with opened() as store:
            return auth.find_session(store, request.cookies.get(COOKIE))

    def signed_in(request: Request) -> auth.Session:
        found = session(request)
        if found is None:
            raise HTTPException(401, "sign in first")
        return found

    def deciding(request: Request) -> auth.Session:
        """A state-changing request: signed in, with the session's CSRF token; decisions need a reviewer."""
        found = signed_in(request)
        if not auth.csrf_ok(found, request.headers.get("x-csrf-token")):
            raise HTTPException(403, "missing or wrong CSRF token")
        return found

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = csp
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(decisions.DecisionError)
    async def decision_error(request: Request, e: decisions.DecisionError) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=409)

    @app.exception_handler(InputError)
    async def input_error(request: Request, e: InputError) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=400)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def page(name: str, request: Request, public: bool = False) -> Response:
        if not public and session(request) is None:
            return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
        return FileResponse(STATIC / name, media_type="text/html")

    @app.get("/", include_in_schema=False)
    def index(request: Request) -> Response:
        return page("index.html", request)

    @app.get("/hazards/{hazard_id}", include_in_schema=False)
    def hazard_page(hazard_id: int, request: Request) -> Response:  # the link in every 106 request
        return page("index.html", request)

    @app.get("/dashboard", include_in_schema=False)
    def dashboard_page(request: Request) -> Response:
        return page("dashboard.html", request)

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request) -> Response:
        return page("login.html", request, public=True)

    @app.get("/public", include_in_schema=False)
    def public_page(request: Request) -> Response:
        return page("public.html", request, public=True)

    @app.post("/api/login")
    def login(body: Login, request: Request) -> JSONResponse:
        address = request.client.host if request.client else "?"
        wait = throttle.wait_s(address, body.name)
        if wait > 0:  # refused before the password is even checked: no guessing through the wait
            log.warning(
                "review: sign-in for %r from %s refused for %.0f s (too many failures)", body.name, address, wait
            )
            raise HTTPException(429, "too many failed sign-ins; try again later", {"Retry-After": str(ceil(wait))})
        with opened() as store:
            user = auth.authenticate(store, body.name, body.password)
            if user is None:
                throttle.failed(address, body.name)
                log.warning("review: failed sign-in for %r from %s", body.name, address)
                raise HTTPException(401, "wrong name or password")
            token, new = auth.open_session(store, user, settings.session_lifetime_s)
        log.info("review: %s (%s) signed in", user.name, user.role)
        response = JSONResponse({"name": user.name, "role": user.role, "csrf": new.csrf})
        response.set_cookie(
            COOKIE, token, max_age=int(settings.session_lifetime_s), httponly=True, samesite="strict",
            secure=settings.secure_cookie, path="/",
        )  # fmt: skip
        return response

    @app.post("/api/logout")
    def logout(request: Request) -> JSONResponse:
        deciding(request)
        with opened() as store:
            auth.close_session(store, request.cookies.get(COOKIE))
        response = JSONResponse({"ok": True})
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.get("/api/me")
    def me(request: Request) -> dict[str, Any]:
        found = signed_in(request)
        return {
            "name": found.user.name,
            "role": found.user.role,
            "csrf": found.csrf,
            "map": {"tile_url": settings.tile_url, "attribution": settings.tile_attribution},
            "classes": list(settings.classes),
            "statuses": list(STATUSES),
        }

    @app.get("/api/hazards")
    def hazards(request: Request, query: FilterParams) -> dict[str, Any]:
        signed_in(request)
        filt = query.hazard_filter()
        with opened() as store:
            rows = hazard_rows(store, filt, settings.streets)
        for row in rows:
            for key in PRIVATE_FIELDS:
                row.pop(key, None)
        return {"hazards": rows}

    @app.get("/api/export")
    def export(request: Request, format: str, query: FilterParams) -> Response:
        signed_in(request)
        if format not in FORMATS:
            raise HTTPException(400, "format: geojson, gpkg or csv")
        filt = query.hazard_filter()
        with opened() as store:
            layers = export_layers(store, filt, check_layers(None, format), settings.streets)
        with tempfile.TemporaryDirectory(prefix="review-export-") as folder:
            path = Path(folder) / f"hazards.{format}"
            write_layers(layers, path, format)
            data = path.read_bytes()
        media = {"geojson": "application/geo+json", "gpkg": "application/geopackage+sqlite3", "csv": "text/csv"}
        return Response(
            data, media_type=media[format], headers={"Content-Disposition": f'attachment; filename="hazards.{format}"'}
        )

    @app.get("/api/negatives")
    def negatives(request: Request) -> dict[str, Any]:
        """Rejected hazards' sightings (frame path under the evidence folder, box): negatives for retraining."""
        signed_in(request)
        with opened() as store:
            return {"evidence_dir": store.evidence_dir.name, "examples": decisions.negative_examples(store)}

    @app.get("/api/hazards/{hazard_id}")
    def hazard(hazard_id: int, request: Request) -> dict[str, Any]:
        signed_in(request)
        with opened() as store:
            return _detail(store, hazard_id, settings.streets)

    @app.get("/api/hazards/{hazard_id}/photo")
    def photo(hazard_id: int, request: Request) -> Response:
        signed_in(request)
        with opened() as store:
            path = photos.for_hazard(store, hazard_id)
        if path is None:
            raise HTTPException(404, "no evidence photo for this hazard")
        return FileResponse(path, media_type="image/jpeg")

    @app.get("/evidence/{relative:path}")
    def evidence(relative: str, request: Request) -> Response:
        """A blurred photo under the evidence folder: for signed-in users, or linked from a sent 106 request."""
        with opened() as store:
            path = resolve_evidence(store.evidence_dir, relative)
            if path is None:
                raise HTTPException(404, "not found")
            if session(request) is None:
                match = PHOTO_NAME.match(path.relative_to(store.evidence_dir.resolve()).as_posix())
                if not match or not store.query("SELECT 1 FROM tickets WHERE hazard_id = ?", (int(match[1]),)):
                    raise HTTPException(404, "not found")
        return FileResponse(path, media_type="image/jpeg")

    @app.post("/api/hazards/{hazard_id}/decision")
    def decide(hazard_id: int, body: Decision, request: Request) -> dict[str, Any]:
        found = deciding(request)
        if not found.user.can_decide:
            raise HTTPException(403, f"{found.user.name} is a viewer: decisions need a reviewer")
        actor = found.user.name
        with opened() as store:
            if body.action == "move":
                if body.lat is None or body.lon is None:
                    raise HTTPException(400, "move needs lat and lon")
                outcome = decisions.move(store, hazard_id, body.lat, body.lon, actor, body.note)
            elif body.action == "merge":
                if body.target is None:
                    raise HTTPException(400, "merge needs the target hazard")
                outcome = decisions.merge(store, hazard_id, body.target, actor, settings.decisions, body.note)
            elif body.action in ("confirm", "reject", "mark_repaired", "open_request"):
                outcome = getattr(decisions, body.action)(store, hazard_id, actor, body.note)
            else:
                raise HTTPException(400, f"unknown action {body.action!r}")
        log.info("review: %s: %s on hazard #%d", actor, outcome.action, hazard_id)
        return {"hazard_id": outcome.hazard_id, "action": outcome.action, "status": outcome.status}

    @app.get("/api/drives")
    def drives(request: Request) -> dict[str, Any]:
        signed_in(request)
        with opened() as store:
            rows = store.query(
                "SELECT d.id, d.started_utc, d.distance_m, COUNT(DISTINCT s.hazard_id) AS hazards FROM drives d"
                " LEFT JOIN sightings s ON s.drive_id = d.id GROUP BY d.id ORDER BY d.started_utc, d.id"
            )
            return {"drives": [dict(r) for r in rows], "tracks": drive_tracks(store)}

    @app.get("/api/dashboard")
    def dashboard_data(request: Request) -> dict[str, Any]:
        signed_in(request)
        with opened() as store:
            return dashboard(store, settings.timezone, settings.neighbourhoods)

    @app.get("/api/public/hazards")
    def public_data() -> dict[str, Any]:
        with opened() as store:
            data = public_hazards(store)
            tracks = drive_tracks(store)
        # The streets driven, without drive names or times, draw the map when there is no basemap.
        data["streets"] = [f["geometry"] for f in tracks["features"]]
        data["map"] = {"tile_url": settings.tile_url, "attribution": settings.tile_attribution}
        return data

    return app


def _detail(store: HazardStore, hazard_id: int, streets: StreetNames | None) -> dict[str, Any]:
    rows = store.query(
        "SELECT h.*, t.service_code, t.service_request_id, t.status AS request_status, t.opened_at, t.closed_at,"
        " t.status_notes, t.service_notice, t.linked, o.state AS outbox_state, o.attempts, o.last_error FROM hazards h"
        " LEFT JOIN tickets t ON t.hazard_id = h.id LEFT JOIN outbox o ON o.hazard_id = h.id WHERE h.id = ?",
        (hazard_id,),
    )
    if not rows:
        raise HTTPException(404, f"hazard #{hazard_id} does not exist")
    hazard = {k: v for k, v in dict(rows[0]).items() if k not in PRIVATE_FIELDS}
    hazard["street"] = streets.name(hazard["lat"], hazard["lon"]) if streets else None
    sightings = store.query(
        "SELECT id, drive_id, frame_index, utc, confidence, lat, lon, range_m, uncertainty_m, far, vehicle_lat,"
        " vehicle_lon FROM sightings WHERE hazard_id = ? ORDER BY utc",
        (hazard_id,),
    )
    events = store.query("SELECT at, actor, action, detail FROM events WHERE hazard_id = ? ORDER BY id", (hazard_id,))
    merged = store.query("SELECT id FROM hazards WHERE merged_into = ? ORDER BY id", (hazard_id,))
    return {
        "hazard": hazard,
        "sightings": [dict(r) for r in sightings],
        "events": [dict(r) for r in events],
        "merged_from": [r["id"] for r in merged],
        "photo": f"/api/hazards/{hazard_id}/photo" if rows[0]["evidence_path"] else None,
    }
