"""The service manager's morning briefing: yesterday's finds and the 106 requests past their service-level target.

Yesterday is the city's day (``tickets.timezone``) before the one the briefing is read on. A request is past
its target when it has been open longer than ``review.service_level_days`` of its hazard's class. Both are
also counted per service (the 106 ``service_code``: the department that answers), a find by the code its
class is filed under.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from detector.gis_layers import StreetNames
from detector.pipeline.sources.track import parse_utc
from detector.review.dashboard import FOUND
from detector.store import HazardStore
from detector.store.streets import street_of

DAY_S = 86400.0


def yesterday_in(timezone: str, now: datetime | None = None) -> date:
    """The city's yesterday: the day before the one ``now`` falls on in ``timezone``."""
    return (now or datetime.now(UTC)).astimezone(ZoneInfo(timezone)).date() - timedelta(days=1)


def briefing(
    store: HazardStore,
    timezone: str,
    service_level_days: dict[str, float],
    service_codes: dict[str, str],
    streets: StreetNames | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    zone = ZoneInfo(timezone)
    now = now or datetime.now(UTC)
    yesterday = yesterday_in(timezone, now)
    start, end = (datetime.combine(day, time(), zone).timestamp() for day in (yesterday, yesterday + timedelta(days=1)))
    street = partial(street_of, streets=streets)
    found = [
        {"id": r["id"], "class": r["class"], "street": street(r), "service_code": service_codes.get(r["class"])}
        for r in store.query(
            f"SELECT h.id, h.class, h.lat, h.lon, h.street FROM hazards h WHERE {FOUND}"
            " AND h.first_seen >= ? AND h.first_seen < ? ORDER BY h.first_seen, h.id",
            (start, end),
        )
    ]
    late = []
    open_requests = store.query(
        "SELECT h.id, h.class, h.lat, h.lon, h.street, t.service_code, t.service_request_id, t.opened_at FROM tickets t"
        " JOIN hazards h ON h.id = t.hazard_id WHERE t.status != 'closed' ORDER BY t.opened_at, h.id"
    )
    for r in open_requests:
        opened = parse_utc(r["opened_at"])
        target = service_level_days.get(r["class"])
        if opened is None or target is None:
            continue
        days_open = (now - opened).total_seconds() / DAY_S
        if days_open > target:
            late.append(
                {
                    "id": r["id"], "class": r["class"], "street": street(r), "service_code": r["service_code"],
                    "request_id": r["service_request_id"], "opened_at": r["opened_at"],
                    "days_open": round(days_open, 1), "target_days": target,
                }
            )  # fmt: skip
    return {
        "day": yesterday.isoformat(),
        "found": found,
        "past_target": late,
        "services": _per_service(found, open_requests, late),
    }


def _per_service(found: list[dict], open_requests: list, late: list[dict]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}

    def row(code: str | None) -> dict[str, Any]:
        code = code or ""
        return rows.setdefault(code, {"service_code": code, "found_yesterday": 0, "open": 0, "past_target": 0})

    for f in found:
        row(f["service_code"])["found_yesterday"] += 1
    for r in open_requests:
        row(r["service_code"])["open"] += 1
    for r in late:
        row(r["service_code"])["past_target"] += 1
    return [rows[code] for code in sorted(rows)]
