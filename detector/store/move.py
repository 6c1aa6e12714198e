"""``detector store migrate``: an SQLite store's every table copied into a PostgreSQL one, checked by counts.

The copy is one transaction on the destination: it holds every row of the source, or nothing. Tables go in the
order their foreign keys need (a table's own references, such as a hazard merged into a later one, are filled in
once its rows are all there); ids keep their numbers and the identities continue after them. Evidence paths are
relative to the store's evidence folder: they are copied as they are, and the folder's files with them.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from detector.errors import InputError
from detector.store.db import HazardStore, is_postgres

FILLED_TABLES = ("drives", "hazards", "hub_vehicles", "users")  # a destination with rows here is not empty


@dataclass
class MoveReport:
    """Rows copied per table (in copy order), and the evidence files copied."""

    rows: dict[str, int] = field(default_factory=dict)
    evidence_files: int = 0
    evidence_dir: Path | None = None

    def line(self) -> str:
        tables = ", ".join(f"{name} {n}" for name, n in self.rows.items() if n)
        photos = f"; evidence: {self.evidence_files} files into {self.evidence_dir}" if self.evidence_dir else ""
        return f"copied {sum(self.rows.values())} rows ({tables or 'none'}), counts checked{photos}"


def copy_order(conn: sqlite3.Connection, tables: list[str]) -> list[str]:
    """``tables`` with each after those its foreign keys name (ties alphabetical)."""
    needs = {
        t: {r[2] for r in conn.execute(f'PRAGMA foreign_key_list("{t}")') if r[2] != t and r[2] in tables}
        for t in tables
    }
    order: list[str] = []
    while needs:
        ready = sorted(t for t, n in needs.items() if n <= set(order))
        if not ready:  # a cycle between tables: the rest in name order (the schema has none)
            ready = sorted(needs)
        order += ready
        for t in ready:
            del needs[t]
    return order


def move_store(source: Path, destination: str, lock_timeout_s: float = 30.0) -> MoveReport:
    """Copy the SQLite store ``source`` into the empty PostgreSQL store at ``destination``; see the module."""
    if is_postgres(source):
        raise InputError(source, "--from must be an SQLite store file (the store to move)")
    if not is_postgres(destination):
        raise InputError(destination, "--to must be a PostgreSQL address: postgresql://user@host:port/database")
    if not Path(source).is_file():
        raise InputError(source, "no hazard store here")
    report = MoveReport()
    with HazardStore(source, lock_timeout_s) as src, HazardStore(destination, lock_timeout_s) as dst:
        filled = [t for t in FILLED_TABLES if dst.query(f"SELECT 1 FROM {t} LIMIT 1")]
        if filled:
            raise InputError(dst.address, f"already holds rows ({', '.join(filled)}): move into an empty database")
        names = [r[0] for r in src.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        tables = copy_order(src.conn, [n for n in names if not n.startswith("sqlite_")])
        with dst.transaction() as conn:
            for table in tables:
                report.rows[table] = _copy_table(src.conn, conn, table)
        for table, copied in report.rows.items():
            (found,) = dst.query(f"SELECT COUNT(*) FROM {table}")[0]
            if found != copied:
                raise InputError(dst.address, f"table {table}: {found} rows after the copy, the source has {copied}")
        if src.evidence_dir.is_dir():
            report.evidence_dir = dst.evidence_dir
            report.evidence_files = _copy_evidence(src.evidence_dir, dst.evidence_dir)
    return report


def _copy_table(src: sqlite3.Connection, dst, table: str) -> int:
    """Copy one table (inside the destination's transaction); the rows copied."""
    wanted = {
        r[0]
        for r in dst.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND is_generated = 'NEVER'",
            (table,),
        )
    }
    if not wanted:
        raise InputError(None, f"table {table} of the source is not in the destination's schema")
    columns = [r[1] for r in src.execute(f'PRAGMA table_info("{table}")') if r[1] in wanted]
    own = [r[3] for r in src.execute(f'PRAGMA foreign_key_list("{table}")') if r[2] == table and r[3] in columns]
    rows = src.execute(f'SELECT {", ".join(columns)} FROM "{table}"').fetchall()
    plain = [[None if c in own else v for c, v in zip(columns, row, strict=True)] for row in rows]
    names = ", ".join(columns)
    with dst.raw.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in plain:
            copy.write_row(row)
    key = "id" if "id" in columns else None
    for column in own:  # a row's reference to a row of its own table, now that all are there
        if key is None:
            raise InputError(None, f"table {table}: refers to itself without an id column")
        index, at = columns.index(column), columns.index(key)
        dst.raw.cursor().executemany(
            f"UPDATE {table} SET {column} = %s WHERE {key} = %s",
            [(row[index], row[at]) for row in rows if row[index] is not None],
        )
    if key and rows and dst.execute("SELECT pg_get_serial_sequence(?, 'id')", (table,)).fetchone()[0]:
        dst.execute(f"SELECT setval(pg_get_serial_sequence(?, 'id'), (SELECT MAX(id) FROM {table}))", (table,))
    return len(rows)


def _copy_evidence(source: Path, destination: Path) -> int:
    """Copy the evidence folder's files (those already there are kept); how many files the source has."""
    shutil.copytree(source, destination, dirs_exist_ok=True)
    return sum(1 for p in source.rglob("*") if p.is_file())
