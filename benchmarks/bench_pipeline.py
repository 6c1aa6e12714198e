"""Pipeline speed against the decode-only ceiling and against the naive approach, on a 1080p30 drive.

    .venv/bin/python benchmarks/bench_pipeline.py [--naive-every 3] [--cores 2] [--set sampling.spacing_m=2]

Renders (once, cached in benchmarks/.cache/pipeline1080) a 60 s 1920x1080 30 fps simulated urban
drive with stops, pins this process to ``--cores`` CPU cores, and measures in one run:

* decode only (PyAV, every frame): the ceiling for anything that looks at the video;
* the pipeline (``detector run``: distance sampler, ONNX detector, localizer, dedup, store);
* the whole ``detector run`` command in a new process, startup included, with the default configuration (the 106
  requests' dry run too), on this drive and on a drive dense with hazards (world 21, drive 1), where detections
  keep starting the closer look; then the dense drive without its ``profile.yaml``, as a user's drive comes: its
  camera measured from its start (``drive.camera: auto``), and run again as the vehicle's next drive would be, the
  estimate remembered beside it;
* the naive approach: Ultralytics ``YOLO("models/hazards.pt").predict`` on every frame, every
  detection a report. With ``--naive-every N`` it runs on every Nth frame only and its time is
  scaled by N (said in the table); a hazard stays in view for tens of frames, so the subset
  cannot lose hazards the full pass would find in any number that matters, and can only
  understate the naive report count, which is scaled by N too.

Unique hazards: the pipeline's are the truth hazards with a stored hazard of their class within
5 m; the naive approach's are the truth hazards whose box any of its detections of that class
overlaps (IoU >= 0.1) in a frame where the simulator's exact labels (``labels.csv``) show it.
Targets (issue 7): >= 4x real time, >= 6x faster than naive, finding >= 95% of the hazards the
naive approach finds. Timings on a shared machine are noisy: the ratios, measured in the same
run, are what matter.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from detector.config import Config, load_config
from detector.detections import box_iou
from detector.geo import LocalFrame
from detector.pipeline.frame_step import report_thresholds
from detector.run import run_drive
from detector.simulate import cached_drive
from detector.simulate.labels import HazardBox, read_labels
from detector.simulate.oracle import load_truth
from detector.store import HazardStore

CACHE = Path(__file__).resolve().parent / ".cache" / "pipeline1080"
DENSE = Path(__file__).resolve().parent / ".cache" / "dense1080"
MATCH_M = 5.0


def ensure_drive() -> Path:
    """The 60 s 1080p30 urban drive with stops (world 3, drive 2), rendered once; bench_sampler uses it too."""
    return cached_drive(CACHE, width=1920, height=1080, duration_s=60, world_seed=3, drive_seed=2)


def ensure_dense_drive() -> Path:
    """A 60 s 1080p30 drive dense with hazards (world 21, drive 1: 13 in view), rendered once: detections start
    the closer look again and again, the pipeline's heaviest case."""
    return cached_drive(DENSE, width=1920, height=1080, duration_s=60, world_seed=21, drive_seed=1)


def whole_command(folder: Path, out: Path, overrides: list[str]) -> float:
    """Wall seconds of ``detector run`` on the drive as a user runs it: a new process, startup and store included;
    ``out``: a new folder for its report and store (a store that holds the drive already would skip it)."""
    command = [sys.executable, "-m", "detector", "run", str(folder / "drive.mp4"), "--out", str(out), "--db",
               str(out / "hazards.db"), "-q", *(a for o in overrides for a in ("--set", o))]  # fmt: skip
    t = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - t


def decode_only(video: Path) -> int:
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


def pipeline(folder: Path, cfg: Config, tmp: Path) -> tuple[int, list]:
    report = run_drive(folder / "drive.mp4", folder / "drive.gpx", cfg, tmp / "run", tmp / "hazards.db")
    with HazardStore(tmp / "hazards.db") as store:
        rows = store.query("SELECT class, lat, lon FROM hazards")
    return report.stats.frames_sampled, rows


def found_by_pipeline(rows: list, truth: list[dict], local: LocalFrame) -> set[int]:
    hx, hy = local.to_xy([r["lat"] for r in rows], [r["lon"] for r in rows])
    tx, ty = local.to_xy([t["lat"] for t in truth], [t["lon"] for t in truth])
    pairs = sorted(
        (float(np.hypot(hx[j] - tx[i], hy[j] - ty[i])), i, j)
        for i in range(len(truth)) for j in range(len(rows)) if rows[j]["class"] == truth[i]["class"]
    )  # fmt: skip
    used_t, used_h = set(), set()
    for d, i, j in pairs:
        if d <= MATCH_M and i not in used_t and j not in used_h:
            used_t.add(i)
            used_h.add(j)
    return used_t


def naive(
    folder: Path, cfg: dict, every: int, truth: list[dict], labels: dict[int, list[HazardBox]]
) -> tuple[float, int, set[int], int]:
    """(seconds, reports, truth hazards hit, frames run) of predict-on-every-frame."""
    from ultralytics import YOLO

    model = YOLO(str(Path(cfg.detect.model).with_suffix(".pt")), task="detect")
    thresholds = report_thresholds(cfg)
    index_of = {t["id"]: k for k, t in enumerate(truth)}
    reports, frames, hit = 0, 0, set()
    seconds = 0.0
    with av.open(str(folder / "drive.mp4")) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if index % every:
                continue
            t = time.perf_counter()
            image = frame.to_ndarray(format="bgr24")
            result = model.predict(image, conf=float(thresholds.min()), verbose=False)[0]
            seconds += time.perf_counter() - t
            frames += 1
            classes = result.boxes.cls.cpu().numpy().astype(int)
            kept = result.boxes.conf.cpu().numpy() >= thresholds[classes]  # each class at its own threshold
            boxes, classes = result.boxes.xyxy.cpu().numpy()[kept], classes[kept]
            reports += len(boxes)  # every detection is a report
            for box, cls in zip(boxes, classes, strict=True):
                for shown in labels.get(index, []):
                    if shown.cls == cls and box_iou(box, np.array([shown.box]))[0] >= 0.1:
                        hit.add(index_of[shown.id])
    return seconds, reports, hit, frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--naive-every", type=int, default=1, help="run the naive approach on every Nth frame")
    parser.add_argument("--cores", type=int, default=2, help="pin to this many CPU cores")
    parser.add_argument("--folder", type=Path, help="another simulated drive folder (default: the cached 60 s one)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    args = parser.parse_args()
    cores = sorted(os.sched_getaffinity(0))[: args.cores]
    os.sched_setaffinity(0, cores)
    folder = args.folder or ensure_drive()
    video = folder / "drive.mp4"
    cfg = load_config(overrides=["run.progress=false", "tickets.mode=off", "detect.backend=onnx", *args.set])
    with av.open(str(video)) as c:
        s = c.streams.video[0]
        duration = float(s.duration * s.time_base)
        size = f"{s.codec_context.width}x{s.codec_context.height}@{float(s.average_rate):.0f}"
    truth = load_truth(folder / "truth.geojson")
    local = LocalFrame(float(np.median([t["lat"] for t in truth])), float(np.median([t["lon"] for t in truth])))

    t = time.perf_counter()
    decoded = decode_only(video)
    decode_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        sampled, rows = pipeline(folder, cfg, Path(tmp))
        pipe_s = time.perf_counter() - t
    pipe_found = found_by_pipeline(rows, truth, local)
    labels = read_labels(folder / "labels.csv")
    naive_s, reports, naive_found, naive_frames = naive(folder, cfg, args.naive_every, truth, labels)
    scale = args.naive_every
    naive_total = naive_s * scale + decode_s * (1 - 1 / scale)  # the skipped frames would be decoded too
    in_view = len({b.id for boxes in labels.values() for b in boxes if b.range_m <= 30})

    print(f"video: {video} ({size}, {duration:.1f} s); {len(cores)} CPU cores; {len(truth)} hazards in the world, "
          f"{in_view} in view on this drive")  # fmt: skip
    print(f"{'what':44} {'wall s':>8} {'video s/s':>10} {'frames':>7} {'reports':>8} {'unique':>7}")
    print(f"{'decode only (PyAV, every frame): ceiling':44} {decode_s:8.1f} {duration / decode_s:10.2f} {decoded:7d}")
    print(f"{'pipeline (detector run, ONNX)':44} {pipe_s:8.1f} {duration / pipe_s:10.2f} {sampled:7d} "
          f"{len(rows):8d} {len(pipe_found):7d}")  # fmt: skip
    what = "naive (YOLO.predict every frame)" + (f", x{scale} from 1/{scale}" if scale > 1 else "")
    print(f"{what:44} {naive_total:8.1f} {duration / naive_total:10.2f} {naive_frames * scale:7d} "
          f"{reports * scale:8d} {len(naive_found):7d}")  # fmt: skip
    common = len(pipe_found & naive_found) / max(len(naive_found), 1)
    rtf, speedup = duration / pipe_s, naive_total / pipe_s
    print()
    print(f"pipeline: {rtf:.2f}x real time ({rtf / (duration / decode_s):.0%} of the decode ceiling); "
          f"target >= 4x: {'MET' if rtf >= 4 else 'NOT MET'}")  # fmt: skip
    print(f"speed-up over naive: {speedup:.1f}x; target >= 6x: {'MET' if speedup >= 6 else 'NOT MET'}")
    print(f"hazards the naive approach finds that the pipeline finds too: {len(pipe_found & naive_found)}/"
          f"{len(naive_found)} ({common:.0%}); target >= 95%: {'MET' if common >= 0.95 else 'NOT MET'}")  # fmt: skip
    print(f"pipeline finds {len(pipe_found - naive_found)} hazards the naive approach misses")
    print("\nwhole command (detector run in a new process: startup, model, store, report), 1080p30")
    print(f"{'drive':60} {'wall s':>8} {'video s/s':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        dense = ensure_dense_drive()
        unknown = without_profile(dense, Path(tmp) / "unknown-camera")
        for k, (label, drive) in enumerate((
            ("with stops (world 3, drive 2)", folder),
            ("dense with hazards (world 21, drive 1)", dense),
            ("the dense drive, no profile: camera measured (first drive)", unknown),
            ("the same, the estimate remembered (a later drive)", unknown),
        )):  # fmt: skip
            wall = whole_command(drive, Path(tmp) / f"cmd-{k}", args.set)  # as a user runs it: tickets.mode dry-run
            verdict = "MET" if duration / wall >= 4 else "NOT MET"
            print(f"{label:60} {wall:8.1f} {duration / wall:10.2f}   target >= 4x: {verdict}")


def without_profile(folder: Path, linked: Path) -> Path:
    """``folder``'s video and track linked into ``linked``, without its profile: a drive from a camera nobody
    calibrated, which ``drive.camera: auto`` measures (and remembers beside the drive for the next one)."""
    linked.mkdir()
    for name in ("drive.mp4", "drive.gpx"):
        (linked / name).symlink_to(folder / name)
    return linked


if __name__ == "__main__":
    main()
