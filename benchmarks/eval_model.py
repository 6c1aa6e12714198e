"""Model-card metrics: the shipped model on each validation source, one table.

    .venv/bin/python benchmarks/eval_model.py [--model models/hazards.pt] [--dataset runs/train/dataset]
    .venv/bin/python benchmarks/eval_model.py --model runs/train/loso-dnit-gpu/weights/best.pt --holdout dnit

Needs the dataset that ``detector train`` builds (its manifest lists one validation yaml per source). With
``--holdout SOURCE`` the model, trained without that source, is measured on all of its images (every split).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import yaml

from detector.config import load_config
from detector.train.dataset import write_index
from detector.train.evaluate import evaluate


def whole_source(dataset: Path, source: str, folder: Path) -> Path:
    """A data yaml in ``folder`` validating on every image of ``source`` in ``dataset``, whatever its split."""
    images = sorted(dataset.glob(f"images/*/{source}/*"))
    if not images:
        raise SystemExit(f"{dataset}: no images of source {source!r}")
    names = list(yaml.safe_load((dataset / "data.yaml").read_text())["names"].values())
    return write_index(folder, {f"val/{source}": images}, names, "", {"whole_source": source}).val_yamls[source]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/hazards.pt"))
    parser.add_argument("--dataset", type=Path, default=Path("runs/train/dataset"))
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--holdout", metavar="SOURCE", help="only this source, all its images (leave-one-out)")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    conf = load_config().detect.conf
    manifest = json.loads((args.dataset / "manifest.json").read_text())
    val_yamls = manifest["val_yamls"]
    scratch = tempfile.TemporaryDirectory()  # removed when main returns
    if args.holdout:
        val_yamls = {f"{args.holdout} (all)": whole_source(args.dataset, args.holdout, Path(scratch.name))}
    results = {}
    print(f"model {args.model}, imgsz {args.imgsz}, false alarms counted at conf {conf}")
    head = ("source", "class", "images", "boxes", "P", "R", "mAP50", "mAP50-95", "clean FA")
    print("{:18} {:12} {:>6} {:>6} {:>6} {:>6} {:>6} {:>9} {:>9}".format(*head))
    for source, data_yaml in val_yamls.items():
        r = evaluate(args.model, Path(data_yaml), conf=conf, imgsz=args.imgsz)
        results[source] = r
        clean = r["hazard_free"]
        fa = f"{clean['with_detection']}/{clean['images']}" if clean["images"] else "-"
        for name, m in r["classes"].items():
            print(
                f"{source:18} {name:12} {m['images']:6d} {m['instances']:6d} {m['P']:6.3f} {m['R']:6.3f} "
                f"{m['mAP50']:6.3f} {m['mAP50-95']:9.3f} {fa:>9}"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
