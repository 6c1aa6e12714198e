"""The city under the review map: its own GIS layers as a vector basemap, and each street's patrol coverage.

With no tile server (``review.tile_url``) and no WMS (``review.wms_url``), the map draws the city's layers: the
street centrelines the store's drives were named with (:mod:`detector.store.layers`, or ``streets.layer``), the
mapped features that hold hazards (the manhole covers) and any ``review.basemap_layers``. With either server, its
tiles lie under everything and the streets are drawn over them, for their coverage colours.

**Coverage.** A street counts as patrolled by a drive when the drive's track runs within :data:`COVER_M` of it
along at least :data:`COVERED_FRACTION` of its length, so a cross street the vehicle only passed over is not
counted. Each street carries the time of the last drive that patrolled it (None: never); the map colours streets
by it and filters those not patrolled for N days, which answers "which streets have we not seen".

>>> from pathlib import Path
>>> import numpy as np
>>> from detector.geo import LocalFrame
>>> local = LocalFrame(31.25, 34.79)
>>> streets = [np.array([(0.0, 0.0), (0.0, 200.0)]), np.array([(-30.0, 100.0), (30.0, 100.0)])]
>>> tree = shapely.STRtree([shapely.linestrings(s) for s in streets])
>>> layer = FeatureLayer(Path("s.gpkg"), local, tree, ("Herzl", "Kakal"), np.array([]))
>>> lat, lon = local.to_latlon(np.full(20, 2.0), np.linspace(-10.0, 210.0, 20))
>>> street_coverage(layer, [DrivenTrack(1000.0, shapely.linestrings(np.column_stack([lon, lat])))])
[1000.0, None]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely

from detector.gis_layers import FeatureLayer
from detector.store import HazardStore
from detector.store.tracks import drive_tracks

COVER_M = 10.0  # a street within this of a drive's track (GPS error and lane offset) was in the patrol's view...
COVERED_FRACTION = 0.5  # ...along at least this share of its length
PRECISION_DEG = 1e-6  # coordinates sent to the map: about 0.1 m


@dataclass(frozen=True)
class DrivenTrack:
    """One drive's path (WGS84 longitude, latitude) and when it was driven (epoch seconds)."""

    utc: float
    line: shapely.Geometry


def driven_tracks(store: HazardStore) -> list[DrivenTrack]:
    """Every drive's path with its end time (else its start), oldest first; drives without a time are left out."""
    when = {
        r["id"]: r["utc"]
        for r in store.query("SELECT id, COALESCE(ended_utc, started_utc) AS utc FROM drives")
        if r["utc"] is not None
    }
    tracks = [
        DrivenTrack(float(when[f["properties"]["drive"]]), shapely.from_geojson(json.dumps(f["geometry"])))
        for f in drive_tracks(store)["features"]
        if f["properties"]["drive"] in when
    ]
    return sorted(tracks, key=lambda t: t.utc)


def street_coverage(streets: FeatureLayer, tracks: list[DrivenTrack]) -> list[float | None]:
    """Per street of ``streets``, the time of the last of ``tracks`` that patrolled it (module docstring)."""
    geometries = streets.tree.geometries
    lengths = shapely.length(geometries)
    last: list[float | None] = [None] * len(lengths)
    to_local = lambda xy: np.column_stack(streets.local.to_xy(xy[:, 1], xy[:, 0]))  # noqa: E731
    for track in tracks:
        band = shapely.buffer(shapely.transform(track.line, to_local), COVER_M)
        near = streets.tree.query(band, predicate="intersects")
        if len(near) == 0:
            continue
        inside = shapely.length(shapely.intersection(geometries.take(near), band))
        for index in near[inside >= COVERED_FRACTION * lengths[near]]:
            previous = last[int(index)]
            last[int(index)] = track.utc if previous is None else max(previous, track.utc)
    return last


def features(layer: FeatureLayer, **columns: list[Any]) -> dict[str, Any]:
    """``layer`` as a GeoJSON FeatureCollection (WGS84), each feature's ``name`` its label, plus ``columns``."""
    geometries = shapely.set_precision(layer.lonlat, PRECISION_DEG)
    collection = []
    for i, geometry in enumerate(shapely.to_geojson(geometries)):
        properties = {"name": layer.labels[i], **{key: values[i] for key, values in columns.items()}}
        collection.append({"type": "Feature", "properties": properties, "geometry": json.loads(geometry)})
    return {"type": "FeatureCollection", "features": collection}


def basemap(
    streets: FeatureLayer | None, others: tuple[FeatureLayer, ...], store: HazardStore | None
) -> dict[str, Any]:
    """What the map draws of the city: ``streets`` (with each one's last patrol when ``store`` is given; the
    public map gets none) and the ``others`` layers, each by its file name."""
    drawn: dict[str, Any] = {"streets": None, "layers": []}
    if streets is not None:
        coverage = {"last_driven": street_coverage(streets, driven_tracks(store))} if store is not None else {}
        drawn["streets"] = features(streets, **coverage)
    drawn["layers"] = [{"name": layer.path.name, "features": features(layer)} for layer in others]
    return drawn
