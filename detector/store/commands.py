"""``detector store migrate``: move an SQLite store into PostgreSQL + PostGIS (:mod:`detector.store.move`);
``detector store name-streets``: name every stored hazard by its street (:mod:`detector.store.streets`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from detector.command_registry import STORE_HELP, AddCommon, Handlers
from detector.config import Config


def _cmd_store(args: argparse.Namespace, cfg: Config) -> int:
    if args.store_action == "name-streets":
        return _name_streets(args, cfg)
    from detector.store.move import move_store

    report = move_store(Path(args.source), args.destination, cfg.store.lock_timeout_s)
    print(report.line())
    return 0


def _name_streets(args: argparse.Namespace, cfg: Config) -> int:
    from tqdm import tqdm

    from detector.errors import InputError
    from detector.store import HazardStore
    from detector.store.db import existing_store
    from detector.store.layers import remember_layers, street_names, used_layers
    from detector.store.streets import name_all

    db = existing_store(cfg, args.db)
    with HazardStore(db, cfg.store.lock_timeout_s) as store:
        streets = street_names(cfg, store)
        if streets is None:
            raise InputError(db, "no street layer: set streets.layer (--set streets.layer=FILE)")
        if cfg.streets.layer:  # later merges and commands on the store use it too
            with store.transaction() as conn:
                remember_layers(conn, [layer for layer in used_layers(cfg) if layer.role == "streets"])
        (total,) = store.query("SELECT COUNT(*) FROM hazards")[0]
        with tqdm(total=total, unit="hazard", desc="naming streets", disable=total < 5000) as bar:
            report = name_all(store, streets, bar.update)
    print(report.line())
    return 0


def register(sub: argparse._SubParsersAction, handlers: Handlers, common: AddCommon) -> None:
    """Add ``store migrate`` and ``store name-streets`` to the ``detector`` parser."""
    store = sub.add_parser("store", help="the hazard store itself: move it to PostgreSQL, name its hazards by street")
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
    name = actions.add_parser(
        "name-streets",
        help="name every stored hazard by its street (after setting or changing streets.layer)",
        description="Set each hazard's street (the gis_hazards view's, exports', 106 requests') from the street "
        "layer: streets.layer, else the one the store's drives were merged with. Merges name the hazards near "
        "their drives; this names all of them at once, in transactions of 1000. A layer given with --set is "
        "remembered by the store, so later merges use it too.",
    )
    name.add_argument("--db", type=Path, help=STORE_HELP)
    common(name)
    handlers["store"] = (_cmd_store, {})
