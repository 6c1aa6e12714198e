"""False alarms: the share of hazard-free vehicle-camera images with any detection, per threshold.

    .venv/bin/python benchmarks/false_alarms.py [--model models/hazards] [--dataset runs/train/dataset]
                                                [--conf 0.25 0.35 0.4 0.5 0.6] [--set KEY=VALUE]

The images are the hazard-free validation images of the two vehicle-camera sources (RDD2022 India
dashcam and DNIT survey vehicle) of the dataset ``detector train`` builds. Each is run through the
ONNX detector twice: on the whole frame (what ``detector detect`` shows a user) and on the road region
only (``detect.roi``, how the pipeline runs). The model card's threshold rule reads the first row set:
the lowest threshold with at most 3% of these images flagged.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from detector.config import load_config
from detector.inference import detect_section, load_detector
from detector.train.evaluate import hazard_free

SOURCES = ("rdd2022-india", "dnit")


def top_scores(detect: dict, images: list[np.ndarray], use_roi: bool) -> np.ndarray:
    """The highest detection confidence in each image (0 where nothing is found at conf 0.05)."""
    detector = load_detector({**detect, "conf": 0.05}, use_roi=use_roi)
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
    for label, use_roi in (("whole frame", False), (f"road region (top {detect['roi']['top']:.2f})", True)):
        scores = top_scores(detect, images, use_roi)
        cells = "".join(f" {f'{int((scores >= c).sum())}/{len(scores)}':>12}" for c in args.conf)
        print(f"{label:22}{cells}")


if __name__ == "__main__":
    main()
