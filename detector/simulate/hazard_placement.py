"""Where a simulated world's hazards stand: potholes, fallen and leaning signs, and upright signs on poles; and
how a world changes between two drives (:func:`change_signs`: a standing sign knocked down or taken away)."""

from __future__ import annotations

import dataclasses

import numpy as np

from detector.simulate.world import ROAD_HALF_M, Pothole, Route, Sign, SignArt, World, forward, right_of

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


def place_hazards(rng: np.random.Generator, route: Route, pavement_m: float) -> tuple[list[Pothole], list[Sign]]:
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


CHANGE_FROM_M = 60.0  # signs changed between drives stand this far along the route or more: every drive passes them


def changeable_signs(world: World) -> list[Sign]:
    """The standing signs a change between drives picks from, in the order it picks them: on the right of the route
    (a patrol passes them close), facing the traffic, from :data:`CHANGE_FROM_M` on, nearest the start first."""
    picked = []
    for sign in sorted(world.signs, key=lambda s: s.route_s):
        if sign.pose != "upright" or sign.route_s < CHANGE_FROM_M:
            continue
        centre, heading = world.route.pose(sign.route_s)
        side = float((np.array([sign.x, sign.y]) - centre) @ right_of(heading))
        facing = np.cos(np.radians(sign.face_heading_deg - heading - 180.0)) > 0.5
        if side > 0 and facing:
            picked.append(sign)
    return picked


def change_signs(world: World, knock: int, remove: int, damage: int = 0) -> World:
    """``world`` as a later drive finds it: its first ``knock`` changeable signs (:func:`changeable_signs`) knocked
    down onto the pavement, the next ``remove`` taken away (kept in ``World.removed_signs`` for the truth), the next
    ``damage`` damaged but standing (the plate twisted on its pole, the pole bent a little: ``Sign.damaged``). The
    choice depends on the world alone, so a drive with and one without the change see the same signs otherwise.

    >>> from detector.simulate.generate import build_world
    >>> world = build_world(5)
    >>> later = change_signs(world, 1, 1)
    >>> [s.pose for s in later.signs if s.id == changeable_signs(world)[0].id], len(later.removed_signs)
    (['knocked_over'], 1)
    """
    chosen = changeable_signs(world)
    knocked = {s.id for s in chosen[:knock]}
    removed = {s.id for s in chosen[knock : knock + remove]}
    damaged = {s.id for s in chosen[knock + remove : knock + remove + damage]}
    signs = []
    for sign in world.signs:
        if sign.id in removed:
            continue
        if sign.id in knocked:
            _, heading = world.route.pose(sign.route_s)
            # Knocked over along the kerb, the plate twisted up towards the road: it lies at knee height.
            sign = dataclasses.replace(
                sign, pose="knocked_over", tilt_deg=78.0, tilt_heading_deg=float(heading), twist_deg=-60.0
            )
        elif sign.id in damaged:  # hit by a mirror: the plate turned 35 degrees, the pole 8 off vertical
            _, heading = world.route.pose(sign.route_s)
            sign = dataclasses.replace(
                sign, tilt_deg=8.0, tilt_heading_deg=float(heading + 90.0), twist_deg=35.0, damaged=True
            )
        signs.append(sign)
    gone = tuple(s for s in world.signs if s.id in removed)
    return dataclasses.replace(world, signs=tuple(signs), removed_signs=world.removed_signs + gone)
