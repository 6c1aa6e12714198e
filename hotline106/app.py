"""``detector serve-106``: a local municipal hotline speaking Open311 GeoReport v2 over HTTP.

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
  must arrive within ``head_timeout_s``, all of it within ``request_timeout_s``.
- Each request, in the POST answer and as listed, carries its service's ``service_notice`` (:data:`NOTICES`).
- ``--mode realtime`` answers a POST with ``service_request_id``; ``--mode token`` with a
  ``token`` whose request id (and the request itself) appears ``--token-delay`` seconds later.
- ``POST admin/requests/{id}/close.{json,xml}`` (``api_key``, ``status_notes``) closes a request,
  as a clerk would; it is not part of GeoReport.
- ``--post-delay`` holds each POST's answer after the request is stored (a slow back office, a
  lost answer): what a client must survive without opening a duplicate. ``--fail-posts 503,429``
  answers the first POSTs with those statuses, storing nothing (429 with ``Retry-After: 1``).

Requests live in the server's own SQLite file (``--db``), committed before each answer, so a
restarted server keeps them; its schema is versioned like the hazard store's (:data:`MIGRATIONS`,
applied by :func:`detector.store.db.migrate`). Built on FastAPI and uvicorn (h11), like the review
app. The routes are ``async`` and run on uvicorn's one event loop, so the file's one connection
needs no lock.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import os
import re
import signal
import socket
import sqlite3
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl

import h11
from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES

from detector.config.tools import ServerConfig
from detector.errors import InputError
from detector.http_deadline import DeadlineProtocol
from detector.store.db import migrate, user_version

log = logging.getLogger(__name__)

KEYS_ENV = "OPEN311_API_KEYS"
MAX_DESCRIPTION = 4000
MAX_BODY = 1 << 20
DEFAULT_SPAN_S = 90 * 86400  # GeoReport's default search window
MAX_RESULTS = 1000
AGENCY = "Municipal hotline 106 (local test server)"
SERVICES = [
    {"service_code": "POTHOLE", "service_name": "Pothole", "description": "A hole or sunken patch in the road surface",
     "metadata": True, "keywords": "pothole,road,asphalt", "group": "Roads"},
    {"service_code": "SIGN_DOWN", "service_name": "Fallen traffic sign",
     "description": "A traffic sign knocked down, fallen or lying on the road", "metadata": True,
     "keywords": "sign,traffic sign,fallen", "group": "Roads"},
    {"service_code": "STREETLIGHT", "service_name": "Street light out", "description": "A street light not working",
     "metadata": False, "keywords": "light,lamp", "group": "Lighting"},
]  # fmt: skip
# service_notice: what the hotline tells the reporter about each request of the service (as real servers do).
NOTICES = {
    "POTHOLE": "Potholes in a driving lane are made safe within 48 hours and repaired within 10 working days.",
    "SIGN_DOWN": "A fallen traffic sign is made safe the same day.",
}
_REF = {"variable": True, "code": "hazard_ref", "datatype": "string", "required": False,
        "datatype_description": "The reporter's own reference", "order": 1,
        "description": "Reporter reference"}  # fmt: skip
DEFINITIONS: dict[str, list[dict[str, Any]]] = {
    "POTHOLE": [
        _REF,
        {"variable": True, "code": "severity", "datatype": "number", "required": True,
         "datatype_description": "0 (cosmetic) to 100 (dangerous)", "order": 2, "description": "Severity"},
        {"variable": True, "code": "lane", "datatype": "singlevaluelist", "required": False,
         "datatype_description": None, "order": 3, "description": "Where on the road",
         "values": [{"key": "driving", "name": "Driving lane"}, {"key": "shoulder", "name": "Shoulder"}]},
    ],
    "SIGN_DOWN": [_REF],
}  # fmt: skip
XML_ITEMS = {"attributes": "attribute", "values": "value"}
FORMATS = ("json", "xml")
CLOSE = {"Connection": "close"}  # an error answer after which the connection is closed
BAD_LENGTH = "Content-Length must be a whole number of bytes"
# The server's own file, as numbered migrations (PRAGMA user_version holds the version).
MIGRATIONS: list[str] = [
    # 1: the requests.
    """
    CREATE TABLE requests (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        token TEXT UNIQUE,
        visible_at REAL NOT NULL,
        service_code TEXT NOT NULL,
        lat REAL NOT NULL,
        long REAL NOT NULL,
        description TEXT,
        media_url TEXT,
        attributes TEXT NOT NULL,
        jurisdiction_id TEXT,
        status TEXT NOT NULL,
        status_notes TEXT,
        requested_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )
    """,
    # 2: each request's address (GeoReport address_string).
    """
    ALTER TABLE requests ADD COLUMN address TEXT
    """,
]


class HttpError(Exception):
    def __init__(self, status: int, *descriptions: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(descriptions[0])
        self.status = status
        self.descriptions = descriptions
        self.headers = headers or {}


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


def _xml_put(parent: ET.Element, tag: str, value: Any) -> None:
    element = ET.SubElement(parent, tag)
    if isinstance(value, list):
        for item in value:
            _xml_put(element, XML_ITEMS.get(tag, "item"), item)
    elif isinstance(value, dict):
        for key, sub in value.items():
            _xml_put(element, key, sub)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = str(value)


def to_xml(root: str, item: str | None, body: Any) -> bytes:
    """GeoReport XML: a list under ``<root>`` as ``<item>`` elements, or one object as ``<root>``'s children."""
    element = ET.Element(root)
    for entry in body if item else [body]:
        target = ET.SubElement(element, item) if item else element
        for key, value in entry.items():
            _xml_put(target, key, value)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(element, encoding="unicode").encode()


def answer(
    fmt: str, status: int, root: str, item: str | None, body: Any, headers: dict[str, str] | None = None
) -> Response:
    """A GeoReport answer in ``fmt`` (json or xml)."""
    if fmt == "xml":
        return Response(to_xml(root, item, body), status, headers, "text/xml; charset=utf-8")
    return Response(json.dumps(body).encode(), status, headers, "application/json; charset=utf-8")


def errors(fmt: str, status: int, descriptions: tuple[str, ...], headers: dict[str, str] | None = None) -> Response:
    return answer(fmt, status, "errors", "error", [{"code": status, "description": d} for d in descriptions], headers)


class RequestDb:
    """The server's own SQLite file, migrated to :data:`MIGRATIONS` on opening."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(path, isolation_level=None)
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA journal_mode = WAL")
            self._adopt()
            migrate(self.conn, MIGRATIONS, path)
        except (OSError, sqlite3.Error) as e:
            raise InputError(path, f"cannot open the 106 server's database ({e})") from None

    def _adopt(self) -> None:
        """A file from before versioning (user_version 0, the table there) gets the version its table matches."""
        if user_version(self.conn):
            return
        columns = {r["name"] for r in self.conn.execute("PRAGMA table_info(requests)")}
        if columns:
            self.conn.execute(f"PRAGMA user_version = {2 if 'address' in columns else 1}")

    def execute(self, sql: str, params=()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def rows(self, sql: str, params=()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    def close(self) -> None:
        self.conn.close()


class Hotline:
    """What the routes share: the settings, the accepted keys, the database and the failures still to inject."""

    def __init__(self, settings: ServerConfig, keys: list[str], db: RequestDb) -> None:
        self.settings, self.keys, self.db = settings, keys, db
        self.faults = list(settings.fail_posts)

    def require_key(self, args: dict[str, str]) -> None:
        key = args.get("api_key")
        if key is None or not any(hmac.compare_digest(key.encode(), k.encode()) for k in self.keys):
            raise HttpError(403, "api_key is missing or not valid")

    def visible(self, request_id: str) -> sqlite3.Row:
        rows = self.db.rows(
            "SELECT * FROM requests WHERE CAST(id AS TEXT) = ? AND visible_at <= ?", (request_id, time.time())
        )
        if not rows:
            raise HttpError(404, f"service_request_id {request_id!r} not found")
        return rows[0]


def _request_view(row: sqlite3.Row) -> dict[str, Any]:
    names = {s["service_code"]: s["service_name"] for s in SERVICES}
    return {
        "service_request_id": str(row["id"]),
        "status": row["status"],
        "status_notes": row["status_notes"],
        "service_name": names.get(row["service_code"]),
        "service_code": row["service_code"],
        "description": row["description"],
        "agency_responsible": AGENCY,
        "service_notice": NOTICES.get(row["service_code"]),
        "requested_datetime": iso(row["requested_at"]),
        "updated_datetime": iso(row["updated_at"]),
        "expected_datetime": None,
        "address": row["address"],
        "address_id": None,
        "zipcode": None,
        "lat": row["lat"],
        "long": row["long"],
        "media_url": row["media_url"],
    }


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


def _attributes(code: str, params: list[tuple[str, str]]) -> dict[str, Any]:
    given: dict[str, Any] = {}
    for key, value in params:
        match = re.fullmatch(r"attribute\[([^\]]+)\](\[\])?", key)
        if match:
            if match.group(2):
                given.setdefault(match.group(1), []).append(value)
            else:
                given[match.group(1)] = value
    problems = []
    for attribute in DEFINITIONS.get(code, []):
        value = given.get(attribute["code"])
        if value in (None, "", []):
            if attribute["required"]:
                problems.append(f"attribute[{attribute['code']}] is required for {code}")
            continue
        if attribute["datatype"] == "number":
            try:
                float(value)
            except (TypeError, ValueError):
                problems.append(f"attribute[{attribute['code']}] must be a number")
        if attribute["datatype"] == "singlevaluelist" and value not in {v["key"] for v in attribute["values"]}:
            problems.append(f"attribute[{attribute['code']}] must be one of the listed keys")
    if problems:
        raise HttpError(400, *problems)
    return given


def _search(db: RequestDb, args: dict[str, str]) -> list[sqlite3.Row]:
    """The visible requests a GET ``requests`` asks for, newest first."""
    now = time.time()
    where, values = ["visible_at <= ?"], [now]
    if args.get("service_request_id"):
        ids = [i.strip() for i in args["service_request_id"].split(",") if i.strip()]
        where.append(f"CAST(id AS TEXT) IN ({','.join('?' * len(ids))})")
        values += ids
    else:  # the id list overrides every other filter
        if args.get("service_code"):
            codes = [c.strip() for c in args["service_code"].split(",")]
            where.append(f"service_code IN ({','.join('?' * len(codes))})")
            values += codes
        if args.get("status"):
            statuses = [s.strip().lower() for s in args["status"].split(",")]
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            values += statuses
        start = _parse_date("start_date", args["start_date"]) if args.get("start_date") else None
        end = _parse_date("end_date", args["end_date"]) if args.get("end_date") else None
        if start is None and end is None:
            start = now - DEFAULT_SPAN_S
        if start is not None:
            where.append("requested_at >= ?")
            values.append(start)
        if end is not None:
            where.append("requested_at <= ?")
            values.append(end)
    return db.rows(f"SELECT * FROM requests WHERE {' AND '.join(where)} ORDER BY requested_at DESC, id DESC", values)


async def services(fmt: Format, _: Given, hotline: HotlineDep) -> Response:
    kind = "realtime" if hotline.settings.mode == "realtime" else "batch"
    return answer(fmt, 200, "services", "service", [{**s, "type": kind} for s in SERVICES])


async def definition(code: str, fmt: Format, _: Given) -> Response:
    if code not in {s["service_code"] for s in SERVICES}:
        raise HttpError(404, f"service_code {code!r} not found")
    body = {"service_code": code, "attributes": DEFINITIONS.get(code, [])}
    return answer(fmt, 200, "service_definition", None, body)


async def post_request(fmt: Format, given: Given, hotline: HotlineDep) -> Response:
    args, settings = given.args, hotline.settings
    hotline.require_key(args)
    fault = hotline.faults.pop(0) if hotline.faults else None
    if fault is not None:
        raise HttpError(fault, f"injected failure {fault}", headers={"Retry-After": "1"} if fault == 429 else None)
    code = args.get("service_code", "")
    if code not in {s["service_code"] for s in SERVICES}:
        raise HttpError(400, f"service_code {code!r} not found" if code else "service_code is required")
    lat = _number("lat", args.get("lat"), -90, 90)
    lon = _number("long", args.get("long"), -180, 180)
    description = args.get("description", "")
    if len(description) > MAX_DESCRIPTION:
        raise HttpError(400, f"description is longer than {MAX_DESCRIPTION} characters")
    attributes = _attributes(code, given.pairs)
    now = time.time()
    token = uuid.uuid4().hex if settings.mode == "token" else None
    visible = now + (settings.token_delay_s if token else 0.0)
    cur = hotline.db.execute(
        "INSERT INTO requests (token, visible_at, service_code, lat, long, description, media_url, attributes,"
        " jurisdiction_id, status, requested_at, updated_at, address) VALUES (?,?,?,?,?,?,?,?,?, 'open', ?, ?, ?)",
        (token, visible, code, lat, lon, description, args.get("media_url") or None, json.dumps(attributes),
         args.get("jurisdiction_id"), now, now, args.get("address_string") or None),
    )  # fmt: skip
    if settings.post_delay_s:
        await asyncio.sleep(settings.post_delay_s)
    ids = {"token": token} if token else {"service_request_id": str(cur.lastrowid)}
    body = [{**ids, "service_notice": NOTICES.get(code), "account_id": None}]
    return answer(fmt, 200, "service_requests", "request", body)


async def list_requests(fmt: Format, given: Given, hotline: HotlineDep) -> Response:
    args = given.args
    rows = _search(hotline.db, args)
    near = [args.get(k) for k in ("lat", "long", "radius")]
    if any(near):
        if not all(near):
            raise HttpError(400, "lat, long and radius go together")
        lat = _number("lat", near[0], -90, 90)
        lon = _number("long", near[1], -180, 180)
        radius = _number("radius", near[2], 0, 100_000)
        rows = [r for r in rows if _metres(lat, lon, r["lat"], r["long"]) <= radius]
    return answer(fmt, 200, "service_requests", "request", [_request_view(r) for r in rows[:MAX_RESULTS]])


async def get_request(request_id: str, fmt: Format, _: Given, hotline: HotlineDep) -> Response:
    return answer(fmt, 200, "service_requests", "request", [_request_view(hotline.visible(request_id))])


async def resolve_token(token: str, fmt: Format, _: Given, hotline: HotlineDep) -> Response:
    rows = hotline.db.rows("SELECT id, visible_at FROM requests WHERE token = ?", (token,))
    if not rows:
        raise HttpError(404, f"token {token!r} not found")
    body = {"token": token}
    if rows[0]["visible_at"] <= time.time():
        body = {"service_request_id": str(rows[0]["id"]), "token": token}
    return answer(fmt, 200, "service_requests", "request", [body])


async def close(request_id: str, fmt: Format, given: Given, hotline: HotlineDep) -> Response:
    hotline.require_key(given.args)
    row = hotline.visible(request_id)
    hotline.db.execute(
        "UPDATE requests SET status = 'closed', status_notes = ?, updated_at = ? WHERE id = ?",
        (given.args.get("status_notes") or None, time.time(), row["id"]),
    )
    return answer(fmt, 200, "service_requests", "request", [_request_view(hotline.visible(request_id))])


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


class Protocol(DeadlineProtocol):
    """The shared deadlines (:mod:`detector.http_deadline`), answering a request h11 refuses as GeoReport errors
    (JSON: its path is unknown). :func:`serve` sets the limits from the settings."""

    def send_400_response(self, msg: str) -> None:
        error = sys.exception()  # uvicorn calls this while it handles h11's RemoteProtocolError
        text = BAD_LENGTH if "Content-Length" in str(error) else f"not a valid HTTP request ({error})"
        body = json.dumps([{"code": 400, "description": text}]).encode()
        headers = [(b"content-type", b"application/json; charset=utf-8"), (b"connection", b"close")]
        for event in (h11.Response(status_code=400, headers=headers, reason=STATUS_PHRASES[400]), h11.Data(data=body)):
            self.transport.write(self.conn.send(event))
        self.transport.write(self.conn.send(h11.EndOfMessage()))
        self.transport.close()


def accepted_keys() -> list[str]:
    keys = [k.strip() for k in os.environ.get(KEYS_ENV, "").split(",") if k.strip()]
    if not keys:
        raise InputError(KEYS_ENV, "not set: list the API keys this server accepts, comma-separated")
    return keys


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def serve(settings: ServerConfig) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM); prints the base URL once listening."""
    import uvicorn

    keys = accepted_keys()
    db = RequestDb(Path(settings.db))
    try:
        sock = socket.create_server((settings.host, settings.port))
    except OSError as e:
        db.close()
        raise InputError(f"{settings.host}:{settings.port}", f"cannot listen ({e.strerror or e})") from None
    host, port = sock.getsockname()[:2]
    limited = Protocol.limited(settings.head_timeout_s, settings.request_timeout_s)
    config = uvicorn.Config(
        create_app(settings, keys, db), http=limited, ws="none", lifespan="off", log_config=None,
        log_level="warning", access_log=False, proxy_headers=False, timeout_keep_alive=settings.read_timeout_s,
        timeout_graceful_shutdown=1,
    )  # fmt: skip
    signal.signal(signal.SIGTERM, _terminate)  # what uvicorn raises again once it has shut down
    print(
        f"serving Open311 GeoReport v2 at http://{host}:{port}/ ({settings.mode} mode, requests in {settings.db})",
        flush=True,
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        db.close()
