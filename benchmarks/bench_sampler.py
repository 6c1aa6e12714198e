"""Sampler speed against the decode-only ceiling on a 1080p30 drive with stops.

    .venv/bin/python benchmarks/bench_sampler.py [--video V --gps G] [--repeat 3]

Without --video it renders (once, cached in benchmarks/.cache/) a 1920x1080 simulated drive.
Figures are seconds of video per second of wall time; the ratio to the decode-only ceiling
measured in the same run is what matters (absolute times on a shared machine are noise).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import av
import cv2

from detector.config import load_config
from detector.pipeline.sampler import SamplingStats, sample_drive
from detector.pipeline.sources.drive import open_drive
from detector.simulate import cached_drive

CACHE = Path(__file__).resolve().parent / ".cache" / "pipeline1080"  # the drive of bench_pipeline.py


def ensure_drive() -> tuple[Path, Path]:
    folder = cached_drive(CACHE, width=1920, height=1080, duration_s=60, world_seed=3, drive_seed=2)
    return folder / "drive.mp4", folder / "drive.gpx"


def decode_pyav(video: Path) -> int:
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


def decode_cv2_grab(video: Path) -> int:
    cap = cv2.VideoCapture(str(video))
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n


def run_sampler(video: Path, gps: Path, overrides: list[str]) -> int:
    cfg = load_config(overrides=overrides)
    drive = open_drive(video, gps, cfg)
    stats = SamplingStats()
    for _ in sample_drive(drive, cfg.sampling, stats=stats):
        pass
    return stats.frames_sampled


def best_time(fn, repeat: int) -> tuple[float, int]:
    best, result = float("inf"), 0
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path)
    parser.add_argument("--gps", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    video, gps = (args.video, args.gps) if args.video else ensure_drive()
    with av.open(str(video)) as c:
        s = c.streams.video[0]
        duration = float(s.duration * s.time_base)
        size = f"{s.codec_context.width}x{s.codec_context.height}@{float(s.average_rate):.0f}"

    rows = [
        ("decode only, PyAV (ceiling)", lambda: decode_pyav(video), "frames"),
        ("decode only, cv2 grab()", lambda: decode_cv2_grab(video), "frames"),
        ("sampler, no seeking", lambda: run_sampler(video, gps, ["sampling.min_seek_gap_s=1e9"]), "sampled"),
        ("sampler (default)", lambda: run_sampler(video, gps, []), "sampled"),
    ]
    print(f"video: {video} ({size}, {duration:.1f} s)")
    print(f"{'what':32} {'wall s':>8} {'video s/s':>10} {'vs ceiling':>11} {'count':>8}")
    ceiling = None
    for name, fn, unit in rows:
        wall, count = best_time(fn, args.repeat)
        rate = duration / wall
        ceiling = ceiling or rate
        print(f"{name:32} {wall:8.2f} {rate:10.1f} {rate / ceiling:10.0%} {count:>8} {unit}")


if __name__ == "__main__":
    main()
