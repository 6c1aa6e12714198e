"""Draw detections on a frame for people to look at (evidence frames, `detector detect`)."""

from __future__ import annotations

import cv2
import numpy as np

from detector.detections import Detections

# BGR per class id: potholes orange, fallen signs magenta; others cycle.
PALETTE = [(0, 140, 255), (200, 40, 220), (60, 200, 60), (220, 160, 0)]


def draw_detections(image: np.ndarray, detections: Detections, names: list[str]) -> np.ndarray:
    """A copy of ``image`` with each box outlined and labelled ``name conf``."""
    out = image.copy()
    thickness = max(1, round(min(out.shape[:2]) / 360))
    scale = max(0.4, min(out.shape[:2]) / 1200)
    for (x1, y1, x2, y2), conf, cls in zip(
        detections.xyxy.round().astype(int), detections.confidence, detections.class_id, strict=True
    ):
        color = PALETTE[int(cls) % len(PALETTE)]
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
        label = f"{names[int(cls)]} {conf:.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = max(0, y1 - th - base - 2)
        cv2.rectangle(out, (x1, top), (x1 + tw + 4, top + th + base + 2), color, -1)
        cv2.putText(out, label, (x1 + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness)
    return out
