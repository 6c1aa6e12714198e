"""The interface between the outbox and a municipal hotline's API.

The outbox speaks only :class:`TicketAdapter`: one implementation per vendor API (Open311
GeoReport v2 in :mod:`detector.tickets.open311`), so another vendor is a new class, not a change
to the pipeline. Errors are classified for the outbox's retry policy; their messages never hold
the API key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


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


class Secret:
    """A credential that never prints: ``repr``, ``str`` and f-strings show ``***``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def redact(self, text: str) -> str:
        """``text`` with every occurrence of the secret replaced by ``***``."""
        return text.replace(self._value, "***") if self._value else text

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
