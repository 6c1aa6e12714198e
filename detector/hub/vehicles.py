"""The hub's vehicles: each has a random token, stored only as its SHA-256; a revoked one is refused."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from detector.errors import InputError
from detector.store import HazardStore
from detector.store.db import PLAIN_NAME, integrity_errors, now_text

VEHICLE_COLUMNS = "name, created_at, revoked_at, last_contact_at, segments, drives"


@dataclass(frozen=True)
class Vehicle:
    name: str
    created_at: str
    revoked_at: str | None
    last_contact_at: str | None
    segments: int
    drives: int


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_vehicle(store: HazardStore, name: str) -> str:
    """Register ``name`` and return its new token (shown once; only its hash is kept)."""
    if not PLAIN_NAME.fullmatch(name):
        raise InputError(None, f"vehicle name {name!r}: use letters, digits, '.', '-' and '_' (up to 64)")
    token = secrets.token_urlsafe(32)
    try:
        with store.transaction() as conn:
            conn.execute(
                "INSERT INTO hub_vehicles (name, token_hash, created_at) VALUES (?, ?, ?)",
                (name, token_hash(token), now_text()),
            )
    except integrity_errors():
        raise InputError(None, f"vehicle {name} already exists (revoke it and add it under a new name)") from None
    return token


def revoke_vehicle(store: HazardStore, name: str) -> None:
    with store.transaction() as conn:
        cur = conn.execute(
            "UPDATE hub_vehicles SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (now_text(), name)
        )
        if not cur.rowcount:
            known = conn.execute("SELECT 1 FROM hub_vehicles WHERE name = ?", (name,)).fetchone()
            raise InputError(None, f"vehicle {name} is already revoked" if known else f"no vehicle named {name}")


def list_vehicles(store: HazardStore) -> list[Vehicle]:
    rows = store.query(f"SELECT {VEHICLE_COLUMNS} FROM hub_vehicles ORDER BY name")
    return [Vehicle(*r) for r in rows]


def vehicle_for_token(store: HazardStore, token: str) -> Vehicle | None:
    rows = store.query(f"SELECT {VEHICLE_COLUMNS} FROM hub_vehicles WHERE token_hash = ?", (token_hash(token),))
    return Vehicle(*rows[0]) if rows else None
