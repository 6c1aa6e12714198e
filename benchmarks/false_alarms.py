"""False alarms and what a threshold costs: hazard-free vehicle images flagged, and pothole boxes found, per threshold.

    .venv/bin/python benchmarks/false_alarms.py [--model models/hazards] [--dataset runs/train/dataset]
                                                [--conf 0.25 0.35 0.4 0.5 0.6] [--set KEY=VALUE]

The images are the hazard-free validation images of the two vehicle-camera sources (RDD2022 India
dashcam and DNIT survey vehicle) of the dataset ``detector train`` builds. Each is run through the
ONNX detector twice: on the whole frame (what ``detector detect`` shows a user) and on the road region
only (``detect.roi``, how the pipeline runs). The model card's threshold rule reads the first row set:
the lowest threshold with at most 3% of these images flagged. The second table is the other side of
the choice: the share of labelled pothole boxes on each pothole source's validation images that a
detection at that threshold covers (IoU >= 0.5, whole image), and the share of detections that
cover one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from detector.config import load_config
from detector.detections import box_iou
from detector.inference import detect_section, load_detector
from detector.train.evaluate import hazard_free, labelled

SOURCES = ("rdd2022-india", "dnit")
POTHOLE_SOURCES = ("rdd2022-india", "dnit", "chitholian")


def top_scores(detector, images: list[np.ndarray]) -> np.ndarray:
    """The highest detection confidence in each image (0 where nothing is found at the detector's conf)."""
    return np.array([max([0.0, *detector(image).confidence.tolist()]) for image in images])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model path without suffix (default: detect.model)")
    parser.add_argument("--dataset", type=Path, default=Path("runs/train/dataset"))
    parser.add_argument("--conf", type=float, nargs="+", default=[0.25, 0.35, 0.4, 0.5, 0.6])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    args = parser.parse_args()
    overrides = [*args.set, *([f"detect.model={args.model}"] if args.model else [])]
    detect = detect_section(load_config(overrides=overrides))
    paths = [p for source in SOURCES for p in hazard_free(args.dataset / f"val_{source}.yaml")]
    images = [cv2.imread(str(p)) for p in paths]
    print(f"model {detect['model']}: {len(images)} hazard-free vehicle images ({', '.join(SOURCES)} validation)")
    print(f"{'searched':22}" + "".join(f" {f'conf {c:g}':>12}" for c in args.conf))
    whole = load_detector({**detect, "conf": 0.05}, use_roi=False)
    road = load_detector({**detect, "conf": 0.05})
    for label, detector in (("whole frame", whole), (f"road region (top {detect['roi']['top']:.2f})", road)):
        scores = top_scores(detector, images)
        cells = "".join(f" {f'{int((scores >= c).sum())}/{len(scores)}':>12}" for c in args.conf)
        print(f"{label:22}{cells}")
    print(f"\npothole boxes found / detections right, whole image ({', '.join(POTHOLE_SOURCES)} validation)")
    print(f"{'source':22}" + "".join(f" {f'conf {c:g}':>12}" for c in args.conf))
    for source in POTHOLE_SOURCES:
        found, right, shown, boxes = (np.zeros(len(args.conf)) for _ in range(4))
        for path, rows in labelled(args.dataset / f"val_{source}.yaml"):
            image = cv2.imread(str(path))
            h, w = image.shape[:2]
            cx, cy, bw, bh = rows[rows[:, 0] == 0, 1:].T
            truth = np.column_stack([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h])
            hits = whole(image)
            hits = hits[hits.class_id == 0]
            for k, c in enumerate(args.conf):
                kept = hits.xyxy[hits.confidence >= c]
                found[k] += sum(len(kept) > 0 and box_iou(t, kept).max() >= 0.5 for t in truth)
                right[k] += sum(len(truth) > 0 and box_iou(d, truth).max() >= 0.5 for d in kept)
                shown[k] += len(kept)
            boxes += len(truth)
        print(f"{source:22}" + "".join(f" {f'{f / b:.2f} / {r / max(s, 1):.2f}':>12}"
                                       for f, r, s, b in zip(found, right, shown, boxes, strict=True)))  # fmt: skip


if __name__ == "__main__":
    main()
