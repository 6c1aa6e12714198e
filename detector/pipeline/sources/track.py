"""A GPS track as columnar arrays, cleaned of jumps and gaps, interpolated at any time.

Readers (``detector.pipeline.sources.gps``) produce a raw :class:`Track`; :meth:`Track.trajectory`
turns it into a :class:`Trajectory` that answers "where was the vehicle, how fast, which
way, and how far had it driven" at any instant, and which spans must be skipped.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from detector.bounds import EARLIEST_UTC, LATEST_UTC, check_time
from detector.errors import InputError, shown
from detector.geo import LocalFrame

log = logging.getLogger(__name__)

STILL_M = 1.0  # a track whose fixes all lie within this of its first never moved
MAX_SPEED_MPS = 300.0  # a recorded speed above this (1,080 km/h) is no vehicle's: the file is corrupt


def utc_text(t: float) -> str:
    """``1700000000.0`` -> ``'2023-11-14T22:13:20Z'`` (for messages); a time no date holds as its number.

    >>> utc_text(1700000000.0), utc_text(1e300)
    ('2023-11-14T22:13:20.00Z', '1e+300 s')
    """
    try:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-4] + "Z"
    except (OverflowError, ValueError, OSError):
        return f"{t:g} s"


def parse_utc(text: str | None) -> datetime | None:
    """An ISO 8601 time (``...Z``, with an offset, or naive = UTC) as an aware datetime; None if absent or unreadable.

    >>> parse_utc("2026-06-01T07:30:00Z").isoformat(), parse_utc("yesterday")
    ('2026-06-01T07:30:00+00:00', None)
    """
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Track:
    """Timestamped fixes as parallel arrays, sorted by time.

    ``time`` is UTC in seconds since the epoch. ``speed`` (m/s) and ``heading`` (degrees
    clockwise from north) are NaN where the source did not record them.
    ``video_start_utc`` is set by readers of GPS embedded in a video's timed track (GoPro GPMF,
    CAMM): the UTC time of the video's first frame, known exactly from the telemetry.
    ``format`` names what was read (``"GPX"``, ``"GoPro GPMF"``...), for messages.
    """

    time: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    speed: np.ndarray
    heading: np.ndarray
    source: str
    video_start_utc: float | None = None
    format: str = ""

    @classmethod
    def from_arrays(
        cls,
        source: str,
        time,
        lat,
        lon,
        speed=None,
        heading=None,
        video_start_utc: float | None = None,
        format: str = "",
    ) -> Track:
        """Validate and build a track; raises :class:`InputError` naming ``source``.

        Identical consecutive timestamps are merged (the first fix wins), so a track of repeated fixes may
        be left with one (:meth:`Trajectory.from_track` refuses that); any decrease in time is an error,
        since a reordered log usually means two logs were concatenated.
        """
        time = np.asarray(time, dtype=float)
        n = len(time)
        lat = np.asarray(lat, dtype=float)
        lon = np.asarray(lon, dtype=float)
        speed = np.full(n, np.nan) if speed is None else np.asarray(speed, dtype=float)
        heading = np.full(n, np.nan) if heading is None else np.asarray(heading, dtype=float)
        if n == 0:
            raise InputError(source, "no GPS fixes found")
        if not (len(lat) == len(lon) == len(speed) == len(heading) == n):
            raise InputError(source, "GPS columns have different lengths")
        if not (np.all(np.isfinite(time)) and np.all(np.isfinite(lat)) and np.all(np.isfinite(lon))):
            raise InputError(source, "GPS fix with a missing time or position")
        if np.any(np.abs(lat) > 90) or np.any(np.abs(lon) > 180):
            raise InputError(source, "GPS position out of range (latitude beyond ±90 or longitude beyond ±180)")
        outside = np.flatnonzero((time < EARLIEST_UTC) | (time > LATEST_UTC))
        try:
            if len(outside):
                check_time(float(time[outside[0]]), f"fix {outside[0] + 1}")
            if video_start_utc is not None:
                check_time(video_start_utc, "the video's start")
        except ValueError as e:
            raise InputError(source, str(e)) from None
        too_fast = np.flatnonzero(speed > MAX_SPEED_MPS)
        if len(too_fast):
            i = int(too_fast[0])
            raise InputError(source, f"fix {i + 1}: speed {speed[i]:g} m/s is over {MAX_SPEED_MPS:g} m/s")
        # A receiver without a speed often writes -1 (or nothing a number holds): unknown, not a speed.
        speed = np.where(np.isfinite(speed) & (speed >= 0), speed, np.nan)
        step = np.diff(time)
        if np.any(step < 0):
            i = int(np.argmax(step < 0))
            raise InputError(
                source,
                f"timestamps are not sorted: fix {i + 2} ({utc_text(time[i + 1])}) comes before "
                f"fix {i + 1} ({utc_text(time[i])})",
            )
        keep = np.concatenate([[True], step > 0])
        return cls(
            time=time[keep],
            lat=lat[keep],
            lon=lon[keep],
            speed=speed[keep],
            heading=np.mod(heading[keep], 360.0),
            source=source,
            video_start_utc=video_start_utc,
            format=format,
        )

    def __len__(self) -> int:
        return len(self.time)

    @property
    def start(self) -> float:
        return float(self.time[0])

    @property
    def end(self) -> float:
        return float(self.time[-1])

    def describe(self) -> str:
        """``'GoPro GPMF: 191 fixes over 10.5 s (2019-11-18T23:45:15.42Z to 2019-11-18T23:45:25.91Z)'``."""
        return (
            f"{self.format or 'GPS'}: {len(self)} fixes over {self.end - self.start:.1f} s "
            f"({utc_text(self.start)} to {utc_text(self.end)})"
        )

    def trajectory(self, max_gap_s: float = 5.0, max_speed_mps: float = 70.0) -> Trajectory:
        return Trajectory.from_track(self, max_gap_s=max_gap_s, max_speed_mps=max_speed_mps)


@dataclass(frozen=True)
class TrackState:
    """The vehicle's state at a set of instants (columnar, like the query times).

    ``distance`` is the odometer in metres since the track start. ``valid`` is False outside
    the track and inside skipped spans (gaps, jumps); other fields are NaN there.
    """

    time: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    speed: np.ndarray
    heading: np.ndarray
    distance: np.ndarray
    valid: np.ndarray

    def __len__(self) -> int:
        return len(self.time)


@dataclass(frozen=True)
class Trajectory:
    """A cleaned track, ready for interpolation.

    Built by :meth:`Track.trajectory`:

    * a fix far from both neighbours (implied speed above ``max_speed_mps``) is a spike and
      is dropped, with a warning;
    * a remaining step that is too fast (a jump) or too long in time (a gap above
      ``max_gap_s``) becomes a skipped span, with a warning;
    * speed comes from the receiver where recorded (Doppler speed is far better than
      differencing noisy positions), else from positions two fixes either side;
    * heading comes from the receiver where recorded and the vehicle moves, else from
      positions, and is held while the vehicle stands still;
    * distance is the integral of speed over time (an odometer), which position noise does
      not inflate the way summed fix-to-fix distances would.
    """

    source: str
    frame: LocalFrame
    time: np.ndarray
    x: np.ndarray
    y: np.ndarray
    speed: np.ndarray
    heading: np.ndarray
    distance: np.ndarray
    skipped: list[tuple[float, float]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def start(self) -> float:
        return float(self.time[0])

    @property
    def end(self) -> float:
        return float(self.time[-1])

    @classmethod
    def from_track(cls, track: Track, max_gap_s: float, max_speed_mps: float) -> Trajectory:
        """The cleaned trajectory; InputError naming the track when it cannot place a drive: fewer than two
        fixes at different times, or every fix at one place (a vehicle waiting at lights is fine; a track that
        never moves at all would record a drive with nothing sampled, and mark the video done)."""
        if len(track) < 2:
            raise InputError(track.source, f"only one GPS fix ({utc_text(track.start)}): a drive needs two or more")
        frame = LocalFrame(float(np.median(track.lat)), float(np.median(track.lon)))
        x, y = frame.to_xy(track.lat, track.lon)
        if float(np.max(np.hypot(x - x[0], y - y[0]))) < STILL_M:
            raise InputError(
                track.source,
                f"the track does not move: its {len(track)} fixes lie within {STILL_M:g} m of "
                f"{track.lat[0]:.6f}, {track.lon[0]:.6f}",
            )
        t = track.time
        keep = np.ones(len(t), dtype=bool)
        warnings: list[str] = []

        # Drop isolated spikes: fixes too far from both neighbours.
        if len(t) >= 3:
            v = np.hypot(np.diff(x), np.diff(y)) / np.diff(t)
            spike = np.zeros(len(t), dtype=bool)
            spike[1:-1] = (v[:-1] > max_speed_mps) & (v[1:] > max_speed_mps)
            for i in np.flatnonzero(spike):
                jump = float(np.hypot(x[i] - x[i - 1], y[i] - y[i - 1]))
                warnings.append(
                    f"{shown(track.source)}: fix at {utc_text(t[i])} jumps {jump:.0f} m from its neighbours; dropped"
                )
            keep &= ~spike
        t, x, y = t[keep], x[keep], y[keep]
        rec_speed, rec_heading = track.speed[keep], track.heading[keep]

        skipped: list[tuple[float, float]] = []
        if len(t) >= 2:
            dt = np.diff(t)
            step = np.hypot(np.diff(x), np.diff(y))
            for i in np.flatnonzero((dt > max_gap_s) | (step / dt > max_speed_mps)):
                skipped.append((float(t[i]), float(t[i + 1])))
                what = f"a {dt[i]:.1f} s gap" if dt[i] > max_gap_s else f"a jump of {step[i]:.0f} m in {dt[i]:.1f} s"
                warnings.append(
                    f"{shown(track.source)}: {what} after {utc_text(t[i])}; span {utc_text(t[i])}"
                    f" to {utc_text(t[i + 1])} skipped"
                )
        for w in warnings:
            log.warning(w)

        speed = _speed(t, x, y, rec_speed, skipped)
        heading = _heading(t, x, y, rec_heading, speed, skipped)
        distance = _odometer(t, x, y, speed, max_gap_s)
        return cls(
            source=track.source,
            frame=frame,
            time=t,
            x=x,
            y=y,
            speed=speed,
            heading=heading,
            distance=distance,
            skipped=skipped,
            warnings=warnings,
        )

    def valid_at(self, t) -> np.ndarray:
        t = np.atleast_1d(np.asarray(t, dtype=float))
        valid = (t >= self.time[0]) & (t <= self.time[-1])
        for a, b in self.skipped:
            valid &= ~((t > a) & (t < b))
        return valid

    def at(self, t) -> TrackState:
        """Interpolate the state at times ``t`` (UTC seconds, scalar or array)."""
        t = np.atleast_1d(np.asarray(t, dtype=float))
        valid = self.valid_at(t)
        x = np.interp(t, self.time, self.x)
        y = np.interp(t, self.time, self.y)
        lat, lon = self.frame.to_latlon(x, y)
        rad = np.radians(self.heading)
        hx = np.interp(t, self.time, np.sin(rad))
        hy = np.interp(t, self.time, np.cos(rad))
        heading = np.mod(np.degrees(np.arctan2(hx, hy)), 360.0)
        state = TrackState(
            time=t,
            lat=np.atleast_1d(lat).astype(float),
            lon=np.atleast_1d(lon).astype(float),
            speed=np.interp(t, self.time, self.speed),
            heading=heading,
            distance=np.interp(t, self.time, self.distance),
            valid=valid,
        )
        for column in (state.lat, state.lon, state.speed, state.heading, state.distance):
            column[~valid] = np.nan
        return state

    def moving_spans(self, min_speed_mps: float, start: float, end: float, step_s: float = 0.1):
        """UTC spans within ``[start, end]`` where the track is valid and speed >= ``min_speed_mps``.

        >>> # a vehicle that stops for 10 s in the middle of a 30 s track
        """
        grid = np.arange(start, end + step_s, step_s)
        state = self.at(grid)
        moving = state.valid & (state.speed >= min_speed_mps)
        spans: list[tuple[float, float]] = []
        edges = np.flatnonzero(np.diff(np.concatenate([[0], moving.astype(np.int8), [0]])))
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            spans.append((float(grid[a]), float(min(grid[b - 1], end))))
        return spans


def _split_segments(t: np.ndarray, skipped: list[tuple[float, float]]) -> list[slice]:
    """Index slices of runs of fixes not separated by a skipped span."""
    cuts = sorted(int(np.searchsorted(t, a)) + 1 for a, _ in skipped)
    bounds = [0, *cuts, len(t)]
    return [slice(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def _window(n: int, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``k`` fixes before and after each of ``n`` fixes, clipped to the run."""
    idx = np.arange(n)
    return np.clip(idx - k, 0, n - 1), np.clip(idx + k, 0, n - 1)


def _speed(t, x, y, recorded, skipped) -> np.ndarray:
    derived = np.zeros(len(t))
    for seg in _split_segments(t, skipped):
        ts, xs, ys = t[seg], x[seg], y[seg]
        lo, hi = _window(len(ts))
        span = ts[hi] - ts[lo]
        derived[seg] = np.hypot(xs[hi] - xs[lo], ys[hi] - ys[lo]) / np.where(span > 0, span, np.inf)
    return np.where(np.isfinite(recorded), recorded, derived)


def _heading(t, x, y, recorded, speed, skipped, min_speed_mps: float = 1.0) -> np.ndarray:
    derived = np.full(len(t), np.nan)
    for seg in _split_segments(t, skipped):
        xs, ys = x[seg], y[seg]
        lo, hi = _window(len(xs))
        moved = (hi > lo) & (np.hypot(xs[hi] - xs[lo], ys[hi] - ys[lo]) > 0)
        derived[seg] = np.where(moved, np.mod(np.degrees(np.arctan2(xs[hi] - xs[lo], ys[hi] - ys[lo])), 360.0), np.nan)
    heading = np.where(np.isfinite(recorded), recorded, derived)
    # A standing vehicle has no course: hold the last heading seen while moving.
    reliable = (speed >= min_speed_mps) & np.isfinite(heading)
    if not reliable.any():
        return heading
    idx = np.arange(len(t))
    last = np.where(reliable, idx, -1)
    np.maximum.accumulate(last, out=last)
    last[last < 0] = int(np.argmax(reliable))
    return heading[last]


def _odometer(t, x, y, speed, max_gap_s: float) -> np.ndarray:
    """Integrate speed; across a long gap the straight line is a better lower bound."""
    distance = np.zeros(len(t))
    dt = np.diff(t)
    step = 0.5 * (speed[1:] + speed[:-1]) * dt
    chord = np.hypot(np.diff(x), np.diff(y))
    gap = dt > max_gap_s
    step[gap] = np.maximum(step[gap], chord[gap])
    distance[1:] = np.cumsum(step)
    return distance
