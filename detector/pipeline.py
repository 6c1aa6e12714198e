"""``detector run``: wire the stages for one drive.

sources (video + GPS) → sampler → detector → localizer → deduplicator → store (→ tickets)

Each stage is its own module; this one only connects them and writes the run's outputs:
``samples.csv`` (one row per sampled frame), ``sightings.csv`` and ``summary.json`` in the
output folder, evidence frames beside the store, and the drive's hazards in the store.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.camera import CameraModel, load_camera
from detector.dedup import DedupSettings, cluster_drive
from detector.detections import Detections
from detector.errors import InputError
from detector.inference import load_detector
from detector.localize import LocalizeSettings, Sighting, localize
from detector.sampler import SampledFrame, SamplingStats, sample_drive
from detector.sources.drive import Drive, open_drive
from detector.sources.track import utc_text
from detector.store import HazardStore
from detector.store.hazards import DriveRecord, FramePoses, MergeReport, drive_processed, merge_drive
from detector.tickets.outbox import start_ticket_sender

SAMPLE_COLUMNS = ("frame_index", "video_time", "utc", "lat", "lon", "heading", "speed", "distance_m", "sharpness")
SIGHTING_COLUMNS = ("frame_index", "utc", "class_name", "confidence", "lat", "lon", "range_m", "lateral_m",
                    "uncertainty_m", "width_m", "far")  # fmt: skip


@dataclass
class RunReport:
    drive_id: str
    video: str
    track: str
    video_start: str
    start_source: str
    stats: SamplingStats
    out_dir: str
    store: str
    already_processed: bool = False
    detections: int = 0
    merge: MergeReport = field(default_factory=MergeReport)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.already_processed:
            return f"{self.drive_id}: already in {self.store} (same content); nothing to do"
        s = self.stats
        return (
            f"{self.drive_id}: sampled {s.frames_sampled} frames over {s.distance_m:.0f} m "
            f"({s.covered_s:.1f} s of {s.video_s:.1f} s video covered by GPS; "
            f"{s.stationary_s:.1f} s stationary; {s.frames_decoded} frames decoded); "
            f"video starts {self.video_start} ({self.start_source})\n"
            f"{self.detections} detections, {self.merge.line()}\n"
            f"store: {self.store}; output in {self.out_dir}"
        )


def content_hash(*paths: Path) -> str:
    """SHA-256 over the files' bytes: the same drive processed twice is recognised as such."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as f:
            while chunk := f.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()


def _row(record: Any, columns: tuple[str, ...]) -> dict[str, Any]:
    row = {k: getattr(record, k) for k in columns}
    row["utc"] = utc_text(record.utc)
    return {k: round(v, 7) if isinstance(v, float) else v for k, v in row.items()}


def _drive_record(drive: Drive, digest: str, stats: SamplingStats, camera: str) -> DriveRecord:
    t0, t1 = drive.covered
    return DriveRecord(
        id=drive.id,
        content_hash=digest,
        video=str(drive.video.path),
        track=drive.track.source,
        started_utc=drive.utc(t0),
        ended_utc=drive.utc(t1),
        distance_m=stats.distance_m,
        frames_sampled=stats.frames_sampled,
        camera=camera,
    )


FrameDetector = Callable[[SampledFrame], Detections]


def model_detector(section: dict[str, Any]) -> FrameDetector:
    """The configured hazard model, applied to each sampled frame's image."""
    model = load_detector(section)
    return lambda frame: model(frame.image)


def run_drive(
    video: Path,
    gps: Path | None,
    cfg: dict[str, Any],
    out_dir: Path,
    db: Path | None = None,
    detect: FrameDetector | None = None,
) -> RunReport:
    """Process one drive into the store. ``detect`` replaces the configured model (benchmarks use an oracle)."""
    drive = open_drive(video, gps, cfg)
    camera = load_camera(cfg["drive"]["camera"])
    store = HazardStore(db or Path(cfg["store"]["path"]), cfg["store"]["lock_timeout_s"])
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(out_dir, f"cannot create output folder ({e.strerror})") from None
    report = RunReport(
        drive_id=drive.id,
        video=str(video),
        track=drive.track.source,
        video_start=utc_text(drive.video_start_utc),
        start_source=drive.start_source,
        stats=SamplingStats(),
        out_dir=str(out_dir),
        store=str(store.path),
        warnings=drive.warnings,
    )
    sender = start_ticket_sender(cfg, store.path)  # drains the outbox in the background (tickets.mode)
    try:
        with store:
            _process(drive, cfg, store, camera, out_dir, report, detect)
        if sender:
            sender.wake()  # send what this drive confirmed now, not at the next poll
    finally:
        if sender:
            sender.stop()
    (out_dir / "summary.json").write_text(json.dumps(asdict(report), indent=2), encoding="utf-8")
    return report


def _process(
    drive: Drive, cfg: dict[str, Any], store: HazardStore, camera: CameraModel, out_dir: Path, report: RunReport,
    detect: FrameDetector | None,
) -> None:  # fmt: skip
    """Sample, detect, localize and cluster one drive, then merge it into the store (one transaction)."""
    digest = content_hash(drive.video.path, Path(drive.track.source))
    if drive_processed(store, digest):
        report.already_processed = True
        return
    classes = list(cfg["detect"]["classes"])
    detect = detect or model_detector(cfg["detect"])
    local = drive.trajectory.frame
    loc = LocalizeSettings.from_config(cfg["localize"])
    dedup = DedupSettings.from_config(cfg["dedup"])
    evidence_dir = store.evidence_dir / drive.id
    evidence: dict[int, str] = {}
    sightings: list[Sighting] = []
    poses: list[tuple[float, float, float]] = []
    size = (drive.video.width, drive.video.height)
    with (out_dir / "samples.csv").open("w", newline="", encoding="utf-8") as samples_file:
        samples = csv.DictWriter(samples_file, fieldnames=SAMPLE_COLUMNS)
        samples.writeheader()
        frame: SampledFrame
        for frame in sample_drive(drive, cfg["sampling"], progress=cfg["run"]["progress"], stats=report.stats):
            samples.writerow(_row(frame, SAMPLE_COLUMNS))
            poses.append((frame.lat, frame.lon, frame.heading))
            found = detect(frame)
            report.detections += len(found)
            placed = localize(frame, found, classes, camera, local, loc)
            if placed:
                evidence_dir.mkdir(parents=True, exist_ok=True)
                path = evidence_dir / f"{frame.frame_index:06d}.jpg"
                cv2.imwrite(str(path), frame.image, [cv2.IMWRITE_JPEG_QUALITY, 90])
                evidence[frame.frame_index] = str(path.relative_to(store.evidence_dir))
                sightings += placed
    with (out_dir / "sightings.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=SIGHTING_COLUMNS)
        writer.writeheader()
        writer.writerows(_row(s, SIGHTING_COLUMNS) for s in sightings)
    pose = np.array(poses, dtype=float).reshape(-1, 3)
    report.merge = merge_drive(
        store,
        _drive_record(drive, digest, report.stats, camera.name),
        cluster_drive(sightings, local, dedup),
        FramePoses(pose[:, 0], pose[:, 1], pose[:, 2], *size),
        camera,
        dedup,
        loc.gps_sigma_m,
        evidence,
    )
