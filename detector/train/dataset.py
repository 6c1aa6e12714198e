"""Build the YOLO training set from the shared pothole sets and fallen-sign composites.

The shared data is read in place: images are symlinked into a working folder (Ultralytics writes ``labels.cache``
beside label folders, so it must never train from ``../shared/data`` directly). Labels are rewritten with
degenerate boxes dropped. Splits never separate images of one road: rdd2022-india by ``groups.csv`` group, dnit by
highway segment (from ``<frame>_<state>_<highway>_<segment>_<position>``), chitholian by its own folders, and a
``blocks`` source by runs of file numbers (RDD2022 numbers the frames of a drive consecutively).

A ``format: voc`` source is read as RDD2022 ships it (``train/images/*.jpg`` with
``train/annotations/xmls/<stem>.xml``, Pascal VOC), in place from wherever its snapshot lies: ``voc_classes`` maps
annotation names to training classes (``D40: pothole``; cracks or repairs to competing classes listed after
``fallen_sign`` in ``classes``), and every other name is dropped.

A ``format: gtsdb`` source is read as the German Traffic Sign Detection Benchmark ships it: the images (``.jpg`` or
``.ppm``) beside one ``gt.txt`` of ``<image>;x0;y0;x1;y1;<type>`` rows; every box becomes ``box_class``
(``traffic_sign``: any type of sign), and images without a row are sign-free street scenes. ``val_groups`` names the
validation groups outright (GTSDB's own split: images 600-899, ``blocks`` of 600, group ``1``).

dnit annotates only the survey vehicle's own lane; with ``outside_lane: grey`` everything outside
``lane_masks/<stem>.png`` is painted the letterbox grey (114) so unlabelled potholes in other lanes never become
negatives. Hazard-free images stay in as negatives with empty label files.

Written layout (under ``work_dir``)::

    images/<split>/<source>/...      labels/<split>/<source>/*.txt
    lists/<split>.txt, lists/val_<source>.txt
    data.yaml (train + val of all sources), val_<source>.yaml (one source's validation), manifest.json
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from PIL import Image

from detector.config.training import PROVENANCE_KEYS, CompositeConfig, DataConfig, SourceSpec, TrainingConfig
from detector.errors import ConfigError, InputError
from detector.pipeline.inference.detector import PAD_VALUE
from detector.train.composite import Background, composite, load_sign, road_region
from detector.train.hard_negatives import mine, mining_model, place_hard_negatives
from detector.train.overlays import make_overlays
from detector.yolo_labels import box_rows, label_path, pixel_boxes, read_label, write_label

log = logging.getLogger(__name__)

FOLDER_SPLITS = {"train": "train", "valid": "val", "test": "test"}
BASE_CLASSES = ["pothole", "fallen_sign"]
NO_EXTRA = np.zeros((0, 5))


@dataclass
class Sample:
    """One image and its pothole boxes (x0, y0, x1, y1 pixels) after cleaning."""

    source: str
    name: str
    image: Path
    split: str
    group: str
    boxes: np.ndarray
    size: tuple[int, int]  # width, height
    lane: Path | None = None
    extra: np.ndarray = field(default_factory=lambda: NO_EXTRA)  # competing classes' boxes: class, x0, y0, x1, y1


@dataclass
class BuiltDataset:
    """Where :func:`build_dataset` wrote the data yamls, and how many images each (split, source) got."""

    root: Path
    data_yaml: Path
    val_yamls: dict[str, Path]
    counts: dict[str, int] = field(default_factory=dict)  # "<split>/<source>" -> images


def read_boxes(label: Path, width: int, height: int, min_px: float) -> np.ndarray:
    """Pothole boxes (class 0 rows) of a YOLO label file as x0, y0, x1, y1 pixels, clipped to the image.

    Boxes narrower or lower than ``min_px`` after clipping are dropped (chitholian img-415 has a zero-width one).
    A missing file means no boxes.
    """
    rows = read_label(label)
    xyxy = pixel_boxes(rows[rows[:, 0] == 0], width, height)
    keep = (xyxy[:, 2] - xyxy[:, 0] >= min_px) & (xyxy[:, 3] - xyxy[:, 1] >= min_px)
    return xyxy[keep]


def dnit_segment(stem: str) -> str:
    """Highway segment of a dnit image: ``1080089_DF_010_010BDF0030_1_03336`` -> ``010BDF0030``."""
    parts = stem.split("_")
    if len(parts) < 5:
        raise ValueError(f"dnit name {stem!r} is not <frame>_<state>_<highway>_<segment>_<position>")
    return parts[3]


def split_groups(groups: dict[str, str], val_fraction: float, seed: int) -> set[str]:
    """Choose validation groups holding about ``val_fraction`` of the items, whole groups only.

    ``groups`` maps item -> group. Groups are visited in a seeded random order and taken while they keep the
    validation share within 125 % of its target, so one huge group cannot swallow the validation set.
    """
    sizes: dict[str, int] = {}
    for group in groups.values():
        sizes[group] = sizes.get(group, 0) + 1
    order = sorted(sizes)
    np.random.default_rng(seed).shuffle(order)
    target = val_fraction * len(groups)
    chosen: set[str] = set()
    taken = 0
    for group in order:
        if taken >= target:
            break
        if taken + sizes[group] <= 1.25 * target or not chosen:
            chosen.add(group)
            taken += sizes[group]
    return chosen


def _image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


def _samples(
    source: str,
    images: Iterable[Path],
    labels: Path,
    splits: dict[str, str],
    groups: dict[str, str],
    min_px: float,
    lanes: Path | None = None,
) -> list[Sample]:
    out = []
    for image in images:
        width, height = _image_size(image)
        boxes = read_boxes(labels / f"{image.stem}.txt", width, height, min_px)
        lane = lanes / f"{image.stem}.png" if lanes else None
        out.append(
            Sample(source, image.name, image, splits[image.name], groups[image.name], boxes, (width, height), lane)
        )
    return out


def block_group(stem: str, size: int) -> str:
    """Road group of a numbered frame: ``Japan_001234`` -> ``Japan_12`` for blocks of 100 (no number: the stem)."""
    match = re.search(r"(\d+)$", stem)
    if match is None:
        return stem
    return f"{stem[: match.start()]}{int(match.group(1)) // size}"


def voc_folders(folder: Path) -> tuple[Path, Path]:
    """Images and VOC xml folders of an RDD2022-style source: ``train/images`` + ``train/annotations/xmls``, or the
    same without ``train/``."""
    for base in (folder / "train", folder):
        if (base / "images").is_dir() and (base / "annotations" / "xmls").is_dir():
            return base / "images", base / "annotations" / "xmls"
    raise InputError(folder, "no images/ and annotations/xmls/ (under train/ or not): not an RDD2022-style VOC set")


def read_voc(
    xml: Path, mapping: dict[str, str], classes: list[str], size: tuple[int, int], min_px: float
) -> np.ndarray:
    """Boxes of a VOC file whose names ``mapping`` keeps, as rows class, x0, y0, x1, y1 (pixels, clipped to ``size``,
    boxes under ``min_px`` dropped). A missing file means no boxes; a malformed one is an :class:`InputError`."""
    if not xml.exists():
        return NO_EXTRA
    try:
        objects = ET.parse(xml).getroot().iter("object")
        rows = []
        for obj in objects:
            target = mapping.get((obj.findtext("name") or "").strip())
            box = obj.find("bndbox")
            if target is None or box is None:
                continue
            coords = [float(box.findtext(k) or "nan") for k in ("xmin", "ymin", "xmax", "ymax")]
            rows.append([classes.index(target), *coords])
    except (ET.ParseError, ValueError) as e:
        raise InputError(xml, f"not a readable VOC annotation ({e})") from None
    out = np.array(rows, float).reshape(-1, 5)
    out = out[np.isfinite(out).all(axis=1)]
    width, height = size
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, width)
    out[:, [2, 4]] = np.clip(out[:, [2, 4]], 0, height)
    return out[(out[:, 3] - out[:, 1] >= min_px) & (out[:, 4] - out[:, 2] >= min_px)]


def validation_groups(spec: SourceSpec, groups: dict[str, str], val_fraction: float, seed: int) -> set[str]:
    """The validation groups of a source: ``val_groups`` when the recipe names them, else chosen by
    :func:`split_groups`."""
    if spec.val_groups is not None:
        return set(spec.val_groups)
    return split_groups(groups, val_fraction, seed)


def read_gtsdb(gt: Path, class_id: int, min_px: float) -> dict[str, np.ndarray]:
    """The boxes of a GTSDB ``gt.txt`` by image stem, as rows class, x0, y0, x1, y1 (pixels; boxes under ``min_px``
    dropped). A malformed row is an :class:`InputError` naming the file and line."""
    rows: dict[str, list[list[float]]] = {}
    for number, line in enumerate(gt.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.strip().split(";")
        try:
            coords = [float(v) for v in fields[1:5]]
        except ValueError:
            coords = []
        if len(fields) != 6 or len(coords) != 4 or not np.isfinite(coords).all():
            raise InputError(gt, f"line {number} is not <image>;x0;y0;x1;y1;<type>")
        if coords[2] - coords[0] >= min_px and coords[3] - coords[1] >= min_px:
            rows.setdefault(Path(fields[0]).stem, []).append([class_id, *coords])
    return {stem: np.array(boxes, float) for stem, boxes in rows.items()}


def _gtsdb_samples(
    name: str, spec: SourceSpec, folder: Path, cfg: DataConfig, seed: int, classes: list[str]
) -> list[Sample]:
    """The images of a GTSDB-style source, every box of class ``box_class``, split by ``blocks`` of file numbers."""
    if spec.split != "blocks":
        raise ConfigError(f"data.sources.{name}.split", "a gtsdb source is split by blocks")
    gt = folder / "gt.txt"
    if not gt.is_file():
        raise InputError(folder, "no gt.txt: not a GTSDB-style source")
    boxes = read_gtsdb(gt, classes.index(str(spec.box_class)), cfg.min_box_px)
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".ppm"})
    groups = {p.name: block_group(p.stem, spec.block_size) for p in images}
    val = validation_groups(spec, groups, cfg.val_fraction, seed)
    out = []
    for image in images:
        size = _image_size(image)
        rows = boxes.get(image.stem, NO_EXTRA).copy()
        rows[:, [1, 3]] = np.clip(rows[:, [1, 3]], 0, size[0])
        rows[:, [2, 4]] = np.clip(rows[:, [2, 4]], 0, size[1])
        split = "val" if groups[image.name] in val else "train"
        out.append(Sample(name, image.name, image, split, groups[image.name], np.zeros((0, 4)), size, extra=rows))
    return out


def _voc_samples(
    name: str, spec: SourceSpec, folder: Path, cfg: DataConfig, seed: int, classes: list[str]
) -> list[Sample]:
    """The images of a VOC source, split by ``blocks`` or ``groups``; pothole boxes apart from the others."""
    if spec.split not in ("blocks", "groups"):
        raise ConfigError(f"data.sources.{name}.split", "a voc source is split by blocks or groups")
    images_dir, xmls = voc_folders(folder)
    images = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if spec.split == "groups":
        with (folder / "groups.csv").open(newline="") as f:
            groups = {row["image"]: row["group"] for row in csv.DictReader(f)}
    else:
        groups = {p.name: block_group(p.stem, spec.block_size) for p in images}
    val = validation_groups(spec, {p.name: groups[p.name] for p in images}, cfg.val_fraction, seed)
    pothole = classes.index("pothole")
    out = []
    for image in images:
        size = _image_size(image)
        rows = read_voc(xmls / f"{image.stem}.xml", spec.voc_classes, classes, size, cfg.min_box_px)
        potholes = rows[:, 0] == pothole
        split = "val" if groups[image.name] in val else "train"
        out.append(
            Sample(name, image.name, image, split, groups[image.name], rows[potholes, 1:], size, extra=rows[~potholes])
        )
    return out


def load_source(
    name: str, spec: SourceSpec, root: Path, cfg: DataConfig, seed: int, classes: list[str] | None = None
) -> list[Sample]:
    """All images of one source with their split (train/val/test) and group; ``classes`` name the class ids of a
    voc source's boxes."""
    folder = root / spec.path  # an absolute path stays as it is
    if spec.format == "voc":
        return _voc_samples(name, spec, folder, cfg, seed, classes or BASE_CLASSES)
    if spec.format == "gtsdb":
        return _gtsdb_samples(name, spec, folder, cfg, seed, classes or BASE_CLASSES)
    if spec.split == "folders":
        out = []
        for sub, split in FOLDER_SPLITS.items():
            images = sorted((folder / sub / "images").glob("*.jpg"))
            names = {p.name: split for p in images}
            groups = {p.name: sub for p in images}
            out += _samples(name, images, folder / sub / "labels", names, groups, cfg.min_box_px)
        return out
    images = sorted((folder / "images").glob("*.jpg"))
    if spec.split == "groups":
        with (folder / "groups.csv").open(newline="") as f:
            groups = {row["image"]: row["group"] for row in csv.DictReader(f)}
    elif spec.split == "blocks":
        groups = {p.name: block_group(p.stem, spec.block_size) for p in images}
    else:
        groups = {p.name: dnit_segment(p.stem) for p in images}
    val = validation_groups(spec, {p.name: groups[p.name] for p in images}, cfg.val_fraction, seed)
    splits = {p.name: "val" if groups[p.name] in val else "train" for p in images}
    lanes = folder / "lane_masks" if spec.outside_lane == "grey" else None
    return _samples(name, images, folder / "labels", splits, groups, cfg.min_box_px, lanes)


def sample_rows(sample: Sample) -> np.ndarray:
    """The YOLO label rows of a sample: its potholes (class 0), then its competing classes' boxes."""
    w, h = sample.size
    potholes = box_rows(sample.boxes, np.zeros(len(sample.boxes)), w, h)
    return np.concatenate([potholes, box_rows(sample.extra[:, 1:], sample.extra[:, 0], w, h)])


def grey_outside_lane(image: np.ndarray, lane: np.ndarray) -> np.ndarray:
    """``image`` with every pixel outside the lane mask set to the letterbox grey."""
    out = image.copy()
    out[lane == 0] = PAD_VALUE
    return out


def _read_lane(path: Path) -> np.ndarray:
    lane = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if lane is None:
        raise FileNotFoundError(f"lane mask missing: {path}")
    return lane


def _place(sample: Sample, out: Path) -> Path:
    """Put the sample's image into the working folder (symlink, or a lane-masked copy for dnit)."""
    dest = out / "images" / sample.split / sample.source / sample.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    if sample.lane is None:
        dest.symlink_to(sample.image.resolve())
    else:
        image = cv2.imread(str(sample.image))
        cv2.imwrite(str(dest), grey_outside_lane(image, _read_lane(sample.lane)), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return dest


def make_composites(
    backgrounds: list[tuple[Sample, Path]],
    count: int,
    split: str,
    out: Path,
    signs: list[np.ndarray],
    cfg: CompositeConfig,
    rng: np.random.Generator,
) -> list[Path]:
    """Write ``count`` composites for ``split`` from (sample, placed image) backgrounds drawn by source weight."""
    weights = np.array([cfg.backgrounds.get(s.source, 0.0) for s, _ in backgrounds], float)
    per_source = {s.source: 0 for s, _ in backgrounds}
    for s, _ in backgrounds:
        per_source[s.source] += 1
    weights /= np.array([per_source[s.source] for s, _ in backgrounds], float)
    if weights.sum() <= 0:
        raise ConfigError("composite.backgrounds", f"names no source with {split} images to draw composites on")
    picks = rng.choice(len(backgrounds), size=count, p=weights / weights.sum())
    written = []
    for k, i in enumerate(picks):
        sample, placed = backgrounds[i]
        image = cv2.imread(str(placed))
        lane = _read_lane(sample.lane) if sample.lane else None
        band = cfg.road_band.get(sample.source)
        bg = Background(image, sample.boxes, road_region(image.shape[:2], band, lane))
        n = int(rng.integers(cfg.signs_per_image[0], cfg.signs_per_image[1] + 1))
        chosen = [signs[j] for j in rng.choice(len(signs), size=n)]
        result, potholes, sign_boxes = composite(bg, chosen, rng, cfg)
        dest = out / "images" / split / "composite" / f"{k:05d}_{sample.source}_{Path(sample.name).stem}.jpg"
        dest.parent.mkdir(parents=True, exist_ok=True)
        quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        cv2.imwrite(str(dest), result, [cv2.IMWRITE_JPEG_QUALITY, quality])
        h, w = result.shape[:2]
        classes = np.repeat([0, 1], [len(potholes), len(sign_boxes)])
        rows = box_rows(np.concatenate([potholes, sign_boxes]).reshape(-1, 4), classes, w, h)
        competing = sample_rows(sample)[len(sample.boxes) :]  # cracks, repairs: kept
        write_label(label_path(dest), np.concatenate([rows, competing]))
        written.append(dest)
    return written


def fingerprint(cfg: TrainingConfig, project: Path | None = None) -> str:
    """What a built dataset's images and labels depend on: a hash of the config sections that shape them (not where
    they live, nor how often the training list repeats them), and of the weights that mine its hard negatives."""
    keys = {"classes", "seed", "data", "composite", "simulator", "overlay", "hard_negatives"}
    where_from = {name: set(PROVENANCE_KEYS) for name in cfg.data.sources}  # a source's record, not its content
    shaping = cfg.model_dump(
        mode="json", include=keys, exclude={"data": {"work_dir": True, "repeat": True, "sources": where_from}}
    )
    miner = mining_model(cfg.hard_negatives, project)
    if miner is not None:
        from detector.pipeline.analysis import content_hash

        shaping["mining_weights"] = content_hash(miner)
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]


def _write_yaml(path: Path, root: Path, train: Path | None, val: Path, names: list[str]) -> Path:
    doc = {"path": str(root), "train": str(train or val), "val": str(val), "names": dict(enumerate(names))}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _write_list(path: Path, images: list[Path]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{p}\n" for p in sorted(images)))
    return path


def work_dir(cfg: TrainingConfig, project: Path) -> Path:
    """The dataset folder for ``cfg``: ``data.work_dir``, suffixed ``-no-<source>`` for a holdout build."""
    data = cfg.data
    base = project / data.work_dir
    return base.with_name(f"{base.name}-no-{data.holdout}") if data.holdout else base


def build_dataset(cfg: TrainingConfig, project: Path) -> BuiltDataset:
    """Build (or reuse, when its manifest matches ``cfg``) the YOLO dataset described by the train config.

    ``cfg`` is the parsed ``configs/train.yaml``; relative paths are resolved against ``project``. With
    ``data.holdout`` set, that source gives no training images and no composite backgrounds: all its images are
    validation images of its own ``val_<source>.yaml`` (a leave-one-source-out build).
    """
    data, comp = cfg.data, cfg.composite
    names: list[str] = list(cfg.classes)
    if names[:2] != BASE_CLASSES:
        raise ConfigError("classes", f"must start with pothole, fallen_sign; got {names}")
    out = work_dir(cfg, project)
    manifest = out / "manifest.json"
    digest = fingerprint(cfg, project)
    if manifest.exists():
        saved = json.loads(manifest.read_text())
        if saved.get("fingerprint") == digest:
            if saved.get("repeat", {}) != data.repeat:  # same images, listed as often as data.repeat now says
                if "packed" in saved["config"]:  # its images live in the pack, whose index says where
                    raise InputError(out, "unpacked with another data.repeat; unpack it again (--packed DIR)")
                return write_index(out, placed_images(out), names, digest, saved["config"], data.repeat)
            return BuiltDataset(
                out, Path(saved["data_yaml"]), {k: Path(v) for k, v in saved["val_yamls"].items()}, saved["counts"]
            )
    if out.exists():
        if not manifest.exists() and any(out.iterdir()):
            raise InputError(out, "not empty and holds no dataset manifest; refusing to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    root = project / data.root
    seed = cfg.seed
    placed: dict[str, list[Path]] = {}  # "<split>/<source>" -> images in the working folder
    backgrounds: dict[str, list[tuple[Sample, Path]]] = {}  # split -> composite backgrounds
    for name, spec in data.sources.items():
        for sample in load_source(name, spec, root, data, seed, names):
            if name == data.holdout:
                sample.split = "val"
            dest = _place(sample, out)
            write_label(label_path(dest), sample_rows(sample))
            placed.setdefault(f"{sample.split}/{name}", []).append(dest)
            if name != data.holdout:
                backgrounds.setdefault(sample.split, []).append((sample, dest))

    signs = [load_sign(p) for p in sorted((root / comp.signs).glob("*.png"))]
    rng = np.random.default_rng(seed)
    for split, count in comp.count.items():
        placed[f"{split}/composite"] = make_composites(backgrounds[split], count, split, out, signs, comp, rng)

    if any(cfg.simulator.worlds.values()):
        from detector.train.simframes import simulator_frames

        cache = project / cfg.output / "simulator"
        for split, images in simulator_frames(cfg.simulator, out, cache).items():
            placed[f"{split}/simulator"] = images

    if cfg.overlay.count:
        stamp = cfg.overlay
        for split, count in stamp.count.items():
            pool = {key.split("/")[1]: images for key, images in placed.items() if key.startswith(f"{split}/")}
            placed[f"{split}/overlay"] = make_overlays(pool, count, split, out, stamp, rng)

    mining = cfg.hard_negatives
    miner = mining_model(mining, project)
    if miner:
        pool = [image for source in mining.sources for image in placed.get(f"train/{source}", [])]
        found = mine(pool, miner, names, mining)
        placed["train/hard_negative"] = place_hard_negatives(found, out)
        log.info("hard negatives: %d of %d training images of %s", len(found), len(pool), ", ".join(mining.sources))

    shaping = data.model_dump(mode="json", exclude={"repeat"})  # the manifest keeps repeat on its own
    return write_index(
        out, placed, names, digest, {"data": shaping, "composite": comp.model_dump(mode="json")}, data.repeat
    )


def placed_images(root: Path) -> dict[str, list[Path]]:
    """The images of a dataset built in ``root`` by "<split>/<source>", read from its ``images/<split>/<source>/``."""
    return {
        f"{split.name}/{source.name}": sorted(p for p in source.iterdir() if p.suffix.lower() in {".jpg", ".png"})
        for split in sorted((root / "images").iterdir())
        for source in sorted(split.iterdir())
    }


def write_index(
    out: Path,
    placed: dict[str, list[Path]],
    names: list[str],
    digest: str,
    config: dict[str, Any],
    repeat: dict[str, int] | None = None,
) -> BuiltDataset:
    """Write the lists, data yamls and manifest of a dataset whose images are ``placed`` ("<split>/<source>" ->
    image paths): ``data.yaml`` (train + val) and one ``val_<source>.yaml`` per non-training split and source.

    ``repeat`` weighs sources up: each training image of ``source`` is listed ``repeat[source]`` times in the
    training list (an epoch sees it that often); validation lists and ``counts`` hold every image once.
    """
    lists = out / "lists"
    by_split: dict[str, list[Path]] = {}
    for key, images in placed.items():
        split, source = key.split("/")
        times = (repeat or {}).get(source, 1) if split == "train" else 1
        by_split.setdefault(split, []).extend(images * times)
    list_files = {split: _write_list(lists / f"{split}.txt", images) for split, images in by_split.items()}
    data_yaml = _write_yaml(out / "data.yaml", out, list_files.get("train"), list_files["val"], names)
    val_yamls = {}
    for key, images in sorted(placed.items()):
        split, source = key.split("/")
        if split != "train":
            suffix = source if split == "val" else f"{source}-{split}"
            val_list = _write_list(lists / f"val_{suffix}.txt", images)
            val_yamls[suffix] = _write_yaml(out / f"val_{suffix}.yaml", out, None, val_list, names)
    counts = {key: len(images) for key, images in sorted(placed.items())}
    manifest = {
        "fingerprint": digest,
        "data_yaml": str(data_yaml),
        "val_yamls": {k: str(v) for k, v in val_yamls.items()},
        "counts": counts,
        "repeat": repeat or {},
        "config": config,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    log.info("dataset written in %s: %s", out, counts)
    return BuiltDataset(out, data_yaml, val_yamls, counts)
