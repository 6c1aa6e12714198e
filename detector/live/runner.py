"""``detector live``: camera + gpsd → distance sampler → detector → store, in bounded threads.

    capture thread ──ThinningQueue──▶ detection thread ──Queue(2)──▶ storage thread ──▶ store, outbox
         ▲ pose at capture time
    gpsd thread (PoseTracker)

* capture: each frame gets the pose at its capture instant; the distance rule
  (:class:`~detector.pipeline.sampler.DistanceSelector`) keeps the sharpest frame per ``sampling.spacing_m``,
  closer together for ``sampling.focus_m`` after a detection; no fix, no frame. Kept frames wait
  in a :class:`ThinningQueue`: a detector that falls behind makes it drop every other waiting
  frame (coarser spacing) instead of lagging.
* detection: detect and localize each frame, write evidence frames, gather the sightings of the
  current segment; a segment closes every ``live.segment_s`` seconds or ``live.segment_m`` metres.
* storage: clusters each closed segment and merges it into the store as one drive
  (``live-<vehicle>-<UTC start>-<tag>``), one transaction, then wakes the ticket sender. A vehicle of a fleet
  (``detector live --hub``) hands the segment over instead (``forward``: queued for the hub) and wakes its sender.

Nothing grows with the length of the run: the queues are bounded and a segment's sightings are
released once merged. SIGINT/SIGTERM close the current segment and merge it before exit.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.config import Config
from detector.live.camera import CameraFeed
from detector.live.gpsd import GpsdClient, PoseTracker, VehiclePose, parse_address
from detector.live.queues import ThinningQueue
from detector.pipeline.analysis import DriveAnalysis, DriveSetup, DriveTally, commit_analysis
from detector.pipeline.dedup.within_drive import cluster_drive
from detector.pipeline.frame_step import EvidenceFrames, FrameDetector, FrameStep, model_detector
from detector.pipeline.sampler import DistanceSelector, SamplingStats, sharpness
from detector.pipeline.signs import judge_signs
from detector.records import DriveRecord, SampledFrame, Sighting
from detector.store import HazardStore
from detector.store.db import store_path
from detector.store.merge import MergeReport

log = logging.getLogger(__name__)
# Takes a finished segment instead of merging it into the local store (the storage thread's store is passed).
Forward = Callable[[HazardStore, DriveAnalysis], None]


@dataclass
class LiveReport(MergeReport):
    """Counters of one live run (each written by one thread): the merge counters summed over its segments, and the
    capture's, the detector's and the devices'."""

    frames_captured: int = 0
    frames_late: int = 0  # a video file as camera: frames its clock passed while capture was behind
    frames_without_fix: int = 0
    frames_sampled: int = 0
    frames_dropped: int = 0  # sampled, then thinned out because the detector was behind
    frames_detected: int = 0
    detections: int = 0
    segments: int = 0
    camera_losses: int = 0
    gps_losses: int = 0
    gps_fixes: int = 0
    failures: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def summary(self) -> str:
        late = f", {self.frames_late} skipped while capture was behind" if self.frames_late else ""
        return (
            f"live: {self.wall_s:.0f} s, {self.frames_captured} frames captured ({self.frames_without_fix} without "
            f"a GPS fix){late}, {self.frames_sampled} sampled by distance, {self.frames_dropped} dropped while the "
            f"detector was behind, {self.frames_detected} through the detector, {self.detections} detections\n"
            f"{self.segments} segments merged: {self.line()}; camera lost {self.camera_losses}x, "
            f"gpsd lost {self.gps_losses}x ({self.gps_fixes} fixes)"
        )


@dataclass
class _Candidate:
    image: np.ndarray
    captured: float
    pose: VehiclePose
    index: int


@dataclass
class _Segment:
    """Sightings of one stretch of the live run, before they are merged."""

    id: str
    trip: str  # the first segment's id of the run of segments this one continues
    local: Any  # LocalFrame of the segment's first pose
    opened: float  # monotonic
    start_distance: float
    started_utc: float
    tally: DriveTally  # its frames' poses, sightings, detections and evidence
    ended_utc: float = 0.0
    end_distance: float = 0.0


def trip_of(segment_id: str, start_utc: float, previous: tuple[str, float] | None, gap_s: float) -> str:
    """The trip of a segment opening at ``start_utc``: the previous segment's (``previous``: its trip and the UTC
    it ended) when that ended at most ``gap_s`` before, else a new one named after this segment.

    >>> trip_of("live-b", 130.0, ("live-a", 100.0), 300.0)
    'live-a'
    >>> trip_of("live-c", 900.0, ("live-a", 500.0), 300.0)  # parked for longer: a new patrol
    'live-c'
    """
    if previous is not None and start_utc - previous[1] <= gap_s:
        return previous[0]
    return segment_id


class LivePipeline:
    """The four threads and what they share; :func:`run_live` drives it."""

    def __init__(
        self, setup: DriveSetup, store_path: Path, evidence_dir: Path, detect: FrameDetector,
        stop: threading.Event, on_merged: Callable[[], None] | None = None,
        forward: Forward | None = None,
    ) -> None:  # fmt: skip
        cfg = setup.cfg
        live = cfg.live
        self.forward = forward
        self.setup = setup
        self.cfg = cfg
        self.store_path = store_path
        self.evidence_dir = evidence_dir
        self.stop = stop
        self.on_merged = on_merged
        self.report = LiveReport()
        # The detection thread's; its closer look is read by capture.
        self.step = FrameStep.from_config(cfg, setup.camera, detect)
        self.dedup = cfg.dedup
        self.segment_s = float(live.segment_s)
        self.segment_m = float(live.segment_m)
        self.trip_gap_s = float(live.trip_gap_s)
        self.last: _Segment | None = None  # the detection thread's previous segment
        self.tail: tuple[str, list[Sighting]] = ("", [])  # the storage thread's: the last merged one's trip, its end
        self.vehicle = str(live.vehicle)
        self.tag = uuid.uuid4().hex[:6]  # tells this run's segments apart from a replay of the same GPS times
        self.tracker = PoseTracker(float(live.fix_timeout_s), cfg.gps.max_gap_s, cfg.gps.max_speed_mps)
        self.gps = GpsdClient(live.gpsd, self.tracker, stop, float(live.reconnect_s))
        self.camera = CameraFeed(live.camera, float(live.file_speed), bool(live.loop), float(live.reconnect_s))
        self.frames: ThinningQueue[SampledFrame] = ThinningQueue(int(live.queue_frames))
        self.segments: queue.Queue[_Segment | None] = queue.Queue(maxsize=2)
        self.started = time.monotonic()

    # -- capture ---------------------------------------------------------------------------
    def capture(self) -> None:
        sampling = self.cfg.sampling
        selector: DistanceSelector[_Candidate] = DistanceSelector(
            sampling.spacing_m, sampling.min_speed_mps, self.step.closer_look
        )
        try:
            for index, (captured, image) in enumerate(self.camera.frames(self.stop)):
                self.report.frames_captured += 1
                pose = self.tracker.at(captured)
                if pose is None:
                    self.report.frames_without_fix += 1
                    continue
                if not selector.wants(pose.distance, pose.speed):
                    continue
                luma = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
                score = sharpness(luma, sampling.sharpness_step)
                for picked, best in selector.push(_Candidate(image, captured, pose, index), pose.distance,
                                                  pose.speed, score):  # fmt: skip
                    self._enqueue(picked, best)
            for picked, best in selector.finish():
                self._enqueue(picked, best)
        except Exception as e:  # a crash here must still let the others merge and stop
            log.exception("capture failed")
            self.report.failures.append(f"capture: {type(e).__name__}: {e}")
        finally:
            self.report.camera_losses = self.camera.stats.losses
            self.report.frames_late = self.camera.stats.late_skipped
            self.frames.close()

    def _enqueue(self, c: _Candidate, score: float) -> None:
        self.report.frames_sampled += 1
        p = c.pose
        self.frames.put(
            SampledFrame(
                image=c.image, drive_id="", frame_index=c.index, video_time=c.captured - self.started, utc=p.utc,
                lat=p.lat, lon=p.lon, heading=p.heading, speed=p.speed, distance_m=p.distance, sharpness=score,
            )
        )  # fmt: skip
        self.report.frames_dropped = self.frames.dropped

    # -- detection -------------------------------------------------------------------------
    def detection(self) -> None:
        segment: _Segment | None = None
        try:
            while True:
                frame = self.frames.get(timeout=0.5)
                if frame is None and self.frames.finished:
                    break
                if frame is not None:
                    if segment is None:
                        segment = self._open_segment(frame)
                    self._detect(segment, frame)
                if segment and (
                    time.monotonic() - segment.opened >= self.segment_s
                    or segment.end_distance - segment.start_distance >= self.segment_m
                ):
                    self._close(segment)
                    segment = None
        except Exception as e:
            log.exception("detection failed")
            self.report.failures.append(f"detection: {type(e).__name__}: {e}")
            self.stop.set()
        finally:
            if segment is not None:
                self._close(segment)
            self.segments.put(None)
            self.report.frames_dropped = self.frames.dropped

    def _open_segment(self, frame: SampledFrame) -> _Segment:
        from detector.geo import LocalFrame

        stamp = datetime.fromtimestamp(frame.utc, UTC).strftime("%Y%m%dT%H%M%SZ")
        height, width = frame.image.shape[:2]
        segment_id = f"live-{self.vehicle}-{stamp}-{self.tag}"
        previous = (self.last.trip, self.last.ended_utc) if self.last else None
        self.last = _Segment(
            id=segment_id,
            trip=trip_of(segment_id, frame.utc, previous, self.trip_gap_s),
            local=LocalFrame(frame.lat, frame.lon),
            opened=time.monotonic(),
            start_distance=frame.distance_m,
            started_utc=frame.utc,
            tally=DriveTally(EvidenceFrames(segment_id, self.evidence_dir), (width, height)),
        )
        return self.last

    def _detect(self, segment: _Segment, frame: SampledFrame) -> None:
        frame = SampledFrame(**{**frame.__dict__, "drive_id": segment.id})
        found, placed = self.step(frame, segment.local, segment.tally.evidence)
        self.report.frames_detected += 1
        self.report.detections += found
        segment.tally.add(frame, found, placed)
        segment.ended_utc = frame.utc
        segment.end_distance = frame.distance_m

    def _close(self, segment: _Segment) -> None:
        """Hand a closed segment to the storage thread, without the sightings that the static mask learnt so far
        covers: the mask is this thread's, and the storage thread never reads it."""
        tally = segment.tally
        tally.sightings = self.step.outside_mask(tally.sightings, tally.evidence)
        self.segments.put(segment)

    # -- storage ---------------------------------------------------------------------------
    def storage(self) -> None:
        with HazardStore(self.store_path, self.cfg.store.lock_timeout_s) as store:
            while (segment := self.segments.get()) is not None:
                try:
                    self._merge(store, segment)
                except Exception as e:  # the store must not take the vehicle's run down with it
                    log.exception("merging segment %s failed", segment.id)
                    self.report.failures.append(f"{segment.id}: {type(e).__name__}: {e}")

    def _across_seam(self, segment: _Segment) -> list[Sighting]:
        """The previous segment's last sightings (its last ``dedup.track_gap_m``) when ``segment`` continues its
        trip, so that a chain of what rides along with the vehicle runs on across the seam; keeps ``segment``'s
        own for the next one."""
        trip, before = self.tail
        end = segment.end_distance
        sightings = segment.tally.sightings
        self.tail = (segment.trip, [s for s in sightings if s.odometer_m >= end - self.dedup.track_gap_m])
        return before if trip == segment.trip else []

    def _merge(self, store: HazardStore, segment: _Segment) -> None:
        tally = segment.tally
        before = self._across_seam(segment)
        stats = SamplingStats(
            video_s=segment.ended_utc - segment.started_utc, frames_sampled=len(tally.poses),
            distance_m=segment.end_distance - segment.start_distance,
        )  # fmt: skip
        record = DriveRecord(
            id=segment.id,
            content_hash=hashlib.sha256(f"{segment.id}|{time.time_ns()}".encode()).hexdigest(),
            video=self.camera.source,
            track=f"gpsd://{self.gps.address}",
            started_utc=segment.started_utc,
            ended_utc=segment.ended_utc,
            distance_m=stats.distance_m,
            frames_sampled=stats.frames_sampled,
            camera=self.setup.camera.name,
            trip=segment.trip,
        )
        hazards, signs = judge_signs(
            cluster_drive(tally.sightings, segment.local, self.dedup, before), self.setup.camera, tally.size,
            segment.local, self.cfg,
        )  # fmt: skip
        analysis = tally.finish(record, hazards, stats, segment.started_utc, "gpsd", signs=signs)
        r = self.report
        if self.forward is not None:
            self.forward(store, analysis)
            r.segments += 1
            r.sightings += len(analysis.sightings)
            log.info("%s: %d frames over %.0f m; %d sightings handed over", segment.id, len(tally.poses),
                     stats.distance_m, len(analysis.sightings))  # fmt: skip
            if self.on_merged:
                self.on_merged()
            return
        merge = commit_analysis(store, analysis, self.setup.merge, self.setup.camera)
        r.segments += 1
        r.add(merge)
        log.info("%s: %d frames over %.0f m; %s", segment.id, len(tally.poses), stats.distance_m, merge.line())
        if self.on_merged:
            self.on_merged()


def _install_signals(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # signals are delivered to the main thread only; a caller there owns ``stop``

    def handle(signum, _frame) -> None:
        log.warning("%s: stopping; merging what has been seen", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def live_setup(cfg: Config) -> DriveSetup:
    """The live vehicle's setup: with ``drive.camera: auto`` the profile beside a video file played as the camera,
    else the default one (a live camera gives no recorded drive to measure: :class:`DriveSetup` says so)."""
    return DriveSetup.resolve(cfg, video=Path(cfg.live.camera))


def run_live(
    cfg: Config, db: Path | None = None, detect: FrameDetector | None = None,
    stop: threading.Event | None = None, on_merged: Callable[[], None] | None = None,
    forward: Forward | None = None, setup: DriveSetup | None = None,
) -> LiveReport:  # fmt: skip
    """Run until ``stop`` is set (SIGINT/SIGTERM in the main thread) or a video file given as camera ends;
    ``on_merged`` is called after each segment merged (the command's ticket sender). ``forward``, when given,
    takes each segment instead of the local store (a fleet vehicle's hub queue); ``on_merged`` follows it.
    ``setup``: ``cfg`` resolved already by the caller (else here)."""
    parse_address(cfg.live.gpsd)  # a malformed address is the user's one-line error, now
    setup = setup or live_setup(cfg)
    if not setup.camera_known:
        log.warning("%s", setup.camera_line)
    stop = stop or threading.Event()
    path = store_path(cfg, db)
    with HazardStore(path, cfg.store.lock_timeout_s) as store:  # created, migrated, checked: before anything
        evidence_dir = store.evidence_dir
    detect = detect or model_detector(cfg, setup.camera)
    pipe = LivePipeline(setup, path, evidence_dir, detect, stop, on_merged, forward)
    _install_signals(stop)
    threads = [
        threading.Thread(target=fn, name=name, daemon=True)
        for name, fn in (("capture", pipe.capture), ("detection", pipe.detection), ("storage", pipe.storage))
    ]
    pipe.gps.start()
    for t in threads:
        t.start()
    try:
        while threads[0].is_alive():
            threads[0].join(0.5)
    finally:
        stop.set()  # the camera may have ended on its own: stop everything else too
        for t in (*threads, pipe.gps):
            t.join()
    pipe.report.gps_losses = pipe.gps.losses
    pipe.report.gps_fixes = pipe.gps.fixes
    pipe.report.wall_s = time.monotonic() - pipe.started
    return pipe.report
