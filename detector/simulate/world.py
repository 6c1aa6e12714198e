"""What a simulated street world is: the route, streets, buildings, furniture, road wear and hazards.

:func:`detector.simulate.generate.build_world` builds these records from the world seed and the route
length alone, so several drives over one world see the same streets and the same hazards. Coordinates
are metres in the simulation's :class:`~detector.geo.LocalFrame` (x east, y north, z up); headings are
degrees clockwise from north. Lateral offsets are measured to the right of the direction of travel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from shapely.geometry import LineString, Polygon

LANE_M = 3.5
ROAD_HALF_M = LANE_M  # two lanes, one each way
KERB_M = 0.2
STEP_M = 0.25  # spacing of the dense route centreline


def forward(heading_deg) -> np.ndarray:
    """Unit vector(s) pointing along ``heading_deg`` (clockwise from north)."""
    h = np.radians(heading_deg)
    return np.stack([np.sin(h), np.cos(h)], axis=-1)


def right_of(heading_deg) -> np.ndarray:
    """Unit vector(s) pointing to the right of ``heading_deg``."""
    h = np.radians(heading_deg)
    return np.stack([np.cos(h), -np.sin(h)], axis=-1)


def heading_of(vector) -> float:
    """Heading (degrees clockwise from north) of a 2D vector."""
    return float(np.degrees(np.arctan2(vector[0], vector[1])) % 360.0)


@dataclass(frozen=True)
class Route:
    """The street polyline the vehicle drives, with its corners rounded into arcs.

    ``vertices``/``turns`` are the corners (signed turn in degrees, + right; 0 at both ends);
    ``xy``, ``s``, ``heading`` and ``curvature`` sample the rounded centreline every ``STEP_M``.
    ``vertex_s`` is the route distance of each corner (the middle of its arc).
    """

    vertices: np.ndarray
    turns: np.ndarray
    xy: np.ndarray
    s: np.ndarray
    heading: np.ndarray
    curvature: np.ndarray
    vertex_s: np.ndarray

    @property
    def length(self) -> float:
        return float(self.s[-1])

    def pose(self, s) -> tuple[np.ndarray, np.ndarray]:
        """Centreline position(s) ``(…, 2)`` and heading(s) in degrees at route distance(s) ``s``."""
        s = np.asarray(s, dtype=float)
        x = np.interp(s, self.s, self.xy[:, 0])
        y = np.interp(s, self.s, self.xy[:, 1])
        h = np.radians(self.heading)
        hx, hy = np.interp(s, self.s, np.sin(h)), np.interp(s, self.s, np.cos(h))
        return np.stack([x, y], axis=-1), np.degrees(np.arctan2(hx, hy)) % 360.0

    def point(self, s: float, lateral: float) -> np.ndarray:
        """The point ``lateral`` metres right of the centreline at route distance ``s``."""
        xy, h = self.pose(s)
        return xy + lateral * right_of(h)

    def junctions(self) -> np.ndarray:
        """Route distances of the sharp (about 90°) corners, which are crossroads."""
        return self.vertex_s[np.abs(self.turns) >= 60.0]


@dataclass(frozen=True)
class Street:
    """A straight street centreline from ``a`` to ``b``; ground texture is rasterised per street."""

    a: tuple[float, float]
    b: tuple[float, float]

    @property
    def direction(self) -> np.ndarray:
        d = np.subtract(self.b, self.a)
        return d / np.linalg.norm(d)

    @property
    def length(self) -> float:
        return float(np.hypot(self.b[0] - self.a[0], self.b[1] - self.a[1]))


@dataclass(frozen=True)
class Run:
    """A straight stretch of one side of a street, lined with buildings and furniture.

    Points are ``origin + t * direction + side * q * right``, ``t`` in ``[t0, t1]``, ``q`` the
    distance from the street's centreline.
    """

    origin: tuple[float, float]
    heading_deg: float
    t0: float
    t1: float
    side: int  # +1 right of the street direction, -1 left

    def at(self, t: float, q: float) -> np.ndarray:
        return np.asarray(self.origin) + t * forward(self.heading_deg) + self.side * q * right_of(self.heading_deg)

    @property
    def outward(self) -> np.ndarray:
        return self.side * right_of(self.heading_deg)


@dataclass(frozen=True)
class Building:
    """A box: ``footprint`` corners (front-left, front-right, back-right, back-left) and height.

    The front face looks onto the street. ``windows`` are (k, 4, 3) quads on the front face.
    """

    footprint: np.ndarray
    height_m: float
    colour: tuple[int, int, int]
    window_colour: tuple[int, int, int]
    windows: np.ndarray


@dataclass(frozen=True)
class Tree:
    """A street tree: trunk at ``(x, y)``; canopy blobs as (k, 5) rows of dx, dy, z, radius, shade."""

    x: float
    y: float
    trunk_m: float
    blobs: np.ndarray


@dataclass(frozen=True)
class StreetLight:
    """A lamp post at ``(x, y)`` with an arm reaching over the road towards ``arm_heading_deg``."""

    x: float
    y: float
    height_m: float
    arm_heading_deg: float


@dataclass(frozen=True)
class SignArt:
    """What a sign plate shows: ``kind`` picks the family, ``glyph`` the variant."""

    kind: str  # warning, yield, speed, no_entry, mandatory, info, stop
    glyph: int
    width_m: float
    height_m: float


@dataclass(frozen=True)
class Sign:
    """A sign on a pole. Upright geometry is rotated by ``tilt_deg`` towards ``tilt_heading_deg``.

    ``pose``: ``upright`` (a standing sign, not a hazard), ``leaning``, ``knocked_over`` or ``flat``.
    ``face_heading_deg`` is where the plate's front looks while upright; ``twist_deg`` turns the
    plate about the pole after a fall.
    """

    id: str
    x: float
    y: float
    art: SignArt
    pole_m: float
    face_heading_deg: float
    tilt_deg: float
    tilt_heading_deg: float
    twist_deg: float
    pose: str
    on: str
    route_s: float
    damaged: bool = False  # standing, but its plate twisted or its pole bent: still no hazard

    @property
    def hazard(self) -> bool:
        return self.pose != "upright"


@dataclass(frozen=True)
class SignGeometry:
    """A sign in 3D: plate corners (top-left, top-right, bottom-right, bottom-left seen from the
    front), the plate's front normal, and the pole from base to top."""

    plate: np.ndarray
    normal: np.ndarray
    pole: np.ndarray

    @property
    def centre(self) -> np.ndarray:
        return self.plate.mean(axis=0)


@dataclass(frozen=True)
class Pothole:
    """A pothole centred at ``(x, y)``: ``width_m`` across its long axis, ``aspect`` short/long.

    ``travel_deg`` is the direction of traffic in its lane: the wall facing oncoming drivers is lit.
    """

    id: str
    x: float
    y: float
    width_m: float
    aspect: float
    rotation_deg: float
    darkness: float
    rim: float
    shape_seed: int
    route_s: float
    on: str = "road"
    travel_deg: float = 0.0


@dataclass(frozen=True)
class RoadWear:
    """Distractors on the asphalt: patch polygons with a tone factor, crack polylines, manholes."""

    patches: tuple[tuple[np.ndarray, float], ...]
    cracks: tuple[np.ndarray, ...]
    manholes: tuple[tuple[float, float, float], ...]


@dataclass(frozen=True)
class World:
    """Everything static in a simulated town; see the module docstring for conventions."""

    seed: int
    route: Route
    streets: tuple[Street, ...]
    runs: tuple[Run, ...]
    pavement_m: float
    road_area: Polygon
    paved_area: Polygon
    lines: tuple[tuple[np.ndarray, float], ...]
    paint: tuple[np.ndarray, ...]
    wear: RoadWear
    potholes: tuple[Pothole, ...]
    signs: tuple[Sign, ...]
    buildings: tuple[Building, ...]
    trees: tuple[Tree, ...]
    lights: tuple[StreetLight, ...]
    stop_s: tuple[float, ...]
    pattern_heading_deg: float
    removed_signs: tuple[Sign, ...] = ()  # standing signs taken away since an earlier drive (the truth of a change)

    def bounds(self) -> tuple[float, float, float, float]:
        """``(min_x, min_y, max_x, max_y)`` of the route's road and pavements."""
        line = LineString(self.route.xy)
        return tuple(line.buffer(ROAD_HALF_M + self.pavement_m).bounds)


def sign_geometry(sign: Sign) -> SignGeometry:
    """The plate and pole of ``sign`` in world coordinates (z up, metres)."""
    w, h = sign.art.width_m, sign.art.height_m
    face = np.append(forward(sign.face_heading_deg), 0.0)
    viewer_right = -np.append(right_of(sign.face_heading_deg), 0.0)
    up = np.array([0.0, 0.0, 1.0])
    top = sign.pole_m
    centre = np.array([0.0, 0.0, top - h / 2]) + 0.04 * face
    corners = ((-1, 1), (1, 1), (1, -1), (-1, -1))
    local = np.array([centre + a * (w / 2) * viewer_right + b * (h / 2) * up for a, b in corners])
    twist = _rotation(up, np.radians(sign.twist_deg))
    local = local @ twist.T
    normal = twist @ face
    axis = np.cross(up, np.append(forward(sign.tilt_heading_deg), 0.0))
    tilt = _rotation(axis, np.radians(sign.tilt_deg))
    base = np.array([sign.x, sign.y, 0.0])
    plate = local @ tilt.T + base
    pole = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, top]]) @ tilt.T + base
    lift = max(0.0, -float(plate[:, 2].min()))  # a fallen plate rests on the ground, not under it
    plate[:, 2] += lift
    pole[:, 2] += lift
    return SignGeometry(plate=plate, normal=tilt @ normal, pole=pole)


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation matrix about ``axis`` by ``angle`` radians."""
    n = np.linalg.norm(axis)
    if n < 1e-12 or abs(angle) < 1e-12:
        return np.eye(3)
    k = axis / n
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx
