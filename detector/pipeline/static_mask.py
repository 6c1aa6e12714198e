"""Static pixels: what stays put in the frame while the vehicle moves, where no detection is kept.

A dashcam burns date, time and speed into every frame, a maker's logo sits in a corner, the bonnet and the
dashboard's reflection fill the bottom. None of them moves with the road, and a detection on one rides along with
the vehicle: a new false hazard every few metres. Two cues find them in frames taken metres apart:

* **fixed edges**: where the image gradient keeps its direction and strength from frame to frame, the structure is
  fixed to the camera (the strokes of text, a logo's outline, the bonnet's edge). Text changes its digits every
  second, so the fixed strokes of each line are grown into the line's whole box, digits included;
* **flat and unchanging**: a region touching the bottom of the frame whose pixels barely change (the bonnet, a
  black border).

:func:`find_static` works on a few dozen frames taken metres apart; :class:`MaskLearner` keeps them as a drive
is sampled (no extra decoding) and learns the mask once it has enough, then again as more come, so run, batch and
live mode share one way of doing it. A camera profile can also name regions (``mask``); :class:`StaticMask`
holds the union.

>>> mask = StaticMask.from_regions(((0.0, 0.9, 0.5, 1.0),), 200, 100)
>>> round(mask.fraction, 3)
0.05
>>> from detector.detections import Detections
>>> boxes = Detections(np.array([[10, 92, 40, 99], [10, 40, 40, 60]], np.float32), np.ones(2, np.float32), np.zeros(2))
>>> mask.covers(boxes).tolist()
[True, False]
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from detector.config.pipeline import MaskConfig
from detector.detections import Detections

WORK_WIDTH = 960  # frames are measured at this width: small text keeps its strokes, the work stays small


@dataclass(frozen=True)
class StaticMask:
    """A bool mask of the frame's static pixels (True: no detection kept there), at the frames' own size."""

    pixels: np.ndarray

    @classmethod
    def from_regions(cls, regions, width: int, height: int) -> StaticMask:
        """Regions (left, top, right, bottom fractions) as a mask of ``width`` x ``height``."""
        pixels = np.zeros((height, width), bool)
        for left, top, right, bottom in regions:
            pixels[round(top * height) : round(bottom * height), round(left * width) : round(right * width)] = True
        return cls(pixels)

    def __or__(self, other: StaticMask) -> StaticMask:
        other_pixels = other.pixels
        if other_pixels.shape != self.pixels.shape:
            h, w = self.pixels.shape
            other_pixels = cv2.resize(other_pixels.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
        return StaticMask(self.pixels | other_pixels)

    @property
    def fraction(self) -> float:
        """Share of the frame masked."""
        return float(self.pixels.mean()) if self.pixels.size else 0.0

    def covers(self, found: Detections) -> np.ndarray:
        """Per box: is its centre masked, or half of it? (Pixel coordinates of a frame of the mask's size.)"""
        if not len(found) or not self.pixels.any():
            return np.zeros(len(found), bool)
        h, w = self.pixels.shape
        integral = cv2.integral(self.pixels.astype(np.uint8))
        x1, y1, x2, y2 = (
            np.clip(np.round(c), 0, lim).astype(int) for c, lim in zip(found.xyxy.T, (w, h, w, h), strict=True)
        )
        area = np.maximum((x2 - x1) * (y2 - y1), 1)
        inside = integral[y2, x2] - integral[y1, x2] - integral[y2, x1] + integral[y1, x1]
        cx = np.clip(((x1 + x2) // 2), 0, w - 1)
        cy = np.clip(((y1 + y2) // 2), 0, h - 1)
        return self.pixels[cy, cx] | (inside >= 0.5 * area)

    def drop_sightings(self, sightings: list) -> list:
        """The sightings (anything with a frame-pixel ``bbox``) whose box the mask does not cover."""
        if not sightings or not self.pixels.any():
            return list(sightings)
        boxes = np.array([s.bbox for s in sightings], np.float32).reshape(-1, 4)
        covered = self.covers(Detections(boxes, np.ones(len(boxes), np.float32), np.zeros(len(boxes), np.int64)))
        return [s for s, c in zip(sightings, covered, strict=True) if not c]

    def keep(self, found: Detections) -> Detections:
        """The detections outside the mask."""
        return found[~self.covers(found)] if len(found) else found


def _grey(frame: np.ndarray) -> np.ndarray:
    grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if grey.shape[1] == WORK_WIDTH:
        return grey
    scale = WORK_WIDTH / grey.shape[1]
    return cv2.resize(grey, (WORK_WIDTH, max(1, round(grey.shape[0] * scale))), interpolation=cv2.INTER_AREA)


def fixed_edges(greys: np.ndarray, level: float) -> np.ndarray:
    """Edges fixed to the camera: where the gradient, averaged as a vector over the frames, stays strong. A moving
    scene's gradients point every way and cancel; a stamp's (even a semi-transparent one) keep their direction."""
    sx = np.zeros(greys.shape[1:], np.float32)
    sy = np.zeros_like(sx)
    for grey in greys:
        sx += cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
        sy += cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    return np.hypot(sx, sy) / len(greys) > level


def _text_lines(fixed: np.ndarray, min_strokes: int = 6) -> np.ndarray:
    """Fixed strokes grown into the boxes of their lines, digits between them included.

    Stamps are drawn level whatever the camera's roll: a line of text is a short, wide band that a row through it
    crosses stroke after stroke. A straight road's kerbs and lane lines also keep still while the vehicle drives
    straight on, but a row crosses them once or twice, and they are left out. A short word beside a line (the "X"
    of a logo) joins it.
    """
    h, w = fixed.shape
    out = np.zeros_like(fixed)
    strokes = fixed.astype(np.uint8)
    joined = cv2.morphologyEx(strokes, cv2.MORPH_CLOSE, np.ones((5, max(9, w // 60)), np.uint8))
    _, _, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    lines, rest = [], []
    for x, y, bw, bh, area in stats[1:]:
        if bh > 0.12 * h or area < 12:
            continue
        rows = strokes[y : y + bh, x : x + bw].astype(np.int8)
        crossings = int((np.diff(rows, axis=1) == 1).sum(axis=1).max()) if bw > 1 else 0
        text_like = bw >= bh and area >= 0.25 * bw * bh and crossings >= min_strokes
        (lines if text_like else rest).append((x, y, bw, bh))
    for x, y, bw, bh in rest:  # beside a line, level with it: part of it
        for lx, ly, lw, lh in lines:
            overlap = min(y + bh, ly + lh) - max(y, ly)
            gap = max(lx - (x + bw), x - (lx + lw))
            if overlap >= 0.5 * min(bh, lh) and gap <= 2 * lh and bh <= 1.5 * lh:
                lines.append((x, y, bw, bh))
                break
    for x, y, bw, bh in lines:
        pad = max(2, bh // 3)
        out[max(0, y - pad) : y + bh + pad, max(0, x - pad) : x + bw + pad] = True
    return out


def _still_bottom(greys: np.ndarray, level: float) -> np.ndarray:
    """Unchanging regions that touch the bottom of the frame and are large (the bonnet, a border), with their
    rim. Measured on the lower half at half resolution: a bonnet rises no higher, and the medians are the costly
    part of learning."""
    h, w = greys.shape[1:]
    lower = greys[:, h // 2 :: 2, ::2]
    median = np.median(lower, axis=0)
    deviation = np.median(np.abs(lower - median), axis=0)
    still = cv2.morphologyEx((deviation < level).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(still, connectivity=4)
    sh, sw = still.shape
    found = np.zeros((sh, sw), np.uint8)
    for i in range(1, count):
        _, y, _, bh, area = stats[i]
        if y + bh >= sh - 1 and area >= 0.006 * sh * sw:
            found[labels == i] = 1
    found = cv2.dilate(found, np.ones((4, 4), np.uint8))
    out = np.zeros((h, w), bool)
    out[h // 2 :] = cv2.resize(found, (w, h - h // 2), interpolation=cv2.INTER_NEAREST) > 0
    return out


def find_static(frames: list[np.ndarray], settings: MaskConfig) -> np.ndarray | None:
    """The static pixels of ``frames`` (BGR or grey, taken metres apart) as a bool mask of their size; None when
    there are too few frames to tell, or when so much looks static that the frames cannot have moved."""
    if len(frames) < settings.min_frames:
        return None
    height, width = frames[0].shape[:2]
    greys = np.stack([_grey(f) for f in frames]).astype(np.float32)
    small = _text_lines(fixed_edges(greys, settings.edge_level)) | _still_bottom(greys, settings.still_level)
    if small.mean() > settings.max_fraction:
        return None
    return cv2.resize(small.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0


class MaskLearner:
    """Learns a drive's static pixels from its sampled frames as they come, on top of the profile's regions.

    :meth:`add` each sampled frame with the odometer; :attr:`mask` is the best mask so far (the profile's regions
    until enough frames are kept). Detections of frames before the first learning are filtered again at the end
    with :meth:`final`.
    """

    def __init__(self, settings: MaskConfig, regions=()) -> None:
        self.settings = settings
        self.regions = tuple(regions)
        self._frames: list[np.ndarray] = []
        self._last_m = -np.inf
        self._since = 0
        self._learnt: np.ndarray | None = None
        self.mask: StaticMask | None = None
        self.size: tuple[int, int] | None = None

    def add(self, image: np.ndarray, distance_m: float) -> None:
        h, w = image.shape[:2]
        if self.size is None:
            self.size = (w, h)
            self.mask = StaticMask.from_regions(self.regions, w, h)
        if not self.settings.learn or distance_m - self._last_m < self.settings.spacing_m:
            return
        self._last_m = distance_m
        self._frames = [*self._frames[-(self.settings.frames - 1) :], _grey(image)]
        self._since += 1
        if len(self._frames) >= self.settings.min_frames and self._since >= self.settings.relearn_every:
            self._learn()

    def _learn(self) -> None:
        self._since = 0
        learnt = find_static(self._frames, self.settings)
        if learnt is None or self.size is None:
            return
        w, h = self.size
        self._learnt = cv2.resize(learnt.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
        self.mask = StaticMask.from_regions(self.regions, w, h) | StaticMask(self._learnt)

    def keep(self, found: Detections) -> Detections:
        """``found`` without what the mask so far covers."""
        return self.mask.keep(found) if self.mask is not None else found

    def final(self) -> StaticMask | None:
        """The mask learnt from every frame kept (None before any frame)."""
        if self._since and len(self._frames) >= self.settings.min_frames:
            self._learn()
        return self.mask

    @property
    def learnt(self) -> bool:
        return self._learnt is not None
