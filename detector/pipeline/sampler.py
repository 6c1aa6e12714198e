"""Pick frames by distance driven: one per ``spacing_m`` window, the sharpest in it.

The selection is a small state machine, :class:`DistanceSelector`, fed with (frame, odometer,
speed) and independent of video decoding, so it is tested on synthetic input.
:func:`sample_drive` wires it to a :class:`~detector.pipeline.sources.drive.Drive`: it asks the
trajectory where the vehicle moves, decodes only those spans, measures blur on the luma plane
of every candidate, and converts to BGR only the frames it keeps.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

import cv2
import numpy as np
from tqdm import tqdm

from detector.config.pipeline import SamplingConfig
from detector.pipeline.sources.drive import Drive
from detector.pipeline.sources.track import TrackState
from detector.pipeline.sources.video import DecodedFrame, decode_frames
from detector.records import SampledFrame

T = TypeVar("T")
# Progress in seconds of the video covered by GPS; a stretch sought over (a stop) moves it at once.
PROGRESS = "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s of video [{elapsed}<{remaining}{postfix}]"


def sharpness(luma: np.ndarray, step: int = 4) -> float:
    """Variance of the Laplacian on every ``step``-th pixel: higher is sharper.

    >>> flat = np.full((64, 64), 128, np.uint8)
    >>> edges = np.tile(np.array([0, 255], np.uint8), (64, 32))
    >>> sharpness(flat, 1) < sharpness(edges, 1)
    True
    """
    small = np.ascontiguousarray(luma[::step, ::step])
    return float(cv2.Laplacian(small, cv2.CV_16S, ksize=1).var())


@dataclass
class _Candidate(Generic[T]):
    item: T
    score: float


class CloserLook:
    """The detector-to-sampler channel: after a detection, frames every ``spacing_m`` for the next ``length_m``.

    A hazard first seen 15-20 m ahead is then seen again every metre or two as the vehicle closes in: more
    sightings to confirm it, a better position and a sharper evidence frame, for a few frames more. Any detection
    at or above ``conf`` asks for it, also one below the threshold that reports hazards: a faint far pothole is
    worth a closer look, and closer it often scores high enough to be reported.

    The detecting side calls :meth:`request`, the sampling side :meth:`spacing_at`. In ``detector live`` they are
    two threads, so the one value they share is read and written under a lock.

    >>> closer_look = CloserLook(spacing_m=1.0, length_m=12.0, conf=0.2)
    >>> closer_look.request(np.array([0.1, 0.3]), 40.0)
    True
    >>> closer_look.spacing_at(45.0, default=4.0), closer_look.spacing_at(52.0, default=4.0)
    (1.0, 4.0)
    """

    def __init__(self, spacing_m: float, length_m: float, conf: float = 0.0) -> None:
        self.spacing_m = spacing_m
        self.length_m = length_m
        self.conf = conf
        self._until_m = float("-inf")
        self._lock = threading.Lock()

    def request(self, confidences: np.ndarray, distance_m: float) -> bool:
        """Look closer from ``distance_m`` on if any of a frame's detection ``confidences`` reaches :attr:`conf`."""
        if not len(confidences) or float(np.max(confidences)) < self.conf:
            return False
        with self._lock:
            self._until_m = max(self._until_m, distance_m + self.length_m)
        return True

    def spacing_at(self, distance_m: float, default: float) -> float:
        """The frame spacing for a window starting at ``distance_m``: :attr:`spacing_m` while looking closer."""
        with self._lock:
            closer = distance_m < self._until_m
        return self.spacing_m if closer else default

    @property
    def until_m(self) -> float:
        """Where the current closer look ends (odometer metres; -inf before any)."""
        with self._lock:
            return self._until_m

    @classmethod
    def from_config(cls, sampling: SamplingConfig) -> CloserLook | None:
        """The ``sampling.focus_*`` settings; None when ``focus_m`` is 0 (off)."""
        length = float(sampling.focus_m)
        conf = float(sampling.focus_conf)
        return cls(float(sampling.focus_spacing_m), length, conf) if length > 0 else None


class DistanceSelector(Generic[T]):
    """Keep the best-scoring item of each ``spacing_m`` window of odometer distance.

    Items below ``min_speed_mps`` are never kept. A window is emitted once it is left, so a
    stop in the middle of a window neither loses it nor emits it twice. While ``closer_look`` asks for it,
    windows are its ``spacing_m`` long instead.

    >>> sel = DistanceSelector(spacing_m=3.0, min_speed_mps=1.0)
    >>> picked = []
    >>> for d, score in [(0.5, 1), (1.5, 5), (2.9, 2), (3.2, 1), (7.0, 9)]:
    ...     picked += [c for c, _ in sel.push(f"at {d}", d, 10.0, score)]
    >>> picked += [c for c, _ in sel.finish()]
    >>> picked
    ['at 1.5', 'at 3.2', 'at 7.0']
    """

    def __init__(self, spacing_m: float, min_speed_mps: float, closer_look: CloserLook | None = None) -> None:
        self.spacing_m = spacing_m
        self.min_speed_mps = min_speed_mps
        self.closer_look = closer_look
        self._best: _Candidate[T] | None = None
        self._start: float | None = None  # where the open window begins

    def _spacing(self, distance_m: float) -> float:
        if self.closer_look is None:
            return self.spacing_m
        return self.closer_look.spacing_at(distance_m, self.spacing_m)

    def push(self, item: T, distance_m: float, speed_mps: float, score: float) -> Iterator[tuple[T, float]]:
        """Offer one item; yields the (item, score) of a window that this item closes."""
        if not (speed_mps >= self.min_speed_mps) or not np.isfinite(distance_m):
            return
        if self._start is None:
            spacing = self._spacing(distance_m)
            self._start = distance_m // spacing * spacing
        if distance_m < self._start:
            return  # already emitted (e.g. GPS odometer dithering back)
        end = self._start + self._spacing(self._start)
        if distance_m >= end:
            if self._best is not None:
                yield self._best.item, self._best.score
                self._best = None
            spacing = self._spacing(distance_m)
            self._start = max(end, distance_m // spacing * spacing)
        if self._best is None or score > self._best.score:
            self._best = _Candidate(item, score)

    def wants(self, distance_m: float, speed_mps: float) -> bool:
        """Whether an item at this odometer and speed could be kept (to skip scoring it)."""
        return speed_mps >= self.min_speed_mps and (self._start is None or distance_m >= self._start)

    def finish(self) -> Iterator[tuple[T, float]]:
        if self._best is not None:
            yield self._best.item, self._best.score
            self._best = None


@dataclass
class SamplingStats:
    """What the sampler saw on one drive."""

    video_s: float = 0.0
    covered_s: float = 0.0
    frames_decoded: int = 0
    frames_sampled: int = 0
    distance_m: float = 0.0
    stationary_s: float = 0.0


def sample_drive(
    drive: Drive,
    sampling: SamplingConfig,
    progress: bool = False,
    stats: SamplingStats | None = None,
    closer_look: CloserLook | None = None,
) -> Iterator[SampledFrame]:
    """Yield the frames of ``drive`` chosen by distance, in video order; closer together where ``closer_look`` asks.

    A background thread decodes and keeps the sharpest frame of every ``focus_spacing_m`` (up to
    ``prefetch_frames`` of them ahead); the caller's thread picks from those by the distance rule. So a closer look
    requested after a detection applies from the very next frame, however far decoding has run ahead.
    """
    stats = stats if stats is not None else SamplingStats()
    fine = closer_look.spacing_m if closer_look is not None else sampling.spacing_m
    selector: DistanceSelector[tuple[DecodedFrame, TrackState]] = DistanceSelector(
        sampling.spacing_m, sampling.min_speed_mps, closer_look
    )
    for (frame, here), score in prefetched(_sharpest_every(drive, sampling, fine, progress, stats),
                                           sampling.prefetch_frames):  # fmt: skip
        for picked, best in selector.push((frame, here), here.distance[0], here.speed[0], score):
            stats.frames_sampled += 1
            yield _to_sampled(drive, picked, best)
    for picked, best in selector.finish():
        stats.frames_sampled += 1
        yield _to_sampled(drive, picked, best)


def _sharpest_every(
    drive: Drive, sampling: dict, spacing_m: float, progress: bool, stats: SamplingStats
) -> Iterator[tuple[tuple[DecodedFrame, TrackState], float]]:
    """The sharpest moving frame of every ``spacing_m`` driven, with its pose and sharpness, in video order."""
    traj = drive.trajectory
    t0, t1 = drive.covered
    utc0 = drive.video_start_utc
    step = float(1.0 / drive.video.fps)
    grid = np.arange(t0, t1 + step, step)
    state = traj.at(utc0 + grid)
    moving = state.valid & (state.speed >= sampling.min_speed_mps)
    stats.video_s = drive.video.duration_s
    stats.covered_s = t1 - t0
    stats.stationary_s = float(np.count_nonzero(state.valid & ~moving) * step)
    ends = traj.at([utc0 + t0, utc0 + t1]).distance
    stats.distance_m = float(np.nanmax(ends) - np.nanmin(ends)) if np.isfinite(ends).any() else 0.0
    spans = [(s - utc0, e - utc0) for s, e in traj.moving_spans(sampling.min_speed_mps, utc0 + t0, utc0 + t1)]
    # Half a frame either side so that span edges do not drop a frame.
    spans = [(max(t0, a - step / 2), min(t1, b + step / 2)) for a, b in spans]

    selector: DistanceSelector[tuple[DecodedFrame, TrackState]] = DistanceSelector(spacing_m, sampling.min_speed_mps)
    bar = tqdm(total=t1 - t0, desc=f"sampling {drive.id}", bar_format=PROGRESS, disable=not progress, leave=False)
    last_t = 0.0
    frames = decode_frames(drive.video.path, spans, sampling.min_seek_gap_s, sampling.decoder_threads)
    decoded = 0
    for frame in frames:
        decoded += 1
        here = traj.at(utc0 + frame.time)
        if frame.time - last_t >= 0.5:
            _advance(bar, frame.time - t0)
            last_t = frame.time
        if not here.valid[0] or not selector.wants(here.distance[0], here.speed[0]):
            continue
        score = sharpness(frame.luma(), sampling.sharpness_step)
        yield from selector.push((frame, here), here.distance[0], here.speed[0], score)
    yield from selector.finish()
    _advance(bar, t1 - t0)
    bar.close()
    stats.frames_decoded = decoded


def _advance(bar: tqdm, position_s: float) -> None:
    """Move the bar to ``position_s`` into the covered video (over a span sought past at once) and say how many
    times real time the sampler runs."""
    if bar.disable:
        return
    bar.update(max(0.0, position_s - bar.n))
    elapsed = bar.format_dict["elapsed"]
    if elapsed > 0:
        bar.set_postfix_str(f"{bar.n / elapsed:.1f}x real time", refresh=False)


def _to_sampled(drive: Drive, picked: tuple[DecodedFrame, TrackState], score: float) -> SampledFrame:
    frame, here = picked
    return SampledFrame(
        image=frame.bgr(),
        drive_id=drive.id,
        frame_index=frame.index,
        video_time=frame.time,
        utc=drive.video_start_utc + frame.time,
        lat=float(here.lat[0]),
        lon=float(here.lon[0]),
        heading=float(here.heading[0]),
        speed=float(here.speed[0]),
        distance_m=float(here.distance[0]),
        sharpness=score,
    )


def prefetched(items: Iterator[T], depth: int) -> Iterator[T]:
    """``items`` produced by a background thread up to ``depth`` ahead (``depth`` 0: as they are).

    Decoding and detection both release the GIL, so the next frames are decoded while the
    detector works on this one. An exception in the producer is raised here, in the consumer;
    a consumer that stops early stops the producer too.

    >>> list(prefetched(iter(range(5)), depth=2))
    [0, 1, 2, 3, 4]
    """
    if depth <= 0:
        yield from items
        return
    import queue
    import threading

    slots: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    end = object()

    def put(entry: tuple[object, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((end, None))
        except BaseException as e:  # handed to the consumer, raised there
            put((end, e))
        finally:
            close = getattr(items, "close", None)
            if close:  # a generator is finalised in the thread that ran it
                close()

    thread = threading.Thread(target=produce, name="frame-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = slots.get()
            if error is not None:
                raise error
            if item is end:
                return
            yield item
    finally:
        stop.set()
        thread.join()
