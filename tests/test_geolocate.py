"""Localizer and deduplicator: ground projection, clustering, and real driving dynamics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detector.camera import CameraModel, load_camera
from detector.config import load_config
from detector.detections import Detections
from detector.geo import LocalFrame, geodesic_distance_m
from detector.pipeline.dedup.within_drive import cluster_drive
from detector.pipeline.localize import localize
from detector.pipeline.sources.gps import read_track
from detector.records import SampledFrame

CLASSES = ["pothole", "fallen_sign"]
CAMERA = CameraModel(width=1280, height=720, hfov_deg=90.0, height_m=1.4, pitch_deg=8.0)
IMAGE = np.zeros((720, 1280, 3), np.uint8)
LOC = load_config().localize
DEDUP = load_config().dedup


def frame_at(
    lat: float, lon: float, heading: float, utc: float = 0.0, index: int = 0, drive: str = "d1", odometer: float = 0.0
) -> SampledFrame:
    return SampledFrame(IMAGE, drive, index, utc, utc, lat, lon, heading, 8.0, odometer, 1.0)


def box_at(forward: float, right: float, width_m: float = 0.6, cls: int = 0, conf: float = 0.8) -> Detections:
    """The box of a hazard centred ``forward``/``right`` metres from the antenna.

    A pothole (class 0) is a flat ``width_m`` square on the road: its box spans the projection
    of its footprint. A sign (class 1) is an upright ``width_m`` square standing on that point.
    """
    if cls == 1:
        return plate_at(forward, width_m, 0.0, width_m, right, conf)
    half = width_m / 2
    f = forward + np.array([-half, -half, half, half])
    r = right + np.array([-half, half, -half, half])
    u, v = CAMERA.ground_to_pixel(f, r)
    return Detections(np.array([[u.min(), v.min(), u.max(), v.max()]], np.float32), np.array([conf], np.float32),
                      np.array([cls]))  # fmt: skip


def plate_at(
    forward: float, width_m: float, low_m: float, high_m: float, right: float = 0.0, conf: float = 0.9
) -> Detections:
    """The box of an upright sign plate ``width_m`` wide, ``low_m``-``high_m`` above the road, facing the camera."""
    f = np.full(4, forward)
    r = right + width_m / 2 * np.array([-1.0, 1.0, -1.0, 1.0])
    u, v = CAMERA.ground_to_pixel(f, r, up=np.array([low_m, low_m, high_m, high_m]))
    return Detections(np.array([[u.min(), v.min(), u.max(), v.max()]], np.float32), np.array([conf], np.float32),
                      np.array([1]))  # fmt: skip


@pytest.mark.parametrize(("heading", "cls"), [(0.0, 0), (90.0, 1), (215.0, 0), (359.0, 1)])
def test_detection_lands_at_its_ground_position(heading: float, cls: int):
    local = LocalFrame(31.25, 34.79)
    frame = frame_at(31.25, 34.79, heading)
    (s,) = localize(frame, box_at(12.0, 2.0, cls=cls), CLASSES, CAMERA, local, LOC)
    h = math.radians(heading)
    east, north = 12.0 * math.sin(h) + 2.0 * math.cos(h), 12.0 * math.cos(h) - 2.0 * math.sin(h)
    lat, lon = local.to_latlon(east, north)
    assert geodesic_distance_m(s.lat, s.lon, lat, lon) < 0.1
    assert s.range_m == pytest.approx(12.0, abs=0.1) and s.lateral_m == pytest.approx(2.0, abs=0.05)
    assert s.class_name == CLASSES[cls] and not s.far
    assert 3.0 < s.uncertainty_m < 4.0


def test_width_in_metres_from_the_box():
    frame = frame_at(31.25, 34.79, 0.0)
    (s,) = localize(frame, box_at(10.0, 0.0, width_m=0.8, cls=1), CLASSES, CAMERA, LocalFrame(31.25, 34.79), LOC)
    assert s.width_m == pytest.approx(0.8, rel=0.02)
    (s,) = localize(frame, box_at(10.0, 0.0, width_m=0.8, cls=0), CLASSES, CAMERA, LocalFrame(31.25, 34.79), LOC)
    assert s.width_m == pytest.approx(0.8, rel=0.1)  # measured at the near edge of the pothole


def test_a_leaning_plate_above_the_road_is_placed_by_its_width_not_where_its_edge_meets_the_road():
    local, frame = LocalFrame(31.25, 34.79), frame_at(31.25, 34.79, 0.0)
    box = plate_at(10.0, 0.8, 0.8, 1.4)  # a 0.8 m plate 10 m ahead, 0.8-1.4 m above the road
    naive = LOC.model_copy(update={"max_plate_width_m": 100.0})  # no size check: where the lower edge meets the road
    (beyond,) = localize(frame, box, CLASSES, CAMERA, local, naive)
    (placed,) = localize(frame, box, CLASSES, CAMERA, local, LOC)
    assert beyond.range_m > 20.0 and beyond.width_m > 1.6  # 10 m x 1.4 / (1.4 - 0.8): 23 m
    assert placed.range_m == pytest.approx(10.0, abs=1.0) and placed.width_m == LOC.plate_width_m
    assert (
        placed.uncertainty_m > localize(frame, box_at(10.0, 0.0, cls=1), CLASSES, CAMERA, local, LOC)[0].uncertainty_m
    )
    (pothole,) = localize(frame, box_at(10.0, 0.0, width_m=2.5, cls=0), CLASSES, CAMERA, local, LOC)
    assert pothole.range_m == pytest.approx(10.0, abs=0.1) and pothole.width_m > 2.0  # flat: however wide


def test_a_hanging_plate_too_small_to_range_by_is_not_placed():
    local, frame = LocalFrame(31.25, 34.79), frame_at(31.25, 34.79, 0.0)
    ranged = []
    for ahead in (30.0, 12.0):  # a 0.8 m plate 0.8-1.4 m above the road: 17 px wide at 30 m, 43 px at 12 m
        box = plate_at(ahead, 0.8, 0.8, 1.4)
        ranged.append([s.range_m for s in localize(frame, box, CLASSES, CAMERA, local, LOC)])
    assert ranged[0] == [] and ranged[1] == [pytest.approx(12.0, abs=1.0)]
    standing = box_at(30.0, 0.0, width_m=0.8, cls=1)  # as small, but standing on the road: placed by its contact
    assert localize(frame, standing, CLASSES, CAMERA, local, LOC)[0].range_m == pytest.approx(30.0, abs=0.5)


def test_a_plate_level_with_the_camera_stands_on_its_pole_and_is_not_placed():
    local, frame = LocalFrame(31.25, 34.79), frame_at(31.25, 34.79, 0.0)
    box = plate_at(15.0, 0.9, 1.7, 2.6)  # an upright 0.9 m plate 1.7-2.6 m up, 15 m ahead
    assert box.xyxy[0, 3] < CAMERA.horizon_row()  # the plate itself is above the horizon...
    box.xyxy[0, 3] = CAMERA.horizon_row() + 4  # ...and the detector's box reaches 4 px below it
    (pulled_back,) = localize(frame, box, CLASSES, CAMERA, local, LOC.model_copy(update={"max_contact_range_m": 1e9}))
    assert pulled_back.range_m < 15.0  # the size check alone would place this standing sign as a fallen one
    assert localize(frame, box, CLASSES, CAMERA, local, LOC) == []  # its lower edge meets the road 220 m ahead

    # A leaning plate's lower edge, 0.8 m up, is low enough (it meets the road 23 and 35 m ahead); potholes far off
    # are placed as before.
    for ahead in (10.0, 15.0):
        box = plate_at(ahead, 0.8, 0.8, 1.4)
        assert [s.range_m for s in localize(frame, box, CLASSES, CAMERA, local, LOC)] == [pytest.approx(ahead, rel=0.1)]
    assert localize(frame, box_at(90.0, 0.0, width_m=2.0), CLASSES, CAMERA, local, LOC)[0].far


def test_far_detections_count_with_a_larger_uncertainty():
    local = LocalFrame(31.25, 34.79)
    near = localize(frame_at(31.25, 34.79, 0), box_at(10, 0), CLASSES, CAMERA, local, LOC)[0]
    far = localize(frame_at(31.25, 34.79, 0), box_at(40, 0), CLASSES, CAMERA, local, LOC)[0]
    assert far.far and far.uncertainty_m > 3 * near.uncertainty_m


def test_no_sighting_above_the_horizon_or_without_heading():
    local = LocalFrame(31.25, 34.79)
    sky = Detections(np.array([[600, 100, 680, 200]], np.float32), np.array([0.9], np.float32), np.array([1]))
    assert localize(frame_at(31.25, 34.79, 0), sky, CLASSES, CAMERA, local, LOC) == []
    assert localize(frame_at(31.25, 34.79, float("nan")), box_at(10, 0), CLASSES, CAMERA, local, LOC) == []


def test_camera_profile_loads_and_rejects_unknown_keys(tmp_path):
    cam = load_camera("configs/cameras/sim_dashcam.yaml")
    assert cam.width == 1280 and cam.height_m == 1.4
    bad = tmp_path / "cam.yaml"
    bad.write_text("width: 1280\nheight: 720\nfov: 90\n")
    with pytest.raises(Exception, match=r"camera\.fov"):
        load_camera(bad)


def _drive_past(
    local: LocalFrame, hazards: list[tuple[float, float, int]], rng, noise_m: float = 0.0, drive="d1",
    riding: tuple[tuple[float, float, int], ...] = (),
) -> list:  # fmt: skip
    """Sightings from a vehicle driving north along x=0 every 3 m, seeing hazards 4-20 m ahead; and in every frame
    a box of each of ``riding`` (forward, right, class: what rides along with the vehicle)."""
    sightings = []
    gps_error = rng.normal(0, noise_m, 2)
    for i, y in enumerate(np.arange(-30.0, 80.0, 3.0)):
        lat, lon = local.to_latlon(gps_error[0], y + gps_error[1])
        frame = frame_at(float(lat), float(lon), 0.0, utc=i * 0.3, index=i, drive=drive, odometer=y + 30)
        ahead = [(hx, hy - y, cls) for hx, hy, cls in hazards if 4 <= hy - y <= 20]
        for right, fwd, cls in ahead + [(right, fwd, cls) for fwd, right, cls in riding]:
            box = box_at(fwd, right, cls=cls, conf=0.6)
            sightings += localize(frame, box, CLASSES, CAMERA, local, LOC)
    return sightings


def test_repeat_sightings_merge_and_neighbours_stay_apart():
    local = LocalFrame(31.25, 34.79)
    rng = np.random.default_rng(0)
    truth = [(1.0, 20.0, 0), (1.0, 26.0, 0), (-1.5, 26.0, 1), (3.0, 50.0, 0)]
    sightings = _drive_past(local, truth, rng)
    hazards = cluster_drive(sightings, local, DEDUP)
    assert len(hazards) == len(truth)
    for hz in hazards:
        x, y = hz.position
        assert min(math.hypot(x - tx, y - ty) for tx, ty, _ in truth) < 0.2
        assert len(hz.sightings) >= 5


@pytest.mark.parametrize("ahead", [3.0, 5.0, 7.5])
def test_what_rides_along_with_the_vehicle_is_no_hazard(ahead: float):
    """A box in the same place of every frame (the vehicle's shadow, a reflection in the windscreen) is placed the
    same distance ahead each time: without the rule, a confirmed hazard every few metres of the drive. The
    potholes and the sign it passes stay, each once, in place."""
    local = LocalFrame(31.25, 34.79)
    truth = [(1.0, 20.0, 0), (-1.5, 40.0, 1), (2.0, 62.0, 0)]
    riding = ((ahead, 0.3, 0), (ahead + 2.0, -1.0, 1))
    sightings = _drive_past(local, truth, np.random.default_rng(3), riding=riding)
    assert len(sightings) > 3 * 30  # every frame saw the riding boxes
    hazards = cluster_drive(sightings, local, DEDUP)
    assert sorted(h.class_name for h in hazards) == ["fallen_sign", "pothole", "pothole"]
    for hz in hazards:
        x, y = hz.position
        assert min(math.hypot(x - tx, y - ty) for tx, ty, _ in truth) < 0.5


def test_a_ride_along_chain_runs_on_across_live_segments():
    """A live segment closing mid-chain leaves too short a piece on each side to judge; the previous segment's
    last sightings carry it over."""
    import dataclasses

    from detector.pipeline.dedup.within_drive import riding

    shadow = _drive_past(LocalFrame(31.25, 34.79), [], np.random.default_rng(0), riding=((5.0, 0.3, 0),))
    first, second = shadow[:2], [dataclasses.replace(s, drive_id="d2") for s in shadow[2:4]]  # 2 frames, 3 m each
    assert not riding(first, DEDUP).any() and not riding(second, DEDUP).any()
    assert riding(second, DEDUP, before=first).all()


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "log", ["munich_2009-04-01.nmea", pytest.param("switzerland_2010-04-03.nmea", marks=pytest.mark.slow)]
)  # the motorway log's half hour, in the full run
def test_injected_detections_on_real_drives(shared_data, log: str):
    """Real dynamics (turns, stops, 130 km/h): every injected hazard comes back once, in place; a box 5 m ahead in
    every frame (what rides along with the vehicle) brings none, through the bends as on the straight."""
    track = read_track(shared_data / "gps" / "genivi" / log)
    traj = track.trajectory()
    t = np.arange(traj.start, min(traj.end, traj.start + 1800), 0.1)
    state = traj.at(t)
    ok = state.valid & (state.speed > 1.5)
    # One frame per 3 m of odometer, like the sampler.
    keep = np.flatnonzero(ok)[np.unique(np.floor(state.distance[ok] / 3.0), return_index=True)[1]]
    local = traj.frame
    fx, fy = local.to_xy(state.lat[keep], state.lon[keep])
    rng = np.random.default_rng(7)
    picks = rng.choice(np.arange(50, len(keep) - 50), size=25, replace=False)
    truth = []
    for i in picks:  # a hazard 1.5 m right of the vehicle's path, 12 m ahead of frame i
        h = math.radians(state.heading[keep[i + 4]])
        truth.append((fx[i + 4] + 1.5 * math.cos(h), fy[i + 4] - 1.5 * math.sin(h)))
    truth_xy = np.array(truth)
    sightings = []
    seen = np.zeros(len(truth), int)
    for j, idx in enumerate(keep):
        h = math.radians(state.heading[idx])
        dx, dy = truth_xy[:, 0] - fx[j], truth_xy[:, 1] - fy[j]
        fwd = dx * math.sin(h) + dy * math.cos(h)
        right = dx * math.cos(h) - dy * math.sin(h)
        frame = frame_at(
            float(state.lat[idx]), float(state.lon[idx]), float(state.heading[idx]), float(t[idx]), j,
            odometer=float(state.distance[idx]),
        )  # fmt: skip
        for k in np.flatnonzero((fwd > 4) & (fwd < 20) & (np.abs(right) < fwd)):
            sightings += localize(frame, box_at(fwd[k], right[k]), CLASSES, CAMERA, local, LOC)
            seen[k] += 1
        sightings += localize(frame, box_at(5.0, 0.3, conf=0.6), CLASSES, CAMERA, local, LOC)
    # A hazard placed on a tight bend or just before a GPS gap may never be in view: skip those.
    assert np.count_nonzero(seen >= 2) >= 20
    truth_xy = truth_xy[seen >= 2]
    hazards = cluster_drive(sightings, local, DEDUP)
    positions = np.array([hz.position for hz in hazards])
    nearest = np.min(
        np.hypot(positions[:, None, 0] - truth_xy[None, :, 0], positions[:, None, 1] - truth_xy[None, :, 1]), axis=0
    )
    assert np.all(nearest < 1.0), nearest
    # Hazards closer together than the merge radius legitimately become one.
    assert len(truth_xy) - 2 <= len(hazards) <= len(truth_xy)
