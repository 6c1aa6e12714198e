"""Frames from the vehicle's camera: a V4L2 device, a network stream, or a video file played at real time.

Devices and streams that fail are reopened forever (logged once per loss). A video file stands
in for a camera in tests and benchmarks: it is paced to its frame rate times ``speed``, frames
the reader is too late for are skipped as a real camera would drop them, and at its end it
starts again (``loop``) or ends the run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)


@dataclass
class CameraStats:
    frames: int = 0
    late_skipped: int = 0  # file playback: frames a real camera would have dropped
    losses: int = 0


class CameraFeed:
    """Iterate over (monotonic capture time, BGR frame) until ``stop`` is set or a file ends."""

    def __init__(self, source: str, speed: float = 1.0, loop: bool = False, reconnect_s: float = 2.0) -> None:
        self.source = source
        self.is_file = Path(source).is_file()
        self.speed = speed if speed > 0 else 1.0
        self.loop = loop
        self.reconnect_s = reconnect_s
        self.stats = CameraStats()

    def _open(self) -> cv2.VideoCapture | None:
        src = self.source
        if src.isdigit():
            cap = cv2.VideoCapture(int(src), cv2.CAP_V4L2)
        elif src.startswith("/dev/"):
            cap = cv2.VideoCapture(src, cv2.CAP_V4L2)
        else:
            cap = cv2.VideoCapture(src, cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            return None
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a backlog
        return cap

    def frames(self, stop: threading.Event) -> Iterator[tuple[float, np.ndarray]]:
        logged = False
        while not stop.is_set():
            cap = self._open()
            if cap is None:
                if not logged:
                    log.warning("camera %s unavailable; retrying every %g s", self.source, self.reconnect_s)
                    logged = True
                stop.wait(self.reconnect_s)
                continue
            if logged:
                log.info("camera %s back; resuming", self.source)
                logged = False
            try:
                yield from (self._play(cap, stop) if self.is_file else self._read(cap, stop))
            finally:
                cap.release()
            if stop.is_set() or (self.is_file and not self.loop):
                return
            if not self.is_file:
                self.stats.losses += 1
                log.warning("camera %s lost; reopening every %g s", self.source, self.reconnect_s)
                logged = True
                stop.wait(self.reconnect_s)

    def _read(self, cap: cv2.VideoCapture, stop: threading.Event) -> Iterator[tuple[float, np.ndarray]]:
        while not stop.is_set():
            ok, frame = cap.read()
            if not ok:
                return
            self.stats.frames += 1
            yield time.monotonic(), frame

    def _play(self, cap: cv2.VideoCapture, stop: threading.Event) -> Iterator[tuple[float, np.ndarray]]:
        interval = 1.0 / ((cap.get(cv2.CAP_PROP_FPS) or 30.0) * self.speed)
        start = time.monotonic()
        index = 0
        while not stop.is_set():
            due = start + index * interval
            now = time.monotonic()
            if now < due:
                time.sleep(due - now)
            elif now - due > interval:  # a frame behind: a camera would have moved on
                if not cap.grab():
                    return
                index += 1
                self.stats.late_skipped += 1
                continue
            ok, frame = cap.read()
            if not ok:
                return
            index += 1
            self.stats.frames += 1
            yield time.monotonic(), frame
