"""Each hazard's street, stored (``hazards.street``): named from the city's street layer (``streets.layer``,
:class:`detector.gis_layers.StreetNames`) so that the GIS reads it in ``gis_hazards`` and every export, 106 request
and review page says the same (:func:`street_of`).

A merge names the hazards its drive touched, where they now are, and the stored hazards near its path (those
merged before the layer was set, or named from an older one): with the street layer it is merged with, else the
one the store remembers (:mod:`detector.store.layers`). ``detector store name-streets`` names every hazard at once
(:func:`name_all`), after a layer is first set or the city's layer changes. A hazard that moves (new sightings,
a reviewer's move or merge) loses its stored street, named where it was: until a merge near it names it again,
:func:`street_of` names it on the fly from where it now is.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from detector.config.pipeline import StreetsConfig
from detector.errors import InputError
from detector.gis_layers import StreetNames
from detector.store.db import HazardStore
from detector.store.layers import REMEMBERED, RememberedLayer, layers_in

log = logging.getLogger(__name__)

BATCH = 1000  # hazards named per transaction by name_all: a long run holds the store a moment at a time


def street_of(row: Mapping[str, Any] | sqlite3.Row, streets: StreetNames | None) -> str | None:
    """A hazard's street: the one stored at its merge, else named now from ``streets`` (None without one).

    >>> street_of({"street": "Herzl", "lat": 31.0, "lon": 34.0}, None)
    'Herzl'
    >>> street_of({"street": None, "lat": 31.0, "lon": 34.0}, None) is None
    True
    """
    if row["street"]:
        return row["street"]
    if streets is None or row["lat"] is None or row["lon"] is None:
        return None
    return streets.name(row["lat"], row["lon"])


def merge_streets(
    conn: sqlite3.Connection, layers: Iterable[RememberedLayer], max_distance_m: float
) -> StreetNames | None:
    """The street layer a merge names hazards with: the one among ``layers`` (the merge's), else the one the
    store remembers; None without either. Loaded once per process and file version (:meth:`StreetNames.load`).
    A layer that is gone or not readable names nothing (a warning): the merge goes on, its hazards kept (exports,
    requests and the review app, which name streets from the same layer, refuse it in one line)."""
    layer = next((found for found in layers if found.role == "streets"), None)
    if layer is None:
        layer = layers_in(conn.execute(REMEMBERED).fetchall()).get("streets")
        if layer is None:
            return None
    try:
        return StreetNames.load(_section(layer, max_distance_m))
    except InputError as e:
        log.warning("hazards not named by street: %s", e)
        return None


def _section(layer: RememberedLayer, max_distance_m: float) -> StreetsConfig:
    return StreetsConfig(layer=str(layer.path), name_field=layer.name_field, max_distance_m=max_distance_m)


def name_hazards(conn: sqlite3.Connection, streets: StreetNames, hazard_ids: Iterable[int]) -> int:
    """Set the street of the hazards ``hazard_ids`` from where they are (inside the caller's transaction); only
    rows whose name changes are written. Returns how many were."""
    ids = sorted(set(hazard_ids))
    changed = 0
    for start in range(0, len(ids), BATCH):  # bounded IN lists
        chunk = ids[start : start + BATCH]
        rows = conn.execute(
            f"SELECT id, lat, lon, street FROM hazards WHERE id IN ({','.join('?' * len(chunk))})", chunk
        ).fetchall()
        for row in rows:
            name = streets.name(row["lat"], row["lon"])
            if name != row["street"]:
                conn.execute("UPDATE hazards SET street = ? WHERE id = ?", (name, row["id"]))
                changed += 1
    return changed


@dataclass
class NamingReport:
    """What ``detector store name-streets`` did."""

    hazards: int = 0
    changed: int = 0
    named: int = 0  # hazards with a street now
    layer: str = ""

    def line(self) -> str:
        return (
            f"{self.hazards} hazards: {self.named} on a named street, {self.hazards - self.named} on none within reach;"
            f" {self.changed} changed (street layer {self.layer})"
        )


def name_all(store: HazardStore, streets: StreetNames, progress: Callable[[int], None] | None = None) -> NamingReport:
    """Name every hazard of ``store`` by its street: :data:`BATCH` hazards per transaction, in id order (an
    interrupted run leaves those done named; running it again finishes). ``progress`` is told each batch's size."""
    report = NamingReport(layer=streets.features.path.name)
    after = 0
    while True:
        with store.transaction() as conn:
            ids = [
                r["id"] for r in conn.execute("SELECT id FROM hazards WHERE id > ? ORDER BY id LIMIT ?", (after, BATCH))
            ]
            if not ids:
                break
            report.changed += name_hazards(conn, streets, ids)
        report.hazards += len(ids)
        after = ids[-1]
        if progress is not None:
            progress(len(ids))
    (report.named,) = store.query("SELECT COUNT(*) FROM hazards WHERE street IS NOT NULL")[0]
    return report
