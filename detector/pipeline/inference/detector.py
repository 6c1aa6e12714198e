"""The hazard detector: road region, letterbox, a backend's forward pass, decoding and NMS.

Vehicle frames carry hazards below the horizon only, so the network sees the road region
(``detect.roi``), optionally split into overlapping ``detect.tiles`` side by side to give
small potholes more pixels, each tile scaled so its long side is ``detect.imgsz``. With
``detect.flip`` each tile is also seen mirrored, in the same batch, and the boxes of both passes
go through one NMS: a hazard the network misses one way round may be found the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detector.camera import CameraModel, configured_profile, load_camera
from detector.config import Config
from detector.config.pipeline import DetectConfig, RoadRegionConfig
from detector.detections import Detections
from detector.errors import ConfigError, InputError
from detector.pipeline.inference.backends import Backend, load_backend
from detector.project import PROJECT

PAD_VALUE = 114  # Ultralytics' letterbox grey


@dataclass(frozen=True)
class RoadRegion:
    """A rectangle as fractions of the frame: ``top`` 0.4 means from 40% of the height down."""

    top: float = 0.0
    bottom: float = 1.0
    left: float = 0.0
    right: float = 1.0

    def pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        x1, x2 = round(self.left * width), round(self.right * width)
        y1, y2 = round(self.top * height), round(self.bottom * height)
        return x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)


@dataclass(frozen=True)
class _Tile:
    x0: int
    y0: int
    scale: float
    pad_x: int
    pad_y: int
    input_width: int
    mirrored: bool = False


def tile_boxes(region: tuple[int, int, int, int], tiles: int, overlap: float = 0.15) -> list[tuple[int, int, int, int]]:
    """Split ``(x1, y1, x2, y2)`` into ``tiles`` equal columns overlapping by ``overlap`` of a tile.

    >>> tile_boxes((0, 0, 100, 50), 2, overlap=0.2)
    [(0, 0, 56, 50), (44, 0, 100, 50)]
    """
    x1, y1, x2, y2 = region
    if tiles <= 1:
        return [region]
    width = (x2 - x1) / (tiles - (tiles - 1) * overlap)
    step = width * (1 - overlap)
    return [(round(x1 + i * step), y1, round(x1 + i * step + width), y2) for i in range(tiles)]


def letterbox(image: np.ndarray, scale: float, height: int, width: int) -> tuple[np.ndarray, int, int]:
    """BGR ``image`` scaled by ``scale`` and centred on a ``height`` x ``width`` canvas of the letterbox grey, as
    the networks take it (RGB, channels first, uint8); with the left and top padding.

    >>> chw, pad_x, pad_y = letterbox(np.zeros((20, 40, 3), np.uint8), 0.5, 32, 32)
    >>> chw.shape, pad_x, pad_y, int(chw[0, 0, 0]), int(chw[0, 16, 16])
    ((3, 32, 32), 6, 11, 114, 0)
    """
    h, w = image.shape[:2]
    rw, rh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    pad_x, pad_y = (width - rw) // 2, (height - rh) // 2
    canvas = np.full((height, width, 3), PAD_VALUE, np.uint8)
    canvas[pad_y : pad_y + rh, pad_x : pad_x + rw] = resized
    return canvas[:, :, ::-1].transpose(2, 0, 1), pad_x, pad_y


def class_thresholds(conf: float | dict[str, float], classes: list[str]) -> np.ndarray:
    """Per-class thresholds in class order, from one number for all or a mapping class -> threshold.

    >>> class_thresholds({"pothole": 0.3, "fallen_sign": 0.5}, ["pothole", "fallen_sign"]).tolist()
    [0.3, 0.5]
    >>> class_thresholds(0.4, ["pothole", "fallen_sign"]).tolist()
    [0.4, 0.4]
    """
    if isinstance(conf, dict):
        missing = [c for c in classes if c not in conf]
        if missing:
            raise ConfigError("detect.conf", f"no threshold for {', '.join(missing)}")
        return np.array([float(conf[c]) for c in classes])
    return np.full(len(classes), float(conf))


def at_thresholds(found: Detections, thresholds: np.ndarray) -> Detections:
    """The detections at or above their own class's threshold."""
    return found[found.confidence >= thresholds[found.class_id]]


class HazardDetector:
    """Find hazards in BGR frames; returns :class:`Detections` in frame pixels.

    ``conf`` is one threshold for every class or a mapping class -> threshold.
    """

    def __init__(
        self,
        backend: Backend,
        classes: list[str],
        conf: float | dict[str, float] = 0.25,
        iou: float = 0.5,
        imgsz: int = 640,
        roi: RoadRegion | None = None,
        tiles: int = 1,
        flip: bool = False,
        source: str = "model",
    ) -> None:
        if list(backend.names)[: len(classes)] != list(classes):
            raise InputError(
                source,
                f"model classes {list(backend.names)} do not match the configured classes {list(classes)}",
            )
        self.backend = backend
        self.classes = list(classes)
        # A model may know more classes after the configured ones (competing classes: cracks, repairs). A box whose
        # best class is one of them is no hazard: its threshold is infinite, so it is never reported.
        competing = np.full(len(backend.names) - len(classes), np.inf)
        self.thresholds = np.concatenate([class_thresholds(conf, self.classes), competing])
        self.iou = iou
        self.imgsz = imgsz
        self.roi = roi or RoadRegion()
        self.tiles = tiles
        self.flip = flip

    def _input_shape(self, w: int, h: int) -> tuple[float, int, int]:
        """Scale and padded (height, width) for a crop of ``w`` x ``h``."""
        if self.backend.input_size is not None:
            ih, iw = self.backend.input_size
            return min(iw / w, ih / h), ih, iw
        scale = self.imgsz / max(w, h)
        stride = self.backend.stride
        nh = int(np.ceil(round(h * scale) / stride) * stride)
        nw = int(np.ceil(round(w * scale) / stride) * stride)
        return scale, nh, nw

    def _prepare(self, image: np.ndarray) -> tuple[np.ndarray, list[_Tile]]:
        height, width = image.shape[:2]
        crops = tile_boxes(self.roi.pixels(width, height), self.tiles)
        batch, tiles = [], []
        for x1, y1, x2, y2 in crops:
            scale, ih, iw = self._input_shape(x2 - x1, y2 - y1)
            chw, pad_x, pad_y = letterbox(image[y1:y2, x1:x2], scale, ih, iw)
            batch.append(chw)
            tiles.append(_Tile(x1, y1, scale, pad_x, pad_y, iw))
            if self.flip:
                batch.append(chw[:, :, ::-1])
                tiles.append(_Tile(x1, y1, scale, pad_x, pad_y, iw, mirrored=True))
        return np.ascontiguousarray(np.stack(batch), dtype=np.float32) / 255.0, tiles

    def _decode(self, raw: np.ndarray, tile: _Tile) -> Detections:
        pred = raw.T  # (anchors, 4 + classes)
        scores = pred[:, 4:]
        class_id = scores.argmax(1)
        confidence = scores[np.arange(len(scores)), class_id]
        keep = confidence >= self.thresholds[class_id]
        cx, cy, w, h = pred[keep, :4].T
        if tile.mirrored:
            cx = tile.input_width - cx
        xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        xyxy[:, [0, 2]] = (xyxy[:, [0, 2]] - tile.pad_x) / tile.scale + tile.x0
        xyxy[:, [1, 3]] = (xyxy[:, [1, 3]] - tile.pad_y) / tile.scale + tile.y0
        return Detections(xyxy.astype(np.float32), confidence[keep].astype(np.float32), class_id[keep])

    def __call__(self, image: np.ndarray) -> Detections:
        batch, tiles = self._prepare(image)
        if self.backend.dynamic or len(tiles) == 1:
            raws = self.backend.forward(batch)
        else:
            raws = np.concatenate([self.backend.forward(batch[i : i + 1]) for i in range(len(tiles))])
        found = Detections.merge([self._decode(raw, tile) for raw, tile in zip(raws, tiles, strict=True)])
        if not len(found):
            return found
        height, width = image.shape[:2]
        np.clip(found.xyxy[:, 0::2], 0, width, out=found.xyxy[:, 0::2])
        np.clip(found.xyxy[:, 1::2], 0, height, out=found.xyxy[:, 1::2])
        xywh = np.column_stack([found.xyxy[:, :2], found.xyxy[:, 2:] - found.xyxy[:, :2]])
        # Scores were thresholded in _decode; OpenCV's own threshold is strict, so pass 0.
        keep = cv2.dnn.NMSBoxesBatched(xywh.tolist(), found.confidence.tolist(), found.class_id.tolist(), 0.0, self.iou)
        keep = np.asarray(keep, dtype=np.int64).reshape(-1)
        return found[keep[np.argsort(-found.confidence[keep], kind="stable")]]


def resolve_model_path(model: str, backend: str) -> Path:
    """``models/hazards`` style paths resolve against the project root; the suffix follows the backend."""
    path = Path(model)
    if not path.suffix:
        path = path.with_suffix(".onnx" if backend == "onnx" else ".pt")
    if not path.is_absolute() and not path.exists():
        path = PROJECT / path
    return path


def _region(roi: RoadRegionConfig) -> RoadRegion:
    if isinstance(roi.top, str):
        raise ConfigError("detect.roi.top", f"{roi.top!r} needs the camera profile: resolve it with detect_section")
    return RoadRegion(roi.top, roi.bottom, roi.left, roi.right)


def detect_section(cfg: Config, camera: CameraModel | None = None) -> DetectConfig:
    """The ``detect`` config section with ``roi.top: horizon`` made a fraction of the frame height.

    The road region then starts ``detect.roi_above_horizon_deg`` above the horizon of the vehicle's camera
    profile (``camera``, read from ``drive.camera`` where a command has not read it already): every vehicle's
    mount sees the road from its own row, and a leaning sign's plate, which stands above the road, stays whole.

    >>> from detector.config import load_config
    >>> round(detect_section(load_config()).roi.top, 3)  # sim_dashcam's horizon is at 0.375, pitched 8 degrees down
    0.3
    """
    detect = cfg.detect
    if detect.roi.top != "horizon":
        return detect
    path = configured_profile(cfg.drive.camera)
    camera = camera or load_camera(path)
    row = camera.horizon_row() - camera.focal * math.tan(math.radians(detect.roi_above_horizon_deg))
    top = max(row / camera.height, 0.0)
    if top >= detect.roi.bottom:
        raise InputError(path, "the camera's horizon is below the road region's bottom edge: check its pitch_deg")
    return detect.model_copy(update={"roi": detect.roi.model_copy(update={"top": top})})


def load_detector(
    detect: DetectConfig, use_roi: bool = True, conf: float | dict[str, float] | None = None
) -> HazardDetector:
    """Build the detector from the ``detect`` config section (see :func:`detect_section` for ``roi.top: horizon``);
    ``conf``, when given, instead of ``detect.conf`` (one threshold, or one per class)."""
    path = resolve_model_path(detect.model, detect.backend)
    backend = load_backend(path, detect.backend, detect.device, detect.threads)
    return HazardDetector(
        backend,
        classes=list(detect.classes),
        conf=detect.conf if conf is None else conf,
        iou=detect.iou,
        imgsz=detect.imgsz,
        roi=_region(detect.roi) if use_roi else RoadRegion(),
        tiles=detect.tiles if use_roi else 1,
        flip=detect.flip,
        source=str(path),
    )
