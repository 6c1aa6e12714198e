"""The city's own GIS layers beside the hazards: mapped features that hold hazards for review, and street names.

Any layer GDAL reads, in any CRS, is loaded once into a local metric frame with a spatial index
(:class:`FeatureLayer`).

**Held on mapped features.** A detector takes some street features for hazards.

Manhole covers are the classic false pothole: a dark disc in the lane (figures: ``models/MODEL_CARD.md``).
Cities map their
covers in a utility layer. With ``dedup.hold_near.layer`` set, a hazard of ``dedup.hold_near.classes``
that would be confirmed within ``radius_m`` of a mapped feature stays a candidate instead, with an
event saying which feature and how far: a reviewer looks at the evidence photo and confirms it (a
pothole around the cover's frame, which is common) or rejects it. No request opens on its own.

>>> import json, tempfile
>>> layer = Path(tempfile.mkdtemp()) / "covers.geojson"
>>> cover = {"type": "Feature", "properties": {"name": "MH-7"},
...          "geometry": {"type": "Point", "coordinates": [34.79150, 31.25200]}}
>>> _ = layer.write_text(json.dumps({"type": "FeatureCollection", "features": [cover]}))
>>> from detector.config.pipeline import HoldNearConfig, StreetsConfig
>>> rule = HoldRule.load(HoldNearConfig(layer=str(layer), radius_m=3.0, classes=["pothole"]))
>>> rule.reason("pothole", 31.25201, 34.79150)
'1.1 m from MH-7 (covers.geojson)'
>>> rule.reason("pothole", 31.25210, 34.79150) is None, rule.reason("fallen_sign", 31.25201, 34.79150) is None
(True, True)

**Street names.** With ``streets.layer`` set to the city's street centrelines, each hazard is named by the
nearest street within ``streets.max_distance_m`` (:class:`StreetNames`): its 106 request carries it as the
GeoReport ``address_string`` and in the description, and exports and the review app show it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import shapely
from pyproj import CRS, Transformer

from detector.config.pipeline import HoldNearConfig, StreetsConfig
from detector.errors import InputError
from detector.geo import LocalFrame

LABEL_FIELDS = ("name", "id", "asset_id", "kind", "type")  # the first present names a feature in the reason
STREET_FIELDS = ("name", "street", "street_name", "name_en", "name_he")  # the first present is a street's name


@dataclass(frozen=True)
class FeatureLayer:
    """A GIS layer's features in a local metric frame, indexed, each with a label from its attributes."""

    path: Path
    local: LocalFrame
    tree: shapely.STRtree
    labels: tuple[str, ...]
    lonlat: np.ndarray  # the same features in WGS84 (longitude, latitude), for drawing them on a map

    def nearest(self, lat: float, lon: float, within_m: float) -> tuple[str, float] | None:
        """The closest feature's label and distance in metres, if one lies within ``within_m`` of ``lat, lon``."""
        x, y = self.local.to_xy(lat, lon)
        here = shapely.Point(float(x), float(y))
        near = self.tree.query(here, predicate="dwithin", distance=within_m)
        if len(near) == 0:
            return None
        distances = shapely.distance(self.tree.geometries.take(near), here)
        return self.labels[int(near[int(np.argmin(distances))])], float(distances.min())

    @staticmethod
    def load(path: str | Path, label_fields: tuple[str, ...], key: str, label_required: bool = False) -> FeatureLayer:
        """Read the layer at ``path``, cached until the file changes. Labels come from the first of ``label_fields``
        the layer has; without one, features are labelled by number, or the layer is refused if ``label_required``.
        The config key ``key`` names the layer in errors."""
        path = Path(path)
        stamp = path.stat().st_mtime_ns if path.is_file() else 0
        return _load(path, stamp, label_fields, key, label_required)


@dataclass(frozen=True)
class HoldRule:
    """Features of one GIS layer and which hazard classes they hold (``dedup.hold_near``)."""

    features: FeatureLayer
    radius_m: float
    classes: frozenset[str]

    @staticmethod
    def load(section: HoldNearConfig) -> HoldRule | None:
        """The rule of a ``dedup.hold_near`` config section; None when no layer is set."""
        if not section.layer:
            return None
        features = FeatureLayer.load(section.layer, LABEL_FIELDS, "dedup.hold_near.layer")
        return HoldRule(features, float(section.radius_m), frozenset(section.classes))

    def reason(self, class_name: str, lat: float, lon: float) -> str | None:
        """Why a hazard of ``class_name`` at ``lat, lon`` is held, or None if it is not."""
        if class_name not in self.classes:
            return None
        found = self.features.nearest(lat, lon, self.radius_m)
        if found is None:
            return None
        label, distance = found
        return f"{distance:.1f} m from {label} ({self.features.path.name})"


@dataclass(frozen=True)
class StreetNames:
    """The city's street centrelines (``streets`` config section): the street a hazard lies on.

    >>> import json, tempfile
    >>> layer = Path(tempfile.mkdtemp()) / "streets.geojson"
    >>> herzl = {"type": "Feature", "properties": {"name": "Herzl"},
    ...          "geometry": {"type": "LineString", "coordinates": [[34.7915, 31.2510], [34.7915, 31.2530]]}}
    >>> _ = layer.write_text(json.dumps({"type": "FeatureCollection", "features": [herzl]}))
    >>> streets = StreetNames.load(StreetsConfig(layer=str(layer), name_field=None, max_distance_m=25.0))
    >>> streets.name(31.2520, 34.79155), streets.name(31.2520, 34.7950)
    ('Herzl', None)
    """

    features: FeatureLayer
    max_distance_m: float

    @staticmethod
    def load(section: StreetsConfig) -> StreetNames | None:
        """From a ``streets`` config section; None when no layer is set."""
        if not section.layer:
            return None
        fields = (str(section.name_field),) if section.name_field else STREET_FIELDS
        layer = FeatureLayer.load(section.layer, fields, "streets.layer", label_required=True)
        return StreetNames(layer, float(section.max_distance_m))

    def name(self, lat: float, lon: float) -> str | None:
        found = self.features.nearest(lat, lon, self.max_distance_m)
        return found[0] if found else None


@lru_cache(maxsize=8)
def _load(path: Path, _stamp: int, label_fields: tuple[str, ...], key: str, label_required: bool) -> FeatureLayer:
    from pyogrio.errors import DataSourceError
    from pyogrio.raw import read

    if not path.is_file():
        raise InputError(path, f"feature layer not found ({key})")
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
    column = next((names.index(f) for f in label_fields if f in names), None)
    if column is None and label_required:
        wanted = " or ".join(repr(f) for f in label_fields)
        raise InputError(path, f"no attribute {wanted} ({key}; the layer has {', '.join(names) or 'none'})")
    labels = [str(fields[column][i]) if column is not None else f"feature {fids[i]}" for i in np.flatnonzero(keep)]
    geometries = geometries[keep]
    to_wgs84 = Transformer.from_crs(CRS.from_user_input(meta["crs"]), CRS.from_epsg(4326), always_xy=True)
    lonlat = shapely.transform(geometries, lambda xy: np.column_stack(to_wgs84.transform(xy[:, 0], xy[:, 1])))
    west, south, east, north = shapely.total_bounds(lonlat)
    local = LocalFrame((south + north) / 2, (west + east) / 2)
    metric = shapely.transform(lonlat, lambda xy: np.column_stack(local.to_xy(xy[:, 1], xy[:, 0])))
    return FeatureLayer(path, local, shapely.STRtree(metric), tuple(labels), lonlat)
