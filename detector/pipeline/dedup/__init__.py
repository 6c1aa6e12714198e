"""Deduplication: sightings into hazards within a drive (:mod:`.within_drive`), then against the store
(:mod:`.across_drives`)."""
