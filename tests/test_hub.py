"""The fleet hub: a real ``detector hub serve`` process, vehicles as real ``push`` processes (the oracle as their
detector, tests/hub_vehicle.py), a TCP proxy of our own between them to cut the link, real SQLite stores.
Bad uploads go to the hub app in process, over its real central store."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import PROJECT, wait_for

from detector.camera import configured_profile, load_camera
from detector.cli import main
from detector.config import load_config
from detector.geo import LocalFrame
from detector.hub.payload import segment_payload
from detector.simulate import simulate_drive
from detector.simulate.oracle import load_truth
from detector.store import HazardStore

pytestmark = pytest.mark.slow
PYTHONPATH = os.pathsep.join([str(PROJECT), os.environ.get("PYTHONPATH", "")])


def child_env(**extra: str) -> dict[str, str]:
    """The environment of the processes a test starts: read when each starts (PGPASSWORD of the session's cluster)."""
    return {**os.environ, "PYTHONPATH": PYTHONPATH, **extra}


FAST_RETRY = ["--set", "hub.retry.base_s=0.2", "--set", "hub.retry.max_s=1", "--set", "hub.push_wait_s=120"]


@pytest.fixture(scope="module")
def drives(tmp_path_factory) -> Path:
    """Four short drives over the same simulated streets."""
    root = tmp_path_factory.mktemp("drives")
    for seed in (1, 2, 3, 4):
        settings = {"world_seed": 5, "drive_seed": seed, "duration_s": 10, "width": 640, "height": 360}
        simulate_drive(root / f"drive{seed}", settings)
    return root


@pytest.fixture
def central_address(store_address, tmp_path, monkeypatch):
    """The hub's store on either backend (a PostgreSQL store keeps its evidence in the working folder: tmp_path)."""
    monkeypatch.chdir(tmp_path)
    return store_address if isinstance(store_address, str) else tmp_path / "central.db"


def add_vehicle(db: Path, name: str) -> str:
    out = subprocess.run([sys.executable, "-m", "detector", "hub", "vehicles", "add", name, "--db", str(db)],
                         env=child_env(), capture_output=True, text=True, check=True).stdout  # fmt: skip
    return out.strip().splitlines()[-1]


class Hub:
    """``detector hub serve`` on a free loopback port, 106 requests in dry run."""

    def __init__(self, db: Path, *overrides: str) -> None:
        self.db = db
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "detector", "hub", "serve", "--db", str(db), "--port", "0",
             "--set", "tickets.mode=dry-run", "--set", "tickets.poll_s=0.5",
             *(arg for key in overrides for arg in ("--set", key))],
            env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        line = self.proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert found, line + self.proc.stderr.read()
        self.port = int(found.group(1))
        self.log: list[str] = []
        threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True).start()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(30)


class Proxy:
    """A TCP proxy on a fixed loopback port: :meth:`drop` closes it and every connection through it (an upload
    in flight is cut), :meth:`restore` listens again."""

    def __init__(self, target: int) -> None:
        self.target = target
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.server: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        self.server = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        threading.Thread(target=self._accept, args=(self.server,), daemon=True).start()

    def drop(self) -> None:
        # shutdown, not only close: on Linux a close leaves the socket listening while the accept thread is blocked
        # in accept(), so connections still got through and restore() could not bind the port again.
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self.conns.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


def push(local_db: Path, url: str, token: str, videos: list[Path]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(PROJECT / "tests" / "hub_vehicle.py"), str(local_db), url, *map(str, videos), *FAST_RETRY],
        env=child_env(HUB_TOKEN=token), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def count(db: Path, sql: str, params=()) -> int:
    with HazardStore(db) as store:
        return int(store.query(sql, params)[0][0])


def filed(central: Path) -> list[int]:
    """The hazards the hub's ticket sender filed (dry run), in order of their ids."""
    lines = central.with_name(f"{central.stem}_tickets_dryrun.jsonl")
    return sorted(json.loads(line)["hazard_id"] for line in lines.read_text().splitlines()) if lines.is_file() else []


def requests_queued(central: Path) -> list[int]:
    with HazardStore(central) as store:
        return sorted(r[0] for r in store.query("SELECT hazard_id FROM outbox"))


def queued_sightings(local_dbs: dict[str, Path]) -> list[tuple]:
    """Every sighting the vehicles (by name) queued, as the hub should hold it: each drive under its vehicle."""
    out = []
    for name, db in local_dbs.items():
        with HazardStore(db) as store:
            for (body,) in store.query("SELECT payload FROM hub_queue"):
                payload = json.loads(body)
                for h in payload["hazards"]:
                    out += [(f"{name}/{payload['record']['id']}", s["frame_index"], s["class_name"],
                             round(s["lat"], 7), round(s["lon"], 7)) for s in h["sightings"]]  # fmt: skip
    return sorted(out)


def test_three_vehicles_through_a_cut_link_and_a_restart(drives, tmp_path):
    central = tmp_path / "central.db"
    tokens = {name: add_vehicle(central, name) for name in ("van-a", "van-b", "van-c")}
    hub = Hub(central)
    proxy = Proxy(hub.port)
    url = f"http://127.0.0.1:{proxy.port}"
    local = {name: tmp_path / name / "local.db" for name in tokens}
    plan = {"van-a": [drives / "drive1/drive.mp4", drives / "drive4/drive.mp4"],
            "van-b": [drives / "drive2/drive.mp4"], "van-c": [drives / "drive3/drive.mp4"]}  # fmt: skip
    try:
        procs = {name: push(local[name], url, tokens[name], videos) for name, videos in plan.items()}
        # The link goes down as the first segment lands: uploads in flight are cut, the vehicles keep analysing.
        wait_for(lambda: central.is_file() and count(central, "SELECT count(*) FROM hub_segments") >= 1,
                 "the first segment at the hub", 120)  # fmt: skip
        proxy.drop()
        # van-a is stopped dead with a segment still queued, then started again once the link is back.
        wait_for(lambda: local["van-a"].is_file()
                 and count(local["van-a"], "SELECT count(*) FROM hub_queue WHERE state = 'queued'") >= 1,
                 "a segment queued on van-a", 120)  # fmt: skip
        procs["van-a"].kill()
        procs["van-a"].wait()
        wait_for(lambda: any(local[n].is_file() and count(local[n], "SELECT count(*) FROM hub_queue WHERE last_error"
                                                               " LIKE 'hub unreachable%'") for n in local),
                 "a vehicle to find the hub unreachable", 120)  # fmt: skip
        proxy.restore()
        procs["van-a"] = push(local["van-a"], url, tokens["van-a"], plan["van-a"])
        outputs = {name: p.communicate(timeout=300)[0] for name, p in procs.items()}
        for name, p in procs.items():
            assert p.returncode == 0, outputs[name]
            assert "0 still queued, 0 refused" in outputs[name]
        assert any("hub unreachable" in out for out in outputs.values()), outputs
        wait_for(lambda: filed(central) == requests_queued(central), "the hub's ticket sender to drain the outbox")
    finally:
        proxy.drop()
        hub.stop()
    assert count(central, "SELECT count(*) FROM hub_segments") == 4
    # every sighting on the hub, once
    with HazardStore(central) as store:
        rows = store.query("SELECT drive_id, frame_index, class, round(lat, 7), round(lon, 7) FROM sightings")
        held = sorted(tuple(r) for r in rows)
        hazards = store.query("SELECT id, class, lat, lon, status FROM hazards")
        vehicles = {r[0]: tuple(r[1:]) for r in store.query("SELECT name, segments, drives, queued FROM hub_vehicles")}
    assert held == queued_sightings(local) and held
    assert vehicles == {"van-a": (2, 2, 0), "van-b": (1, 1, 0), "van-c": (1, 1, 0)}  # nothing left on any vehicle
    # one hazard per true hazard, across vehicles
    truth = load_truth(drives / "drive1" / "truth.geojson")
    frame = LocalFrame(truth[0]["lat"], truth[0]["lon"])
    tx, ty = frame.to_xy([t["lat"] for t in truth], [t["lon"] for t in truth])
    matched = []
    for _, cls, lat, lon, _ in hazards:
        x, y = frame.to_xy(lat, lon)
        d = np.hypot(tx - x, ty - y) + np.array([0 if t["class"] == cls else 1e9 for t in truth])
        assert d.min() < 4.0, f"a {cls} hub hazard {d.min():.1f} m from any true one"
        matched.append(int(d.argmin()))
    assert len(matched) == len(set(matched)), "a true hazard stored twice"
    assert any(h[4] == "confirmed" for h in hazards)
    # one 106 request per confirmed hazard the filing policy files on its own (dry run)
    assert filed(central) == requests_queued(central) and filed(central)
    assert len(filed(central)) == len(set(filed(central)))
    # the vehicles filed nothing themselves
    assert not [path for name in tokens for path in (tmp_path / name).glob("*dryrun*")]
    assert not any("Traceback" in line for line in hub.log), "".join(hub.log)


@pytest.fixture(scope="module")
def segment(drives, tmp_path_factory):
    """One analysed drive as its upload, and the config."""
    from detector.batch.jobs import DriveJob
    from detector.batch.worker import analyze_job
    from detector.pipeline.analysis import content_hash
    from detector.simulate.oracle import oracle_for

    cfg = load_config(overrides=["tickets.mode=off", "run.progress=false"])
    video = drives / "drive1" / "drive.mp4"
    job = DriveJob(video, None, None, content_hash(video, video.with_suffix(".gpx")))
    analysis = analyze_job(job, cfg, None, oracle_for).analysis
    return segment_payload(job.digest, analysis, load_camera(configured_profile(cfg.drive.camera)), None), cfg


def snapshot(db: Path) -> list:
    with HazardStore(db) as store:
        return [tuple(r) for t in ("drives", "sightings", "hazards", "outbox", "hub_segments", "hub_vehicles")
                for r in store.query(f"SELECT * FROM {t}")]  # fmt: skip


def test_bad_uploads_are_refused_and_leave_the_store_untouched(segment, central_address, caplog):
    from fastapi.testclient import TestClient

    from detector.hub.app import HubSettings, create_hub_app

    body, cfg = segment
    db = central_address
    van, other, gone = (add_vehicle(db, name) for name in ("van-a", "van-b", "van-gone"))
    assert main(["hub", "vehicles", "revoke", "van-gone", "--db", str(db)]) == 0
    client = TestClient(create_hub_app(HubSettings(db, cfg)))

    def post(data: bytes, token: str | None = van):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return client.post("/api/v1/segments", content=data, headers=headers)

    payload = json.loads(body)
    first = post(body)
    assert first.status_code == 201, first.text
    assert post(body).status_code == 200 and post(body).json()["detail"] == "already merged"
    merged = snapshot(db)  # after the repeat, which notes the vehicle's contact (a second later, at times)

    def changed(**values) -> bytes:
        return json.dumps({**payload, **values}).encode()

    def in_first_hazard(xy=None, **values) -> bytes:
        first = payload["hazards"][0]
        hazard = {**first, "sightings": [{**first["sightings"][0], **values}, *first["sightings"][1:]]}
        if xy is not None:
            hazard["xy"] = [xy, *first["xy"][1:]]
        return changed(hazards=[hazard, *payload["hazards"][1:]])

    manholes = [{**h, "class_name": "manhole", "sightings": [{**x, "class_name": "manhole"} for x in h["sightings"]]}
                for h in payload["hazards"]]  # fmt: skip
    evidence = dict(payload["evidence"])
    index = next(iter(evidence))
    escaping = {**evidence, index: {**evidence[index], "name": f"../../{index}.jpg"}}
    other_record = {**payload["record"], "content_hash": "0" * 64}
    cases = [
        (b"{not json", van, 400),
        (body[: len(body) // 2], van, 400),  # truncated
        (changed(version=2), van, 400),
        (changed(hazards="none"), van, 400),
        (changed(segment_id="x", record={**payload["record"], "id": "y"}, evidence=escaping), van, 400),
        (changed(detections=-1), van, 400),
        (changed(detections=10**30), van, 400),
        (in_first_hazard(utc=1e300), van, 400),  # each time and position bounded, not only finite
        (changed(record={**payload["record"], "started_utc": -1e15}), van, 400),
        (changed(video_start_utc=0), van, 400),
        (in_first_hazard(xy=[1e300, 0.0]), van, 400),
        (in_first_hazard(range_m=-1e300), van, 400),
        (in_first_hazard(uncertainty_m=1e-300), van, 400),
        (in_first_hazard(lat=91.0), van, 400),
        (changed(hazards=manholes), van, 400),  # a class this hub does not know
        (changed(camera={**payload["camera"], "height_m": 0}), van, 400),
        (changed(camera={k: v for k, v in payload["camera"].items() if k != "lens"}), van, 400),
        (changed(segment_id="x\nINFO: forged log line"), van, 400),
        (b"[" * 100_000, van, 400),
        (changed(poses={**payload["poses"], "lat": [], "lon": [], "heading": []}), van, 400),
        (changed(record=other_record), van, 409),  # the same segment id, other content: replayed
        (changed(segment_id="again", evidence={}), van, 409),  # the same drive again, under another segment id
        (body, other, 409),  # van-a's segment, sent by van-b
        (body, "not-a-token", 401),
        (body, None, 401),
        (changed(segment_id="new"), gone, 403),
    ]
    for data, token, status in cases:
        answer = post(data, token)
        assert answer.status_code == status, (data[:80], answer.text)
        assert "\n" not in answer.json()["detail"]
        assert snapshot(db) == merged
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == len(cases) and all("\n" not in line for line in refusals)
    assert not any(token in line for line in refusals for token in (van, other, gone))
    assert "hazards.0.sightings.0.utc" in post(in_first_hazard(utc=1e300)).json()["detail"]  # names the field
    assert "record.started_utc" in post(changed(record={**payload["record"], "started_utc": -1e15})).json()["detail"]


def test_vehicle_tokens_add_list_revoke(central_address, capsys):
    from detector.hub.vehicles import token_hash

    db = central_address
    assert main(["hub", "vehicles", "add", "van-1", "--db", str(db)]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert len(token) >= 40
    with HazardStore(db) as store:
        assert store.query("SELECT token_hash FROM hub_vehicles")[0][0] == token_hash(token) != token
    assert main(["hub", "vehicles", "add", "van-1", "--db", str(db)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["hub", "vehicles", "add", "<b>x</b>", "--db", str(db)]) == 2
    assert main(["hub", "vehicles", "revoke", "van-1", "--db", str(db)]) == 0
    assert main(["hub", "vehicles", "list", "--db", str(db)]) == 0
    assert re.search(r"van-1\s+revoked\s+0\s+0\s+never", capsys.readouterr().out)
    assert main(["hub", "vehicles", "revoke", "nobody", "--db", str(db)]) == 2


def test_live_vehicle_sends_its_segments_to_the_hub(shared_data, tmp_path, monkeypatch):
    """``detector live --hub`` as its command composes it: segments queued locally, sent, merged and filed on
    the hub; the vehicle's own store holds no hazard and files nothing."""
    import shutil

    from test_live import LOG, Gpsfake, StillPotholes, free_port, write_video

    from detector.live.commands import live_for_hub

    if not shutil.which("gpsfake"):
        pytest.skip("gpsfake not installed (Debian package gpsd-tools)")
    central = tmp_path / "central.db"
    monkeypatch.setenv("HUB_TOKEN", add_vehicle(central, "van-live"))
    hub = Hub(central)
    fake = Gpsfake(shared_data / LOG, free_port())
    fake.start()
    local = tmp_path / "vehicle" / "local.db"
    video = write_video(tmp_path / "camera.mp4", 12, size=(640, 360))
    overrides = [f"live.camera={video}", f"live.gpsd=127.0.0.1:{fake.port}", "live.segment_s=4",
                 "live.vehicle=van-live", "live.reconnect_s=0.5", f"hub.url=http://127.0.0.1:{hub.port}",
                 "hub.retry.base_s=0.2", "hub.retry.max_s=1"]  # fmt: skip
    cfg = load_config(overrides=overrides)
    try:
        # As `detector live --hub` runs it, the model replaced.
        report, left = live_for_hub(cfg, local, StillPotholes(shared_data / LOG))
        wait_for(lambda: filed(central) and filed(central) == requests_queued(central), "the outbox filed")
    finally:
        fake.stop()
        hub.stop()
    assert report.segments >= 2 and report.sightings > 0 and left.queued == 0 and left.sent == report.segments
    assert count(central, "SELECT count(*) FROM hub_segments WHERE vehicle = 'van-live'") == report.segments
    # Its segments are one patrol on the hub too: one drive in the vehicle's counters and each hazard's count.
    assert count(central, "SELECT drives FROM hub_vehicles WHERE name = 'van-live'") == 1
    assert count(central, "SELECT count(DISTINCT trip) FROM drives") == 1
    assert count(central, "SELECT max(drive_count) FROM hazards") == 1
    assert count(central, "SELECT count(*) FROM sightings") == report.sightings
    assert count(local, "SELECT count(*) FROM hazards") == 0 and count(local, "SELECT count(*) FROM drives") == 0
    with HazardStore(central) as store:
        paths = [r[0] for r in store.query("SELECT evidence_path FROM sightings WHERE evidence_path IS NOT NULL")]
        assert paths and all((store.evidence_dir / p).is_file() for p in paths)  # the crops came along
        assert store.query("SELECT count(*) FROM hazards WHERE status = 'confirmed'")[0][0] > 0


def test_push_command_keeps_its_queue_while_the_hub_is_away(drives, tmp_path):
    """``detector push`` itself (the shipped model): the hub down, the drive stays queued (exit 1); pushed again
    with the hub up, it is sent without being analysed again (exit 0). The token is in neither argv nor output."""
    central = tmp_path / "central.db"
    token = add_vehicle(central, "van-cli")
    video = drives / "drive2" / "drive.mp4"
    local = tmp_path / "vehicle.db"

    def push_cli(url: str) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "detector", "push", str(video), "--hub", url, "--db", str(local),
                "--set", "hub.push_wait_s=3", "--set", "hub.retry.base_s=0.2"]  # fmt: skip
        assert token not in " ".join(argv)
        return subprocess.run(argv, env=child_env(HUB_TOKEN=token), capture_output=True, text=True, timeout=300)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{s.getsockname()[1]}"
    away = push_cli(nowhere)
    assert away.returncode == 1, away.stderr
    assert "1 analysed and queued" in away.stdout and "1 still queued" in away.stdout
    hub = Hub(central)
    try:
        back = push_cli(f"http://127.0.0.1:{hub.port}")
    finally:
        hub.stop()
    assert back.returncode == 0, back.stderr
    assert "0 analysed and queued, 1 queued before" in back.stdout and "1 sent, 0 still queued" in back.stdout
    assert count(central, "SELECT count(*) FROM hub_segments WHERE vehicle = 'van-cli'") == 1
    for out in (away.stdout, away.stderr, back.stdout, back.stderr, "".join(hub.log)):
        assert token not in out


def test_the_hub_places_a_segment_with_the_vehicles_own_camera(segment):
    from detector.hub.payload import parse_payload

    body, cfg = segment
    sent = parse_payload(body).camera.camera()
    assert sent == load_camera(configured_profile(cfg.drive.camera))  # every field of the profile travels
    other = json.loads(body)
    other["camera"] = {**other["camera"], "height_m": 2.6, "pitch_deg": 4.0}  # a van's camera, mounted higher
    assert parse_payload(json.dumps(other).encode()).camera.camera().height_m == 2.6


def test_the_hub_reads_its_hold_layer_once_when_it_starts(segment, tmp_path):
    """The hold rules are resolved when the hub starts, as run and batch resolve them: a missing layer stops it
    before it serves, and uploads merge without reading the layer again (it is gone by then)."""
    import shutil

    from fastapi.testclient import TestClient

    from detector.errors import InputError
    from detector.hub.app import HubSettings, create_hub_app

    body, _ = segment
    covers = tmp_path / "covers.gpkg"
    db = tmp_path / "central.db"
    cfg = load_config(overrides=[f"dedup.hold_near.layer={covers}"])
    with pytest.raises(InputError, match=r"covers\.gpkg"):
        create_hub_app(HubSettings(db, cfg))
    shutil.copy(PROJECT / "sample_footage" / "covers.gpkg", covers)
    token = add_vehicle(db, "van-a")
    client = TestClient(create_hub_app(HubSettings(db, cfg)))
    covers.unlink()
    sent = client.post("/api/v1/segments", content=body, headers={"Authorization": f"Bearer {token}"})
    assert sent.status_code == 201, sent.text
    assert count(db, "SELECT count(*) FROM hub_segments") == 1


def test_a_refused_token_keeps_the_queue_until_it_is_put_right(segment, tmp_path):
    from detector.hub.link import HubSender, enqueue_segment
    from detector.hub.payload import parse_payload, to_analysis

    body, cfg = segment
    central = tmp_path / "central.db"
    token = add_vehicle(central, "van-gone")
    assert main(["hub", "vehicles", "revoke", "van-gone", "--db", str(central)]) == 0
    local = tmp_path / "local.db"
    with HazardStore(local) as store:
        analysis = to_analysis(parse_payload(body))
        assert enqueue_segment(store, "seg-1", analysis, load_camera(configured_profile(cfg.drive.camera)), None)
    hub = Hub(central)
    fast = load_config(overrides=["hub.retry.base_s=0.1", "hub.retry.max_s=0.2"])
    try:
        with HubSender(local, fast, f"http://127.0.0.1:{hub.port}", token):
            wait_for(lambda: count(local, "SELECT attempts FROM hub_queue") >= 2, "a second attempt", 120)
    finally:
        hub.stop()
    with HazardStore(local) as store:
        state, error = store.query("SELECT state, last_error FROM hub_queue")[0]
    assert state == "queued" and "403" in error  # not given up: sent once the vehicle's token is valid again
    assert count(central, "SELECT count(*) FROM hub_segments") == 0


class StandIn:
    """A real HTTP server on loopback answering each POST with ``answer(body) -> (status, headers, body)``: a
    proxy, a wrong host or a failing hub, as the vehicle meets them. ``requests`` records what reached it."""

    def __init__(self, answer) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        stand_in = self
        self.answer = answer
        self.requests: list[tuple[str, dict, bytes]] = []
        self.times: list[float] = []  # when each request came

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                stand_in.requests.append((self.path, dict(self.headers), body))
                stand_in.times.append(time.monotonic())
                status, headers, data = stand_in.answer(body)
                self.send_response(status)
                for key, value in {**headers, "Content-Length": str(len(data))}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def queue_segments(local: Path, body: bytes, cfg, segment_ids: list[str]) -> None:
    from detector.hub.link import enqueue_segment
    from detector.hub.payload import parse_payload, to_analysis

    with HazardStore(local) as store:
        analysis = to_analysis(parse_payload(body))
        for segment_id in segment_ids:
            assert enqueue_segment(store, segment_id, analysis, load_camera(configured_profile(cfg.drive.camera)), None)


def queue_rows(local: Path) -> dict[str, tuple]:
    with HazardStore(local) as store:
        rows = store.query("SELECT segment_id, state, attempts, last_error, set_aside_at FROM hub_queue")
    return {r[0]: tuple(r[1:]) for r in rows}


FAST_LINK = ["hub.retry.base_s=0.05", "hub.retry.max_s=2"]


def test_a_refusal_that_is_not_about_the_segment_keeps_it_queued(segment, tmp_path):
    """429, 404, a redirect, a proxy's 200 page or its own 413: the segment stays queued (the redirect not
    followed, the token not sent on), and once the vehicle reaches the real hub it is merged."""
    from detector.hub.link import HubSender

    body, cfg = segment
    local = tmp_path / "local.db"
    queue_segments(local, body, cfg, ["seg-1"])
    elsewhere = StandIn(lambda _: (201, {}, b'{"segment_id": "seg-1"}'))
    fast = load_config(overrides=FAST_LINK)
    answers = [
        (429, {"Retry-After": "1"}, b"slow down", "429"),
        (404, {}, b"<html>not found</html>", "404"),
        (301, {"Location": elsewhere.url + "/api/v1/segments"}, b"", "redirects"),
        (307, {"Location": elsewhere.url + "/api/v1/segments"}, b"", "redirects"),
        (200, {"Content-Type": "text/html"}, b"<html>captive portal</html>", "without a receipt"),
        (502, {}, b"bad gateway", "502"),
        (413, {"Content-Type": "text/html"}, b"<html>413 Request Entity Too Large</html>", "other than the hub"),
        (400, {}, b"Bad Request", "other than the hub"),
    ]
    try:
        for status, headers, data, said in answers:
            odd = StandIn(lambda _, a=(status, headers, data): a)
            tries = queue_rows(local)["seg-1"][1]
            try:
                with HubSender(local, fast, odd.url, "tok-123"):
                    wait_for(lambda: queue_rows(local)["seg-1"][1] >= tries + 2, "two more tries", 30)  # noqa: B023
            finally:
                odd.close()
            state, _, error, _ = queue_rows(local)["seg-1"]
            assert state == "queued" and said in error, (status, error)
            if "Retry-After" in headers:  # waited as asked, not the 0.05 s of hub.retry.base_s
                assert odd.times[1] - odd.times[0] >= 0.9
        assert not elsewhere.requests  # a redirect is never followed: the token goes to hub.url only
    finally:
        elsewhere.close()
    central = tmp_path / "central.db"
    token = add_vehicle(central, "van-a")
    hub = Hub(central)
    try:
        with HubSender(local, fast, f"http://127.0.0.1:{hub.port}", token):
            wait_for(lambda: queue_rows(local)["seg-1"][0] == "sent", "seg-1 sent")
    finally:
        hub.stop()
    assert count(central, "SELECT count(*) FROM hub_segments") == 1


def test_a_segment_the_hub_keeps_failing_on_is_set_aside(segment, tmp_path):
    """The hub answers 500 to one segment every time: after hub.set_aside_after tries it is set aside (still
    queued, counted) and the segments behind it are sent; it is tried again after them."""
    from detector.hub.link import HubSender, queue_counts, wait_for_queue

    body, cfg = segment
    local = tmp_path / "local.db"
    queue_segments(local, body, cfg, ["seg-bad", "seg-2", "seg-3"])

    def answer(data: bytes):
        segment_id = json.loads(data)["segment_id"]
        if segment_id == "seg-bad":
            return 500, {}, b'{"detail": "internal error"}'
        return 201, {"Content-Type": "application/json"}, json.dumps({"segment_id": segment_id}).encode()

    hub = StandIn(answer)
    fast = load_config(overrides=[*FAST_LINK, "hub.set_aside_after=3"])
    try:
        with HubSender(local, fast, hub.url, "tok-123") as sender:
            wait_for(lambda: queue_rows(local)["seg-3"][0] == "sent", "seg-3 sent", 30)
            wait_for(lambda: queue_rows(local)["seg-bad"][1] >= 5, "seg-bad tried again after the others", 30)
            left = wait_for_queue(sender, local, 30, 5)
    finally:
        hub.close()
    rows = queue_rows(local)
    assert rows["seg-2"][0] == rows["seg-3"][0] == "sent"
    state, _, error, aside = rows["seg-bad"]
    assert state == "queued" and aside and "500" in error
    sent = [json.loads(r[2])["segment_id"] for r in hub.requests]
    assert sent[:5] == ["seg-bad"] * 3 + ["seg-2", "seg-3"]
    assert left.queued == 1 and left.set_aside == 1 and left.sent == 2
    with HazardStore(local) as store:
        assert queue_counts(store).line() == "hub queue: 2 sent, 1 still queued, 0 refused, 1 set aside"


def test_a_vehicle_cannot_take_another_vehicles_drive_or_trip(segment, central_address):
    """van-b sends first a segment named with van-a's segment id, drive id and trip: it is van-b's own drive, and
    van-a's segment is merged as van-a's (not refused); each id is kept under its vehicle; sent twice, merged once;
    a second segment of van-a's trip joins that trip."""
    from fastapi.testclient import TestClient

    from detector.hub.app import HubSettings, create_hub_app

    body, cfg = segment
    db = central_address
    van_a, van_b = add_vehicle(db, "van-a"), add_vehicle(db, "van-b")
    client = TestClient(create_hub_app(HubSettings(db, cfg)))

    def post(data: bytes, token: str):
        return client.post("/api/v1/segments", content=data, headers={"Authorization": f"Bearer {token}"})

    payload = json.loads(body)
    drive_id = payload["record"]["id"]
    record_b = {**payload["record"], "content_hash": "b" * 64, "trip": drive_id}
    squatter = json.dumps({**payload, "record": record_b, "evidence": {}}).encode()
    answer = post(squatter, van_b)
    assert answer.status_code == 201 and answer.json()["segment_id"] == payload["segment_id"], answer.text
    assert post(body, van_a).status_code == 201  # the real owner's segment goes through
    assert post(body, van_a).json()["detail"] == "already merged"
    later = {**payload["record"], "id": drive_id + "-2", "content_hash": "c" * 64, "trip": drive_id}
    second = json.dumps({**payload, "segment_id": "seg-2", "record": later, "evidence": {}}).encode()
    assert post(second, van_a).status_code == 201
    with HazardStore(db) as store:
        drives = {r[0]: r[1] for r in store.query("SELECT id, trip FROM drives")}
        segments = {r[0]: r[1] for r in store.query("SELECT segment_id, vehicle FROM hub_segments")}
        vehicles = dict(store.query("SELECT name, drives FROM hub_vehicles"))
        paths = [r[0] for r in store.query("SELECT evidence_path FROM sightings WHERE evidence_path IS NOT NULL")]
        assert paths and all((store.evidence_dir / p).is_file() for p in paths)
    assert drives == {f"van-b/{drive_id}": f"van-b/{drive_id}", f"van-a/{drive_id}": None,
                      f"van-a/{drive_id}-2": f"van-a/{drive_id}"}  # fmt: skip
    assert segments == {f"van-b/{payload['segment_id']}": "van-b", f"van-a/{payload['segment_id']}": "van-a",
                        "van-a/seg-2": "van-a"}  # fmt: skip
    assert vehicles == {"van-a": 1, "van-b": 1}  # van-a's two segments are one patrol


def http_head(token: str | None, port: int) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"POST /api/v1/segments HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()  # fmt: skip


def answer_status(sock: socket.socket) -> int:
    """The status of the answer on ``sock`` (within its timeout)."""
    data = b""
    while b"\r\n" not in data:
        more = sock.recv(4096)
        assert more, "closed without an answer"
        data += more
    return int(data.split(b" ", 2)[1])


def test_the_hub_checks_the_token_before_the_body_and_stops_reading_at_its_limit(tmp_path):
    """A chunked upload: with an unknown token the answer (401) comes before the body has ended; with a good one,
    the 413 comes as soon as the body passes hub.max_segment_mb, and the hub never holds the rest."""
    import psutil

    central = tmp_path / "central.db"
    token = add_vehicle(central, "van-a")
    hub = Hub(central, "hub.max_segment_mb=1")
    memory = psutil.Process(hub.proc.pid)
    chunk = b"x" * 65536
    try:
        with socket.create_connection(("127.0.0.1", hub.port), timeout=10) as sock:
            sock.sendall(http_head("not-a-token", hub.port) + b"%x\r\n%s\r\n" % (len(chunk), chunk))
            assert answer_status(sock) == 401  # the body is still open
        before = memory.memory_info().rss
        with socket.create_connection(("127.0.0.1", hub.port), timeout=10) as sock:
            sock.sendall(http_head(token, hub.port))
            sent = 0
            with contextlib.suppress(OSError):  # the hub closes the connection once it has answered
                while sent < 200_000_000:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    sent += len(chunk)
            assert answer_status(sock) == 413
        assert sent < 50_000_000, f"the hub read {sent} bytes before it answered"
        assert memory.memory_info().rss - before < 50_000_000
    finally:
        hub.stop()


def test_a_slow_client_cannot_hold_a_connection_to_the_hub(tmp_path):
    """A connection that sends nothing, or its request head a byte at a time, is closed once hub.head_timeout_s
    has passed since it opened, however the bytes trickle in; a body that stops coming is a 408."""
    import select

    central = tmp_path / "central.db"
    token = add_vehicle(central, "van-a")
    hub = Hub(central, "hub.head_timeout_s=1", "hub.body_timeout_s=1")
    head = http_head("not-a-token", hub.port)
    try:
        for dribble in (b"", head):
            opened = time.monotonic()
            with socket.create_connection(("127.0.0.1", hub.port), timeout=10) as sock:
                closed = False
                for byte in [dribble[i : i + 1] for i in range(len(dribble))] or [b""] * 30:
                    if time.monotonic() - opened > 6:
                        break
                    try:
                        sock.sendall(byte)
                        if select.select([sock], [], [], 0.3)[0]:  # the pace: one byte per 0.3 s, unless closed
                            closed = sock.recv(4096) == b""
                            break
                    except OSError:  # reset: closed
                        closed = True
                        break
                held = time.monotonic() - opened
            assert closed and held < 3.0, (dribble[:20], held)
        # A vehicle whose body stops coming: 408 once hub.body_timeout_s has passed, the connection closed.
        with socket.create_connection(("127.0.0.1", hub.port), timeout=10) as sock:
            opened = time.monotonic()
            sock.sendall(http_head(token, hub.port) + b'4\r\n{"a"\r\n')
            assert answer_status(sock) == 408 and time.monotonic() - opened < 3.0
    finally:
        hub.stop()


def test_a_segment_over_the_hubs_limit_is_refused_not_retried(segment, tmp_path):
    """The hub answers 413 before it has read the body and closes the connection: the vehicle still reads the
    answer and gives up on that segment (not 'hub unreachable' for ever), and the next one goes."""
    from detector.hub.link import HubSender

    body, cfg = segment
    assert len(body) > 20_000
    local = tmp_path / "local.db"
    queue_segments(local, body, cfg, ["seg-big"])
    central = tmp_path / "central.db"
    token = add_vehicle(central, "van-a")
    hub = Hub(central, "hub.max_segment_mb=0.01")
    try:
        with HubSender(local, load_config(overrides=FAST_LINK), f"http://127.0.0.1:{hub.port}", token):
            wait_for(lambda: queue_rows(local)["seg-big"][0] != "queued", "seg-big answered", 30)
    finally:
        hub.stop()
    state, attempts, error, _ = queue_rows(local)["seg-big"]
    assert (state, attempts) == ("refused", 1) and error.startswith("413"), error


@pytest.mark.parametrize("hubs", [2, 1], ids=["two-hubs", "one-hub"])
def test_hubs_given_one_upload_at_once_merge_it_once(segment, postgres_url, tmp_path, monkeypatch, hubs):
    """Behind a load balancer a vehicle's retry can reach a second hub process while the first still merges it
    (and on PostgreSQL one hub merges two uploads at once too): one merges it, the other answers "already merged"
    (or 503, and the vehicle's retry hears so), never twice."""
    from concurrent.futures import ThreadPoolExecutor

    from fastapi.testclient import TestClient

    from detector.hub.app import HubSettings, create_hub_app

    monkeypatch.chdir(tmp_path)
    body, cfg = segment
    van = add_vehicle(postgres_url, "van-a")
    apps = [create_hub_app(HubSettings(postgres_url, cfg)) for _ in range(hubs)]
    clients = [TestClient(apps[i % hubs]) for i in range(2)]
    headers = {"Authorization": f"Bearer {van}"}
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda c: c.post("/api/v1/segments", content=body, headers=headers), clients))
    codes = sorted(a.status_code for a in answers)
    assert codes in ([200, 201], [201, 503]), [a.text for a in answers]
    again = clients[1].post("/api/v1/segments", content=body, headers=headers)
    assert again.status_code == 200 and again.json()["detail"] == "already merged"
    assert count(postgres_url, "SELECT count(*) FROM drives") == 1
    assert count(postgres_url, "SELECT count(*) FROM hub_segments") == 1
    assert count(postgres_url, "SELECT segments FROM hub_vehicles WHERE name = 'van-a'") == 1
