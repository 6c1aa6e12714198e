"""The drive simulator: its files, determinism, GPS error, stops, and camera geometry."""

from __future__ import annotations

import csv
import dataclasses
import json
from datetime import datetime
from pathlib import Path

import av
import cv2
import gpxpy
import numpy as np
import pytest
from conftest import PROJECT
from shapely.geometry import LineString, Point

from detector.config import simulator_settings
from detector.geo import LocalFrame
from detector.simulate import RENDER_KEY, cached_drive, simulate_drive
from detector.simulate.generate import build_world
from detector.simulate.labels import LABEL_FIELDS, HazardShape, frame_boxes, hazard_shapes
from detector.simulate.motion import Lighting
from detector.simulate.render import CameraPose, FrameRenderer, SimulatedCamera, ground_homography, project_points
from detector.simulate.world import LANE_M, Pothole, RoadWear

SMALL = {"width": 320, "height": 180, "fps": 10}
ORIGIN = LocalFrame(simulator_settings().origin.lat, simulator_settings().origin.lon)


def _gpx_points(path: Path):
    return gpxpy.parse(path.read_text()).tracks[0].segments[0].points


def _trajectory(path: Path) -> dict[str, np.ndarray]:
    with path.open() as f:
        rows = list(csv.DictReader(f))
    times = np.array([datetime.fromisoformat(r["time"].replace("Z", "+00:00")).timestamp() for r in rows])
    cols = {k: np.array([float(r[k]) for r in rows]) for k in ("lat", "lon", "speed", "heading")}
    return {"time": times, **cols}


@pytest.fixture(scope="module")
def short_drive(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    return out, simulate_drive(out, {**SMALL, "duration_s": 4.0}, progress=False)


@pytest.fixture(scope="module")
def minute_drives(tmp_path_factory):
    """60 s drives without video: noisy (3 m) and exact GPS, same seeds."""
    base = tmp_path_factory.mktemp("minute")
    noisy = simulate_drive(base / "noisy", {**SMALL, "duration_s": 60.0}, progress=False, render=False)
    exact = simulate_drive(
        base / "exact", {**SMALL, "duration_s": 60.0, "gps_noise_m": 0.0}, progress=False, render=False
    )
    return noisy, exact


def test_short_drive_writes_video_with_every_frame_and_keyframes(short_drive):
    out, summary = short_drive
    for name in ("drive.mp4", "drive.gpx", "truth.geojson", "camera.yaml", "trajectory.csv", "labels.csv"):
        assert (out / name).is_file(), name
    assert summary.frames == 40
    with av.open(str(out / "drive.mp4")) as container:
        created = container.metadata.get("creation_time", "")
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (320, 180)
        assert stream.codec_context.name == "h264"
        frames = list(container.decode(video=0))
    assert created.startswith(summary.start_utc[:19])
    assert len(frames) == 4.0 * 10
    assert [i for i, f in enumerate(frames) if f.key_frame] == [0, 10, 20, 30]
    image = frames[20].to_ndarray(format="bgr24")
    assert image.std() > 20  # a scene, not a blank frame


def test_short_drive_gpx_has_speed_course_and_time(short_drive):
    out, summary = short_drive
    points = _gpx_points(out / "drive.gpx")
    assert abs(len(points) - 4) <= 1
    assert all(p.speed is not None and p.course is not None for p in points)
    assert all(0 <= p.course < 360 and 5.0 < p.speed < 15.0 for p in points)
    first = points[0].time
    assert first.utcoffset().total_seconds() == 0
    assert first.strftime("%Y-%m-%dT%H:%M:%SZ") == summary.start_utc
    assert '<gpx xmlns="http://www.topografix.com/GPX/1/0"' in (out / "drive.gpx").read_text()


def test_truth_lists_hazards_inside_the_route_area(short_drive):
    out, summary = short_drive
    doc = json.loads((out / "truth.geojson").read_text())
    features = doc["features"]
    assert doc["type"] == "FeatureCollection" and len(features) >= 15
    assert {f["properties"]["class"] for f in features} == {"pothole", "fallen_sign"}
    assert sum(summary.hazards.values()) == len(features)
    x0, y0, x1, y1 = build_world(1).bounds()
    for f in features:
        assert f["geometry"]["type"] == "Point"
        lon, lat = f["geometry"]["coordinates"]
        x, y = ORIGIN.to_xy(lat, lon)
        assert x0 <= x <= x1 and y0 <= y <= y1
        props = f["properties"]
        assert 0.3 <= props["width_m"] <= 1.5 and props["on"] in {"road", "pavement"}
        if props["class"] == "fallen_sign":
            assert props["pose"] in {"flat", "knocked_over", "leaning"}


def test_same_seeds_same_files_and_other_drive_seed_same_world(tmp_path):
    settings = {**SMALL, "duration_s": 8.0}
    runs = {
        name: simulate_drive(tmp_path / name, {**settings, "drive_seed": seed}, progress=False, render=False)
        for name, seed in (("a", 3), ("b", 3), ("c", 4))
    }
    text = {name: ((s.truth.read_text(), s.gpx.read_text())) for name, s in runs.items()}
    assert text["a"] == text["b"]
    assert text["a"][0] == text["c"][0]
    assert text["a"][1] != text["c"][1]


def test_different_drives_follow_the_same_streets(tmp_path):
    route = LineString(build_world(2).route.xy)
    tracks = []
    for seed in (1, 2):
        summary = simulate_drive(
            tmp_path / str(seed),
            {**SMALL, "world_seed": 2, "drive_seed": seed, "duration_s": 30.0},
            progress=False,
            render=False,
        )
        track = _trajectory(summary.trajectory)
        x, y = ORIGIN.to_xy(track["lat"], track["lon"])
        offsets = np.array([route.distance(Point(a, b)) for a, b in zip(x[::10], y[::10], strict=True)])
        assert offsets.max() < LANE_M  # in the lane, right of the centreline
        tracks.append((x, y))
    assert not np.allclose(tracks[0][0], tracks[1][0])


def _rms_gps_error(summary) -> float:
    track = _trajectory(summary.trajectory)
    points = _gpx_points(summary.gpx)
    t = np.array([p.time.timestamp() for p in points])
    lat = np.interp(t, track["time"], track["lat"])
    lon = np.interp(t, track["time"], track["lon"])
    gx, gy = ORIGIN.to_xy([p.latitude for p in points], [p.longitude for p in points])
    tx, ty = ORIGIN.to_xy(lat, lon)
    return float(np.sqrt(np.mean((gx - tx) ** 2 + (gy - ty) ** 2)))


def test_gps_error_matches_the_noise_setting(minute_drives):
    noisy, exact = minute_drives
    assert 1.0 < _rms_gps_error(noisy) < 6.0
    assert _rms_gps_error(exact) < 0.2


def test_a_minute_of_driving_has_a_full_stop(minute_drives):
    noisy, _ = minute_drives
    track = _trajectory(noisy.trajectory)
    still = track["speed"] < 0.3
    edges = np.flatnonzero(np.diff(np.concatenate([[0], still.astype(np.int8), [0]])))
    longest = max((b - a for a, b in zip(edges[::2], edges[1::2], strict=True)), default=0) / SMALL["fps"]
    assert longest >= 2.0
    assert noisy.stops >= 1
    assert track["speed"].max() > 8.0


def test_projection_agrees_with_ground_homography():
    camera = SimulatedCamera(640, 360, pitch_deg=8.0, roll_deg=3.0)
    pose = CameraPose(12.0, -40.0, 63.0)
    ground = np.array([[20.0, -35.0, 0.0], [30.0, -30.0, 0.0], [14.0, -38.0, 0.0]])
    uv, depth = project_points(camera, pose, ground)
    h = ground_homography(camera, pose) @ np.column_stack([ground[:, :2], np.ones(3)]).T
    assert np.all(depth > 0)
    np.testing.assert_allclose(uv, (h[:2] / h[2]).T, atol=1e-6)
    behind, _ = project_points(camera, pose, [[12.0 - 10 * np.sin(np.radians(63)), -40.0, 0.0]])
    assert np.isnan(behind).all()


@pytest.mark.slow  # two full frames of a whole world rendered
def test_rendered_pothole_is_where_the_projection_says():
    world = build_world(5)
    s = 60.0  # on the first street, which is straight for at least 100 m
    centre = world.route.point(s + 8.0, LANE_M / 2)
    hole = Pothole("T1", float(centre[0]), float(centre[1]), 1.0, 0.9, 0.0, 0.6, 0.5, 7, s + 8.0)
    bare = dataclasses.replace(world, potholes=(), signs=(), wear=RoadWear((), (), ()), buildings=(), trees=())
    camera = SimulatedCamera(640, 360)
    light = Lighting(0.0, 60.0, 0.0, 1.0, (1.0, 1.0, 1.0))
    pose = CameraPose(*world.route.point(s, LANE_M / 2), float(world.route.pose(s)[1]))

    def region(radius_m: float) -> np.ndarray:
        a = np.linspace(0, 2 * np.pi, 48)
        ring = np.column_stack([centre[0] + radius_m * np.cos(a), centre[1] + radius_m * np.sin(a), np.zeros(48)])
        uv, _ = project_points(camera, pose, ring)
        mask = np.zeros((camera.height, camera.width), np.uint8)
        cv2.fillPoly(mask, [np.round(uv).astype(np.int32)], 1)
        return mask.astype(bool)

    inner = region(0.3)
    ring = region(1.0) & ~region(0.6)
    with_hole = FrameRenderer(dataclasses.replace(bare, potholes=(hole,)), camera, light).render(pose)
    without = FrameRenderer(bare, camera, light).render(pose)
    grey = cv2.cvtColor(with_hole, cv2.COLOR_BGR2GRAY).astype(float)
    plain = cv2.cvtColor(without, cv2.COLOR_BGR2GRAY).astype(float)
    assert inner.sum() > 20
    assert grey[inner].mean() < grey[ring].mean() - 20
    assert grey[inner].mean() < plain[inner].mean() - 20


@pytest.mark.parametrize(
    "pose",
    ["flat", pytest.param("knocked_over", marks=pytest.mark.slow), pytest.param("leaning", marks=pytest.mark.slow)],
)  # two whole frames rendered each: one pose in the quick run, all three in the full one
def test_label_box_covers_the_fallen_sign_the_renderer_draws(pose: str) -> None:
    world = next(w for w in map(build_world, range(3, 40)) if any(s.pose == pose for s in w.signs))
    sign = next(s for s in world.signs if s.pose == pose)
    camera = SimulatedCamera(640, 360)
    light = Lighting(0.0, 60.0, 0.0, 1.0, (1.0, 1.0, 1.0))
    view = CameraPose(
        *world.route.point(sign.route_s - 9.0, LANE_M / 2), float(world.route.pose(sign.route_s - 9.0)[1])
    )
    others = tuple(s for s in world.signs if s is not sign)
    shown = FrameRenderer(world, camera, light).render(view)
    hidden = FrameRenderer(dataclasses.replace(world, signs=others), camera, light).render(view)
    changed = np.abs(shown.astype(int) - hidden.astype(int)).max(axis=2) > 30

    boxes = [b for b in frame_boxes(hazard_shapes(world), camera, view) if b.id == sign.id]
    assert len(boxes) == 1 and 5.0 < boxes[0].range_m < 12.0
    x1, y1, x2, y2 = np.round(boxes[0].box).astype(int)
    assert changed[y1 : y2 + 1, x1 : x2 + 1].mean() > 0.3  # the plate is drawn inside the box
    rows, cols = np.nonzero(changed)  # the plate's rectangle: a round or triangular sign leaves its corners empty
    slack = 2 + 0.15 * max(x2 - x1, y2 - y1)
    assert x1 >= cols.min() - slack and x2 <= cols.max() + slack
    assert y1 >= rows.min() - slack and y2 <= rows.max() + slack


def test_label_fill_tells_a_plate_from_a_sliver_across_its_box() -> None:
    camera, view = SimulatedCamera(640, 360), CameraPose(0.0, 0.0, 0.0)  # looking north
    square = np.array([[-0.4, 8.0, 0.3], [0.4, 8.0, 0.3], [0.4, 8.0, 1.1], [-0.4, 8.0, 1.1]])  # facing the camera
    sliver = np.array([[-0.4, 8.0, 0.3], [-0.34, 8.0, 0.3], [0.4, 8.0, 1.1], [0.34, 8.0, 1.1]])  # a thin diagonal
    boxes = frame_boxes([HazardShape("A", 1, square), HazardShape("B", 1, sliver)], camera, view)
    fills = {b.id: b.fill for b in boxes}
    assert fills["A"] > 0.95
    assert fills["B"] < 0.1


def test_cached_drive_renders_again_only_when_the_simulator_changed(tmp_path) -> None:
    settings = {**SMALL, "duration_s": 0.5}
    folder = cached_drive(tmp_path / "drive", False, **settings)
    video, stamp, labels = folder / "drive.mp4", folder / RENDER_KEY, folder / "labels.csv"
    first = video.stat().st_mtime_ns
    assert cached_drive(tmp_path / "drive", False, **settings) == folder and video.stat().st_mtime_ns == first

    labels.write_text("frame,id,class,x1,y1,x2,y2,range_m,visible\n")  # a cache from before the fill column
    cached_drive(tmp_path / "drive", False, **settings)
    assert video.stat().st_mtime_ns == first  # labelled again, not rendered again
    assert labels.read_text().splitlines()[0].split(",") == list(LABEL_FIELDS)

    key = stamp.read_text()
    stamp.write_text("rendered-by-older-code\n")
    cached_drive(tmp_path / "drive", False, **settings)
    assert video.stat().st_mtime_ns != first and stamp.read_text() == key
    assert not (tmp_path / "drive.partial").exists()


def test_the_sample_drives_gis_layers_are_what_the_simulator_writes(tmp_path: Path):
    from pyogrio.raw import read

    summary = simulate_drive(tmp_path, {"world_seed": 1, "drive_seed": 1, "duration_s": 60.0}, False, render=False)
    for layer in (summary.covers, summary.streets):
        assert layer.name in {p.name for p in summary.paths()}
        fresh, committed = read(layer), read(PROJECT / "sample_footage" / layer.name)
        assert fresh[0]["crs"] == committed[0]["crs"] == "EPSG:2039"
        assert list(fresh[3][0]) == list(committed[3][0]) and len(fresh[3][0]) > 10
        assert fresh[2].tolist() == committed[2].tolist()  # the same features, byte for byte


def test_each_cross_street_carries_the_name_of_the_street_it_continues():
    from detector.simulate.citymap import street_names

    world = build_world(1)
    names = street_names(world)
    legs = len(world.route.vertices) - 1
    assert len(names) == len(world.streets) and len(set(names[:legs])) == legs  # a new street after each corner
    for stub, name in zip(world.streets[legs:], names[legs:], strict=True):
        (leg,) = [k for k in range(legs) if names[k] == name]
        d = world.streets[leg].direction
        assert stub.a in (world.streets[leg].a, world.streets[leg].b) and abs(float(np.dot(d, stub.direction))) > 0.99
