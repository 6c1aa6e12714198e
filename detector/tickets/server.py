"""``detector serve-106``: a local municipal hotline speaking Open311 GeoReport v2 over HTTP.

For demos, development and tests; any GeoReport v2 client works against it.

- ``GET services.{json,xml}``, ``GET services/{code}.{json,xml}`` (attribute definitions),
  ``POST requests.{json,xml}`` (form-encoded; ``api_key`` checked against the comma-separated
  keys in ``OPEN311_API_KEYS``), ``GET requests.{json,xml}`` (``service_request_id``,
  ``service_code``, ``status``, ``start_date``/``end_date``, and the ``lat``/``long``/``radius``
  extension in metres), ``GET requests/{id}.{json,xml}``, ``GET tokens/{token}.{json,xml}``.
- Errors as GeoReport's array of ``{code, description}`` (``<errors><error>`` in XML). A body whose
  ``Content-Length`` is not a number of bytes is a 400, one that stops short of it a 408 once the
  client has been silent for ``read_timeout_s`` (as is any connection that silent), and either closes
  the connection.
- Each request, in the POST answer and as listed, carries its service's ``service_notice`` (:data:`NOTICES`).
- ``--mode realtime`` answers a POST with ``service_request_id``; ``--mode token`` with a
  ``token`` whose request id (and the request itself) appears ``--token-delay`` seconds later.
- ``POST admin/requests/{id}/close.{json,xml}`` (``api_key``, ``status_notes``) closes a request,
  as a clerk would; it is not part of GeoReport.
- ``--post-delay`` holds each POST's answer after the request is stored (a slow back office, a
  lost answer): what a client must survive without opening a duplicate. ``--fail-posts 503,429``
  answers the first POSTs with those statuses, storing nothing (429 with ``Retry-After: 1``).

Requests live in the server's own SQLite file (``--db``), committed before each answer, so a
restarted server keeps them. Built on the standard library's ``http.server`` (threaded): the API
is six small routes, no framework or ASGI server is needed to serve them, and the server starts
in a fraction of a second, which matters for tests that start and stop it repeatedly.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import re
import signal
import sqlite3
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from detector.errors import ConfigError, InputError

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
CLOSE = {"Connection": "close"}  # an error answer after which the connection is closed
ROUTES = [
    ("GET", re.compile(r"/services\.(json|xml)"), "services"),
    ("GET", re.compile(r"/services/([^/]+)\.(json|xml)"), "definition"),
    ("GET", re.compile(r"/requests\.(json|xml)"), "list_requests"),
    ("POST", re.compile(r"/requests\.(json|xml)"), "post_request"),
    ("GET", re.compile(r"/requests/([^/]+)\.(json|xml)"), "get_request"),
    ("GET", re.compile(r"/tokens/([^/]+)\.(json|xml)"), "token"),
    ("POST", re.compile(r"/admin/requests/([^/]+)/close\.(json|xml)"), "close"),
]
SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
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
    updated_at REAL NOT NULL,
    address TEXT
)
"""


@dataclass(frozen=True)
class ServerSettings:
    host: str
    port: int
    db: Path
    mode: str
    token_delay_s: float
    post_delay_s: float
    jurisdiction_id: str | None
    fail_posts: tuple[int, ...] = ()
    read_timeout_s: float = 10.0

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> ServerSettings:
        if section["mode"] not in ("realtime", "token"):
            raise ConfigError("tickets.server.mode", f"must be realtime or token, got {section['mode']!r}")
        if not 0 <= int(section["port"]) <= 65535:
            raise ConfigError("tickets.server.port", f"must be 0-65535, got {section['port']!r}")
        jurisdiction = section["jurisdiction_id"]
        codes = [c.strip() for c in str(section["fail_posts"]).split(",") if c.strip()]
        if not all(c.isdigit() and 400 <= int(c) <= 599 for c in codes):
            raise ConfigError("tickets.server.fail_posts", f"HTTP error statuses, comma-separated: {codes!r}")
        fail_posts = tuple(int(c) for c in codes)
        if float(section["read_timeout_s"]) <= 0:
            raise ConfigError("tickets.server.read_timeout_s", f"must be positive, got {section['read_timeout_s']!r}")
        return cls(
            host=str(section["host"]),
            port=int(section["port"]),
            db=Path(section["db"]),
            mode=section["mode"],
            token_delay_s=float(section["token_delay_s"]),
            post_delay_s=float(section["post_delay_s"]),
            jurisdiction_id=str(jurisdiction) if jurisdiction not in (None, "") else None,
            fail_posts=fail_posts,
            read_timeout_s=float(section["read_timeout_s"]),
        )


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


class RequestDb:
    """The server's own SQLite file; one connection shared by the handler threads under a lock."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute(SCHEMA)
            if "address" not in {r["name"] for r in self.conn.execute("PRAGMA table_info(requests)")}:
                self.conn.execute("ALTER TABLE requests ADD COLUMN address TEXT")  # a file from before addresses
        except (OSError, sqlite3.Error) as e:
            raise InputError(path, f"cannot open the 106 server's database ({e})") from None
        self.lock = threading.Lock()

    def execute(self, sql: str, params=()) -> sqlite3.Cursor:
        with self.lock:
            return self.conn.execute(sql, params)

    def rows(self, sql: str, params=()) -> list[sqlite3.Row]:
        with self.lock:
            return self.conn.execute(sql, params).fetchall()


class Open311Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, settings: ServerSettings, keys: list[str]) -> None:
        self.settings = settings
        self.keys = keys
        self.db = RequestDb(settings.db)
        self.faults = list(settings.fail_posts)
        self.faults_lock = threading.Lock()
        super().__init__((settings.host, settings.port), Handler)

    def key_ok(self, key: str | None) -> bool:
        return key is not None and any(hmac.compare_digest(key.encode(), k.encode()) for k in self.keys)

    def handle_error(self, request, client_address) -> None:
        """A client that went away (reset, broken pipe, timed out) is a line in the log, not a traceback."""
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            super().handle_error(request, client_address)
            return
        log.info("%s: connection dropped (%s)", client_address[0], type(error).__name__)


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


class Handler(BaseHTTPRequestHandler):
    server: Open311Server
    protocol_version = "HTTP/1.1"

    @property
    def timeout(self) -> float:
        """Seconds a client may keep the connection silent (headers, body, keep-alive) before it is closed."""
        return self.server.settings.read_timeout_s

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), re.sub(r"(api_key=)[^&\s]*", r"\1***", format % args))

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        fmt = "xml" if url.path.endswith(".xml") else "json"
        try:
            for verb, pattern, name in ROUTES:
                match = pattern.fullmatch(url.path)
                if match and verb == method:
                    params = parse_qsl(url.query, keep_blank_values=True)
                    if method == "POST":
                        params += self._form()
                    args = dict(params)
                    self._check_jurisdiction(args)
                    status, root, item, body = getattr(self, name)(args, params, *match.groups()[:-1])
                    self._send(status, fmt, to_xml(root, item, body) if fmt == "xml" else json.dumps(body).encode())
                    return
            raise HttpError(404, f"no such resource: {method} {url.path}")
        except Exception as e:
            if not isinstance(e, HttpError):
                log.exception("%s %s failed", method, url.path)
                e = HttpError(500, "internal server error")
            errors = [{"code": e.status, "description": d} for d in e.descriptions]
            data = to_xml("errors", "error", errors) if fmt == "xml" else json.dumps(errors).encode()
            self._send(e.status, fmt, data, e.headers)

    def _form(self) -> list[tuple[str, str]]:
        text = (self.headers.get("Content-Length") or "0").strip()
        if not (text.isascii() and text.isdigit()):  # the body's end is unknown: the connection cannot go on
            raise HttpError(400, "Content-Length must be a whole number of bytes", headers=CLOSE)
        length = int(text)
        if length > MAX_BODY:
            raise HttpError(413, "request body too large", headers=CLOSE)
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            raise HttpError(408, "the request body did not arrive in time", headers=CLOSE) from None
        if len(body) < length:
            raise HttpError(400, "the request body is shorter than its Content-Length", headers=CLOSE)
        if not self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            raise HttpError(400, "POST bodies must be application/x-www-form-urlencoded")
        try:
            return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise HttpError(400, "the body is not UTF-8") from None

    def _send(self, status: int, fmt: str, data: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header(
            "Content-Type", "text/xml; charset=utf-8" if fmt == "xml" else "application/json; charset=utf-8"
        )
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _check_jurisdiction(self, args: dict[str, str]) -> None:
        given = args.get("jurisdiction_id")
        if given is None:
            return
        if not given.strip():
            raise HttpError(400, "jurisdiction_id is empty: leave it out instead")
        expected = self.server.settings.jurisdiction_id
        if expected is not None and given != expected:
            raise HttpError(404, f"jurisdiction_id {given!r} not found")

    def _require_key(self, args: dict[str, str]) -> None:
        if not self.server.key_ok(args.get("api_key")):
            raise HttpError(403, "api_key is missing or not valid")

    def services(self, args, params):
        kind = "realtime" if self.server.settings.mode == "realtime" else "batch"
        return 200, "services", "service", [{**s, "type": kind} for s in SERVICES]

    def definition(self, args, params, code):
        if code not in {s["service_code"] for s in SERVICES}:
            raise HttpError(404, f"service_code {code!r} not found")
        return 200, "service_definition", None, {"service_code": code, "attributes": DEFINITIONS.get(code, [])}

    def _attributes(self, code: str, params: list[tuple[str, str]]) -> dict[str, Any]:
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

    def post_request(self, args, params):
        self._require_key(args)
        with self.server.faults_lock:
            fault = self.server.faults.pop(0) if self.server.faults else None
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
        attributes = self._attributes(code, params)
        now = time.time()
        token = uuid.uuid4().hex if self.server.settings.mode == "token" else None
        visible = now + (self.server.settings.token_delay_s if token else 0.0)
        cur = self.server.db.execute(
            "INSERT INTO requests (token, visible_at, service_code, lat, long, description, media_url, attributes,"
            " jurisdiction_id, status, requested_at, updated_at, address) VALUES (?,?,?,?,?,?,?,?,?, 'open', ?, ?, ?)",
            (token, visible, code, lat, lon, description, args.get("media_url") or None, json.dumps(attributes),
             args.get("jurisdiction_id"), now, now, args.get("address_string") or None),
        )  # fmt: skip
        if self.server.settings.post_delay_s:
            time.sleep(self.server.settings.post_delay_s)
        answer = {"token": token} if token else {"service_request_id": str(cur.lastrowid)}
        notice = NOTICES.get(code)
        return 200, "service_requests", "request", [{**answer, "service_notice": notice, "account_id": None}]

    def list_requests(self, args, params):
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
        rows = self.server.db.rows(
            f"SELECT * FROM requests WHERE {' AND '.join(where)} ORDER BY requested_at DESC, id DESC", values
        )
        near = [args.get(k) for k in ("lat", "long", "radius")]
        if any(near):
            if not all(near):
                raise HttpError(400, "lat, long and radius go together")
            lat = _number("lat", near[0], -90, 90)
            lon = _number("long", near[1], -180, 180)
            radius = _number("radius", near[2], 0, 100_000)
            rows = [r for r in rows if _metres(lat, lon, r["lat"], r["long"]) <= radius]
        return 200, "service_requests", "request", [_request_view(r) for r in rows[:MAX_RESULTS]]

    def _visible(self, request_id: str) -> sqlite3.Row:
        rows = self.server.db.rows(
            "SELECT * FROM requests WHERE CAST(id AS TEXT) = ? AND visible_at <= ?", (request_id, time.time())
        )
        if not rows:
            raise HttpError(404, f"service_request_id {request_id!r} not found")
        return rows[0]

    def get_request(self, args, params, request_id):
        return 200, "service_requests", "request", [_request_view(self._visible(request_id))]

    def token(self, args, params, token):
        rows = self.server.db.rows("SELECT id, visible_at FROM requests WHERE token = ?", (token,))
        if not rows:
            raise HttpError(404, f"token {token!r} not found")
        answer = {"token": token}
        if rows[0]["visible_at"] <= time.time():
            answer = {"service_request_id": str(rows[0]["id"]), "token": token}
        return 200, "service_requests", "request", [answer]

    def close(self, args, params, request_id):
        self._require_key(args)
        row = self._visible(request_id)
        self.server.db.execute(
            "UPDATE requests SET status = 'closed', status_notes = ?, updated_at = ? WHERE id = ?",
            (args.get("status_notes") or None, time.time(), row["id"]),
        )
        return 200, "service_requests", "request", [_request_view(self._visible(request_id))]


def accepted_keys() -> list[str]:
    keys = [k.strip() for k in os.environ.get(KEYS_ENV, "").split(",") if k.strip()]
    if not keys:
        raise InputError(KEYS_ENV, "not set: list the API keys this server accepts, comma-separated")
    return keys


def serve(settings: ServerSettings) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM); prints the base URL once listening."""
    keys = accepted_keys()
    try:
        server = Open311Server(settings, keys)
    except OSError as e:
        raise InputError(f"{settings.host}:{settings.port}", f"cannot listen ({e.strerror or e})") from None
    host, port = server.server_address[:2]

    def terminate(signum, frame) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    print(
        f"serving Open311 GeoReport v2 at http://{host}:{port}/ ({settings.mode} mode, requests in {settings.db})",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.db.conn.close()
