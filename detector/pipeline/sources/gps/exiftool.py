"""GPS that ExifTool finds in a video: Novatek-based dashcams (Viofo and many others), Garmin, Kenwood, DJI...

ExifTool (Debian ``libimage-exiftool-perl``) decodes the timed metadata of a long list of cameras
with ``-ee``; mapillary_tools runs it (``-n -X``) and gathers its fixes into a track. Fixes need
ExifTool's ``GPSDateTime``. Where they sit in a timed track (``SampleTime``), the UTC time of
video time 0 is known (the median of GPS time minus sample time); where they sit in a box beside
the video (Novatek's ``freeGPS``), it is left to the drive (the first fix).
"""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import ClassVar

import numpy as np
from mapillary_tools import exiftool_read_video
from mapillary_tools.telemetry import GPSPoint

from detector.errors import InputError
from detector.pipeline.sources.gps.library import GpsNotFound, library_errors
from detector.pipeline.sources.track import Track

INSTALL_HINT = "apt-get install libimage-exiftool-perl"


class ExifToolReader:
    """Reads GPS with ExifTool, for the formats the native readers do not know."""

    name: ClassVar[str] = "ExifTool"

    def read(self, path: Path) -> Track:
        executable = shutil.which("exiftool")
        if executable is None:
            raise GpsNotFound(path, f"ExifTool is not installed ({INSTALL_HINT}) to look for other formats")
        with library_errors(path, self.name):
            element = exiftool_element(path, executable)
            reader = exiftool_read_video.ExifToolReadVideo(ET.ElementTree(element))
            points = [p for p in reader.extract_gps_track() if isinstance(p, GPSPoint)]
        if not points:
            raise GpsNotFound(path, "no GPS that ExifTool knows")
        if any(not p.epoch_time for p in points):
            raise InputError(path, f"ExifTool found {len(points)} GPS fixes but not their GPS time")
        epoch = np.array([p.epoch_time for p in points])
        video_time = np.array([p.time for p in points])
        return Track.from_arrays(
            str(path),
            time=epoch,
            lat=[p.lat for p in points],
            lon=[p.lon for p in points],
            heading=[np.nan if p.angle is None else p.angle for p in points],
            video_start_utc=float(np.median(epoch - video_time)) if in_timed_track(element) else None,
            format=f"{self.name} ({reader.extract_make() or 'unknown make'})",
        )


def exiftool_element(path: Path, executable: str) -> ET.Element:
    """ExifTool's description of one file (``rdf:Description``), with the embedded samples (``-ee``)."""
    # As mapillary_tools' runner does, but the name as an argument: it passes names a line each on standard input,
    # which a name holding a line break would break.
    args = ["-fast", "-q", "-n", "-X", "-ee", "-api", "LargeFileSupport=1", "-charset", "filename=utf8"]
    text = subprocess.run(
        [executable, *args, "--", str(path.resolve())], capture_output=True, text=True, encoding="utf-8", check=False
    ).stdout
    if not text.strip():
        raise InputError(path, "ExifTool could not read it")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise InputError(path, f"ExifTool wrote unreadable XML ({e})") from e
    if len(root) == 0:
        raise InputError(path, "ExifTool could not read it")
    return root[0]


def in_timed_track(element: ET.Element) -> bool:
    """True if the GPS sits in a timed track: its group (``Track3``...) also carries ``SampleTime``."""
    groups: dict[str, set[str]] = {}
    for child in element:
        namespace, _, tag = child.tag.rpartition("}")
        groups.setdefault(tag, set()).add(namespace)
    return bool(groups.get("GPSLatitude", set()) & groups.get("SampleTime", set()))
