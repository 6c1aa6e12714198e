"""Values read back from the store, checked before a page or an export uses them.

The pipeline writes only sane values, but a store can be damaged, hand-edited or written by an older bug: a
time of 1e300, a position at infinity, text in a number column. Such a value must not take the review app or
an export down (a time past year 9999 cannot be formatted; JSON has no infinity): it is set to None and
logged, and a point whose position is not valid is left out (it cannot be placed on a map).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

log = logging.getLogger(__name__)

MAX_EPOCH = 253402300799.0  # 9999-12-31T23:59:59Z, the last second a date can be written for
TIMES = ("first_seen", "last_seen", "time", "utc", "started", "ended", "started_utc", "ended_utc")
# The range each numeric column (by its name in a row) must lie in; any other number must be finite.
BOUNDS: dict[str, tuple[float, float]] = {
    **dict.fromkeys(("lat", "vehicle_lat"), (-90.0, 90.0)),
    **dict.fromkeys(("lon", "vehicle_lon"), (-180.0, 180.0)),
    **dict.fromkeys(TIMES, (0.0, MAX_EPOCH)),
    "confidence": (0.0, 1.0),
    "severity": (0.0, 100.0),
    **dict.fromkeys(("uncertainty_m", "width_m", "range_m", "distance_m"), (0.0, 1e7)),
    **dict.fromkeys(("lane_offset_m", "lateral_m"), (-1e4, 1e4)),
    "heading": (-360.0, 360.0),
}
POSITION = ("lat", "lon")


def valid(key: str, value: Any) -> bool:
    """Whether ``value`` may stand in a row under ``key``: None, text where no number is expected, or a finite number
    within the key's :data:`BOUNDS`.

    >>> [valid("first_seen", v) for v in (1.78e9, 1e300, "NaN", None)], valid("lat", float("inf")), valid("misses", 2)
    ([True, False, False, True], False, True)
    """
    if value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, int | float):
        return key not in BOUNDS
    if not math.isfinite(value):
        return False
    low, high = BOUNDS.get(key, (-math.inf, math.inf))
    return low <= value <= high


def checked(row: Mapping[str, Any], what: str, drop_unplaced: bool = True) -> dict[str, Any] | None:
    """``row`` as a dict with each value that is not :func:`valid` set to None, and logged; None (logged) when its
    position is one of them and ``drop_unplaced``. ``what`` names the row in the log (``hazard #12``)."""
    values = dict(row)
    bad = [key for key, value in values.items() if not valid(key, value)]
    if not bad:
        return values
    shown = ", ".join(f"{key} {str(values[key])[:30]!r}" for key in bad)
    if drop_unplaced and any(key in POSITION for key in bad):
        log.warning("%s in the store has a value that is not valid (%s): left out", what, shown)
        return None
    log.warning("%s in the store has a value that is not valid (%s): shown as empty", what, shown)
    return {**values, **dict.fromkeys(bad, None)}


def checked_rows(
    rows: Iterable[Mapping[str, Any]], name: Callable[[Mapping[str, Any]], str], drop_unplaced: bool = True
) -> list[dict[str, Any]]:
    """Each row :func:`checked` (``name`` names it in the log), those that cannot be placed left out."""
    out = []
    for row in rows:
        kept = checked(row, name(row), drop_unplaced)
        if kept is not None:
            out.append(kept)
    return out
