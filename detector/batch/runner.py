"""Run a batch: skip drives the store has, analyse the rest in parallel, merge in input order.

Workers only analyse (:func:`detector.batch.worker.analyze_job`); the parent alone writes the
store, one drive per transaction, in the order of the input (sorted by path) whatever the order
in which drives finish. The store after a batch is therefore the same as after ``detector run``
on each drive in that order, with any number of workers. At most ``2 x slots`` drives are in
flight (submitted or finished but waiting for their turn), which bounds the parent's memory.

Local workers are a ``ProcessPoolExecutor`` with the ``spawn`` start method rather than a Dask
``LocalCluster``: no scheduler, dashboard, ports or scratch folder for what one machine needs,
and worker processes start clean (no forked threads or ONNX sessions). ``--scheduler`` sends the
same function to an existing Dask cluster.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from detector.batch.jobs import DriveJob, JobError, prepare_job
from detector.batch.worker import DetectorFactory, JobOutcome, analyze_job, job_config
from detector.config import PIPELINE, Config
from detector.errors import InputError, shown
from detector.pipeline.analysis import DriveSetup, commit_analysis
from detector.pipeline.sources.drive import open_drive
from detector.privacy.evidence import photos_at_merge
from detector.store import HazardStore
from detector.store.db import store_errors, store_path
from detector.store.merge import DriveAlreadyStored, MergeReport, drive_processed

log = logging.getLogger(__name__)


@dataclass
class BatchSummary(MergeReport):
    """What a batch did, for the final report: the merge counters summed over its drives, and the rest."""

    drives: int = 0
    processed: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)
    frames: int = 0
    detections: int = 0
    video_s: float = 0.0
    wall_s: float = 0.0
    where: str = ""
    camera: str = ""  # which profile placed the hazards (drive.camera; with auto, measured on the first drive)

    @property
    def failed(self) -> int:
        return len(self.failures)

    def lines(self) -> list[str]:
        speed = f" ({self.video_s / self.wall_s:.1f}x real time)" if self.wall_s > 0 and self.video_s else ""
        out = [
            f"{self.drives} drives: {self.processed} processed, {self.skipped} already in the store, "
            f"{self.failed} failed; {self.wall_s:.0f} s on {self.where}{speed}",
            f"{self.frames} frames sampled, {self.detections} detections, {self.line()}",
        ]
        return out + ([self.camera] if self.camera else []) + [f"failed: {reason}" for reason in self.failures]


class _Inline:
    """One worker, in this process (``--workers 1``)."""

    slots = 1
    where = "this process"

    def submit(self, fn: Callable, *args: Any) -> cf.Future:
        future: cf.Future = cf.Future()
        future.set_result(fn(*args))
        return future

    def close(self) -> None:
        pass


class _Processes:
    def __init__(self, workers: int) -> None:
        self.slots = workers
        self.where = f"{workers} local worker processes"
        self.pool = cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, fn: Callable, *args: Any) -> cf.Future:
        return self.pool.submit(fn, *args)

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


class _Dask:
    def __init__(self, address: str, timeout_s: float = 20.0) -> None:
        from distributed import Client

        try:
            self.client = Client(address, timeout=timeout_s, set_as_default=False)
        except (OSError, TimeoutError) as e:
            raise InputError(address, f"cannot reach the Dask scheduler ({type(e).__name__}: {e})") from None
        threads = sum(self.client.nthreads().values())
        if not threads:
            self.client.close()
            raise InputError(address, "the Dask cluster has no workers")
        self.slots = threads
        self.where = f"Dask cluster {address} ({threads} worker threads)"

    def submit(self, fn: Callable, *args: Any):
        return self.client.submit(fn, *args, pure=False)

    def close(self) -> None:
        self.client.close()


def _executor(workers: int, scheduler: str | None):
    if scheduler:
        return _Dask(scheduler)
    return _Inline() if workers <= 1 else _Processes(workers)


def _worker_config(cfg: Config, workers: int, scheduler: str | None) -> Config:
    """Split the CPU between local workers: ONNX Runtime would otherwise start all-core pools in each."""
    if scheduler or workers <= 1 or cfg.detect.threads:
        return cfg
    return PIPELINE.updated(cfg, {"detect.threads": max(1, (os.cpu_count() or 1) // workers)}, "batch workers")


def first_drive_setup(cfg: Config, jobs: list[DriveJob]) -> DriveSetup:
    """The setup of a batch, one vehicle's drives: with ``drive.camera: auto`` and no profile beside them, the
    camera measured on the first drive that opens (:meth:`DriveSetup.measured_on`)."""
    setup = DriveSetup.resolve(cfg, video=jobs[0].video if jobs else None)
    for job in jobs[:1] if not setup.camera_known else []:
        try:
            drive = open_drive(job.video, job.gps, job_config(job, cfg))
        except InputError:
            continue  # its own failure is reported when the batch reaches it
        setup = setup.measured_on(drive)
    return setup


def run_batch(
    jobs: list[DriveJob],
    cfg: Config,
    db: Path | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    report: Callable[[str], None] | None = None,
    on_merged: Callable[[], None] | None = None,
    detector: DetectorFactory | None = None,
) -> BatchSummary:
    """Process ``jobs`` into the store; ``report`` gets one line per failed drive as it happens, ``on_merged`` is
    called after each drive merged (the command's ticket sender). ``detector`` (a picklable module-level
    function, called once per drive in the worker) replaces the configured model: the benchmarks' oracle."""
    setup = first_drive_setup(cfg, jobs)
    started = time.perf_counter()
    summary = BatchSummary(drives=len(jobs), camera=setup.camera_line)
    store = HazardStore(store_path(cfg, db), cfg.store.lock_timeout_s)
    # Local workers write evidence frames straight beside the store; cluster workers send them back.
    evidence_root = None if scheduler else str(store.evidence_dir)
    progress = tqdm(total=len(jobs), unit="drive", desc="batch", disable=not cfg.run.progress)
    say = report or (lambda line: progress.write(line))

    def fail(reason: str) -> None:
        summary.failures.append(reason)
        say(f"failed: {reason}")

    executor = _executor(workers, scheduler)
    summary.where = executor.where
    worker_cfg = _worker_config(cfg, workers, scheduler)
    seen: dict[str, Path] = {}
    pending = iter(jobs)
    order: list[tuple[DriveJob, Any]] = []  # (job, future) in input order, oldest first
    try:
        with store:
            while True:
                while len(order) < 2 * executor.slots and (job := next(pending, None)) is not None:
                    job = prepare_job(job)
                    if isinstance(job, JobError):
                        fail(str(job))
                        progress.update()
                        continue
                    if job.digest in seen or drive_processed(store, job.digest):
                        summary.skipped += 1
                        progress.update()
                        continue
                    seen[job.digest] = job.video
                    future = executor.submit(analyze_job, job, worker_cfg, evidence_root, detector, setup.camera)
                    order.append((job, future))
                if not order:
                    break
                job, future = order.pop(0)  # the oldest: block until it is done (later ones run meanwhile)
                _merge(store, _result(job, future), setup, summary, fail)
                progress.update()
                if on_merged:
                    on_merged()
    finally:
        progress.close()
        executor.close()
    summary.wall_s = time.perf_counter() - started
    return summary


def _result(job: DriveJob, future) -> JobOutcome | str:
    try:
        return future.result()
    except Exception as e:  # a worker process that died, a cluster that lost the task
        return f"{shown(job.video)}: the worker was lost ({type(e).__name__}: {e})"


def _merge(
    store: HazardStore, result: JobOutcome | str, setup: DriveSetup, summary: BatchSummary,
    fail: Callable[[str], None],
) -> None:  # fmt: skip
    if isinstance(result, str):
        fail(result)
        return
    if result.analysis is None:
        fail(result.error or f"{shown(result.job.video)}: failed")
        return
    analysis = result.analysis
    try:
        merge = commit_analysis(store, analysis, setup.merge, setup.camera)
    except DriveAlreadyStored:  # another batch or run merged the same drive since this one looked
        summary.skipped += 1
        return
    except (InputError, *store_errors(), OSError) as e:
        fail(f"{shown(result.job.video)}: not merged into the store ({e})")
        return
    photos_at_merge(store, analysis.record.id, setup.cfg.tickets.evidence)  # ready before a reviewer looks
    for warning in analysis.warnings:
        log.debug(warning)
    summary.processed += 1
    summary.frames += analysis.stats.frames_sampled
    summary.video_s += analysis.stats.video_s
    summary.detections += analysis.detections
    summary.add(merge)
