"""Hazards out of the store for the GIS team: GeoJSON and GeoPackage (WGS84, via GDAL) and CSV.

The same :func:`hazard_rows` query serves the command line and the review app, so an export of
the app's current filter is exactly what the command would write.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import CRS

from detector.errors import InputError
from detector.store import HazardStore

FORMATS = {"geojson": "GeoJSON", "gpkg": "GPKG", "csv": "CSV"}
STATUSES = ("candidate", "confirmed", "rejected", "possibly_repaired", "repaired", "merged")
TIME_FIELDS = ("first_seen", "last_seen")
# (name, SQL expression): every attribute a GIS analyst filters or styles on.
FIELDS = [
    ("id", "h.id"),
    ("class", "h.class"),
    ("status", "h.status"),
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
    (  # why a candidate waits for a reviewer: the mapped feature it lies on (dedup.hold_near)
        "held_reason",
        "CASE WHEN h.status = 'candidate' THEN (SELECT e.detail FROM events e"
        " WHERE e.hazard_id = h.id AND e.action = 'held' ORDER BY e.id DESC LIMIT 1) END",
    ),
    ("request_id", "t.service_request_id"),
    ("request_status", "t.status"),
    ("request_opened_at", "t.opened_at"),
    ("request_closed_at", "t.closed_at"),
    ("request_notice", "t.service_notice"),
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
        clauses, params = ["h.status != 'merged'" if not self.status else "1=1"], []
        if self.status:
            clauses.append(f"h.status IN ({','.join('?' * len(self.status))})")
            params += self.status
        if self.since is not None:
            clauses.append("h.last_seen >= ?")
            params.append(self.since)
        if self.classes:
            clauses.append(f"h.class IN ({','.join('?' * len(self.classes))})")
            params += self.classes
        if self.min_confidence is not None:
            clauses.append("h.confidence >= ?")
            params.append(self.min_confidence)
        if self.until is not None:
            clauses.append("h.first_seen < ?")
            params.append(self.until)
        if self.drive:
            clauses.append("h.id IN (SELECT hazard_id FROM sightings WHERE drive_id = ?)")
            params.append(self.drive)
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


def hazard_rows(store: HazardStore, filt: HazardFilter = HazardFilter()) -> list[dict[str, Any]]:
    where, params = filt.where()
    columns = ", ".join(f"{sql} AS {name}" for name, sql in FIELDS)
    sql = f"SELECT {columns} FROM hazards h LEFT JOIN tickets t ON t.hazard_id = h.id WHERE {where} ORDER BY h.id"
    rows = [dict(r) for r in store.query(sql, params)]
    for row in rows:
        for key in TIME_FIELDS:
            row[key] = datetime.fromtimestamp(row[key], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return rows


def write_hazards(rows: list[dict[str, Any]], path: Path, fmt: str) -> None:
    """Write rows as Point features in WGS84 (GeoJSON, GeoPackage) or as a CSV table."""
    if fmt not in FORMATS:
        raise InputError(None, f"unknown export format {fmt!r} (geojson, gpkg or csv)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.unlink()  # GDAL would otherwise append to or refuse an existing file
    except OSError as e:
        raise InputError(path, f"cannot write export ({e.strerror})") from None
    names = [name for name, _ in FIELDS]
    if fmt == "csv":
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=names)
            writer.writeheader()
            writer.writerows(rows)
        return
    from pyogrio.raw import write

    geometry = shapely.to_wkb(shapely.points([(r["lon"], r["lat"]) for r in rows])) if rows else np.array([], object)
    field_data = [_column(rows, name) for name in names]
    write(
        str(path), geometry, field_data, names, layer="hazards", driver=FORMATS[fmt], geometry_type="Point",
        crs=CRS.from_epsg(4326).to_wkt(),
    )  # fmt: skip


def _column(rows: list[dict[str, Any]], name: str) -> np.ndarray:
    values = [r[name] for r in rows]
    if name in ("id", "sighting_count", "drive_count", "misses"):
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
