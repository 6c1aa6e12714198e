"""The hotline's GeoReport v2 app: routes, parameters and errors over its own request file.

A demo and development server (and the tests' hotline); any GeoReport v2 client works against it.

- ``GET services.{json,xml}``, ``GET services/{code}.{json,xml}`` (attribute definitions),
  ``POST requests.{json,xml}`` (form-encoded; ``api_key`` checked against the comma-separated
  keys in ``OPEN311_API_KEYS``), ``GET requests.{json,xml}`` (``service_request_id``,
  ``service_code``, ``status``, ``start_date``/``end_date``, and the ``lat``/``long``/``radius``
  extension in metres), ``GET requests/{id}.{json,xml}``, ``GET tokens/{token}.{json,xml}``.
- Errors as GeoReport's array of ``{code, description}`` (``<errors><error>`` in XML). A body whose
  ``Content-Length`` is not a number of bytes is a 400, one that stops short of it a 408 once the
  client has been silent for ``read_timeout_s`` (as is any connection that silent), and either closes
  the connection. A request that trickles in, however often its bytes come, is cut off too: its head
  must arrive within ``head_timeout_s``, all of it within ``request_timeout_s``
  (:mod:`hotline106.protocol`).
- Each request, in the POST answer and as listed, carries its service's ``service_notice``
  (:data:`hotline106.services.NOTICES`).
- ``--mode realtime`` answers a POST with ``service_request_id``; ``--mode token`` with a
  ``token`` whose request id (and the request itself) appears ``--token-delay`` seconds later.
- ``POST admin/requests/{id}/close.{json,xml}`` (``api_key``, ``status_notes``) closes a request,
  as a clerk would; it is not part of GeoReport.
- ``--post-delay`` and ``--fail-posts``: faults injected on purpose (:mod:`hotline106.faults`).

Requests live in the server's own SQLite file (:mod:`hotline106.requests_db`). Built on FastAPI and uvicorn
(h11), like the review app; :mod:`hotline106.server` serves it.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import re
import sqlite3
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from detector.config.tools import ServerConfig
from hotline106.answers import CLOSE, FORMATS, HttpError, answer, errors
from hotline106.faults import Faults
from hotline106.requests_db import NewRequest, RequestDb, Search
from hotline106.services import AGENCY, DEFINITIONS, NOTICES, SERVICE_CODES, SERVICES, checked_attributes, request_view

log = logging.getLogger(__name__)

MAX_DESCRIPTION = 4000
MAX_BODY = 1 << 20
DEFAULT_SPAN_S = 90 * 86400  # GeoReport's default search window
MAX_RESULTS = 1000


def _parse_date(name: str, text: str) -> float:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise HttpError(400, f"{name} is not an ISO 8601 date-time: {text!r}") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _number(name: str, text: str | None, low: float, high: float) -> float:
    try:
        value = float(text or "")
    except ValueError:
        raise HttpError(400, f"{name} must be a number") from None
    if not (low <= value <= high) or math.isnan(value):
        raise HttpError(400, f"{name} must be between {low:g} and {high:g}")
    return value


def _metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine): plenty for a search radius."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6371008.8 * math.asin(math.sqrt(a))


class Hotline:
    """What the routes share: the settings, the accepted keys, the database and the faults to inject."""

    def __init__(self, settings: ServerConfig, keys: list[str], db: RequestDb) -> None:
        self.settings, self.keys, self.db = settings, keys, db
        self.faults = Faults(settings.fail_posts, settings.post_delay_s)

    def require_key(self, args: dict[str, str]) -> None:
        key = args.get("api_key")
        if key is None or not any(hmac.compare_digest(key.encode(), k.encode()) for k in self.keys):
            raise HttpError(403, "api_key is missing or not valid")

    def visible(self, request_id: str) -> sqlite3.Row:
        row = self.db.visible(request_id, time.time())
        if row is None:
            raise HttpError(404, f"service_request_id {request_id!r} not found")
        return row


async def _hotline(request: Request) -> Hotline:
    return request.app.state.hotline


async def _format(request: Request, fmt: str) -> str:
    """The path's format; any other suffix is no route at all."""
    if fmt not in FORMATS:
        raise HttpError(404, f"no such resource: {request.method} {request.url.path}")
    return fmt


async def _form(request: Request, timeout_s: float) -> list[tuple[str, str]]:
    """A POST's form body; each read waits up to ``timeout_s`` (h11 has checked the Content-Length)."""
    if int(request.headers.get("content-length") or 0) > MAX_BODY:
        raise HttpError(413, "request body too large", headers=CLOSE)
    body = bytearray()
    more = True
    while more:
        try:
            message = await asyncio.wait_for(request.receive(), timeout_s)
        except TimeoutError:
            raise HttpError(408, "the request body did not arrive in time", headers=CLOSE) from None
        if message["type"] == "http.disconnect":
            raise HttpError(400, "the request body is shorter than its Content-Length", headers=CLOSE)
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > MAX_BODY:
            raise HttpError(413, "request body too large", headers=CLOSE)
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise HttpError(400, "POST bodies must be application/x-www-form-urlencoded")
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise HttpError(400, "the body is not UTF-8") from None


@dataclass(frozen=True)
class Params:
    """The query's (and a POST's form's) parameters: in order, and as a dict (the last of a name wins)."""

    pairs: list[tuple[str, str]]
    args: dict[str, str]


async def _params(request: Request, hotline: Annotated[Hotline, Depends(_hotline)]) -> Params:
    pairs = list(request.query_params.multi_items())
    if request.method == "POST":
        pairs += await _form(request, hotline.settings.read_timeout_s)
    args = dict(pairs)
    given = args.get("jurisdiction_id")
    if given is not None:
        if not given.strip():
            raise HttpError(400, "jurisdiction_id is empty: leave it out instead")
        expected = hotline.settings.jurisdiction_id
        if expected is not None and given != expected:
            raise HttpError(404, f"jurisdiction_id {given!r} not found")
    return Params(pairs, args)


Format = Annotated[str, Depends(_format)]  # declared first: a wrong suffix is a 404 before anything is read
Given = Annotated[Params, Depends(_params)]
HotlineDep = Annotated[Hotline, Depends(_hotline)]


def _search(args: dict[str, str], now: float) -> Search:
    """A GET ``requests``'s filters from its parameters; without dates, the last :data:`DEFAULT_SPAN_S`."""
    if args.get("service_request_id"):  # the id list overrides every other filter
        return Search(ids=[i.strip() for i in args["service_request_id"].split(",") if i.strip()])
    start = _parse_date("start_date", args["start_date"]) if args.get("start_date") else None
    end = _parse_date("end_date", args["end_date"]) if args.get("end_date") else None
    return Search(
        codes=[c.strip() for c in args["service_code"].split(",")] if args.get("service_code") else None,
        statuses=[s.strip().lower() for s in args["status"].split(",")] if args.get("status") else None,
        start=now - DEFAULT_SPAN_S if start is None and end is None else start,
        end=end,
    )


async def services(fmt: Format, _: Given, hotline: HotlineDep) -> Response:
    kind = "realtime" if hotline.settings.mode == "realtime" else "batch"
    return answer(fmt, 200, "services", "service", [{**s, "type": kind} for s in SERVICES])


async def definition(code: str, fmt: Format, _: Given) -> Response:
    if code not in SERVICE_CODES:
        raise HttpError(404, f"service_code {code!r} not found")
    body = {"service_code": code, "attributes": DEFINITIONS.get(code, [])}
    return answer(fmt, 200, "service_definition", None, body)


async def post_request(fmt: Format, given: Given, hotline: HotlineDep) -> Response:
    args, settings = given.args, hotline.settings
    hotline.require_key(args)
    hotline.faults.fail_next_post()
    code = args.get("service_code", "")
    if code not in SERVICE_CODES:
        raise HttpError(400, f"service_code {code!r} not found" if code else "service_code is required")
    lat = _number("lat", args.get("lat"), -90, 90)
    lon = _number("long", args.get("long"), -180, 180)
    description = args.get("description", "")
    if len(description) > MAX_DESCRIPTION:
        raise HttpError(400, f"description is longer than {MAX_DESCRIPTION} characters")
    attributes = checked_attributes(code, given.pairs)
    now = time.time()
    token = uuid.uuid4().hex if settings.mode == "token" else None
    request = NewRequest(
        token=token, visible_at=now + (settings.token_delay_s if token else 0.0), service_code=code, lat=lat,
        lon=lon, description=description, media_url=args.get("media_url") or None, attributes=attributes,
        jurisdiction_id=args.get("jurisdiction_id"), address=args.get("address_string") or None,
    )  # fmt: skip
    request_id = hotline.db.insert(request, now)
    await hotline.faults.hold_answer()
    ids = {"token": token} if token else {"service_request_id": str(request_id)}
    body = [{**ids, "service_notice": NOTICES.get(code), "account_id": None}]
    return answer(fmt, 200, "service_requests", "request", body)


async def list_requests(fmt: Format, given: Given, hotline: HotlineDep) -> Response:
    args = given.args
    now = time.time()
    rows = hotline.db.search(_search(args, now), now)
    near = [args.get(k) for k in ("lat", "long", "radius")]
    if any(near):
        if not all(near):
            raise HttpError(400, "lat, long and radius go together")
        lat = _number("lat", near[0], -90, 90)
        lon = _number("long", near[1], -180, 180)
        radius = _number("radius", near[2], 0, 100_000)
        rows = [r for r in rows if _metres(lat, lon, r["lat"], r["long"]) <= radius]
    return answer(fmt, 200, "service_requests", "request", [request_view(r) for r in rows[:MAX_RESULTS]])


async def get_request(request_id: str, fmt: Format, _: Given, hotline: HotlineDep) -> Response:
    return answer(fmt, 200, "service_requests", "request", [request_view(hotline.visible(request_id))])


async def resolve_token(token: str, fmt: Format, _: Given, hotline: HotlineDep) -> Response:
    row = hotline.db.by_token(token)
    if row is None:
        raise HttpError(404, f"token {token!r} not found")
    body = {"token": token}
    if row["visible_at"] <= time.time():
        body = {"service_request_id": str(row["id"]), "token": token}
    return answer(fmt, 200, "service_requests", "request", [body])


async def close(request_id: str, fmt: Format, given: Given, hotline: HotlineDep) -> Response:
    hotline.require_key(given.args)
    row = hotline.visible(request_id)
    hotline.db.close_request(row["id"], given.args.get("status_notes") or None, time.time())
    return answer(fmt, 200, "service_requests", "request", [request_view(hotline.visible(request_id))])


ROUTES = [
    ("GET", "/services.{fmt}", services),
    ("GET", "/services/{code}.{fmt}", definition),
    ("GET", "/requests.{fmt}", list_requests),
    ("POST", "/requests.{fmt}", post_request),
    ("GET", "/requests/{request_id}.{fmt}", get_request),
    ("GET", "/tokens/{token}.{fmt}", resolve_token),
    ("POST", "/admin/requests/{request_id}/close.{fmt}", close),
]


def _path_format(request: Request) -> str:
    return "xml" if request.url.path.endswith(".xml") else "json"


async def _http_error(request: Request, e: HttpError) -> Response:
    return errors(_path_format(request), e.status, e.descriptions, e.headers)


async def _no_route(request: Request, e: Exception) -> Response:
    """Starlette's 404 or 405: no route for this method and path."""
    return errors(_path_format(request), 404, (f"no such resource: {request.method} {request.url.path}",))


async def _failed(request: Request, e: Exception) -> Response:
    """A bug: a GeoReport 500 (uvicorn logs the traceback)."""
    return errors(_path_format(request), 500, ("internal server error",))


class AccessLog:
    """ASGI middleware: a log line per answer (client, request line, status), any ``api_key`` in the query masked."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def logged(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                query = re.sub(r"(api_key=)[^&]*", r"\1***", scope["query_string"].decode("latin-1"))
                target = f"{scope['path']}?{query}" if query else scope["path"]
                client = scope["client"][0] if scope.get("client") else "-"
                log.info('%s "%s %s HTTP/%s" %d', client, scope["method"], target, scope["http_version"],
                         message["status"])  # fmt: skip
            await send(message)

        await self.app(scope, receive, logged)


def create_app(settings: ServerConfig, keys: list[str], db: RequestDb) -> FastAPI:
    """The GeoReport v2 app over ``db``, accepting ``keys``."""
    app = FastAPI(title=AGENCY, docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False)
    app.state.hotline = Hotline(settings, keys, db)
    for method, path, endpoint in ROUTES:
        app.add_api_route(path, endpoint, methods=[method])
    app.add_exception_handler(HttpError, _http_error)
    app.add_exception_handler(StarletteHTTPException, _no_route)
    app.add_exception_handler(Exception, _failed)
    app.add_middleware(AccessLog)
    return app
