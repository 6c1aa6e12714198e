"""``detector run``: one drive into the store, with its report files (``samples.csv``, ``sightings.csv``,
``static_mask.png``, ``summary.json``) in the output folder."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from detector.config import Config
from detector.errors import InputError, path_text, shown
from detector.pipeline.analysis import DriveSetup, analyze_drive, commit_analysis, drive_hash
from detector.pipeline.frame_step import FrameDetector, model_detector
from detector.pipeline.sampler import SamplingStats
from detector.pipeline.signs import inventory_line
from detector.pipeline.sources.drive import open_drive
from detector.pipeline.sources.track import utc_text
from detector.privacy.evidence import photos_at_merge
from detector.store import HazardStore
from detector.store.db import store_path
from detector.store.merge import DriveAlreadyStored, MergeReport, drive_processed
from detector.tickets.outbox import destination

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    drive_id: str
    video: str
    track: str
    video_start: str
    start_source: str
    gps: str  # what the track was read from: format, fixes, time span
    camera: str  # which profile placed the hazards: given, kept beside the drive, measured from it, or the default
    stats: SamplingStats
    out_dir: str
    store: str
    evidence: str
    tickets: str  # where the drive's 106 requests go (tickets.mode)
    already_processed: bool = False
    detections: int = 0
    masked_fraction: float = 0.0
    merge: MergeReport = field(default_factory=MergeReport)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.already_processed:
            return f"{shown(self.drive_id)}: already in {shown(self.store)} (same content); nothing to do"
        s = self.stats
        return (
            f"{shown(self.drive_id)}: sampled {s.frames_sampled} frames over {s.distance_m:.0f} m "
            f"({s.covered_s:.1f} s of {s.video_s:.1f} s video covered by GPS; "
            f"{s.stationary_s:.1f} s stationary; {s.frames_decoded} frames decoded); "
            f"video starts {self.video_start} ({self.start_source})\n"
            f"GPS from {shown(self.track)}: {self.gps}\n"
            f"{self.camera}\n"
            f"static mask: {self.masked_fraction:.1%} of the frame (stamps, logos, bonnet: nothing kept there)\n"
            f"{self.detections} detections, {self.merge.line()}\n"
            f"store: {shown(self.store)} (evidence frames in {shown(self.evidence)}/); {self.tickets}\n"
            f"report: {shown(self.out_dir)}/ (samples.csv, sightings.csv, summary.json)"
        )


def run_drive(
    video: Path,
    gps: Path | None,
    cfg: Config,
    out_dir: Path,
    db: Path | None = None,
    detect: FrameDetector | None = None,
    on_merged: Callable[[], None] | None = None,
) -> RunReport:
    """Process one drive into the store. ``detect`` replaces the configured model (benchmarks use an oracle);
    ``on_merged`` is called once the drive is merged (the command's ticket sender sends what it confirmed).

    The store is ``db``, else ``store.path``, else ``hazards.db`` in ``out_dir`` (:func:`store_path`)."""
    drive = open_drive(video, gps, cfg)
    setup = DriveSetup.resolve(cfg, video=video)  # a bad profile or layer is refused before any work
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(out_dir, f"cannot create output folder ({e.strerror})") from None
    with HazardStore(store_path(cfg, db, out_dir), cfg.store.lock_timeout_s) as store:
        report = RunReport(
            drive_id=drive.id,
            video=path_text(video),
            track=path_text(drive.track.source),
            video_start=utc_text(drive.video_start_utc),
            start_source=drive.start_source,
            gps=drive.track.describe(),
            camera=setup.camera_line,
            stats=SamplingStats(),
            out_dir=path_text(out_dir),
            store=path_text(store.path) if store.dialect == "sqlite" else store.address,
            evidence=path_text(store.evidence_dir),
            tickets=destination(cfg.tickets, store.path),
            warnings=drive.warnings,
        )
        digest = drive_hash(drive)
        report.already_processed = drive_processed(store, digest)
        if not report.already_processed:  # a drive already in the store costs nothing more: no model, no sender
            log.info(inventory_line(cfg))  # on, or inactive with a model that has no sign class: not an error
            setup = setup.measured_on(drive)  # an unknown camera (drive.camera: auto) measured from the drive
            report.camera = setup.camera_line
            detect = detect or model_detector(cfg, setup.camera)
            analysis = analyze_drive(drive, cfg, setup.camera, detect, store.evidence_dir, digest, out_dir)
            report.stats = analysis.stats
            report.detections = analysis.detections
            report.masked_fraction = analysis.masked_fraction
            try:
                report.merge = commit_analysis(store, analysis, setup.merge, setup.camera)
            except DriveAlreadyStored:  # the same drive, run at the same moment, merged first
                report.already_processed = True
            else:
                photos_at_merge(store, analysis.record.id, cfg.tickets.evidence)  # ready before a reviewer looks
            if on_merged and not report.already_processed:
                on_merged()
    (out_dir / "summary.json").write_text(json.dumps(asdict(report), indent=2), encoding="utf-8")
    return report
