"""The hazard store: one SQLite file (WAL mode), or a PostgreSQL + PostGIS database (:mod:`detector.store.postgres`)
when its address is ``postgresql://user@host:port/db``; versioned schema, every write in a transaction.

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as d:
...     with HazardStore(pathlib.Path(d) / "hazards.db") as store:
...         store.version == len(MIGRATIONS), store.query("PRAGMA journal_mode")[0][0]
(True, 'wal')
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from detector.config import Config
from detector.errors import InputError
from detector.store.schema import MIGRATIONS, PerDialect, for_dialect

STORE_FILE = "hazards.db"
PLAIN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")
EVIDENCE_PREFIX = 48  # characters of a drive id kept in a folder name that also carries its hash


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_postgres(address: str | Path) -> bool:
    """True when the store address names a PostgreSQL database rather than an SQLite file.

    >>> is_postgres("postgresql://hub@db.city/hazards"), is_postgres(Path("postgresql://hub@db/h")), is_postgres("h.db")
    (True, True, False)
    """
    text = str(address)
    return text.startswith(("postgresql:/", "postgres:/"))


def dialect_of(conn: Any) -> str:
    """``sqlite`` or ``postgresql``: the backend of a connection a transaction handed out."""
    return getattr(conn, "dialect", "sqlite")


def store_exists(address: str | Path) -> bool:
    """An SQLite file that is there, or any PostgreSQL address (opening it says whether it answers)."""
    return is_postgres(address) or Path(address).is_file()


def existing_store(cfg: Config, db: str | Path | None = None) -> Path:
    """The store a command that reads one works on (:func:`store_path`); an error naming it when none is there."""
    path = store_path(cfg, db)
    if not store_exists(path):
        raise InputError(path, "no hazard store here (run a drive first, or give --db)")
    return path


def store_errors() -> tuple[type[Exception], ...]:
    """The database errors a store may raise on either backend (for ``except``)."""
    try:
        from detector.store.postgres import Error
    except ImportError:
        return (sqlite3.Error,)
    return (sqlite3.Error, Error)


def integrity_errors() -> tuple[type[Exception], ...]:
    """A constraint refused a write (a duplicate key), on either backend."""
    try:
        from detector.store.postgres import IntegrityError
    except ImportError:
        return (sqlite3.IntegrityError,)
    return (sqlite3.IntegrityError, IntegrityError)


def store_path(cfg: Config, db: str | Path | None = None, out_dir: Path | None = None) -> Path:
    """The hazard store a command works on: ``--db``, else ``store.path``, else ``hazards.db`` in the output
    folder (``detector run --out``; for every other command, and a run without ``--out``: ``run.out_dir``).

    >>> from detector.config import load_config
    >>> cfg = load_config(overrides=["store.path=null", "run.out_dir=runs/latest"])
    >>> str(store_path(cfg)), str(store_path(cfg, out_dir=Path("runs/sample"))), str(store_path(cfg, "h.db"))
    ('runs/latest/hazards.db', 'runs/sample/hazards.db', 'h.db')
    """
    if db:
        return Path(db)
    if cfg.store.path:
        return Path(cfg.store.path)
    return Path(out_dir or cfg.run.out_dir) / STORE_FILE


def evidence_folder(drive_id: str) -> str:
    """The folder of a drive's frames under the evidence folder: a name any file system takes.

    A drive id comes from a video's file name: a short plain one is the folder's name as it is; any other
    keeps its first letters, digits, '.', '-' and '_' (the rest as '_') and a hash of the whole id, so that
    two drives never share a folder.

    >>> evidence_folder("drive-2f0c61d1a6b7")
    'drive-2f0c61d1a6b7'
    >>> evidence_folder("<img src=x>-2f0c61d1a6b7")
    '_img_src_x_-2f0c61d1a6b7-f6b0a9ce4e93'
    >>> len(evidence_folder("x" * 248))
    61
    """
    if PLAIN_NAME.fullmatch(drive_id):
        return drive_id
    prefix = re.sub(r"[^A-Za-z0-9._-]+", "_", drive_id).lstrip(".")[:EVIDENCE_PREFIX] or "drive"
    digest = hashlib.sha256(drive_id.encode("utf-8", "backslashreplace")).hexdigest()[:12]
    return f"{prefix}-{digest}"


class HazardStore:
    """Open (creating and migrating as needed) the store at ``path``.

    A file written by a newer schema is refused. A store locked by another process is waited
    for up to ``lock_timeout_s``, then reported as locked.
    """

    dialect = "sqlite"

    def __init__(self, path: str | Path, lock_timeout_s: float = 30.0) -> None:
        self.lock_timeout_s = lock_timeout_s
        if is_postgres(path):
            self._open_postgres(path)
            return
        self.path = Path(path)
        self.address = str(self.path)
        self._pg = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, timeout=lock_timeout_s, isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise InputError(self.path, f"cannot open the hazard store ({e})") from None
        self.conn.row_factory = sqlite3.Row
        try:
            self.conn.execute("PRAGMA foreign_keys = ON")
            self._wal()
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as e:
            self.conn.close()
            raise self._error(e) from None

    def _open_postgres(self, address: str | Path) -> None:
        try:
            from detector.store import postgres
        except ImportError:
            raise InputError(None, "a PostgreSQL store needs psycopg: pip install -e '.[postgres]'") from None
        url = postgres.address_url(address)
        self.dialect = "postgresql"
        self.address = postgres.shown_address(url)
        self.path = Path(postgres.database_name(url))  # names the files kept beside a store (dry-run log)
        self._evidence = postgres.evidence_dir(url)
        self._pg = postgres.borrowed(url, self.lock_timeout_s)
        self.conn = self._pg.__enter__()
        try:
            postgres_migrate(self)
        except BaseException:
            self.close()
            raise

    def _wal(self) -> None:
        """Switch to WAL. SQLite does not wait on its busy timeout here while another connection creates the
        same new file, so wait by hand."""
        deadline = time.monotonic() + self.lock_timeout_s
        while True:
            try:
                self.conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @property
    def evidence_dir(self) -> Path:
        """Evidence photos live beside the store, and only there (a PostgreSQL store's: in the working folder)."""
        if self._pg is not None:
            return self._evidence
        return self.path.with_name(self.path.stem + "_evidence")

    @property
    def version(self) -> int:
        if self._pg is not None:
            return pg_version(self.conn)
        return user_version(self.conn)

    def _error(self, e: Exception) -> InputError:
        if self._pg is not None:
            from detector.store import postgres

            if postgres.is_lock_timeout(e):
                return InputError(
                    self.address, f"the hazard store is locked by another process (waited {self.lock_timeout_s:g} s)"
                )
            return InputError(self.address, f"hazard store error: {postgres.error_text(e)}")
        text = str(e)
        if "locked" in text or "busy" in text:
            return InputError(
                self.path, f"the hazard store is locked by another process (waited {self.lock_timeout_s:g} s)"
            )
        if "not a database" in text or "malformed" in text:
            return InputError(self.path, "not a hazard store (not an SQLite database, or damaged)")
        return InputError(self.path, f"hazard store error: {text}")

    def _migrate(self) -> None:
        migrate(self.conn, MIGRATIONS, self.path, self.transaction)

    @contextmanager
    def transaction(self, area: list[tuple[int, int]] | None = None, row_locks: bool = False) -> Iterator[Any]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``: all or nothing, one writer at a time.

        On PostgreSQL the same, by an advisory lock on the whole store, unless ``area`` (a merge's lock cells:
        merges in other cells go on at the same time) or ``row_locks`` (the statements lock the rows they need, as
        the outbox's ``FOR UPDATE SKIP LOCKED``) says what the transaction touches."""
        if self._pg is not None:
            with self._pg_transaction(area, row_locks) as conn:
                yield conn
            return
        try:  # sqlite3 waits up to lock_timeout_s for another writer before giving up
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise self._error(e) from None
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            try:
                self.conn.execute("COMMIT")
            except sqlite3.Error as e:
                self.conn.execute("ROLLBACK")
                raise self._error(e) from None

    @contextmanager
    def _pg_transaction(self, area: list[tuple[int, int]] | None, row_locks: bool) -> Iterator[Any]:
        from detector.store import postgres

        try:
            with self.conn.raw.transaction():
                if not row_locks:
                    postgres.lock(self.conn, area)
                yield self.conn
        except postgres.Error as e:
            if isinstance(e, postgres.IntegrityError):
                raise  # a caller tells a duplicate apart (integrity_errors())
            raise self._error(e) from None

    def query(self, sql: str, params=()) -> list[sqlite3.Row]:
        if self._pg is not None:
            from detector.store import postgres

            try:
                return self.conn.execute(sql, params).fetchall()
            except postgres.Error as e:
                raise self._error(e) from None
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as e:
            raise self._error(e) from None

    def close(self) -> None:
        if self._pg is not None:
            pg, self._pg = self._pg, None
            pg.__exit__(None, None, None)
            return
        self.conn.close()

    def __enter__(self) -> HazardStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def pg_version(conn) -> int:
    """The schema version of a PostgreSQL store (its ``store_version`` row; 0 before the first migration)."""
    (exists,) = conn.execute("SELECT to_regclass('store_version') IS NOT NULL").fetchone()
    row = conn.execute("SELECT version FROM store_version").fetchone() if exists else None
    return int(row[0]) if row else 0


def postgres_migrate(store: HazardStore) -> None:
    """:func:`migrate` on PostgreSQL: each migration the database lacks in its own transaction, under an advisory
    lock (hub workers starting together migrate once), the version in ``store_version``."""
    from detector.store import postgres

    conn = store.conn
    known = len(MIGRATIONS)
    try:
        version = pg_version(conn)
        if version > known:
            raise InputError(
                store.address,
                f"written by a newer version of this software (schema {version}, this one knows up to "
                f"{known}); upgrade the software, the database was left untouched",
            )
        if version == known:
            return
        with conn.raw.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(?)", (postgres.MIGRATE_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS store_version (version INTEGER NOT NULL)")
            if not conn.execute("SELECT 1 FROM store_version").fetchone():
                conn.execute("INSERT INTO store_version (version) VALUES (0)")
        for number in range(pg_version(conn), known):
            with conn.raw.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(?)", (postgres.MIGRATE_LOCK,))
                if pg_version(conn) > number:  # another process migrated it while this one waited for the lock
                    continue
                for statement in _statements(for_dialect(MIGRATIONS[number], "postgresql")):
                    conn.execute(postgres.ddl(statement))
                conn.execute("UPDATE store_version SET version = ?", (number + 1,))
    except postgres.Error as e:
        raise store._error(e) from None


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` on a connection in autocommit mode (``isolation_level=None``)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def migrate(
    conn: sqlite3.Connection,
    migrations: Sequence[str | PerDialect],
    path: Path,
    transaction: Callable[[], AbstractContextManager[Any]] | None = None,
) -> None:
    """Bring the SQLite file at ``path`` to schema ``len(migrations)``: each migration it lacks in its own
    transaction (``transaction()``, else :func:`immediate`), with ``PRAGMA user_version`` the number applied.
    A file written by a newer schema is refused, untouched. The hazard store and ``serve-106``'s file use it."""
    transaction = transaction or (lambda: immediate(conn))
    known = len(migrations)
    version = user_version(conn)
    if version > known:
        raise InputError(
            path,
            f"written by a newer version of this software (schema {version}, this one knows up to "
            f"{known}); upgrade the software, the file was left untouched",
        )
    for number in range(version, known):
        with transaction():
            if user_version(conn) > number:  # another process migrated it while this one waited for the lock
                continue
            for statement in _statements(for_dialect(migrations[number], "sqlite")):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number + 1}")


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (the schema has no semicolons inside strings)."""
    return [s.strip() for s in script.split(";") if s.strip()]
