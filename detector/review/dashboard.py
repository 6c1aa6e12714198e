"""The morning dashboard's figures, computed from the store: what was found, what was reported, how fast.

Found hazards are those neither merged (a duplicate) nor rejected (a false alarm), counted on the
local day (and the Sunday-to-Saturday week) of their first sighting; beside them, the drives started
that day or week and the kilometres they covered, so that a day patrolled without a find shows as one.
Requests are open until the 106 system closes them; the two delays are first sighting to request and
request to closed.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from shapely.geometry import shape

from detector.errors import InputError
from detector.pipeline.sources.track import parse_utc
from detector.store import HazardStore
from detector.store.schema import TRIP
from detector.store.values import checked_rows

FOUND = "h.status NOT IN ('merged', 'rejected')"
OUTSIDE = "(outside every neighbourhood)"


@dataclass(frozen=True)
class Neighbourhoods:
    """A polygon layer (GeoJSON, WGS84): each feature's ``name_property`` names it."""

    names: list[str]
    polygons: list[Any]

    @classmethod
    def load(cls, path: str | Path, name_property: str = "name") -> Neighbourhoods:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            features = data["features"] if data.get("type") == "FeatureCollection" else [data]
            names, polygons = [], []
            for i, feature in enumerate(features):
                geometry = shape(feature["geometry"])
                if geometry.geom_type not in ("Polygon", "MultiPolygon"):
                    continue
                props = feature.get("properties") or {}
                names.append(str(props.get(name_property) or f"#{i + 1}"))
                polygons.append(geometry)
        except OSError as e:
            raise InputError(path, f"cannot read the neighbourhood layer ({e.strerror})") from None
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise InputError(path, f"not a GeoJSON polygon layer ({e})") from None
        if not polygons:
            raise InputError(path, "no polygons in the neighbourhood layer")
        return cls(names, polygons)

    def assign(self, lat: list[float], lon: list[float]) -> list[str]:
        """The neighbourhood of each point (the first polygon containing it), or :data:`OUTSIDE`."""
        out = [OUTSIDE] * len(lat)
        x, y = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
        for name, polygon in zip(self.names, self.polygons, strict=True):
            inside = shapely.contains_xy(polygon, x, y) if len(x) else np.zeros(0, bool)
            for i in np.flatnonzero(inside):
                if out[i] == OUTSIDE:
                    out[i] = name
        return out


def _hours(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "median": None, "mean": None}
    return {
        "count": len(values),
        "median": round(statistics.median(values), 2),
        "mean": round(statistics.fmean(values), 2),
    }


def _period_rows(table: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "period": key,
            "counts": v["counts"],
            "total": sum(v["counts"].values()),
            "drives": len(v["trips"]),
            "km": round(v["m"] / 1000, 1),
        }
        for key, v in sorted(table.items())
    ]


def week_start(day: datetime) -> str:
    """The Sunday that starts the (Israeli) week of ``day``.

    >>> week_start(datetime(2026, 6, 3))
    '2026-05-31'
    """
    return (day - timedelta(days=(day.weekday() + 1) % 7)).strftime("%Y-%m-%d")


def dashboard(store: HazardStore, timezone: str, neighbourhoods: Neighbourhoods | None = None) -> dict[str, Any]:
    zone = ZoneInfo(timezone)
    hazards = store.query(
        f"SELECT h.id, h.class, h.status, h.lat, h.lon, h.first_seen, t.status AS ticket_status, t.opened_at,"
        f" t.closed_at FROM hazards h LEFT JOIN tickets t ON t.hazard_id = h.id WHERE {FOUND} ORDER BY h.id"
    )
    hazards = checked_rows(hazards, lambda r: f"hazard #{r['id']}")
    classes = sorted({r["class"] for r in hazards})
    per_day: dict[str, dict[str, Any]] = {}
    per_week: dict[str, dict[str, Any]] = {}

    def periods(utc: float) -> list[dict[str, Any]]:
        """The day's and the week's entries that ``utc`` falls in (local time)."""
        local = datetime.fromtimestamp(utc, zone)
        keys = ((per_day, local.strftime("%Y-%m-%d")), (per_week, week_start(local)))
        return [table.setdefault(key, {"counts": dict.fromkeys(classes, 0), "m": 0.0, "trips": set()})
                for table, key in keys]  # fmt: skip

    for r in hazards:
        for period in periods(r["first_seen"]) if r["first_seen"] is not None else []:
            period["counts"][r["class"]] += 1
    # A drive is a patrol: a live run's segments count once (on each day they cover).
    drives = store.query(
        f"SELECT d.id, {TRIP} AS trip, started_utc, distance_m FROM drives d WHERE started_utc IS NOT NULL"
    )
    drives = [d for d in checked_rows(drives, lambda d: f"drive {d['id']!r}") if d["started_utc"] is not None]
    for d in drives:
        for period in periods(d["started_utc"]):
            period["m"] += d["distance_m"] or 0.0
            period["trips"].add(d["trip"])

    tickets = store.query(
        "SELECT t.hazard_id, t.status, t.opened_at, t.closed_at, h.first_seen FROM tickets t"
        " JOIN hazards h ON h.id = t.hazard_id"
    )
    tickets = checked_rows(tickets, lambda t: f"hazard #{t['hazard_id']}")
    to_request, to_close = [], []
    for t in tickets:
        opened, closed = parse_utc(t["opened_at"]), parse_utc(t["closed_at"])
        if opened is not None and t["first_seen"] is not None:
            to_request.append((opened.timestamp() - t["first_seen"]) / 3600)
        if opened is not None and closed is not None and t["status"] == "closed":
            to_close.append((closed - opened).total_seconds() / 3600)
    outbox = {r["state"]: r["n"] for r in store.query("SELECT state, COUNT(*) AS n FROM outbox GROUP BY state")}
    closed_count = sum(t["status"] == "closed" for t in tickets)
    statuses = {r["status"]: r["n"] for r in store.query("SELECT status, COUNT(*) AS n FROM hazards GROUP BY status")}
    result: dict[str, Any] = {
        "timezone": timezone,
        "classes": classes,
        "found": len(hazards),
        "drives": len({d["trip"] for d in drives}),
        "km_patrolled": round(sum(d["distance_m"] or 0.0 for d in drives) / 1000, 1),
        "per_day": _period_rows(per_day),
        "per_week": _period_rows(per_week),
        "requests": {
            "open": len(tickets) - closed_count,
            "closed": closed_count,
            "queued": outbox.get("pending", 0),
            "failed": outbox.get("failed", 0),
        },
        "hours_to_request": _hours(to_request),
        "hours_to_close": _hours(to_close),
        "possibly_repaired": statuses.get("possibly_repaired", 0),
        "statuses": statuses,
        "neighbourhoods": None,
    }
    if neighbourhoods is not None:
        result["neighbourhoods"] = _by_neighbourhood(hazards, classes, neighbourhoods)
    return result


def _by_neighbourhood(hazards: list, classes: list[str], layer: Neighbourhoods) -> list[dict[str, Any]]:
    names = layer.assign([r["lat"] for r in hazards], [r["lon"] for r in hazards])
    rows = {
        name: {"name": name, "found": 0, "counts": dict.fromkeys(classes, 0), "open_requests": 0,
               "closed_requests": 0, "possibly_repaired": 0}
        for name in [*layer.names, OUTSIDE]
    }  # fmt: skip
    for r, name in zip(hazards, names, strict=True):
        row = rows[name]
        row["found"] += 1
        row["counts"][r["class"]] += 1
        row["possibly_repaired"] += r["status"] == "possibly_repaired"
        if r["ticket_status"] is not None:
            row["closed_requests" if r["ticket_status"] == "closed" else "open_requests"] += 1
    return [row for name, row in rows.items() if name != OUTSIDE or row["found"]]
