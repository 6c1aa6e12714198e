"""The hub's merge throughput from N concurrent vehicles into one central store, and the store's size per km.

    .venv/bin/python benchmarks/bench_hub.py [--vehicles 1 2 4] [--segments 24] [--drives 3] [--duration 30]

Renders (once, cached in benchmarks/.cache/hub/) a few drives over the same simulated streets, analyses them with
the simulator's oracle as detector, and turns them into ``--segments`` distinct uploads (each a pass over the
same streets under its own drive id: what a fleet patrolling one district sends). For each N it starts a real
``detector hub serve`` on a fresh store and N vehicles (threads, each with its own token) upload their share
over loopback HTTP at once. Printed: segments merged per second, the ratio to N=1 in the same run, and the store
(database and evidence) per km patrolled. One SQLite hub merges one segment at a time: more vehicles gain only
from overlapping uploads, checks and answers with the merges, and the ratio levels off below 2. Last results:
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from detector.batch.jobs import DriveJob  # noqa: E402
from detector.batch.worker import analyze_job  # noqa: E402
from detector.camera import configured_profile, load_camera  # noqa: E402
from detector.config import load_config  # noqa: E402
from detector.hub.payload import segment_payload  # noqa: E402
from detector.pipeline.analysis import content_hash  # noqa: E402
from detector.simulate import cached_drive  # noqa: E402
from detector.simulate.oracle import oracle_for  # noqa: E402
from detector.store.db import evidence_folder  # noqa: E402

CACHE = PROJECT / "benchmarks" / ".cache" / "hub"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT), os.environ.get("PYTHONPATH", "")])}


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


def run_hub(db: Path) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "detector", "hub", "serve", "--db", str(db), "--port", "0", "-q",
         "--set", "tickets.mode=off"],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    port = int(re.search(r":(\d+)/", proc.stdout.readline()).group(1))
    return proc, port


def token(db: Path, name: str) -> str:
    out = subprocess.run([sys.executable, "-m", "detector", "hub", "vehicles", "add", name, "--db", str(db), "-q"],
                         env=ENV, capture_output=True, text=True, check=True).stdout  # fmt: skip
    return out.strip().splitlines()[-1]


def measure(vehicles: int, uploads: list[bytes], km: float, root: Path) -> tuple[float, float]:
    db = root / f"central-{vehicles}.db"
    tokens = [token(db, f"van-{v}") for v in range(vehicles)]
    proc, port = run_hub(db)
    url = f"http://127.0.0.1:{port}/api/v1/segments"
    failures: list[str] = []

    def vehicle(v: int) -> None:
        with requests.Session() as session:
            for body in uploads[v::vehicles]:
                answer = session.post(url, data=body, headers={"Authorization": f"Bearer {tokens[v]}"}, timeout=120)
                if answer.status_code != 201:
                    failures.append(f"{answer.status_code}: {answer.text[:200]}")

    threads = [threading.Thread(target=vehicle, args=(v,)) for v in range(vehicles)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    proc.send_signal(signal.SIGINT)
    proc.wait(30)
    if failures:
        raise SystemExit(f"{len(failures)} uploads failed, first: {failures[0]}")
    files = [db, db.with_name(db.name + "-wal"), *db.with_name(db.stem + "_evidence").rglob("*")]
    size = sum(f.stat().st_size for f in files if f.is_file())
    return len(uploads) / seconds, size / 1e6 / km


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--segments", type=int, default=24)
    parser.add_argument("--drives", type=int, default=3)
    parser.add_argument("--duration", type=float, default=30.0)
    args = parser.parse_args()
    bases = base_payloads(args.drives, args.duration)
    uploads = [variant(bases[k % len(bases)], k) for k in range(args.segments)]
    km = sum(json.loads(u)["record"]["distance_m"] for u in uploads) / 1000
    print(f"{args.segments} segments, {km:.2f} km patrolled, {sum(map(len, uploads)) / len(uploads) / 1e3:.0f} kB "
          f"per upload on average")  # fmt: skip
    print(f"{'vehicles':>8} {'segments/s':>11} {'vs N=1':>7} {'store MB/km':>12}")
    first = None
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.vehicles:
            rate, per_km = measure(n, uploads, km, Path(tmp))
            first = first or rate
            print(f"{n:8d} {rate:11.1f} {rate / first:7.2f} {per_km:12.2f}", flush=True)


if __name__ == "__main__":
    main()
