"""Take a built training set to another machine (a GPU trainer) in about a hundred megabytes, and set it up there.

The built dataset symlinks into ``../shared/data`` and holds full-width simulator frames, so it does not travel.
:func:`pack_dataset` re-encodes every image as WebP (about half the bytes of a JPEG of the same quality) with its
longest side at most the training size; labels are normalised, so they are copied as they are. On the other
machine, :func:`unpack_dataset` writes the lists, data yamls and manifest that :func:`build_dataset` would have
written, pointing at the packed images; ``detector train`` there finds the dataset built and trains on it.

    pack_dataset(build_dataset(cfg, project), Path("packed"), max_side=640)
    unpack_dataset(Path("packed"), cfg, project)                          # the same dataset
    unpack_dataset(Path("packed"), {**cfg, "data": {**cfg["data"], "holdout": "dnit"}}, project)

A holdout config (``data.holdout``) gets no training image of that source and no composite drawn on one of its
images, and all of that source's images as validation. Unlike a holdout build from the raw data, the composites
are not redrawn on the remaining sources' backgrounds, so there are fewer of them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import cv2
from tqdm import tqdm

from detector.errors import InputError
from detector.train.dataset import BuiltDataset, DataConfig, fingerprint, placed_images, work_dir, write_index

INDEX = "index.json"


def _shrink(image: Any, max_side: int) -> Any:
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def pack_dataset(built: BuiltDataset, dest: Path, max_side: int = 640, quality: int = 75, progress: bool = True) -> int:
    """Copy the images (shrunk, as WebP) and labels of ``built`` into ``dest``; returns the bytes written."""
    manifest = json.loads((built.root / "manifest.json").read_text())
    if dest.exists():
        shutil.rmtree(dest)
    index: dict[str, list[str]] = {}
    placed = placed_images(built.root)
    total = sum(len(images) for images in placed.values())
    with tqdm(total=total, desc="packing", unit="img", disable=not progress) as bar:
        for key, images in placed.items():
            for image in images:
                rel = image.relative_to(built.root).with_suffix(".webp")
                pixels = cv2.imread(str(image))
                if pixels is None:
                    raise InputError(image, "unreadable image in the built dataset")
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(dest / rel), _shrink(pixels, max_side), [cv2.IMWRITE_WEBP_QUALITY, quality])
                label = (built.root / "labels" / image.relative_to(built.root / "images")).with_suffix(".txt")
                target = (dest / "labels" / rel.relative_to("images")).with_suffix(".txt")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(label, target)
                index.setdefault(key, []).append(rel.as_posix())
                bar.update()
    doc = {"fingerprint": manifest["fingerprint"], "max_side": max_side, "quality": quality, "images": index}
    (dest / INDEX).write_text(json.dumps(doc))
    return sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())


def composite_background(image: Path) -> str:
    """The source a composite was drawn on: ``00012_dnit_1080089_DF_...jpg`` -> ``dnit``."""
    return image.name.split("_", 2)[1]


def unpack_dataset(packed: Path, cfg: dict[str, Any], project: Path) -> BuiltDataset:
    """Write the dataset index of ``cfg`` (under its ``work_dir``) over the images packed in ``packed``."""
    if not (packed / INDEX).is_file():
        raise InputError(packed, f"not a packed dataset (no {INDEX})")
    doc = json.loads((packed / INDEX).read_text())
    data = DataConfig.from_dict(cfg["data"])
    holdout = data.holdout
    whole = {**cfg, "data": {**cfg["data"], "holdout": None}}
    if doc["fingerprint"] != fingerprint(whole):
        raise InputError(packed, "packed from a different data config than this one; pack it again")
    root = packed.resolve()
    placed: dict[str, list[Path]] = {}
    for key, images in doc["images"].items():
        split, source = key.split("/")
        paths = [root / rel for rel in images]
        if holdout and source == holdout:
            split = "val"
        elif holdout and source == "composite":
            paths = [p for p in paths if composite_background(p) != holdout]
        placed.setdefault(f"{split}/{source}", []).extend(paths)
    out = work_dir(cfg, project)
    if out.exists():
        manifest = out / "manifest.json"
        if not manifest.exists() or "packed" not in json.loads(manifest.read_text()).get("config", {}):
            raise InputError(out, "holds a dataset not unpacked from a pack; refusing to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    config = {"packed": str(root), "max_side": doc["max_side"], "holdout": holdout}
    return write_index(out, placed, list(cfg["classes"]), fingerprint(cfg), config, data.repeat)
