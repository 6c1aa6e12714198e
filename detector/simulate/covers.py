"""The simulated world's manhole covers as a city maps them: a GeoPackage of named points in the Israeli grid.

It is what ``dedup.hold_near.layer`` reads (:mod:`detector.features`); the simulator writes one beside each
drive (``covers.gpkg``) so that the pipeline can be run with it on simulated drives as on real ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import shapely
from pyogrio.raw import write
from pyproj import Transformer

from detector.geo import LocalFrame
from detector.simulate.world import World

ISRAELI_GRID = 2039  # Israeli Transverse Mercator, the grid Israeli municipalities keep their layers in


def write_covers(path: Path, world: World, frame: LocalFrame, epsg: int = ISRAELI_GRID) -> int:
    """Write ``world``'s manhole covers as points named ``MH-<world>-<n>``; returns how many."""
    covers = np.array([(x, y) for x, y, _ in world.wear.manholes], float).reshape(-1, 2)
    names = [f"MH-{world.seed}-{k + 1:03d}" for k in range(len(covers))]
    write_points(path, covers, names, frame, epsg)
    return len(covers)


def write_points(path: Path, xy: np.ndarray, names: list[str], frame: LocalFrame, epsg: int = ISRAELI_GRID) -> None:
    """Named points at local metres ``xy`` (N, 2) of ``frame``, as a GeoPackage layer in ``epsg``."""
    xy = np.asarray(xy, float).reshape(-1, 2)
    lat, lon = frame.to_latlon(xy[:, 0], xy[:, 1])
    east, north = Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    geometry = np.array(shapely.to_wkb(shapely.points(np.column_stack([east, north]))), dtype=object)
    path.unlink(missing_ok=True)  # GDAL would add a second layer to an existing GeoPackage
    write(path, geometry, [np.array(names, dtype=object)], ["name"], layer="covers", driver="GPKG",
          geometry_type="Point", crs=f"EPSG:{epsg}")  # fmt: skip
