"""``detector push``: recorded drives analysed on the vehicle (as ``run``/``batch`` do), queued, sent to the hub.

Each drive is one segment, named by its content hash, so pushing the same drive again (after a restart mid-queue)
neither analyses nor sends it twice. The local store holds only the queue: the hub is where drives are merged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from detector.batch.jobs import JobError, find_jobs, prepare_job
from detector.batch.runner import first_drive_setup
from detector.batch.worker import DetectorFactory, analyze_job
from detector.config import Config
from detector.errors import shown
from detector.hub.link import HubSender, QueueCounts, enqueue_segment, queued_segment, refusals, wait_for_queue
from detector.store import HazardStore

log = logging.getLogger(__name__)


@dataclass
class PushReport:
    drives: int = 0
    queued: int = 0
    already_queued: int = 0
    failures: list[str] = field(default_factory=list)
    queue: QueueCounts | None = None
    refused: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{self.drives} drives: {self.queued} analysed and queued, {self.already_queued} queued before, "
               f"{len(self.failures)} failed"]  # fmt: skip
        out += [f"failed: {reason}" for reason in self.failures]
        if self.queue:
            out.append(self.queue.line())
        return out + [f"refused: {reason}" for reason in self.refused]


def push_drives(
    paths: list[str], cfg: Config, db: Path, url: str, token: str,
    detector: DetectorFactory | None = None, report: Callable[[str], None] | None = None,
) -> PushReport:  # fmt: skip
    """Analyse and queue each drive not queued before, send the queue while analysing, then wait up to
    ``hub.push_wait_s`` for it to empty. ``detector`` replaces the configured model (the tests' oracle)."""
    jobs = find_jobs(paths)
    camera = first_drive_setup(cfg, jobs).camera  # with drive.camera auto: measured on the first drive
    say = report or (lambda line: None)
    summary = PushReport(drives=len(jobs))
    segment_ids: list[str] = []
    with HazardStore(db, cfg.store.lock_timeout_s) as store, HubSender(db, cfg, url, token) as sender:
        for job in jobs:
            job = prepare_job(job)
            if isinstance(job, JobError):
                summary.failures.append(str(job))
                say(f"failed: {job}")
                continue
            segment_ids.append(job.digest)
            if queued_segment(store, job.digest):
                summary.already_queued += 1
                continue
            outcome = analyze_job(job, cfg, None, detector, camera)
            if outcome.analysis is None:
                summary.failures.append(outcome.error or f"{shown(job.video)}: failed")
                say(f"failed: {summary.failures[-1]}")
                continue
            enqueue_segment(store, job.digest, outcome.analysis, camera, None)
            summary.queued += 1
            log.info("%s: queued for the hub (%d sightings)", shown(job.video), len(outcome.analysis.sightings))
            sender.wake()
        summary.queue = wait_for_queue(sender, db, cfg.hub.push_wait_s, cfg.store.lock_timeout_s)
        summary.refused = refusals(store, segment_ids)
    return summary
