"""Take a built training set to another machine (a GPU trainer) within one transfer, and set it up there.

The built dataset symlinks into ``../shared/data`` and holds full-width simulator frames, so it does not travel.
:func:`pack_dataset` re-encodes every training image (and a sample of each validation set) as AVIF, with its
longest side at most the training size (smaller than WebP at a like quality), so that the pack and the project
together fit one transfer to a lent GPU machine (64 MiB). Labels are normalised, so they are copied as
they are. Where OpenCV there cannot read AVIF, the pack is decoded to JPEG with Pillow first. On the other
machine, :func:`unpack_dataset` writes the lists, data yamls and manifest that :func:`build_dataset` would have
written, pointing at the packed images; ``detector train`` there finds the dataset built and trains on it.

    pack_dataset(build_dataset(cfg, project), Path("packed"), max_side=640)
    unpack_dataset(Path("packed"), cfg, project)                          # the same dataset
    unpack_dataset(Path("packed"), TRAINING.updated(cfg, {"data.holdout": "dnit"}), project)

A holdout config (``data.holdout``) gets no training image of that source and no composite drawn on one of its
images, and all of that source's images as validation. Unlike a holdout build from the raw data, the composites
are not redrawn on the remaining sources' backgrounds, so there are fewer of them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
from PIL import Image
from tqdm import tqdm

from detector.config import TRAINING
from detector.config.training import DERIVED_SOURCES, TrainingConfig
from detector.errors import InputError
from detector.train.dataset import (
    BuiltDataset,
    fingerprint,
    placed_images,
    work_dir,
    write_index,
)

INDEX = "index.json"


def _shrink(image: Image.Image, max_side: int) -> Image.Image:
    scale = max_side / max(image.size)
    if scale >= 1.0:
        return image
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS)


def _sample(images: list[Path], count: int | None) -> list[Path]:
    """At most ``count`` of ``images``, evenly spread (all when ``count`` is None)."""
    if count is None or len(images) <= count:
        return images
    step = len(images) / count
    return [images[int(i * step)] for i in range(count)]


def pack_dataset(
    built: BuiltDataset,
    dest: Path,
    max_side: int = 640,
    quality: int = 30,
    val_images: int | None = 40,
    progress: bool = True,
) -> int:
    """Copy the images (shrunk to ``max_side``, as AVIF) and labels of ``built`` into ``dest``; returns the bytes.

    Every training image goes; of each validation set only ``val_images`` (None: all), enough for the trainer's
    closing validation: the model's figures are measured where the original images are (``detector ship``).
    An image listed under two sources (a hard negative is a training image listed again) is packed once.
    """
    manifest = json.loads((built.root / "manifest.json").read_text())
    if dest.exists():
        shutil.rmtree(dest)
    index: dict[str, list[str]] = {}
    packed: dict[Path, str] = {}  # resolved original -> its packed file
    placed = {
        key: _sample(images, None if key.startswith("train/") else val_images)
        for key, images in placed_images(built.root).items()
    }
    total = sum(len(images) for images in placed.values())
    with tqdm(total=total, desc="packing", unit="img", disable=not progress) as bar:
        for key, images in placed.items():
            for image in images:
                original = image.resolve()
                rel = packed.get(original)
                if rel is None:
                    rel = image.relative_to(built.root).with_suffix(".avif").as_posix()
                    try:
                        with Image.open(image) as pixels:
                            small = _shrink(pixels.convert("RGB"), max_side)
                    except OSError:
                        raise InputError(image, "unreadable image in the built dataset") from None
                    (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                    small.save(dest / rel, "AVIF", quality=quality, speed=6)
                    label = (built.root / "labels" / image.relative_to(built.root / "images")).with_suffix(".txt")
                    target = (dest / "labels" / Path(rel).relative_to("images")).with_suffix(".txt")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(label, target)
                    packed[original] = rel
                index.setdefault(key, []).append(rel)
                bar.update()
    doc = {"fingerprint": manifest["fingerprint"], "max_side": max_side, "quality": quality, "images": index}
    (dest / INDEX).write_text(json.dumps(doc))
    return sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())


def readable_copies(packed: Path, progress: bool = True) -> Path:
    """The folder the trainer reads the packed images from: the pack itself where OpenCV reads AVIF, else JPEG
    copies decoded with Pillow beside it (``<pack>-decoded``, made once)."""
    first = next(packed.rglob("*.avif"), None)
    if first is None or cv2.haveImageReader(str(first)):
        return packed
    out = packed.with_name(packed.name + "-decoded")
    done = out / ".complete"
    if done.exists():
        return out
    for label in packed.rglob("*.txt"):
        target = out / label.relative_to(packed)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(label, target)
    for image in tqdm(sorted(packed.rglob("*.avif")), desc="decoding the pack", disable=not progress):
        target = (out / image.relative_to(packed)).with_suffix(".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with Image.open(image) as pixels:
                pixels.convert("RGB").save(target, "JPEG", quality=95)
        except OSError as e:
            raise InputError(image, f"neither OpenCV nor Pillow here reads AVIF ({e}); carry a Pillow wheel") from None
    done.write_text("")
    return out


def drawn_from(image: Path, source: str) -> bool:
    """Was this derived image (a composite, a stamped copy, a hard negative) made from an image of ``source``?

    >>> drawn_from(Path("00012_dnit_1080089_DF_010.jpg"), "dnit")
    True
    >>> drawn_from(Path("00003_composite_00012_dnit_x.jpg"), "dnit")  # a stamped copy of a composite on dnit
    True
    >>> drawn_from(Path("rdd2022-india_India_000928.jpg"), "dnit")
    False
    """
    return source in image.name.split("_")


def unpack_dataset(packed: Path, cfg: TrainingConfig, project: Path) -> BuiltDataset:
    """Write the dataset index of ``cfg`` (under its ``work_dir``) over the images packed in ``packed``."""
    if not (packed / INDEX).is_file():
        raise InputError(packed, f"not a packed dataset (no {INDEX})")
    doc = json.loads((packed / INDEX).read_text())
    data = cfg.data
    holdout = data.holdout
    whole = TRAINING.updated(cfg, {"data.holdout": None})
    if doc["fingerprint"] != fingerprint(whole, project):
        raise InputError(packed, "packed from a different data config than this one; pack it again")
    root = readable_copies(packed.resolve())
    suffix = ".avif" if root == packed.resolve() else ".jpg"
    placed: dict[str, list[Path]] = {}
    for key, images in doc["images"].items():
        split, source = key.split("/")
        paths = [(root / rel).with_suffix(suffix) for rel in images]
        if holdout and source == holdout:
            split = "val"
        elif holdout and source in DERIVED_SOURCES:  # a hard negative is packed as its source's own image
            paths = [p for p in paths if not drawn_from(p, holdout) and p.parent.name != holdout]
        placed.setdefault(f"{split}/{source}", []).extend(paths)
    out = work_dir(cfg, project)
    if out.exists():
        manifest = out / "manifest.json"
        if not manifest.exists() or "packed" not in json.loads(manifest.read_text()).get("config", {}):
            raise InputError(out, "holds a dataset not unpacked from a pack; refusing to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    config = {"packed": str(root), "max_side": doc["max_side"], "holdout": holdout}
    return write_index(out, placed, list(cfg.classes), fingerprint(cfg, project), config, data.repeat)
