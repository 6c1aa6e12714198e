"""Rendering: the dashcam's pinhole camera, and frames built from the ground texture and the things standing.

The ground (road, markings, wear, potholes, signs lying flat, shadows: :mod:`detector.simulate.ground`) is
rasterised once per street into a top-down texture, ``GROUND_RES_M`` metres per pixel, and warped into each frame
with the ground-plane homography of the same camera model that :func:`project_points` uses.
Everything standing up (facades, trees, lamp posts, signs) is drawn as projected 3D polygons,
far to near.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from detector.simulate.artwork import sign_sprites
from detector.simulate.ground import Ground
from detector.simulate.motion import Lighting
from detector.simulate.world import World, forward, sign_geometry

MAX_DISTANCE_M = 100.0
NEAR_M = 0.3
HOOD_FRACTION = 0.05  # the bonnet covers up to this share of the frame height, at the centre
HAZE_BGR = np.array([204, 200, 196], np.float32)
SKY_TOP_BGR = np.array([196, 140, 88], np.float32)
SKY_HORIZON_BGR = np.array([226, 214, 202], np.float32)


@dataclass(frozen=True)
class SimulatedCamera:
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
class CameraPose:
    """The vehicle (and camera, which sits at the GPS antenna) on the ground plane."""

    x: float
    y: float
    heading_deg: float

    def camera_centre(self, camera: SimulatedCamera) -> np.ndarray:
        return np.array([self.x, self.y, camera.height_m])


def world_to_camera(camera: SimulatedCamera, pose: CameraPose, points) -> np.ndarray:
    """World points ``(…, 3)`` in camera coordinates (x right, y down, z forward, metres)."""
    points = np.asarray(points, dtype=float)
    return (points - pose.camera_centre(camera)) @ camera.rotation(pose.heading_deg).T


def project_points(camera: SimulatedCamera, pose: CameraPose, points) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates ``(…, 2)`` and depth ``(…)`` of world points ``(…, 3)`` seen from ``pose``.

    Points at or behind the camera (depth <= 0) get NaN pixel coordinates.

    >>> cam = SimulatedCamera(1280, 720, pitch_deg=0.0)
    >>> uv, depth = project_points(cam, CameraPose(0.0, 0.0, 0.0), [[0.0, 10.0, 1.4]])
    >>> uv.round(2).tolist(), depth.tolist()
    ([[639.5, 359.5]], [10.0])
    """
    pc = world_to_camera(camera, pose, points)
    z = pc[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = camera.focal_px * pc[..., :2] / z[..., None] + [(camera.width - 1) / 2, (camera.height - 1) / 2]
    uv[z <= 0] = np.nan
    return uv, z


def ground_homography(camera: SimulatedCamera, pose: CameraPose) -> np.ndarray:
    """The 3x3 homography taking ground points (x, y, 1) to homogeneous pixel coordinates."""
    rot = camera.rotation(pose.heading_deg)
    t = -rot @ pose.camera_centre(camera)
    return camera.matrix() @ np.column_stack([rot[:, 0], rot[:, 1], t])


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

    >>> from detector.simulate.generate import build_world
    >>> world = build_world(3)
    >>> cam = SimulatedCamera(160, 90)
    >>> r = FrameRenderer(world, cam, Lighting(0.0, 45.0, 0.5, 1.0, (1.0, 1.0, 1.0)))
    >>> r.render(CameraPose(*world.route.point(20.0, 1.75), float(world.route.heading[80]))).shape
    (90, 160, 3)
    """

    def __init__(self, world: World, camera: SimulatedCamera, lighting: Lighting, seed: int = 0) -> None:
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

    def render(
        self, pose: CameraPose, speed: float = 0.0, yaw_rate_dps: float = 0.0, exposure: float = 1.0
    ) -> np.ndarray:
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

    def _strip_rows(self, index: int, pose: CameraPose) -> tuple[int, int] | None:
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

    def _draw_ground(self, img: np.ndarray, pose: CameraPose) -> None:
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

    def _draw_objects(self, img: np.ndarray, pose: CameraPose) -> None:
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
