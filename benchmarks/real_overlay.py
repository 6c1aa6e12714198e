"""A dashcam's stamp and bonnet on real road images: what the model fires on there, and what the static mask removes.

    .venv/bin/python benchmarks/real_overlay.py [--model models/hazards] [--groups 20] [--style-seeds 0 1 2 3]
                                                [--out runs/real_overlay]

RDD2022 India's images come in road groups (``groups.csv``), each filmed by one phone behind one windscreen: the
same bonnet in every picture, a different stretch of road in each. Each group is stamped with one dashcam style
(its digits changing from picture to picture, as a clock does), its static mask is learnt from the pictures
themselves (:func:`detector.pipeline.static_mask.find_static`), and the detector runs on the whole frame. Per style: the
detections of each class, those on the stamp (centre on a stamped pixel), those on the bonnet or elsewhere in
the mask elsewhere (the bonnet, a border), and what is kept. A few annotated pictures are written to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from detector.config import PIPELINE, load_config
from detector.pipeline.inference import detect_section, load_detector
from detector.pipeline.static_mask import StaticMask, find_static
from detector.simulate.overlay import draw_overlay, random_style

RDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "potholes" / "rdd2022-india"


def groups(root: Path, count: int, min_images: int = 12) -> list[list[Path]]:
    """The ``count`` largest road groups with at least ``min_images`` pictures."""
    by_group: dict[str, list[Path]] = defaultdict(list)
    with (root / "groups.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            by_group[row["group"]].append(root / "images" / row["image"])
    big = sorted((g for g in by_group.values() if len(g) >= min_images), key=len, reverse=True)
    return [sorted(g)[:40] for g in big[:count]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model path without suffix (default: detect.model)")
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--style-seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--out", type=Path, default=Path("runs/real_overlay"))
    args = parser.parse_args()
    if not RDD.is_dir():
        raise SystemExit(f"{RDD}: not found (the real data sits beside the project on the team's machines)")
    cfg = load_config(overrides=[f"detect.model={args.model}"] if args.model else [])
    detect = detect_section(cfg)
    detector = load_detector(detect, use_roi=False)
    classes = list(detect.classes)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"model {detect.model} at {detect.conf}, whole frame; {args.groups} road groups of RDD2022 India")
    print(f"{'style':>5} {'class':12} {'detections':>10} {'on stamp':>9} {'of them masked':>15} "
          f"{'masked off the stamp':>21} {'kept off the stamp':>19} {'frame masked':>13}")  # fmt: skip
    for seed in args.style_seeds:
        style = random_style(np.random.default_rng(seed))
        counts = defaultdict(lambda: np.zeros(5, int))  # all, on stamp, on stamp kept, other masked, other kept
        fractions = []
        for g, images in enumerate(groups(RDD, args.groups)):
            stamped = [draw_overlay(cv2.imread(str(p)), style, 1_780_000_000.0 + 37.0 * k, 11.0, 28.6, 77.2)
                       for k, p in enumerate(images)]  # fmt: skip
            learnt = find_static([s for s, _ in stamped], PIPELINE.updated(load_config(), {"mask.min_frames": 10}).mask)
            h, w = stamped[0][0].shape[:2]
            mask = StaticMask(learnt if learnt is not None else np.zeros((h, w), bool))
            fractions.append(mask.fraction)
            for k, (image, drawn) in enumerate(stamped):
                found = detector(image)
                covered = mask.covers(found)
                cx = ((found.xyxy[:, 0] + found.xyxy[:, 2]) / 2).astype(int).clip(0, w - 1)
                cy = ((found.xyxy[:, 1] + found.xyxy[:, 3]) / 2).astype(int).clip(0, h - 1)
                on_stamp = drawn[cy, cx]
                for c, s, m in zip(found.class_id, on_stamp, covered, strict=True):
                    counts[classes[int(c)]] += [1, s, s and not m, (not s) and m, (not s) and not m]
                if g < 3 and k < 2:
                    view = image.copy()
                    view[mask.pixels] = (0.5 * view[mask.pixels] + [0, 0, 127]).astype(np.uint8)
                    for (x1, y1, x2, y2), c, m in zip(found.xyxy.astype(int), found.class_id, covered, strict=True):
                        cv2.rectangle(view, (x1, y1), (x2, y2), (128, 128, 128) if m else (0, 255, 255), 2)
                        cv2.putText(view, classes[int(c)], (x1, max(12, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                                    (0, 255, 255), 1)  # fmt: skip
                    cv2.imwrite(str(args.out / f"style{seed}-group{g}-{k}.jpg"), view)
        for cls in classes:
            a, s, sk, o, ok = counts[cls]
            print(f"{seed:5d} {cls:12} {a:10d} {s:9d} {s - sk:15d} {o:21d} {ok:19d} {np.mean(fractions):13.1%}")


if __name__ == "__main__":
    main()
