"""Synthetic fallen signs: UK sign artwork (RGBA) composited onto real road images.

No photo set of fallen signs exists, so each training example pastes a sign cut-out into a real road frame in one
of three poses: lying flat on the road (in-plane turn, then squashed vertically and narrowed at the far edge as the
ground plane would be), knocked over (turned 60-110 degrees) or leaning (25-60 degrees), sometimes on its pole,
sometimes showing its grey back, sometimes partly hidden. The sign is lit and tinted like the road under it, given
noise and blurred like the frame, and its label box is the visible plate. With ``decoy_p``, a composite may also
get a decoy, unlabelled: a sign's outline filled with road from elsewhere in the image, pasted the same way, so that
the pasting itself (a blurred outline, relit pixels) is no cue for a sign (``benchmarks/seam_probe.py`` measures
how much it is). Nothing else is drawn into the pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from detector.config.training import CompositeConfig
from detector.detections import box_intersection

POSES = ("flat", "knocked", "leaning")


@dataclass(frozen=True)
class SignPose:
    """How one sign is placed: its in-plane turn and the foreshortening of its plane."""

    kind: str
    angle_deg: float
    squash: float  # vertical scale (1 = upright facing the camera; < 1 = lying on the ground plane)
    yaw: float  # horizontal scale (the plate turned away from the camera)
    keystone: float  # the far (upper) edge is this fraction narrower than the near edge
    pole: bool
    back: bool  # the grey back of the plate faces the camera


@dataclass(frozen=True)
class Pasted:
    """A sign drawn into an image: its label box (x0, y0, x1, y1 in pixels) and its masks."""

    box: tuple[float, float, float, float]
    plate: np.ndarray  # bool, image-sized: where the visible plate is (the label covers this)
    cover: np.ndarray  # bool, image-sized: plate and pole, i.e. what hides the road


def load_sign(path: Path) -> np.ndarray:
    """A sign template as BGRA uint8; an opaque white box around the artwork (e.g. 543) is made transparent."""
    sign = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if sign is None or sign.ndim != 3 or sign.shape[2] != 4:
        raise ValueError(f"{path}: not an RGBA image")
    corners = sign[[0, 0, -1, -1], [0, -1, 0, -1]]
    if (corners[:, 3] > 200).all() and (corners[:, :3] > 235).all():
        white = ((sign[..., :3] > 235).all(axis=2) & (sign[..., 3] > 200)).astype(np.uint8)
        h, w = white.shape
        flood = np.zeros((h + 2, w + 2), np.uint8)
        for x, y in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)):
            cv2.floodFill(white, flood, (x, y), 2)
        sign[white == 2, 3] = 0
    return sign


def sample_pose(rng: np.random.Generator, cfg: CompositeConfig) -> SignPose:
    """Draw a pose kind by the configured weights, then its angles and foreshortening."""
    kinds = list(cfg.poses)
    weights = np.array([cfg.poses[k] for k in kinds], float)
    kind = kinds[rng.choice(len(kinds), p=weights / weights.sum())]
    if kind not in POSES:
        raise ValueError(f"unknown pose {kind!r}; expected one of {POSES}")
    sign = 1.0 if rng.random() < 0.5 else -1.0
    if kind == "flat":
        return SignPose(
            kind,
            angle_deg=rng.uniform(0, 360),
            squash=rng.uniform(*cfg.flat_squash),
            yaw=1.0,
            keystone=rng.uniform(0.0, 0.3),
            pole=False,
            back=rng.random() < cfg.back_p,
        )
    lo, hi = cfg.knocked_deg if kind == "knocked" else cfg.leaning_deg
    return SignPose(
        kind,
        angle_deg=sign * rng.uniform(lo, hi),
        squash=rng.uniform(0.7, 1.0) if kind == "knocked" else 1.0,
        yaw=rng.uniform(0.6, 1.0),
        keystone=rng.uniform(0.0, 0.1),
        pole=rng.random() < cfg.pole_p,
        back=rng.random() < cfg.back_p,
    )


def _premultiplied(sign: np.ndarray, size_px: float) -> np.ndarray:
    """Float premultiplied BGRA, pre-shrunk (area filter) to about twice the target size to avoid aliasing."""
    h, w = sign.shape[:2]
    f = min(1.0, 2.0 * size_px / max(h, w))
    out = sign.astype(np.float32)
    out[..., :3] *= out[..., 3:] / 255.0
    if f < 1.0:
        out = cv2.resize(out, (max(2, round(w * f)), max(2, round(h * f))), interpolation=cv2.INTER_AREA)
    return out


def _grey_back(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The plate's back: galvanised grey with a soft gradient, premultiplied by ``alpha`` (0-255)."""
    h, w = alpha.shape
    grey = rng.uniform(110, 170) + np.linspace(-12, 12, w, dtype=np.float32)[None, :] * np.ones((h, 1), np.float32)
    return np.dstack([grey, grey, grey + rng.uniform(-4, 6)]) * (alpha[..., None] / 255.0)


def _with_pole(canvas: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Append a grey pole below the plate; returns (canvas with pole, plate-only alpha)."""
    h, w = canvas.shape[:2]
    length = round(h * rng.uniform(0.8, 1.6))
    width = max(2, round(w * rng.uniform(0.04, 0.07)))
    out = np.zeros((h + length, w, 4), np.float32)
    out[:h] = canvas
    x0 = (w - width) // 2
    shade = rng.uniform(120, 175) * (1.0 - 0.45 * np.abs(np.linspace(-1, 1, width, dtype=np.float32)))
    pole = out[h - 1 :, x0 : x0 + width]
    pole[..., :3] = shade[None, :, None]
    pole[..., 3] = 255.0
    plate_alpha = np.zeros((h + length, w), np.float32)
    plate_alpha[:h] = canvas[..., 3]
    return out, plate_alpha


def _homography(
    src_size: tuple[int, int], plate_wh: tuple[int, int], size_px: float, pose: SignPose, center
) -> np.ndarray:
    """Map the canvas (plate at its top, maybe a pole below) to the image: scale, turn, foreshorten, move."""
    cw, ch = src_size
    pw, ph = plate_wh
    src = np.array([[0, 0], [cw, 0], [cw, ch], [0, ch]], np.float32)
    local = (src - [pw / 2, ph / 2]) * (size_px / max(pw, ph))
    a = np.deg2rad(pose.angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], np.float32)
    local = local @ rot.T
    reach = max(np.abs(local[:, 1]).max(), 1e-6)
    x = local[:, 0] * pose.yaw * (1.0 + pose.keystone * local[:, 1] / reach)
    y = local[:, 1] * pose.squash
    dst = np.stack([x + center[0], y + center[1]], axis=1).astype(np.float32)
    return cv2.getPerspectiveTransform(src, dst)


def _occluder(shape: tuple[int, int], plate: np.ndarray, frac: float, rng: np.random.Generator) -> np.ndarray:
    """A soft ellipse (0-1) over one side of the plate hiding about ``frac`` of it."""
    ys, xs = np.nonzero(plate > 0.5)
    occ = np.zeros(shape, np.float32)
    if len(xs) < 4:
        return occ
    i = rng.integers(len(xs))
    cx, cy = float(xs[i]), float(ys[i])
    span = max(xs.max() - xs.min(), ys.max() - ys.min(), 2)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    a = np.deg2rad(rng.uniform(0, 180))
    u = (xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)
    v = -(xx - cx) * np.sin(a) + (yy - cy) * np.cos(a)
    aspect = rng.uniform(0.4, 1.0)
    total = float((plate > 0.5).sum())
    lo, hi = 0.02 * span, 1.5 * span
    for _ in range(12):  # bisect the ellipse size for the wanted hidden fraction
        r = (lo + hi) / 2
        inside = (u / r) ** 2 + (v / (r * aspect)) ** 2 <= 1.0
        hidden = float((inside & (plate > 0.5)).sum()) / total
        lo, hi = (r, hi) if hidden < frac else (lo, r)
    occ[inside] = 1.0
    return cv2.GaussianBlur(occ, (0, 0), 0.8)


def paste_sign(
    image: np.ndarray,
    sign: np.ndarray,
    center: tuple[float, float],
    size_px: float,
    pose: SignPose,
    rng: np.random.Generator,
    cfg: CompositeConfig,
) -> Pasted | None:
    """Draw ``sign`` (BGRA) into ``image`` (BGR, modified in place) with its plate's longest side ``size_px``.

    Returns the label box and masks, or None (image untouched) when too little of the plate would be visible.
    """
    height, width = image.shape[:2]
    canvas = _premultiplied(sign, size_px)
    plate_wh = (canvas.shape[1], canvas.shape[0])
    if pose.back:
        canvas[..., :3] = _grey_back(canvas[..., 3], rng)
    if pose.pole:
        canvas, plate_alpha = _with_pole(canvas, rng)
    else:
        plate_alpha = canvas[..., 3].copy()
    hom = _homography((canvas.shape[1], canvas.shape[0]), plate_wh, size_px, pose, center)
    corners = cv2.perspectiveTransform(
        np.array(
            [[[0, 0], [canvas.shape[1], 0], [canvas.shape[1], canvas.shape[0]], [0, canvas.shape[0]]]], np.float32
        ),
        hom,
    )[0]
    pad = 4
    x0, y0 = np.floor(corners.min(axis=0)).astype(int) - pad
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + pad
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64) @ hom
    size = (x1 - x0, y1 - y0)
    warped = cv2.warpPerspective(canvas, shift, size, flags=cv2.INTER_LINEAR, borderValue=0)
    plate = cv2.warpPerspective(plate_alpha, shift, size, flags=cv2.INTER_LINEAR, borderValue=0) / 255.0
    alpha = warped[..., 3] / 255.0
    full_plate = float((plate > 0.5).sum())
    if rng.random() < cfg.occlude_p:
        occ = 1.0 - _occluder(plate.shape, plate, rng.uniform(*cfg.occlude_frac), rng)
        plate, alpha = plate * occ, alpha * occ
        warped *= occ[..., None]
    visible = plate > 0.5
    if visible.sum() < max(12.0, 0.4 * full_plate):
        return None

    region = image[y0:y1, x0:x1].astype(np.float32)
    bgr = warped[..., :3] / np.maximum(warped[..., 3:], 1e-3) * 255.0
    bgr = _match_light(bgr, region, alpha, rng)
    sigma = rng.uniform(*cfg.blur_sigma)
    bgr_a = cv2.GaussianBlur(bgr * alpha[..., None], (0, 0), sigma)
    alpha_b = cv2.GaussianBlur(alpha, (0, 0), sigma)
    out = region * (1.0 - alpha_b[..., None]) + bgr_a
    image[y0:y1, x0:x1] = np.clip(out, 0, 255).astype(np.uint8)

    ys, xs = np.nonzero(visible)
    box = (float(x0 + xs.min()), float(y0 + ys.min()), float(x0 + xs.max() + 1), float(y0 + ys.max() + 1))
    plate_mask = np.zeros((height, width), bool)
    plate_mask[y0:y1, x0:x1] = visible
    cover = np.zeros((height, width), bool)
    cover[y0:y1, x0:x1] = alpha > 0.5
    return Pasted(box=box, plate=plate_mask, cover=cover)


def road_decoy(sign: np.ndarray, image: np.ndarray, road: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A decoy: ``sign``'s outline (its alpha) filled with a patch of ``image``'s ``road``, scaled to the template."""
    h, w = sign.shape[:2]
    ys, xs = np.nonzero(road)
    side = max(2, min(int(rng.uniform(0.1, 0.25) * image.shape[1]), *image.shape[:2]))
    i = rng.integers(len(ys))
    y0 = int(np.clip(ys[i] - side // 2, 0, image.shape[0] - side))
    x0 = int(np.clip(xs[i] - side // 2, 0, image.shape[1] - side))
    patch = cv2.resize(image[y0 : y0 + side, x0 : x0 + side], (w, h), interpolation=cv2.INTER_LINEAR)
    return np.dstack([patch, sign[..., 3]])


def _match_light(bgr: np.ndarray, region: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Light the sign like the road around it: gain from the local brightness, a tint, a shading ramp, noise."""
    around = alpha < 0.05
    ref = region[around] if around.sum() > 16 else region.reshape(-1, 3)
    mean = ref.mean(axis=0)
    luma = float(mean @ np.array([0.114, 0.587, 0.299], np.float32))
    gain = float(np.clip(luma / 120.0, 0.35, 1.25)) * rng.uniform(0.85, 1.1)
    tint = rng.uniform(0.05, 0.3)
    out = (bgr * gain) * (1.0 - tint) + mean * tint
    h, w = alpha.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    ramp = ((xx - w / 2) * np.cos(a) + (yy - h / 2) * np.sin(a)) / max(h, w)
    out *= (1.0 + rng.uniform(0.0, 0.4) * ramp)[..., None]
    out += rng.normal(0.0, rng.uniform(1.0, 4.0), out.shape).astype(np.float32)
    return out


@dataclass(frozen=True)
class Background:
    """A real road image to paste into: its pothole boxes and where on it the road is."""

    image: np.ndarray  # BGR
    boxes: np.ndarray  # (n, 4) pothole boxes x0, y0, x1, y1 in pixels
    road: np.ndarray  # bool, image-sized: allowed sign centres


def road_region(shape: tuple[int, int], band: list[float] | None = None, lane: np.ndarray | None = None) -> np.ndarray:
    """Where sign centres may go: the annotated lane when known, else a band of rows (fractions of the height)."""
    if lane is not None:
        return lane > 0
    top, bottom = band or (0.5, 0.95)
    region = np.zeros(shape, bool)
    region[round(top * shape[0]) : round(bottom * shape[0])] = True
    return region


def _size_at(y: float, rows: np.ndarray, rng: np.random.Generator, cfg: CompositeConfig) -> float:
    """Sign size from its row: small near the top of the road (far away), large near the bottom, log-spread."""
    lo, hi = cfg.size_px
    t = (y - rows.min()) / max(rows.max() - rows.min(), 1)
    t = float(np.clip(t + rng.normal(0.0, 0.15), 0.0, 1.0))
    return lo * (hi / lo) ** t


def _overlap(box: np.ndarray, boxes: np.ndarray) -> float:
    """Largest fraction of ``box`` covered by one of ``boxes`` (all x0, y0, x1, y1)."""
    if len(boxes) == 0:
        return 0.0
    return float(box_intersection(box, boxes).max() / max((box[2] - box[0]) * (box[3] - box[1]), 1e-6))


def composite(
    bg: Background, signs: list[np.ndarray], rng: np.random.Generator, cfg: CompositeConfig, tries: int = 8
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paste each of ``signs`` onto a copy of ``bg`` away from its potholes.

    Returns (image, pothole boxes still visible, sign boxes), boxes as (n, 4) x0, y0, x1, y1 pixels. A pothole
    more than half hidden by a sign, pole or decoy loses its box. A sign that finds no free spot is left out.
    """
    image = bg.image.copy()
    ys, xs = np.nonzero(bg.road)
    if len(ys) == 0:
        raise ValueError("background has no road region to place signs on")
    potholes = bg.boxes.astype(np.float64).reshape(-1, 4)
    sign_boxes: list[tuple[float, float, float, float]] = []
    taken: list[tuple[float, float, float, float]] = []  # signs and decoys: where nothing else may go
    cover = np.zeros(image.shape[:2], bool)
    # Drawn only when asked for, so that decoy_p 0 gives the very composites made before decoys existed.
    decoy = bool(signs) and cfg.decoy_p > 0 and rng.random() < cfg.decoy_p
    jobs = [(sign, True) for sign in signs] + ([(road_decoy(signs[0], image, bg.road, rng), False)] if decoy else [])
    for art, labelled in jobs:
        for _ in range(tries):
            i = rng.integers(len(ys))
            center = (float(xs[i]), float(ys[i]))
            size = _size_at(center[1], ys, rng, cfg)
            guess = np.array([center[0] - size / 2, center[1] - size / 2, center[0] + size / 2, center[1] + size / 2])
            if max(_overlap(guess, potholes), _overlap(guess, np.array(taken).reshape(-1, 4))) > 0.2:
                continue
            pose = sample_pose(rng, cfg)
            if not labelled:  # a pole or a grey back is a real sign's cue, not the pasting's
                pose = replace(pose, pole=False, back=False)
            pasted = paste_sign(image, art, center, size, pose, rng, cfg)
            if pasted is not None:
                taken.append(pasted.box)
                if labelled:
                    sign_boxes.append(pasted.box)
                cover |= pasted.cover
                break
    keep = [
        float(cover[int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))].mean()) <= 0.5
        for x0, y0, x1, y1 in potholes
    ]
    return image, potholes[np.array(keep, bool)].reshape(-1, 4), np.array(sign_boxes).reshape(-1, 4)
