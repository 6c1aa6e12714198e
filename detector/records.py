"""The records that flow between stages: a sampled frame, a sighting placed on the map, one drive's
hazard (its sightings clustered) and a drive's row in the store. Stages make them and read them; none owns them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from detector.geo import LocalFrame


@dataclass(frozen=True)
class SampledFrame:
    """A frame chosen for detection, with where and when it was taken."""

    image: np.ndarray  # BGR, (height, width, 3)
    drive_id: str
    frame_index: int
    video_time: float  # seconds from the start of the video
    utc: float  # seconds since the epoch
    lat: float
    lon: float
    heading: float  # degrees clockwise from north
    speed: float  # m/s
    distance_m: float  # odometer since the track start
    sharpness: float


@dataclass(frozen=True, kw_only=True)
class Sighting:
    """One detection of a hazard, placed on the map; built by keyword (19 fields, several of them floats)."""

    drive_id: str
    frame_index: int
    utc: float
    odometer_m: float  # the vehicle's odometer at the frame: orders sightings along the drive
    class_name: str
    confidence: float
    lat: float
    lon: float
    range_m: float  # forward distance from the antenna
    lateral_m: float  # to the right of the vehicle
    uncertainty_m: float  # 1-sigma horizontal position error
    width_m: float
    bbox: tuple[float, float, float, float]  # x1, y1, x2, y2 in frame pixels
    vehicle_lat: float
    vehicle_lon: float
    heading: float
    far: bool  # beyond localize.max_range_m: counted, but placed loosely


@dataclass(frozen=True)
class DriveRecord:
    id: str
    content_hash: str
    video: str
    track: str
    started_utc: float
    ended_utc: float
    distance_m: float
    frames_sampled: int
    camera: str
    # The patrol the drive is part of: a live run's consecutive segments share one (the first one's id), so
    # they count as one drive for a hazard's drive count and GPS error. Empty: the drive is its own.
    trip: str = ""


def position_weight(confidence, uncertainty_m):
    """Confident, near (small uncertainty) sightings count most in a hazard's position."""
    return confidence / uncertainty_m**2


@dataclass
class DriveHazard:
    """Sightings of one hazard within one drive, with a running weighted position (local metres)."""

    class_name: str
    local: LocalFrame
    sightings: list[Sighting] = field(default_factory=list)
    xy: list[tuple[float, float]] = field(default_factory=list)
    _wsum: float = 0.0
    _wx: float = 0.0
    _wy: float = 0.0

    def add(self, sighting: Sighting, x: float, y: float) -> None:
        w = position_weight(sighting.confidence, sighting.uncertainty_m)
        self.sightings.append(sighting)
        self.xy.append((x, y))
        self._wsum += w
        self._wx += w * x
        self._wy += w * y

    def absorb(self, other: DriveHazard) -> None:
        for s, (x, y) in zip(other.sightings, other.xy, strict=True):
            self.add(s, x, y)

    @property
    def position(self) -> tuple[float, float]:
        return self._wx / self._wsum, self._wy / self._wsum

    @property
    def latlon(self) -> tuple[float, float]:
        lat, lon = self.local.to_latlon(*self.position)
        return float(lat), float(lon)

    @property
    def last_odometer(self) -> float:
        return self.sightings[-1].odometer_m

    @property
    def sigma(self) -> float:
        """Uncertainty of the fused position (sightings within a drive share their GPS error)."""
        return min(s.uncertainty_m for s in self.sightings)
