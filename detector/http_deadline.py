"""A deadline on each HTTP request's head for the servers built on uvicorn (h11): slow clients hold no connection.

uvicorn times out only the wait between requests, and any byte received cancels that timer: a client that sends
its request line and headers a byte at a time, or opens a connection and sends nothing, holds it (and a worker's
memory) for as long as it likes. :class:`HeadDeadlineProtocol` arms uvicorn's keep-alive timer when a connection
opens and after each answer, and lets it run until the request's head is whole, however the bytes trickle in: a
head not received within ``timeout_keep_alive`` seconds closes the connection. The head's size is bounded by h11
(``h11_max_incomplete_event_size``); the body's time is the application's to bound.

Use it as ``uvicorn.Config(app, http=HeadDeadlineProtocol, timeout_keep_alive=head_timeout_s)``.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol


class HeadDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, with ``timeout_keep_alive`` as the deadline for each request's whole head."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._unset_keepalive_if_required()
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def data_received(self, data: bytes) -> None:
        # Not uvicorn's: it cancels the timer on any byte. h11 producing the request cancels it (handle_events), and
        # the answer's end arms it again (on_response_complete).
        self.conn.receive_data(data)
        self.handle_events()
