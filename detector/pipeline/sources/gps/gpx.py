"""GPX 1.0/1.1 tracks (via gpxpy): all track points, else all route points.

Speed (m/s) and course (degrees) come from GPX 1.0 ``<speed>``/``<course>`` or, in GPX 1.1,
from a Garmin ``TrackPointExtension``'s ``speed``/``course`` children; otherwise NaN.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import gpxpy
import gpxpy.gpx

from detector.bounds import check_lat_lon, check_time
from detector.errors import InputError
from detector.pipeline.sources.track import Track


class GpxReader:
    """Reads ``.gpx`` files."""

    name: ClassVar[str] = "GPX"
    suffixes: ClassVar[tuple[str, ...]] = (".gpx",)

    def sniff(self, head: bytes) -> bool:
        return b"<gpx" in head

    def read(self, path: Path) -> Track:
        return read_gpx(path)


def read_gpx(path: Path) -> Track:
    """Read every track point of every track and segment (route points if there are none)."""
    try:
        gpx = gpxpy.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (gpxpy.gpx.GPXException, ValueError) as e:
        raise InputError(path, f"not a valid GPX file: {e}") from e
    points: list[gpxpy.gpx.GPXTrackPoint | gpxpy.gpx.GPXRoutePoint] = [
        p for track in gpx.tracks for segment in track.segments for p in segment.points
    ]
    kind = "track point"
    if not points:
        points = [p for route in gpx.routes for p in route.points]
        kind = "route point"
    if not points:
        raise InputError(path, "no track or route points")
    times = []
    for i, p in enumerate(points, start=1):
        if p.time is None:
            raise InputError(path, f"{kind} {i} ({p.latitude}, {p.longitude}) has no valid <time>")
        try:
            times.append(check_time(_epoch(p.time), f"{kind} {i} ({p.time})"))
            check_lat_lon(p.latitude, p.longitude, f"{kind} {i}")
        except ValueError as e:
            raise InputError(path, str(e)) from None
    return Track.from_arrays(
        str(path),
        time=times,
        lat=[p.latitude for p in points],
        lon=[p.longitude for p in points],
        speed=[_value(p, "speed") for p in points],
        heading=[_value(p, "course") for p in points],
    )


def _epoch(t: datetime) -> float:
    """UTC epoch seconds; a time without a zone is taken as UTC (as GPX requires); NaN past what Python's
    dates hold (year 1 with an offset east of UTC)."""
    try:
        return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()
    except (OverflowError, ValueError):
        return math.nan


def _value(point: gpxpy.gpx.GPXTrackPoint | gpxpy.gpx.GPXRoutePoint, name: str) -> float:
    """The GPX 1.0 element ``name`` (``speed``/``course``), else an extension child so named, else NaN."""
    standard = getattr(point, name, None)  # route points have neither
    if standard is not None:
        return float(standard)
    for ext in point.extensions:
        for child in ext.iter():
            if child.tag.rsplit("}", 1)[-1] == name and child.text:
                try:
                    return float(child.text)
                except ValueError:
                    return math.nan
    return math.nan
