"""``detector run``: wire the stages for one drive.

sources (video + GPS) → sampler → (detector → localizer → deduplicator → store → tickets)

Each stage is its own module; this one only connects them and writes the run's outputs:
``samples.csv`` (one row per sampled frame) and ``summary.json`` in the output folder.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2

from detector.errors import InputError
from detector.sampler import SampledFrame, SamplingStats, sample_drive
from detector.sources.drive import open_drive
from detector.sources.track import utc_text

SAMPLE_COLUMNS = (
    "frame_index",
    "video_time",
    "utc",
    "lat",
    "lon",
    "heading",
    "speed",
    "distance_m",
    "sharpness",
)


@dataclass
class RunReport:
    drive_id: str
    video: str
    track: str
    video_start: str
    start_source: str
    stats: SamplingStats
    out_dir: str
    warnings: list[str]

    def summary(self) -> str:
        s = self.stats
        return (
            f"{self.drive_id}: sampled {s.frames_sampled} frames over {s.distance_m:.0f} m "
            f"({s.covered_s:.1f} s of {s.video_s:.1f} s video covered by GPS; "
            f"{s.stationary_s:.1f} s stationary; {s.frames_decoded} frames decoded); "
            f"video starts {self.video_start} ({self.start_source}); output in {self.out_dir}"
        )


def _sample_row(frame: SampledFrame) -> dict[str, Any]:
    row = {k: getattr(frame, k) for k in SAMPLE_COLUMNS}
    row["utc"] = utc_text(frame.utc)
    for k in ("video_time", "heading", "speed", "distance_m", "sharpness"):
        row[k] = round(row[k], 3)
    row["lat"], row["lon"] = round(frame.lat, 7), round(frame.lon, 7)
    return row


def run_drive(video: Path, gps: Path | None, cfg: dict[str, Any], out_dir: Path) -> RunReport:
    drive = open_drive(video, gps, cfg)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(out_dir, f"cannot create output folder ({e.strerror})") from None
    frames_dir = out_dir / "frames"
    if cfg["run"]["save_frames"]:
        frames_dir.mkdir(exist_ok=True)
    stats = SamplingStats()
    samples_path = out_dir / "samples.csv"
    with samples_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=SAMPLE_COLUMNS)
        writer.writeheader()
        for frame in sample_drive(drive, cfg["sampling"], progress=cfg["run"]["progress"], stats=stats):
            writer.writerow(_sample_row(frame))
            if cfg["run"]["save_frames"]:
                cv2.imwrite(str(frames_dir / f"{frame.frame_index:06d}.jpg"), frame.image)
    report = RunReport(
        drive_id=drive.id,
        video=str(video),
        track=drive.track.source,
        video_start=utc_text(drive.video_start_utc),
        start_source=drive.start_source,
        stats=stats,
        out_dir=str(out_dir),
        warnings=drive.warnings,
    )
    (out_dir / "summary.json").write_text(json.dumps(asdict(report), indent=2), encoding="utf-8")
    return report
