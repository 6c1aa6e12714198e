"""The per-drive work of a batch, run in a worker process or on a Dask worker.

Everything here returns a :class:`JobOutcome`; nothing raises through the batch. The hazard
model is loaded once per worker process and kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detector.batch.jobs import DriveJob
from detector.camera import CameraModel, configured_profile, load_camera
from detector.config import PIPELINE, Config
from detector.errors import InputError, shown
from detector.pipeline.analysis import DriveAnalysis, analyze_drive
from detector.pipeline.frame_step import FrameDetector, model_detector
from detector.pipeline.sources.drive import open_drive

_MODELS: dict[str, FrameDetector] = {}
# A replacement for the configured model, made per drive from its video and config (the benchmarks' oracle).
DetectorFactory = Callable[[Path, Config], FrameDetector]


@dataclass
class JobOutcome:
    """One drive's outcome: an analysis to merge, or the reason it failed (one line naming the file)."""

    job: DriveJob
    analysis: DriveAnalysis | None = None
    error: str | None = None
    seconds: float = 0.0


def _model(cfg: Config, camera: CameraModel) -> FrameDetector:
    key = cfg.detect.model_dump_json() + cfg.sampling.model_dump_json() + repr(camera)  # focus_conf, horizon
    if key not in _MODELS:
        _MODELS[key] = model_detector(cfg, camera)
    return _MODELS[key]


def job_config(job: DriveJob, cfg: Config) -> Config:
    """The configuration for one drive: its own GPS offset, and an id from its file, never a shared one."""
    values: dict[str, Any] = {"drive.id": None}
    if job.gps_offset_s is not None:
        values["drive.gps_offset_s"] = job.gps_offset_s
    return PIPELINE.updated(cfg, values, f"the batch job for {shown(job.video)}")


def analyze_job(
    job: DriveJob, cfg: Config, evidence_root: str | None, detector: DetectorFactory | None = None,
    camera: CameraModel | None = None,
) -> JobOutcome:  # fmt: skip
    """Open, sample, detect, localize and cluster one drive; failures come back as values. ``camera`` is the
    profile the command read (:class:`~detector.pipeline.analysis.DriveSetup`); without it, ``drive.camera`` is read."""
    start = time.perf_counter()
    try:
        camera = camera or load_camera(configured_profile(cfg.drive.camera, job.video))
        drive_cfg = job_config(job, cfg)
        drive = open_drive(job.video, job.gps, drive_cfg)
        root = Path(evidence_root) if evidence_root else None
        detect = detector(job.video, cfg) if detector else _model(cfg, camera)
        analysis = analyze_drive(drive, drive_cfg, camera, detect, root, job.digest, progress=False)
        return JobOutcome(job, analysis=analysis, seconds=time.perf_counter() - start)
    except InputError as e:
        error = str(e) if e.source else f"{shown(job.video)}: {e}"
    except Exception as e:  # any failure of one drive is that drive's result, never the batch's end
        error = f"{shown(job.video)}: {type(e).__name__}: {e}"
    return JobOutcome(job, error=error, seconds=time.perf_counter() - start)
