"""Evidence photos in the app: only the blurred ones under ``<evidence_dir>/tickets/``, never a raw frame.

A hazard's photo is the same file its 106 request links to (``tickets/hazard_<id>.jpg``, made by
:func:`write_evidence`, faces and plates blurred). A hazard without one yet (a candidate) gets it
made on first view, and again when the hazard changed since (a merge may pick another best frame).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

from detector.config.pipeline import EvidenceConfig
from detector.privacy.evidence import Redactor, write_evidence
from detector.store import HazardStore

PHOTO_SUFFIXES = (".jpg", ".jpeg")


def resolve_evidence(evidence_dir: Path, relative: str) -> Path | None:
    """The blurred photo at ``relative`` (as in a request's media URL), or None if it is anything else.

    Resolved before the check, so ``..`` and symbolic links cannot reach a raw frame or leave the folder.
    """
    root = (evidence_dir / "tickets").resolve()
    try:
        target = (evidence_dir / relative).resolve()
    except (OSError, ValueError):
        return None
    if not target.is_relative_to(root) or target.suffix.lower() not in PHOTO_SUFFIXES or not target.is_file():
        return None
    return target


class Photos:
    """Makes and finds the blurred photo of each hazard; one redactor, loaded on first use."""

    def __init__(self, settings: EvidenceConfig) -> None:
        self.settings = settings
        self._redactor: Redactor | None = None
        self._lock = threading.Lock()

    def for_hazard(self, store: HazardStore, hazard_id: int) -> Path | None:
        rows = store.query(
            "SELECT h.evidence_path, h.updated_at, s.x1, s.y1, s.x2, s.y2 FROM hazards h"
            " LEFT JOIN sightings s ON s.id = h.best_sighting_id WHERE h.id = ?",
            (hazard_id,),
        )
        if not rows or not rows[0]["evidence_path"] or rows[0]["x1"] is None:
            return None
        row = rows[0]
        target = store.evidence_dir / "tickets" / f"hazard_{hazard_id}.jpg"
        changed = datetime.strptime(row["updated_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
        with self._lock:  # one redaction at a time: it is CPU-bound, and two would write the same file
            if not target.is_file() or target.stat().st_mtime < changed:
                if self._redactor is None:
                    self._redactor = Redactor(self.settings)
                box = (row["x1"], row["y1"], row["x2"], row["y2"])
                written = write_evidence(
                    store.evidence_dir, hazard_id, row["evidence_path"], box, self._redactor, self.settings
                )
                if written is None:
                    return None
        return resolve_evidence(store.evidence_dir, f"tickets/hazard_{hazard_id}.jpg")
