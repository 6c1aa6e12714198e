"""The public status map's data: confirmed hazards only, and only what a resident needs.

Each entry is the class, the position and when the 106 request was opened (if it has been), so
a resident sees the hazard is known and need not call. Nothing else leaves: no ids of our
records, no evidence, no sightings, no drives, no reviewer names, no candidates or rejected ones.
The fields are listed here explicitly so that a new column in the store can never leak by accident.
"""

from __future__ import annotations

from typing import Any

from detector.store import HazardStore
from detector.store.values import checked_rows

PUBLIC_FIELDS = ("class", "lat", "lon", "request_opened_at", "request_status")
POSITION_DECIMALS = 5  # about a metre: the hazard's own uncertainty is several


def public_hazards(store: HazardStore) -> dict[str, Any]:
    rows = store.query(
        "SELECT h.id, h.class, h.lat, h.lon, t.opened_at, t.status FROM hazards h"
        " LEFT JOIN tickets t ON t.hazard_id = h.id WHERE h.status = 'confirmed' ORDER BY h.lat, h.lon"
    )
    rows = checked_rows(rows, lambda r: f"hazard #{r['id']}")  # the id only names a bad row in the log
    hazards = [
        {
            "class": r["class"],
            "lat": round(r["lat"], POSITION_DECIMALS),
            "lon": round(r["lon"], POSITION_DECIMALS),
            "request_opened_at": r["opened_at"],
            "request_status": ("closed" if r["status"] == "closed" else "open") if r["status"] else None,
        }
        for r in rows
    ]
    return {"hazards": hazards}
