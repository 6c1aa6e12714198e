"""Model-card metrics: per-class P, R, mAP50, mAP50-95 from Ultralytics val, and false alarms on clean images.

Use one of the per-source ``val_<source>.yaml`` files the dataset builder writes to report each source on its own.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from detector.yolo_labels import label_path, read_label


def _val_images(data_yaml: Path) -> list[Path]:
    """The validation images of a data yaml whose ``val`` is an image-list file or an image folder."""
    doc = yaml.safe_load(data_yaml.read_text())
    val = Path(doc["val"])
    if not val.is_absolute():
        val = Path(doc.get("path", data_yaml.parent)) / val
    if val.is_dir():
        return sorted(p for p in val.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    return [Path(line) for line in val.read_text().split() if line]


def hazard_free(data_yaml: Path) -> list[Path]:
    """Validation images with an empty (or no) label file."""
    return [image for image, rows in labelled(data_yaml) if not len(rows)]


def labelled(data_yaml: Path) -> list[tuple[Path, np.ndarray]]:
    """Each validation image with its label rows ``(class, cx, cy, w, h)``, normalised (an empty array when none)."""
    out = []
    for image in _val_images(data_yaml):
        out.append((image, read_label(label_path(image))))
    return out


def evaluate(
    weights: Path, data_yaml: Path, conf: float | dict[str, float] = 0.25, imgsz: int = 640, batch: int = 8
) -> dict[str, Any]:
    """Validate ``weights`` on ``data_yaml``.

    Returns ``{"classes": {name: {"images", "instances", "P", "R", "mAP50", "mAP50-95"}}, "all": {...},
    "hazard_free": {"images": n, "with_detection": k, "fraction": k / n}}``. P and R are Ultralytics' (at the
    confidence of best F1 over all classes); the hazard-free fraction counts images with any detection at ``conf`` (one
    threshold, or one per class).
    Classes without instances in this set are left out of ``classes``.
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO
    from ultralytics.utils import LOGGER

    from detector.pipeline.inference.detector import class_thresholds

    model = YOLO(str(weights))
    thresholds = class_thresholds(conf, list(model.names.values()))
    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)  # Ultralytics' progress and summaries: the caller prints its own table
    try:
        metrics = model.val(data=str(data_yaml), imgsz=imgsz, batch=batch, device="cpu", plots=False, verbose=False)
    finally:
        LOGGER.setLevel(level)
    box = metrics.box
    counts = metrics.nt_per_class
    image_counts = metrics.nt_per_image
    classes = {}
    for i, cls in enumerate(box.ap_class_index):
        p, r, ap50, ap = box.class_result(i)
        classes[metrics.names[int(cls)]] = {
            "images": int(image_counts[int(cls)]),
            "instances": int(counts[int(cls)]),
            "P": float(p),
            "R": float(r),
            "mAP50": float(ap50),
            "mAP50-95": float(ap),
        }
    p, r, ap50, ap = box.mean_results()
    clean = hazard_free(data_yaml)
    hits = 0
    for start in range(0, len(clean), batch):
        chunk = [str(p) for p in clean[start : start + batch]]
        results = model.predict(chunk, imgsz=imgsz, conf=float(thresholds.min()), device="cpu", verbose=False)
        for res in results:
            cls = res.boxes.cls.numpy().astype(int)
            hits += bool((res.boxes.conf.numpy() >= thresholds[cls]).any())
    return {
        "classes": classes,
        "all": {"P": float(p), "R": float(r), "mAP50": float(ap50), "mAP50-95": float(ap)},
        "hazard_free": {
            "images": len(clean),
            "with_detection": hits,
            "fraction": hits / len(clean) if clean else None,
            "conf": conf,
        },
    }
