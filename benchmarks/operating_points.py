"""Per real validation set and class: precision and recall at each threshold, false detections per 100
hazard-free images (whole frame and road region), and the thresholds the written rule picks.

    .venv/bin/python benchmarks/operating_points.py [--model models/hazards] [--dataset runs/train/dataset-v11]
                                                    [--conf 0.1 0.2 ...] [--set KEY=VALUE] [--json FILE]
                                                    [--markdown FILE]

The sets are the validation sets of the dataset ``detector train`` builds (its manifest): the three real pothole
sets, and, where the set has them, real images with a dashcam stamp burned in (``overlay``), sign composites and
simulator frames. Found means a detection's centre inside a labelled box (one per box), the IoU >= 0.5 match in
brackets; the rule is :class:`detector.train.operating.ThresholdRule`.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from detector.config import load_config
from detector.pipeline.inference import detect_section, load_detector
from detector.train.operating import (
    THRESHOLDS,
    ThresholdRule,
    choose_thresholds,
    operating_point,
    score_set,
)

REAL = ["rdd2022-india", "dnit", "chitholian", "chitholian-test"]
STAMPED = ["overlay"]
OTHER = ["composite", "simulator"]


def _cell(value: float, digits: int = 2) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model path without suffix (default: detect.model)")
    parser.add_argument("--dataset", type=Path, default=Path("runs/train/dataset-v11"))
    parser.add_argument("--conf", type=float, nargs="+", default=list(THRESHOLDS))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--markdown", type=Path, help="also write the model card's per-threshold tables here")
    args = parser.parse_args()
    overrides = [*args.set, *([f"detect.model={args.model}"] if args.model else [])]
    cfg = load_config(overrides=overrides)
    detect = detect_section(cfg)
    classes = list(detect.classes)
    whole = load_detector(detect, use_roi=False, conf=0.05)
    road = load_detector(detect, conf=0.05)
    val_yamls = json.loads((args.dataset / "manifest.json").read_text())["val_yamls"]
    names = [n for n in REAL + STAMPED + OTHER if n in val_yamls]
    sets = {name: score_set(Path(val_yamls[name]), whole, road, desc=name) for name in names}
    print(f"model {detect.model}; dataset {args.dataset}; road region from {detect.roi.top:.2f}")
    print("found: a detection's centre in a labelled box (IoU >= 0.5 in brackets); false: per 100 hazard-free images")
    report: dict = {"model": detect.model, "sets": {}}
    for name in names:
        for k, cls in enumerate(classes):
            points = [operating_point(sets[name], k, c) for c in args.conf]
            if not points[0].boxes and not points[0].hazard_free:
                continue
            first = points[0]
            print(f"\n{name} / {cls}: {len(sets[name])} images, {first.boxes} boxes, {first.hazard_free} hazard-free")
            print(f"{'conf':>6} {'P':>11} {'R':>11} {'false whole':>12} {'false road':>11} {'flagged':>9}")
            for p in points:
                print(
                    f"{p.conf:6.2f} {_cell(p.precision):>4} ({_cell(p.precision_iou)}) "
                    f"{_cell(p.recall):>4} ({_cell(p.recall_iou)}) {_cell(p.false_per_100_whole, 1):>12} "
                    f"{_cell(p.false_per_100_road, 1):>11} {f'{p.flagged_whole}/{p.hazard_free}':>9}"
                )
            report["sets"].setdefault(name, {})[cls] = [
                {**p.__dict__, "P": p.precision, "R": p.recall, "P_iou": p.precision_iou, "R_iou": p.recall_iou}
                for p in points
            ]
    rule = ThresholdRule()
    chosen = choose_thresholds(sets, classes, REAL, STAMPED, rule)
    report["chosen"] = chosen
    print(f"\nthe rule ({rule}) picks: {chosen}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    if args.markdown:
        args.markdown.write_text(markdown(report, args.conf))


def markdown(report: dict, thresholds: list[float]) -> str:
    """Per class, one table of every set by threshold: P / R (centre matching) where the set has boxes of the
    class, false detections per 100 hazard-free images, whole frame (road region), where it has such images."""
    head = "| set | " + " | ".join(f"{c:g}" for c in thresholds) + " |\n|---|" + "---|" * len(thresholds) + "\n"
    out = []
    for cls in ("pothole", "fallen_sign"):
        found = [(n, c[cls]) for n, c in report["sets"].items() if cls in c and c[cls][0]["boxes"]]
        free = [(n, c[cls]) for n, c in report["sets"].items() if cls in c and c[cls][0]["hazard_free"]]
        if found:
            out.append(f"**{cls}**: precision / recall (a detection's centre in a labelled box, one each)\n\n" + head)
            out += [f"| {n} ({p[0]['boxes']} boxes) | " + " | ".join(
                f"{_cell(q['P'])} / {_cell(q['R'])}" for q in p) + " |\n" for n, p in found]  # fmt: skip
            out.append("\n")
        if free:
            out.append(f"**{cls}**: false detections per 100 hazard-free images, whole frame (road region)\n\n" + head)
            out += [f"| {n} ({p[0]['hazard_free']} images) | " + " | ".join(
                f"{_cell(100 * q['false_whole'] / q['hazard_free'], 1)} "
                f"({_cell(100 * q['false_road'] / q['hazard_free'], 1)})" for q in p) + " |\n"
                for n, p in free]  # fmt: skip
            out.append("\n")
    return "".join(out)


if __name__ == "__main__":
    main()
