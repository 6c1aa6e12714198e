"""Cross-drive association without a store: GPS shift, matching, expected views and misses, over plain records."""

from __future__ import annotations

import numpy as np
import pytest
from test_geolocate import CAMERA

from detector.config import load_config
from detector.geo import LocalFrame
from detector.pipeline.dedup.across_drives import (
    FramePoses,
    Miss,
    StoredHazard,
    associate,
    count_misses,
    frames_in_view,
    gps_shifts,
    match_stored,
)
from detector.records import DriveHazard, Sighting

LOCAL = LocalFrame(31.25, 34.79)
SETTINGS = load_config().dedup  # the shipped rules: miss_limit 2, good view 4-18 m, 3 frames
ROAD_Y = np.arange(-30.0, 80.0, 3.0)  # a drive north along x = 0, a frame every 3 m


def _hazard(class_name: str, x: float, y: float, sigma: float = 0.5) -> DriveHazard:
    """A drive hazard of one sighting at local (x, y), its position ``sigma`` metres uncertain."""
    lat, lon = (float(c) for c in LOCAL.to_latlon(x, y))
    sighting = Sighting(
        drive_id="d1", frame_index=0, utc=0.0, odometer_m=0.0, class_name=class_name, confidence=0.8, lat=lat, lon=lon,
        range_m=10.0, lateral_m=0.0, uncertainty_m=sigma, width_m=0.5, bbox=(0.0, 0.0, 1.0, 1.0),
        vehicle_lat=lat, vehicle_lon=lon, heading=0.0, far=False,
    )  # fmt: skip
    hazard = DriveHazard(class_name, LOCAL)
    hazard.add(sighting, x, y)
    return hazard


def _stored(id: int, class_name: str, x: float, y: float, status: str = "confirmed", misses: int = 0) -> StoredHazard:
    lat, lon = (float(c) for c in LOCAL.to_latlon(x, y))
    return StoredHazard(id, class_name, lat, lon, 0.5, status, misses)


def _poses() -> FramePoses:
    lat, lon = LOCAL.to_latlon(np.zeros_like(ROAD_Y), ROAD_Y)
    return FramePoses(np.asarray(lat), np.asarray(lon), np.zeros_like(ROAD_Y), 1280, 720)


def _xy(hazards) -> np.ndarray:
    return np.array([[x, y] for x, y in hazards], float)


def test_a_drives_gps_offset_is_recovered_from_the_hazards_it_sees_again():
    stored_xy = _xy([(1.0, 20.0), (-1.0, 26.0), (2.0, 50.0)])
    stored = [_stored(k + 1, "pothole", x, y) for k, (x, y) in enumerate(stored_xy)]
    offset = np.array([3.0, 2.0])  # this drive's GPS is 3 m east and 2 m north of the map
    drive_xy = np.vstack([stored_xy + offset, [[0.0, 35.0], [0.0, 400.0]]])
    classes = ["pothole"] * 3 + ["fallen_sign", "pothole"]  # a sign never stored; a pothole 350 m on
    shifts = gps_shifts(drive_xy, classes, stored_xy, stored, gps_sigma_m=3.0)
    assert shifts[:4] == pytest.approx(np.tile(-offset, (4, 1)))  # the sign's neighbours share their offset
    assert shifts[4].tolist() == [0.0, 0.0]  # no re-observed hazard within 150 m
    assert gps_shifts(drive_xy, classes, None, [], gps_sigma_m=3.0).tolist() == np.zeros((5, 2)).tolist()


def test_a_hazard_matches_the_stored_one_within_its_radius_closest_first_one_to_one():
    stored_xy = _xy([(0.0, 20.0), (0.0, 60.0), (10.0, 40.0)])
    stored = [_stored(1, "pothole", 0.0, 20.0), _stored(2, "pothole", 0.0, 60.0), _stored(3, "fallen_sign", 10.0, 40.0)]
    hazards = [
        _hazard("pothole", 2.0, 20.0),  # 2.0 m from stored 1: within 2.5 m
        _hazard("pothole", 0.0, 63.0),  # 3.0 m from stored 2: outside
        _hazard("pothole", 0.5, 20.0),  # closer to stored 1 than the first: it takes it
        _hazard("pothole", 10.0, 41.0),  # on the sign, but a pothole
    ]
    drive_xy = _xy(h.position for h in hazards)
    assert match_stored(hazards, drive_xy, stored, stored_xy, SETTINGS) == [None, None, 0, None]
    assert match_stored(hazards[:2], drive_xy[:2], stored, stored_xy, SETTINGS) == [0, None]
    unsure = [_hazard("pothole", 0.0, 63.0, sigma=3.0)]  # metres of doubt widen the gate (up to three radii)
    assert match_stored(unsure, _xy([(0.0, 63.0)]), stored, stored_xy, SETTINGS) == [1]
    assert match_stored(hazards, drive_xy, [], None, SETTINGS) == [None] * 4


def test_expected_views_count_the_frames_with_the_hazard_well_inside_at_a_good_range():
    poses_xy = np.column_stack([np.zeros_like(ROAD_Y), ROAD_Y])
    hazard_xy = _xy([(1.0, 40.0), (1.0, 90.0), (60.0, 40.0)])
    # 16, 13, 10, 7 and 4 m ahead; 12 and 15 m ahead of the last frames; 60 m to the side
    assert frames_in_view(hazard_xy, poses_xy, _poses(), CAMERA, SETTINGS.view_range_m).tolist() == [5, 2, 0]


def test_a_stored_hazard_in_view_but_not_seen_counts_a_miss_and_one_out_of_view_none():
    stored = [
        _stored(1, "pothole", 1.0, 20.0),  # seen again
        _stored(2, "pothole", 1.0, 40.0, misses=1),  # in view, not seen: its second miss
        _stored(3, "fallen_sign", -2.0, 60.0, status="candidate"),  # in view, not seen: a first miss
        _stored(4, "pothole", 60.0, 40.0),  # out of view
        _stored(5, "pothole", 1.0, 90.0),  # in view for two frames only
        _stored(6, "pothole", 1.0, 50.0, status="possibly_repaired"),  # already flagged
    ]
    found = associate([_hazard("pothole", 1.3, 20.2)], stored, _poses(), CAMERA, SETTINGS, gps_sigma_m=3.0)
    assert found.matches == [stored[0]]
    assert [(m.hazard.id, m.misses, m.status, m.flagged) for m in found.misses] == [
        (2, 2, "possibly_repaired", True),
        (3, 1, "candidate", False),
    ]
    assert all(m.frames_in_view >= SETTINGS.min_frames_in_view for m in found.misses)


def test_misses_need_the_stored_hazards_positions_and_skip_the_seen():
    stored = [_stored(1, "pothole", 1.0, 40.0, misses=1)]
    poses = _poses()
    poses_xy = np.column_stack([np.zeros_like(ROAD_Y), ROAD_Y])
    stored_xy = _xy([(1.0, 40.0)])
    assert count_misses(stored, stored_xy, {0}, poses_xy, poses, CAMERA, SETTINGS) == []
    assert count_misses(stored, stored_xy, set(), poses_xy, poses, CAMERA, SETTINGS) == [
        Miss(stored[0], 5, 2, "possibly_repaired")
    ]


def test_a_drive_with_metres_of_gps_error_still_merges_into_neighbouring_hazards_one_each():
    stored = [_stored(1, "pothole", 1.0, 20.0), _stored(2, "pothole", -1.0, 26.0), _stored(3, "pothole", 2.0, 50.0)]
    hazards = [_hazard("pothole", 4.0, 22.0), _hazard("pothole", 2.0, 28.0), _hazard("pothole", 5.0, 52.0)]
    found = associate(hazards, stored, _poses(), CAMERA, SETTINGS, gps_sigma_m=3.0)
    assert found.matches == stored  # 3.6 m off each, beyond the radius, but one shift for the drive
    assert found.misses == []
