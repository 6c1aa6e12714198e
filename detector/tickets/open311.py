"""Open311 GeoReport v2 client (``requests``): one :class:`~detector.tickets.adapter.TicketAdapter`.

- Discovery: ``services.json`` and, for services with metadata, ``services/{code}.json``; only
  attributes the service defines are sent, as ``attribute[code]`` (``attribute[code][]`` per
  value of a multi-value list).
- ``POST requests.json``, form-encoded: ``api_key``, ``service_code``, ``lat``/``long``,
  ``description``, ``media_url``; ``jurisdiction_id`` only when configured, never empty.
- Both answers to a POST: ``service_request_id`` now, or a ``token`` resolved later through
  ``tokens/{token}.json``. Ids are strings, whatever type the server wrote.
- ``GET requests.json`` by service, status and start date, and by ``lat``/``long``/``radius``
  (metres) where the server supports that common extension; ``GET requests/{id}.json``.
- Errors: only the documented ``[{code, description}]`` array (JSON or XML) reaches the exception
  message, each description bounded and stripped of key-like tokens; any other error body becomes
  ``HTTP 4xx from host`` (a server's body may echo the request, key and all). Network errors,
  timeouts, 5xx and 429 are :class:`RetryableError`; other 4xx are :class:`RejectedError`
  (401/403: :class:`AuthError`). The API key travels only in POST bodies, to ``tickets.endpoint``
  alone: no redirect is ever followed (a 3xx is a :class:`RedirectedError`, naming only the target's
  host), and every message is masked with :meth:`Secret.redact` (the key in any case or encoding).
- Each call has a total deadline (``tickets.deadline_s``) besides the per-read ``timeout_s``: a
  server that dribbles its answer a byte at a time has its connection shut when the deadline
  passes. Answers are read up to :data:`MAX_ANSWER_BYTES`.

Responses are asked for as ``.json`` or ``.xml`` (``tickets.format``); XML is read with the
standard library's expat parser (no DTDs or external entities are fetched).
"""

from __future__ import annotations

import json
import logging
import math
import re
import socket
import threading
import time
import xml.etree.ElementTree as ET
from contextlib import suppress
from dataclasses import fields, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import NewConnectionError

from detector.tickets.adapter import (
    AuthError,
    NewRequest,
    RedirectedError,
    RejectedError,
    RemoteRequest,
    RetryableError,
    Secret,
    Submission,
)

log = logging.getLogger(__name__)

FORMATS = ("json", "xml")
XML_LISTS = frozenset({"services", "service_requests", "errors", "attributes", "values"})
MAX_ERROR_TEXT = 500
MAX_ERRORS = 5  # error entries kept from one answer
MAX_DESCRIPTION = 200  # characters kept of each error description
MAX_ANSWER_BYTES = 8 << 20
MAX_RETRY_AFTER_S = 86400.0  # a longer Retry-After is read as this
# Anything shaped like a credential: a long run of key characters, or a shorter one mixing letters and digits.
KEYISH = re.compile(r"[A-Za-z0-9+/=_%.~-]{8,}")


def iso_utc(when: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, as GeoReport v2 dates are written."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() == "true"


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def xml_value(element: ET.Element) -> Any:
    """A GeoReport XML element as the JSON the same resource would be: lists, objects, text.

    >>> xml_value(ET.fromstring("<errors><error><code>403</code><description>no</description></error></errors>"))
    [{'code': '403', 'description': 'no'}]
    """
    children = list(element)
    if element.tag in XML_LISTS:
        return [xml_value(child) for child in children]
    if not children:
        return element.text or ""
    return {child.tag: xml_value(child) for child in children}


def _first(body: Any) -> dict[str, Any]:
    """The one object of a POST or token answer: a one-element list per the spec (some servers send the object)."""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return body[0]
    return body if isinstance(body, dict) else {}


def _never_connected(error: requests.RequestException) -> bool:
    """Whether the connection failed before anything was sent (refused, unresolvable, connect timeout)."""
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(error, requests.ConnectTimeout) or isinstance(reason, NewConnectionError)


def remote_request(item: dict[str, Any]) -> RemoteRequest:
    """One entry of a ``requests`` answer; the id becomes a string.

    >>> remote_request({"service_request_id": 638344, "status": "Open", "lat": "31.2"}).service_request_id
    '638344'
    """
    return RemoteRequest(
        service_request_id=str(item["service_request_id"]).strip(),
        status=(_text(item.get("status")) or "open").lower(),
        service_code=_text(item.get("service_code")),
        lat=_float(item.get("lat")),
        lon=_float(item.get("long")),
        description=_text(item.get("description")) or "",
        status_notes=_text(item.get("status_notes")),
        requested=_text(item.get("requested_datetime")),
        updated=_text(item.get("updated_datetime")),
        service_notice=_text(item.get("service_notice")),
    )


def _keyish(token: str) -> bool:
    has_letter, has_digit = any(c.isalpha() for c in token), any(c.isdigit() for c in token)
    return len(token) >= 20 or (has_letter and has_digit)


def scrub(text: str) -> str:
    """``text`` on one line with every key-like token (:data:`KEYISH`, letters and digits mixed, or 20+
    characters) replaced by ``***``.

    >>> scrub("api_key Tk9QRS1rZXktMTIz TK9QRS1R is not valid;  attribute[severity] is required")
    'api_key *** is not valid; attribute[severity] is required'
    """
    text = KEYISH.sub(lambda m: "***" if _keyish(m.group()) else m.group(), " ".join(text.split()))
    return re.sub(r"\*\*\*(?: \*\*\*)+", "***", text)


def error_text(body: Any) -> str | None:
    """GeoReport's documented error array as one line, ``code: description; ...``: numeric codes only, each
    description scrubbed (:func:`scrub`) and bounded. None for a body of any other shape, which is never shown.

    >>> error_text([{"code": 400, "description": "lat must be a number"}])
    '400: lat must be a number'
    >>> error_text({"message": "echo: api_key=..."}) is None
    True
    """
    if not (isinstance(body, list) and body and all(isinstance(e, dict) for e in body)):
        return None
    parts = []
    for entry in body[:MAX_ERRORS]:
        code = _text(entry.get("code")) or "?"
        description = scrub((_text(entry.get("description")) or "")[: 4 * MAX_DESCRIPTION])[:MAX_DESCRIPTION]
        parts.append(f"{code if code.isdigit() and len(code) <= 4 else '?'}: {description}".strip())
    return "; ".join(parts)[:MAX_ERROR_TEXT]


def _host(url: str) -> str:
    """``host[:port]`` of ``url``, and nothing else of it (no user, path or query)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or "?"
    return f"{host}:{port}" if port else host


class _Watched(HTTPAdapter):
    """A transport that keeps the sockets it opens, so that :meth:`shut` can cut a call short from another thread
    (urllib3's timeouts are per read: a byte every few seconds would hold a call open for ever)."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        adapter = self

        class Plain(HTTPConnection):
            def _new_conn(self) -> socket.socket:
                return adapter.keep(super()._new_conn())

        class Tls(HTTPSConnection):
            def _new_conn(self) -> socket.socket:
                return adapter.keep(super()._new_conn())

            def connect(self) -> None:
                super().connect()
                adapter.keep(self.sock)

        self.poolmanager.pool_classes_by_scheme = {
            "http": type("WatchedPool", (HTTPConnectionPool,), {"ConnectionCls": Plain}),
            "https": type("WatchedTlsPool", (HTTPSConnectionPool,), {"ConnectionCls": Tls}),
        }

    def keep(self, sock: Any) -> Any:
        with self.lock:
            self.sockets.append(sock)
        return sock

    def shut(self) -> None:
        with self.lock:
            for sock in self.sockets:
                with suppress(OSError, TypeError):  # already closed, or a TLS socket's detached original
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain call: safe under a TLS read


class _Expired(Exception):
    """A call cut short at its deadline."""


class Open311Client:
    """A GeoReport v2 endpoint (``endpoint`` is the base URL under which ``services.json`` lives)."""

    def __init__(
        self,
        endpoint: str,
        api_key: Secret | None,
        jurisdiction_id: str | None = None,
        timeout_s: float = 10.0,
        fmt: str = "json",
        radius_search: bool = True,
        deadline_s: float = 30.0,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.api_key = api_key
        self.jurisdiction_id = jurisdiction_id or None  # an empty one is never sent
        self.timeout_s = timeout_s
        self.deadline_s = deadline_s
        self.fmt = fmt
        self.radius_search = radius_search
        self._services: dict[str, dict[str, Any]] | None = None
        self._definitions: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"Open311Client({self.endpoint!r})"

    def _safe(self, text: str) -> str:
        return self.api_key.redact(text) if self.api_key else text

    def _parse(self, content: bytes, content_type: str) -> Any:
        if self.fmt == "xml" or content_type.startswith(("text/xml", "application/xml")):
            return xml_value(ET.fromstring(content))
        return json.loads(content)

    def _exchange(
        self, method: str, url: str, params: dict[str, str] | None, form: list | None
    ) -> tuple[requests.Response, bytes]:
        """One HTTP call, never redirected, within ``deadline_s`` in all: (response, its body up to the limit).

        Each call has its own session and connection, whose socket a timer shuts at the deadline.
        """
        transport = _Watched()
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            transport.shut()

        timer = threading.Timer(self.deadline_s, expire)
        timer.daemon = True
        started = time.monotonic()
        timer.start()
        try:
            with requests.Session() as session:
                session.mount("http://", transport)
                session.mount("https://", transport)
                response = session.request(
                    method, url, params=params, data=form, timeout=min(self.timeout_s, self.deadline_s),
                    allow_redirects=False, stream=True,
                )  # fmt: skip
                with response:
                    body = bytearray()
                    for chunk in response.iter_content(1 << 16):
                        body += chunk
                        if len(body) > MAX_ANSWER_BYTES:
                            too_long = f"{url}: answer larger than {MAX_ANSWER_BYTES >> 20} MiB"
                            raise RetryableError(too_long, maybe_created=method == "POST")
                        if time.monotonic() - started > self.deadline_s:  # a proxied call has no watched socket
                            expire()
                    if expired.is_set():
                        raise requests.ReadTimeout("deadline")
                return response, bytes(body)
        except (requests.RequestException, Urllib3Error, OSError) as e:
            if expired.is_set():
                raise _Expired from e
            raise
        finally:
            timer.cancel()

    def _call(self, method: str, path: str, params: dict[str, str] | None = None, form: list | None = None) -> Any:
        url = f"{self.endpoint}/{path}.{self.fmt}"
        jurisdiction = [("jurisdiction_id", self.jurisdiction_id)] if self.jurisdiction_id else []
        query = {**(params or {}), **dict(jurisdiction)} if form is None else None
        posted = [*jurisdiction, *form] if form is not None else None
        try:
            response, content = self._exchange(method, url, query, posted)
        except _Expired:
            message = f"{url}: no complete answer within {self.deadline_s:g} s (tickets.deadline_s)"
            raise RetryableError(message, maybe_created=method == "POST") from None
        except (requests.RequestException, Urllib3Error, OSError) as e:
            sent = method == "POST" and not (isinstance(e, requests.RequestException) and _never_connected(e))
            if isinstance(e, requests.Timeout) and not isinstance(e, requests.ConnectTimeout):
                raise RetryableError(f"{url}: no answer within {self.timeout_s:g} s", maybe_created=sent) from None
            message = self._safe(f"{url}: cannot reach the server ({type(e).__name__})")
            raise RetryableError(message, maybe_created=sent) from None
        code = response.status_code
        content_type = response.headers.get("Content-Type", "")
        if 300 <= code < 400:
            target = _host(urljoin(url, response.headers.get("Location", "")))
            message = (
                f"{url}: HTTP {code} redirect to {target} not followed (the API key goes to tickets.endpoint only); "
                "check tickets.endpoint"
            )
            raise RedirectedError(self._safe(message))
        if code >= 400:
            try:
                detail = error_text(self._parse(content, content_type))
            except (ValueError, ET.ParseError, RecursionError):
                detail = None
            message = self._safe(f"{url}: HTTP {code}: {detail}" if detail else f"HTTP {code} from {_host(url)}")
            if code == 429 or code >= 500:
                retry_after = _float(response.headers.get("Retry-After"))
                if retry_after is not None and not 0 <= retry_after <= MAX_RETRY_AFTER_S:  # NaN too
                    retry_after = MAX_RETRY_AFTER_S if retry_after == math.inf else None
                raise RetryableError(message, retry_after, maybe_created=method == "POST" and code != 429)
            raise (AuthError if code in (401, 403) else RejectedError)(message, code)
        try:
            return self._parse(content, content_type)
        except (ValueError, ET.ParseError, RecursionError):  # RecursionError: nested past any real answer
            message = f"{url}: HTTP {code} but the answer is not valid {self.fmt.upper()}"
            raise RetryableError(message, maybe_created=method == "POST") from None

    def services(self) -> dict[str, dict[str, Any]]:
        """``services.json`` by service code (fetched once per client)."""
        if self._services is None:
            body = self._call("GET", "services")
            if not isinstance(body, list):
                raise RetryableError(f"{self.endpoint}/services.{self.fmt}: expected a list of services")
            self._services = {str(s["service_code"]): s for s in body if isinstance(s, dict) and "service_code" in s}
        return self._services

    def definition(self, service_code: str) -> dict[str, Any]:
        """``services/{code}.json``: the service's attributes (fetched once per client)."""
        if service_code not in self._definitions:
            body = self._call("GET", f"services/{requests.utils.quote(service_code, safe='')}")
            attributes = body.get("attributes") if isinstance(body, dict) else None
            self._definitions[service_code] = {"attributes": attributes if isinstance(attributes, list) else []}
        return self._definitions[service_code]

    def _attribute_fields(self, request: NewRequest) -> list[tuple[str, str]]:
        service = self.services().get(request.service_code)
        if service is None:
            offered = ", ".join(sorted(self.services())) or "none"
            raise RejectedError(
                f"{self.endpoint}: service code {request.service_code!r} is not offered (services: {offered})", 404
            )
        if not _truthy(service.get("metadata")):
            return []
        fields = []
        for attribute in self.definition(request.service_code)["attributes"]:
            code = str(attribute.get("code", ""))
            if not code or not _truthy(attribute.get("variable", True)):
                continue
            value = request.attributes.get(code)
            if value is None:
                if _truthy(attribute.get("required")):
                    log.warning(
                        "service %s requires attribute %r; no value configured in tickets.attributes",
                        request.service_code,
                        code,
                    )
                continue
            if attribute.get("datatype") == "multivaluelist":
                fields += [(f"attribute[{code}][]", v.strip()) for v in value.split(",") if v.strip()]
            else:
                fields.append((f"attribute[{code}]", value))
        return fields

    def submit(self, request: NewRequest) -> Submission:
        if self.api_key is None:
            raise AuthError(f"{self.endpoint}: no API key configured", 401)
        form = [
            ("api_key", self.api_key.reveal()),
            ("service_code", request.service_code),
            ("lat", f"{request.lat:.7f}"),
            ("long", f"{request.lon:.7f}"),
            ("description", request.description),
            *([("media_url", request.media_url)] if request.media_url else []),
            *([("address_string", request.address)] if request.address else []),
            *self._attribute_fields(request),
        ]
        body = self._call("POST", "requests", form=form)
        item = _first(body)
        request_id, token = _text(item.get("service_request_id")), _text(item.get("token"))
        if request_id is None and token is None:
            message = f"{self.endpoint}/requests.{self.fmt}: answer has neither service_request_id nor token"
            raise RetryableError(message, maybe_created=True)
        notice = _text(item.get("service_notice"))
        return Submission(
            self._safe(request_id) if request_id else None,
            None if request_id or token is None else self._safe(token),
            self._safe(notice) if notice else None,
        )

    def _remote(self, item: dict[str, Any]) -> RemoteRequest:
        """One listed request, with the key masked in every text the server wrote that is stored or shown (all but
        the description, which is only searched for a hazard's link)."""
        remote = remote_request(item)
        texts = {f.name: getattr(remote, f.name) for f in fields(remote) if f.name != "description"}
        return replace(remote, **{k: self._safe(v) for k, v in texts.items() if isinstance(v, str)})

    def list_requests(self, params: dict[str, str]) -> list[RemoteRequest]:
        body = self._call("GET", "requests", params=params)
        if not isinstance(body, list):
            raise RetryableError(f"{self.endpoint}/requests.{self.fmt}: expected a list of requests")
        return [self._remote(item) for item in body if isinstance(item, dict) and "service_request_id" in item]

    def search(
        self, service_code: str, lat: float, lon: float, radius_m: float, since: datetime, open_only: bool
    ) -> list[RemoteRequest]:
        params = {"service_code": service_code, "start_date": iso_utc(since)}
        if open_only:
            params["status"] = "open"
        if self.radius_search:
            params |= {"lat": f"{lat:.7f}", "long": f"{lon:.7f}", "radius": f"{radius_m:g}"}
        return self.list_requests(params)

    def resolve_token(self, token: str) -> str | None:
        try:
            body = self._call("GET", f"tokens/{requests.utils.quote(token, safe='')}")
        except RejectedError as e:
            if e.status == 404:  # many servers know a token only once its request exists
                return None
            raise
        request_id = _text(_first(body).get("service_request_id"))
        return self._safe(request_id) if request_id else None

    def status(self, service_request_id: str) -> RemoteRequest:
        body = self._call("GET", f"requests/{requests.utils.quote(service_request_id, safe='')}")
        items = [i for i in body if isinstance(i, dict) and "service_request_id" in i] if isinstance(body, list) else []
        if not items:
            raise RetryableError(f"{self.endpoint}/requests/{service_request_id}.{self.fmt}: no request in the answer")
        return self._remote(items[0])
