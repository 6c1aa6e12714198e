"""GPS embedded in a GoPro MP4/MOV as GPMF telemetry (the ``gpmd`` track), decoded by mapillary_tools.

mapillary_tools reads the GPS5 (HERO5 to HERO10, MAX) and GPS9 (HERO11 on) streams: each fix
gets its video time (the telemetry sample's time plus its place in the block) and ``epoch_time``,
the block's GPS time (GPSU). Blocks without a fix (GPSF 0) are dropped here.

Timing: UTC = video time + offset, the offset being the median over blocks of ``GPSU - video
time of the block's first fix``. The median matters: a camera's first block often carries a
stale GPSU (in ``max-heromode.mp4`` it is 1.47 s early, though its positions join the next
block's without a gap), and one offset keeps fix times strictly increasing despite the ~50 ms
jitter of GPSU. ``video_start_utc`` is that offset: the UTC time of video time 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
from mapillary_tools.gpmf import gpmf_parser
from mapillary_tools.telemetry import GPSFix, GPSPoint

from detector.errors import InputError
from detector.pipeline.sources.gps.library import GpsNotFound, library_errors, require_mp4
from detector.pipeline.sources.track import Track


class GoProReader:
    """Reads the GPS of GoPro videos (GPMF GPS5/GPS9)."""

    name: ClassVar[str] = "GoPro GPMF"

    def read(self, path: Path) -> Track:
        require_mp4(path, self.name)
        with library_errors(path, self.name), path.open("rb") as f:
            info = gpmf_parser.extract_gopro_info(f)
        if info is None:
            raise GpsNotFound(path, "no GPMF telemetry")
        if not info.gps:
            raise GpsNotFound(path, f"GPMF telemetry ({info.model or 'GoPro'}) without a GPS5 or GPS9 stream")
        return gopro_track(path, info.gps, self.name)


def gopro_track(path: Path, points: list[GPSPoint], name: str) -> Track:
    """A track from GPMF fixes: those with a fix, on one UTC offset from video time."""
    located = [p for p in points if p.fix != GPSFix.NO_FIX]
    if not located:
        raise InputError(path, f"the GoPro GPS had no fix in any of its {len(points)} samples")
    previous = [None, *located[:-1]]
    offsets = [p.epoch_time - p.time for p, before in zip(located, previous, strict=True) if _block_start(p, before)]
    if not offsets:
        raise InputError(path, "no GPS time (GPSU) in the GoPro telemetry")
    offset = float(np.median(offsets))
    video_time = np.array([p.time for p in located])
    return Track.from_arrays(
        str(path),
        time=offset + video_time,
        lat=[p.lat for p in located],
        lon=[p.lon for p in located],
        speed=[np.nan if p.ground_speed is None else p.ground_speed for p in located],
        video_start_utc=offset,
        format=name,
    )


def _block_start(point: GPSPoint, before: GPSPoint | None) -> bool:
    """True for the first fix of a GPMF block: mapillary_tools gives all of a block's fixes its GPSU."""
    return bool(point.epoch_time) and (before is None or before.epoch_time != point.epoch_time)
