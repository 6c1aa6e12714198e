"""``detector store migrate``: move an SQLite store into PostgreSQL + PostGIS (:mod:`detector.store.move`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from detector.command_registry import AddCommon, Handlers
from detector.config import Config


def _cmd_store(args: argparse.Namespace, cfg: Config) -> int:
    from detector.store.move import move_store

    report = move_store(Path(args.source), args.destination, cfg.store.lock_timeout_s)
    print(report.line())
    return 0


def register(sub: argparse._SubParsersAction, handlers: Handlers, common: AddCommon) -> None:
    """Add ``store migrate`` to the ``detector`` parser."""
    store = sub.add_parser("store", help="the hazard store itself: move it from SQLite to PostgreSQL")
    actions = store.add_subparsers(dest="store_action", required=True, metavar="ACTION")
    migrate = actions.add_parser(
        "migrate",
        help="copy an SQLite store into an empty PostgreSQL + PostGIS database",
        description="Copy every table of an SQLite hazard store (its ids, evidence paths and the evidence folder's "
        "files too) into an empty PostgreSQL database in one transaction, then check every table's count. The "
        "password comes from PGPASSWORD, ~/.pgpass or a service file, never from the address.",
    )
    migrate.add_argument("--from", dest="source", required=True, metavar="FILE", help="the SQLite store to copy")
    migrate.add_argument(
        "--to", dest="destination", required=True, metavar="URL", help="postgresql://user@host:port/database"
    )
    common(migrate)
    handlers["store"] = (_cmd_store, {})
