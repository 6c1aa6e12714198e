"""The fleet on the dashboard: each vehicle that reports to this store's hub, when it last did, what it still
has queued, and the drives and kilometres it patrolled per local day.

A store that no vehicle reports to (a vehicle's own, or one filled by ``detector run``) has no fleet: the
dashboard then shows none.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from detector.pipeline.sources.track import parse_utc
from detector.store import HazardStore
from detector.store.schema import TRIP

# Which vehicle a drive came from: the hub records it with each segment (a drive's segments are one vehicle's).
DRIVE_VEHICLE = "(SELECT g.vehicle FROM hub_segments g WHERE g.drive_id = {drive} LIMIT 1)"


def fleet(store: HazardStore, timezone: str, silent_after_h: float, now: float) -> dict[str, Any] | None:
    """Per vehicle: its last contact and whether it has been silent ``silent_after_h`` hours by ``now``; per
    vehicle and local day: drives started and kilometres driven. None when no vehicle reports here."""
    vehicles = store.query(
        "SELECT name, revoked_at, last_contact_at, segments, drives, queued FROM hub_vehicles ORDER BY name"
    )
    if not vehicles:
        return None
    zone = ZoneInfo(timezone)
    days: dict[tuple[str, str], dict[str, Any]] = {}
    drives = store.query(
        f"SELECT DISTINCT g.vehicle, d.id, {TRIP} AS trip, d.started_utc, d.distance_m FROM drives d"
        " JOIN hub_segments g ON g.drive_id = d.id WHERE d.started_utc IS NOT NULL"
    )
    for d in drives:
        day = datetime.fromtimestamp(d["started_utc"], zone).strftime("%Y-%m-%d")
        row = days.setdefault((day, d["vehicle"]), {"day": day, "vehicle": d["vehicle"], "trips": set(), "km": 0.0})
        row["trips"].add(d["trip"])  # a live run's segments: one drive
        row["km"] += (d["distance_m"] or 0.0) / 1000
    rows = []
    for v in vehicles:
        contact = parse_utc(v["last_contact_at"])
        silent_h = None if contact is None else (now - contact.timestamp()) / 3600
        rows.append(
            {
                "name": v["name"],
                "revoked": v["revoked_at"] is not None,
                "last_contact_at": v["last_contact_at"],
                "silent": v["revoked_at"] is None and (silent_h is None or silent_h >= silent_after_h),
                "segments": v["segments"],
                "drives": v["drives"],
                "queued": v["queued"],
            }
        )
    per_day = [
        {"day": r["day"], "vehicle": r["vehicle"], "drives": len(r["trips"]), "km": round(r["km"], 2)}
        for r in sorted(days.values(), key=lambda r: (r["day"], r["vehicle"]), reverse=True)
    ]
    return {"vehicles": rows, "per_day": per_day}
