"""The hazard store (SQLite): drives, sightings, hazards, tickets and their outbox."""

from detector.store.db import HazardStore

__all__ = ["HazardStore"]
