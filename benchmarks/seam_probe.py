"""Has the model learnt the compositing, not the sign? Real signs against road-texture decoys pasted the same way.

    .venv/bin/python benchmarks/seam_probe.py [--model models/hazards] [--dataset runs/train/dataset] [--per-image 2]

Every fallen-sign training example is a composite, so a model could learn what pasting leaves behind (a
blurred outline, relit and noisy pixels, a sign-shaped patch that does not continue the road) instead of a
sign. On each dashcam validation image (RDD2022 India: the model never trained on it nor on composites of it),
this pastes sign artwork twice from the same random draw: once as it is, and once as a decoy of the same
outline filled with road cut from elsewhere in the same image, through the same pose, lighting, noise, blur
and occlusion. A model that learnt the sign finds the first and not the second. Counted: a ``fallen_sign``
(or ``pothole``) box over the pasted plate (IoU >= 0.3) at each threshold, on the whole image.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from detector.config import TRAINING, load_config
from detector.detections import box_iou
from detector.pipeline.inference import load_detector
from detector.train.composite import load_sign, paste_sign, road_decoy, road_region, sample_pose

SOURCE = "rdd2022-india"


def best_score(detector, image: np.ndarray, box: tuple[float, ...], class_id: int) -> float:
    """The highest confidence of a ``class_id`` detection over ``box`` (IoU >= 0.3), 0 when none."""
    found = detector(image)
    hit = (found.class_id == class_id) & (box_iou(np.array(box), found.xyxy) >= 0.3) if len(found) else []
    return float(found.confidence[hit].max()) if np.any(hit) else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model path without suffix (default: detect.model)")
    parser.add_argument("--dataset", type=Path, default=Path("runs/train/dataset"))
    parser.add_argument("--per-image", type=int, default=2, help="pastes per image (each one real, one decoy)")
    parser.add_argument("--conf", type=float, nargs="+", default=[0.25, 0.4])
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    detect = load_config(overrides=[f"detect.model={args.model}"] if args.model else []).detect
    detector = load_detector(detect, use_roi=False, conf=0.05)
    train = TRAINING.load()
    comp = train.composite
    signs_dir = Path(train.data.root) / comp.signs
    images = sorted((args.dataset / "images" / "val" / SOURCE).glob("*.jpg"))
    if not images or not signs_dir.is_dir():
        raise SystemExit(f"needs {args.dataset}/images/val/{SOURCE} (detector train builds it) and {signs_dir}")
    signs = [load_sign(p) for p in sorted(signs_dir.glob("*.png"))]
    rng = np.random.default_rng(args.seed)
    scores: dict[str, list[float]] = {"real sign": [], "decoy as fallen_sign": [], "decoy as pothole": []}
    poses: list[str] = []
    for path in images:
        image = cv2.imread(str(path))
        road = road_region(image.shape[:2], comp.road_band.get(SOURCE))
        ys, xs = np.nonzero(road)
        for _ in range(args.per_image):
            sign = signs[rng.integers(len(signs))]
            k = rng.integers(len(ys))
            size = float(rng.uniform(40.0, 160.0))
            pose = replace(sample_pose(rng, comp), pole=False, back=False)  # a pole or a grey back is a real cue
            decoy = road_decoy(sign, image, road, rng)
            draw = int(rng.integers(1 << 31))
            pasted = {}
            for name, art in (("real", sign), ("decoy", decoy)):
                canvas = image.copy()
                placed = paste_sign(canvas, art, (float(xs[k]), float(ys[k])), size, pose,
                                    np.random.default_rng(draw), comp)  # fmt: skip
                pasted[name] = (canvas, placed)
            if pasted["real"][1] is None or pasted["decoy"][1] is None:
                continue
            poses.append(pose.kind)
            scores["real sign"].append(best_score(detector, pasted["real"][0], pasted["real"][1].box, 1))
            canvas, placed = pasted["decoy"]
            scores["decoy as fallen_sign"].append(best_score(detector, canvas, placed.box, 1))
            scores["decoy as pothole"].append(best_score(detector, canvas, placed.box, 0))
    n = len(poses)
    print(f"model {detect.model}: {n} pastes on {len(images)} {SOURCE} validation images "
          f"({', '.join(f'{p} {poses.count(p)}' for p in sorted(set(poses)))}), 40-160 px")  # fmt: skip
    print(f"{'box over the pasted plate':28}" + "".join(f" {f'conf {c:g}':>14}" for c in args.conf))
    for name, values in scores.items():
        v = np.array(values)
        print(f"{name:28}" + "".join(f" {f'{int((v >= c).sum())}/{n} {np.mean(v >= c):.0%}':>14}" for c in args.conf))


if __name__ == "__main__":
    main()
