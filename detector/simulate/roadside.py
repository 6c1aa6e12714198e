"""Beside a simulated world's streets: buildings with windows, trees and street lights."""

from __future__ import annotations

import numpy as np

from detector.simulate.world import ROAD_HALF_M, Building, Run, StreetLight, Tree, forward

FACADE_COLOURS = (
    (150, 186, 206),  # Jerusalem stone
    (196, 202, 208),  # white plaster
    (165, 168, 170),  # grey concrete
    (122, 164, 196),  # sand
    (170, 176, 204),  # pale pink
    (140, 150, 150),  # weathered concrete
)
WINDOW_COLOURS = ((62, 56, 50), (105, 92, 78), (80, 84, 88))


def furnish_runs(
    rng: np.random.Generator, runs: list[Run], pavement_m: float
) -> tuple[list[Building], list[Tree], list[StreetLight]]:
    """Buildings along each kerb-side run, and the trees and street lights on its pavement."""
    buildings: list[Building] = []
    trees: list[Tree] = []
    lights: list[StreetLight] = []
    for run in runs:
        _line_run(rng, run, ROAD_HALF_M + pavement_m, buildings)
        _furnish(rng, run, pavement_m, trees, lights)
    return buildings, trees, lights


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
