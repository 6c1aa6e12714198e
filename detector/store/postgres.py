"""The hazard store on PostgreSQL + PostGIS: the dialect layer under :class:`detector.store.db.HazardStore`.

The store's SQL is written once, in the SQLite dialect the store began with; :func:`sql` rewrites it for
PostgreSQL (``?`` placeholders, ``INSERT OR IGNORE``, two-argument ``MAX``/``MIN``, the new row's id) and
:func:`ddl` rewrites the migrations' column types. Where a query has to differ in substance (PostGIS, locks), both
forms stand side by side where the query is. Rows read by name or position, as ``sqlite3.Row`` ones.

Connections come from one psycopg pool per address and process. The password never comes from the address: only
from ``PGPASSWORD``, ``~/.pgpass`` or a service file (libpq reads them), so that it appears in no argv and no error.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import psycopg
import psycopg.errors
from psycopg.adapt import Dumper, Loader
from psycopg_pool import ConnectionPool, PoolTimeout

from detector.errors import InputError

SCHEMES = ("postgresql://", "postgres://")
STORE_LOCK = 0x4841_5A41_5244  # the whole store (advisory lock key): "HAZARD"
MIGRATE_LOCK = STORE_LOCK + 1
CELL_DEG = 0.01  # merge-area lock cells: about 1.1 km north-south
MAX_CELLS = 400  # a merge over more cells than this locks the whole store instead
GIS_COLUMNS = frozenset({"geom"})  # the geometry columns migration 8 adds: the GIS reads them, the app reads lat/lon

Error = psycopg.Error
IntegrityError = psycopg.IntegrityError


def is_address(address: str | os.PathLike) -> bool:
    """True for a PostgreSQL address. ``pathlib.Path`` turns ``postgresql://`` into ``postgresql:/``: that too."""
    text = str(address)
    return text.startswith(SCHEMES) or text.startswith(("postgresql:/", "postgres:/"))


def address_url(address: str | os.PathLike) -> str:
    """The libpq URL of ``address`` (its ``//`` restored if a ``Path`` ate one); refused if it carries a password.

    >>> address_url(Path("postgresql://hub@db.city:5432/hazards"))
    'postgresql://hub@db.city:5432/hazards'
    >>> address_url("postgresql://hub:secret@db/hazards")
    Traceback (most recent call last):
    detector.errors.InputError: postgresql://hub@db/hazards: a password in the store address ...
    >>> address_url("postgresql://hub@db/hazards?sslmode=require&password=secret")
    Traceback (most recent call last):
    detector.errors.InputError: postgresql://hub@db/hazards?sslmode=require: a password in the store address ...
    """
    text = str(address)
    for scheme in ("postgresql:", "postgres:"):
        if text.startswith(scheme) and not text.startswith(scheme + "//"):
            text = scheme + "//" + text[len(scheme) :].lstrip("/")
    parts = urlsplit(text)
    if parts.password is not None or "password" in parse_qs(parts.query):
        raise InputError(
            shown_address(text),
            "a password in the store address would show in the process list: give it in PGPASSWORD, ~/.pgpass "
            "or a service file",
        )
    if not parts.path.strip("/"):
        raise InputError(shown_address(text), "the store address names no database (postgresql://user@host/db)")
    return text


def shown_address(url: str) -> str:
    """The address as errors and summaries show it: never a password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}@" if parts.username else ""
    query = urlencode([(k, v) for k, v in parse_qs(parts.query).items() if k != "password"], doseq=True)
    return urlunsplit((parts.scheme, user + host, parts.path, query, ""))


def database_name(url: str) -> str:
    return urlsplit(url).path.strip("/") or "postgres"


# --- the dialect ---------------------------------------------------------------------------------------------------

_QUOTED_OR_MARK = re.compile(r"'(?:[^']|'')*'|\"[^\"]*\"|\?|%")
_PAIR = r"\(\s*([^(),]+?)\s*,\s*([^(),]+?)\s*\)"
_INSERT_INTO = re.compile(r"^\s*INSERT\s+(?:OR\s+IGNORE\s+)?INTO\s+(\w+)", re.IGNORECASE)


def _marks(text: str) -> str:
    """``?`` to ``%s`` outside quoted strings and names; every ``%`` to ``%%`` (psycopg reads them even there)."""
    return _QUOTED_OR_MARK.sub(lambda m: {"?": "%s"}.get(m[0], m[0].replace("%", "%%")), text)


@functools.lru_cache(maxsize=2048)
def sql(text: str) -> str:
    """One statement of the store, SQLite dialect, in PostgreSQL's.

    >>> sql("INSERT OR IGNORE INTO outbox (hazard_id, state) VALUES (?, 'pending')")
    "INSERT INTO outbox (hazard_id, state) VALUES (%s, 'pending') ON CONFLICT DO NOTHING RETURNING id"
    >>> sql("UPDATE passes SET seen = MAX(seen, excluded.seen) WHERE note LIKE '50%'")
    "UPDATE passes SET seen = GREATEST(seen, excluded.seen) WHERE note LIKE '50%%'"
    """
    out = re.sub(r"\bMAX" + _PAIR, r"GREATEST(\1, \2)", text)
    out = re.sub(r"\bMIN" + _PAIR, r"LEAST(\1, \2)", out)
    insert = _INSERT_INTO.match(out)
    if insert:
        ignore = re.search(r"\bOR\s+IGNORE\b", insert[0], re.IGNORECASE)
        out = _INSERT_INTO.sub(f"INSERT INTO {insert[1]}", out, count=1)
        if ignore:
            out += " ON CONFLICT DO NOTHING"
        if insert[1] in _identity_tables() and not re.search(r"\bRETURNING\b", out, re.IGNORECASE):
            out += " RETURNING id"
    return _marks(out)


def ddl(text: str) -> str:
    """One migration statement's SQLite types in PostgreSQL's: an ``id INTEGER PRIMARY KEY`` is an identity,
    INTEGER is 64-bit, REAL is double precision (PostgreSQL's REAL is 32-bit), BLOB is BYTEA.

    >>> ddl("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, x REAL, b BLOB)")
    'CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT, x DOUBLE PRECISION, b BYTEA)'
    """
    out = re.sub(r"\bid INTEGER PRIMARY KEY\b", "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", text)
    out = re.sub(r"\bINTEGER\b", "BIGINT", out)
    out = re.sub(r"\bREAL\b", "DOUBLE PRECISION", out)
    return re.sub(r"\bBLOB\b", "BYTEA", out)


@functools.cache
def _identity_tables() -> frozenset[str]:
    """Tables whose ``id`` the database numbers (an INSERT returns it, as ``cursor.lastrowid`` in SQLite)."""
    from detector.store.schema import MIGRATIONS, for_dialect

    text = "\n".join(for_dialect(m, "sqlite") for m in MIGRATIONS)
    return frozenset(re.findall(r"CREATE TABLE (\w+) \(\s*id INTEGER PRIMARY KEY", text))


class _BoolAsInt(Dumper):
    """The schema keeps flags as integers (SQLite has no boolean): True is 1."""

    def dump(self, obj: bool) -> bytes:
        return b"1" if obj else b"0"


class _Number(Loader):
    """NUMERIC (what SUM of integers gives) as int when whole, else float: as SQLite gives it."""

    def load(self, data) -> int | float:
        text = bytes(data).decode()
        return int(text) if text.lstrip("-").isdigit() else float(text)


class Row(tuple):
    """A row read by position or by column name (the first of that name), with ``keys()``: as ``sqlite3.Row``."""

    _index: ClassVar[dict[str, int]] = {}
    _names: ClassVar[tuple[str, ...]] = ()

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            try:
                return tuple.__getitem__(self, self._index[key])
            except KeyError:
                raise IndexError(f"No item with that key: {key!r}") from None
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor: psycopg.Cursor):
    """Rows as :class:`Row`; the PostGIS columns (``geom``, generated from lat/lon for the GIS) left out, so that a
    ``SELECT *`` reads on PostgreSQL what it reads on SQLite."""
    return _row_maker(tuple(column.name for column in cursor.description or ()))


@functools.lru_cache(maxsize=1024)
def _row_maker(described: tuple[str, ...]):
    """The row type of one shape of result (a merge runs the same few queries again and again)."""
    keep = [i for i, name in enumerate(described) if name not in GIS_COLUMNS]
    names = tuple(described[i] for i in keep)
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)
    kind = type("Row", (Row,), {"_index": index, "_names": names})
    if len(keep) == len(described):
        return kind
    return lambda values: kind([values[i] for i in keep])


class Result:
    """What :meth:`Connection.execute` returns: a cursor's rows (all fetched), ``rowcount`` and ``lastrowid``."""

    def __init__(self, cursor: psycopg.Cursor, returns_id: bool) -> None:
        self.rowcount = cursor.rowcount
        self._rows: list[Row] = cursor.fetchall() if cursor.description is not None else []
        self.lastrowid = self._rows[0][0] if returns_id and self._rows else None
        self._at = 0

    def fetchone(self) -> Row | None:
        if self._at >= len(self._rows):
            return None
        self._at += 1
        return self._rows[self._at - 1]

    def fetchall(self) -> list[Row]:
        rows, self._at = self._rows[self._at :], len(self._rows)
        return rows

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())


class Connection:
    """A psycopg connection that takes the store's statements as they are written (:func:`sql`)."""

    dialect = "postgresql"

    def __init__(self, raw: psycopg.Connection) -> None:
        self.raw = raw

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Result:
        text = sql(statement)
        with self.raw.cursor(row_factory=_row_factory) as cursor:
            cursor.execute(text, tuple(params))
            return Result(cursor, returns_id=text.endswith(" RETURNING id"))

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement over many rows, sent in one pipeline (not a round trip per row); no ids come back."""
        with self.raw.cursor() as cursor:
            cursor.executemany(sql(statement).removesuffix(" RETURNING id"), [tuple(row) for row in rows])


# --- connections -------------------------------------------------------------------------------------------------

_pools: dict[tuple[int, str, float], ConnectionPool] = {}
_pools_lock = threading.Lock()


def _configure(raw: psycopg.Connection) -> None:
    raw.adapters.register_dumper(bool, _BoolAsInt)
    raw.adapters.register_loader("numeric", _Number)


def pool(url: str, lock_timeout_s: float) -> ConnectionPool:
    """The process's pool for ``url`` (a forked worker makes its own: connections do not cross a fork)."""
    key = (os.getpid(), url, lock_timeout_s)
    with _pools_lock:
        found = _pools.get(key)
        if found is None:
            options = f"-c lock_timeout={int(lock_timeout_s * 1000)} -c TimeZone=UTC"
            found = ConnectionPool(
                url,
                min_size=1,
                # A cap, opened on demand: a hub process merges two uploads at once while its ticket sender holds
                # a connection and reviewers read.
                max_size=max(8, os.cpu_count() or 1),
                kwargs={"autocommit": True, "options": options, "connect_timeout": max(2, int(lock_timeout_s))},
                configure=_configure,
                open=False,
                name=f"store-{database_name(url)}",
            )
            try:
                found.open(wait=True, timeout=max(2.0, lock_timeout_s))
            except PoolTimeout:
                found.close()
                raise InputError(shown_address(url), f"cannot connect to PostgreSQL: {_why(url)}") from None
            _pools[key] = found
        return found


def _why(url: str) -> str:
    """Why a connection failed, in one line (libpq's own words; they never carry the password)."""
    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.Error as e:
        return " ".join(str(e).split())
    return "timed out"


@atexit.register
def close_pools() -> None:
    with _pools_lock:
        for key, found in list(_pools.items()):
            if key[0] == os.getpid():
                found.close()
            del _pools[key]


@contextmanager
def borrowed(url: str, lock_timeout_s: float) -> Iterator[Connection]:
    """A connection of the pool, given back after use."""
    found = pool(url, lock_timeout_s)
    try:
        raw = found.getconn(timeout=max(2.0, lock_timeout_s))
    except PoolTimeout:
        raise InputError(shown_address(url), f"no connection to PostgreSQL within {lock_timeout_s:g} s") from None
    try:
        yield Connection(raw)
    finally:
        found.putconn(raw)


# --- locks ---------------------------------------------------------------------------------------------------------


def cells(lat_min: float, lat_max: float, lon_min: float, lon_max: float) -> list[tuple[int, int]]:
    """The lock cells (``CELL_DEG`` squares) that cover a box, in one global order (no deadlock between merges).

    >>> cells(31.255, 31.262, 34.799, 34.801)
    [(3125, 3479), (3125, 3480), (3126, 3479), (3126, 3480)]
    """
    import math

    rows = range(math.floor(lat_min / CELL_DEG), math.floor(lat_max / CELL_DEG) + 1)
    columns = range(math.floor(lon_min / CELL_DEG), math.floor(lon_max / CELL_DEG) + 1)
    return [(r, c) for r in rows for c in columns]


def lock(conn: Connection, area: list[tuple[int, int]] | None) -> None:
    """Inside a transaction: the whole store (``area`` None: one writer at a time, as SQLite), or the cells of a
    merge's area, shared with other merges in other cells (the store lock's shared mode keeps whole-store writers
    out meanwhile). Released at commit or rollback."""
    if area is None or len(area) > MAX_CELLS:
        conn.execute("SELECT pg_advisory_xact_lock(?)", (STORE_LOCK,))
        return
    conn.execute("SELECT pg_advisory_xact_lock_shared(?)", (STORE_LOCK,))
    conn.execute(
        "SELECT count(pg_advisory_xact_lock(c.r::int, c.c::int)) FROM unnest(?::int[], ?::int[]) AS c(r, c)",
        ([r for r, _ in area], [c for _, c in area]),
    )


def error_text(e: psycopg.Error) -> str:
    return " ".join(str(e).split())


def is_lock_timeout(e: BaseException) -> bool:
    return isinstance(e, psycopg.errors.LockNotAvailable | psycopg.errors.QueryCanceled)


def evidence_dir(url: str) -> Path:
    """Evidence photos of a PostgreSQL store: ``<database>_evidence`` in the working folder (a hub's, shared)."""
    return Path(f"{database_name(url)}_evidence")
