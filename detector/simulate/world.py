"""A procedural street world: the route, streets, buildings, furniture, road wear and hazards.

Everything here depends only on the world seed and the route length, so several drives over one
world see the same streets and the same hazards. Coordinates are metres in the simulation's
:class:`~detector.geo.LocalFrame` (x east, y north, z up); headings are degrees clockwise from
north. Lateral offsets are measured to the right of the direction of travel.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from shapely.geometry import LineString, Point, Polygon
from shapely.ops import unary_union

LANE_M = 3.5
ROAD_HALF_M = LANE_M  # two lanes, one each way
KERB_M = 0.2
STUB_M = 60.0  # how far cross streets extend beyond a junction
STEP_M = 0.25  # spacing of the dense route centreline
MIN_ROUTE_M = 1200.0
JUNCTION_CLEAR_M = 14.0  # no hazards or lane markings this close to a junction's centre


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


# --- route -------------------------------------------------------------------------------------


def _draw_turn(rng: np.random.Generator) -> float:
    side = rng.choice([-1.0, 1.0])
    if rng.random() < 0.6:
        return side * (90.0 + rng.uniform(-4.0, 4.0))
    return side * rng.uniform(12.0, 35.0)


def _route_vertices(rng: np.random.Generator, length_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Corners of a self-avoiding street polyline at least ``length_m`` long, and their turns."""
    heading = rng.uniform(0.0, 360.0)
    verts = [np.zeros(2)]
    turns = [0.0]
    total = 0.0
    while total < length_m + 60.0:
        for _ in range(40):
            turn = 0.0 if len(verts) == 1 else _draw_turn(rng)
            seg = rng.uniform(110.0, 240.0)
            end = verts[-1] + seg * forward(heading + turn)
            if len(verts) < 3 or LineString(verts[:-1]).distance(LineString([verts[-1], end])) > 90.0:
                break
        turns[-1] = turn
        verts.append(end)
        turns.append(0.0)
        heading += turn
        total += seg
    return np.array(verts), np.array(turns)


def _corner_radius(turn_deg: float) -> float:
    return 10.0 if abs(turn_deg) >= 60.0 else 30.0


def _fillet(vertices: np.ndarray, turns: np.ndarray) -> Route:
    """Sample the polyline with each corner replaced by a circular arc."""
    tangent = np.array([_corner_radius(t) * np.tan(np.radians(abs(t)) / 2) for t in turns])
    pts, heads, curv, mids = [], [], [], []
    for i in range(len(vertices) - 1):
        d = vertices[i + 1] - vertices[i]
        length = float(np.linalg.norm(d))
        h = heading_of(d)
        start, end = tangent[i], length - tangent[i + 1]
        n = max(1, int(np.ceil((end - start) / STEP_M)))
        t = np.linspace(start, end, n, endpoint=False)
        pts.append(vertices[i] + t[:, None] * forward(h))
        heads.append(np.full(n, h))
        curv.append(np.zeros(n))
        if i + 1 < len(vertices) - 1:
            turn = float(turns[i + 1])
            radius = _corner_radius(turn)
            sgn = np.sign(turn)
            p0 = vertices[i] + end * forward(h)
            centre = p0 + sgn * radius * right_of(h)
            m = max(2, int(np.ceil(radius * np.radians(abs(turn)) / STEP_M)))
            ha = h + np.linspace(0.0, turn, m, endpoint=False)
            pts.append(centre - sgn * radius * right_of(ha))
            heads.append(ha % 360.0)
            curv.append(np.full(m, sgn / radius))
            mids.append(sum(len(p) for p in pts) - m // 2)
    pts.append(vertices[-1][None, :])
    heads.append(np.array([heads[-1][-1]]))
    curv.append(np.zeros(1))
    xy = np.concatenate(pts)
    s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])
    vertex_s = np.array([0.0, *(s[i] for i in mids), s[-1]])
    return Route(vertices, turns, xy, s, np.concatenate(heads), np.concatenate(curv), vertex_s)


# --- streets, areas and runs -------------------------------------------------------------------


def _stubs(route: Route) -> list[Street]:
    """Cross streets at each junction: the incoming street carried on, the outgoing one carried back."""
    stubs = []
    v, t = route.vertices, route.turns
    for i in range(1, len(v) - 1):
        if abs(t[i]) < 60.0:
            continue
        d_in = (v[i] - v[i - 1]) / np.linalg.norm(v[i] - v[i - 1])
        d_out = (v[i + 1] - v[i]) / np.linalg.norm(v[i + 1] - v[i])
        for d in (d_in, -d_out):
            stubs.append(Street(tuple(v[i]), tuple(v[i] + STUB_M * d)))
    return stubs


def _areas(route: Route, stubs: list[Street], pavement_m: float) -> tuple[Polygon, Polygon]:
    """The road surface and the road-plus-pavement area, as polygons."""
    line = LineString(route.xy)
    road = [line.buffer(ROAD_HALF_M, cap_style="flat")]
    paved = [line.buffer(ROAD_HALF_M + pavement_m, cap_style="flat")]
    for st in stubs:  # each arm of a crossroads, carried through the junction so that it is square
        seg = LineString([np.asarray(st.a) - 12.0 * st.direction, st.b])
        road.append(seg.buffer(ROAD_HALF_M, cap_style="flat"))
        paved.append(seg.buffer(ROAD_HALF_M + pavement_m, cap_style="flat"))
    return unary_union(road), unary_union(paved)


def _runs(route: Route, stubs: list[Street], pavement_m: float) -> list[Run]:
    """Straight kerb-side stretches: along each route leg between its arcs, and along each stub."""
    runs = []
    v, t = route.vertices, route.turns
    tangent = [_corner_radius(a) * np.tan(np.radians(abs(a)) / 2) for a in t]
    for i in range(len(v) - 1):
        d = v[i + 1] - v[i]
        t1 = float(np.linalg.norm(d)) - tangent[i + 1]
        for side in (1, -1):
            runs.append(Run(tuple(v[i]), heading_of(d), tangent[i], t1, side))
    clear = ROAD_HALF_M + pavement_m + 1.0
    for st in stubs:
        for side in (1, -1):
            runs.append(Run(st.a, heading_of(st.direction), clear, st.length, side))
    return runs


# --- markings ----------------------------------------------------------------------------------


def _dashes(points: np.ndarray, dash_m: float, gap_m: float) -> list[np.ndarray]:
    """Split a polyline into dashes of ``dash_m`` separated by ``gap_m``."""
    s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(points, axis=0).T))])
    out = []
    a = 0.0
    while a < s[-1]:
        b = min(a + dash_m, s[-1])
        ss = np.concatenate([[a], s[(s > a) & (s < b)], [b]])
        out.append(np.stack([np.interp(ss, s, points[:, 0]), np.interp(ss, s, points[:, 1])], axis=1))
        a = b + gap_m
    return out


def _runs_of(mask: np.ndarray) -> list[slice]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [slice(a, b) for a, b in zip(edges[::2], edges[1::2], strict=True) if b - a > 1]


def _markings(route: Route, stubs: list[Street]) -> list[tuple[np.ndarray, float]]:
    """Dashed centre lines and solid edge lines, interrupted at junctions."""
    lines: list[tuple[np.ndarray, float]] = []
    open_road = np.ones(len(route.s), dtype=bool)
    for sj in route.junctions():
        open_road &= np.abs(route.s - sj) > JUNCTION_CLEAR_M
    right = right_of(route.heading)
    for span in _runs_of(open_road):
        centre = route.xy[span]
        lines.extend((dash, 0.12) for dash in _dashes(centre, 3.0, 6.0))
        for side in (1, -1):
            lines.append((centre + side * (ROAD_HALF_M - 0.25) * right[span], 0.12))
    for st in stubs:
        d = st.direction
        r = np.array([d[1], -d[0]])
        a = np.asarray(st.a) + JUNCTION_CLEAR_M * d
        b = np.asarray(st.b)
        lines.extend((dash, 0.12) for dash in _dashes(np.array([a, b]), 3.0, 6.0))
        for side in (1, -1):
            off = side * (ROAD_HALF_M - 0.25) * r
            lines.append((np.array([a + off, b + off]), 0.12))
    return lines


def _zebra(origin: np.ndarray, heading_deg: float, along0: float) -> list[np.ndarray]:
    """Stripes of a zebra crossing spanning the road, ``along0``..``along0 + 3`` m along the street."""
    f, r = forward(heading_deg), right_of(heading_deg)
    stripes = []
    for q in np.arange(-ROAD_HALF_M + 0.45, ROAD_HALF_M - 0.3, 1.0):
        corners = [(along0, q - 0.25), (along0 + 3.0, q - 0.25), (along0 + 3.0, q + 0.25), (along0, q + 0.25)]
        stripes.append(np.array([origin + a * f + b * r for a, b in corners]))
    return stripes


def _stop_line(origin: np.ndarray, heading_deg: float, along: float) -> np.ndarray:
    f, r = forward(heading_deg), right_of(heading_deg)
    corners = [(along, 0.1), (along + 0.4, 0.1), (along + 0.4, ROAD_HALF_M - 0.1), (along, ROAD_HALF_M - 0.1)]
    return np.array([origin + a * f + b * r for a, b in corners])


def _crossings(rng: np.random.Generator, route: Route) -> tuple[list[np.ndarray], list[float]]:
    """Zebra crossings before each junction and at some mid-block spots; the stop points they give.

    A vehicle stopping for one halts with its camera about 2 m behind the stop line.
    """
    paint: list[np.ndarray] = []
    stops: list[float] = []
    line = LineString(route.xy)
    v, t = route.vertices, route.turns
    for i in range(len(v) - 1):
        h = heading_of(v[i + 1] - v[i])
        leg = float(np.linalg.norm(v[i + 1] - v[i]))
        if i + 1 < len(v) - 1 and abs(t[i + 1]) >= 60.0:
            paint += _zebra(v[i + 1], h, -10.5)
            paint.append(_stop_line(v[i + 1], h, -11.9))
            stops.append(line.project(Point(v[i + 1] - 13.9 * forward(h))))
        if leg > 120.0 and rng.random() < 0.75:
            along = rng.uniform(0.35, 0.65) * leg
            paint += _zebra(v[i], h, along)
            paint.append(_stop_line(v[i], h, along - 1.4))
            stops.append(line.project(Point(v[i] + (along - 3.4) * forward(h))))
    return paint, stops


# --- road wear ---------------------------------------------------------------------------------


def _wear(rng: np.random.Generator, route: Route) -> RoadWear:
    patches, cracks, manholes = [], [], []
    s = 5.0
    while s < route.length - 5.0:
        kind = rng.choice(["patch", "crack", "crack", "tar", "manhole"], p=[0.25, 0.3, 0.15, 0.2, 0.1])
        lateral = rng.uniform(-ROAD_HALF_M + 0.5, ROAD_HALF_M - 0.5)
        xy, h = route.pose(s)
        centre = xy + lateral * right_of(h)
        if kind == "patch":
            size = rng.uniform(0.6, 3.0, size=2)
            rot = h + rng.normal(0.0, 6.0)
            f, r = forward(rot), right_of(rot)
            corners = [
                centre + a * size[0] / 2 * f + b * size[1] / 2 * r for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1))
            ]
            patches.append((np.array(corners) + rng.normal(0.0, 0.05, (4, 2)), rng.choice([0.75, 0.85, 1.15, 1.25])))
        elif kind == "manhole":
            manholes.append((float(centre[0]), float(centre[1]), float(rng.uniform(0.3, 0.4))))
        else:
            cracks.append(_crack(rng, centre, h + rng.uniform(-80, 80), long=kind == "tar"))
        s += rng.exponential(6.0) + 1.0
    return RoadWear(tuple(patches), tuple(cracks), tuple(manholes))


def _crack(rng: np.random.Generator, start: np.ndarray, heading_deg: float, long: bool) -> np.ndarray:
    n = int(rng.integers(12, 40 if long else 20))
    step = 0.25 if long else 0.12
    heads = heading_deg + np.cumsum(rng.normal(0.0, 18.0, n))
    return start + np.cumsum(step * forward(heads), axis=0)


# --- hazards and signs -------------------------------------------------------------------------


SIGN_KINDS = ("warning", "yield", "speed", "no_entry", "mandatory", "info", "stop")


def _sign_art(rng: np.random.Generator) -> SignArt:
    kind = str(rng.choice(SIGN_KINDS, p=[0.22, 0.12, 0.18, 0.1, 0.14, 0.14, 0.1]))
    width = float(rng.uniform(0.6, 0.9))
    height = width * (rng.choice([1.4, 0.7]) if kind == "info" else 1.0)
    return SignArt(kind, int(rng.integers(0, 1000)), width, height)


def _junction_free(route: Route, s: float, clearance: float) -> bool:
    return bool(np.all(np.abs(route.junctions() - s) > clearance))


def _pothole(rng: np.random.Generator, route: Route, s: float, ident: str) -> Pothole:
    width = 0.3 + 1.2 * rng.beta(1.6, 2.4)
    limit = ROAD_HALF_M - 0.1 - width / 2
    lateral = rng.uniform(0.3, limit) if rng.random() < 0.78 else -rng.uniform(0.3, limit)
    x, y = route.point(s, lateral)
    heading = float(route.pose(s)[1])
    return Pothole(
        id=ident,
        x=float(x),
        y=float(y),
        width_m=round(float(width), 2),
        aspect=float(rng.uniform(0.45, 0.95)),
        rotation_deg=float(heading + 90.0 + rng.normal(0.0, 35.0)),
        darkness=float(rng.uniform(0.45, 0.75)),
        rim=float(rng.uniform(0.0, 1.0)),
        shape_seed=int(rng.integers(0, 2**31)),
        route_s=float(s),
        travel_deg=heading,
    )


def _fallen_sign(rng: np.random.Generator, route: Route, pavement_m: float, s: float, ident: str) -> Sign:
    _, h = route.pose(s)
    side = 1 if rng.random() < 0.7 else -1
    pose = str(rng.choice(["flat", "knocked_over", "leaning"], p=[0.4, 0.35, 0.25]))
    art = _sign_art(rng)
    face = (h + 180.0 + rng.normal(0, 10)) % 360.0
    twist = 0.0
    along = h if rng.random() < 0.5 else (h + 180.0) % 360.0
    outward = 1.0 if along == h else -1.0  # turning ``along`` by +outward*side leans away from the road
    if pose == "flat":
        on = "road" if rng.random() < 0.5 else "pavement"
        if on == "road":
            base_q, spread = rng.uniform(0.3, 2.0), 20.0
        else:
            base_q, spread = ROAD_HALF_M + rng.uniform(1.0, pavement_m - 1.0), 12.0
        tilt, tilt_heading = 90.0, (along + rng.uniform(-spread, spread)) % 360.0
        face = (tilt_heading + 180.0) % 360.0 if rng.random() < 0.85 else tilt_heading
    elif pose == "knocked_over":
        on = "pavement"
        base_q = ROAD_HALF_M + rng.uniform(0.25, 0.5)
        tilt = rng.uniform(62.0, 84.0)
        tilt_heading = (along + outward * side * rng.uniform(5.0, 35.0)) % 360.0
        face = (tilt_heading + 180.0) % 360.0
        # Twisting about the pole stands the plate on its edge; turn it towards the road.
        axis = np.cross([0.0, 0.0, 1.0], [*forward(tilt_heading), 0.0])[:2]
        to_road = -side * right_of(h)
        twist = -np.sign(axis @ to_road) * rng.uniform(30.0, 80.0)
    else:
        on = "pavement"
        base_q = ROAD_HALF_M + rng.uniform(0.25, 0.6)
        tilt = rng.uniform(25.0, 55.0)
        tilt_heading = rng.uniform(0.0, 360.0)
    x, y = route.point(s, side * base_q)
    return Sign(
        ident,
        float(x),
        float(y),
        art,
        float(rng.uniform(2.1, 2.6)),
        float(face),
        float(tilt),
        float(tilt_heading),
        float(twist),
        pose,
        on,
        float(s),
    )


def _standing_sign(rng: np.random.Generator, route: Route, s: float, ident: str) -> Sign:
    _, h = route.pose(s)
    side = 1 if rng.random() < 0.7 else -1
    faces_us = side > 0 or rng.random() < 0.5
    face = (h + (180.0 if faces_us else 0.0) + rng.normal(0, 8)) % 360.0
    x, y = route.point(s, side * (ROAD_HALF_M + rng.uniform(0.25, 0.6)))
    return Sign(
        ident,
        float(x),
        float(y),
        _sign_art(rng),
        float(rng.uniform(2.2, 2.8)),
        float(face),
        0.0,
        0.0,
        0.0,
        "upright",
        "pavement",
        float(s),
    )


def _hazards(rng: np.random.Generator, route: Route, pavement_m: float) -> tuple[list[Pothole], list[Sign]]:
    potholes: list[Pothole] = []
    signs: list[Sign] = []
    s, n = rng.uniform(25.0, 45.0), 0
    while s < route.length - 20.0:
        if _junction_free(route, s, 16.0):
            n += 1
            ident = f"H{n:03d}"
            if rng.random() < 0.6:
                potholes.append(_pothole(rng, route, s, ident))
            else:
                signs.append(_fallen_sign(rng, route, pavement_m, s, ident))
        s += rng.uniform(25.0, 55.0)
    s, n = rng.uniform(10.0, 40.0), 0
    while s < route.length - 10.0:
        if _junction_free(route, s, 12.0):
            n += 1
            signs.append(_standing_sign(rng, route, s, f"S{n:03d}"))
        s += rng.uniform(35.0, 80.0)
    return potholes, signs


# --- buildings and furniture -------------------------------------------------------------------

FACADE_COLOURS = (
    (150, 186, 206),  # Jerusalem stone
    (196, 202, 208),  # white plaster
    (165, 168, 170),  # grey concrete
    (122, 164, 196),  # sand
    (170, 176, 204),  # pale pink
    (140, 150, 150),  # weathered concrete
)
WINDOW_COLOURS = ((62, 56, 50), (105, 92, 78), (80, 84, 88))


def _building(rng: np.random.Generator, run: Run, t: float, width: float, q: float) -> Building:
    depth = rng.uniform(10.0, 16.0)
    out = run.outward
    f = forward(run.heading_deg)
    p0 = run.at(t, q)
    p1 = p0 + width * f
    footprint = np.array([p0, p1, p1 + depth * out, p0 + depth * out])
    if run.side > 0:  # keep front-left to front-right as seen from the street
        footprint = footprint[[1, 0, 3, 2]]
    low = rng.random() < 0.08
    height = rng.uniform(1.4, 2.2) if low else rng.choice([1, 2, 3, 4, 4, 5, 6, 7, 8]) * 3.1 + rng.uniform(0.5, 1.5)
    colour = np.array(FACADE_COLOURS[rng.integers(len(FACADE_COLOURS))]) * rng.uniform(0.85, 1.08)
    return Building(
        footprint=footprint,
        height_m=float(height),
        colour=tuple(int(c) for c in np.clip(colour, 0, 255)),
        window_colour=WINDOW_COLOURS[rng.integers(len(WINDOW_COLOURS))],
        windows=np.zeros((0, 4, 3)) if low else _windows(rng, footprint[0], footprint[1], height),
    )


def _windows(rng: np.random.Generator, left: np.ndarray, right: np.ndarray, height: float) -> np.ndarray:
    """Window quads slightly in front of the facade from ``left`` to ``right``."""
    width = float(np.linalg.norm(right - left))
    along = (right - left) / width
    normal = np.array([along[1], -along[0]])  # points out of the facade, towards the street
    spacing = rng.uniform(2.6, 3.6)
    ww, wh = rng.uniform(1.0, 1.6), rng.uniform(1.2, 1.6)
    cols = max(1, int(width // spacing))
    margin = (width - cols * spacing) / 2 + spacing / 2
    quads = []
    shop = rng.random() < 0.5
    if shop:
        quads.append(_quad(left, along, normal, 0.4, width - 0.4, 0.3, 2.6))
    for floor in range(1 if shop else 0, int((height - 1.0) // 3.1)):
        z0 = floor * 3.1 + 0.9
        for c in range(cols):
            mid = margin + c * spacing
            quads.append(_quad(left, along, normal, mid - ww / 2, mid + ww / 2, z0, z0 + wh))
    return np.array(quads) if quads else np.zeros((0, 4, 3))


def _quad(left, along, normal, a0, a1, z0, z1) -> np.ndarray:
    base = left + 0.03 * normal
    return np.array([[*(base + a * along), z] for a, z in ((a0, z1), (a1, z1), (a1, z0), (a0, z0))])


def _line_run(rng: np.random.Generator, run: Run, q: float, buildings: list[Building]) -> None:
    t = run.t0
    while t < run.t1 - 4.0:
        width = min(rng.uniform(8.0, 24.0), run.t1 - t)
        if rng.random() > 0.06:  # the rest are empty plots
            buildings.append(_building(rng, run, t, width, q + rng.uniform(0.0, 0.8)))
        t += width


def _furnish(
    rng: np.random.Generator, run: Run, pavement_m: float, trees: list[Tree], lights: list[StreetLight]
) -> None:
    t = run.t0 + rng.uniform(2.0, 15.0)
    while t < run.t1 - 2.0:
        if rng.random() < 0.55:
            x, y = run.at(t, ROAD_HALF_M + min(1.2, pavement_m / 2))
            trunk = rng.uniform(2.2, 3.2)
            k = 18
            blobs = np.column_stack(
                [
                    rng.normal(0, 0.9, k),
                    rng.normal(0, 0.9, k),
                    trunk + 1.3 + rng.normal(0, 0.7, k),
                    rng.uniform(0.45, 0.95, k),
                    rng.uniform(0.55, 1.0, k),
                ]
            )
            trees.append(Tree(float(x), float(y), float(trunk), blobs))
        t += rng.uniform(8.0, 22.0)
    t = run.t0 + rng.uniform(5.0, 30.0)
    while t < run.t1 - 2.0:
        x, y = run.at(t, ROAD_HALF_M + 0.5)
        lights.append(
            StreetLight(float(x), float(y), float(rng.uniform(7.0, 8.5)), (run.heading_deg - 90.0 * run.side) % 360.0)
        )
        t += rng.uniform(30.0, 40.0)


# --- the world ---------------------------------------------------------------------------------


def build_world(seed: int, min_length_m: float = MIN_ROUTE_M) -> World:
    """Generate the world for ``seed`` with a route at least ``min_length_m`` long.

    Independent random streams per component keep, for example, the hazards unchanged when the
    route is made longer.
    """
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, 20260601]).spawn(6)]
    rng_route, rng_cross, rng_wear, rng_hazard, rng_build, rng_misc = streams
    vertices, turns = _route_vertices(rng_route, max(min_length_m, MIN_ROUTE_M))
    route = _fillet(vertices, turns)
    pavement_m = float(rng_misc.uniform(3.0, 4.2))
    stubs = _stubs(route)
    road_area, paved_area = _areas(route, stubs, pavement_m)
    runs = _runs(route, stubs, pavement_m)
    paint, stops = _crossings(rng_cross, route)
    potholes, signs = _hazards(rng_hazard, route, pavement_m)
    buildings: list[Building] = []
    trees: list[Tree] = []
    lights: list[StreetLight] = []
    for run in runs:
        _line_run(rng_build, run, ROAD_HALF_M + pavement_m, buildings)
        _furnish(rng_build, run, pavement_m, trees, lights)
    legs = [Street(tuple(a), tuple(b)) for a, b in itertools.pairwise(vertices)]
    return World(
        seed=seed,
        route=route,
        streets=tuple(legs + stubs),
        runs=tuple(runs),
        pavement_m=pavement_m,
        road_area=road_area,
        paved_area=paved_area,
        lines=tuple(_markings(route, stubs)),
        paint=tuple(paint),
        wear=_wear(rng_wear, route),
        potholes=tuple(potholes),
        signs=tuple(signs),
        buildings=tuple(buildings),
        trees=tuple(trees),
        lights=tuple(lights),
        stop_s=tuple(sorted(stops)),
        pattern_heading_deg=heading_of(vertices[1] - vertices[0]),
    )
