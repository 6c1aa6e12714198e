"""The hazard rule on real frame sequences: the survey vehicle's consecutive frames of one road (DNIT).

    .venv/bin/python benchmarks/real_sequences.py [--dataset runs/train/dataset-v11] [--split val|all]
        [--model models/hazards] [--conf 0.2 0.25 0.3] [--sightings 2 3] [--evidence 0 0.6 0.8] [--set KEY=VALUE]

Runs of consecutive frames of one highway segment (lane-masked as in training) are followed frame to frame by the
road's own motion (:mod:`detector.train.sequences`); touching labelled boxes are one pothole, and a frame is one view
of it, as in the pipeline. Per per-frame pothole threshold and confirmation rule (at least N views whose noisy-OR
evidence reaches E), it prints how many true potholes are confirmed of those labelled in three or more consecutive
frames, of those the detector saw at that threshold in three or more consecutive frames (the target: all), and of
every labelled one, and how many false tracks are confirmed (per 100 frames); no frame shows a fallen sign, so every
fallen_sign track is false. Without
``--sightings``/``--evidence`` the rule is the configured one (``dedup.confirm_sightings``,
``dedup.confirm_evidence``). With several ``--evidence`` levels it also prints the rule's pick (the model card's
"From detections to hazards"): per threshold and views needed, the highest evidence at which every pothole detected
in three or more consecutive frames is still confirmed.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from detector.config import PIPELINE, load_config
from detector.pipeline.dedup.within_drive import confirms
from detector.pipeline.inference import detect_section, load_detector
from detector.train.evaluate import labelled
from detector.train.sequences import confirmed_tracks, load_sequences

LANES = Path("../shared/data/potholes/dnit/lane_masks")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("runs/train/dataset-v11"))
    parser.add_argument("--split", choices=["val", "all"], default="val", help="all: training segments too")
    parser.add_argument("--model", help="model path without suffix (default: detect.model)")
    parser.add_argument("--conf", type=float, nargs="+", help="per-frame thresholds (default: detect.conf per class)")
    parser.add_argument("--sightings", type=int, nargs="+", help="sightings needed (default: the configured rule)")
    parser.add_argument("--evidence", type=float, nargs="+", help="evidence needed (default: the configured rule)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    args = parser.parse_args()
    cfg = load_config(overrides=[*args.set, *([f"detect.model={args.model}"] if args.model else [])])
    detect = detect_section(cfg)
    model = load_detector(detect, use_roi=False, conf=0.05)
    manifest = json.loads((args.dataset / "manifest.json").read_text())
    yamls = [manifest["val_yamls"]["dnit"]]
    boxes = {}
    for data_yaml in yamls:
        for path, rows in labelled(Path(data_yaml)):
            boxes[path] = rows[rows[:, 0] == 0, 1:]
    images = sorted(boxes)
    if args.split == "all":
        images += sorted((args.dataset / "images" / "train" / "dnit").glob("*.jpg"))

    def truth(path: Path) -> np.ndarray:
        rows = boxes.get(path)
        if rows is None:
            label = args.dataset / "labels" / path.relative_to(args.dataset / "images").with_suffix(".txt")
            rows = np.loadtxt(label, ndmin=2).reshape(-1, 5) if label.stat().st_size else np.zeros((0, 5))
            rows = rows[rows[:, 0] == 0, 1:]
        w, h = 1024, 640  # DNIT frames
        cx, cy, bw, bh = (rows.T * np.array([[w], [h], [w], [h]])) if len(rows) else np.zeros((4, 0))
        return np.column_stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])

    sequences = load_sequences(images, LANES, model, truth)
    frames = sum(len(s) for s, _ in sequences)
    print(f"model {detect.model}: {len(sequences)} runs of consecutive DNIT frames ({args.split}), {frames} frames")
    dedup = cfg.dedup
    print(f"{'class':12} {'conf':>5} {'views':>5} {'evidence':>8} {'labelled in 3+':>14} {'detected in 3+':>14} "
          f"{'all labelled':>12} {'false':>6} {'false/100 frames':>16}")  # fmt: skip
    keeps_all: dict[tuple[float, int], float] = {}  # (pothole threshold, views): the rule's pick (the model card)
    for class_id, cls in enumerate(detect.classes):
        rules = list(
            itertools.product(
                args.sightings or [dedup.confirm_sightings[cls]], args.evidence or [dedup.confirm_evidence[cls]]
            )
        )
        for conf, (need, evidence) in itertools.product(args.conf or [cfg.detect.conf[cls]], rules):
            rule = PIPELINE.updated(
                cfg, {f"dedup.confirm_sightings.{cls}": need, f"dedup.confirm_evidence.{cls}": evidence}
            ).dedup
            r = confirmed_tracks(sequences, conf, lambda s, rule=rule, cls=cls: confirms(rule, cls, s), class_id)
            long, seen, every = (
                (f"{r.long_confirmed}/{r.long_tracks}", f"{r.seen_confirmed}/{r.seen_tracks}",
                 f"{r.true_confirmed}/{r.true_tracks}") if class_id == 0 else ("-", "-", "-")
            )  # fmt: skip
            print(
                f"{cls:12} {conf:5.2f} {need:5d} {evidence:8.2f} {long:>14} {seen:>14} {every:>12} "
                f"{r.false_confirmed:6d} {100 * r.false_confirmed / max(r.frames, 1):16.1f}"
            )
            if class_id == 0 and r.seen_confirmed == r.seen_tracks:
                keeps_all[(conf, need)] = max(keeps_all.get((conf, need), 0.0), evidence)
    for (conf, need), evidence in sorted(keeps_all.items()):
        print(f"pothole at {conf:.2f}, {need} views: the highest evidence that confirms every pothole detected in 3+ "
              f"consecutive frames is {evidence:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
