"""Traffic signs on real held-out street photos: precision and recall of one class at each threshold, and a contact
sheet of what the model fires on.

    .venv/bin/python benchmarks/sign_points.py MODEL.onnx [--data runs/train/dataset-v14/val_gtsdb.yaml]
                                               [--class traffic_sign] [--conf 0.1 0.2 ...] [--imgsz 640]
                                               [--sheet FILE.png --sheet-conf 0.3] [--json FILE]

The model's every class is kept (the pipeline's ``detect.classes`` need not list it), whole frame, at the
detector's inference size. Found means a detection's centre inside a labelled box, one per box (IoU >= 0.5 in
brackets), as :mod:`detector.train.operating` counts potholes. GTSDB boxes only its 43 benchmark sign types:
direction, parking and information plates are unlabelled, so a detection on one counts as false here; the sheet
shows which false detections are such plates (look before trusting the precision).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import cv2
import numpy as np

from detector.detections import Detections
from detector.pipeline.inference.backends import load_backend
from detector.pipeline.inference.detector import HazardDetector
from detector.train.operating import THRESHOLDS, ScoredImage, match_centres, operating_point, score_set

TILE = 96  # pixels of one crop on the sheet
COLUMNS = 16


def _cell(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def _crop(image: np.ndarray, box: np.ndarray, colour: tuple[int, int, int], text: str) -> np.ndarray:
    """The box with half its size of context around it, scaled to a tile, framed in ``colour``, ``text`` on top."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    pad = 0.5 * max(x1 - x0, y1 - y0) + 4
    a, b = int(max(x0 - pad, 0)), int(max(y0 - pad, 0))
    c, d = int(min(x1 + pad, w)), int(min(y1 + pad, h))
    tile = cv2.resize(image[b:d, a:c], (TILE, TILE)) if c > a and d > b else np.zeros((TILE, TILE, 3), np.uint8)
    cv2.rectangle(tile, (0, 0), (TILE - 1, TILE - 1), colour, 3)
    cv2.putText(tile, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    return tile


def contact_sheet(images: list[ScoredImage], class_id: int, conf: float, limit: int = 256) -> np.ndarray:
    """Crops of the class's detections at ``conf`` (green: finds a labelled box; red: false, most confident first),
    then of the labelled boxes none found (blue)."""
    found_tiles: list[tuple[float, np.ndarray]] = []
    false_tiles: list[tuple[float, np.ndarray]] = []
    missed: list[np.ndarray] = []
    for im in images:
        keep = (im.whole.class_id == class_id) & (im.whole.confidence >= conf)
        order = np.argsort(-im.whole.confidence[keep], kind="stable")
        boxes, scores = im.whole.xyxy[keep][order], im.whole.confidence[keep][order]
        truth = im.truth.xyxy[im.truth.class_id == class_id]
        if not len(boxes) and not len(truth):
            continue
        frame = cv2.imread(str(im.path))
        match = match_centres(boxes, truth) if len(truth) else np.full(len(boxes), -1)
        for box, score, j in zip(boxes, scores, match, strict=True):
            tile = _crop(frame, box, (0, 200, 0) if j >= 0 else (0, 0, 255), f"{score:.2f}")
            (found_tiles if j >= 0 else false_tiles).append((float(score), tile))
        missed += [_crop(frame, box, (255, 128, 0), "miss") for k, box in enumerate(truth) if k not in set(match)]
    tiles = [t for _, t in sorted(false_tiles, key=lambda x: -x[0])][: limit // 2]
    tiles += [t for _, t in sorted(found_tiles, key=lambda x: -x[0])][: limit // 4]
    tiles += missed[: limit // 4]
    tiles += [np.zeros((TILE, TILE, 3), np.uint8)] * (-len(tiles) % COLUMNS)
    if not tiles:
        return np.zeros((TILE, TILE * COLUMNS, 3), np.uint8)
    return np.vstack([np.hstack(tiles[k : k + COLUMNS]) for k in range(0, len(tiles), COLUMNS)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="the model (.onnx, or .pt with the torch backend)")
    parser.add_argument("--data", type=Path, default=Path("runs/train/dataset-v14/val_gtsdb.yaml"))
    parser.add_argument("--class", dest="cls", default="traffic_sign")
    parser.add_argument("--conf", type=float, nargs="+", default=list(THRESHOLDS))
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--sheet", type=Path, help="write a contact sheet of the class's detections here")
    parser.add_argument("--sheet-conf", type=float, default=0.3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    backend = load_backend(args.model, "onnx" if args.model.suffix == ".onnx" else "torch", "cpu")
    names = list(backend.names)
    if args.cls not in names:
        parser.error(f"{args.model} knows no class {args.cls!r} (its classes: {', '.join(names)})")
    detector = HazardDetector(backend, names, conf=0.05, iou=0.3, imgsz=args.imgsz, source=str(args.model))
    images = score_set(args.data, detector, lambda _: Detections.empty(), desc=args.data.stem)  # signs: whole frame
    class_id = names.index(args.cls)
    points = [operating_point(images, class_id, c) for c in args.conf]
    print(f"{args.model} on {args.data} ({len(images)} images, {points[0].boxes} {args.cls} boxes) at {args.imgsz}")
    print(f"{'conf':>6} {'P':>11} {'R':>11} {'detections':>11} {'false on sign-free':>19}")
    for p in points:
        print(
            f"{p.conf:6.2f} {_cell(p.precision):>4} ({_cell(p.precision_iou)}) {_cell(p.recall):>4} "
            f"({_cell(p.recall_iou)}) {p.detections:>11} {f'{p.flagged_whole}/{p.hazard_free}':>19}"
        )
    if args.json:
        rows = [{**p.__dict__, "P": p.precision, "R": p.recall, "P_iou": p.precision_iou, "R_iou": p.recall_iou}
                for p in points]  # fmt: skip
        args.json.write_text(json.dumps({"model": str(args.model), "data": str(args.data), "points": rows}, indent=2))
    if args.sheet:
        cv2.imwrite(str(args.sheet), contact_sheet(images, class_id, args.sheet_conf))
        print(f"contact sheet at {args.sheet_conf}: {args.sheet}")


if __name__ == "__main__":
    main()
