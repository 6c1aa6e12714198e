"""The city's GIS layers a store's drives were merged with, remembered in the store (``store_layers``).

A drive merged with ``streets.layer`` (the street centrelines that name each hazard) or ``dedup.hold_near.layer``
(the manhole covers that hold potholes) records each layer's absolute path in the same transaction. Every later
command on that store (``review``, ``export``, ``tickets sync``, the hub) names streets and draws the city under
the map from them without being told again; a layer set in the config or with ``--set`` still wins.

>>> import tempfile
>>> from detector.config import load_config
>>> from detector.store import HazardStore
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "streets.geojson").write_text('{"type": "FeatureCollection", "features": []}')
>>> with HazardStore(folder / "h.db") as store, store.transaction() as conn:
...     remember_layers(conn, used_layers(load_config(overrides=[f"streets.layer={folder / 'streets.geojson'}"])))
>>> with HazardStore(folder / "h.db") as store:
...     Path(streets_config(load_config(), store).layer).name, covers_layer(load_config(), store)
('streets.geojson', None)
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from detector.config import Config
from detector.config.pipeline import StreetsConfig
from detector.gis_layers import StreetNames
from detector.store.db import HazardStore, now_text, store_exists

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RememberedLayer:
    """One layer a drive was merged with: ``role`` is ``streets`` or ``covers``."""

    role: str
    path: Path
    name_field: str | None = None


def used_layers(cfg: Config) -> list[RememberedLayer]:
    """The layers ``cfg`` merges drives with, their paths made absolute."""
    used = []
    if cfg.streets.layer:
        used.append(RememberedLayer("streets", Path(cfg.streets.layer).resolve(), cfg.streets.name_field))
    if cfg.dedup.hold_near.layer:
        used.append(RememberedLayer("covers", Path(cfg.dedup.hold_near.layer).resolve()))
    return used


def remember_layers(conn: sqlite3.Connection, layers: Iterable[RememberedLayer]) -> None:
    """Record ``layers`` (:func:`used_layers`) inside the caller's transaction (a merge's); a role not given is
    left as it was, so a drive merged without the flags does not make the store forget them."""
    for layer in layers:
        conn.execute(
            "INSERT INTO store_layers (role, path, name_field, recorded_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (role) DO UPDATE SET path = excluded.path, name_field = excluded.name_field,"
            " recorded_at = excluded.recorded_at",
            (layer.role, str(layer.path), layer.name_field, now_text()),
        )


REMEMBERED = "SELECT role, path, name_field FROM store_layers ORDER BY role"


def remembered_layers(store: HazardStore) -> dict[str, RememberedLayer]:
    """The layers the store's drives were merged with, by role, those whose file is still there. A layer whose
    file has gone is left out with a warning (the store stays usable; ``--set`` names the layer again)."""
    return layers_in(store.query(REMEMBERED))


def layers_in(rows: Iterable[sqlite3.Row]) -> dict[str, RememberedLayer]:
    """:func:`remembered_layers` from the rows of :data:`REMEMBERED` (read inside a transaction, too)."""
    found = {}
    for row in rows:
        path = Path(row["path"])
        if not path.is_file():
            log.warning("the %s layer this store's drives used is gone (%s); --set names it again", row["role"], path)
            continue
        found[row["role"]] = RememberedLayer(row["role"], path, row["name_field"])
    return found


def streets_config(cfg: Config, store: HazardStore) -> StreetsConfig:
    """The ``streets`` section to use on ``store``: the config's own layer if it sets one, else the remembered one."""
    if cfg.streets.layer:
        return cfg.streets
    remembered = remembered_layers(store).get("streets")
    if remembered is None:
        return cfg.streets
    name_field = cfg.streets.name_field or remembered.name_field
    return cfg.streets.model_copy(update={"layer": str(remembered.path), "name_field": name_field})


def covers_layer(cfg: Config, store: HazardStore) -> Path | None:
    """The mapped features that hold hazards (``dedup.hold_near.layer``): the config's, else the remembered one."""
    if cfg.dedup.hold_near.layer:
        return Path(cfg.dedup.hold_near.layer)
    remembered = remembered_layers(store).get("covers")
    return remembered.path if remembered else None


def street_names(cfg: Config, store: HazardStore) -> StreetNames | None:
    """The street layer that names hazards on ``store`` (:func:`streets_config`), loaded; None without one."""
    return StreetNames.load(streets_config(cfg, store))


def street_names_at(cfg: Config, db: Path, lock_timeout_s: float) -> StreetNames | None:
    """:func:`street_names` for the store at ``db``; only the config's layer when the store does not exist yet."""
    if cfg.streets.layer or not store_exists(db):
        return StreetNames.load(cfg.streets)
    with HazardStore(db, lock_timeout_s) as store:
        return street_names(cfg, store)
