"""Each drive's path, simplified, for the review map: with no basemap, the driven tracks are the street network.

``merge_drive`` stores one line per drive (the positions of its sampled frames) with :func:`write_drive_track`;
drives processed by older versions fall back to the vehicle positions of their sightings.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import numpy as np
import shapely

from detector.geo import LocalFrame
from detector.store.db import HazardStore


def simplify_track(lat, lon, tolerance_m: float = 2.0) -> list[list[float]]:
    """``[[lon, lat], ...]`` (GeoJSON order) with points dropped while the line stays within ``tolerance_m``.

    >>> len(simplify_track([31.0, 31.0001, 31.0002, 31.0003], [34.0] * 4))
    2
    """
    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    keep = np.isfinite(lat) & np.isfinite(lon)
    lat, lon = lat[keep], lon[keep]
    if len(lat) < 2:
        return [[float(x), float(y)] for x, y in zip(lon, lat, strict=True)]
    frame = LocalFrame(float(np.median(lat)), float(np.median(lon)))
    x, y = frame.to_xy(lat, lon)
    line = shapely.simplify(shapely.linestrings(np.column_stack([x, y])), tolerance_m, preserve_topology=False)
    xy = shapely.get_coordinates(line)
    s_lat, s_lon = frame.to_latlon(xy[:, 0], xy[:, 1])
    return [
        [round(float(a), 7), round(float(b), 7)]
        for a, b in zip(np.atleast_1d(s_lon), np.atleast_1d(s_lat), strict=True)
    ]


def write_drive_track(conn: sqlite3.Connection, drive_id: str, lat, lon, tolerance_m: float = 2.0) -> int:
    """Store the drive's simplified path inside the caller's transaction; the number of points kept."""
    coords = simplify_track(lat, lon, tolerance_m)
    if len(coords) < 2:
        return 0
    geometry = json.dumps({"type": "LineString", "coordinates": coords})
    conn.execute(
        "INSERT INTO drive_tracks (drive_id, geojson) VALUES (?, ?)"
        " ON CONFLICT (drive_id) DO UPDATE SET geojson = excluded.geojson",
        (drive_id, geometry),
    )
    return len(coords)


def drive_tracks(store: HazardStore) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of every drive's path: the stored track, else its sightings' vehicle positions."""
    stored = {r["drive_id"]: json.loads(r["geojson"]) for r in store.query("SELECT * FROM drive_tracks")}
    features = []
    for drive in store.query("SELECT id, started_utc FROM drives ORDER BY started_utc, id"):
        geometry = stored.get(drive["id"])
        if geometry is None:
            rows = store.query(
                "SELECT vehicle_lat, vehicle_lon FROM sightings WHERE drive_id = ? AND vehicle_lat IS NOT NULL"
                " ORDER BY utc, frame_index",
                (drive["id"],),
            )
            coords = simplify_track([r[0] for r in rows], [r[1] for r in rows])
            if len(coords) < 2:
                continue
            geometry = {"type": "LineString", "coordinates": coords}
        features.append({"type": "Feature", "properties": {"drive": drive["id"]}, "geometry": geometry})
    return {"type": "FeatureCollection", "features": features}
