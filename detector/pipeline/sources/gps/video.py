"""GPS embedded in a video file: each embedded format's reader in turn, the first that finds GPS wins.

Order: the native decoders first (GoPro GPMF, CAMM, BlackVue: mapillary_tools, in-process and
exact), then ExifTool (Novatek, Garmin and the many other cameras it knows), which costs a
process and a scan of the file. A reader that does not find its format raises
:class:`GpsNotFound`; any other :class:`InputError` (a damaged file, GPS without a fix) ends the
search, since the file is then of that format.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Protocol

from detector.pipeline.sources.gps.blackvue import BlackVueReader
from detector.pipeline.sources.gps.camm import CammReader
from detector.pipeline.sources.gps.exiftool import ExifToolReader
from detector.pipeline.sources.gps.gopro import GoProReader
from detector.pipeline.sources.gps.library import GpsNotFound
from detector.pipeline.sources.track import Track

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".ts", ".mts", ".insv", ".360")


class EmbeddedFormat(Protocol):
    """A reader of one embedded-GPS format."""

    name: str

    def read(self, path: Path) -> Track:
        """The file's track; GpsNotFound if this format's GPS is not in it, InputError if unreadable."""
        ...


FORMATS: tuple[EmbeddedFormat, ...] = (GoProReader(), CammReader(), BlackVueReader(), ExifToolReader())


class VideoReader:
    """Reads the GPS embedded in a video, whatever of :data:`FORMATS` it is in."""

    name: ClassVar[str] = "embedded GPS"
    suffixes: ClassVar[tuple[str, ...]] = VIDEO_SUFFIXES

    def sniff(self, head: bytes) -> bool:
        return head[4:8] == b"ftyp" or head[:4] == b"RIFF"

    def read(self, path: Path) -> Track:
        return read_embedded(path)


def read_embedded(path: Path, formats: tuple[EmbeddedFormat, ...] = FORMATS) -> Track:
    """The first embedded track found in ``path``; GpsNotFound (naming what was tried) if none."""
    missing: list[str] = []
    for reader in formats:
        try:
            return reader.read(path)
        except GpsNotFound as e:
            missing.append(f"{reader.name}: {e.problem}")
    raise GpsNotFound(path, f"no GPS in the video ({'; '.join(missing)})")
