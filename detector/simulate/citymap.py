"""The simulated world as a city maps it: GeoPackages in the Israeli grid, as municipal GIS layers come.

- ``covers.gpkg``: the manhole covers, named points, what ``dedup.hold_near.layer`` reads;
- ``streets.gpkg``: the street centrelines, named lines, what ``streets.layer`` reads.

The simulator writes both beside each drive (:mod:`detector.gis_layers` reads them), so that the pipeline runs
with them on simulated drives as on real ones.
"""

from __future__ import annotations

from functools import lru_cache
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


STREET_NAMES = (
    "Rager Blvd", "Herzl", "Ben Gurion Blvd", "Yehuda HaLevi", "Tuviyahu Ave", "Ha'Atzmaut", "Kakal",
    "Shazar Blvd", "HaNasi", "Hadassah", "Smilansky", "Trumpeldor", "Eilat", "Hebron Rd", "Mivtza Uvda",
)  # fmt: skip


def street_names(world: World) -> list[str]:
    """A name for each of ``world.streets``: the route's legs in turn (a new street after each corner), and each
    cross street the name of the leg it carries on through its junction."""
    legs = len(world.route.vertices) - 1
    order = np.random.default_rng([world.seed, 106]).permutation(len(STREET_NAMES))
    names = [
        STREET_NAMES[order[k % len(order)]] + (f" {k // len(order) + 1}" if k >= len(order) else "")
        for k in range(legs)
    ]
    for stub in world.streets[legs:]:
        ends = [k for k in range(legs) if stub.a in (world.streets[k].a, world.streets[k].b)]
        along = max(ends, key=lambda k: abs(float(np.dot(world.streets[k].direction, stub.direction))))
        names.append(names[along])
    return names


def write_streets(path: Path, world: World, frame: LocalFrame, epsg: int = ISRAELI_GRID) -> int:
    """Write ``world``'s streets as named lines (see :func:`street_names`); returns how many."""
    write_lines(path, [np.array([s.a, s.b]) for s in world.streets], street_names(world), frame, epsg)
    return len(world.streets)


def write_points(path: Path, xy: np.ndarray, names: list[str], frame: LocalFrame, epsg: int = ISRAELI_GRID) -> None:
    """Named points at local metres ``xy`` (N, 2) of ``frame``, as a GeoPackage layer ``covers`` in ``epsg``."""
    points = shapely.points(_to_grid(np.asarray(xy, float).reshape(-1, 2), frame, epsg))
    _write(path, points, names, "covers", "Point", epsg)


def write_lines(
    path: Path, lines: list[np.ndarray], names: list[str], frame: LocalFrame, epsg: int = ISRAELI_GRID
) -> None:
    """Named polylines, each (K, 2) local metres of ``frame``, as a GeoPackage layer ``streets`` in ``epsg``."""
    geometries = [shapely.linestrings(_to_grid(np.asarray(line, float), frame, epsg)) for line in lines]
    _write(path, geometries, names, "streets", "LineString", epsg)


def _to_grid(xy: np.ndarray, frame: LocalFrame, epsg: int) -> np.ndarray:
    lat, lon = frame.to_latlon(xy[:, 0], xy[:, 1])
    return np.column_stack(_from_wgs84(epsg).transform(lon, lat))


@lru_cache(maxsize=4)
def _from_wgs84(epsg: int) -> Transformer:
    """One transformer per grid, not one per street line."""
    return Transformer.from_crs(4326, epsg, always_xy=True)


def _write(path: Path, geometries, names: list[str], layer: str, geometry_type: str, epsg: int) -> None:
    wkb = np.array(shapely.to_wkb(geometries), dtype=object)
    path.unlink(missing_ok=True)  # GDAL would add a second layer to an existing GeoPackage
    write(path, wkb, [np.array(names, dtype=object)], ["name"], layer=layer, driver="GPKG",
          geometry_type=geometry_type, crs=f"EPSG:{epsg}")  # fmt: skip
