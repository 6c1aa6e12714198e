"""``detector serve-106``: the hotline (:mod:`hotline106.app`) on a socket, until Ctrl-C or SIGTERM.

The API keys it accepts come from ``OPEN311_API_KEYS`` (comma-separated), never from argv.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path
from typing import Any

from detector.config.tools import ServerConfig
from detector.errors import InputError
from hotline106.app import create_app
from hotline106.protocol import Protocol
from hotline106.requests_db import RequestDb

KEYS_ENV = "OPEN311_API_KEYS"


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
