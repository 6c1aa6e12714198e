"""Peak memory (RSS of the process tree) of ``detector run`` and of ``detector live`` over a long input.

    .venv/bin/python benchmarks/bench_memory.py [--live-seconds 600] [--speed 1]

``detector run`` processes the 1080p drive of bench_pipeline.py (rendered once into
benchmarks/.cache). ``detector live`` plays that video in a loop as its camera (at ``--speed``
times real time) with gpsfake replaying a real in-car NMEA log from ../shared/data on loopback,
for ``--live-seconds``; RSS is sampled every half second and reported at each fifth of the run,
which shows whether it stays flat. Target (issue 7): live peak under 1 GB.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from bench_pipeline import ensure_drive

PROJECT = Path(__file__).resolve().parents[1]
NMEA = PROJECT.parent / "shared" / "data" / "gps" / "genivi" / "munich_2009-04-01.nmea"
MB = 1 << 20


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def watch(cmd: list[str], seconds: float | None = None) -> tuple[int, list[int], int]:
    """Run ``cmd``; (peak RSS, RSS samples, exit status). With ``seconds``, SIGTERM it then."""
    proc = subprocess.Popen(cmd, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    ps = psutil.Process(proc.pid)
    samples: list[int] = []
    start = time.monotonic()
    while proc.poll() is None:
        try:
            samples.append(tree_rss(ps))
        except psutil.Error:
            break
        if seconds is not None and time.monotonic() - start >= seconds:
            proc.send_signal(signal.SIGTERM)
            seconds = None
        time.sleep(0.5)
    out = proc.communicate()[0]
    print("\n".join("    " + line for line in out.strip().splitlines()[-3:]))
    return max(samples or [0]), samples, proc.returncode


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--live-seconds", type=float, default=600.0)
    parser.add_argument("--speed", type=float, default=1.0, help="camera file playback speed")
    args = parser.parse_args()
    folder = ensure_drive()
    detector = [sys.executable, "-m", "detector"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        print("detector run:")
        peak, samples, rc = watch([*detector, "run", str(folder / "drive.mp4"), "--db", f"{tmp}/run.db",
                                   "--out", f"{tmp}/run", "--set", "tickets.mode=off", "-q"])  # fmt: skip
        rows.append(("detector run (60 s 1080p drive)", peak, samples, rc))
        if not NMEA.is_file() or not shutil.which("gpsfake"):
            print(f"detector live skipped: needs gpsfake (gpsd-tools) and {NMEA}")
        else:
            port = free_port()
            fake = subprocess.Popen(
                ["gpsfake", "-q", "-P", str(port), "-c", "0.1", str(NMEA)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            try:
                time.sleep(3)
                print(f"detector live ({args.live_seconds:.0f} s):")
                peak, samples, rc = watch(
                    [*detector, "live", "--camera", str(folder / "drive.mp4"), "--loop", "--speed", str(args.speed),
                     "--gpsd", f"127.0.0.1:{port}", "--db", f"{tmp}/live.db", "--set", "tickets.mode=off", "-q"],
                    args.live_seconds,
                )  # fmt: skip
                rows.append((f"detector live ({args.live_seconds:.0f} s, 1080p loop)", peak, samples, rc))
            finally:
                os.killpg(fake.pid, signal.SIGTERM)
                fake.wait(10)
    print(f"\n{'what':36} {'exit':>4} {'peak MB':>8}  RSS MB at 20/40/60/80/100% of the run")
    for name, peak, samples, rc in rows:
        fifths = [samples[min(len(samples) - 1, round(f * (len(samples) - 1)))] // MB for f in (0.2, 0.4, 0.6, 0.8, 1)]
        print(f"{name:36} {rc:4d} {peak / MB:8.0f}  {' / '.join(str(x) for x in fifths)}")
    live = [peak for name, peak, _, _ in rows if name.startswith("detector live")]
    if live:
        print(f"live peak {live[0] / MB:.0f} MB; target < 1024 MB: {'MET' if live[0] < 1024 * MB else 'NOT MET'}")


if __name__ == "__main__":
    main()
