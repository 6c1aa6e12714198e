"""The hub's merge throughput from N concurrent vehicles into one central store, and the store's size per km, on
SQLite and on PostgreSQL + PostGIS, in the same run on the same machine.

    .venv/bin/python benchmarks/bench_hub.py [--backends sqlite postgresql] [--vehicles 1 2 4 8] [--workers 4]
                                             [--segments 24] [--drives 3] [--duration 30] [--districts]
                                             [--in-process]

Renders (once, cached in benchmarks/.cache/hub/) a few drives over the same simulated streets, analyses them with
the simulator's oracle as detector, and turns them into ``--segments`` distinct uploads (each a pass over the
same streets under its own drive id: what a fleet patrolling one district sends). For each backend and N it
starts a fresh store, a real ``detector serve-106`` and real ``detector hub serve`` processes (one on SQLite;
``--workers`` on PostgreSQL, the vehicles spread over them, as behind a load balancer; a throwaway cluster of
tests/postgres_cluster.py), each hub filing its 106 requests; N vehicles (threads, each with its own token)
upload their share over loopback HTTP at once: all over one district, or with ``--districts`` each vehicle over
its own (PostgreSQL merges of different districts run at the same time; of one district, one after the other).
Printed: segments merged per second (and over the first and the last quarter of the uploads: every upload
passes the same streets, so the last quarter's merges read more of what came before), the ratio to N=1 of the
same backend, the hazards stored
and duplicates among them (two live hazards of one class within 2 m), whether every confirmed hazard was filed
exactly once (requests on the 106 server, each hazard's link once), and what the store grew by (database and
evidence) per 1,000 km patrolled. ``--in-process`` prints instead what one merge costs each backend in CPU, the
segments merged one after the other in this process (and, on PostgreSQL, in the database server's processes).
Last results: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from detector.batch.jobs import DriveJob  # noqa: E402
from detector.batch.worker import analyze_job  # noqa: E402
from detector.camera import configured_profile, load_camera  # noqa: E402
from detector.config import load_config  # noqa: E402
from detector.geo import geodesic_distance_m  # noqa: E402
from detector.hub.payload import segment_payload  # noqa: E402
from detector.pipeline.analysis import content_hash  # noqa: E402
from detector.simulate import cached_drive  # noqa: E402
from detector.simulate.oracle import oracle_for  # noqa: E402
from detector.store import HazardStore  # noqa: E402
from detector.store.db import evidence_folder  # noqa: E402
from detector.tickets.describe import marks_hazard  # noqa: E402

CACHE = PROJECT / "benchmarks" / ".cache" / "hub"
API_KEY = "bench-106-key"
REVIEW = "https://review.example"
PYTHONPATH = os.pathsep.join([str(PROJECT), os.environ.get("PYTHONPATH", "")])


def env(**extra: str) -> dict[str, str]:
    """A child process's environment, read when it starts (the PostgreSQL cluster's PGPASSWORD)."""
    return {**os.environ, "PYTHONPATH": PYTHONPATH, **extra}


def base_payloads(drives: int, duration_s: float) -> list[dict]:
    cfg = load_config(overrides=["tickets.mode=off", "run.progress=false"])
    out = []
    for seed in range(1, drives + 1):
        folder = cached_drive(CACHE / f"w5_d{seed}_{duration_s:g}", progress=False, world_seed=5, drive_seed=seed,
                              duration_s=duration_s, width=640, height=360)  # fmt: skip
        video = folder / "drive.mp4"
        job = DriveJob(video, None, None, content_hash(video, folder / "drive.gpx"))
        analysis = analyze_job(job, cfg, None, oracle_for).analysis
        camera = load_camera(configured_profile(cfg.drive.camera))
        out.append(json.loads(segment_payload(job.digest, analysis, camera, None)))
    return out


def variant(base: dict, k: int) -> bytes:
    """Upload ``k``: the base drive under its own id and content hash (its evidence renamed to match)."""
    drive_id = f"{base['record']['id']}-pass{k:03d}"
    folder = evidence_folder(drive_id)
    evidence = {i: {**e, "name": f"{folder}/{int(i):08d}.jpg"} for i, e in base["evidence"].items()}
    record = {**base["record"], "id": drive_id, "content_hash": f"{k:064x}"}
    return json.dumps({**base, "segment_id": drive_id, "record": record, "evidence": evidence}).encode()


DISTRICT_DEG = 0.05  # --districts: each vehicle patrols its own district, this far north of the previous one


def in_district(body: bytes, district: int) -> bytes:
    """The upload moved ``district`` districts north (positions only: what the vehicle saw stays as it was)."""
    if district == 0:
        return body
    shift = district * DISTRICT_DEG
    upload = json.loads(body)
    upload["poses"]["lat"] = [lat + shift for lat in upload["poses"]["lat"]]
    for hazard in upload["hazards"]:
        hazard["origin"][0] += shift
        for sighting in hazard["sightings"]:
            for key in ("lat", "vehicle_lat"):
                if sighting.get(key) is not None:
                    sighting[key] += shift
    return json.dumps(upload, separators=(",", ":")).encode()


def run_hub(db: str, endpoint: str, cwd: Path) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "detector", "hub", "serve", "--db", db, "--port", "0", "-q",
         "--set", "tickets.mode=on", "--set", f"tickets.endpoint={endpoint}", "--set", f"tickets.review_url={REVIEW}",
         "--set", "tickets.media_url=null", "--set", "tickets.poll_s=0.5"],
        env=env(OPEN311_API_KEY=API_KEY), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=cwd,
    )  # fmt: skip
    port = int(re.search(r":(\d+)/", proc.stdout.readline()).group(1))
    return proc, port


def run_106(folder: Path) -> tuple[subprocess.Popen, str]:
    out = folder / "serve-106.out"
    with out.open("w") as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-m", "detector", "serve-106", "--port", "0", "--db", str(folder / "106.db")],
            env=env(OPEN311_API_KEYS=API_KEY), stdout=stdout, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (found := re.search(r"http://127\.0\.0\.1:(\d+)/", out.read_text())):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("serve-106 did not start")
        time.sleep(0.1)
    return proc, f"http://127.0.0.1:{found[1]}"


def token(db: str, name: str) -> str:
    out = subprocess.run([sys.executable, "-m", "detector", "hub", "vehicles", "add", name, "--db", db, "-q"],
                         env=env(), capture_output=True, text=True, check=True).stdout  # fmt: skip
    return out.strip().splitlines()[-1]


@dataclass
class Run:
    rate: float  # segments merged per second
    first_rate: float  # over the first quarter of the uploads (by when each was answered)
    last_rate: float  # over the last quarter: a merge reads what the passes before it saw
    hazards: int  # live hazards (not merged into another)
    duplicates: int  # pairs of live hazards of one class within 2 m
    confirmed: int
    filed_once: bool  # every confirmed hazard filed, each exactly once, nothing else
    mb_per_km: float


def measure(
    db: str, workers: int, vehicles: int, uploads: list[bytes], km: float, folder: Path, districts: bool
) -> Run:
    shares = [[in_district(body, v if districts else 0) for body in uploads[v::vehicles]] for v in range(vehicles)]
    tokens = [token(db, f"van-{v}") for v in range(vehicles)]
    with HazardStore(db) as store:  # the empty store's own size (PostgreSQL: the catalogs, PostGIS) is not counted
        empty = database_bytes(store, db)
    hotline, endpoint = run_106(folder)
    hubs = [run_hub(db, endpoint, folder) for _ in range(workers)]
    failures: list[str] = []
    answered: list[float] = []

    def vehicle(v: int) -> None:
        url = f"http://127.0.0.1:{hubs[v % workers][1]}/api/v1/segments"
        with requests.Session() as session:
            for body in shares[v]:
                answer = session.post(url, data=body, headers={"Authorization": f"Bearer {tokens[v]}"}, timeout=300)
                if answer.status_code != 201:
                    failures.append(f"{answer.status_code}: {answer.text[:200]}")
                answered.append(time.perf_counter())

    threads = [threading.Thread(target=vehicle, args=(v,)) for v in range(vehicles)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    try:
        if failures:
            raise SystemExit(f"{len(failures)} uploads failed, first: {failures[0]}")
        with HazardStore(db) as store:
            deadline = time.monotonic() + 120  # the hubs' ticket senders drain the outbox
            while store.query(PENDING)[0][0] and time.monotonic() < deadline:
                time.sleep(0.5)
            live = store.query("SELECT id, class, lat, lon, status FROM hazards WHERE status != 'merged' ORDER BY id")
            evidence = store.evidence_dir if store.dialect == "sqlite" else folder / store.evidence_dir
            size = database_bytes(store, db) - empty + sum(f.stat().st_size for f in evidence.rglob("*") if f.is_file())
    finally:
        for proc, _ in hubs:
            proc.send_signal(signal.SIGINT)
        for proc, _ in hubs:
            proc.wait(60)
        hotline.terminate()
        hotline.wait(30)
    with sqlite3.connect(folder / "106.db") as conn:
        descriptions = [r[0] for r in conn.execute("SELECT description FROM requests")]
    confirmed = [h["id"] for h in live if h["status"] == "confirmed"]
    filed = [sum(marks_hazard(d, REVIEW, h) for d in descriptions) for h in confirmed]
    filed_once = filed == [1] * len(confirmed) and len(descriptions) == len(confirmed)
    return Run(len(uploads) / seconds, *quarter_rates(started, sorted(answered)), len(live), duplicate_pairs(live),
               len(confirmed), filed_once, size / 1e6 / km)  # fmt: skip


def quarter_rates(started: float, answered: list[float]) -> tuple[float, float]:
    """Segments per second over the first and over the last quarter of the uploads."""
    q = max(1, len(answered) // 4)
    first = q / (answered[q - 1] - started)
    last = q / (answered[-1] - answered[-q - 1]) if len(answered) > q else first
    return first, last


PENDING = (
    "SELECT COUNT(*) FROM outbox o JOIN hazards h ON h.id = o.hazard_id WHERE o.state = 'pending'"
    " AND h.status = 'confirmed'"
)


def database_bytes(store: HazardStore, db: str) -> int:
    if store.dialect == "postgresql":
        return int(store.query("SELECT pg_database_size(current_database())")[0][0])
    path = Path(db)
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.is_file())


def duplicate_pairs(live: list, within_m: float = 2.0) -> int:
    """Pairs of live hazards of one class closer than ``within_m``: one hazard stored twice."""
    pairs = 0
    for i, a in enumerate(live):
        for b in live[i + 1 :]:
            if a["class"] == b["class"] and geodesic_distance_m(a["lat"], a["lon"], b["lat"], b["lon"]) < within_m:
                pairs += 1
    return pairs


def cpu_per_merge(db: str, uploads: list[bytes], folder: Path) -> tuple[float, float]:
    """CPU seconds per segment of merging ``uploads`` one after the other in this process, through the hub's own
    functions (no HTTP, no ticket sender): this process's, and the PostgreSQL server's (its processes' CPU from
    /proc, Linux; 0 on SQLite)."""
    from detector.holds import load_holds
    from detector.hub.ingest import ingest_segment, read_segment
    from detector.hub.vehicles import add_vehicle, vehicle_for_token
    from detector.pipeline.analysis import merge_settings

    cfg = load_config(overrides=["tickets.mode=off", "run.progress=false"])
    merge = merge_settings(cfg, load_holds(cfg))
    here = Path.cwd()
    os.chdir(folder)  # a PostgreSQL store's evidence goes to the working folder
    try:
        with HazardStore(db) as store:
            van = vehicle_for_token(store, add_vehicle(store, "van"))
            cpu, server = time.process_time(), postgres_cpu_s()
            for body in uploads:
                ingest_segment(store, van, read_segment(body, van.name, cfg), merge)
            return (time.process_time() - cpu) / len(uploads), (postgres_cpu_s() - server) / len(uploads)
    finally:
        os.chdir(here)


def postgres_cpu_s() -> float:
    """CPU seconds the machine's ``postgres`` processes have used so far (those running now)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if text[text.index("(") + 1 : text.rindex(")")].startswith("postgres"):
            fields = text[text.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"])
    parser.add_argument("--vehicles", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--workers", type=int, default=4, help="hub processes on PostgreSQL (SQLite: one)")
    parser.add_argument("--segments", type=int, default=24)
    parser.add_argument("--drives", type=int, default=3)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--districts", action="store_true", help="each vehicle in its own district (default: one)")
    parser.add_argument("--in-process", action="store_true",
                        help="instead: CPU per merge, the segments merged one by one in this process")  # fmt: skip
    args = parser.parse_args()
    if not (1 <= args.workers <= 16 and 1 <= args.segments <= 1000 and all(1 <= v <= 64 for v in args.vehicles)):
        parser.error("--workers 1-16, --segments 1-1000, --vehicles 1-64 each")
    bases = base_payloads(args.drives, args.duration)
    uploads = [variant(bases[k % len(bases)], k) for k in range(args.segments)]
    km = sum(json.loads(u)["record"]["distance_m"] for u in uploads) / 1000
    print(f"{args.segments} segments, {km:.2f} km patrolled, {sum(map(len, uploads)) / len(uploads) / 1e3:.0f} kB "
          f"per upload on average")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, postgres(args.backends) as cluster:
        if args.in_process:
            for backend in args.backends:
                folder = Path(tmp) / backend
                folder.mkdir()
                db = cluster.new_database("bench") if backend == "postgresql" else str(folder / "central.db")
                mine, server = cpu_per_merge(db, uploads, folder)
                print(f"{backend:>10}: CPU per segment {1000 * mine:.1f} ms here, {1000 * server:.1f} ms in the "
                      "database server")  # fmt: skip
            return
        print(f"{'backend':>10} {'workers':>7} {'vehicles':>8} {'segments/s':>11} {'first 1/4':>9} {'last 1/4':>8} "
              f"{'vs N=1':>7} {'hazards':>7} {'dups':>4} {'filed once':>10} {'GB/1000km':>9}")  # fmt: skip
        for backend in args.backends:
            first = None
            workers = args.workers if backend == "postgresql" else 1
            for n in args.vehicles:
                folder = Path(tmp) / f"{backend}-{n}"
                folder.mkdir()
                db = cluster.new_database("bench") if backend == "postgresql" else str(folder / "central.db")
                run = measure(db, workers, n, uploads, km, folder, args.districts)
                first = first or run.rate
                print(f"{backend:>10} {workers:7d} {n:8d} {run.rate:11.1f} {run.first_rate:9.1f} {run.last_rate:8.1f} "
                      f"{run.rate / first:7.2f} {run.hazards:7d} "
                      f"{run.duplicates:4d} {'yes' if run.filed_once else 'NO':>10} {run.mb_per_km:9.2f}",
                      flush=True)  # fmt: skip


@contextmanager
def postgres(backends: list[str]):
    """The throwaway PostgreSQL + PostGIS cluster of the tests, when a PostgreSQL run is asked for."""
    if "postgresql" not in backends:
        yield None
        return
    sys.path.insert(0, str(PROJECT / "tests"))
    from postgres_cluster import ClusterUnavailable, throwaway_cluster

    try:
        with throwaway_cluster() as cluster:
            yield cluster
    except ClusterUnavailable as e:
        raise SystemExit(f"bench_hub: no PostgreSQL here: {e}") from None


if __name__ == "__main__":
    main()
