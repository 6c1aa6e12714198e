"""Mapped street features that a detector takes for hazards: hold the hazards found on them for review.

Manhole covers are the classic false pothole: a dark disc in the lane (end to end on the simulator,
every false pothole of the shipped model lies on one; see ``models/MODEL_CARD.md``). Cities map their
covers in a utility layer. With ``dedup.hold_near.layer`` set, a hazard of ``dedup.hold_near.classes``
that would be confirmed within ``radius_m`` of a mapped feature stays a candidate instead, with an
event saying which feature and how far: a reviewer looks at the evidence photo and confirms it (a
pothole around the cover's frame, which is common) or rejects it. No request opens on its own.

>>> import json, tempfile
>>> layer = Path(tempfile.mkdtemp()) / "covers.geojson"
>>> cover = {"type": "Feature", "properties": {"name": "MH-7"},
...          "geometry": {"type": "Point", "coordinates": [34.79150, 31.25200]}}
>>> _ = layer.write_text(json.dumps({"type": "FeatureCollection", "features": [cover]}))
>>> rule = HoldRule.load({"layer": str(layer), "radius_m": 3.0, "classes": ["pothole"]})
>>> rule.reason("pothole", 31.25201, 34.79150)
'1.1 m from MH-7 (covers.geojson)'
>>> rule.reason("pothole", 31.25210, 34.79150) is None, rule.reason("fallen_sign", 31.25201, 34.79150) is None
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer

from detector.errors import InputError
from detector.geo import LocalFrame

LABEL_FIELDS = ("name", "id", "asset_id", "kind", "type")  # the first present names a feature in the reason


@dataclass(frozen=True)
class HoldRule:
    """Features of one GIS layer, in a local metric frame, and which hazard classes they hold."""

    layer: Path
    radius_m: float
    classes: frozenset[str]
    local: LocalFrame
    tree: shapely.STRtree
    labels: tuple[str, ...]

    @staticmethod
    def load(section: dict[str, Any]) -> HoldRule | None:
        """The rule of a ``dedup.hold_near`` config section; None when no layer is set."""
        if not section.get("layer"):
            return None
        path = Path(section["layer"])
        stamp = path.stat().st_mtime_ns if path.is_file() else 0
        return _load(path, stamp, float(section["radius_m"]), frozenset(section["classes"]))

    def reason(self, class_name: str, lat: float, lon: float) -> str | None:
        """Why a hazard of ``class_name`` at ``lat, lon`` is held, or None if it is not."""
        if class_name not in self.classes:
            return None
        x, y = self.local.to_xy(lat, lon)
        here = shapely.Point(float(x), float(y))
        near = self.tree.query(here, predicate="dwithin", distance=self.radius_m)
        if len(near) == 0:
            return None
        distances = shapely.distance(self.tree.geometries.take(near), here)
        closest = int(near[int(np.argmin(distances))])
        return f"{float(distances.min()):.1f} m from {self.labels[closest]} ({self.layer.name})"


@lru_cache(maxsize=4)
def _load(path: Path, _stamp: int, radius_m: float, classes: frozenset[str]) -> HoldRule:
    from pyogrio.errors import DataSourceError
    from pyogrio.raw import read

    if not path.is_file():
        raise InputError(path, "feature layer not found (dedup.hold_near.layer)")
    try:
        meta, fids, wkb, fields = read(path, return_fids=True)
    except DataSourceError as e:
        raise InputError(path, f"not a GIS layer GDAL can read ({str(e).splitlines()[0]})") from None
    geometries = shapely.from_wkb(wkb)
    keep = ~shapely.is_missing(geometries) & ~shapely.is_empty(geometries)
    if not keep.any():
        raise InputError(path, "the feature layer has no geometries")
    if meta["crs"] is None:
        raise InputError(path, "the feature layer has no coordinate reference system")
    names = list(meta["fields"])
    column = next((names.index(f) for f in LABEL_FIELDS if f in names), None)
    labels = [str(fields[column][i]) if column is not None else f"feature {fids[i]}" for i in np.flatnonzero(keep)]
    geometries = geometries[keep]
    to_wgs84 = Transformer.from_crs(CRS.from_user_input(meta["crs"]), CRS.from_epsg(4326), always_xy=True)
    lonlat = shapely.transform(geometries, lambda xy: np.column_stack(to_wgs84.transform(xy[:, 0], xy[:, 1])))
    west, south, east, north = shapely.total_bounds(lonlat)
    local = LocalFrame((south + north) / 2, (west + east) / 2)
    metric = shapely.transform(lonlat, lambda xy: np.column_stack(local.to_xy(xy[:, 1], xy[:, 0])))
    return HoldRule(path, radius_m, classes, local, shapely.STRtree(metric), tuple(labels))
