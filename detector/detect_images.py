"""``detector detect``: run the hazard detector on photos and folders of photos.

For each image, a YOLO-format ``<stem>.txt`` (``cls cx cy w h conf``, normalised) and an
annotated ``<stem>.jpg`` go to the output folder. An unreadable image is reported and skipped.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from detector.annotate import draw_detections
from detector.errors import InputError
from detector.images import read_image, write_image
from detector.pipeline.inference import HazardDetector
from detector.yolo_labels import write_label

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass
class DetectSummary:
    images: int = 0
    with_hazards: int = 0
    per_class: Counter = field(default_factory=Counter)
    unreadable: list[str] = field(default_factory=list)
    out_dir: str = ""

    def line(self, names: list[str]) -> str:
        counts = ", ".join(f"{self.per_class.get(i, 0)} {name}" for i, name in enumerate(names))
        bad = f"; {len(self.unreadable)} unreadable" if self.unreadable else ""
        return f"{self.images} images, {self.with_hazards} with hazards ({counts}){bad}; output in {self.out_dir}"


def collect_images(paths: list[Path]) -> list[Path]:
    """Images named directly, and those inside folders (recursively), in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif path.is_file():
            found.append(path)
        else:
            raise InputError(path, "no such file or folder")
    return found


def _unique_stems(images: list[Path]) -> list[str]:
    """Output names: the file stem, numbered where two inputs share one."""
    seen: Counter = Counter()
    stems = []
    for image in images:
        seen[image.stem] += 1
        stems.append(image.stem if seen[image.stem] == 1 else f"{image.stem}_{seen[image.stem]}")
    return stems


def detect_images(paths: list[Path], detector: HazardDetector, out_dir: Path, progress: bool = True) -> DetectSummary:
    images = collect_images(paths)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = DetectSummary(out_dir=str(out_dir))
    for path, stem in tqdm(
        list(zip(images, _unique_stems(images), strict=True)), desc="detect", unit="img", disable=not progress
    ):
        image = read_image(path)
        if image is None:
            log.warning("%s: not a readable image; skipped", path)
            summary.unreadable.append(str(path))
            continue
        found = detector(image)
        summary.images += 1
        summary.with_hazards += bool(len(found))
        summary.per_class.update(int(c) for c in found.class_id)
        rows = found.to_yolo(image.shape[1], image.shape[0])
        write_label(out_dir / f"{stem}.txt", rows)
        write_image(out_dir / f"{stem}.jpg", draw_detections(image, found, detector.classes))
    return summary
