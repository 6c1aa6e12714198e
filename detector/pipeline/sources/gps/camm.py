"""GPS in a CAMM track (Camera Motion Metadata: Insta360, Google Street View format), decoded by mapillary_tools.

CAMM type 6 samples carry the GPS time (``time_gps_epoch``, read as Unix seconds, as both
mapillary_tools and ExifTool do) and the velocity; type 5 samples carry only a position, so a
track of those has no UTC time of its own and is refused. Each sample's video time is its
presentation time after the track's edit list.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
from mapillary_tools.camm import camm_parser
from mapillary_tools.telemetry import CAMMGPSPoint

from detector.errors import InputError
from detector.pipeline.sources.gps.library import GpsNotFound, library_errors, require_mp4
from detector.pipeline.sources.track import Track


class CammReader:
    """Reads the GPS of CAMM videos."""

    name: ClassVar[str] = "CAMM"

    def read(self, path: Path) -> Track:
        require_mp4(path, self.name)
        with library_errors(path, self.name), path.open("rb") as f:
            info = camm_parser.extract_camm_info(f)
        if info is None:
            raise GpsNotFound(path, "no CAMM track")
        # mapillary_tools 0.14.7 files type-6 points under mini_gps too (they are Points): take both.
        points = sorted([*(info.gps or []), *(info.mini_gps or [])], key=lambda p: p.time)
        if not points:
            raise GpsNotFound(path, "a CAMM track without GPS samples")
        timed = [p for p in points if isinstance(p, CAMMGPSPoint) and p.gps_fix_type != 0 and p.time_gps_epoch > 0]
        if not timed:
            raise InputError(path, f"CAMM GPS without a fix or without GPS time in all of its {len(points)} samples")
        offset = float(np.median([p.time_gps_epoch - p.time for p in timed]))
        return Track.from_arrays(
            str(path),
            time=[p.time_gps_epoch for p in timed],
            lat=[p.lat for p in timed],
            lon=[p.lon for p in timed],
            speed=[float(np.hypot(p.velocity_east, p.velocity_north)) for p in timed],
            heading=[float(np.degrees(np.arctan2(p.velocity_east, p.velocity_north))) for p in timed],
            video_start_utc=offset,
            format=self.name,
        )
