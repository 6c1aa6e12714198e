"""Hard negatives: real training images on which a model fires a class that none of them shows.

No image in the real pothole sets shows a fallen sign, so each of them is a guaranteed negative for that class, and
every ``fallen_sign`` the model draws on one is a false alarm: text marks, tail lights, wheels, glare, billboards
(``models/MODEL_CARD.md``). :func:`mine` runs a model over the whole frame of each training image of those sets and
keeps those where it fires; the dataset builder lists them again as the ``hard_negative`` source (with their own
pothole labels), which ``data.repeat.hard_negative`` weighs up. Validation images are never mined.
"""

from __future__ import annotations

from pathlib import Path

import cv2
from tqdm import tqdm

from detector.config.training import HardNegativeConfig
from detector.errors import ConfigError, InputError


def mining_model(cfg: HardNegativeConfig, project: Path) -> Path | None:
    """The mining model's file (``.onnx`` added when no suffix is given), checked to exist."""
    if not cfg.model:
        return None
    path = Path(cfg.model)
    path = path if path.suffix else path.with_suffix(".onnx")
    path = path if path.is_absolute() else project / path
    if not path.is_file():
        raise InputError(path, "hard_negatives.model: model not found")
    return path


def mine(
    images: list[Path], model: Path, classes: list[str], cfg: HardNegativeConfig, progress: bool = True
) -> list[tuple[Path, float]]:
    """Each image on whose whole frame ``model`` finds one of ``cfg.classes`` at ``cfg.conf`` or more, with the
    highest such score."""
    from detector.config import load_config
    from detector.pipeline.inference import load_detector

    unknown = [c for c in cfg.classes if c not in classes]
    if unknown:
        raise ConfigError("hard_negatives.classes", f"{unknown} are not classes of the set ({', '.join(classes)})")
    detect = load_config(overrides=[f"detect.model={model}", "detect.backend=onnx"]).detect
    detector = load_detector(detect.model_copy(update={"classes": classes}), use_roi=False, conf=cfg.conf)
    wanted = [classes.index(c) for c in cfg.classes]
    found = []
    for path in tqdm(images, desc="mining hard negatives", unit="img", disable=not progress):
        image = cv2.imread(str(path))
        if image is None:
            raise InputError(path, "unreadable image in the built dataset")
        hits = detector(image)
        scores = [float(c) for c, k in zip(hits.confidence, hits.class_id, strict=True) if int(k) in wanted]
        if scores:
            found.append((path, max(scores)))
    return found


def place_hard_negatives(found: list[tuple[Path, float]], out: Path) -> list[Path]:
    """List each mined image (placed under ``out/images/train/<source>/``) again under ``hard_negative``, with
    its labels; returns the new image paths."""
    written = []
    for image, _ in found:
        rel = image.relative_to(out / "images" / "train")
        source = rel.parts[0]
        dest = out / "images" / "train" / "hard_negative" / f"{source}_{image.name}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(image.resolve())
        label = (out / "labels" / "train" / rel).with_suffix(".txt")
        target = (out / "labels" / "train" / "hard_negative" / dest.name).with_suffix(".txt")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(label.read_text() if label.exists() else "")
        written.append(dest)
    return written
