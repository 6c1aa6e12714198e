"""The drive: where the vehicle is at every instant, how the light falls, and what its GPS says.

Everything here depends on the drive seed (and the world it drives through): the lane wander, the
speed profile with its stops, the sun and exposure, and the correlated GPS error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from detector.simulate.world import LANE_M, Route, World, forward, right_of

MAX_STOP_GAP_S = 45.0  # the longest stretch of driving without a full stop
DT_S = 0.01  # integration step of the speed profile


@dataclass(frozen=True)
class Lighting:
    """Sun position, how dark shadows are (0 none, 1 black), exposure and a colour cast (B, G, R)."""

    sun_azimuth_deg: float
    sun_elevation_deg: float
    shadow_strength: float
    exposure: float
    tint: tuple[float, float, float]

    def sun_direction(self) -> np.ndarray:
        """Unit vector (x east, y north, z up) pointing towards the sun."""
        el = np.radians(self.sun_elevation_deg)
        return np.append(np.cos(el) * forward(self.sun_azimuth_deg), np.sin(el))


@dataclass(frozen=True)
class LanePath:
    """The line the vehicle follows (its lane, with a little wander), sampled like the route."""

    xy: np.ndarray
    s: np.ndarray
    heading: np.ndarray
    curvature: np.ndarray
    route_s: np.ndarray


@dataclass(frozen=True)
class DriveMotion:
    """The true vehicle motion, integrated every ``DT_S`` seconds from the video's first frame.

    ``stops`` are (start, end) times, in seconds from the first frame, of full stops.
    """

    path: LanePath
    time_s: np.ndarray
    s: np.ndarray
    speed: np.ndarray
    stops: tuple[tuple[float, float], ...]
    duration_s: float
    start_utc: datetime
    lighting: Lighting
    exposure_wobble: tuple[tuple[float, float, float], ...]

    def state(self, t) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Position x, y (m), heading (degrees) and speed (m/s) at times ``t`` (seconds)."""
        t = np.asarray(t, dtype=float)
        s = np.interp(t, self.time_s, self.s)
        x = np.interp(s, self.path.s, self.path.xy[:, 0])
        y = np.interp(s, self.path.s, self.path.xy[:, 1])
        h = np.radians(self.path.heading)
        hx, hy = np.interp(s, self.path.s, np.sin(h)), np.interp(s, self.path.s, np.cos(h))
        heading = np.degrees(np.arctan2(hx, hy)) % 360.0
        return x, y, heading, np.interp(t, self.time_s, self.speed)

    def yaw_rate(self, t) -> np.ndarray:
        """Turn rate in degrees per second (+ right) at times ``t``."""
        t = np.asarray(t, dtype=float)
        s = np.interp(t, self.time_s, self.s)
        kappa = np.interp(s, self.path.s, self.path.curvature)
        return np.degrees(kappa * np.interp(t, self.time_s, self.speed))

    def exposure(self, t) -> np.ndarray:
        """Overall brightness factor at times ``t``: the lighting's exposure with slow drifts."""
        t = np.asarray(t, dtype=float)
        wobble = sum(a * np.sin(2 * np.pi * t / p + ph) for a, p, ph in self.exposure_wobble)
        return self.lighting.exposure * (1.0 + wobble)

    @property
    def route_span(self) -> tuple[float, float]:
        """Route distance (centreline) at the first and last frame."""
        ends = np.interp([self.s[0], self.s[-1]], self.path.s, self.path.route_s)
        return float(ends[0]), float(ends[1])

    @property
    def distance_m(self) -> float:
        return float(self.s[-1] - self.s[0])


@dataclass(frozen=True)
class GpsFixes:
    """GPS fixes: time (s from the first frame), noisy position (m), speed (m/s), course (deg)."""

    time_s: np.ndarray
    x: np.ndarray
    y: np.ndarray
    speed: np.ndarray
    course: np.ndarray


def lane_path(route: Route, rng: np.random.Generator) -> LanePath:
    """The right-hand lane's centre with a slow lateral wander of a couple of decimetres."""
    wander = sum(
        rng.uniform(0.05, 0.14) * np.sin(2 * np.pi * route.s / rng.uniform(25.0, 120.0) + rng.uniform(0, 2 * np.pi))
        for _ in range(3)
    )
    xy = route.xy + (LANE_M / 2 + wander)[:, None] * right_of(route.heading)
    step = np.hypot(*np.diff(xy, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(step)])
    dx, dy = np.gradient(xy[:, 0], s), np.gradient(xy[:, 1], s)
    heading = np.degrees(np.arctan2(dx, dy)) % 360.0
    curvature = np.gradient(np.unwrap(np.radians(heading)), s)
    return LanePath(xy, s, heading, curvature, route.s)


def _envelope(path: LanePath, route: Route, rng: np.random.Generator, stops: list[float]) -> np.ndarray:
    """Highest allowed speed along the lane: cruise per street, slower in turns, zero at stops."""
    legs = np.searchsorted(route.vertex_s, path.route_s, side="right")
    cruise = rng.uniform(8.0, 14.0, size=len(route.vertex_s) + 1)
    v = cruise[legs]
    v = np.minimum(v, np.sqrt(rng.uniform(1.8, 2.6) / np.maximum(np.abs(path.curvature), 1e-6)))
    for s in stops:
        v[int(np.argmin(np.abs(path.s - s)))] = 0.0
    ds = np.diff(path.s)
    decel, accel = rng.uniform(1.6, 2.4), rng.uniform(1.0, 1.7)
    for i in range(len(v) - 2, -1, -1):
        v[i] = min(v[i], np.sqrt(v[i + 1] ** 2 + 2 * decel * ds[i]))
    for i in range(1, len(v)):
        v[i] = min(v[i], np.sqrt(v[i - 1] ** 2 + 2 * accel * ds[i - 1]))
    return v


def _integrate(
    path: LanePath, envelope: np.ndarray, s0: float, duration_s: float, stops: dict[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[float, float]]]:
    """Drive the envelope in time from ``s0``, halting ``stops[s]`` seconds at each stop ``s``."""
    pending = sorted(s for s in stops if s > s0)
    n = int(np.ceil(duration_s / DT_S)) + 2
    ss, vs = np.empty(n), np.empty(n)
    s, dwell = s0, 0.0
    halts: list[tuple[float, float]] = []
    for k in range(n):
        if dwell > 0.0:
            v, dwell = 0.0, dwell - DT_S
            if dwell <= 0.0:
                s = pending.pop(0) + 0.02
        else:
            v = max(float(np.interp(s, path.s, envelope)), 0.05)
            if pending and s >= pending[0] - 0.03:
                v, dwell = 0.0, stops[pending[0]]
                s = pending[0]
                halts.append((k * DT_S, k * DT_S + dwell))
        ss[k], vs[k] = s, v
        s += v * DT_S
    return np.arange(n) * DT_S, ss, vs, halts


def _first_gap(halts: list[tuple[float, float]], duration_s: float) -> float | None:
    """Start of the first span longer than ``MAX_STOP_GAP_S`` without a stop starting, if any."""
    last = 0.0
    for start, end in halts:
        if start - last > MAX_STOP_GAP_S:
            return last
        last = end
    return last if duration_s - last > MAX_STOP_GAP_S else None


def _plan_motion(world: World, path: LanePath, rng: np.random.Generator, duration_s: float):
    """Choose stops so that no more than ``MAX_STOP_GAP_S`` pass without one; integrate the drive."""
    s0 = rng.uniform(10.0, 40.0)
    lane_stops = np.interp(world.stop_s, path.route_s, path.s)
    chosen = {float(s): rng.uniform(2.5, 7.0) for s in lane_stops if s > s0 + 20 and rng.random() < 0.3}
    envelope_seed = int(rng.integers(2**63))  # the same cruise speeds whatever stops are added
    while True:
        envelope = _envelope(path, world.route, np.random.default_rng(envelope_seed), list(chosen))
        t, s, v, halts = _integrate(path, envelope, s0, duration_s, chosen)
        gap = _first_gap(halts, duration_s)
        if gap is None:
            return t, s, v, halts
        lo, hi = np.interp([gap + 12.0, gap + MAX_STOP_GAP_S - 5.0], t, s)
        options = [x for x in lane_stops if lo <= x <= hi and x not in chosen]
        stop = float(rng.choice(options)) if options else float(rng.uniform(lo, hi))
        chosen[stop] = rng.uniform(2.5, 7.0)


def _lighting(rng: np.random.Generator) -> Lighting:
    if rng.random() < 0.2:  # overcast: soft light, faint shadows
        return Lighting(
            rng.uniform(0, 360),
            rng.uniform(30, 60),
            rng.uniform(0.08, 0.18),
            rng.uniform(0.82, 0.95),
            (1.04, 1.0, 0.97),
        )
    warm = rng.uniform(0.0, 0.08)
    return Lighting(
        rng.uniform(0, 360),
        rng.uniform(22, 68),
        rng.uniform(0.38, 0.6),
        rng.uniform(0.92, 1.1),
        (1.0 - warm, 1.0, 1.0 + warm / 2),
    )


def plan_drive(world: World, seed: int, duration_s: float, start_utc: datetime) -> DriveMotion:
    """A drive of ``duration_s`` seconds along ``world``'s route, fully determined by ``seed``.

    ``start_utc`` is moved on by a seed-chosen whole number of minutes (0-59).
    """
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, 7]).spawn(4)]
    rng_lane, rng_speed, rng_light, rng_clock = streams
    path = lane_path(world.route, rng_lane)
    t, s, v, halts = _plan_motion(world, path, rng_speed, duration_s)
    wobble = tuple(
        (rng_light.uniform(0.01, 0.03), rng_light.uniform(6, 30), rng_light.uniform(0, 6.3)) for _ in range(2)
    )
    return DriveMotion(
        path=path,
        time_s=t,
        s=s,
        speed=v,
        stops=tuple((a, min(b, duration_s)) for a, b in halts if a < duration_s),
        duration_s=duration_s,
        start_utc=start_utc + timedelta(minutes=int(rng_clock.integers(0, 60))),
        lighting=_lighting(rng_light),
        exposure_wobble=wobble,
    )


def _correlated_noise(rng: np.random.Generator, t: np.ndarray, sigma: float) -> np.ndarray:
    """Gauss-Markov error of standard deviation ``sigma``: slow drift, faster wander, white jitter."""
    total = np.zeros(len(t))
    for share, tau in ((0.55, 25.0), (0.35, 4.0), (0.10, 0.0)):
        sd = sigma * np.sqrt(share)
        if tau == 0.0:
            total += rng.normal(0.0, sd, len(t))
            continue
        e = np.empty(len(t))
        e[0] = rng.normal(0.0, sd)
        rho = np.exp(-np.diff(t) / tau)
        for k, r in enumerate(rho, start=1):
            e[k] = r * e[k - 1] + np.sqrt(1 - r * r) * rng.normal(0.0, sd)
        total += e
    return total


def gps_fixes(drive: DriveMotion, seed: int, noise_m: float, rate_hz: float) -> GpsFixes:
    """What a GPS receiver logs during ``drive``: ``noise_m`` RMS horizontal error, correlated in
    time, Doppler speed to about 0.1 m/s, and a course held while standing still."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 311]))
    t = np.arange(0.0, drive.duration_s + 1e-9, 1.0 / rate_hz)
    x, y, heading, speed = drive.state(t)
    sigma = noise_m / np.sqrt(2.0)
    x = x + _correlated_noise(rng, t, sigma)
    y = y + _correlated_noise(rng, t, sigma)
    measured = np.abs(speed + rng.normal(0.0, 0.1, len(t)))
    course = (heading + rng.normal(0.0, 1.0, len(t)) / np.maximum(speed, 0.5)) % 360.0
    for k in range(1, len(t)):
        if speed[k] < 0.5:
            course[k] = course[k - 1]
    return GpsFixes(t, x, y, measured, course)
