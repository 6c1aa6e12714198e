"""Evidence photos in the app: only the blurred ones under ``<evidence_dir>/tickets/``, never a raw frame.

A hazard's photo is the same file its 106 request links to (``tickets/hazard_<id>.jpg``, faces and plates blurred,
the hazard's box drawn). It is made when the drive is merged (``tickets.evidence.at_merge``,
:func:`~detector.privacy.evidence.photos_at_merge`); one missing (a store merged without the privacy extra) is
made on first view, and again when the hazard changed since (a merge may pick another best frame).
"""

from __future__ import annotations

import threading
from pathlib import Path

from detector.config.pipeline import EvidenceConfig
from detector.privacy.evidence import Redactor, refresh_photo
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
        with self._lock:  # one redaction at a time: it is CPU-bound, and two would write the same file
            made = refresh_photo(store, hazard_id, self._loaded, self.settings)
        return resolve_evidence(store.evidence_dir, f"tickets/hazard_{hazard_id}.jpg") if made else None

    def _loaded(self) -> Redactor:
        if self._redactor is None:
            self._redactor = Redactor(self.settings)
        return self._redactor
