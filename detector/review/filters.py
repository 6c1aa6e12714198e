"""The hazard list's filters as the query string gives them (shared by the list and its exports)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Query

from detector.export import HazardFilter, check_statuses, parse_since

Classes = Annotated[list[str] | None, Query(alias="class")]  # repeatable filters: ?class=a&class=b
Statuses = Annotated[list[str] | None, Query()]


def _day(text: str | None, end: bool) -> float | None:
    """A date (or time) from a filter; the end of a date range includes its whole day."""
    if not text:
        return None
    value = parse_since(text)
    return value + timedelta(days=1).total_seconds() if end and len(text) == 10 else value


@dataclass(frozen=True)
class FilterQuery:
    """The filters as given; :meth:`hazard_filter` checks them."""

    cls: list[str] | None
    status: list[str] | None
    min_confidence: float | None
    since: str | None
    until: str | None
    drive: str | None

    def hazard_filter(self) -> HazardFilter:
        """Checked and converted; call after the sign-in check, so a stranger gets 401, not a 400."""
        return HazardFilter(
            status=check_statuses([s for s in self.status or [] if s]),
            since=_day(self.since, end=False),
            until=_day(self.until, end=True),
            classes=tuple(c for c in self.cls or [] if c),
            min_confidence=self.min_confidence,
            drive=self.drive or None,
        )


def _filter_query(
    cls: Classes = None,
    status: Statuses = None,
    min_confidence: float | None = None,
    since: str | None = None,
    until: str | None = None,
    drive: str | None = None,
) -> FilterQuery:
    return FilterQuery(cls, status, min_confidence, since, until, drive)


FilterParams = Annotated[FilterQuery, Depends(_filter_query)]
