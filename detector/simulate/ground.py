"""The ground texture: road, markings, wear, potholes, signs lying flat and shadows, street by street.

Each street is rasterised once into a top-down texture, ``GROUND_RES_M`` metres per pixel, which
:mod:`detector.simulate.render` warps into each frame with the camera's ground-plane homography.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from shapely.geometry import Polygon

from detector.simulate.artwork import noise_tile, pothole_sprite, sign_sprites
from detector.simulate.motion import Lighting
from detector.simulate.world import KERB_M, ROAD_HALF_M, Street, World, forward, right_of, sign_geometry

GROUND_RES_M = 0.03


@dataclass
class GroundStrip:
    """One street's top-down texture; ``to_world`` maps its pixels (col, row, 1) to (x, y, 1)."""

    corners: np.ndarray
    to_world: np.ndarray
    image: np.ndarray
    levels: dict[tuple[int, int], np.ndarray]

    def level(self, along: int, across: int) -> np.ndarray:
        """The texture reduced 2**along times along the street and 2**across times across it."""
        key = (along, across)
        if key not in self.levels:
            h, w = self.image.shape[:2]
            size = (max(1, w >> along), max(1, h >> across))
            self.levels[key] = cv2.resize(self.image, size, interpolation=cv2.INTER_AREA)
        return self.levels[key]


class Ground:
    """Ground textures of a world under one lighting, rasterised street by street when first seen."""

    def __init__(self, world: World, lighting: Lighting, res_m: float = GROUND_RES_M) -> None:
        self.world = world
        self.lighting = lighting
        self.res = res_m
        rng = np.random.default_rng(np.random.SeedSequence([world.seed, 99]))
        self._fine = noise_tile(rng, 512, 0.6)
        self._coarse = noise_tile(rng, 256, 1.6)
        self._slabs = _paving_tile(rng)
        self._kerb_area = world.road_area.buffer(KERB_M, join_style="mitre")
        self._shadows = _shadow_polygons(world, lighting)
        self._shadow_boxes = np.array([[*p.min(0), *p.max(0)] for p in self._shadows]).reshape(-1, 4)
        self._decals = [pothole_sprite(p, res_m) for p in world.potholes]
        self._flat = [sign_geometry(s) for s in world.signs if s.pose == "flat"]
        self._flat_art = [s.art for s in world.signs if s.pose == "flat"]
        self._cache: dict[int, GroundStrip] = {}
        self.rects = [_strip_frame(st, world.pavement_m, res_m) for st in world.streets]

    def strip(self, index: int) -> GroundStrip:
        if index not in self._cache:
            self._cache[index] = self._rasterise(index)
        return self._cache[index]

    def forget(self, keep: set[int]) -> None:
        """Drop textures of streets not in ``keep`` (once a few are held)."""
        if len(self._cache) > 4:
            for i in [i for i in self._cache if i not in keep]:
                del self._cache[i]

    def _rasterise(self, index: int) -> GroundStrip:
        corners, to_world, (w, h) = self.rects[index]
        px = np.linalg.inv(to_world)
        img = self._pattern(self._slabs[..., None] * np.float32([0.9, 1.0, 1.06]), to_world, (w, h), 0.05)
        img = img * (1.0 + 0.03 * self._pattern(self._fine[..., None], to_world, (w, h), self.res))
        paved = _mask(self.world.paved_area, corners, px, (w, h))
        kerb = _mask(self._kerb_area, corners, px, (w, h))
        road = _mask(self.world.road_area, corners, px, (w, h))
        dirt = np.float32([120, 150, 172])
        img = np.where(paved[..., None] > 0, img * [172, 176, 180], dirt * (0.9 + 0.1 * img[..., :1]))
        img = np.where(kerb[..., None] > 0, np.float32([190, 192, 194]) * (0.95 + 0.05 * img[..., :1] / 176), img)
        asphalt = self._asphalt(to_world, (w, h), px)
        img = np.where(road[..., None] > 0, asphalt, img).astype(np.float32)
        self._paint(img, px)
        self._potholes(img, px)
        self._flat_signs(img, px)
        self._shade(img, corners, px)
        image = np.clip(img, 0, 255).astype(np.uint8)
        return GroundStrip(corners, to_world, image, {(0, 0): image})

    def _pattern(self, tile: np.ndarray, to_world: np.ndarray, size: tuple[int, int], tile_res: float) -> np.ndarray:
        """A periodic tile laid in the world (aligned with the first street), sampled on a strip."""
        h = np.radians(self.world.pattern_heading_deg)
        align = np.array([[np.cos(h), -np.sin(h), 0.0], [np.sin(h), np.cos(h), 0.0], [0.0, 0.0, 1.0]])
        m = np.diag([1 / tile_res, 1 / tile_res, 1.0]) @ align @ to_world
        out = cv2.warpAffine(
            tile, m[:2], size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_WRAP
        )
        return out.reshape(size[1], size[0], -1)

    def _asphalt(self, to_world: np.ndarray, size: tuple[int, int], px: np.ndarray) -> np.ndarray:
        fine = self._pattern(self._fine[..., None], to_world, size, self.res)
        coarse = self._pattern(self._coarse[..., None], to_world, size, 0.4)
        tone = 1.0 + 0.07 * fine + 0.05 * coarse
        tone *= self._wear(px, size)
        return tone * np.float32([104, 104, 106])

    def _wear(self, px: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """A brightness factor for patches, wheel paths, cracks and manholes."""
        factor = np.ones((size[1], size[0], 1), np.float32)
        route = self.world.route
        for lateral in (-2.6, -0.9, 0.9, 2.6):  # wheel paths, polished darker
            line = _to_px(route.xy + lateral * right_of(route.heading), px)
            cv2.polylines(factor, [line], False, 0.94, max(1, round(0.5 / self.res)), cv2.LINE_AA, shift=4)
        for poly, tone in self.world.wear.patches:
            cv2.fillPoly(factor, [_to_px(poly, px)], float(tone), cv2.LINE_AA, shift=4)
            cv2.polylines(factor, [_to_px(poly, px)], True, 0.7, max(1, round(0.04 / self.res)), cv2.LINE_AA, shift=4)
        for crack in self.world.wear.cracks:
            wide = len(crack) > 20
            width = max(1, round((0.06 if wide else 0.02) / self.res))
            cv2.polylines(factor, [_to_px(crack, px)], False, 0.5 if wide else 0.6, width, cv2.LINE_AA, shift=4)
        for x, y, r in self.world.wear.manholes:
            centre = _to_px(np.array([[x, y]]), px)[0]
            cv2.circle(factor, tuple(int(c) for c in centre), round(r / self.res * 16), 0.62, -1, cv2.LINE_AA, shift=4)
            cv2.circle(factor, tuple(int(c) for c in centre), round(r / self.res * 16), 0.85, 2, cv2.LINE_AA, shift=4)
        return factor

    def _paint(self, img: np.ndarray, px: np.ndarray) -> None:
        """Lane lines and crossings in worn white paint."""
        mask = np.zeros(img.shape[:2], np.float32)
        for points, width in self.world.lines:
            cv2.polylines(mask, [_to_px(points, px)], False, 1.0, max(1, round(width / self.res)), cv2.LINE_AA, shift=4)
        for poly in self.world.paint:
            cv2.fillPoly(mask, [_to_px(poly, px)], 1.0, cv2.LINE_AA, shift=4)
        if not mask.any():
            return
        worn = 0.55 + 0.35 * np.clip(img[..., 1] / 104.0, 0.0, 1.4)
        alpha = (mask * np.clip(worn, 0.0, 0.92))[..., None]
        img[:] = img * (1 - alpha) + np.float32([212, 216, 218]) * alpha

    def _potholes(self, img: np.ndarray, px: np.ndarray) -> None:
        h, w = img.shape[:2]
        for factor, to_world in self._decals:
            m = px @ to_world  # pothole pixels -> strip pixels
            ph, pw = factor.shape[:2]
            box = _to_px(np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]]) @ to_world[:2, :2].T + to_world[:2, 2], px) / 16
            x0, y0 = np.maximum(np.floor(box.min(0)).astype(int) - 1, 0)
            x1, y1 = np.minimum(np.ceil(box.max(0)).astype(int) + 2, [w, h])
            if x1 <= x0 or y1 <= y0:
                continue
            shift = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]]) @ m
            patch = cv2.warpAffine(
                factor,
                shift[:2],
                (int(x1 - x0), int(y1 - y0)),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=(1.0, 1.0, 1.0),
            )
            img[y0:y1, x0:x1] *= patch

    def _flat_signs(self, img: np.ndarray, px: np.ndarray) -> None:
        h, w = img.shape[:2]
        for geom, art in zip(self._flat, self._flat_art, strict=True):
            pole = _to_px(geom.pole[:, :2], px)
            cv2.line(
                img, tuple(pole[0]), tuple(pole[1]), (150, 152, 155), max(1, round(0.06 / self.res)), cv2.LINE_AA, 4
            )
            quad = _to_px(geom.plate[:, :2], px).astype(np.float32) / 16
            if quad.min() > max(w, h) or (quad.max(0) < 0).any() or (quad.min(0) > [w, h]).any():
                continue
            front, back = sign_sprites(art, max(8, round(art.width_m / self.res)))
            sprite = front if geom.normal[2] > 0 else back
            sh, sw = sprite.shape[:2]
            src = np.float32([[0, 0], [sw, 0], [sw, sh], [0, sh]])
            x0, y0 = np.maximum(np.floor(quad.min(0)).astype(int), 0)
            x1, y1 = np.minimum(np.ceil(quad.max(0)).astype(int) + 1, [w, h])
            m = cv2.getPerspectiveTransform(src, (quad - [x0, y0]).astype(np.float32))
            patch = cv2.warpPerspective(sprite, m, (int(x1 - x0), int(y1 - y0)), flags=cv2.INTER_LINEAR)
            a = patch[..., 3:].astype(np.float32) / 255.0
            img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - a) + patch[..., :3] * (0.92 * a)

    def _shade(self, img: np.ndarray, corners: np.ndarray, px: np.ndarray) -> None:
        """Darken the texture inside the shadows cast by buildings, trees, posts and signs."""
        lo, hi = corners.min(0), corners.max(0)
        hit = np.flatnonzero(
            (self._shadow_boxes[:, 0] < hi[0])
            & (self._shadow_boxes[:, 2] > lo[0])
            & (self._shadow_boxes[:, 1] < hi[1])
            & (self._shadow_boxes[:, 3] > lo[1])
        )
        if len(hit) == 0 or self.lighting.shadow_strength <= 0:
            return
        mask = np.zeros(img.shape[:2], np.float32)
        cv2.fillPoly(mask, [_to_px(self._shadows[i], px) for i in hit], 1.0, cv2.LINE_AA, shift=4)
        mask = cv2.GaussianBlur(mask, (0, 0), 0.05 / self.res)
        s = self.lighting.shadow_strength
        img *= 1.0 - mask[..., None] * (s * np.float32([0.82, 1.0, 1.06]))


def _strip_frame(street: Street, pavement_m: float, res: float):
    """Corners, pixel-to-world matrix and pixel size of a street's texture rectangle."""
    d = street.direction
    r = np.array([d[1], -d[0]])
    half = ROAD_HALF_M + pavement_m + 1.0
    end = half + 2.0
    origin = np.asarray(street.a) - end * d - half * r
    size = (int(np.ceil((street.length + 2 * end) / res)), int(np.ceil(2 * half / res)))
    to_world = np.array([[res * d[0], res * r[0], origin[0]], [res * d[1], res * r[1], origin[1]], [0.0, 0.0, 1.0]])
    w, h = size
    corners = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], float) @ to_world.T
    return corners[:, :2], to_world, size


def _to_px(points: np.ndarray, px: np.ndarray) -> np.ndarray:
    """World points ``(n, 2)`` to fixed-point (4 fractional bits) strip pixel coordinates."""
    p = np.asarray(points, dtype=float) @ px[:2, :2].T + px[:2, 2]
    return np.round(p * 16).astype(np.int32)


def _mask(area, corners: np.ndarray, px: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``area`` (a shapely polygon) rasterised on a strip, clipped to the strip first."""
    mask = np.zeros((size[1], size[0]), np.uint8)
    part = area.intersection(Polygon(corners).buffer(1.0))
    for poly in getattr(part, "geoms", [part]):
        if poly.is_empty or poly.geom_type != "Polygon":
            continue
        rings = [_to_px(np.asarray(poly.exterior.coords)[:, :2], px)]
        rings += [_to_px(np.asarray(i.coords)[:, :2], px) for i in poly.interiors]
        cv2.fillPoly(mask, rings, 255, cv2.LINE_8, shift=4)
    return mask


def _paving_tile(rng: np.random.Generator) -> np.ndarray:
    """A periodic pavement of 40 cm slabs with dark joints, sampled at ``0.05`` m per pixel."""
    n, slab = 288, 8  # 14.4 m, 36 slabs of 8 px of 5 cm
    tone = rng.uniform(0.9, 1.06, (n // slab, n // slab)).astype(np.float32)
    tile = np.kron(tone, np.ones((slab, slab), np.float32))
    tile[::slab, :] *= 0.8
    tile[:, ::slab] *= 0.8
    return tile * (1.0 + 0.04 * noise_tile(rng, n, 0.3))


def _quad_shadow(a: np.ndarray, b: np.ndarray, offset: np.ndarray, width: float) -> np.ndarray:
    """Ground shadow of a thin rod from 3D point ``a`` to ``b`` with ``offset`` metres per metre up."""
    ga, gb = a[:2] + a[2] * offset, b[:2] + b[2] * offset
    d = gb - ga
    n = np.array([-d[1], d[0]]) / max(np.linalg.norm(d), 1e-6) * width / 2
    return np.array([ga + n, gb + n, gb - n, ga - n])


def _shadow_polygons(world: World, lighting: Lighting) -> list[np.ndarray]:
    """Ground polygons in shadow: buildings, tree trunks and canopies, lamp posts, signs."""
    sun = lighting.sun_direction()
    offset = -sun[:2] / max(sun[2], 0.1)  # ground displacement per metre of height
    polys: list[np.ndarray] = []
    for b in world.buildings:
        pts = np.vstack([b.footprint, b.footprint + b.height_m * offset]).astype(np.float32)
        polys.append(cv2.convexHull(pts)[:, 0, :].astype(float))
    for t in world.trees:
        polys.append(_quad_shadow(np.array([t.x, t.y, 0.0]), np.array([t.x, t.y, t.trunk_m + 1.0]), offset, 0.25))
        for dx, dy, z, r, _ in t.blobs:
            c = np.array([t.x + dx, t.y + dy]) + z * offset
            ang = np.radians(90.0 - lighting.sun_azimuth_deg)
            polys.append(_ellipse(c, r / max(sun[2], 0.1), r, ang))
    for lamp in world.lights:
        base = np.array([lamp.x, lamp.y, 0.0])
        top = np.array([lamp.x, lamp.y, lamp.height_m])
        arm = top + np.append(1.8 * forward(lamp.arm_heading_deg), 0.2)
        polys += [_quad_shadow(base, top, offset, 0.16), _quad_shadow(top, arm, offset, 0.1)]
    for s in world.signs:
        if s.pose == "flat":
            continue
        g = sign_geometry(s)
        polys.append(_quad_shadow(g.pole[0], g.pole[1], offset, 0.07))
        polys.append(g.plate[:, :2] + g.plate[:, 2:3] * offset)
    return polys


def _ellipse(centre: np.ndarray, a: float, b: float, angle: float) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    x, y = a * np.cos(t), b * np.sin(t)
    return centre + np.column_stack([x * np.cos(angle) - y * np.sin(angle), x * np.sin(angle) + y * np.cos(angle)])
