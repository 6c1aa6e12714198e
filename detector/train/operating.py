"""Operating points on real images: what each per-class threshold finds, and what it flags that is not there.

Real labels are loose (a box around a ravelled patch, several boxes for one pothole), so a detection counts as
finding a labelled box when its centre falls inside it, one detection per box, the most confident first; the
usual IoU >= 0.5 match is reported beside it. A detection that finds no box is false.

A class's *hazard-free* images are those with no box of it: for potholes the empty images of a set, for fallen
signs every real image (no real set shows one). Their false detections are counted per 100 images, on the whole
frame (what ``detector detect`` shows) and in the road region (what the pipeline searches).

:func:`score_set` runs the detectors once per image down to a floor confidence; :func:`operating_point` then
reads any threshold off the stored boxes, and :func:`choose_thresholds` applies the written rule (the model card's
"Thresholds").

>>> truth = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], float)
>>> boxes = np.array([[2, 2, 8, 8], [3, 3, 9, 9], [40, 0, 50, 10]], float)
>>> match_centres(boxes, truth).tolist()  # the second detection's centre is in the first box, already taken
[0, -1, -1]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from detector.detections import Detections, box_iou, centres_in
from detector.train.evaluate import labelled

THRESHOLDS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
GRID = tuple(round(0.05 * k, 2) for k in range(1, 20))  # thresholds the rule may choose


@dataclass(frozen=True)
class ScoredImage:
    """One validation image: its labelled boxes (``truth``, confidence 1) and the detector's, whole frame and road
    region, down to the floor confidence they were run at."""

    path: Path
    truth: Detections
    whole: Detections
    road: Detections


def _truth(rows: np.ndarray, width: int, height: int) -> Detections:
    cx, cy, w, h = rows[:, 1:5].T
    xyxy = np.column_stack([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height])
    return Detections(xyxy.astype(np.float32), np.ones(len(rows), np.float32), rows[:, 0].astype(np.int64))


def score_set(data_yaml: Path, whole, road, progress: bool = True, desc: str = "") -> list[ScoredImage]:
    """Every validation image of ``data_yaml`` through the ``whole``-frame and ``road``-region detectors."""
    out = []
    for path, rows in tqdm(labelled(data_yaml), desc=desc or data_yaml.stem, unit="img", disable=not progress):
        image = cv2.imread(str(path))
        if image is None:
            continue
        h, w = image.shape[:2]
        out.append(ScoredImage(path, _truth(rows, w, h), whole(image), road(image)))
    return out


def match_centres(boxes: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """For each detection (in the order given, most confident first), the index of the labelled box it finds, or
    -1: the first box not yet found that holds the detection's centre."""
    taken = np.zeros(len(truth), bool)
    found = np.full(len(boxes), -1)
    holds = centres_in(boxes, truth)
    for i in range(len(boxes)):
        inside = holds[i] & ~taken
        if inside.any():
            j = int(np.flatnonzero(inside)[0])
            taken[j] = True
            found[i] = j
    return found


def match_iou(boxes: np.ndarray, truth: np.ndarray, min_iou: float = 0.5) -> np.ndarray:
    """As :func:`match_centres`, by the best overlap of at least ``min_iou`` with a box not yet found."""
    taken = np.zeros(len(truth), bool)
    found = np.full(len(boxes), -1)
    for i, box in enumerate(boxes):
        if not len(truth):
            break
        iou = np.where(taken, 0.0, box_iou(box, truth))
        j = int(np.argmax(iou))
        if iou[j] >= min_iou:
            taken[j] = True
            found[i] = j
    return found


@dataclass(frozen=True)
class OperatingPoint:
    """One class on one set at one threshold."""

    conf: float
    boxes: int  # labelled boxes of the class
    detections: int  # whole frame, at or above ``conf``
    found_centre: int  # boxes found by a detection's centre (one each)
    found_iou: int  # boxes found at IoU >= 0.5
    hazard_free: int  # images with no box of the class
    false_whole: int  # detections on those images, whole frame
    false_road: int  # the same, road region
    flagged_whole: int  # those images with any such detection, whole frame
    flagged_road: int

    @property
    def recall(self) -> float:
        return self.found_centre / self.boxes if self.boxes else float("nan")

    @property
    def precision(self) -> float:
        return self.found_centre / self.detections if self.detections else float("nan")

    @property
    def recall_iou(self) -> float:
        return self.found_iou / self.boxes if self.boxes else float("nan")

    @property
    def precision_iou(self) -> float:
        return self.found_iou / self.detections if self.detections else float("nan")

    @property
    def false_per_100_whole(self) -> float:
        return 100 * self.false_whole / self.hazard_free if self.hazard_free else float("nan")

    @property
    def false_per_100_road(self) -> float:
        return 100 * self.false_road / self.hazard_free if self.hazard_free else float("nan")


def _of(d: Detections, class_id: int, conf: float) -> Detections:
    keep = (d.class_id == class_id) & (d.confidence >= conf)
    d = d[keep]
    return d[np.argsort(-d.confidence, kind="stable")]


def operating_point(images: list[ScoredImage], class_id: int, conf: float) -> OperatingPoint:
    """Count what ``conf`` finds and flags for ``class_id`` over ``images``."""
    boxes = detections = found_c = found_i = free = false_w = false_r = flag_w = flag_r = 0
    for im in images:
        truth = im.truth.xyxy[im.truth.class_id == class_id]
        whole = _of(im.whole, class_id, conf)
        boxes += len(truth)
        detections += len(whole)
        if len(truth):
            found_c += int((match_centres(whole.xyxy, truth) >= 0).sum())
            found_i += int((match_iou(whole.xyxy, truth) >= 0).sum())
        else:
            road = _of(im.road, class_id, conf)
            free += 1
            false_w += len(whole)
            false_r += len(road)
            flag_w += len(whole) > 0
            flag_r += len(road) > 0
    return OperatingPoint(conf, boxes, detections, found_c, found_i, free, false_w, false_r, flag_w, flag_r)


@dataclass(frozen=True)
class ThresholdRule:
    """The written rule for per-class thresholds (``models/MODEL_CARD.md``, "Thresholds").

    * ``fallen_sign``: the lowest threshold at which the real images (every one hazard-free for signs) get at most
      ``max_false_signs_per_100`` false fallen signs per 100 images, whole frame, on every real set pooled and on
      the stamped set alone;
    * ``pothole``: the lowest threshold at which the centre-matched precision on each vehicle set reaches its
      floor in ``min_pothole_precision`` (plus ``margin``, since an unseen city is harder than a held-out road).
    """

    max_false_signs_per_100: float = 1.0
    min_pothole_precision: tuple[tuple[str, float], ...] = (("rdd2022-india", 0.75), ("dnit", 0.70))
    margin: float = 0.0


def pooled(sets: dict[str, list[ScoredImage]], names: list[str]) -> list[ScoredImage]:
    return [im for name in names if name in sets for im in sets[name]]


def choose_thresholds(
    sets: dict[str, list[ScoredImage]], classes: list[str], real: list[str], stamped: list[str], rule: ThresholdRule
) -> dict[str, float | None]:
    """Per class, the threshold ``rule`` picks on the scored ``sets`` (``real``: the real sets' names; ``stamped``:
    those of real images with a dashcam stamp burned in); None where no threshold on :data:`GRID` satisfies it."""
    chosen: dict[str, float | None] = {}
    sign = classes.index("fallen_sign")
    groups = [g for g in (pooled(sets, real), pooled(sets, stamped)) if g]
    chosen["fallen_sign"] = next(
        (
            t
            for t in GRID
            if all(operating_point(g, sign, t).false_per_100_whole <= rule.max_false_signs_per_100 for g in groups)
        ),
        None,
    )
    pothole = classes.index("pothole")
    floors = [(sets[name], floor + rule.margin) for name, floor in rule.min_pothole_precision if name in sets]
    chosen["pothole"] = next(
        (t for t in GRID if all(operating_point(s, pothole, t).precision >= floor for s, floor in floors)), None
    )
    return chosen
