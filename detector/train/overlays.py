"""Training images with a dashcam's burned-in text: real road images stamped with date, time, speed and marks.

The text is no hazard, so an overlaid image keeps exactly the labels of the image it was drawn on (potholes, and a
composite's signs): the model learns that a stamp is background. Each image gets a style of its own
(:func:`detector.simulate.overlay.random_style`) and values of its own (a date in the last years, a time of day, a
speed, a position). Validation images are drawn on validation backgrounds only, and measure the false alarms a
stamped camera would bring (``val_overlay.yaml``).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from detector.config.training import OverlayConfig
from detector.errors import ConfigError
from detector.simulate.overlay import draw_overlay, random_style

DAY_S = 86_400.0
EPOCH_2020 = 1_577_836_800.0


def stamped_copy(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``image`` with a random dashcam stamp burned in."""
    utc = EPOCH_2020 + float(rng.uniform(0, 7 * 365)) * DAY_S
    lat, lon = float(rng.uniform(-45, 60)), float(rng.uniform(-120, 140))
    stamped, _ = draw_overlay(image, random_style(rng), utc, float(rng.uniform(0, 30)), lat, lon)
    return stamped


def make_overlays(
    backgrounds: dict[str, list[Path]], count: int, split: str, out: Path, cfg: OverlayConfig, rng: np.random.Generator
) -> list[Path]:
    """Write ``count`` stamped copies of ``split`` images (source -> placed images, drawn by ``cfg.backgrounds``),
    each with the label file of its background; returns the written images."""
    sources = [s for s in cfg.backgrounds if backgrounds.get(s)]
    if not sources:
        raise ConfigError("overlay.backgrounds", f"names no source with {split} images to stamp")
    weights = np.array([cfg.backgrounds[s] for s in sources], float)
    picks = rng.choice(len(sources), size=count, p=weights / weights.sum())
    written = []
    for k, s in enumerate(picks):
        source = sources[int(s)]
        background = backgrounds[source][int(rng.integers(len(backgrounds[source])))]
        image = cv2.imread(str(background))
        dest = out / "images" / split / "overlay" / f"{k:05d}_{source}_{background.stem}.jpg"
        dest.parent.mkdir(parents=True, exist_ok=True)
        quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        cv2.imwrite(str(dest), stamped_copy(image, rng), [cv2.IMWRITE_JPEG_QUALITY, quality])
        label = out / "labels" / background.relative_to(out / "images").with_suffix(".txt")
        target = out / "labels" / dest.relative_to(out / "images").with_suffix(".txt")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(label.read_text() if label.exists() else "")
        written.append(dest)
    return written
