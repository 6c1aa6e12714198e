"""The sign inventory through the fleet hub: a segment carries its drive's judged sign plates, checked and bounded
like every other field, and the hub merges them into its store as ``detector run`` merges a drive's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detector.batch.jobs import DriveJob
from detector.batch.worker import analyze_job
from detector.camera import configured_profile, load_camera
from detector.cli import main
from detector.config import load_config
from detector.geo import LocalFrame
from detector.hub.payload import parse_payload, segment_payload, to_analysis
from detector.pipeline.analysis import DriveAnalysis, commit_analysis, content_hash, merge_settings
from detector.simulate import simulate_drive
from detector.simulate.oracle import oracle_for
from detector.store import HazardStore

pytestmark = pytest.mark.slow  # three drives rendered (about 45 s)

SIGNS_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "signs-sim.yaml"
# Three passes over one simulated world: the first with every sign, the next two with one taken away.
PASSES = ((1, 0), (2, 1), (3, 1))  # drive seed, signs removed


def _oracle(video: Path, cfg):
    return oracle_for(video, cfg, emit=("pothole", "traffic_sign"))


@pytest.fixture(scope="module")
def passes(tmp_path_factory) -> tuple[list[tuple[DriveAnalysis, bytes]], list[dict], object]:
    """Each pass analysed (the oracle with a traffic_sign class) with its upload; the world's signs; the config."""
    cfg = load_config(SIGNS_CONFIG, overrides=["tickets.mode=off", "run.progress=false"])
    camera = load_camera(configured_profile(cfg.drive.camera))
    root = tmp_path_factory.mktemp("sign-drives")
    out, worlds = [], []
    for seed, removed in PASSES:
        settings = {"world_seed": 5, "drive_seed": seed, "duration_s": 20, "width": 320, "height": 180,
                    "remove_signs": removed}  # fmt: skip
        summary = simulate_drive(root / f"drive{seed}", settings, progress=False)
        video = root / f"drive{seed}" / "drive.mp4"
        job = DriveJob(video, None, None, content_hash(video, video.with_suffix(".gpx")))
        analysis = analyze_job(job, cfg, None, _oracle).analysis
        assert analysis is not None and analysis.signs is not None
        out.append((analysis, segment_payload(f"seg-{seed}", analysis, camera, None)))
        worlds.append(json.loads(summary.signs.read_text())["features"])
    return out, worlds, cfg


def _post_all(db: Path, cfg, bodies: list[bytes]) -> list:
    from fastapi.testclient import TestClient

    from detector.hub.app import HubSettings, create_hub_app

    token = _add_vehicle(db, "van-a")
    client = TestClient(create_hub_app(HubSettings(db, cfg)))
    headers = {"Authorization": f"Bearer {token}"}
    return [client.post("/api/v1/segments", content=body, headers=headers) for body in bodies]


def _add_vehicle(db: Path, name: str) -> str:
    from contextlib import redirect_stdout
    from io import StringIO

    shown = StringIO()
    with redirect_stdout(shown):
        assert main(["hub", "vehicles", "add", name, "--db", str(db)]) == 0
    return shown.getvalue().strip().splitlines()[-1]


def _inventory(db: Path) -> list[tuple]:
    """The signs table as a reviewer reads it: position, state and counts (not the drive's name or photo path)."""
    with HazardStore(db) as store:
        rows = store.query("SELECT * FROM signs ORDER BY id")
    return [(round(r["lat"], 7), round(r["lon"], 7), r["height_m"], r["views"], r["drive_count"], r["status"],
             r["misses"]) for r in rows]  # fmt: skip


def test_a_segment_carries_its_judged_sign_plates_and_the_hub_reads_them_back(passes):
    (analysis, body), *_ = passes[0]
    payload = parse_payload(body)
    assert payload.signs is not None and len(payload.signs) == len(analysis.signs) >= 2
    back = to_analysis(payload, "van-a")
    assert [s.fix for s in back.signs] == [s.fix for s in analysis.signs]
    assert np.allclose([s.latlon for s in back.signs], [s.latlon for s in analysis.signs], rtol=0, atol=1e-9)
    assert {s.drive_id for sign in back.signs for s in sign.hazard.sightings} == {back.record.id}
    used = {s.frame_index for sign in analysis.signs for s in sign.hazard.sightings}
    assert used & set(analysis.evidence) <= {int(k) for k in json.loads(body)["evidence"]}  # their photos travel


def test_a_drive_without_the_sign_class_sends_the_payload_it_sent_before(passes):
    (analysis, body), *_ = passes[0]
    cfg = passes[2]
    camera = load_camera(configured_profile(cfg.drive.camera))
    off = DriveAnalysis(**{**analysis.__dict__, "signs": None})
    plain = segment_payload("seg-1", off, camera, None)
    assert "signs" not in json.loads(plain)  # no new key: the same bytes, digest and segment id as before signs
    assert parse_payload(plain).signs is None and to_analysis(parse_payload(plain)).signs is None
    assert json.loads(body)["signs"] and "signs" in json.loads(segment_payload("s", analysis, camera, None))


def test_bad_sign_plates_are_refused_naming_the_field(passes, tmp_path):
    (_, body), *_ = passes[0]
    cfg = passes[2]
    payload = json.loads(body)
    sign = payload["signs"][0]

    def with_fix(**values) -> bytes:
        changed = {**sign, "fix": {**sign["fix"], **values}}
        return json.dumps({**payload, "signs": [changed, *payload["signs"][1:]]}).encode()

    other_class = {**sign["hazard"], "class_name": "pothole",
                   "sightings": [{**s, "class_name": "pothole"} for s in sign["hazard"]["sightings"]]}  # fmt: skip
    cases = {
        with_fix(state="unknown"): "signs.0.fix.state",
        with_fix(state="wobbly"): "signs.0.fix.state",
        with_fix(height_m=1e300): "signs.0.fix.height_m",
        with_fix(x=float("inf")): "signs.0.fix.x",
        with_fix(y=float("nan")): "signs.0.fix.y",
        with_fix(tilt_deg=-5.0): "signs.0.fix.tilt_deg",
        with_fix(views=10**12): "signs.0.fix.views",
        with_fix(parallax_deg=400.0): "signs.0.fix.parallax_deg",
        json.dumps({**payload, "signs": [sign] * 10_001}).encode(): "signs",
        json.dumps({**payload, "signs": [{**sign, "hazard": other_class}]}).encode(): "signs.0.hazard.class_name",
        json.dumps({**payload, "signs": [{**sign, "colour": "red"}]}).encode(): "signs.0.colour",
        json.dumps({**payload, "signs": "many"}).encode(): "signs",
    }
    db = tmp_path / "central.db"
    answers = _post_all(db, cfg, list(cases))
    for answer, field in zip(answers, cases.values(), strict=True):
        assert answer.status_code == 400, (field, answer.text)
        assert answer.json()["detail"].startswith(f"bad segment: {field}"), answer.json()["detail"]
    with HazardStore(db) as store:
        assert not store.query("SELECT 1 FROM drives") and not store.query("SELECT 1 FROM signs")
    plain_hub = load_config(overrides=["tickets.mode=off"])  # a hub with no sign class: the hazards still merge
    answer = _post_all(tmp_path / "plain.db", plain_hub, [body])[0]
    assert answer.status_code == 201, answer.text
    with HazardStore(tmp_path / "plain.db") as store:
        assert store.query("SELECT 1 FROM drives") and not store.query("SELECT 1 FROM signs")


def test_the_hub_maps_each_sign_once_and_flags_a_removed_one_missing_after_two_passes(passes, tmp_path):
    uploads, worlds, cfg = passes
    answers = _post_all(tmp_path / "central.db", cfg, [body for _, body in uploads])
    assert [a.status_code for a in answers] == [201, 201, 201], [a.text for a in answers]
    assert "signs:" in answers[0].json()["detail"]
    signs = _inventory(tmp_path / "central.db")
    lat0, lon0 = worlds[0][0]["geometry"]["coordinates"][::-1]
    local = LocalFrame(lat0, lon0)
    with HazardStore(tmp_path / "central.db") as store:
        rows = store.query("SELECT * FROM signs")
        mapped = np.column_stack(local.to_xy([r["lat"] for r in rows], [r["lon"] for r in rows]))
        missing = [r for r in rows if r["status"] == "missing"]
        held = store.query("SELECT class, status FROM hazards WHERE class = 'missing_sign'")
    removed = [f for f in worlds[1] if f["properties"]["pose"] == "removed"]
    assert len(removed) == 1
    truth = {f["properties"]["id"]: np.array(local.to_xy(*f["geometry"]["coordinates"][::-1])) for f in worlds[0]}
    near = {k: int((np.hypot(*(mapped - xy).T) < cfg.signs.match_m).sum()) for k, xy in truth.items()}
    assert len(rows) >= 2 and max(near.values()) == 1  # each sign mapped once: no two rows for one
    gone = truth[removed[0]["properties"]["id"]]
    assert (
        len(missing) == 1
        and np.hypot(*(np.array(local.to_xy(missing[0]["lat"], missing[0]["lon"])) - gone)) < cfg.signs.match_m
    )
    assert [tuple(h) for h in held] == [("missing_sign", "candidate")]  # held for a reviewer, as detector run holds
    # The same drives merged as `detector run` merges them: the same inventory.
    direct = tmp_path / "direct.db"
    settings = merge_settings(cfg, None)
    camera = load_camera(configured_profile(cfg.drive.camera))
    with HazardStore(direct) as store:
        for analysis, _ in uploads:
            commit_analysis(store, analysis, settings, camera)
    assert _inventory(direct) == signs
