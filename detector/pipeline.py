"""``detector run``: wire the stages for one drive.

sources (video + GPS) → sampler → detector → localizer → deduplicator → store (→ tickets)

Each stage is its own module; this one only connects them. A drive is processed in two steps
so that ``detector batch`` can run the first anywhere (a worker process, a Dask worker):

* :func:`analyze_drive` (pure, picklable in and out): open, sample, detect, localize, write
  the evidence frames, cluster the drive's sightings; returns a :class:`DriveAnalysis`;
* :func:`commit_analysis` (in the process that owns the store): merge it, one transaction.

``detector run`` does both in one process and writes ``samples.csv``, ``sightings.csv`` and
``summary.json`` in its output folder.
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

from detector.camera import load_camera
from detector.dedup.across_drives import FramePoses
from detector.dedup.within_drive import DedupSettings, DriveHazard, cluster_drive
from detector.detections import Detections
from detector.errors import InputError, path_text
from detector.holds import load_holds
from detector.images import write_image
from detector.inference import detect_section, load_detector
from detector.inference.detector import at_thresholds, class_thresholds
from detector.localize import LocalizeSettings, Sighting, localize
from detector.sampler import Focus, SampledFrame, SamplingStats, sample_drive
from detector.sources.drive import Drive, open_drive
from detector.sources.track import utc_text
from detector.static_mask import MaskLearner, MaskSettings
from detector.store import HazardStore
from detector.store.db import evidence_folder, store_path
from detector.store.hazards import DriveRecord, DriveResult, MergeReport, MergeSettings, drive_processed, merge_drive
from detector.tickets.outbox import TicketSettings, start_ticket_sender

SAMPLE_COLUMNS = ("frame_index", "video_time", "utc", "lat", "lon", "heading", "speed", "distance_m", "sharpness")
SIGHTING_COLUMNS = ("frame_index", "utc", "class_name", "confidence", "lat", "lon", "range_m", "lateral_m",
                    "uncertainty_m", "width_m", "far")  # fmt: skip
JPEG_QUALITY = 90


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
    evidence: str
    tickets: str  # where the drive's 106 requests go (tickets.mode)
    already_processed: bool = False
    detections: int = 0
    masked_fraction: float = 0.0
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
            f"static mask: {self.masked_fraction:.1%} of the frame (stamps, logos, bonnet: nothing kept there)\n"
            f"{self.detections} detections, {self.merge.line()}\n"
            f"store: {self.store} (evidence frames in {self.evidence}/); {self.tickets}\n"
            f"report: {self.out_dir}/ (samples.csv, sightings.csv, summary.json)"
        )


@dataclass
class DriveAnalysis:
    """One drive, analysed and clustered but not yet merged: what a batch worker sends back.

    ``evidence`` maps frame index to the frame's path under the store's evidence folder; where
    the worker could not write there, ``evidence_jpeg`` holds the JPEG bytes for the parent to write.
    """

    record: DriveRecord
    hazards: list[DriveHazard]
    poses: FramePoses
    stats: SamplingStats
    detections: int
    sightings: list[Sighting]
    video_start_utc: float
    start_source: str
    warnings: list[str] = field(default_factory=list)
    evidence: dict[int, str] = field(default_factory=dict)
    evidence_jpeg: dict[int, bytes] = field(default_factory=dict)
    masked_fraction: float = 0.0  # of the frame, by the drive's static mask


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
        video=path_text(drive.video.path),
        track=path_text(drive.track.source),
        started_utc=drive.utc(t0),
        ended_utc=drive.utc(t1),
        distance_m=stats.distance_m,
        frames_sampled=stats.frames_sampled,
        camera=camera,
    )


FrameDetector = Callable[[SampledFrame], Detections]


def model_detector(cfg: dict[str, Any]) -> FrameDetector:
    """The configured hazard model, applied to each sampled frame's image.

    It reports down to ``sampling.focus_conf`` when that is lower than ``detect.conf`` (and the closer look
    is on), so that :func:`screen` can start the closer look on a faint detection.
    """
    focus = Focus.from_config(cfg["sampling"])
    conf = cfg["detect"]["conf"]
    if focus is not None:
        conf = {c: min(t, focus.conf) for c, t in conf.items()}
    model = load_detector({**detect_section(cfg), "conf": conf})
    return lambda frame: model(frame.image)


def report_thresholds(cfg: dict[str, Any]) -> np.ndarray:
    """The per-class thresholds (``detect.conf``) at which a frame's detections are reported, in class order."""
    return class_thresholds(cfg["detect"]["conf"], list(cfg["detect"]["classes"]))


def screen(found: Detections, thresholds: np.ndarray, focus: Focus | None, distance_m: float) -> Detections:
    """The detections of one frame to report (each at or above its class's threshold); any that ``focus`` responds
    to makes it look closer from ``distance_m`` on."""
    if focus is not None and len(found) and float(found.confidence.max()) >= focus.conf:
        focus.after(distance_m)
    return at_thresholds(found, thresholds)


def drive_hash(drive: Drive) -> str:
    """The content hash that identifies a drive in the store (its video and track files)."""
    return content_hash(drive.video.path, Path(drive.track.source))


def analyze_drive(
    drive: Drive,
    cfg: dict[str, Any],
    detect: FrameDetector,
    evidence_root: Path | None,
    digest: str,
    out_dir: Path | None = None,
    progress: bool | None = None,
) -> DriveAnalysis:
    """Sample, detect, localize and cluster one drive; touches no store.

    Evidence frames go to ``evidence_root/<drive id>/`` when given, else into the result as JPEG
    bytes. With ``out_dir``, ``samples.csv``, ``sightings.csv`` and the static mask (``static_mask.png``, white
    where no detection was kept) are written there.
    """
    camera = load_camera(cfg["drive"]["camera"])
    classes = list(cfg["detect"]["classes"])
    local = drive.trajectory.frame
    loc = LocalizeSettings.from_config(cfg["localize"])
    dedup = DedupSettings.from_config(cfg["dedup"])
    stats = SamplingStats()
    evidence: dict[int, str] = {}
    jpegs: dict[int, bytes] = {}
    sightings: list[Sighting] = []
    poses: list[tuple[float, float, float]] = []
    detections = 0
    samples_file = (out_dir / "samples.csv").open("w", newline="", encoding="utf-8") if out_dir else None
    try:
        samples = csv.DictWriter(samples_file, fieldnames=SAMPLE_COLUMNS) if samples_file else None
        if samples:
            samples.writeheader()
        show = cfg["run"]["progress"] if progress is None else progress
        frame: SampledFrame
        focus = Focus.from_config(cfg["sampling"])
        thresholds = report_thresholds(cfg)
        still = MaskLearner(MaskSettings.from_config(cfg["mask"]), camera.mask)
        for frame in sample_drive(drive, cfg["sampling"], progress=show, stats=stats, focus=focus):
            if samples:
                samples.writerow(_row(frame, SAMPLE_COLUMNS))
            poses.append((frame.lat, frame.lon, frame.heading))
            still.add(frame.image, frame.distance_m)
            found = screen(still.keep(detect(frame)), thresholds, focus, frame.distance_m)
            detections += len(found)
            placed = localize(frame, found, classes, camera, local, loc)
            if not placed:
                continue
            sightings += placed
            name = f"{evidence_folder(drive.id)}/{frame.frame_index:06d}.jpg"
            if evidence_root is None:
                ok, data = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                if ok:
                    jpegs[frame.frame_index] = data.tobytes()
            else:
                (evidence_root / name).parent.mkdir(parents=True, exist_ok=True)
                write_image(evidence_root / name, frame.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            evidence[frame.frame_index] = name
    finally:
        if samples_file:
            samples_file.close()
    mask = still.final()
    if mask is not None:  # frames seen before the mask was learnt: their sightings in it go now
        sightings = mask.drop_sightings(sightings)
        kept = {s.frame_index for s in sightings}
        for index in [i for i in evidence if i not in kept]:
            if evidence_root is not None:
                (evidence_root / evidence[index]).unlink(missing_ok=True)
            evidence.pop(index)
            jpegs.pop(index, None)
    if out_dir:
        if mask is not None and mask.fraction > 0:  # white: where no detection was kept, for a person to check
            write_image(out_dir / "static_mask.png", mask.pixels.astype(np.uint8) * 255)
        with (out_dir / "sightings.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=SIGHTING_COLUMNS)
            writer.writeheader()
            writer.writerows(_row(s, SIGHTING_COLUMNS) for s in sightings)
    pose = np.array(poses, dtype=float).reshape(-1, 3)
    return DriveAnalysis(
        record=_drive_record(drive, digest, stats, camera.name),
        hazards=cluster_drive(sightings, local, dedup),
        poses=FramePoses(pose[:, 0], pose[:, 1], pose[:, 2], drive.video.width, drive.video.height),
        stats=stats,
        detections=detections,
        sightings=sightings,
        video_start_utc=drive.video_start_utc,
        start_source=drive.start_source,
        warnings=list(drive.warnings),
        evidence=evidence,
        evidence_jpeg=jpegs,
        masked_fraction=mask.fraction if mask is not None else 0.0,
    )


def check_named_files(cfg: dict[str, Any]) -> None:
    """Read the files the config names (camera profile, feature layer): a bad one is reported before any work."""
    load_camera(cfg["drive"]["camera"])
    load_holds(cfg)


def commit_analysis(store: HazardStore, analysis: DriveAnalysis, cfg: dict[str, Any]) -> MergeReport:
    """Merge an analysed drive into the store (one transaction); evidence bytes are written first."""
    for index, data in analysis.evidence_jpeg.items():
        path = store.evidence_dir / analysis.evidence[index]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return merge_drive(
        store,
        DriveResult(
            analysis.record, analysis.hazards, analysis.poses, load_camera(cfg["drive"]["camera"]), analysis.evidence
        ),
        MergeSettings(
            DedupSettings.from_config(cfg["dedup"]),
            LocalizeSettings.from_config(cfg["localize"]).gps_sigma_m,
            load_holds(cfg),
        ),
    )


def run_drive(
    video: Path,
    gps: Path | None,
    cfg: dict[str, Any],
    out_dir: Path,
    db: Path | None = None,
    detect: FrameDetector | None = None,
) -> RunReport:
    """Process one drive into the store. ``detect`` replaces the configured model (benchmarks use an oracle).

    The store is ``db``, else ``store.path``, else ``hazards.db`` in ``out_dir`` (:func:`store_path`)."""
    drive = open_drive(video, gps, cfg)
    check_named_files(cfg)
    tickets = TicketSettings.from_config(cfg["tickets"])
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(out_dir, f"cannot create output folder ({e.strerror})") from None
    with HazardStore(store_path(cfg, db, out_dir), cfg["store"]["lock_timeout_s"]) as store:
        report = RunReport(
            drive_id=drive.id,
            video=path_text(video),
            track=path_text(drive.track.source),
            video_start=utc_text(drive.video_start_utc),
            start_source=drive.start_source,
            stats=SamplingStats(),
            out_dir=path_text(out_dir),
            store=path_text(store.path),
            evidence=path_text(store.evidence_dir),
            tickets=tickets.destination(store.path),
            warnings=drive.warnings,
        )
        digest = drive_hash(drive)
        report.already_processed = drive_processed(store, digest)
        if not report.already_processed:  # a drive already in the store costs nothing more: no model, no sender
            _process(drive, cfg, store, digest, out_dir, detect, report)
    (out_dir / "summary.json").write_text(json.dumps(asdict(report), indent=2), encoding="utf-8")
    return report


def _process(
    drive: Drive,
    cfg: dict[str, Any],
    store: HazardStore,
    digest: str,
    out_dir: Path,
    detect: FrameDetector | None,
    report: RunReport,
) -> None:
    sender = start_ticket_sender(cfg, store.path)  # drains the outbox in the background (tickets.mode)
    try:
        analysis = analyze_drive(drive, cfg, detect or model_detector(cfg), store.evidence_dir, digest, out_dir)
        report.stats = analysis.stats
        report.detections = analysis.detections
        report.masked_fraction = analysis.masked_fraction
        report.merge = commit_analysis(store, analysis, cfg)
        if sender:
            sender.wake()  # send what this drive confirmed now, not at the next poll
    finally:
        if sender:
            sender.stop()
