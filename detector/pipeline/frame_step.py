"""What ``detector run``, ``batch`` and ``live`` do with each sampled frame, in one place.

detect → drop what the static mask covers → report each class at its threshold (a faint detection still asks
the sampler for a closer look) → place on the map → write the evidence frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from detector.camera import CameraModel
from detector.config import Config
from detector.config.pipeline import LocalizeConfig
from detector.detections import Detections
from detector.geo import LocalFrame
from detector.images import write_image
from detector.pipeline.inference import detect_section, load_detector
from detector.pipeline.inference.detector import at_thresholds, class_thresholds
from detector.pipeline.localize import localize
from detector.pipeline.sampler import CloserLook
from detector.pipeline.static_mask import MaskLearner
from detector.records import SampledFrame, Sighting
from detector.store.db import evidence_folder

JPEG_QUALITY = 90

FrameDetector = Callable[[SampledFrame], Detections]


def model_detector(cfg: Config, camera: CameraModel) -> FrameDetector:
    """The configured hazard model, applied to each sampled frame's image (its road region from ``camera``).

    It reports down to ``sampling.focus_conf`` when that is lower than ``detect.conf`` (and the closer look
    is on), so that :func:`screen` can start the closer look on a faint detection.
    """
    look = CloserLook.from_config(cfg.sampling)
    conf = cfg.detect.conf
    if look is not None:
        conf = {c: min(t, look.conf) for c, t in conf.items()}
    model = load_detector(detect_section(cfg, camera), conf=conf)
    return lambda frame: model(frame.image)


def report_thresholds(cfg: Config) -> np.ndarray:
    """The per-class thresholds (``detect.conf``) at which a frame's detections are reported, in class order."""
    return class_thresholds(cfg.detect.conf, list(cfg.detect.classes))


def screen(found: Detections, thresholds: np.ndarray, look: CloserLook | None, distance_m: float) -> Detections:
    """The detections of one frame to report (each at or above its class's threshold); any that ``look`` responds
    to asks the sampler to look closer from ``distance_m`` on."""
    if look is not None:
        look.request(found.confidence, distance_m)
    return at_thresholds(found, thresholds)


@dataclass
class EvidenceFrames:
    """One drive's evidence frames: ``<evidence folder>/<drive folder>/<frame index>.jpg``.

    Written under ``root`` when given; else kept as JPEG bytes (a batch worker that cannot reach the store's
    folder sends them back for the parent to write). ``names`` maps frame index to the name under the root.
    """

    drive_id: str
    root: Path | None
    names: dict[int, str] = field(default_factory=dict)
    jpegs: dict[int, bytes] = field(default_factory=dict)

    def save(self, frame: SampledFrame) -> str:
        name = f"{evidence_folder(self.drive_id)}/{frame.frame_index:08d}.jpg"
        quality = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        if self.root is None:
            ok, data = cv2.imencode(".jpg", frame.image, quality)
            if ok:
                self.jpegs[frame.frame_index] = data.tobytes()
        else:
            (self.root / name).parent.mkdir(parents=True, exist_ok=True)
            write_image(self.root / name, frame.image, quality)
        self.names[frame.frame_index] = name
        return name

    def keep_only(self, frame_indices: set[int]) -> None:
        """Forget (and delete) the frames not in ``frame_indices``."""
        for index in [i for i in self.names if i not in frame_indices]:
            if self.root is not None:
                (self.root / self.names[index]).unlink(missing_ok=True)
            self.names.pop(index)
            self.jpegs.pop(index, None)


@dataclass
class FrameStep:
    """The per-frame step, with what it keeps between frames: the static mask being learnt and the closer look.

    ``closer_look`` is the channel back to the sampler: the same object is handed to the sampler (or live capture).
    """

    detect: FrameDetector
    camera: CameraModel
    classes: list[str]
    localize: LocalizeConfig
    thresholds: np.ndarray
    mask_learner: MaskLearner  # the static mask being learnt from the drive's frames
    closer_look: CloserLook | None  # the channel back to the sampler

    @classmethod
    def from_config(cls, cfg: Config, camera: CameraModel, detect: FrameDetector) -> FrameStep:
        return cls(
            detect=detect,
            camera=camera,
            classes=list(cfg.detect.classes),
            localize=cfg.localize,
            thresholds=report_thresholds(cfg),
            mask_learner=MaskLearner(cfg.mask, camera.mask),
            closer_look=CloserLook.from_config(cfg.sampling),
        )

    def __call__(self, frame: SampledFrame, local: LocalFrame, evidence: EvidenceFrames) -> tuple[int, list[Sighting]]:
        """Detections reported in ``frame`` and its sightings; the frame is saved to ``evidence`` if it has any."""
        self.mask_learner.add(frame.image, frame.distance_m)
        found = screen(self.mask_learner.keep(self.detect(frame)), self.thresholds, self.closer_look, frame.distance_m)
        placed = localize(frame, found, self.classes, self.camera, local, self.localize)
        if placed:
            evidence.save(frame)
        return len(found), placed

    def outside_mask(self, sightings: list[Sighting], evidence: EvidenceFrames, final: bool = False) -> list[Sighting]:
        """``sightings`` without those in the static mask learnt since they were seen (and their evidence frames):
        ``final`` learns it once more from every frame kept, at a drive's end."""
        mask = self.mask_learner.final() if final else self.mask_learner.mask
        if mask is None:
            return sightings
        sightings = mask.drop_sightings(sightings)
        evidence.keep_only({s.frame_index for s in sightings})
        return sightings
