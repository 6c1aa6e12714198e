"""The street layout of a simulated world: the route, its cross streets, kerb-side runs, markings and wear."""

from __future__ import annotations

import numpy as np
from shapely.geometry import LineString, Point, Polygon
from shapely.ops import unary_union

from detector.simulate.world import ROAD_HALF_M, STEP_M, RoadWear, Route, Run, Street, forward, heading_of, right_of

STUB_M = 60.0  # how far cross streets extend beyond a junction
JUNCTION_CLEAR_M = 14.0  # no hazards or lane markings this close to a junction's centre


def draw_route(rng: np.random.Generator, length_m: float) -> Route:
    """A self-avoiding street route at least ``length_m`` long, its corners rounded into arcs."""
    return _fillet(*_route_vertices(rng, length_m))


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


def cross_streets(route: Route) -> list[Street]:
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


def street_areas(route: Route, stubs: list[Street], pavement_m: float) -> tuple[Polygon, Polygon]:
    """The road surface and the road-plus-pavement area, as polygons."""
    line = LineString(route.xy)
    road = [line.buffer(ROAD_HALF_M, cap_style="flat")]
    paved = [line.buffer(ROAD_HALF_M + pavement_m, cap_style="flat")]
    for st in stubs:  # each arm of a crossroads, carried through the junction so that it is square
        seg = LineString([np.asarray(st.a) - 12.0 * st.direction, st.b])
        road.append(seg.buffer(ROAD_HALF_M, cap_style="flat"))
        paved.append(seg.buffer(ROAD_HALF_M + pavement_m, cap_style="flat"))
    return unary_union(road), unary_union(paved)


def kerb_runs(route: Route, stubs: list[Street], pavement_m: float) -> list[Run]:
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


def lane_markings(route: Route, stubs: list[Street]) -> list[tuple[np.ndarray, float]]:
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


def crossings(rng: np.random.Generator, route: Route) -> tuple[list[np.ndarray], list[float]]:
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


def road_wear(rng: np.random.Generator, route: Route) -> RoadWear:
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
