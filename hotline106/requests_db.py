"""The hotline's own SQLite file of requests: its schema, and every query the routes make.

Requests are committed before each answer, so a restarted server keeps them. The schema is versioned like the
hazard store's (:data:`MIGRATIONS`, applied by :func:`detector.store.db.migrate`). The routes are ``async`` and
run on uvicorn's one event loop, so the file's one connection needs no lock.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detector.errors import InputError
from detector.store.db import migrate, user_version

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


@dataclass(frozen=True)
class Search:
    """What a GET ``requests`` asks for. ``ids`` (``service_request_id``, even empty) overrides every other filter;
    ``start``/``end`` bound ``requested_at``."""

    ids: list[str] | None = None
    codes: list[str] | None = None
    statuses: list[str] | None = None
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True)
class NewRequest:
    """A POSTed request, checked, as it is stored."""

    token: str | None
    visible_at: float  # a token-mode request is listed only from then on
    service_code: str
    lat: float
    lon: float
    description: str
    media_url: str | None
    attributes: dict[str, Any]
    jurisdiction_id: str | None
    address: str | None


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

    def rows(self, sql: str, params=()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    def insert(self, request: NewRequest, now: float) -> int:
        """Store ``request``, open; its id."""
        r = request
        cur = self.conn.execute(
            "INSERT INTO requests (token, visible_at, service_code, lat, long, description, media_url, attributes,"
            " jurisdiction_id, status, requested_at, updated_at, address) VALUES (?,?,?,?,?,?,?,?,?, 'open', ?, ?, ?)",
            (r.token, r.visible_at, r.service_code, r.lat, r.lon, r.description, r.media_url, json.dumps(r.attributes),
             r.jurisdiction_id, now, now, r.address),
        )  # fmt: skip
        return int(cur.lastrowid or 0)

    def visible(self, request_id: str, now: float) -> sqlite3.Row | None:
        """The request of id ``request_id`` (as the path gives it), once it is listed."""
        rows = self.rows("SELECT * FROM requests WHERE CAST(id AS TEXT) = ? AND visible_at <= ?", (request_id, now))
        return rows[0] if rows else None

    def by_token(self, token: str) -> sqlite3.Row | None:
        rows = self.rows("SELECT id, visible_at FROM requests WHERE token = ?", (token,))
        return rows[0] if rows else None

    def close_request(self, request_id: int, notes: str | None, now: float) -> None:
        self.conn.execute(
            "UPDATE requests SET status = 'closed', status_notes = ?, updated_at = ? WHERE id = ?",
            (notes, now, request_id),
        )

    def search(self, search: Search, now: float) -> list[sqlite3.Row]:
        """The listed requests ``search`` asks for, newest first."""
        where, values = ["visible_at <= ?"], [now]

        def among(column: str, items: list[str]) -> None:
            where.append(f"{column} IN ({','.join('?' * len(items))})")
            values.extend(items)

        if search.ids is not None:
            among("CAST(id AS TEXT)", search.ids)
        else:
            if search.codes:
                among("service_code", search.codes)
            if search.statuses:
                among("status", search.statuses)
            if search.start is not None:
                where.append("requested_at >= ?")
                values.append(search.start)
            if search.end is not None:
                where.append("requested_at <= ?")
                values.append(search.end)
        sql = f"SELECT * FROM requests WHERE {' AND '.join(where)} ORDER BY requested_at DESC, id DESC"
        return self.rows(sql, values)

    def close(self) -> None:
        self.conn.close()
