"""Bounds on the times and places that enter from outside (files, flags, uploads): a check that refuses what
no patrol drive can hold before it reaches the store, where a year-1 or 1e300 time would break every page and
export that turns it into a date.

Each check raises ValueError naming ``what`` (a file and row, a field); the caller turns it into its own
one-line error (:class:`~detector.errors.InputError` for files and flags).

>>> check_time(1_780_000_000.0, "fix 1"), check_lat_lon(31.25, 34.79, "fix 1")
(1780000000.0, (31.25, 34.79))
>>> check_time(1e300, "line 2")
Traceback (most recent call last):
ValueError: line 2: time 1e+300 is outside 2000-01-01 to 2100-01-01 UTC
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

EARLIEST_UTC = datetime(2000, 1, 1, tzinfo=UTC).timestamp()  # 946684800.0
LATEST_UTC = datetime(2100, 1, 1, tzinfo=UTC).timestamp()  # 4102444800.0


def time_ok(value: float) -> bool:
    """True for a finite epoch time (seconds, UTC) from 2000-01-01 up to 2100-01-01."""
    return isinstance(value, int | float) and math.isfinite(value) and EARLIEST_UTC <= value <= LATEST_UTC


def check_time(value: float, what: str) -> float:
    """``value`` (UTC epoch seconds) as a float, else ValueError naming ``what``."""
    if not time_ok(value):
        raise ValueError(f"{what}: time {value!r} is outside 2000-01-01 to 2100-01-01 UTC")
    return float(value)


def check_lat_lon(lat: float, lon: float, what: str) -> tuple[float, float]:
    """``(lat, lon)`` in degrees as floats, else ValueError naming ``what``: finite, latitude within ±90,
    longitude within ±180."""
    if not (isinstance(lat, int | float) and math.isfinite(lat) and -90.0 <= lat <= 90.0):
        raise ValueError(f"{what}: latitude {lat!r} is not a number from -90 to 90")
    if not (isinstance(lon, int | float) and math.isfinite(lon) and -180.0 <= lon <= 180.0):
        raise ValueError(f"{what}: longitude {lon!r} is not a number from -180 to 180")
    return float(lat), float(lon)
