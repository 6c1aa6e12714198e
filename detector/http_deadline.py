"""Deadlines on each HTTP request for the servers built on uvicorn (h11): slow clients hold no connection.

uvicorn times out only the wait between requests, and any byte received cancels that timer: a client that sends
its request a byte at a time, or opens a connection and sends nothing, holds it (and a worker's memory) for as
long as it likes. :class:`DeadlineProtocol` closes a connection

- silent for ``timeout_keep_alive`` seconds while a request's head is awaited (uvicorn's own timer, re-armed),
- whose request's head is not whole ``head_timeout_s`` after its first byte (or the connection, or the previous
  answer), however often bytes trickle in,
- whose request, body included, is not whole within ``request_timeout_s`` of the same start (None: the body's
  time is the application's to bound, as the hub does for large uploads).

The head's size is bounded by h11 (``h11_max_incomplete_event_size``). Use it as
``uvicorn.Config(app, http=DeadlineProtocol.limited(head_s, request_s), timeout_keep_alive=silence_s)``.
"""

from __future__ import annotations

import asyncio
import logging

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)


class DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's head and, optionally, for the whole request."""

    head_timeout_s: float = 10.0
    request_timeout_s: float | None = 30.0

    @classmethod
    def limited(cls, head_timeout_s: float, request_timeout_s: float | None) -> type[DeadlineProtocol]:
        """This protocol (or a subclass) with these limits, as uvicorn takes a class, not an instance."""
        return type(cls.__name__, (cls,), {"head_timeout_s": head_timeout_s, "request_timeout_s": request_timeout_s})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadlines: dict[str, asyncio.TimerHandle] = {}
        self._await_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._await_head()
        state = self.conn.their_state
        if state is not h11.IDLE:
            self._drop_deadline("head")
        if state not in (h11.IDLE, h11.SEND_BODY):
            self._drop_deadline("request")

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._await_head()  # the next request on a kept-alive connection gets its own clocks

    def connection_lost(self, exc: Exception | None) -> None:
        for what in list(self._deadlines):
            self._drop_deadline(what)
        super().connection_lost(exc)

    def _await_head(self) -> None:
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._unset_keepalive_if_required()
            closing = self.timeout_keep_alive_handler
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, closing)
            if not self._deadlines:  # a new request: its clocks start now and are not reset by what arrives
                limits = (("head", self.head_timeout_s), ("request", self.request_timeout_s))
                for what, limit in limits:
                    if limit is not None:
                        self._deadlines[what] = self.loop.call_later(limit, self._too_slow, what, limit)

    def _drop_deadline(self, what: str) -> None:
        timer = self._deadlines.pop(what, None)
        if timer is not None:
            timer.cancel()

    def _too_slow(self, what: str, limit: float) -> None:
        self._deadlines.pop(what, None)
        if not self.transport.is_closing():
            client = self.client[0] if self.client else "-"
            log.info("%s: closing the connection: the %s did not arrive within %g s", client, what, limit)
            self.transport.close()
