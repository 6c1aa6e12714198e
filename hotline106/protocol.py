"""The hotline's HTTP protocol: uvicorn's h11 with the shared deadlines (:mod:`detector.http_deadline`), and a
request h11 itself refuses (a malformed head, a ``Content-Length`` that is not a number of bytes) answered as a
GeoReport error, in JSON (its path is not known), instead of uvicorn's plain-text 400."""

from __future__ import annotations

import json
import sys

import h11
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES

from detector.http_deadline import DeadlineProtocol

BAD_LENGTH = "Content-Length must be a whole number of bytes"


class Protocol(DeadlineProtocol):
    """:func:`hotline106.server.serve` sets the limits from the settings (``Protocol.limited``)."""

    def send_400_response(self, msg: str) -> None:
        error = sys.exception()  # uvicorn calls this while it handles h11's RemoteProtocolError
        text = BAD_LENGTH if "Content-Length" in str(error) else f"not a valid HTTP request ({error})"
        body = json.dumps([{"code": 400, "description": text}]).encode()
        headers = [(b"content-type", b"application/json; charset=utf-8"), (b"connection", b"close")]
        for event in (h11.Response(status_code=400, headers=headers, reason=STATUS_PHRASES[400]), h11.Data(data=body)):
            self.transport.write(self.conn.send(event))
        self.transport.write(self.conn.send(h11.EndOfMessage()))
        self.transport.close()
