"""Property tests of the hub's payload (hypothesis): random and extreme values in any number of a segment's
fields are either merged or refused with a one-line 400, never a 500; and after whatever was merged, the hazard
list, the dashboard and the exports still answer 200. A real central store (SQLite, and PostgreSQL), the hub and the
review app in process."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from detector.bounds import EARLIEST_UTC, LATEST_UTC
from detector.camera import configured_profile, load_camera
from detector.config import load_config
from detector.hub.payload import MAX_COUNT, MAX_LOCAL_M, CameraProfile, PayloadError, parse_payload
from detector.store.db import evidence_folder

T0 = 1_780_000_000.0  # 2026-05-28
LAT, LON = 31.25, 34.79
PASSWORD = "rita-Pa55word-unique-7f3a"
serial = itertools.count()


def small_payload(camera: dict) -> dict:
    """A valid segment: one pothole seen twice on a 3-frame drive, no evidence frames."""
    n = next(serial)
    sighting = {
        "frame_index": 1, "utc": T0 + 1, "odometer_m": 10.0, "class_name": "pothole", "confidence": 0.9,
        "lat": LAT + 0.0001, "lon": LON, "range_m": 8.0, "lateral_m": 0.5, "uncertainty_m": 1.0, "width_m": 0.4,
        "bbox": [100.0, 200.0, 140.0, 230.0], "vehicle_lat": LAT, "vehicle_lon": LON, "heading": 0.0, "far": False,
    }  # fmt: skip
    record = {"id": f"drive-{n}", "content_hash": f"{n:064x}", "video": "v.mp4", "track": "v.gpx",
              "started_utc": T0, "ended_utc": T0 + 3, "distance_m": 20.0, "frames_sampled": 3, "camera": "sim",
              "trip": ""}  # fmt: skip
    stats = {"video_s": 3.0, "covered_s": 3.0, "frames_decoded": 90, "frames_sampled": 3, "distance_m": 20.0,
             "stationary_s": 0.0}  # fmt: skip
    return {
        "version": 1,
        "segment_id": f"seg-{n}",
        "record": record,
        "camera": dict(camera),
        "hazards": [
            {
                "class_name": "pothole",
                "origin": [LAT, LON],
                "sightings": [sighting, {**sighting, "frame_index": 2, "utc": T0 + 2, "range_m": 6.0}],
                "xy": [[0.0, 11.1], [0.0, 11.2]],
            }
        ],
        "poses": {
            "lat": [LAT, LAT + 0.00002, LAT + 0.00004],
            "lon": [LON, LON, LON],
            "heading": [0.0, 0.0, 0.0],
            "width": 640,
            "height": 360,
        },
        "stats": stats,
        "detections": 2,
        "video_start_utc": T0,
        "start_source": "track",
        "masked_fraction": 0.0,
        "evidence": {},
    }


S0 = ("hazards", 0, "sightings", 0)
FIELDS = [
    ("record", "started_utc"), ("record", "ended_utc"), ("record", "distance_m"), ("record", "frames_sampled"),
    (*S0, "frame_index"), (*S0, "utc"), (*S0, "odometer_m"), (*S0, "confidence"), (*S0, "lat"), (*S0, "lon"),
    (*S0, "range_m"), (*S0, "lateral_m"), (*S0, "uncertainty_m"), (*S0, "width_m"), (*S0, "heading"),
    (*S0, "vehicle_lat"), (*S0, "vehicle_lon"), (*S0, "bbox", 2), ("hazards", 0, "xy", 0, 0),
    ("hazards", 0, "xy", 1, 1), ("hazards", 0, "origin", 0), ("hazards", 0, "origin", 1), ("poses", "lat", 1),
    ("poses", "lon", 2), ("poses", "heading", 0), ("poses", "width"), ("stats", "video_s"), ("stats", "distance_m"),
    ("stats", "frames_decoded"), ("detections",), ("video_start_utc",), ("masked_fraction",),
    ("camera", "height_m"), ("camera", "pitch_deg"), ("camera", "hfov_deg"), ("camera", "width"),
]  # fmt: skip
EDGES = [
    EARLIEST_UTC, LATEST_UTC, EARLIEST_UTC - 1, LATEST_UTC + 1, 1e300, -1e300, -1e15, 1e15, 0, -1, 1e-300, 2**63,
    10**30, MAX_COUNT, MAX_COUNT + 1, 90.0, -90.0, 180.0, -180.0, 90.0001, MAX_LOCAL_M, -MAX_LOCAL_M, 1e5 + 1, 720.0,
    -720.0, 0.001, 1000.0, 199_999, 1e8, 1e7, 5e-324,
]  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(EDGES),
    st.floats(),  # NaN and infinities too
    st.floats(min_value=-1e6, max_value=1e6),
    st.floats(min_value=-1, max_value=1),
    st.floats(min_value=0, max_value=90),
    st.floats(min_value=EARLIEST_UTC, max_value=LATEST_UTC),
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([None, True, "", "1e300", [], {}]),
)
CHANGES = st.lists(st.tuples(st.sampled_from(FIELDS), VALUES), min_size=1, max_size=4)


def changed(payload: dict, changes: list[tuple[tuple, object]]) -> bytes:
    for path, value in changes:
        target = payload
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return json.dumps(payload).encode()  # NaN and Infinity as JSON's common extension: the hub must refuse them


@pytest.fixture(scope="module")
def camera() -> dict:
    cam = load_camera(configured_profile(load_config().drive.camera))
    return json.loads(json.dumps({k: getattr(cam, k) for k in CameraProfile.model_fields}))


@given(changes=CHANGES)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_payload_is_read_or_refused_in_one_line(camera, changes):
    body = changed(small_payload(camera), changes)
    try:
        payload = parse_payload(body)
    except PayloadError as e:
        assert "\n" not in str(e) and len(str(e)) < 1000
        return
    numbers = [*payload.poses.lat, payload.record.started_utc, payload.video_start_utc]
    assert all(math.isfinite(x) for x in numbers)
    assert all(EARLIEST_UTC <= s.utc <= LATEST_UTC for h in payload.hazards for s in h.sightings)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """The hub over a fresh central store, the review app beside it; a signed-in reviewer and a vehicle."""
    return _hub(Path(tmp_path_factory.mktemp("hub")) / "central.db")


@pytest.fixture(scope="module")
def hub_on_postgres(postgres_cluster, tmp_path_factory):
    """:func:`hub` over a PostgreSQL store (its evidence folder in a folder of the test's: the working one)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("hub_pg"))
        yield _hub(postgres_cluster.new_database())


def _hub(db: Path | str):
    from fastapi.testclient import TestClient

    from detector.hub.app import HubSettings, create_hub_app
    from detector.hub.vehicles import add_vehicle
    from detector.review.app import AppSettings, create_app
    from detector.review.auth import add_user
    from detector.store import HazardStore

    cfg = load_config(overrides=["tickets.mode=off", "run.progress=false"])
    with HazardStore(db) as store:
        token = add_vehicle(store, "van-a")
        add_user(store, "rita", "reviewer", PASSWORD)
    app = create_hub_app(HubSettings(db, cfg), create_app(AppSettings.from_config(cfg, db)))
    client = TestClient(app, raise_server_exceptions=False, base_url="https://testserver")
    assert client.post("/api/login", json={"name": "rita", "password": PASSWORD}).status_code == 200
    return client, token


PAGES = ["/api/hazards", "/dashboard", "/api/dashboard", "/api/export?format=csv", "/api/export?format=geojson",
         "/api/public/hazards"]  # fmt: skip


@pytest.mark.slow
@given(changes=CHANGES)
@example(changes=[]).via("the segment as sent")
@example(changes=[((*S0, "utc"), LATEST_UTC), (("hazards", 0, "xy", 0, 0), MAX_LOCAL_M)]).via("at the bounds")
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_whatever_the_hub_merges_leaves_every_page_readable(hub, camera, changes):
    _merged_and_readable(hub, camera, changes)


@pytest.mark.slow
@given(changes=CHANGES)
@example(changes=[]).via("the segment as sent")
@example(changes=[((*S0, "utc"), LATEST_UTC), (("hazards", 0, "xy", 0, 0), MAX_LOCAL_M)]).via("at the bounds")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_whatever_a_postgresql_hub_merges_leaves_every_page_readable(hub_on_postgres, camera, changes):
    """The same property on a PostgreSQL store (its own types and constraints), with fewer examples."""
    _merged_and_readable(hub_on_postgres, camera, changes)


def _merged_and_readable(hub, camera: dict, changes: list) -> None:
    client, token = hub
    body = changed(small_payload(camera), changes)
    answer = client.post("/api/v1/segments", content=body, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code in (201, 400), answer.text
    assert answer.status_code == 201 or changes, answer.text
    event(f"answered {answer.status_code}")
    assert "\n" not in answer.json()["detail"]
    if answer.status_code == 201:
        for page in PAGES:
            shown = client.get(page)
            assert shown.status_code == 200, (page, changes, shown.text[:300])


def test_the_evidence_folder_of_a_hub_drive_is_its_vehicles(camera):
    """The payload's evidence names use the vehicle's own drive id; the hub files them under its own id."""
    from detector.hub.payload import to_analysis

    payload = small_payload(camera)
    jpeg = "/9j/" + "A" * 8  # base64 of bytes starting FF D8
    payload["evidence"] = {"1": {"name": f"{evidence_folder(payload['record']['id'])}/00000001.jpg", "jpeg": jpeg}}
    analysis = to_analysis(parse_payload(json.dumps(payload).encode()), "van-a")
    assert analysis.record.id == f"van-a/{payload['record']['id']}"
    assert analysis.evidence == {1: f"{evidence_folder(analysis.record.id)}/00000001.jpg"}
    assert all(s.drive_id == analysis.record.id for s in analysis.sightings)
