"""The sign inventory: a plate's state from exact synthetic geometry, its way through the store (mapped, seen again,
missing on two passes, back), and the simulator's signs (truth with poses, a world changed between drives, the
oracle's plate boxes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detector.camera import CameraModel
from detector.config import load_config
from detector.detections import Detections
from detector.errors import ConfigError
from detector.geo import LocalFrame
from detector.pipeline.dedup.across_drives import FramePoses
from detector.pipeline.dedup.within_drive import cluster_drive
from detector.pipeline.localize import localize
from detector.pipeline.signs import FALLEN, drop_standing_fallen, inventory_line, judge_signs, placed_at, plate_fix
from detector.records import DriveHazard, DriveRecord, SampledFrame
from detector.simulate import simulate_drive
from detector.simulate.oracle import load_truth, oracle_for
from detector.store import HazardStore
from detector.store.merge import DriveResult, MergeSettings, merge_drive

SIGNS_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "signs-sim.yaml"
CFG = load_config(SIGNS_CONFIG)
CLASSES = list(CFG.detect.classes)
SIGN = CLASSES.index("traffic_sign")
CAMERA = CameraModel(width=1280, height=720, hfov_deg=90.0, height_m=1.4, pitch_deg=8.0)
LOCAL = LocalFrame(31.25, 34.79)
SIZE = (1280, 720)
ROAD_Y = np.arange(-40.0, 60.0, 2.0)  # a drive north along x = 0, a frame every 2 m
IMAGE = np.zeros((720, 1280, 3), np.uint8)  # what the localizer reads of a frame: its size


def plate_corners(x: float, y: float, z: float, width: float = 0.7, tilt_deg: float = 0.0) -> np.ndarray:
    """A plate facing south (towards a northbound car), centred at (x, y, z), tilted back by ``tilt_deg``."""
    t = np.radians(tilt_deg)
    half = width / 2
    up = np.array([0.0, np.sin(t), np.cos(t)]) * half  # leaning away from the car
    across = np.array([half, 0.0, 0.0])
    centre = np.array([x, y, z])
    return np.array([centre - across + up, centre + across + up, centre + across - up, centre - across - up])


def frames_seeing(corners: np.ndarray, road_y=ROAD_Y, drive: str = "d1", x0: float = 0.0):
    """The frames of a northbound drive along x = ``x0`` and each one's exact box of the plate (None: not in view)."""
    out = []
    for k, y in enumerate(road_y):
        lat, lon = (float(c) for c in LOCAL.to_latlon(x0, y))
        frame = SampledFrame(IMAGE, drive, k, 1000.0 + k, 1000.0 + k, lat, lon, 0.0, 8.0,
                             float(y - road_y[0]), 100.0)  # fmt: skip
        ahead = corners[:, 1] - y
        u, v = CAMERA.ground_to_pixel(ahead, corners[:, 0] - x0, up=corners[:, 2])
        box = None
        if ahead.min() > 1.0 and np.isfinite(u).all() and u.min() >= 0 and u.max() < 1280 and v.min() >= 0:
            box = [u.min(), v.min(), u.max(), v.max()]
        out.append((frame, box))
    return out


def sightings_of(corners: np.ndarray, **drive):
    """Sightings (through the localizer) of one plate over a drive, as the model would report it."""
    placed = []
    for frame, box in frames_seeing(corners, **drive):
        if box is None:
            continue
        found = Detections(np.array([box], np.float32), np.array([0.9], np.float32), np.array([SIGN]))
        placed += localize(frame, found, CLASSES, CAMERA, LOCAL, CFG.localize)
    return placed


def track_of(corners: np.ndarray, **drive):
    tracks = cluster_drive(sightings_of(corners, **drive), LOCAL, CFG.dedup)
    assert len(tracks) == 1, "one plate, one track"
    return tracks[0]


@pytest.mark.parametrize(
    ("z", "tilt", "state"),
    [(2.3, 0.0, "standing"), (3.4, 0.0, "standing"), (0.05, 88.0, "down"), (0.5, 0.0, "down"), (1.1, 0.0, "leaning"),
     (2.0, 70.0, "leaning")],
)  # fmt: skip
def test_a_plate_is_triangulated_from_exact_geometry_and_judged_by_its_height_and_tilt(z, tilt, state):
    corners = plate_corners(4.0, 30.0, z, tilt_deg=tilt)
    fix = plate_fix(track_of(corners), CAMERA, SIZE, LOCAL, CFG.signs, CFG.localize.plate_width_m)
    assert fix is not None and fix.triangulated and fix.views >= 4
    assert (fix.x, fix.y) == pytest.approx((4.0, 30.0), abs=0.15)
    assert fix.height_m == pytest.approx(z, abs=0.05)
    assert fix.state == state
    if tilt == 0.0:
        assert fix.tilt_deg < 25.0  # near upright the cosine is flat: a few pixels read as 10-20 degrees


def test_a_plate_of_another_size_is_placed_by_its_rays_not_by_its_width():
    corners = plate_corners(-5.0, 25.0, 2.5, width=1.2)  # left of the road, larger than plate_width_m
    fix = plate_fix(track_of(corners), CAMERA, SIZE, LOCAL, CFG.signs, CFG.localize.plate_width_m)
    assert fix.triangulated and (fix.x, fix.y) == pytest.approx((-5.0, 25.0), abs=0.15)
    assert fix.height_m == pytest.approx(2.5, abs=0.05) and fix.state == "standing"


def test_a_plate_on_its_pole_is_placed_by_the_localizer_where_a_box_edge_could_not():
    placed = sightings_of(plate_corners(4.0, 30.0, 2.3, width=CFG.localize.plate_width_m))
    assert len(placed) >= 4  # the box's lower edge is above the horizon: only its width ranges it
    xy = np.column_stack(LOCAL.to_xy([s.lat for s in placed], [s.lon for s in placed]))
    assert np.abs(xy - [4.0, 30.0]).max() < 1.0  # the plate is as wide as plate_width_m here: placed right


def test_judged_tracks_become_fallen_sign_hazards_or_standing_signs_and_nothing_without_the_class():
    down = track_of(plate_corners(3.0, 20.0, 0.05, tilt_deg=88.0))
    standing = track_of(plate_corners(4.0, 45.0, 2.3))
    hazards, signs = judge_signs([down, standing], CAMERA, SIZE, LOCAL, CFG)
    assert [h.class_name for h in hazards] == ["fallen_sign"]
    assert hazards[0].position == pytest.approx((3.0, 20.0), abs=0.3)
    assert {s.class_name for s in hazards[0].sightings} == {"fallen_sign"}  # its evidence goes with it
    assert [s.fix.state for s in signs] == ["down", "standing"]  # the inventory hears of both
    shipped = load_config()  # v11: pothole and fallen_sign only
    assert judge_signs([down], CAMERA, SIZE, LOCAL, shipped) == ([down], None)
    assert inventory_line(shipped) == "sign inventory: inactive (the model has no traffic_sign class)"
    assert inventory_line(CFG).startswith("sign inventory: on")


def _poses(drive: str, x0: float = 0.0) -> FramePoses:
    lat, lon = LOCAL.to_latlon(np.full_like(ROAD_Y, x0), ROAD_Y)
    return FramePoses(np.asarray(lat), np.asarray(lon), np.zeros_like(ROAD_Y), 1280, 720)


def _merge(store: HazardStore, drive: str, plates: list[np.ndarray], x0: float = 0.0):
    """One drive past ``plates`` (those still standing) into the store."""
    tracks = [track_of(c, drive=drive, x0=x0) for c in plates]
    hazards, signs = judge_signs(tracks, CAMERA, SIZE, LOCAL, CFG)
    record = DriveRecord(drive, drive, f"{drive}.mp4", f"{drive}.gpx", 1000.0, 1100.0, 100.0, len(ROAD_Y), "cam")
    evidence = {k: f"{drive}/{k:08d}.jpg" for k in range(len(ROAD_Y))}
    settings = MergeSettings(CFG.dedup, CFG.localize.gps_sigma_m, None, (), CFG.signs.missing_after)
    return merge_drive(store, DriveResult(record, hazards, _poses(drive, x0), CAMERA, evidence, signs), settings)


def test_signs_are_mapped_merged_across_drives_and_a_removed_one_goes_missing_on_two_passes(store_address):
    kept, taken = plate_corners(4.0, 20.0, 2.3), plate_corners(4.2, 44.0, 2.1)
    with HazardStore(store_address) as store:
        first = _merge(store, "d1", [kept, taken])
        assert (first.signs_new, first.signs_seen) == (2, 0)
        assert "signs: 2 new, 0 seen again, 0 down, 0 missing" in first.line()
        second = _merge(store, "d2", [kept], x0=0.6)  # another lane; the second sign is gone
        assert (second.signs_new, second.signs_seen, second.signs_missing) == (0, 1, 0)
        rows = store.query("SELECT * FROM signs ORDER BY id")
        assert [(r["views"], r["drive_count"], r["misses"], r["status"]) for r in rows][1][2:] == (1, "standing")
        assert rows[0]["drive_count"] == 2 and rows[0]["photo_path"].startswith("d")
        assert rows[0]["height_m"] == pytest.approx(2.3, abs=0.1)
        third = _merge(store, "d3", [kept])
        assert (third.signs_missing, third.held) == (1, 1)
        missing = store.query("SELECT * FROM signs WHERE status = 'missing'")
        assert len(missing) == 1 and missing[0]["lat"] == pytest.approx(float(LOCAL.to_latlon(4.2, 44.0)[0]), abs=2e-6)
        hazard = store.query("SELECT * FROM hazards WHERE id = ?", (missing[0]["missing_hazard_id"],))[0]
        assert (hazard["class"], hazard["status"]) == ("missing_sign", "candidate")  # held, never filed
        assert store.query("SELECT action FROM events WHERE hazard_id = ?", (hazard["id"],))[0]["action"] == "held"
        assert not store.query("SELECT 1 FROM outbox")
        assert _merge(store, "d4", [kept]).signs_missing == 0  # missing already: no second hazard
        back = _merge(store, "d5", [kept, taken])  # put back
        assert back.signs_seen == 2 and not store.query("SELECT 1 FROM signs WHERE status = 'missing'")
        assert store.query("SELECT status FROM hazards WHERE id = ?", (hazard["id"],))[0]["status"] == "repaired"
        assert len(store.query("SELECT 1 FROM signs")) == 2  # merged, never duplicated
        fallen = _merge(store, "d6", [plate_corners(4.6, 20.8, 0.05, tilt_deg=88.0), taken])  # the first knocked over
        assert (fallen.signs_down, fallen.signs_seen, fallen.new) == (1, 1, 1)  # a fallen_sign hazard, one sign down
        assert "1 down" in fallen.line()
        assert store.query("SELECT status FROM signs ORDER BY id")[0]["status"] == "down"
        later = [_merge(store, name, [taken]) for name in ("d7", "d8")]
        assert [r.signs_missing for r in later] == [0, 0]  # down is no missing sign: its hazard is the fallen one


def test_two_drives_of_one_world_differ_by_a_sign_knocked_down_and_one_taken_away(tmp_path: Path):
    base = {"world_seed": 5, "duration_s": 30.0}
    before = simulate_drive(tmp_path / "d1", {**base, "drive_seed": 1}, progress=False, render=False)
    after = simulate_drive(
        tmp_path / "d2", {**base, "drive_seed": 2, "knock_signs": 1, "remove_signs": 1}, progress=False, render=False
    )
    signs = [{f["properties"]["id"]: f["properties"] for f in json.loads(s.signs.read_text())["features"]}
             for s in (before, after)]  # fmt: skip
    changed = {k for k in signs[0] if signs[0][k]["pose"] != signs[1][k]["pose"]}
    knocked, removed = sorted(changed, key=lambda k: signs[1][k]["pose"])
    assert signs[0][knocked]["standing"] and signs[0][knocked]["centre_z_m"] > 1.5
    assert signs[1][knocked]["pose"] == "knocked_over" and signs[1][knocked]["centre_z_m"] < 0.7
    assert signs[1][removed]["pose"] == "removed" and "plate" not in signs[1][removed]
    assert len(signs[0][knocked]["plate"]) == 4 and all(len(c) == 3 for c in signs[0][knocked]["plate"])
    truth = [f["properties"]["id"] for f in json.loads(after.truth.read_text())["features"]]
    assert knocked in truth and knocked not in [f["id"] for f in load_truth(before.truth)]  # a hazard now
    again = simulate_drive(
        tmp_path / "d3", {**base, "drive_seed": 3, "knock_signs": 1, "remove_signs": 1}, progress=False, render=False
    )
    assert again.signs.read_text() == after.signs.read_text()  # the same change, whatever the drive


def test_the_oracle_draws_every_plate_in_view_as_a_traffic_sign_when_the_class_list_has_one(tmp_path: Path):
    summary = simulate_drive(tmp_path, {"world_seed": 5, "drive_seed": 1, "duration_s": 30.0}, False, render=False)
    video = tmp_path / "drive.mp4"
    geometry = oracle_for(video, CFG, emit=("pothole", "traffic_sign"))
    plain = oracle_for(video, load_config())
    assert not plain.plates  # the shipped classes: hazards only, as before
    t0 = float(geometry.t[0])
    classes = np.concatenate([geometry.boxes(t0 + dt)[1] for dt in np.arange(0.0, summary.duration_s, 1.0)])
    assert set(classes.tolist()) <= {CLASSES.index("pothole"), SIGN}  # no fallen_sign boxes: geometry must find them
    assert (classes == SIGN).sum() >= 10
    seen = {geometry.plates[k]["pose"] for k in np.flatnonzero(geometry.plate_views)}
    assert "upright" in seen and seen - {"upright"}  # standing plates and fallen ones alike


def test_a_config_file_may_name_the_class_its_own_class_list_adds_and_no_other(tmp_path: Path):
    assert CFG.detect.conf["traffic_sign"] == 0.4 and CFG.dedup.confirm_sightings["traffic_sign"] == 2
    stray = tmp_path / "stray.yaml"
    stray.write_text("detect:\n  conf: {traffic_sign: 0.4}\n", encoding="utf-8")  # no class list adds it
    with pytest.raises(ConfigError, match="unknown class traffic_sign"):
        load_config(stray)


def test_one_plate_tracked_twice_in_a_drive_is_one_sign():
    placed = sightings_of(plate_corners(4.0, 30.0, 2.3))
    far = cluster_drive([s for s in placed if s.range_m > 15.0], LOCAL, CFG.dedup)
    near = cluster_drive([s for s in placed if s.range_m <= 15.0], LOCAL, CFG.dedup)
    assert len(far) == len(near) == 1  # as the deduplicator splits a track over a gap
    hazards, signs = judge_signs([*far, *near], CAMERA, SIZE, LOCAL, CFG)
    assert hazards == [] and len(signs) == 1 and signs[0].fix.views == len(placed)
    assert signs[0].hazard.position == pytest.approx((4.0, 30.0), abs=0.15)


def as_fallen(corners: np.ndarray, **drive):
    """The track of a plate as v11 reports it: its true boxes, every one called ``fallen_sign``."""
    track = track_of(corners, **drive)
    return placed_at(track, FALLEN, *track.position)


def test_the_models_fallen_sign_tracks_at_a_standing_plates_height_are_left_out_inventory_on_or_off(caplog):
    standing = as_fallen(plate_corners(4.0, 45.0, 2.3))
    down = as_fallen(plate_corners(3.0, 20.0, 0.05, tilt_deg=88.0))
    leaning = as_fallen(plate_corners(-4.0, 30.0, 1.1))
    shipped = load_config()  # v11: no traffic_sign class, the inventory inactive
    with caplog.at_level("INFO", logger="detector.pipeline.signs"):
        hazards, signs = judge_signs([standing, down, leaning], CAMERA, SIZE, LOCAL, shipped)
    assert hazards == [down, leaning] and signs is None
    assert "1 fallen_sign track(s) triangulated where signs stand (a sign on its pole): left out" in caplog.text
    hazards, signs = judge_signs([standing, down], CAMERA, SIZE, LOCAL, CFG)  # the inventory on: not mapped either
    assert hazards == [down] and signs == []
    off = load_config(overrides=["signs.fallen_gate=false"])
    assert judge_signs([standing, down], CAMERA, SIZE, LOCAL, off) == ([standing, down], None)


def test_a_fallen_sign_track_too_short_to_judge_stays_and_other_classes_are_not_judged():
    standing = as_fallen(plate_corners(4.0, 45.0, 2.3))
    once = DriveHazard(FALLEN, LOCAL)
    once.add(standing.sightings[0], *standing.position)  # one frame: min_views is 2
    pothole = placed_at(standing, "pothole", *standing.position)  # boxes at a plate's height, another class
    settings, width = CFG.signs, CFG.localize.plate_width_m
    assert plate_fix(once, CAMERA, SIZE, LOCAL, settings, width) is None
    assert drop_standing_fallen([once, pothole, standing], CAMERA, SIZE, LOCAL, settings, width) == [once, pothole]
