"""Training frames from the drive simulator: the road region of frames picked by distance, with exact boxes.

The simulator knows where every hazard is, so its frames come with exact boxes (``labels.csv`` of the drive:
a pothole's footprint, a fallen sign's plate, see :mod:`detector.simulate.labels`). Splits are by world (street
layout and hazards): a world's frames are all in training or all in validation. Worlds used by the sample
drive and the benchmarks are kept out of both in ``configs/train.yaml``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import av
import cv2
import numpy as np

from detector.camera import CameraModel, configured_profile, load_camera
from detector.config.training import SimulatorFramesConfig
from detector.geo import LocalFrame
from detector.simulate.labels import HazardBox, read_labels
from detector.yolo_labels import box_rows, write_label


def render(world: int, drive: int, cfg: SimulatorFramesConfig, cache: Path) -> Path:
    """Render (once) a simulated drive into ``cache``; returns its folder."""
    from detector.simulate import cached_drive

    folder = cache / f"w{world}_d{drive}_{cfg.duration_s:g}s_{cfg.fps}fps"
    return cached_drive(folder, False, world_seed=world, drive_seed=drive, duration_s=cfg.duration_s, fps=cfg.fps)


def true_track(folder: Path, local: LocalFrame | None = None) -> dict[str, np.ndarray]:
    """The noise-free track of a simulated drive, one row per video frame (``trajectory.csv``): ``utc``,
    ``x``/``y`` in ``local`` metres (default: centred on the first fix), ``heading`` in degrees and ``odometer``."""
    rows = np.genfromtxt(folder / "trajectory.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
    utc = np.array([datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() for t in rows["time"]])
    local = local or LocalFrame(float(rows["lat"][0]), float(rows["lon"][0]))
    x, y = local.to_xy(rows["lat"], rows["lon"])
    odometer = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
    return {"utc": utc, "x": x, "y": y, "heading": rows["heading"].astype(float), "odometer": odometer}


def picked_frames(folder: Path, spacing_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices one ``spacing_m`` apart along the true track, and their UTC times."""
    track = true_track(folder)
    marks = np.arange(0.0, track["odometer"][-1], spacing_m)
    index = np.unique(np.searchsorted(track["odometer"], marks))
    return index, track["utc"][index]


def lookalikes(world: int, duration_s: float) -> dict[str, np.ndarray]:
    """Where a simulated world's look-alikes stand, in the simulator's own local metres, by kind: ``cover``, its
    manhole covers (dark discs the model takes for potholes), and ``standing_sign``, the feet of its upright signs'
    poles (taken for fallen signs). See the model card's known failure modes."""
    from detector.simulate import drive_world

    built = drive_world(world, duration_s)
    covers = [(x, y) for x, y, _ in built.wear.manholes]
    standing = [(sign.x, sign.y) for sign in built.signs if not sign.hazard]
    return {"cover": np.array(covers, float).reshape(-1, 2), "standing_sign": np.array(standing, float).reshape(-1, 2)}


def in_view(
    track: dict[str, np.ndarray], points: np.ndarray, camera: CameraModel, range_m: tuple[float, float], roi_top: float
) -> np.ndarray:
    """Per frame of ``track`` (:func:`true_track` in the simulator's own local frame), whether one of ``points`` lies
    ``range_m`` ahead of ``camera``, inside the road region (from ``roi_top``) above the bonnet."""
    from detector.simulate.render import HOOD_FRACTION

    poses = np.column_stack([track["x"], track["y"]])
    road_region = (0.0, roi_top, 1.0, 1.0 - HOOD_FRACTION)
    return camera.sees(points, poses, track["heading"], range_m, road_region).any(axis=0)


def spaced(odometer: np.ndarray, wanted: np.ndarray, spacing_m: float) -> np.ndarray:
    """Indices of the ``wanted`` frames, at least ``spacing_m`` apart along ``odometer``.

    >>> spaced(np.arange(10.0), np.arange(10) % 5 < 3, 2.0).tolist()
    [0, 2, 5, 7]
    """
    picked, last = [], -np.inf
    for i in np.flatnonzero(wanted):
        if odometer[i] - last >= spacing_m:
            picked.append(i)
            last = odometer[i]
    return np.array(picked, int)


def lookalike_frames(folder: Path, world: int, cfg: SimulatorFramesConfig) -> dict[str, np.ndarray]:
    """Per kind of look-alike asked for (``cover_spacing_m``, ``standing_sign_spacing_m``), frame indices that far
    apart with one in view (:func:`in_view` over its ``*_range_m``): more views of them, as hard negatives, than
    frames picked by distance alone give."""
    from detector.config import load_config, simulator_settings

    asked = {
        "cover": (cfg.cover_spacing_m, cfg.cover_range_m),
        "standing_sign": (cfg.standing_sign_spacing_m, cfg.standing_sign_range_m),
    }
    asked = {kind: plan for kind, plan in asked.items() if plan[0]}
    if not asked:
        return {}
    origin = simulator_settings().origin  # where cached_drive's worlds are placed, and with which camera
    camera = load_camera(configured_profile(load_config().drive.camera))
    track = true_track(folder, LocalFrame(origin.lat, origin.lon))
    points = lookalikes(world, cfg.duration_s)
    return {
        kind: spaced(track["odometer"], in_view(track, points[kind], camera, range_m, cfg.roi_top), spacing_m)
        for kind, (spacing_m, range_m) in asked.items()
    }


def trainable(box: HazardBox, cfg: SimulatorFramesConfig) -> bool:
    """Whether a hazard's box is worth a training label: in range, mostly in the picture, not a sliver, not a
    speck (``min_box_px`` in full-frame pixels; :func:`label_rows` checks it again after the road crop)."""
    near, far = cfg.range_m
    x1, y1, x2, y2 = box.box
    big = x2 - x1 >= cfg.min_box_px[0] and y2 - y1 >= cfg.min_box_px[1]
    return near <= box.range_m <= far and box.visible >= cfg.min_visible and box.fill >= cfg.min_fill and big


def label_rows(boxes: np.ndarray, classes: np.ndarray, top: int, width: int, height: int, min_px) -> np.ndarray:
    """YOLO label rows for pixel boxes ``x1 y1 x2 y2`` shifted into the road crop starting at row ``top``; tiny or
    cut-off boxes dropped."""
    shifted = np.asarray(boxes).reshape(-1, 4).copy()
    shifted[:, 1] = np.maximum(shifted[:, 1] - top, 0.0)
    shifted[:, 3] = np.minimum(shifted[:, 3] - top, height)
    keep = (shifted[:, 2] - shifted[:, 0] >= min_px[0]) & (shifted[:, 3] - shifted[:, 1] >= min_px[1])
    return box_rows(shifted[keep], np.asarray(classes)[keep], width, height)


def write_frames(folder: Path, index: np.ndarray, cfg: SimulatorFramesConfig, dest: Path, labels: Path) -> list[Path]:
    """Crop frames ``index`` of one simulated drive to the road region and label them; returns the images."""
    truth = read_labels(folder / "labels.csv")
    wanted = set(index.tolist())
    dest.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    written = []
    with av.open(str(folder / "drive.mp4")) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i not in wanted:
                continue
            image = frame.to_ndarray(format="bgr24")
            top = round(cfg.roi_top * image.shape[0])
            crop = image[top:]
            shown = [b for b in truth.get(i, []) if trainable(b, cfg)]
            boxes = np.array([b.box for b in shown], np.float32).reshape(-1, 4)
            classes = np.array([b.cls for b in shown], int)
            name = f"{folder.name}_{i:05d}"
            cv2.imwrite(str(dest / f"{name}.jpg"), crop, [cv2.IMWRITE_JPEG_QUALITY, 92])
            rows = label_rows(boxes, classes, top, crop.shape[1], crop.shape[0], cfg.min_box_px)
            write_label(labels / f"{name}.txt", rows)
            written.append(dest / f"{name}.jpg")
    return written


def simulator_frames(cfg: SimulatorFramesConfig, out: Path, cache: Path) -> dict[str, list[Path]]:
    """All simulator training and validation images of the dataset in ``out``, by split. Frames with look-alikes in
    view are added to training only: validation frames stay picked by distance alone."""
    placed: dict[str, list[Path]] = {}
    for split, worlds in cfg.worlds.items():
        for world in worlds:
            for drive in cfg.drive_seeds:
                folder = render(world, drive, cfg, cache)
                index, _ = picked_frames(folder, cfg.spacing_m)
                if split == "train":
                    index = np.unique(np.concatenate([index, *lookalike_frames(folder, world, cfg).values()]))
                images = out / "images" / split / "simulator"
                labels = out / "labels" / split / "simulator"
                placed.setdefault(split, []).extend(write_frames(folder, index, cfg, images, labels))
    return placed
