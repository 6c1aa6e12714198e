"""Build a simulated street world from its seed."""

from __future__ import annotations

import itertools

import numpy as np

from detector.simulate.hazard_placement import place_hazards
from detector.simulate.roadside import furnish_runs
from detector.simulate.streets import (
    cross_streets,
    crossings,
    draw_route,
    kerb_runs,
    lane_markings,
    road_wear,
    street_areas,
)
from detector.simulate.world import Street, World, heading_of

MIN_ROUTE_M = 1200.0


def build_world(seed: int, min_length_m: float = MIN_ROUTE_M) -> World:
    """Generate the world for ``seed`` with a route at least ``min_length_m`` long.

    Independent random streams per component keep, for example, the hazards unchanged when the
    route is made longer.

    >>> world = build_world(5)
    >>> world.route.length >= MIN_ROUTE_M, [p.id for p in world.potholes] == [p.id for p in build_world(5).potholes]
    (True, True)
    """
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, 20260601]).spawn(6)]
    rng_route, rng_cross, rng_wear, rng_hazard, rng_build, rng_misc = streams
    route = draw_route(rng_route, max(min_length_m, MIN_ROUTE_M))
    pavement_m = float(rng_misc.uniform(3.0, 4.2))
    stubs = cross_streets(route)
    road_area, paved_area = street_areas(route, stubs, pavement_m)
    runs = kerb_runs(route, stubs, pavement_m)
    paint, stops = crossings(rng_cross, route)
    potholes, signs = place_hazards(rng_hazard, route, pavement_m)
    buildings, trees, lights = furnish_runs(rng_build, runs, pavement_m)
    legs = [Street(tuple(a), tuple(b)) for a, b in itertools.pairwise(route.vertices)]
    return World(
        seed=seed,
        route=route,
        streets=tuple(legs + stubs),
        runs=tuple(runs),
        pavement_m=pavement_m,
        road_area=road_area,
        paved_area=paved_area,
        lines=tuple(lane_markings(route, stubs)),
        paint=tuple(paint),
        wear=road_wear(rng_wear, route),
        potholes=tuple(potholes),
        signs=tuple(signs),
        buildings=tuple(buildings),
        trees=tuple(trees),
        lights=tuple(lights),
        stop_s=tuple(sorted(stops)),
        pattern_heading_deg=heading_of(route.vertices[1] - route.vertices[0]),
    )
