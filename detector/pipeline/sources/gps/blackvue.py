"""GPS in a BlackVue dashcam video (NMEA lines in the ``free/gps`` box), decoded by mapillary_tools.

Each NMEA line is stamped with the camera's clock in milliseconds; mapillary_tools corrects that
clock to UTC from the first valid RMC sentence (else GGA/GLL) and gives each fix its UTC time.
The box says nothing about video time, so the video's start is left to the drive (the first fix).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from mapillary_tools import blackvue_parser

from detector.errors import InputError
from detector.pipeline.sources.gps.library import GpsNotFound, library_errors, require_mp4
from detector.pipeline.sources.track import Track


class BlackVueReader:
    """Reads the GPS of BlackVue videos."""

    name: ClassVar[str] = "BlackVue"

    def read(self, path: Path) -> Track:
        require_mp4(path, self.name)
        with library_errors(path, self.name), path.open("rb") as f:
            info = blackvue_parser.extract_blackvue_info(f)
        if info is None:
            raise GpsNotFound(path, "no BlackVue gps box")
        timed = [p for p in info.gps or [] if p.epoch_time]
        if not timed:
            raise InputError(path, "a BlackVue gps box without a timed fix")
        return Track.from_arrays(
            str(path),
            time=[p.epoch_time for p in timed],
            lat=[p.lat for p in timed],
            lon=[p.lon for p in timed],
            format=self.name,
        )
