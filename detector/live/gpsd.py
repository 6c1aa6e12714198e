"""Position from gpsd: a small client of its JSON protocol, and the vehicle's pose at any instant.

The client sends ``?WATCH={"enable":true,"json":true}`` and reads TPV reports (one JSON object
per line). It reconnects forever: gpsd restarting or the receiver unplugged is logged once and
waited out. :class:`PoseTracker` keeps the last few fixes and answers "where was the vehicle at
this (monotonic) instant": it maps the local clock to GPS time through the fixes' arrival times,
so a log replayed faster than real time (gpsfake) works as well as a live receiver.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime

from detector.errors import InputError

log = logging.getLogger(__name__)

EARTH_M_PER_DEG = 111_195.0
MAX_EXTRAPOLATE_S = 2.0


@dataclass(frozen=True)
class Fix:
    received: float  # time.monotonic() when it arrived
    utc: float
    lat: float
    lon: float
    speed: float  # m/s, NaN if not reported
    heading: float  # degrees from north, NaN if not reported
    distance: float = 0.0  # odometer (m), filled in by the tracker


@dataclass(frozen=True)
class VehiclePose:
    utc: float
    lat: float
    lon: float
    speed: float
    heading: float
    distance: float


def parse_address(text: str) -> tuple[str, int]:
    """``"host:port"`` (or ``"host"``, port 2947) -> (host, port)."""
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "2947")
    try:
        number = int(port)
    except ValueError:
        raise InputError(text, "gpsd address must be HOST:PORT") from None
    return host.strip("[]") or "127.0.0.1", number


def parse_tpv(report: dict, received: float) -> Fix | None:
    """A Fix from a gpsd TPV report with a 2D or 3D fix, else None."""
    if report.get("class") != "TPV" or report.get("mode", 0) < 2 or "lat" not in report or "lon" not in report:
        return None
    utc = time.time()
    if isinstance(report.get("time"), str):
        with contextlib.suppress(ValueError):
            utc = datetime.fromisoformat(report["time"].replace("Z", "+00:00")).timestamp()
    speed, heading = report.get("speed"), report.get("track")
    return Fix(
        received=received,
        utc=utc,
        lat=float(report["lat"]),
        lon=float(report["lon"]),
        speed=float(speed) if speed is not None else math.nan,
        heading=float(heading) if heading is not None else math.nan,
    )


def _metres(a: Fix, lat: float, lon: float) -> tuple[float, float]:
    """East and north metres from ``a`` to (lat, lon): exact enough over one fix interval."""
    return (
        (lon - a.lon) * EARTH_M_PER_DEG * math.cos(math.radians(a.lat)),
        (lat - a.lat) * EARTH_M_PER_DEG,
    )


class PoseTracker:
    """The last fixes with an odometer; thread-safe (the GPS thread adds, the capture thread asks)."""

    def __init__(self, fix_timeout_s: float = 3.0, max_gap_s: float = 5.0, max_speed_mps: float = 70.0) -> None:
        self.fix_timeout_s = fix_timeout_s
        self.max_gap_s = max_gap_s
        self.max_speed_mps = max_speed_mps
        self._fixes: deque[Fix] = deque(maxlen=16)
        self._lock = threading.Lock()
        self._heading = math.nan

    def add(self, fix: Fix) -> None:
        with self._lock:
            last = self._fixes[-1] if self._fixes else None
            distance = last.distance if last else 0.0
            if last is not None:
                dt = fix.utc - last.utc
                if dt <= 0 or dt > self.max_gap_s:
                    self._fixes.clear()  # time went back (a replay restarted) or a long gap: start afresh
                else:
                    step = math.hypot(*_metres(last, fix.lat, fix.lon))
                    if step / dt > self.max_speed_mps:
                        self._fixes.clear()  # a jump: do not drive the odometer through it
                    elif math.isfinite(fix.speed) and math.isfinite(last.speed):
                        distance += 0.5 * (fix.speed + last.speed) * dt  # odometer: noise does not inflate it
                    else:
                        distance += step
            heading = fix.heading
            if not math.isfinite(heading) and last is not None and self._fixes:
                dx, dy = _metres(last, fix.lat, fix.lon)
                if math.hypot(dx, dy) > 1.0:
                    heading = math.degrees(math.atan2(dx, dy)) % 360
            moving = fix.speed >= 1.0 if math.isfinite(fix.speed) else True
            if (math.isfinite(heading) and moving) or not math.isfinite(self._heading):
                self._heading = heading  # held while standing still
            self._fixes.append(Fix(fix.received, fix.utc, fix.lat, fix.lon, fix.speed, self._heading, distance))

    def _rate(self) -> float:
        """GPS seconds per local second (1 for a live receiver; more for a fast replay)."""
        first, last = self._fixes[0], self._fixes[-1]
        wall = last.received - first.received
        if len(self._fixes) < 3 or wall <= 0:
            return 1.0
        return min(max((last.utc - first.utc) / wall, 0.1), 20.0)

    def at(self, mono: float) -> VehiclePose | None:
        """The pose at local monotonic time ``mono``, or None without a recent fix."""
        with self._lock:
            if not self._fixes or mono - self._fixes[-1].received > self.fix_timeout_s:
                return None
            last = self._fixes[-1]
            t = last.utc + (mono - last.received) * self._rate()
            fixes = list(self._fixes)
        if t >= last.utc or len(fixes) == 1:
            dt = min(max(t - last.utc, 0.0), MAX_EXTRAPOLATE_S)
            v = last.speed if math.isfinite(last.speed) else 0.0
            h = math.radians(last.heading) if math.isfinite(last.heading) else 0.0
            lat = last.lat + v * dt * math.cos(h) / EARTH_M_PER_DEG
            lon = last.lon + v * dt * math.sin(h) / (EARTH_M_PER_DEG * math.cos(math.radians(last.lat)))
            return VehiclePose(last.utc + dt, lat, lon, v, last.heading, last.distance + v * dt)
        for a, b in zip(reversed(fixes[:-1]), reversed(fixes[1:]), strict=True):
            if a.utc <= t <= b.utc:
                w = (t - a.utc) / (b.utc - a.utc)
                return VehiclePose(
                    t, a.lat + w * (b.lat - a.lat), a.lon + w * (b.lon - a.lon),
                    _mix(a.speed, b.speed, w), _mix_angle(a.heading, b.heading, w),
                    a.distance + w * (b.distance - a.distance),
                )  # fmt: skip
        return None  # older than what is kept


def _mix(a: float, b: float, w: float) -> float:
    if not math.isfinite(a):
        return b
    return a + w * (b - a) if math.isfinite(b) else a


def _mix_angle(a: float, b: float, w: float) -> float:
    if not (math.isfinite(a) and math.isfinite(b)):
        return b if math.isfinite(b) else a
    d = (b - a + 180) % 360 - 180
    return (a + w * d) % 360


class GpsdClient(threading.Thread):
    """Feeds a :class:`PoseTracker` from gpsd until ``stop`` is set; reconnects forever."""

    def __init__(self, address: str, tracker: PoseTracker, stop: threading.Event, reconnect_s: float = 2.0) -> None:
        super().__init__(name="gpsd", daemon=True)
        self.address = address
        self.host, self.port = parse_address(address)
        self.tracker = tracker
        self.stop = stop
        self.reconnect_s = reconnect_s
        self.connections = 0
        self.losses = 0
        self.fixes = 0

    def run(self) -> None:
        unavailable_logged = False
        while not self.stop.is_set():
            try:
                with socket.create_connection((self.host, self.port), timeout=max(self.reconnect_s, 1.0)) as sock:
                    sock.settimeout(1.0)
                    sock.sendall(b'?WATCH={"enable":true,"json":true}\n')
                    self.connections += 1
                    log.info("gpsd %s: %s", self.address, "connected" if self.connections == 1 else "back; resuming")
                    unavailable_logged = False
                    self._read(sock)
                if not self.stop.is_set():
                    self.losses += 1
                    log.warning("gpsd %s: connection closed; reconnecting every %g s", self.address, self.reconnect_s)
            except OSError as e:
                if not unavailable_logged:
                    log.warning("gpsd %s unavailable (%s); retrying every %g s", self.address, e, self.reconnect_s)
                    unavailable_logged = True
            self.stop.wait(self.reconnect_s)

    def _read(self, sock: socket.socket) -> None:
        buffer = b""
        while not self.stop.is_set():
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            if len(buffer) > 1 << 20:  # no newline in a megabyte: not gpsd
                buffer = b""
            for line in lines:
                try:
                    report = json.loads(line)
                except ValueError:
                    continue
                fix = parse_tpv(report, time.monotonic()) if isinstance(report, dict) else None
                if fix is not None:
                    self.fixes += 1
                    self.tracker.add(fix)
