"""One drive through the stages, in two steps, for ``detector run``, ``batch`` and ``live``.

sources (video + GPS) → sampler → :class:`~detector.pipeline.frame_step.FrameStep` (detector, localizer, evidence) →
within-drive clustering → store

* :func:`analyze_drive` (picklable in and out, touches no store): open, sample, detect, localize, write the
  evidence frames, cluster the drive's sightings; returns a :class:`DriveAnalysis`. It runs anywhere: a worker
  process, a Dask worker.
* :func:`commit_analysis` (in the process that owns the store): merge it, one transaction.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from detector.camera import CameraModel
from detector.config import Config
from detector.errors import path_text
from detector.holds import ReviewHolds, load_holds
from detector.images import write_image
from detector.pipeline.dedup.across_drives import FramePoses
from detector.pipeline.dedup.within_drive import cluster_drive
from detector.pipeline.frame_step import EvidenceFrames, FrameDetector, FrameStep
from detector.pipeline.sampler import SamplingStats, sample_drive
from detector.pipeline.signs import DriveSign, judge_signs
from detector.pipeline.sources.drive import Drive
from detector.pipeline.sources.track import utc_text
from detector.records import DriveHazard, DriveRecord, SampledFrame, Sighting
from detector.store import HazardStore
from detector.store.layers import RememberedLayer, remember_layers, used_layers
from detector.store.merge import DriveResult, MergeReport, MergeSettings, Receipt, merge_drive

SAMPLE_COLUMNS = ("frame_index", "video_time", "utc", "lat", "lon", "heading", "speed", "distance_m", "sharpness")
SIGHTING_COLUMNS = ("frame_index", "utc", "class_name", "confidence", "lat", "lon", "range_m", "lateral_m",
                    "uncertainty_m", "width_m", "far")  # fmt: skip


@dataclass(frozen=True)
class DriveSetup:
    """The configuration resolved once, at a command's entry, into what the stages need: the camera profile
    (``drive.camera``) and the hold rules (``dedup.hold_near``'s feature layer, ``tickets.auto_file``) are read
    here, so a bad file is reported before any work, and no stage reads a file again.

    With ``drive.camera: auto`` the camera is the profile beside ``drive``, or measured from ``drive`` (the first
    of a batch: one vehicle's drives), else the default one with a warning (:mod:`detector.calibration.auto`);
    ``camera_line`` says which, for the command to print."""

    cfg: Config
    camera: CameraModel
    holds: ReviewHolds | None
    camera_line: str = ""
    camera_known: bool = True  # False: auto found no profile; the default one stands in

    @classmethod
    def resolve(cls, cfg: Config, drive: Drive | None = None, video: Path | None = None) -> DriveSetup:
        """``drive``: the drive to measure an unknown camera from; ``video``: the drive or source named in the
        hints without one (a command that measures later, :meth:`measured_on`, or a live camera)."""
        from detector.calibration.auto import choose_camera

        choice = choose_camera(cfg.drive.camera, cfg.drive.camera_estimate_m, drive, video)
        return cls(cfg, choice.camera, load_holds(cfg), choice.line, not choice.rough)

    def measured_on(self, drive: Drive) -> DriveSetup:
        """This setup, its unknown camera (``auto``, no profile found) measured from ``drive`` where it can be."""
        if self.camera_known:
            return self
        from detector.calibration.auto import choose_camera

        choice = choose_camera(self.cfg.drive.camera, self.cfg.drive.camera_estimate_m, drive)
        return replace(self, camera=choice.camera, camera_line=choice.line, camera_known=not choice.rough)

    @property
    def merge(self) -> MergeSettings:
        """How the drives merge into the store."""
        return merge_settings(self.cfg, self.holds)


def merge_settings(cfg: Config, holds: ReviewHolds | None) -> MergeSettings:
    """How drives merge under ``cfg``, with the hold rules its caller read once (:func:`load_holds`): the hub,
    whose drives each bring their own camera, reads them when it starts."""
    signs = cfg.signs
    return MergeSettings(
        cfg.dedup, cfg.localize.gps_sigma_m, holds, tuple(used_layers(cfg)), signs.missing_after, signs.match_m,
        signs.map_within_m, cfg.streets.max_distance_m,
    )  # fmt: skip


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
    signs: list[DriveSign] | None = None  # standing signs seen (the sign inventory); None: a model without signs


@dataclass
class DriveTally:
    """What a drive's stepped frames add up to, as they come: their poses, sightings and detections, and the
    evidence frames written. ``detector run`` and ``batch`` keep one per drive, ``live`` one per segment; each
    ends in :meth:`finish`."""

    evidence: EvidenceFrames
    size: tuple[int, int]  # width, height of the frames
    poses: list[tuple[float, float, float]] = field(default_factory=list)  # lat, lon, heading of each frame
    sightings: list[Sighting] = field(default_factory=list)
    detections: int = 0

    def add(self, frame: SampledFrame, found: int, placed: list[Sighting]) -> None:
        """One frame through :class:`~detector.pipeline.frame_step.FrameStep`: ``found`` detections, ``placed``
        sightings."""
        self.poses.append((frame.lat, frame.lon, frame.heading))
        self.detections += found
        self.sightings += placed

    def finish(
        self, record: DriveRecord, hazards: list[DriveHazard], stats: SamplingStats, video_start_utc: float,
        start_source: str, warnings: list[str] | None = None, masked_fraction: float = 0.0,
        signs: list[DriveSign] | None = None,
    ) -> DriveAnalysis:  # fmt: skip
        """The drive analysed: ``record``, its clustered ``hazards`` and standing ``signs`` with what was added up
        here."""
        pose = np.array(self.poses, dtype=float).reshape(-1, 3)
        return DriveAnalysis(
            record=record,
            hazards=hazards,
            poses=FramePoses(pose[:, 0], pose[:, 1], pose[:, 2], *self.size),
            stats=stats,
            detections=self.detections,
            sightings=self.sightings,
            video_start_utc=video_start_utc,
            start_source=start_source,
            warnings=list(warnings or []),
            evidence=self.evidence.names,
            evidence_jpeg=self.evidence.jpegs,
            masked_fraction=masked_fraction,
            signs=signs,
        )


def content_hash(*paths: Path) -> str:
    """SHA-256 over the files' bytes: the same drive processed twice is recognised as such. An ``OSError`` names
    the file that could not be read, also where reading (not opening) failed."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            with path.open("rb") as f:
                while chunk := f.read(1 << 22):
                    digest.update(chunk)
        except OSError as e:
            e.filename = e.filename or str(path)
            raise
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


def drive_hash(drive: Drive) -> str:
    """The content hash that identifies a drive in the store (its video and track files)."""
    return content_hash(drive.video.path, Path(drive.track.source))


def analyze_drive(
    drive: Drive,
    cfg: Config,
    camera: CameraModel,
    detect: FrameDetector,
    evidence_root: Path | None,
    digest: str,
    out_dir: Path | None = None,
    progress: bool | None = None,
) -> DriveAnalysis:
    """Sample, detect, localize and cluster one drive; touches no store.

    Evidence frames go to ``evidence_root/<drive folder>/`` when given, else into the result as JPEG
    bytes. With ``out_dir``, ``samples.csv``, ``sightings.csv`` and the static mask (``static_mask.png``, white
    where no detection was kept) are written there.
    """
    step = FrameStep.from_config(cfg, camera, detect)
    local = drive.trajectory.frame
    stats = SamplingStats()
    tally = DriveTally(EvidenceFrames(drive.id, evidence_root), (drive.video.width, drive.video.height))
    samples_file = (out_dir / "samples.csv").open("w", newline="", encoding="utf-8") if out_dir else None
    try:
        samples = csv.DictWriter(samples_file, fieldnames=SAMPLE_COLUMNS) if samples_file else None
        if samples:
            samples.writeheader()
        show = cfg.run.progress if progress is None else progress
        frame: SampledFrame
        for frame in sample_drive(drive, cfg.sampling, progress=show, stats=stats, closer_look=step.closer_look):
            if samples:
                samples.writerow(_row(frame, SAMPLE_COLUMNS))
            found, placed = step(frame, local, tally.evidence)
            tally.add(frame, found, placed)
    finally:
        if samples_file:
            samples_file.close()
    tally.sightings = step.outside_mask(tally.sightings, tally.evidence, final=True)  # seen before it was learnt
    mask = step.mask_learner.mask
    if out_dir:
        if mask is not None and mask.fraction > 0:  # white: where no detection was kept, for a person to check
            write_image(out_dir / "static_mask.png", mask.pixels.astype(np.uint8) * 255)
        with (out_dir / "sightings.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=SIGHTING_COLUMNS)
            writer.writeheader()
            writer.writerows(_row(s, SIGHTING_COLUMNS) for s in tally.sightings)
    hazards, signs = judge_signs(cluster_drive(tally.sightings, local, cfg.dedup), step.camera, tally.size, local, cfg)
    return tally.finish(
        _drive_record(drive, digest, stats, step.camera.name),
        hazards,
        stats,
        drive.video_start_utc,
        drive.start_source,
        drive.warnings,
        mask.fraction if mask is not None else 0.0,
        signs,
    )


def commit_analysis(
    store: HazardStore,
    analysis: DriveAnalysis,
    settings: MergeSettings,
    camera: CameraModel,
    receipt: Receipt | None = None,
) -> MergeReport:
    """Merge an analysed drive, seen by ``camera``, into the store (one transaction); evidence bytes are written
    first. ``receipt`` writes its rows in the merge's transaction (:func:`~detector.store.merge.merge_drive`), and
    so are the GIS layers the drive was merged with (``settings.layers``, :mod:`detector.store.layers`)."""
    for index, data in analysis.evidence_jpeg.items():
        path = store.evidence_dir / analysis.evidence[index]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    report = merge_drive(
        store,
        DriveResult(
            analysis.record,
            analysis.hazards,
            analysis.poses,
            camera,
            analysis.evidence,
            analysis.signs,
        ),
        settings,
        _remembering_layers(settings.layers, receipt),
    )
    return report


def _remembering_layers(layers: tuple[RememberedLayer, ...], receipt: Receipt | None) -> Receipt:
    """``receipt``, after recording the layers the drive was merged with (:func:`remember_layers`)."""

    def write(conn, report: MergeReport) -> None:
        remember_layers(conn, layers)
        if receipt is not None:
            receipt(conn, report)

    return write
