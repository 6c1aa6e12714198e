"""What the simulator's things look like: road-texture noise, sign faces and pothole decals.

Sprites are drawn once per sign artwork and size (cached) and per pothole, in BGR with an alpha
channel; :mod:`detector.simulate.render` projects them into camera frames. Where things are lies in
:mod:`detector.simulate.world`, built by :mod:`detector.simulate.generate`.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from detector.simulate.world import Pothole, SignArt, forward, right_of

RED, WHITE, BLUE, BLACK = (40, 32, 196), (236, 236, 232), (165, 82, 18), (28, 28, 30)
SPRITE_PX = 256


def noise_tile(rng: np.random.Generator, size: int, beta: float) -> np.ndarray:
    """Periodic ``size`` x ``size`` noise with a 1/f**beta spectrum, zero mean, unit deviation."""
    k = np.fft.fftfreq(size)
    radius = np.hypot(*np.meshgrid(k, k))
    radius[0, 0] = 1.0
    spectrum = np.fft.fft2(rng.standard_normal((size, size))) / radius**beta
    spectrum[0, 0] = 0.0
    tile = np.real(np.fft.ifft2(spectrum))
    return (tile / tile.std()).astype(np.float32)


def _glyph(img: np.ndarray, art: SignArt, colour: tuple[int, int, int]) -> None:
    """A simple pictogram in the middle of a triangle or disc."""
    s = img.shape[1]
    c = (s // 2, int(s * 0.58))
    variant = art.glyph % 4
    if variant == 0:  # exclamation mark
        cv2.line(img, (c[0], int(s * 0.38)), (c[0], int(s * 0.64)), colour, s // 14, cv2.LINE_AA)
        cv2.circle(img, (c[0], int(s * 0.74)), s // 24, colour, -1, cv2.LINE_AA)
    elif variant == 1:  # bumps
        pts = np.array([(x, c[1] + 12 * np.sin(x / s * 18)) for x in np.linspace(s * 0.3, s * 0.7, 30)])
        cv2.polylines(img, [pts.astype(np.int32)], False, colour, s // 22, cv2.LINE_AA)
    elif variant == 2:  # pedestrian
        cv2.circle(img, (c[0], int(s * 0.42)), s // 20, colour, -1, cv2.LINE_AA)
        for a, b in (((0.5, 0.47), (0.5, 0.64)), ((0.5, 0.64), (0.42, 0.78)), ((0.5, 0.64), (0.58, 0.78))):
            cv2.line(img, (int(a[0] * s), int(a[1] * s)), (int(b[0] * s), int(b[1] * s)), colour, s // 22, cv2.LINE_AA)
    else:  # road narrows
        for x0, x1 in ((0.4, 0.45), (0.6, 0.55)):
            pts = np.array([(x0 * s, 0.78 * s), (x0 * s, 0.62 * s), (x1 * s, 0.5 * s), (x1 * s, 0.38 * s)])
            cv2.polylines(img, [pts.astype(np.int32)], False, colour, s // 24, cv2.LINE_AA)


def _centred_text(img: np.ndarray, text: str, centre, scale: float, colour, thickness: int) -> None:
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, scale, thickness)
    origin = (int(centre[0] - tw / 2), int(centre[1] + th / 2))
    cv2.putText(img, text, origin, cv2.FONT_HERSHEY_DUPLEX, scale, colour, thickness, cv2.LINE_AA)


def _polygon(img: np.ndarray, pts, colour) -> None:
    cv2.fillPoly(img, [np.round(np.asarray(pts) * 16).astype(np.int32)], colour, cv2.LINE_AA, shift=4)


def _regular(n: int, radius: float, centre: tuple[float, float], start_deg: float) -> np.ndarray:
    a = np.radians(start_deg + np.arange(n) * 360.0 / n)
    return np.column_stack([centre[0] + radius * np.cos(a), centre[1] + radius * np.sin(a)])


def _sign_face(art: SignArt, w: int, h: int) -> np.ndarray:
    """The front of a sign plate as a BGR image whose shape is drawn in white on the alpha channel."""
    img = np.zeros((h, w, 4), np.uint8)
    c, r = (w / 2, h / 2), min(w, h) / 2 - 2
    kind = art.kind
    if kind in ("warning", "yield"):
        apex = -90 if kind == "warning" else 90
        outer = _regular(3, r * 1.12, (c[0], c[1] + (0.12 if kind == "warning" else -0.12) * r), apex)
        inner = (outer - outer.mean(0)) * 0.68 + outer.mean(0)
        _polygon(img, outer, (*RED, 255))
        _polygon(img, inner, (*WHITE, 255))
        if kind == "warning":
            _glyph(img, art, (*BLACK, 255))
    elif kind in ("speed", "no_entry", "mandatory"):
        cv2.circle(
            img, (w // 2, h // 2), int(r), ((*BLUE, 255) if kind == "mandatory" else (*RED, 255)), -1, cv2.LINE_AA
        )
        if kind == "speed":
            cv2.circle(img, (w // 2, h // 2), int(r * 0.78), (*WHITE, 255), -1, cv2.LINE_AA)
            text = str((2 + art.glyph % 6) * 10)
            scale = w / 90
            _centred_text(img, text, c, scale, (*BLACK, 255), max(2, w // 28))
        elif kind == "no_entry":
            cv2.rectangle(img, (int(w * 0.2), int(h * 0.43)), (int(w * 0.8), int(h * 0.57)), (*WHITE, 255), -1)
        else:
            cv2.circle(img, (w // 2, h // 2), int(r), (*WHITE, 255), max(2, w // 40), cv2.LINE_AA)
            arrow = np.array(
                [(0.5, 0.2), (0.72, 0.45), (0.58, 0.45), (0.58, 0.8), (0.42, 0.8), (0.42, 0.45), (0.28, 0.45)]
            )
            angle = (0, 90, -90, 45)[art.glyph % 4]
            rot = cv2.getRotationMatrix2D((0.5, 0.5), angle, 1.0)
            _polygon(img, (np.column_stack([arrow, np.ones(len(arrow))]) @ rot.T) * [w, h], (*WHITE, 255))
    elif kind == "stop":
        octagon = _regular(8, r / np.cos(np.pi / 8), c, 22.5)
        _polygon(img, octagon, (*WHITE, 255))
        _polygon(img, (octagon - c) * 0.9 + c, (*RED, 255))
        scale = w / 120
        _centred_text(img, "STOP", c, scale, (*WHITE, 255), max(2, w // 40))
    else:  # info: a blue plate with a white border and a letter or text lines
        cv2.rectangle(img, (1, 1), (w - 2, h - 2), (*BLUE, 255), -1)
        cv2.rectangle(img, (w // 20, w // 20), (w - 1 - w // 20, h - 1 - w // 20), (*WHITE, 255), max(2, w // 50))
        if art.glyph % 2:
            scale = min(w, h) / 40
            _centred_text(img, "P", c, scale, (*WHITE, 255), max(2, w // 16))
        else:
            for k in range(3):
                y = int(h * (0.3 + 0.2 * k))
                cv2.line(img, (int(w * 0.2), y), (int(w * (0.8 - 0.1 * k)), y), (*WHITE, 255), max(2, h // 16))
    return img


@lru_cache(maxsize=256)
def sign_sprites(art: SignArt, width_px: int) -> tuple[np.ndarray, np.ndarray]:
    """Front and back of a sign plate as BGRA images ``width_px`` wide (drawn large, then reduced)."""
    w = SPRITE_PX
    h = max(8, round(w * art.height_m / art.width_m))
    front = _sign_face(art, w, h)
    rng = np.random.default_rng(art.glyph)
    grime = 1.0 + 0.05 * rng.standard_normal((h, w, 1)).astype(np.float32)
    front[..., :3] = np.clip(cv2.GaussianBlur(front[..., :3] * grime, (0, 0), 1.5), 0, 255).astype(np.uint8)
    back = front.copy()
    back[..., :3] = (142, 144, 146)
    back[int(h * 0.4) : int(h * 0.6), :, :3] = (112, 114, 116)
    size = (width_px, max(2, round(width_px * h / w)))
    return cv2.resize(front, size, interpolation=cv2.INTER_AREA), cv2.resize(back, size, interpolation=cv2.INTER_AREA)


def pothole_sprite(pothole: Pothole, res_m: float) -> tuple[np.ndarray, np.ndarray]:
    """How a pothole changes the asphalt under it: a (h, w, 3) float32 brightness factor (1 = no
    change) at ``res_m`` metres per pixel, and the 3x3 matrix from its pixels to world (x, y)."""
    rng = np.random.default_rng(pothole.shape_seed)
    ss = 4  # drawn supersampled for smooth edges
    n = int(np.ceil(pothole.width_m * 1.5 / res_m)) + 6
    big = n * ss
    theta = np.linspace(0.0, 2 * np.pi, 90, endpoint=False)
    r = 1.0 + sum(rng.uniform(0, 0.16) / (k - 1) ** 0.7 * np.cos(k * theta + rng.uniform(0, 6.3)) for k in range(2, 7))
    r = r + rng.normal(0.0, 0.025, len(theta))
    long_px = pothole.width_m / 2 / res_m * ss / r.max()
    pts = np.column_stack(
        [big / 2 + long_px * r * np.cos(theta), big / 2 + long_px * pothole.aspect * r * np.sin(theta)]
    )
    mask = np.zeros((big, big), np.uint8)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255, cv2.LINE_AA)
    depth = cv2.distanceTransform((mask > 127).astype(np.uint8), cv2.DIST_L2, 5)
    outside = cv2.distanceTransform((mask <= 127).astype(np.uint8), cv2.DIST_L2, 5) / ss * res_m
    depth = cv2.resize(depth / max(float(depth.max()), 1.0), (n, n), interpolation=cv2.INTER_AREA)
    outside = cv2.resize(outside, (n, n), interpolation=cv2.INTER_AREA)
    inside = cv2.resize(mask, (n, n), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    gravel = cv2.GaussianBlur(rng.standard_normal((n, n)).astype(np.float32), (0, 0), 0.6)
    blotch = cv2.GaussianBlur(rng.standard_normal((n, n)).astype(np.float32), (0, 0), max(1.0, 0.06 / res_m))
    blotch /= max(float(blotch.std()), 1e-6)
    floor = 1.0 - pothole.darkness * (0.6 + 0.4 * np.sqrt(depth)) + 0.1 * gravel + 0.05 * blotch
    yy, xx = np.mgrid[0:n, 0:n] - (n - 1) / 2
    rel = np.radians(pothole.travel_deg - pothole.rotation_deg)
    ahead = (xx * np.cos(rel) + yy * np.sin(rel)) / max(n / 2, 1)  # + on the far side for traffic
    edge = np.clip(1.0 - depth * 4.0, 0.0, 1.0)
    wall = edge * (0.1 - 0.45 * ahead)  # the near wall in its own shadow, the far wall lit
    factor = 1.0 + inside * (floor - wall - 1.0)
    rim_width = 0.02 + 0.06 * pothole.rim * np.clip(0.6 + 0.6 * blotch, 0.0, 1.5)
    rim = np.clip(1.0 - outside / rim_width, 0.0, 1.0) * (inside < 0.5)
    factor += np.sqrt(rim) * (0.12 + 0.2 * pothole.rim) * (1.0 + 0.25 * gravel)
    chips = (inside < 0.5) & (outside < 0.25 * pothole.width_m) & (rng.random((n, n)) < 0.025)
    factor += chips * rng.choice([-0.35, 0.3], (n, n))
    factor = np.maximum(factor, 0.15)
    tone = np.where(inside[..., None] > 0.5, np.float32([0.95, 0.98, 1.03]), np.float32(1.0))  # dirt in the hole
    out = 1.0 + (factor[..., None] - 1.0) * tone
    e_long, e_short = forward(pothole.rotation_deg), right_of(pothole.rotation_deg)
    centre = np.array([pothole.x, pothole.y]) - (n - 1) / 2 * res_m * (e_long + e_short)
    to_world = np.array(
        [
            [*(res_m * np.array([e_long[0], e_short[0]])), centre[0]],
            [*(res_m * np.array([e_long[1], e_short[1]])), centre[1]],
            [0.0, 0.0, 1.0],
        ]
    )
    return out.astype(np.float32), to_world
