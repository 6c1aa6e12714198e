"""What the hotline offers: its services, their attribute definitions and notices; a POST's attributes checked
against them, and a stored request as GeoReport shows it."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from hotline106.answers import HttpError, iso

AGENCY = "Municipal hotline 106 (local test server)"
SERVICES = [
    {"service_code": "POTHOLE", "service_name": "Pothole", "description": "A hole or sunken patch in the road surface",
     "metadata": True, "keywords": "pothole,road,asphalt", "group": "Roads"},
    {"service_code": "SIGN_DOWN", "service_name": "Fallen traffic sign",
     "description": "A traffic sign knocked down, fallen or lying on the road", "metadata": True,
     "keywords": "sign,traffic sign,fallen", "group": "Roads"},
    {"service_code": "STREETLIGHT", "service_name": "Street light out", "description": "A street light not working",
     "metadata": False, "keywords": "light,lamp", "group": "Lighting"},
]  # fmt: skip
SERVICE_CODES = frozenset(s["service_code"] for s in SERVICES)
# service_notice: what the hotline tells the reporter about each request of the service (as real servers do).
NOTICES = {
    "POTHOLE": "Potholes in a driving lane are made safe within 48 hours and repaired within 10 working days.",
    "SIGN_DOWN": "A fallen traffic sign is made safe the same day.",
}
_REF = {"variable": True, "code": "hazard_ref", "datatype": "string", "required": False,
        "datatype_description": "The reporter's own reference", "order": 1,
        "description": "Reporter reference"}  # fmt: skip
DEFINITIONS: dict[str, list[dict[str, Any]]] = {
    "POTHOLE": [
        _REF,
        {"variable": True, "code": "severity", "datatype": "number", "required": True,
         "datatype_description": "0 (cosmetic) to 100 (dangerous)", "order": 2, "description": "Severity"},
        {"variable": True, "code": "lane", "datatype": "singlevaluelist", "required": False,
         "datatype_description": None, "order": 3, "description": "Where on the road",
         "values": [{"key": "driving", "name": "Driving lane"}, {"key": "shoulder", "name": "Shoulder"}]},
    ],
    "SIGN_DOWN": [_REF],
}  # fmt: skip


def checked_attributes(code: str, params: list[tuple[str, str]]) -> dict[str, Any]:
    """The ``attribute[...]`` parameters of a POST for service ``code``, checked against its definition (a 400
    naming every problem). ``attribute[x][]`` repeated is a list.

    >>> checked_attributes("POTHOLE", [("attribute[severity]", "40"), ("attribute[lane]", "shoulder")])
    {'severity': '40', 'lane': 'shoulder'}
    """
    given: dict[str, Any] = {}
    for key, value in params:
        match = re.fullmatch(r"attribute\[([^\]]+)\](\[\])?", key)
        if match:
            if match.group(2):
                given.setdefault(match.group(1), []).append(value)
            else:
                given[match.group(1)] = value
    problems = []
    for attribute in DEFINITIONS.get(code, []):
        value = given.get(attribute["code"])
        if value in (None, "", []):
            if attribute["required"]:
                problems.append(f"attribute[{attribute['code']}] is required for {code}")
            continue
        if attribute["datatype"] == "number":
            try:
                float(value)
            except (TypeError, ValueError):
                problems.append(f"attribute[{attribute['code']}] must be a number")
        if attribute["datatype"] == "singlevaluelist" and value not in {v["key"] for v in attribute["values"]}:
            problems.append(f"attribute[{attribute['code']}] must be one of the listed keys")
    if problems:
        raise HttpError(400, *problems)
    return given


def request_view(row: sqlite3.Row) -> dict[str, Any]:
    """A stored request as GeoReport's ``request``, with its service's notice."""
    names = {s["service_code"]: s["service_name"] for s in SERVICES}
    return {
        "service_request_id": str(row["id"]),
        "status": row["status"],
        "status_notes": row["status_notes"],
        "service_name": names.get(row["service_code"]),
        "service_code": row["service_code"],
        "description": row["description"],
        "agency_responsible": AGENCY,
        "service_notice": NOTICES.get(row["service_code"]),
        "requested_datetime": iso(row["requested_at"]),
        "updated_datetime": iso(row["updated_at"]),
        "expected_datetime": None,
        "address": row["address"],
        "address_id": None,
        "zipcode": None,
        "lat": row["lat"],
        "long": row["long"],
        "media_url": row["media_url"],
    }
