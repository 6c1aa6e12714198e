"""The whole pipeline on a real clip with no hazard in it: what it confirms, as filmed and with a dashcam's stamp.

    .venv/bin/python benchmarks/real_clip.py [--clip ../shared/data/video/gopro/max-heromode.mp4] [--style 4]
                                             [--out DIR] [--set KEY=VALUE]

The GoPro clip (a 10.5 s walk along a pavement past a car park, GPS in its GPMF telemetry) shows no pothole and
no fallen sign, so every hazard the pipeline confirms on it is false. It runs through ``detector run`` twice:
as filmed, and re-encoded with a burned-in date, time and speed stamp (its GPS written beside it as CSV, since
the re-encoded file carries no telemetry). The walk is slower than a vehicle: sampling runs at
``sampling.min_speed_mps=0.3`` and a frame every 0.5 m. The camera profile is a plain 118-degree pinhole held
1.5 m up, level (``--set drive.camera=...`` for another). Annotated frames of every detection are written to
``--out`` to look at: boxes in red where the model fires, the static mask in the check picture's red.
"""

from __future__ import annotations

import argparse
import csv
import sqlite3
import tempfile
from pathlib import Path

import av
import cv2
import numpy as np

from detector.camera import CameraModel, save_camera
from detector.config import load_config
from detector.pipeline.sources.gps import read_track
from detector.run import run_drive
from detector.simulate.overlay import draw_overlay, random_style

CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "gopro" / "max-heromode.mp4"


def stamped_copy(clip: Path, out: Path, style_seed: int) -> tuple[Path, Path]:
    """``clip`` re-encoded with a dashcam stamp, and its GPS track as CSV beside it."""
    track = read_track(clip)
    video = out / f"{clip.stem}-stamped.mp4"
    style = random_style(np.random.default_rng(style_seed))
    with av.open(str(clip)) as src, av.open(str(video), "w") as dst:
        stream = src.streams.video[0]
        rate = stream.average_rate or 30
        enc = dst.add_stream("libx264", rate=rate)
        enc.width, enc.height, enc.pix_fmt = stream.codec_context.width, stream.codec_context.height, "yuv420p"
        start = track.video_start_utc or float(track.time[0])
        for i, frame in enumerate(src.decode(stream)):
            t = float(frame.pts * stream.time_base) if frame.pts is not None else i / float(rate)
            image, _ = draw_overlay(frame.to_ndarray(format="bgr24"), style, start + t, 1.0, float(track.lat[0]),
                                    float(track.lon[0]))  # fmt: skip
            out_frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
            for packet in enc.encode(out_frame):
                dst.mux(packet)
        for packet in enc.encode():
            dst.mux(packet)
    gps = out / f"{clip.stem}-stamped.csv"
    with gps.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["time", "lat", "lon"])
        writer.writerows((f"{t:.3f}", f"{la:.7f}", f"{lo:.7f}") for t, la, lo in zip(track.time, track.lat, track.lon,
                                                                                     strict=True))  # fmt: skip
    return video, gps


def annotate(db: Path, out: Path, name: str) -> int:
    """Evidence frames of every sighting with its box drawn; returns how many were written."""
    evidence = db.with_name(db.stem + "_evidence")
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT evidence_path, class, confidence, x1, y1, x2, y2 FROM sightings").fetchall()
    for k, (path, cls, conf, x1, y1, x2, y2) in enumerate(rows):
        image = cv2.imread(str(evidence / path)) if path else None
        if image is None:
            continue
        cv2.rectangle(image, (int(x1), int(y1)), (int(x2), int(y2)), (0, 0, 255), 2)
        cv2.putText(image, f"{cls} {conf:.2f}", (int(x1), max(12, int(y1) - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (0, 0, 255), 1, cv2.LINE_AA)  # fmt: skip
        cv2.imwrite(str(out / f"{name}-{k:03d}.jpg"), image)
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=CLIP)
    parser.add_argument("--style", type=int, default=4, help="stamp style seed")
    parser.add_argument("--out", type=Path, default=Path("runs/real_clip"), help="annotated frames go here")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    if not args.clip.is_file():
        raise SystemExit(f"{args.clip}: not found (the real data sits beside the project on the team's machines)")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        profile = save_camera(CameraModel(848, 480, hfov_deg=118.0, height_m=1.5, pitch_deg=0.0, name="gopro-walk"),
                              tmp / "gopro.yaml")  # fmt: skip
        overrides = ["run.progress=false", "tickets.mode=off", "sampling.min_speed_mps=0.3", "sampling.spacing_m=0.5",
                     "mask.spacing_m=0.5", "mask.min_frames=8", f"drive.camera={profile}", *args.set]  # fmt: skip
        cfg = load_config(overrides=overrides)
        video, gps = stamped_copy(args.clip, tmp, args.style)
        print(f"{'clip':24} {'frames':>7} {'detections':>11} {'masked':>7} {'hazards':>8} {'confirmed':>10} "
              f"{'held':>5} {'annotated':>10}")  # fmt: skip
        for name, path, track in (("as filmed", args.clip, None), ("with a stamp", video, gps)):
            db = tmp / f"{name.replace(' ', '-')}.db"
            report = run_drive(path, track, cfg, tmp / name.replace(" ", "-"), db)
            with sqlite3.connect(db) as conn:
                statuses = dict(conn.execute("SELECT status, COUNT(*) FROM hazards GROUP BY status").fetchall())
                held = conn.execute("SELECT COUNT(*) FROM events WHERE action = 'held'").fetchone()[0]
            drawn = annotate(db, args.out, name.replace(" ", "-"))
            print(f"{name:24} {report.stats.frames_sampled:7d} {report.detections:11d} "
                  f"{report.masked_fraction:7.1%} {sum(statuses.values()):8d} {statuses.get('confirmed', 0):10d} "
                  f"{held:5d} {drawn:10d}")  # fmt: skip


if __name__ == "__main__":
    main()
