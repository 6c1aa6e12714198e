"""Rendering: the dashcam's pinhole camera, the ground texture, and frames built from both.

The ground (road, markings, wear, potholes, signs lying flat, shadows) is rasterised once per
street into a top-down texture, ``GROUND_RES_M`` metres per pixel, and warped into each frame
with the ground-plane homography of the same camera model that :func:`project_points` uses.
Everything standing up (facades, trees, lamp posts, signs) is drawn as projected 3D polygons,
far to near.
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
MAX_DISTANCE_M = 100.0
NEAR_M = 0.3
HOOD_FRACTION = 0.05  # the bonnet covers up to this share of the frame height, at the centre
HAZE_BGR = np.array([204, 200, 196], np.float32)
SKY_TOP_BGR = np.array([196, 140, 88], np.float32)
SKY_HORIZON_BGR = np.array([226, 214, 202], np.float32)


@dataclass(frozen=True)
class Camera:
    """A forward-looking pinhole camera at ``height_m``, pitched down ``pitch_deg``.

    ``roll_deg`` turns it clockwise about its optical axis (seen from behind). Pixel centres are
    at integer coordinates; the principal point is the image centre.
    """

    width: int
    height: int
    hfov_deg: float = 90.0
    height_m: float = 1.4
    pitch_deg: float = 8.0
    roll_deg: float = 0.0

    @property
    def focal_px(self) -> float:
        return self.width / 2 / np.tan(np.radians(self.hfov_deg) / 2)

    @property
    def vfov_deg(self) -> float:
        return float(2 * np.degrees(np.arctan(self.height / 2 / self.focal_px)))

    def matrix(self) -> np.ndarray:
        """The intrinsic matrix K."""
        f = self.focal_px
        return np.array([[f, 0.0, (self.width - 1) / 2], [0.0, f, (self.height - 1) / 2], [0.0, 0.0, 1.0]])

    def rotation(self, heading_deg: float) -> np.ndarray:
        """World (x east, y north, z up) to camera (x right, y down, z forward) rotation."""
        h = np.radians(heading_deg)
        base = np.array([[np.cos(h), -np.sin(h), 0.0], [0.0, 0.0, -1.0], [np.sin(h), np.cos(h), 0.0]])
        p, r = np.radians(self.pitch_deg), np.radians(self.roll_deg)
        pitch = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(p), -np.sin(p)], [0.0, np.sin(p), np.cos(p)]])
        roll = np.array([[np.cos(r), np.sin(r), 0.0], [-np.sin(r), np.cos(r), 0.0], [0.0, 0.0, 1.0]])
        return roll @ pitch @ base


@dataclass(frozen=True)
class Pose:
    """The vehicle (and camera, which sits at the GPS antenna) on the ground plane."""

    x: float
    y: float
    heading_deg: float

    def camera_centre(self, camera: Camera) -> np.ndarray:
        return np.array([self.x, self.y, camera.height_m])


def world_to_camera(camera: Camera, pose: Pose, points) -> np.ndarray:
    """World points ``(…, 3)`` in camera coordinates (x right, y down, z forward, metres)."""
    points = np.asarray(points, dtype=float)
    return (points - pose.camera_centre(camera)) @ camera.rotation(pose.heading_deg).T


def project_points(camera: Camera, pose: Pose, points) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates ``(…, 2)`` and depth ``(…)`` of world points ``(…, 3)`` seen from ``pose``.

    Points at or behind the camera (depth <= 0) get NaN pixel coordinates.

    >>> cam = Camera(1280, 720, pitch_deg=0.0)
    >>> uv, depth = project_points(cam, Pose(0.0, 0.0, 0.0), [[0.0, 10.0, 1.4]])
    >>> uv.round(2).tolist(), depth.tolist()
    ([[639.5, 359.5]], [10.0])
    """
    pc = world_to_camera(camera, pose, points)
    z = pc[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = camera.focal_px * pc[..., :2] / z[..., None] + [(camera.width - 1) / 2, (camera.height - 1) / 2]
    uv[z <= 0] = np.nan
    return uv, z


def ground_homography(camera: Camera, pose: Pose) -> np.ndarray:
    """The 3x3 homography taking ground points (x, y, 1) to homogeneous pixel coordinates."""
    rot = camera.rotation(pose.heading_deg)
    t = -rot @ pose.camera_centre(camera)
    return camera.matrix() @ np.column_stack([rot[:, 0], rot[:, 1], t])


# --- ground texture ----------------------------------------------------------------------------


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


# --- frames ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Faces:
    """All building walls: corners (F, 4, 3) as top-left, top-right, bottom-right, bottom-left seen
    from outside, outward normals (F, 3), lit colours (F, 3), windows per wall, window colours."""

    corners: np.ndarray
    normals: np.ndarray
    colours: np.ndarray
    windows: tuple[np.ndarray, ...]
    window_colours: np.ndarray


def _faces(world: World, lighting: Lighting) -> _Faces:
    sun = lighting.sun_direction()
    sun_h = sun[:2] / max(np.linalg.norm(sun[:2]), 1e-6)
    corners, normals, colours, windows, wcol = [], [], [], [], []
    for b in world.buildings:
        fp = b.footprint
        for k in range(4):
            a, c = fp[k], fp[(k + 1) % 4]
            edge = (c - a) / np.linalg.norm(c - a)
            n = np.array([edge[1], -edge[0]])
            corners.append([[*a, b.height_m], [*c, b.height_m], [*c, 0.0], [*a, 0.0]])
            normals.append([*n, 0.0])
            lit = 1.0 - 0.85 * lighting.shadow_strength * (1.0 - max(0.0, float(n @ sun_h)))
            colours.append(np.array(b.colour) * lit * (1.0 if k == 0 else 0.93))
            windows.append(b.windows if k == 0 else np.zeros((0, 4, 3)))
            wcol.append(np.array(b.window_colour) * (0.8 + 0.2 * lit))
    return _Faces(
        np.array(corners).reshape(-1, 4, 3),
        np.array(normals).reshape(-1, 3),
        np.array(colours).reshape(-1, 3),
        tuple(windows),
        np.array(wcol).reshape(-1, 3),
    )


def _clip(poly: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman clipping of a convex polygon (k, 3) to half-spaces ``a . (p, 1) >= 0``."""
    dist = poly @ planes[:, :3].T + planes[:, 3]
    if (dist >= 0).all():
        return poly
    for a in planes:
        if len(poly) == 0:
            break
        dist = poly @ a[:3] + a[3]
        if (dist >= 0).all():
            continue
        out = []
        for i in range(len(poly)):
            j = (i + 1) % len(poly)
            if dist[i] >= 0:
                out.append(poly[i])
            if (dist[i] >= 0) != (dist[j] >= 0):
                out.append(poly[i] + (poly[j] - poly[i]) * (dist[i] / (dist[i] - dist[j])))
        poly = np.array(out).reshape(-1, 3)
    return poly


def _haze(colour, distance: float) -> tuple[float, float, float]:
    a = float(np.clip((distance - 40.0) / 260.0, 0.0, 0.6))
    return tuple(float(c) for c in np.asarray(colour) * (1 - a) + HAZE_BGR * a)


class FrameRenderer:
    """Renders dashcam frames of one world under one lighting.

    >>> from detector.simulate.world import build_world
    >>> world = build_world(3)
    >>> cam = Camera(160, 90)
    >>> r = FrameRenderer(world, cam, Lighting(0.0, 45.0, 0.5, 1.0, (1.0, 1.0, 1.0)))
    >>> r.render(Pose(*world.route.point(20.0, 1.75), float(world.route.heading[80]))).shape
    (90, 160, 3)
    """

    def __init__(self, world: World, camera: Camera, lighting: Lighting, seed: int = 0) -> None:
        self.world = world
        self.camera = camera
        self.lighting = lighting
        self.ground = Ground(world, lighting)
        self._faces = _faces(world, lighting)
        self._rng = np.random.default_rng(seed)
        self._trees = np.array([[t.x, t.y] for t in world.trees]).reshape(-1, 2)
        self._lights = np.array([[p.x, p.y] for p in world.lights]).reshape(-1, 2)
        self._signs = [(s, sign_geometry(s)) for s in world.signs if s.pose != "flat"]
        k = 1.5 * camera.width / 2 / camera.focal_px
        kv = 1.5 * camera.height / 2 / camera.focal_px
        self._planes = np.array([[0, 0, 1, -NEAR_M], [1, 0, k, 0], [-1, 0, k, 0], [0, 1, kv, 0], [0, -1, kv, 0]])
        self._setup_views()
        self._setup_post(seed)

    # set-up that depends only on the camera

    def _rays(self) -> np.ndarray:
        """World-frame viewing directions (H, W, 3) of every pixel for heading 0."""
        cam = self.camera
        u, v = np.meshgrid(np.arange(cam.width), np.arange(cam.height))
        f = cam.focal_px
        rays = np.stack([(u - (cam.width - 1) / 2) / f, (v - (cam.height - 1) / 2) / f, np.ones(u.shape)], -1)
        rays = rays @ cam.rotation(0.0)  # inverse rotation: camera -> world
        return rays / np.linalg.norm(rays, axis=-1, keepdims=True)

    def _setup_views(self) -> None:
        cam = self.camera
        rays = self._rays()
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(rays[..., 2] < -1e-6, cam.height_m / -rays[..., 2], np.inf)
        dist = t * np.hypot(rays[..., 0], rays[..., 1])
        elevation = np.degrees(np.arcsin(np.clip(rays[..., 2], -1, 1)))
        azimuth = np.degrees(np.arctan2(rays[..., 0], rays[..., 1]))
        top = SKY_HORIZON_BGR + (SKY_TOP_BGR - SKY_HORIZON_BGR) * np.clip(elevation / 35.0, 0, 1)[..., None] ** 0.7
        self._sky = np.where((elevation < 0)[..., None], np.float32([118, 140, 156]), top).astype(np.uint8)
        rows = np.flatnonzero(((elevation > -0.6) & (elevation < 3.5)).any(axis=1))
        self._skyline_rows = slice(int(rows.min()), int(rows.max()) + 1) if len(rows) else slice(0, 0)
        self._skyline_el = elevation[self._skyline_rows]
        self._skyline_az = np.round(azimuth[self._skyline_rows] * 10).astype(np.int32)
        rng = np.random.default_rng(self.world.seed)
        blocks = np.repeat(rng.uniform(0.2, 2.8, 600), 6)  # 3600 bins of 0.1 degree
        self._skyline_h = np.where(rng.random(3600) < 0.02, blocks + 1.0, blocks)
        tone = np.repeat(rng.uniform(0.9, 1.05, 600), 6)[:, None]
        self._skyline_bgr = (tone * np.float32([176, 172, 168])).astype(np.uint8)
        self._ground_bands(dist)
        alpha = np.clip((dist - 20.0) / (MAX_DISTANCE_M - 20.0), 0.0, 1.0) ** 1.5
        rows = np.flatnonzero(((alpha > 0.003) & (alpha < 1.0)).any(axis=1))
        self._haze_rows = slice(int(rows.min()), int(rows.max()) + 1) if len(rows) else slice(0, 0)
        a = alpha[self._haze_rows].astype(np.float32)
        self._haze_w = (np.ascontiguousarray(a), np.ascontiguousarray(1.0 - a))
        self._haze_below = (elevation[self._haze_rows] < 0)[..., None]

    def _ground_bands(self, dist: np.ndarray) -> None:
        """Row bands of the ground with the texture reduction that suits their distance."""
        cam = self.camera
        visible = (dist < MAX_DISTANCE_M).any(axis=1)
        d = np.where(visible, dist.min(axis=1), MAX_DISTANCE_M * 2)  # nearest ground in each row
        along = np.abs(np.gradient(d))
        across = d / cam.focal_px
        ka = np.clip(np.round(np.log2(np.maximum(along / self.ground.res, 1.0)) - 0.25), 0, 7).astype(int)
        kl = np.clip(np.round(np.log2(np.maximum(across / self.ground.res, 1.0)) - 0.25), 0, 4).astype(int)
        bands: list[list[int]] = []
        for r in np.flatnonzero(visible):
            if bands and bands[-1][1] == r and bands[-1][2:] == [ka[r], kl[r]]:
                bands[-1][1] = r + 1
            else:
                bands.append([int(r), int(r) + 1, int(ka[r]), int(kl[r])])
        self._bands = [tuple(b) for b in bands]
        self._ground_top = bands[0][0] if bands else cam.height

    def _setup_post(self, seed: int) -> None:
        cam = self.camera
        h, w = cam.height, cam.width
        u, v = np.meshgrid((np.arange(w) - w / 2) / (w / 2), (np.arange(h) - h / 2) / (h / 2))
        vignette = 1.0 - 0.28 * (u**2 * 0.8 + v**2 * 0.6) ** 1.3
        tint = np.asarray(self.lighting.tint, np.float32)
        self._vignette = np.clip(vignette[..., None] * tint * 200.0, 0, 255).astype(np.uint8)
        rng = np.random.default_rng([seed, 5])
        self._noise = []
        for _ in range(6):
            n = rng.normal(0.0, 1.6, (h, w, 1)) + rng.normal(0.0, 0.6, (h, w, 3))
            self._noise.append((np.clip(n, 0, 255).astype(np.uint8), np.clip(-n, 0, 255).astype(np.uint8)))
        hood_top = h - HOOD_FRACTION * h * (1.0 - 0.6 * u[0] ** 2)
        rows = np.arange(h)[:, None]
        inside = rows >= hood_top[None, :]
        r0 = int(hood_top.min())
        self._hood_rows = slice(r0, h)
        self._hood_mask = inside[r0:, :, None]
        shade = np.clip((rows[r0:] - hood_top[None, :]) / max(1.0, HOOD_FRACTION * h), 0, 1)[..., None]
        self._hood = (np.float32([70, 66, 64]) * (1 - shade) + np.float32([34, 32, 32]) * shade).astype(np.uint8)

    # per frame

    def render(self, pose: Pose, speed: float = 0.0, yaw_rate_dps: float = 0.0, exposure: float = 1.0) -> np.ndarray:
        """One BGR frame seen from ``pose``; ``speed`` (m/s) and ``yaw_rate_dps`` blur it slightly."""
        img = self._sky.copy()
        self._draw_skyline(img, pose.heading_deg)
        target = img[self._haze_rows].copy()
        np.copyto(target, HAZE_BGR.astype(np.uint8), where=self._haze_below)
        self._draw_ground(img, pose)
        rows = self._haze_rows
        img[rows] = cv2.blendLinear(target, img[rows], *self._haze_w)
        self._draw_objects(img, pose)
        np.copyto(img[self._hood_rows], self._hood, where=self._hood_mask)
        return self._post(img, speed, yaw_rate_dps, exposure)

    def _draw_skyline(self, img: np.ndarray, heading_deg: float) -> None:
        bins = (self._skyline_az + round(heading_deg * 10)) % 3600
        mask = self._skyline_el < self._skyline_h[bins]
        img[self._skyline_rows][mask] = self._skyline_bgr[bins[mask]]

    def _strip_rows(self, index: int, pose: Pose) -> tuple[int, int] | None:
        """Image rows a street's texture can cover from ``pose``; None if it is out of sight."""
        corners, to_world, (w, h) = self.ground.rects[index]
        local = np.linalg.inv(to_world) @ [pose.x, pose.y, 1.0]
        nearest = np.clip(local[:2], 0, [w, h])
        if np.hypot(*(local[:2] - nearest)) * self.ground.res > MAX_DISTANCE_M:
            return None
        cam = world_to_camera(self.camera, pose, np.column_stack([corners, np.zeros(4)]))
        poly = _clip(cam, self._planes)
        if len(poly) < 3:
            return None
        v = self.camera.focal_px * poly[:, 1] / poly[:, 2] + (self.camera.height - 1) / 2
        top = max(self._ground_top, int(np.floor(v.min())) - 1)
        bottom = min(self.camera.height, int(np.ceil(v.max())) + 2)
        return (top, bottom) if bottom > top else None

    def _draw_ground(self, img: np.ndarray, pose: Pose) -> None:
        hom = ground_homography(self.camera, pose)
        width = self.camera.width
        keep = set()
        for i in range(len(self.ground.rects)):
            rows = self._strip_rows(i, pose)
            if rows is None:
                continue
            keep.add(i)
            strip = self.ground.strip(i)
            to_image = hom @ strip.to_world
            for r0, r1, ka, kl in self._bands:
                a, b = max(r0, rows[0]), min(r1, rows[1])
                if a >= b:
                    continue
                sa, sl = 2**ka, 2**kl
                scale = np.array([[sa, 0.0, (sa - 1) / 2], [0.0, sl, (sl - 1) / 2], [0.0, 0.0, 1.0]])
                m = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, -a], [0.0, 0.0, 1.0]]) @ to_image @ scale
                cv2.warpPerspective(
                    strip.level(ka, kl),
                    m,
                    (width, b - a),
                    dst=img[a:b],
                    flags=cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_TRANSPARENT,
                )
        self.ground.forget(keep)

    def _draw_objects(self, img: np.ndarray, pose: Pose) -> None:
        """Walls, trees, lamp posts and signs, painted far to near."""
        cam_pos = pose.camera_centre(self.camera)
        rot = self.camera.rotation(pose.heading_deg)
        items: list[tuple[float, int, int]] = []
        fc = self._faces
        rel = fc.corners - cam_pos
        horiz = np.hypot(rel[..., 0], rel[..., 1])
        depth = rel @ rot[2]
        facing = np.einsum("fk,fk->f", fc.normals, -rel[:, 0]) > 0
        show = facing & (horiz.min(1) < 170.0) & (depth.max(1) > NEAR_M)
        items += [(float(horiz[i].max()), 0, int(i)) for i in np.flatnonzero(show)]
        for kind, xy in ((1, self._trees), (2, self._lights)):
            d = np.hypot(xy[:, 0] - pose.x, xy[:, 1] - pose.y)
            ahead = (xy - [pose.x, pose.y]) @ forward(pose.heading_deg) > -3.0
            items += [(float(d[i]), kind, int(i)) for i in np.flatnonzero((d < 120.0) & ahead)]
        for i, (_, g) in enumerate(self._signs):
            d = float(np.hypot(*(g.centre[:2] - [pose.x, pose.y])))
            if d < 90.0:
                items.append((d, 3, i))
        draw = (self._draw_face, self._draw_tree, self._draw_light, self._draw_sign)
        for dist, kind, i in sorted(items, reverse=True):
            draw[kind](img, cam_pos, rot, i, dist)

    def _fill(self, img: np.ndarray, cam_pts: np.ndarray, colour) -> None:
        poly = _clip(cam_pts, self._planes)
        if len(poly) < 3:
            return
        uv = self.camera.focal_px * poly[:, :2] / poly[:, 2:3] + [
            (self.camera.width - 1) / 2,
            (self.camera.height - 1) / 2,
        ]
        cv2.fillConvexPoly(img, np.round(uv * 16).astype(np.int32), colour, cv2.LINE_AA, shift=4)

    def _rod(self, img, cam_pos, rot, a, b, radius: float, colour) -> None:
        """A thin cylinder from world point ``a`` to ``b``, drawn as a camera-facing band."""
        ca, cb = (np.array([a, b]) - cam_pos) @ rot.T
        side = np.cross(cb - ca, (ca + cb) / 2)
        side = side / max(np.linalg.norm(side), 1e-9) * radius
        self._fill(img, np.array([ca + side, cb + side, cb - side, ca - side]), colour)

    def _draw_face(self, img, cam_pos, rot, i, dist) -> None:
        fc = self._faces
        self._fill(img, (fc.corners[i] - cam_pos) @ rot.T, _haze(fc.colours[i], dist))
        windows = fc.windows[i]
        if len(windows) == 0:
            return
        cam = (windows - cam_pos) @ rot.T
        ok = cam[..., 2].min(1) > 1.0
        if not ok.any():
            return
        uv = self.camera.focal_px * cam[ok][..., :2] / cam[ok][..., 2:3]
        uv += [(self.camera.width - 1) / 2, (self.camera.height - 1) / 2]
        lim = 4.0 * max(self.camera.width, self.camera.height)
        polys = [p for p in np.round(uv * 16).astype(np.int32) if np.abs(p).max() < lim * 16]
        cv2.fillPoly(img, polys, _haze(fc.window_colours[i], dist), cv2.LINE_AA, shift=4)

    def _draw_tree(self, img, cam_pos, rot, i, dist) -> None:
        tree = self.world.trees[i]
        self._rod(
            img,
            cam_pos,
            rot,
            np.array([tree.x, tree.y, 0.0]),
            np.array([tree.x, tree.y, tree.trunk_m + 0.8]),
            0.13,
            _haze((48, 64, 82), dist),
        )
        blobs = tree.blobs if dist < 40.0 else tree.blobs[::3]
        cam = (np.column_stack([tree.x + blobs[:, 0], tree.y + blobs[:, 1], blobs[:, 2]]) - cam_pos) @ rot.T
        keep = cam[:, 2] > 0.8
        if not keep.any():
            return
        blobs, cam = blobs[keep], cam[keep]
        f = self.camera.focal_px
        uv = f * cam[:, :2] / cam[:, 2:3] + [(self.camera.width - 1) / 2, (self.camera.height - 1) / 2]
        radius = f * blobs[:, 3] / cam[:, 2]
        light = 1.0 - 0.5 * self.lighting.shadow_strength + 0.22 * (blobs[:, 2] - tree.trunk_m)
        base = np.float32([50, 100, 72]) * (blobs[:, 4] * light)[:, None]
        a = float(np.clip((dist - 40.0) / 260.0, 0.0, 0.6))
        colours = (base * (1 - a) + HAZE_BGR * a).tolist()
        lit = (np.minimum(base * 1.18, 255) * (1 - a) + HAZE_BGR * a).tolist()
        for k in np.argsort(-cam[:, 2]):
            if np.abs(uv[k]).max() > 4 * max(self.camera.width, self.camera.height):
                continue
            cv2.circle(
                img,
                tuple(np.round(uv[k] * 16).astype(int).tolist()),
                round(radius[k] * 16),
                colours[k],
                -1,
                cv2.LINE_AA,
                4,
            )
            if radius[k] > 2.0:  # a lit crown on each clump
                top = np.round((uv[k] - [0.15 * radius[k], 0.3 * radius[k]]) * 16).astype(int).tolist()
                cv2.circle(img, tuple(top), round(radius[k] * 9), lit[k], -1, cv2.LINE_AA, 4)

    def _draw_light(self, img, cam_pos, rot, i, dist) -> None:
        lamp = self.world.lights[i]
        base = np.array([lamp.x, lamp.y, 0.0])
        top = np.array([lamp.x, lamp.y, lamp.height_m])
        end = top + np.append(1.8 * forward(lamp.arm_heading_deg), 0.2)
        grey = _haze((118, 120, 122), dist)
        self._rod(img, cam_pos, rot, base, top, 0.08, grey)
        self._rod(img, cam_pos, rot, top, end, 0.05, grey)
        self._rod(img, cam_pos, rot, end, end + np.append(0.5 * forward(lamp.arm_heading_deg), 0.0), 0.11, grey)

    def _draw_sign(self, img, cam_pos, rot, i, dist) -> None:
        sign, g = self._signs[i]
        self._rod(img, cam_pos, rot, g.pole[0], g.pole[1], 0.035, _haze((150, 152, 155), dist))
        cam = (g.plate - cam_pos) @ rot.T
        if cam[:, 2].min() < NEAR_M:
            return
        f = self.camera.focal_px
        uv = f * cam[:, :2] / cam[:, 2:3] + [(self.camera.width - 1) / 2, (self.camera.height - 1) / 2]
        h, w = img.shape[:2]
        x0, y0 = np.maximum(np.floor(uv.min(0)).astype(int), 0)
        x1, y1 = np.minimum(np.ceil(uv.max(0)).astype(int) + 1, [w, h])
        if x1 - x0 < 1 or y1 - y0 < 1 or x1 - x0 > 2 * w:
            return
        size = float(np.linalg.norm(uv[1] - uv[0]))
        px = int(np.clip(2 ** np.ceil(np.log2(max(size, 4.0))), 8, 256))
        front, back = sign_sprites(sign.art, px)
        facing = float(g.normal @ (cam_pos - g.centre)) > 0
        sprite = front if facing else back
        sh, sw = sprite.shape[:2]
        src = np.float32([[0, 0], [sw, 0], [sw, sh], [0, sh]])
        m = cv2.getPerspectiveTransform(src, (uv - [x0, y0]).astype(np.float32))
        patch = cv2.warpPerspective(sprite, m, (int(x1 - x0), int(y1 - y0)), flags=cv2.INTER_LINEAR)
        sun = self.lighting.sun_direction()
        shade = 1.0 - 0.6 * self.lighting.shadow_strength * (
            1.0 - max(0.0, float(g.normal @ sun) * (1 if facing else -1))
        )
        a = patch[..., 3:].astype(np.float32) / 255.0
        roi = img[y0:y1, x0:x1]
        roi[:] = roi * (1 - a) + patch[..., :3] * (shade * a)

    def _post(self, img: np.ndarray, speed: float, yaw_rate_dps: float, exposure: float) -> np.ndarray:
        """Motion blur, exposure, colour cast, vignetting and sensor noise."""
        cam = self.camera
        if speed > 2.0 or abs(yaw_rate_dps) > 5.0:
            s = 1.0 + 0.00035 * speed
            fx = (cam.width - 1) / 2
            fy = (cam.height - 1) / 2 - cam.focal_px * np.tan(np.radians(cam.pitch_deg))
            shift = cam.focal_px * np.radians(yaw_rate_dps) / 90.0
            m = np.array([[s, 0.0, (1 - s) * fx - shift], [0.0, s, (1 - s) * fy]])
            moved = cv2.warpAffine(img, m, (cam.width, cam.height), borderMode=cv2.BORDER_REPLICATE)
            img = cv2.addWeighted(img, 0.5, moved, 0.5, 0.0)
        img = cv2.multiply(img, self._vignette, scale=exposure / 200.0)
        plus, minus = self._noise[int(self._rng.integers(len(self._noise)))]
        return cv2.subtract(cv2.add(img, plus), minus)
