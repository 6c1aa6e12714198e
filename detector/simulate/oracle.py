"""What a perfect detector would report on a simulated drive: the true hazards projected through the true pose.

Benchmarks use it to isolate the localizer and deduplicator from the model: each box stands upright on its
hazard's true ground point, so the localizer gets exactly the contact point it looks for. Where the class list has
``traffic_sign``, it also reports every sign plate in view, standing or not (``signs.geojson``): the plate's true
image box, as a sign detector draws it, for the sign inventory (:mod:`detector.pipeline.signs`). What the camera shows
(a leaning sign's plate hangs above its ground point) is in the drive's ``labels.csv``: see
:mod:`detector.simulate.labels`, which labels the training frames.

>>> truth = load_truth(Path("sample_footage/truth.geojson"))  # doctest: +SKIP
>>> from detector.camera import load_camera
>>> camera = load_camera("configs/cameras/sim_dashcam.yaml")
>>> oracle = Oracle(Path("sample_footage"), truth, camera, local)  # doctest: +SKIP
>>> oracle.boxes(frame.utc)  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import numpy as np

from detector.camera import CameraModel, within_range
from detector.config import Config
from detector.detections import Detections
from detector.geo import LocalFrame, ahead_and_right
from detector.records import SampledFrame

CLASSES = ("pothole", "fallen_sign")
SIGN_CLASS = "traffic_sign"
MIN_PLATE_BOX_PX = (4.0, 3.0)  # a plate drawn narrower or shorter than this (width, height) is a sliver: not reported


def load_truth(path: Path) -> list[dict]:
    """The hazards of ``truth.geojson``: id, class, lat, lon, width in metres and where it lies (``pose`` of a
    fallen sign, else ``on``: road or pavement)."""
    return [
        {"id": f["properties"].get("id", ""), "class": f["properties"]["class"], "lon": f["geometry"]["coordinates"][0],
         "lat": f["geometry"]["coordinates"][1], "width": f["properties"].get("width_m", 0.5),
         "lies": f["properties"].get("pose") or f["properties"].get("on", "")}
        for f in json.loads(path.read_text())["features"]
    ]  # fmt: skip


def load_plates(path: Path) -> list[dict]:
    """The sign plates of ``signs.geojson`` still there (not taken away): id, pose and the plate's corners as
    ``[lon, lat, z]``; none when the file is missing (a drive simulated before signs were written)."""
    if not path.is_file():
        return []
    return [
        {"id": f["properties"]["id"], "pose": f["properties"]["pose"], "plate": np.array(f["properties"]["plate"])}
        for f in json.loads(path.read_text())["features"]
        if "plate" in f["properties"]
    ]


class Oracle:
    """Boxes for the true hazards ``min_range_m``-``max_range_m`` ahead (and no farther away), from the true pose
    (``trajectory.csv``); and, when ``classes`` has ``traffic_sign``, the image boxes of the sign plates
    (``plates``: :func:`load_plates`) whose centre lies in that range.

    ``classes``: the detector's class list (a box's class id is its index there); ``emit``: the classes reported
    (default: all of them; a benchmark of the sign geometry leaves ``fallen_sign`` out, so that only the plates'
    geometry can find a fallen sign). ``views`` counts, per hazard, the frames it was reported in; ``plate_views``
    per plate.
    """

    def __init__(
        self,
        folder: Path,
        truth: list[dict],
        camera: CameraModel,
        local: LocalFrame,
        min_range_m: float = 3.0,
        max_range_m: float = 30.0,
        confidence: float = 0.9,
        classes: tuple[str, ...] = CLASSES,
        emit: tuple[str, ...] | None = None,
        plates: list[dict] | None = None,
    ) -> None:
        rows = list(csv.DictReader((folder / "trajectory.csv").open()))
        self.t = np.array([datetime.fromisoformat(r["time"].replace("Z", "+00:00")).timestamp() for r in rows])
        self.x, self.y = local.to_xy([float(r["lat"]) for r in rows], [float(r["lon"]) for r in rows])
        self.heading = np.unwrap(np.radians([float(r["heading"]) for r in rows]))
        self.truth = truth
        self.hx, self.hy = local.to_xy([h["lat"] for h in truth], [h["lon"] for h in truth])
        self.camera = camera
        self.range_m = (min_range_m, max_range_m)
        self.confidence = confidence
        self.views = np.zeros(len(truth), int)
        self.classes = tuple(classes)
        self.emit = set(self.classes if emit is None else emit) & set(self.classes)
        self.plates = plates if SIGN_CLASS in self.emit and plates else []
        corners = np.concatenate([p["plate"] for p in self.plates]) if self.plates else np.zeros((0, 3))
        px, py = local.to_xy(corners[:, 1], corners[:, 0])
        self.plate_xyz = np.column_stack([px, py, corners[:, 2]]).reshape(-1, 4, 3)
        self.plate_views = np.zeros(len(self.plates), int)
        self.plate_widths: list[list[float]] = [[] for _ in self.plates]  # each plate's box widths, frame pixels

    def boxes(self, utc: float, size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pixel boxes (N, 4) ``x1 y1 x2 y2`` and class ids (N,) of the hazards in view at ``utc``, in a frame of
        ``size`` (width, height; default: the camera profile's)."""
        camera = self.camera.scaled_to(*size) if size else self.camera
        x, y = np.interp(utc, self.t, self.x), np.interp(utc, self.t, self.y)
        h = np.degrees(np.interp(utc, self.t, self.heading))
        ahead, aside = ahead_and_right(np.column_stack([self.hx, self.hy]), [[x, y]], [h])
        near = within_range(ahead[:, 0], aside[:, 0], self.range_m)
        boxes, classes = [], []
        for k, hz in enumerate(self.truth):
            if not near[k] or hz["class"] not in self.emit:
                continue
            fwd, right = float(ahead[k, 0]), float(aside[k, 0])
            half = hz["width"] / 2
            if hz["class"] == "pothole":  # flat footprint
                u, v = camera.ground_to_pixel(
                    fwd + np.array([-half, -half, half, half]), right + np.array([-half, half, -half, half])
                )
            else:  # standing on its base point
                u, v = camera.ground_to_pixel(np.full(4, fwd), right + np.array([-half, half, -half, half]),
                                                   up=np.array([0, 0, 2 * half, 2 * half]))  # fmt: skip
            if u.min() < 0 or u.max() >= camera.width or v.max() >= camera.height:
                continue
            self.views[k] += 1
            boxes.append([u.min(), v.min(), u.max(), v.max()])
            classes.append(self.classes.index(hz["class"]))
        for k, box in self._plate_boxes(camera, x, y, h):
            self.plate_views[k] += 1
            self.plate_widths[k].append(box[2] - box[0])
            boxes.append(box)
            classes.append(self.classes.index(SIGN_CLASS))
        return np.array(boxes, np.float32).reshape(-1, 4), np.array(classes, int)

    def _plate_boxes(self, camera: CameraModel, x: float, y: float, heading: float) -> list[tuple[int, list[float]]]:
        """(plate index, box) of the plates in range and wholly inside the frame, drawn larger than a sliver."""
        if not len(self.plate_xyz):
            return []
        ahead, aside = ahead_and_right(self.plate_xyz[:, :, :2].reshape(-1, 2), [[x, y]], [heading])
        ahead, aside = ahead.reshape(-1, 4), aside.reshape(-1, 4)
        near = within_range(ahead.mean(axis=1), aside.mean(axis=1), self.range_m) & (ahead.min(axis=1) > 0.5)
        out = []
        for k in np.flatnonzero(near):
            u, v = camera.ground_to_pixel(ahead[k], aside[k], up=self.plate_xyz[k, :, 2])
            if not (np.isfinite(u).all() and np.isfinite(v).all()):
                continue
            if u.min() < 0 or v.min() < 0 or u.max() >= camera.width or v.max() >= camera.height:
                continue
            if u.max() - u.min() < MIN_PLATE_BOX_PX[0] or v.max() - v.min() < MIN_PLATE_BOX_PX[1]:
                continue
            out.append((int(k), [float(u.min()), float(v.min()), float(u.max()), float(v.max())]))
        return out

    def __call__(self, frame: SampledFrame) -> Detections:
        boxes, classes = self.boxes(frame.utc, (frame.image.shape[1], frame.image.shape[0]))
        if not len(boxes):
            return Detections.empty()
        return Detections(boxes, np.full(len(boxes), self.confidence, np.float32), classes)


class FixedPixelFiring:
    """A detector fooled by what rides along with the camera: the oracle's boxes, and in every frame a box of each
    class on each of ``blobs`` (x1, y1, x2, y2 as fractions of the frame), as a model that takes them for hazards
    would report. What it adds must never become a hazard.

    * :meth:`on_static`: the blobs of the drive's ``static.png`` (the stamp's lines, the logo, the bonnet): the
      static mask's test;
    * :meth:`on_shadow`: where the vehicle's own shadow falls in a low sun, the road just ahead, whose pixels change
      with the road under it (no mask can learn it): the deduplicator's ride-along test.

    >>> firing = FixedPixelFiring.on_static(oracle, Path("drive/static.png"))  # doctest: +SKIP
    """

    SHADOW = (0.40, 0.80, 0.60, 0.90)

    def __init__(self, oracle: Oracle, blobs: np.ndarray, confidence: float = 0.9) -> None:
        self.oracle = oracle
        self.blobs = np.asarray(blobs, np.float32).reshape(-1, 4)
        self.confidence = confidence

    @classmethod
    def on_static(cls, oracle: Oracle, static_png: Path, confidence: float = 0.9) -> FixedPixelFiring:
        import cv2

        fixed = cv2.imread(str(static_png), cv2.IMREAD_GRAYSCALE)
        if fixed is None:
            raise FileNotFoundError(static_png)
        joined = cv2.dilate((fixed > 0).astype(np.uint8), np.ones((5, 15), np.uint8))  # letters into lines
        count, _, stats, _ = cv2.connectedComponentsWithStats(joined)
        blobs = [(x, y, x + w, y + h) for x, y, w, h, area in stats[1:count] if area >= 30]
        size = np.array(fixed.shape[::-1] * 2, np.float32)
        return cls(oracle, np.array(blobs, np.float32).reshape(-1, 4) / size, confidence)

    @classmethod
    def on_shadow(cls, oracle: Oracle, confidence: float = 0.9) -> FixedPixelFiring:
        return cls(oracle, np.array([cls.SHADOW]), confidence)

    def __call__(self, frame: SampledFrame) -> Detections:
        h, w = frame.image.shape[:2]
        count = len(self.oracle.classes)
        fake = np.repeat(self.blobs * np.array([w, h, w, h], np.float32), count, axis=0)
        fooled = Detections(
            fake, np.full(len(fake), self.confidence, np.float32), np.tile(np.arange(count), len(self.blobs))
        )
        return Detections.merge([self.oracle(frame), fooled])


class PlatesAsFallen:
    """A detector that takes sign plates for fallen signs, as v11 does: the oracle's boxes, and every sign plate in
    view, standing or not, reported as a ``fallen_sign`` box (the plate's true image box). A standing plate among
    them must never become a fallen-sign hazard; a fallen one must.

    >>> detect = PlatesAsFallen(Path("drive/drive.mp4"), load_config())  # doctest: +SKIP
    """

    def __init__(self, video: Path, cfg: Config, confidence: float = 0.9) -> None:
        classes = tuple(cfg.detect.classes)
        self.oracle = oracle_for(video, cfg, classes=(*classes, SIGN_CLASS))
        self.oracle.confidence = confidence
        self.fallen, self.plate = classes.index("fallen_sign"), len(classes)

    def __call__(self, frame: SampledFrame) -> Detections:
        found = self.oracle(frame)
        if not len(found):
            return found
        classes = np.where(found.class_id == self.plate, self.fallen, found.class_id)
        return Detections(found.xyxy, found.confidence, classes)


def oracle_for(
    video: Path, cfg: Config, emit: tuple[str, ...] | None = None, classes: tuple[str, ...] | None = None,
    **limits: float,
) -> Oracle:  # fmt: skip
    """The oracle of a simulated drive, from the ``truth.geojson``, ``trajectory.csv`` and ``signs.geojson`` beside
    its video, for ``cfg``'s classes or ``classes`` (``emit``: those it reports, default all).

    ``limits``: ``min_range_m`` and ``max_range_m`` of what it reports.
    """
    from detector.camera import configured_profile, load_camera
    from detector.errors import InputError

    folder = Path(video).parent
    for name in ("truth.geojson", "trajectory.csv"):
        if not (folder / name).is_file():
            raise InputError(folder / name, "not found: the oracle detector needs a simulated drive's ground truth")
    truth = load_truth(folder / "truth.geojson")
    lat, lon = (np.median([t[k] for t in truth]) if truth else 0.0 for k in ("lat", "lon"))
    local = LocalFrame(float(lat), float(lon))
    camera = load_camera(configured_profile(cfg.drive.camera, Path(video)))
    plates = load_plates(folder / "signs.geojson")
    classes = tuple(cfg.detect.classes) if classes is None else classes
    return Oracle(folder, truth, camera, local, classes=classes, emit=emit, plates=plates, **limits)
