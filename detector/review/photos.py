"""Evidence photos in the app: only the blurred ones under ``<evidence_dir>/tickets/``, never a raw frame.

A hazard's photo is the same file its 106 request links to (``tickets/hazard_<id>.jpg``, faces and plates blurred,
the hazard's box drawn). ``detector review`` and ``hub serve`` make the photos of the hazards people act on
(confirmed, held for review) in the background as drives arrive (:class:`PhotoPreparer`), so that a reviewer finds
them ready, and ``detector run`` and ``batch`` spend no time on them (a redaction costs about a second of CPU per
1080p frame; ``tickets.evidence.at_merge`` makes them there instead). Any other photo is made on first view, and
again when the hazard changed since (a merge may pick another best frame).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from detector.config.pipeline import EvidenceConfig
from detector.privacy.evidence import ACTED_ON, Redactor, refresh_photo
from detector.store import HazardStore

log = logging.getLogger(__name__)

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


def prepare_photos(store: HazardStore, photos: Photos, stop: threading.Event | None = None) -> int:
    """Make (or refresh) the photo of each hazard people act on (:data:`ACTED_ON`); how many have one now."""
    ready = 0
    for row in store.query(f"SELECT h.id FROM hazards h WHERE {ACTED_ON} ORDER BY h.id"):
        if stop is not None and stop.is_set():
            break
        ready += photos.for_hazard(store, row["id"]) is not None
    return ready


class PhotoPreparer:
    """Runs :func:`prepare_photos` now and every ``interval_s`` in a background thread, until :meth:`stop`."""

    def __init__(self, open_store: Callable[[], HazardStore], photos: Photos, interval_s: float = 30.0) -> None:
        self._open_store, self._photos, self._interval_s = open_store, photos, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="photo-preparer", daemon=True)

    def start(self) -> PhotoPreparer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self._open_store() as store:
                    prepare_photos(store, self._photos, self._stop)
            except ImportError as e:  # no privacy extra: each photo is made (and says so) when first opened
                log.info("evidence photos are made when first viewed (%s is not installed)", e.name)
                return
            except Exception:  # a damaged frame or a busy store must not end the app: try again later
                log.exception("preparing evidence photos failed; trying again in %g s", self._interval_s)
            self._stop.wait(self._interval_s)
