"""Hazards out of the store for the GIS team: GeoJSON and GeoPackage (WGS84, via GDAL) and CSV.

Four layers: ``hazards`` (points, every attribute), ``sightings`` (each sighting of an exported hazard,
placed where that frame put it, with the vehicle's position and the range), ``drives`` (each drive's
path as a line: where the patrols have looked, so that a street without hazards is known to be driven) and
``signs`` (the sign inventory: every standing sign the drives mapped, and those gone missing; docs/signs.md).
A GeoPackage holds all four by default; a GeoJSON or CSV file holds one.

The same :func:`export_layers` serves the command line and the review app, so an export of the app's
current filter is exactly what the command would write.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import CRS

from detector.errors import InputError
from detector.gis_layers import StreetNames
from detector.holds import held_words
from detector.store import HazardStore
from detector.store.schema import TRIP
from detector.store.streets import street_of
from detector.store.tracks import drive_tracks
from detector.store.values import checked_rows

FORMATS = {"geojson": "GeoJSON", "gpkg": "GPKG", "csv": "CSV"}
STATUSES = ("candidate", "confirmed", "rejected", "possibly_repaired", "repaired", "merged")
LAYERS = ("hazards", "sightings", "drives", "signs")
TIME_FIELDS = ("first_seen", "last_seen", "time", "started", "ended")  # UTC seconds in the store, ISO 8601 out
# (name, SQL expression): every attribute a GIS analyst filters or styles on.
FIELDS = [
    ("id", "h.id"),
    ("class", "h.class"),
    ("status", "h.status"),
    (  # the status a person reads: a candidate held for a reviewer is "held" (detector.holds)
        "state",
        "CASE WHEN h.status = 'candidate' AND EXISTS (SELECT 1 FROM events e WHERE e.hazard_id = h.id"
        " AND e.action = 'held') THEN 'held' ELSE h.status END",
    ),
    ("lat", "h.lat"),
    ("lon", "h.lon"),
    ("uncertainty_m", "h.uncertainty_m"),
    ("first_seen", "h.first_seen"),
    ("last_seen", "h.last_seen"),
    ("sighting_count", "h.sighting_count"),
    ("drive_count", "h.drive_count"),
    ("confidence", "h.confidence"),
    ("width_m", "h.width_m"),
    ("area_class", "h.area_class"),
    ("lane_offset_m", "h.lane_offset_m"),
    ("severity", "h.severity"),
    ("misses", "h.misses"),
    ("evidence_path", "h.evidence_path"),
    (  # why a candidate waits for a reviewer: a mapped feature it lies on, the filing policy (detector.holds)
        "held_reason",
        "CASE WHEN h.status = 'candidate' THEN (SELECT e.detail FROM events e"
        " WHERE e.hazard_id = h.id AND e.action = 'held' ORDER BY e.id DESC LIMIT 1) END",
    ),
    ("request_id", "t.service_request_id"),
    ("request_status", "t.status"),
    ("request_opened_at", "t.opened_at"),
    ("request_closed_at", "t.closed_at"),
    ("request_notice", "t.service_notice"),
    ("street", "h.street"),  # named at the merge (detector.store.streets), else now from the street layer, if any
]
HAZARD_FIELDS = [name for name, _ in FIELDS]
SIGN_FIELDS = [  # the sign inventory (detector.store.signs)
    ("id", "g.id"),
    ("status", "g.status"),  # standing | down | missing
    ("lat", "g.lat"),
    ("lon", "g.lon"),
    ("uncertainty_m", "g.uncertainty_m"),
    ("kind", "g.kind"),  # the sign's type, when the model tells it
    ("height_m", "g.height_m"),  # the plate's centre over the road
    ("tilt_deg", "g.tilt_deg"),
    ("first_seen", "g.first_seen"),
    ("last_seen", "g.last_seen"),
    ("views", "g.views"),
    ("drive_count", "g.drive_count"),
    ("confidence", "g.confidence"),
    ("misses", "g.misses"),
    ("photo_path", "g.photo_path"),
    ("missing_hazard_id", "g.missing_hazard_id"),
]
SIGHTING_FIELDS = [
    ("id", "s.id"),
    ("hazard_id", "s.hazard_id"),
    ("hazard_status", "h.status"),
    ("drive_id", "s.drive_id"),
    ("frame_index", "s.frame_index"),
    ("time", "s.utc"),
    ("class", "s.class"),
    ("confidence", "s.confidence"),
    ("lat", "s.lat"),
    ("lon", "s.lon"),
    ("range_m", "s.range_m"),
    ("lateral_m", "s.lateral_m"),
    ("uncertainty_m", "s.uncertainty_m"),
    ("width_m", "s.width_m"),
    ("far", "s.far"),  # beyond localize.max_range_m: placed loosely
    ("vehicle_lat", "s.vehicle_lat"),
    ("vehicle_lon", "s.vehicle_lon"),
    ("heading", "s.heading"),
    ("evidence_path", "s.evidence_path"),
]
DRIVE_FIELDS = [
    ("id", "d.id"),
    ("started", "d.started_utc"),
    ("ended", "d.ended_utc"),
    ("distance_m", "d.distance_m"),
    ("frames_sampled", "d.frames_sampled"),
    ("camera", "d.camera"),
    ("trip", TRIP),
    ("video", "d.video"),
    ("processed_at", "d.processed_at"),
    ("sightings", "(SELECT COUNT(*) FROM sightings s WHERE s.drive_id = d.id)"),
    ("hazards", "(SELECT COUNT(DISTINCT s.hazard_id) FROM sightings s WHERE s.drive_id = d.id)"),
]


@dataclass(frozen=True)
class HazardFilter:
    status: tuple[str, ...] = ()
    since: float | None = None
    classes: tuple[str, ...] = ()
    min_confidence: float | None = None
    drive: str | None = None
    until: float | None = None  # with ``since``, a date range: hazards first seen before this

    def where(self) -> tuple[str, list[Any]]:
        """SQL over ``hazards h`` (merged duplicates left out unless a status is asked for), and its parameters."""
        return _all_of(
            "h.status != 'merged'" if not self.status else "1=1",
            ("h.status IN ({})", self.status),
            ("h.last_seen >= ?", self.since),
            ("h.class IN ({})", self.classes),
            ("h.confidence >= ?", self.min_confidence),
            ("h.first_seen < ?", self.until),
            ("h.id IN (SELECT hazard_id FROM sightings WHERE drive_id = ?)", self.drive or None),
        )

    def drive_where(self) -> tuple[str, list[Any]]:
        """SQL over ``drives d``: the time range and the one drive, if given; hazard attributes do not apply."""
        return _all_of(
            "1=1",
            ("COALESCE(d.ended_utc, d.started_utc) >= ?", self.since),
            ("d.started_utc < ?", self.until),
            ("d.id = ?", self.drive or None),
        )


def _all_of(first: str, *conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
    """``first`` AND each condition whose value is given (a tuple fills the ``{}`` of an ``IN ({})`` list).

    >>> _all_of("1=1", ("a >= ?", 2.0), ("b IN ({})", ("x", "y")), ("c = ?", None), ("d IN ({})", ()))
    ('1=1 AND a >= ? AND b IN (?,?)', [2.0, 'x', 'y'])
    """
    clauses, params = [first], []
    for sql, value in conditions:
        if value is None or value == ():
            continue
        values = list(value) if isinstance(value, tuple) else [value]
        clauses.append(sql.format(",".join("?" * len(values))))
        params += values
    return " AND ".join(clauses), params


def parse_since(text: str) -> float:
    """``2026-06-01`` or ``2026-06-01T07:30:00Z`` → UTC seconds; a clear error otherwise."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(None, f"--since {text!r}: expected a date like 2026-06-01 or 2026-06-01T07:30:00Z") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def check_statuses(statuses: list[str]) -> tuple[str, ...]:
    bad = [s for s in statuses if s not in STATUSES]
    if bad:
        raise InputError(None, f"unknown status {bad[0]!r} (known: {', '.join(STATUSES)})")
    return tuple(statuses)


def check_layers(layers: list[str] | None, fmt: str) -> tuple[str, ...]:
    """The layers to write: those asked for, else every layer in a GeoPackage and hazards elsewhere."""
    if fmt not in FORMATS:
        raise InputError(None, f"unknown export format {fmt!r} (geojson, gpkg or csv)")
    chosen = tuple(dict.fromkeys(layers or (LAYERS if fmt == "gpkg" else ("hazards",))))
    bad = [name for name in chosen if name not in LAYERS]
    if bad:
        raise InputError(None, f"unknown layer {bad[0]!r} (known: {', '.join(LAYERS)})")
    if len(chosen) > 1 and fmt != "gpkg":
        raise InputError(None, f"a {fmt} file holds one layer, not {', '.join(chosen)}: export each to its own file")
    return chosen


@dataclass(frozen=True)
class Layer:
    """One layer of an export: attribute rows in field order, and each row's WGS84 geometry (WKB, or None)."""

    name: str
    fields: list[str]
    rows: list[dict[str, Any]]
    geometry: list[bytes | None]
    geometry_type: str


def hazard_rows(
    store: HazardStore,
    filt: HazardFilter = HazardFilter(),
    streets: StreetNames | None = None,
    hold_words: Callable[[str | None], str | None] = held_words,
) -> list[dict[str, Any]]:
    """The hazards ``filt`` selects, with :data:`HAZARD_FIELDS` (``street`` None without a street layer). Why a
    hazard is held is said by ``hold_words`` (English; the review app's in the reader's language)."""
    where, params = filt.where()
    source = f"hazards h LEFT JOIN tickets t ON t.hazard_id = h.id WHERE {where} ORDER BY h.id"
    rows = _rows(store, FIELDS, source, params, "hazard")
    for row in rows:
        row["street"] = street_of(row, streets)
        row["held_reason"] = hold_words(row["held_reason"])
    return rows


def sign_rows(store: HazardStore, streets: StreetNames | None = None) -> list[dict[str, Any]]:
    """The sign inventory, every sign (:data:`SIGN_FIELDS` and ``street``), oldest first."""
    rows = _rows(store, SIGN_FIELDS, "signs g ORDER BY g.id", [], "sign")
    for row in rows:
        row["street"] = streets.name(row["lat"], row["lon"]) if streets else None
    return rows


def export_layers(
    store: HazardStore,
    filt: HazardFilter = HazardFilter(),
    layers: tuple[str, ...] = ("hazards",),
    streets: StreetNames | None = None,
    hold_words: Callable[[str | None], str | None] = held_words,
) -> list[Layer]:
    """The named layers (see :data:`LAYERS`): the hazards ``filt`` selects, their sightings, its time range's drives,
    the sign inventory (all of it: the filter is the hazards')."""
    out = []
    for name in layers:
        if name == "signs":
            rows = sign_rows(store, streets)
            out.append(Layer(name, [*_names(SIGN_FIELDS), "street"], rows, [_point(r) for r in rows], "Point"))
        elif name == "hazards":
            rows = hazard_rows(store, filt, streets, hold_words)
            out.append(Layer(name, HAZARD_FIELDS, rows, [_point(r) for r in rows], "Point"))
        elif name == "sightings":
            where, params = filt.where()
            source = (
                f"sightings s JOIN hazards h ON h.id = s.hazard_id WHERE s.hazard_id IN (SELECT h.id FROM hazards h"
                f" WHERE {where}) ORDER BY s.hazard_id, s.utc, s.id"
            )
            rows = _rows(store, SIGHTING_FIELDS, source, params, "sighting")
            out.append(Layer(name, _names(SIGHTING_FIELDS), rows, [_point(r) for r in rows], "Point"))
        else:
            where, params = filt.drive_where()
            rows = _rows(store, DRIVE_FIELDS, f"drives d WHERE {where} ORDER BY d.started_utc, d.id", params, "drive")
            paths = {f["properties"]["drive"]: f["geometry"]["coordinates"] for f in drive_tracks(store)["features"]}
            lines = [shapely.to_wkb(shapely.linestrings(paths[r["id"]])) if r["id"] in paths else None for r in rows]
            out.append(Layer(name, _names(DRIVE_FIELDS), rows, lines, "LineString"))
    return out


def _names(fields: list[tuple[str, str]]) -> list[str]:
    return [name for name, _ in fields]


def _rows(
    store: HazardStore, fields: list[tuple[str, str]], source: str, params: list[Any], kind: str
) -> list[dict[str, Any]]:
    """The rows as dicts, times as ISO 8601; a value not valid (see :mod:`detector.store.values`) empty, a point
    whose position is not valid left out."""
    columns = ", ".join(f"{sql} AS {name}" for name, sql in fields)
    rows = checked_rows(store.query(f"SELECT {columns} FROM {source}", params), lambda r: f"{kind} #{r['id']}")
    for row in rows:
        for key in TIME_FIELDS:
            if row.get(key) is not None:
                row[key] = datetime.fromtimestamp(row[key], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return rows


def _point(row: dict[str, Any]) -> bytes:
    return shapely.to_wkb(shapely.Point(row["lon"], row["lat"]))


def write_layers(layers: list[Layer], path: Path, fmt: str) -> None:
    """Write the layers to one file: features in WGS84 (GeoJSON: one layer; GeoPackage: any) or a CSV table."""
    check_layers([layer.name for layer in layers], fmt)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.unlink()  # GDAL would otherwise append to or refuse an existing file
    except OSError as e:
        raise InputError(path, f"cannot write export ({e.strerror})") from None
    if fmt == "csv":
        (layer,) = layers
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=layer.fields)
            writer.writeheader()
            writer.writerows(layer.rows)
        return
    from pyogrio.raw import write

    for layer in layers:
        write(
            str(path), np.array(layer.geometry, dtype=object), [_column(layer.rows, n) for n in layer.fields],
            layer.fields, layer=layer.name, driver=FORMATS[fmt], geometry_type=layer.geometry_type,
            crs=CRS.from_epsg(4326).to_wkt(),
        )  # fmt: skip


def _column(rows: list[dict[str, Any]], name: str) -> np.ndarray:
    values = [r[name] for r in rows]
    if values and all(isinstance(v, int) for v in values):
        return np.array(values, dtype=np.int64)
    if all(isinstance(v, float | int) or v is None for v in values) and any(v is not None for v in values):
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return np.array(["" if v is None else str(v) for v in values], dtype=object)


NEGATIVE_FIELDS = ("hazard_id", "class", "drive_id", "frame_index", "image", "x1", "y1", "x2", "y2", "confidence")


def write_negatives(store: HazardStore, out_dir: Path) -> int:
    """Hazards rejected as false alarms, as hard negatives for retraining: their frames under ``out_dir/images``
    and ``negatives.csv`` (one row per rejected box). Returns the number of rows."""
    from detector.store.review import negative_examples

    rows = negative_examples(store)
    root = store.evidence_dir.resolve()
    try:
        (out_dir / "images").mkdir(parents=True, exist_ok=True)
        with (out_dir / "negatives.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=NEGATIVE_FIELDS)
            writer.writeheader()
            for row in rows:
                source = (root / (row["frame"] or "")).resolve()
                image = ""
                if row["frame"] and source.is_relative_to(root) and source.is_file():
                    image = f"images/{row['drive_id']}_{source.name}"
                    shutil.copyfile(source, out_dir / image)
                writer.writerow({**{k: row.get(k) for k in NEGATIVE_FIELDS}, "image": image})
    except OSError as e:
        raise InputError(out_dir, f"cannot write negatives ({e.strerror})") from None
    return len(rows)
