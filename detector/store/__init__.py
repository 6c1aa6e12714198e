"""The hazard store (SQLite, or PostgreSQL + PostGIS): drives, sightings, hazards, tickets and their outbox."""

from detector.store.db import HazardStore

__all__ = ["HazardStore"]
