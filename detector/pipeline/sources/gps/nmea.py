"""NMEA 0183 logs (via pynmea2): RMC and GGA fixes from any talker (GP, GN, GL, ...).

RMC gives date, time, position, speed (knots) and course; GGA gives time and position.
An RMC and a GGA of the same time are merged into one fix. Invalid fixes (RMC status
``V``, GGA quality 0) are ignored. GGA times get their date from the RMC sentences of the
file, rolling over at midnight. Lines that fail to parse or fail their checksum are
skipped and counted; ``#`` lines are comments. For example::

    $GPRMC,124022.00,A,4810.8509,N,01133.9095,E,008.5,171.1,010409,002.0,E,A*3B
    $GPGGA,124022.00,4810.8509,N,01133.9095,E,1,04,23.9,-0704.5,M,0046.3,M,,*41

is one fix: 2009-04-01 12:40:22 UTC, 48.18085 N 11.56516 E, 4.37 m/s, course 171.1.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import ClassVar, TypeVar

import pynmea2

from detector.bounds import check_lat_lon, check_time
from detector.errors import InputError
from detector.pipeline.sources.track import Track, utc_text

log = logging.getLogger(__name__)

KNOT_MPS = 1852.0 / 3600.0
DAY_S = 86400.0
T = TypeVar("T")
_SENTENCE = re.compile(rb"(?m)^[\x00\s]*\$[A-Z]{5},")


class NmeaReader:
    """Reads NMEA 0183 text logs."""

    name: ClassVar[str] = "NMEA 0183"
    suffixes: ClassVar[tuple[str, ...]] = (".nmea", ".nmea0183", ".log", ".txt")

    def sniff(self, head: bytes) -> bool:
        return _SENTENCE.search(head) is not None

    def read(self, path: Path) -> Track:
        return read_nmea(path)


@dataclass(frozen=True)
class _Record:
    """One valid RMC or GGA sentence. ``day`` is None for GGA (it carries no date)."""

    kind: str
    line: int
    time_of_day: float
    day: date | None
    lat: float
    lon: float
    speed: float = math.nan
    heading: float = math.nan


@dataclass
class _Fix:
    time: float
    lat: float
    lon: float
    speed: float
    heading: float
    kinds: set[str]


def read_nmea(path: Path) -> Track:
    """Read all valid RMC/GGA fixes of an NMEA log into a track."""
    records = _parse_lines(path, path.read_bytes().decode("latin-1"))
    fixes = _merge(path, records)
    return Track.from_arrays(
        str(path),
        time=[f.time for f in fixes],
        lat=[f.lat for f in fixes],
        lon=[f.lon for f in fixes],
        speed=[f.speed for f in fixes],
        heading=[f.heading for f in fixes],
    )


def _parse_lines(path: Path, text: str) -> list[_Record]:
    """Valid RMC/GGA records in file order; InputError if most sentence lines are bad."""
    records: list[_Record] = []
    total = 0
    bad: list[str] = []  # "line N: reason"
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip("\x00 \t\r\n")
        if not line or line.startswith("#"):
            continue
        total += 1
        try:
            record = _record(number, pynmea2.parse(line))
        except pynmea2.SentenceTypeError:
            continue  # well-formed, checksum fine, just a type pynmea2 does not know
        except (ValueError, TypeError) as e:  # pynmea2.ParseError and ChecksumError included
            bad.append(f"line {number}: {_reason(e)}")
            continue
        if record is not None:
            records.append(record)
    if total == 0:
        raise InputError(path, "no NMEA sentences")
    if 2 * len(bad) > total:
        raise InputError(
            path,
            f"not a readable NMEA log: {len(bad)} of {total} sentence lines are malformed "
            f"or fail their checksum (first at {bad[0]})",
        )
    if bad:
        log.warning("%s: skipped %d unreadable NMEA lines (first at %s)", path, len(bad), bad[0])
    if not records:
        raise InputError(path, "no valid RMC or GGA fix")
    return records


def _record(number: int, msg: pynmea2.NMEASentence) -> _Record | None:
    """A record for a valid RMC/GGA fix, None for other or invalid sentences.

    Raises ValueError/TypeError on malformed fields (pynmea2 parses them lazily).
    """
    if isinstance(msg, pynmea2.types.RMC):
        clock, day = _typed(msg.timestamp, time, "time"), _typed(msg.datestamp, date, "date")
        if msg.status != "A" or clock is None or day is None or not (msg.lat and msg.lon):
            return None
        return _Record(
            "RMC",
            number,
            _seconds(clock),
            day,
            msg.latitude,
            msg.longitude,
            speed=_float(msg.spd_over_grnd) * KNOT_MPS,
            heading=_float(msg.true_course),
        )
    if isinstance(msg, pynmea2.types.GGA):
        clock = _typed(msg.timestamp, time, "time")
        if not msg.gps_qual or clock is None or not (msg.lat and msg.lon):
            return None
        return _Record("GGA", number, _seconds(clock), None, msg.latitude, msg.longitude)
    return None


def _typed(value: object, kind: type[T], field: str) -> T | None:
    """pynmea2 gives None for an empty date/time field and the raw text for a malformed one."""
    if value is None or isinstance(value, kind):
        return value
    raise ValueError(f"malformed {field} {value!r}")


def _merge(path: Path, records: list[_Record]) -> list[_Fix]:
    """Give every record a UTC time and merge an RMC and a GGA of the same time."""
    first_rmc = next((r for r in records if r.day is not None), None)
    if first_rmc is None:
        raise InputError(path, "GGA sentences only, and no RMC sentence to give the date")
    reference = _epoch(first_rmc.day, first_rmc.time_of_day)
    fixes: dict[float, _Fix] = {}
    repeated: list[tuple[int, float]] = []
    for r in records:
        t = _epoch(r.day, r.time_of_day) if r.day else _nearest_day(r.time_of_day, reference)
        try:
            check_time(t, f"line {r.line} ({utc_text(t)})")
            check_lat_lon(r.lat, r.lon, f"line {r.line}")
        except ValueError as e:
            raise InputError(path, str(e)) from None
        reference = t
        fix = fixes.get(t)
        if fix is None:
            fixes[t] = _Fix(t, r.lat, r.lon, r.speed, r.heading, {r.kind})
        elif r.kind in fix.kinds:
            repeated.append((r.line, t))
        else:
            fix.kinds.add(r.kind)
            if r.kind == "RMC":
                fix.lat, fix.lon, fix.speed, fix.heading = r.lat, r.lon, r.speed, r.heading
    if repeated:
        line, t = repeated[0]
        log.warning(
            "%s: skipped %d RMC/GGA sentences that repeat an earlier timestamp (first at line %d, %s)",
            path,
            len(repeated),
            line,
            utc_text(t),
        )
    return list(fixes.values())


def _nearest_day(time_of_day: float, reference: float) -> float:
    """The epoch time with this time of day closest to ``reference`` (midnight rollover).

    >>> _nearest_day(5.0, _epoch(date(2010, 4, 3), DAY_S - 2.0)) - _epoch(date(2010, 4, 4), 0.0)
    5.0
    """
    t = math.floor(reference / DAY_S) * DAY_S + time_of_day
    if t - reference > DAY_S / 2:
        t -= DAY_S
    elif reference - t > DAY_S / 2:
        t += DAY_S
    return t


def _epoch(day: date, time_of_day: float) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() + time_of_day


def _seconds(t: time) -> float:
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


def _float(value: object) -> float:
    return math.nan if value in (None, "") else float(value)


def _reason(error: Exception) -> str:
    """pynmea2 errors carry ``(message, data)`` as their one argument."""
    reason = error.args[0] if error.args else type(error).__name__
    return str(reason[0] if isinstance(reason, tuple) and reason else reason)
