"""The interface between the outbox and a municipal hotline's API.

The outbox speaks only :class:`TicketAdapter`: one implementation per vendor API (Open311
GeoReport v2 in :mod:`detector.tickets.open311`), so another vendor is a new class, not a change
to the pipeline. Errors are classified for the outbox's retry policy; their messages never hold
the API key.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from urllib.parse import quote, quote_plus


@dataclass(frozen=True)
class NewRequest:
    """What to open for one hazard."""

    hazard_id: int
    service_code: str
    lat: float
    lon: float
    description: str
    media_url: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    address: str | None = None  # the street, from the city's street layer (GeoReport address_string)


@dataclass(frozen=True)
class Submission:
    """The server's answer to a new request: its id now, or a token resolved to an id later."""

    service_request_id: str | None
    token: str | None
    notice: str | None = None


@dataclass(frozen=True)
class RemoteRequest:
    """A request as the server lists it (ids are always strings)."""

    service_request_id: str
    status: str
    service_code: str | None = None
    lat: float | None = None
    lon: float | None = None
    description: str = ""
    status_notes: str | None = None
    requested: str | None = None
    updated: str | None = None
    service_notice: str | None = None


WINDOW = 8  # this many characters of a secret in a row are masked wherever they appear


def _encodings(value: str) -> set[str]:
    """The forms in which a server could echo ``value``: as is, URL-quoted, base64 (each alignment's core)."""
    raw = value.encode()
    forms = {value, quote(value, safe=""), quote_plus(value)}
    for shift in range(3):  # the secret's bytes at any offset within a base64 text encode to one of three cores
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * shift + raw).decode()
            forms.add(text[-(-8 * shift // 6) : 8 * (shift + len(raw)) // 6])  # the characters of raw's bits only
    return {f for f in forms if f}


def _fold(text: str) -> str:
    """Lower case, one character for one (so that positions in the folded text are positions in ``text``)."""
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


class Secret:
    """A credential that never prints: ``repr``, ``str`` and f-strings show ``***``."""

    __slots__ = ("_value", "_windows")

    def __init__(self, value: str) -> None:
        self._value = value
        # every run of WINDOW characters (the whole, if shorter) of each form it could be echoed in, lower case
        self._windows: dict[int, set[str]] = {}
        for form in _encodings(value) if value else ():
            size = min(WINDOW, len(form))
            folded = _fold(form)
            self._windows.setdefault(size, set()).update(folded[i : i + size] for i in range(len(form) - size + 1))

    def reveal(self) -> str:
        return self._value

    def redact(self, text: str) -> str:
        """``text`` with the secret masked as ``***`` wherever a server could have echoed it, changed or not: in
        any case, URL-quoted or base64-encoded, whole or any :data:`WINDOW` characters of it.

        >>> Secret("s3cret/key+0042").redact("bad key S3CRET/KEY (s3cret%2Fkey%2B0042, czNjcmV0L2tleSswMDQy)")
        'bad key *** (***, ***)'
        """
        folded = _fold(text)
        masked = bytearray(len(text))
        for size, windows in self._windows.items():
            for start in range(len(text) - size + 1):
                if folded[start : start + size] in windows:
                    masked[start : start + size] = b"\x01" * size
        if not any(masked):
            return text
        out, previous = [], False
        for char, hidden in zip(text, masked, strict=True):
            if not hidden:
                out.append(char)
            elif not previous:
                out.append("***")
            previous = bool(hidden)
        return "".join(out)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


class TicketError(Exception):
    """A request the server did not accept; the message is safe to log and store."""


class RetryableError(TicketError):
    """Network error, timeout, 5xx or 429: try again later (after ``retry_after_s`` if the server said).

    ``maybe_created``: the request may exist on the server although no id came back (the answer
    to a POST was lost), so it must be looked for, not posted blindly, and only once the server
    can list it.
    """

    def __init__(self, message: str, retry_after_s: float | None = None, maybe_created: bool = False) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.maybe_created = maybe_created


class RedirectedError(RetryableError):
    """A 3xx answer: never followed, as the request may carry the API key. The endpoint has moved (or something
    stands in the way): an operator must check ``tickets.endpoint``; the request waits in the outbox."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class RejectedError(TicketError):
    """A 4xx answer other than 429: retrying the same request would fail the same way."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class AuthError(RejectedError):
    """401/403: the API key was refused. An operator's problem, not the hazard's: the request waits."""


class TicketAdapter(Protocol):
    """A hotline API as the outbox needs it."""

    def search(
        self, service_code: str, lat: float, lon: float, radius_m: float, since: datetime, open_only: bool
    ) -> list[RemoteRequest]:
        """Requests of this service since ``since`` (near the point where the server can filter by position)."""
        ...

    def submit(self, request: NewRequest) -> Submission:
        """Open a new request."""
        ...

    def resolve_token(self, token: str) -> str | None:
        """The request id behind a token, or None while the server has not assigned one."""
        ...

    def status(self, service_request_id: str) -> RemoteRequest:
        """The request's current status."""
        ...
