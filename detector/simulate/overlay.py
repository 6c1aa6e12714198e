"""Burned-in dashcam overlays: date, time, speed and position text, a maker's logo, a provider's watermark.

Most dashcams stamp text into every frame, and street-imagery providers put a mark on every picture. A detector
trained without them takes the text for a hazard (figures per model: ``models/MODEL_CARD.md``), and a mark that
is in every frame rides along with the vehicle. The same drawing serves the training set (real images with text
burned in, as negatives: :mod:`detector.train.overlays`) and the simulator (a drive whose camera stamps its
frames, digits changing every second).

A style is drawn once per camera (:func:`random_style`), then applied to each frame with that frame's values:

>>> rng = np.random.default_rng(3)
>>> style = random_style(rng)
>>> frame = np.full((360, 640, 3), 90, np.uint8)
>>> stamped, drawn = draw_overlay(frame, style, utc=1780300800.0, speed_mps=12.5, lat=31.252, lon=34.7915)
>>> stamped.shape == frame.shape, bool(drawn.any()), bool((stamped[~drawn] == 90).all())
(True, True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

CORNERS = ("bottom-left", "bottom-right", "top-left", "top-right", "bottom-centre")
DATE_FORMATS = ("%Y/%m/%d", "%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y", "%m-%d-%Y", "%Y.%m.%d")
HERSHEY = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_COMPLEX_SMALL,
)
PIXEL_FONT = -1  # Pillow's built-in font rendered small and scaled up with nearest neighbour: a DVR's bitmap font
SMOOTH_FONT = -2  # Pillow's built-in font at full size
COLOURS = ((255, 255, 255), (0, 255, 255), (0, 200, 255), (230, 230, 230), (0, 255, 0), (255, 255, 0))
MAKERS = ("DVR", "CAM", "DRIVE", "ROAD", "AUTO", "MOTO", "VIEW", "EYE", "PATROL", "FLEET")


@dataclass(frozen=True)
class OverlayStyle:
    """How one camera stamps its frames. Sizes are fractions of the frame height, so a style fits any frame."""

    corner: str
    stacked: bool  # one field per line, or all on one line
    fields: tuple[str, ...]  # of: date, time, speed, gps, device
    date_format: str
    speed_unit: str  # km/h or mph
    font: int  # a cv2 Hershey face, PIXEL_FONT or SMOOTH_FONT
    text_height: float
    colour: tuple[int, int, int]  # BGR
    outline: bool
    band_alpha: float  # a dark band behind the text (0: none)
    device: str
    logo: str | None  # a maker's mark in the opposite top corner
    watermark: str | None  # a provider's mark, semi-transparent
    watermark_alpha: float
    margin: float


def random_style(rng: np.random.Generator) -> OverlayStyle:
    """A plausible dashcam or provider stamp, drawn from the kinds seen on real footage."""
    fields = ["date", "time"]
    for name, p in (("speed", 0.7), ("gps", 0.4), ("device", 0.3)):
        if rng.random() < p:
            fields.append(name)
    order = [f for f in ("device", "date", "time", "speed", "gps") if f in fields]
    maker = str(rng.choice(MAKERS))
    fonts = (*HERSHEY, PIXEL_FONT, PIXEL_FONT, SMOOTH_FONT)
    return OverlayStyle(
        corner=str(rng.choice(CORNERS, p=[0.35, 0.3, 0.12, 0.13, 0.1])),
        stacked=bool(rng.random() < 0.35),
        fields=tuple(order),
        date_format=str(rng.choice(DATE_FORMATS)),
        speed_unit="mph" if rng.random() < 0.25 else "km/h",
        font=int(rng.choice(fonts)),
        text_height=float(rng.uniform(0.022, 0.055)),
        colour=tuple(int(c) for c in COLOURS[int(rng.integers(len(COLOURS)))]),
        outline=bool(rng.random() < 0.6),
        band_alpha=float(rng.choice([0.0, 0.0, 0.35, 0.6])),
        device=f"{maker}-{int(rng.integers(1, 99)):02d}"
        if rng.random() < 0.5
        else f"{maker}{int(rng.integers(100, 999))}",
        logo=f"{maker} {rng.choice(['HD', 'PRO', 'X', '4K', 'GO'])!s}" if rng.random() < 0.45 else None,
        watermark=f"© {int(rng.integers(2015, 2027))} {str(rng.choice(MAKERS)).title()}Maps"
        if rng.random() < 0.2
        else None,
        watermark_alpha=float(rng.uniform(0.25, 0.6)),
        margin=float(rng.uniform(0.008, 0.03)),
    )


def stamp_lines(style: OverlayStyle, utc: float, speed_mps: float, lat: float, lon: float) -> list[str]:
    """The stamp's text for one frame, one entry per line.

    >>> style = OverlayStyle("bottom-left", False, ("date", "time", "speed"), "%Y/%m/%d", "km/h", 0, 0.03,
    ...                      (255, 255, 255), True, 0.0, "DVR-01", None, None, 0.0, 0.01)
    >>> stamp_lines(style, 1780300800.0, 12.5, 31.25, 34.79)
    ['2026/06/01 08:00:00 45 km/h']
    """
    when = datetime.fromtimestamp(utc, UTC)
    speed = speed_mps * (2.236936 if style.speed_unit == "mph" else 3.6)
    values = {
        "date": when.strftime(style.date_format),
        "time": when.strftime("%H:%M:%S"),
        "speed": f"{speed:.0f} {style.speed_unit}" if style.speed_unit == "km/h" else f"{speed:.0f} MPH",
        "gps": f"{'N' if lat >= 0 else 'S'}{abs(lat):.5f} {'E' if lon >= 0 else 'W'}{abs(lon):.5f}",
        "device": style.device,
    }
    parts = [values[f] for f in style.fields]
    return parts if style.stacked else [" ".join(parts)]


def _text_mask(text: str, font: int, height_px: int) -> np.ndarray:
    """A uint8 coverage mask (0-255) of ``text`` about ``height_px`` tall, tightly cropped."""
    height_px = max(height_px, 6)
    if font >= 0:
        scale = cv2.getFontScaleFromHeight(font, height_px, 1)
        thickness = max(1, round(height_px / 12))
        (w, h), base = cv2.getTextSize(text, font, scale, thickness)
        canvas = np.zeros((h + base + 2 * thickness + 2, w + 2 * thickness + 2), np.uint8)
        cv2.putText(canvas, text, (thickness + 1, h + thickness + 1), font, scale, 255, thickness, cv2.LINE_AA)
    else:
        size = 11 if font == PIXEL_FONT else height_px
        pil = ImageFont.load_default(size=size)
        left, top, right, bottom = pil.getbbox(text)
        image = Image.new("L", (right - left + 2, bottom - top + 2), 0)
        ImageDraw.Draw(image).text((1 - left, 1 - top), text, fill=255, font=pil)
        canvas = np.asarray(image)
        if font == PIXEL_FONT:
            f = height_px / max(canvas.shape[0], 1)
            canvas = cv2.resize(canvas, None, fx=f, fy=f, interpolation=cv2.INTER_NEAREST)
            canvas = np.where(canvas > 100, 255, 0).astype(np.uint8)
    ys, xs = np.nonzero(canvas)
    if not len(ys):
        return np.zeros((1, 1), np.uint8)
    return canvas[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _fit(mask: np.ndarray, width: int) -> np.ndarray:
    """``mask`` shrunk to at most ``width`` pixels wide, as a camera sets a smaller font for a long stamp."""
    if mask.shape[1] <= width:
        return mask
    f = width / mask.shape[1]
    return cv2.resize(mask, (width, max(1, round(mask.shape[0] * f))), interpolation=cv2.INTER_AREA)


def _place(shape: tuple[int, int], size: tuple[int, int], corner: str, margin: int, offset: int = 0) -> tuple[int, int]:
    """Top-left corner of a ``size`` (h, w) block in ``corner``, ``offset`` pixels further in (stacked lines)."""
    H, W = shape
    h, w = size
    x = margin if corner.endswith("left") else W - w - margin if corner.endswith("right") else (W - w) // 2
    y = H - h - margin - offset if corner.startswith("bottom") else margin + offset
    return max(0, min(x, W - w)), max(0, min(y, H - h))


def _blend(image: np.ndarray, mask: np.ndarray, x: int, y: int, colour: tuple[int, int, int], alpha: float,
           drawn: np.ndarray) -> None:  # fmt: skip
    h = min(mask.shape[0], image.shape[0] - y)
    w = min(mask.shape[1], image.shape[1] - x)
    if h <= 0 or w <= 0:
        return
    a = mask[:h, :w, None].astype(np.float32) / 255.0 * alpha
    region = image[y : y + h, x : x + w].astype(np.float32)
    image[y : y + h, x : x + w] = (region * (1 - a) + np.array(colour, np.float32) * a).astype(np.uint8)
    drawn[y : y + h, x : x + w] |= mask[:h, :w] > 0


def _stamp(image: np.ndarray, drawn: np.ndarray, mask: np.ndarray, x: int, y: int, style: OverlayStyle,
           alpha: float = 1.0) -> None:  # fmt: skip
    """Text ``mask`` at (x, y): outline first (a dilated mask in black), then the text in the style's colour."""
    if style.outline:
        pad = max(1, mask.shape[0] // 10)
        grown = cv2.dilate(np.pad(mask, pad), np.ones((2 * pad + 1, 2 * pad + 1), np.uint8))
        _blend(image, grown, max(0, x - pad), max(0, y - pad), (0, 0, 0), alpha, drawn)
    _blend(image, mask, x, y, style.colour, alpha, drawn)


def draw_overlay(
    image: np.ndarray, style: OverlayStyle, utc: float, speed_mps: float = 0.0, lat: float = 0.0, lon: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (BGR) with the stamp drawn in, and a bool mask of the pixels the stamp changed."""
    out = image.copy()
    H, W = out.shape[:2]
    drawn = np.zeros((H, W), bool)
    height_px = max(6, round(style.text_height * H))
    margin = max(2, round(style.margin * H))
    masks = [_text_mask(line, style.font, height_px) for line in stamp_lines(style, utc, speed_mps, lat, lon)]
    masks = [_fit(m, W - 2 * margin) for m in masks]
    gap = max(2, height_px // 3)
    spots = []
    offset = 0
    for mask in masks if style.corner.startswith("bottom") else masks[::-1]:
        spots.append((mask, *_place((H, W), mask.shape, style.corner, margin, offset)))
        offset += mask.shape[0] + gap
    if style.band_alpha > 0:
        x0 = min(x for _, x, _ in spots) - gap
        y0 = min(y for _, _, y in spots) - gap
        x1 = max(x + m.shape[1] for m, x, _ in spots) + gap
        y1 = max(y + m.shape[0] for m, _, y in spots) + gap
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
        band = np.full((y1 - y0, x1 - x0), 255, np.uint8)
        _blend(out, band, x0, y0, (0, 0, 0), style.band_alpha, drawn)
    for mask, x, y in spots:
        _stamp(out, drawn, mask, x, y, style)
    if style.logo:
        logo = _text_mask(style.logo, cv2.FONT_HERSHEY_DUPLEX, round(height_px * 1.2))
        logo = _fit(logo, W - 2 * margin)
        corner = "top-right" if style.corner.endswith("left") else "top-left"
        x, y = _place((H, W), logo.shape, corner, margin)
        _stamp(out, drawn, logo, x, y, style)
    if style.watermark:
        mark = _text_mask(style.watermark, SMOOTH_FONT, round(height_px * 1.1))
        mark = _fit(mark, W - 2 * margin)
        x, y = _place((H, W), mark.shape, "bottom-centre", margin, offset + 2 * gap)
        _blend(out, mark, x, y, (255, 255, 255), style.watermark_alpha, drawn)
    return out, drawn
