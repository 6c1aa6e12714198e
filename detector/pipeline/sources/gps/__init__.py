"""Read a GPS track from GPX, NMEA 0183, CSV, or the GPS embedded in a video (GoPro, CAMM, BlackVue, ExifTool).

One reader per format, behind the :class:`GpsReader` interface; :func:`read_track` picks it
by suffix and falls back to sniffing the first bytes for unknown suffixes.

>>> track = read_track("drive.nmea")  # doctest: +SKIP
>>> tracks = read_tracks(["a.gpx", "broken.csv"])  # doctest: +SKIP
>>> [type(t).__name__ for t in tracks]  # doctest: +SKIP
['Track', 'InputError']
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from detector.errors import InputError
from detector.pipeline.sources.gps.csv import CsvReader
from detector.pipeline.sources.gps.gpx import GpxReader
from detector.pipeline.sources.gps.nmea import NmeaReader
from detector.pipeline.sources.gps.video import VideoReader
from detector.pipeline.sources.track import Track

__all__ = ["READERS", "GpsReader", "read_track", "read_tracks", "reader_for"]

SNIFF_BYTES = 4096


class GpsReader(Protocol):
    """A reader for one GPS file format."""

    name: str
    suffixes: tuple[str, ...]

    def sniff(self, head: bytes) -> bool:
        """True if ``head`` (the file's first bytes) looks like this format."""
        ...

    def read(self, path: Path) -> Track:
        """Read the whole file; raises :class:`InputError` naming ``path`` on bad input."""
        ...


READERS: tuple[GpsReader, ...] = (GpxReader(), NmeaReader(), CsvReader(), VideoReader())


def reader_for(path: str | Path) -> GpsReader:
    """The reader for ``path``: by suffix, else by content; InputError if none fits."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if not path.is_file():
        raise InputError(path, "not a file")
    suffix = path.suffix.lower()
    for reader in READERS:
        if suffix in reader.suffixes:
            return reader
    try:
        with path.open("rb") as f:
            head = f.read(SNIFF_BYTES)
    except OSError as e:
        raise InputError(path, f"cannot read: {e.strerror or e}") from e
    for reader in READERS:
        if reader.sniff(head):
            return reader
    known = ", ".join(s for r in READERS for s in r.suffixes)
    raise InputError(path, f"unknown GPS file format (expected one of {known})")


def read_track(path: str | Path) -> Track:
    """Read one GPS file into a :class:`Track`; every user-caused failure is an InputError."""
    reader = reader_for(path)
    try:
        track = reader.read(Path(path))
    except OSError as e:
        raise InputError(path, f"cannot read: {e.strerror or e}") from e
    return track if track.format else replace(track, format=reader.name)


def read_tracks(paths: Iterable[str | Path]) -> list[Track | InputError]:
    """Read many files; a file that fails gives its InputError in its place, in order."""
    results: list[Track | InputError] = []
    for path in paths:
        try:
            results.append(read_track(path))
        except InputError as e:
            results.append(e)
    return results
