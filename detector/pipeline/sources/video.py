"""Video files: probe their metadata and decode frames with exact timestamps (PyAV).

Decoding is the expensive part of sampling, so :func:`decode_frames` takes the spans of video
time that matter and seeks over the rest (a seek lands on a keyframe, which is what really
skips decoding work). Frames are handed out still in the decoder's YUV form; the luma plane is
read without conversion and only the frames a caller keeps are converted to BGR.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from detector.bounds import time_ok
from detector.errors import InputError
from detector.pipeline.sources.track import parse_utc


@dataclass(frozen=True)
class VideoInfo:
    """What a video file says about itself.

    ``creation_time`` is the container's recording time as UTC seconds since the epoch, or
    None where the container has none (or a placeholder before the year 2000).
    """

    path: Path
    width: int
    height: int
    fps: float
    duration_s: float
    frame_count: int
    codec: str
    creation_time: float | None


def _creation_time(container: av.container.InputContainer) -> float | None:
    """The container's recording time, None when absent or not a date a patrol drive can have (a camera
    whose clock was never set writes 1970 or 1904)."""
    when = parse_utc(container.metadata.get("creation_time"))
    try:
        t = when.timestamp() if when else None
    except (OverflowError, ValueError):
        return None
    return t if t is not None and time_ok(t) else None


def _open(path: Path) -> av.container.InputContainer:
    if path.is_dir():
        raise InputError(path, "a folder, not a video file (detector batch takes folders)")
    if not path.is_file():
        raise InputError(path, "video file not found")
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise InputError(path, f"cannot open video ({_reason(e)})") from None


def _reason(error: Exception) -> str:
    text = getattr(error, "strerror", None) or str(error)
    return text.split(": '")[0].strip() or type(error).__name__


def probe_video(path: str | Path) -> VideoInfo:
    """Read a video's size, rate, duration and recording time; a clear error if it has no frames."""
    path = Path(path)
    with _open(path) as container:
        if not container.streams.video:
            raise InputError(path, "no video stream in the file")
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0) or 30.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        frames = stream.frames or round(duration * fps)
        if frames <= 0 or duration <= 0 or not stream.codec_context.width:
            raise InputError(path, "video has no frames")
        return VideoInfo(
            path=path,
            width=int(stream.codec_context.width),
            height=int(stream.codec_context.height),
            fps=fps,
            duration_s=duration,
            frame_count=int(frames),
            codec=stream.codec_context.name,
            creation_time=_creation_time(container),
        )


@dataclass
class DecodedFrame:
    """One decoded frame: its time from the start of the video and its pixels, unconverted."""

    index: int
    time: float
    frame: av.VideoFrame

    def luma(self) -> np.ndarray:
        """The Y plane as a (height, width) uint8 view, without colour conversion."""
        frame = self.frame
        if frame.format.name.startswith(("yuv", "yuvj", "nv12", "gray")):
            plane = frame.planes[0]
            rows = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)
            return rows[: frame.height, : frame.width]
        return frame.to_ndarray(format="gray")

    def bgr(self) -> np.ndarray:
        return self.frame.to_ndarray(format="bgr24")


def decode_frames(
    path: str | Path,
    spans: Sequence[tuple[float, float]] | None = None,
    min_seek_gap_s: float = 2.0,
    threads: int = 0,
) -> Iterator[DecodedFrame]:
    """Decode the frames whose time falls in ``spans`` (seconds of video time, sorted).

    Between spans further apart than ``min_seek_gap_s`` the decoder seeks to the keyframe
    before the next span instead of decoding what lies between. ``spans=None`` decodes all.
    Raises :class:`InputError` for a file that stops decoding part-way (truncated or corrupt).
    """
    path = Path(path)
    container = _open(path)
    try:
        if not container.streams.video:
            raise InputError(path, "no video stream in the file")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if threads:
            stream.codec_context.thread_count = threads
        base = float(stream.time_base)
        start_pts = stream.start_time or 0
        fps = float(stream.average_rate or 30)
        wanted = list(spans) if spans is not None else [(0.0, math.inf)]
        if not wanted:
            return
        duration = float(stream.duration * base) if stream.duration else None
        span_i = 0
        decoded = 0
        position = 0.0  # video time of the last frame decoded
        sought = -1  # the span last sought to: never seek twice for one span (long GOPs)
        frames = container.decode(stream)
        while span_i < len(wanted):
            lo = wanted[span_i][0]
            if lo - position > min_seek_gap_s and sought != span_i:
                container.seek(start_pts + int(lo / base), stream=stream, backward=True, any_frame=False)
                sought = span_i
                frames = container.decode(stream)
            for frame in frames:
                t = (frame.pts - start_pts) * base if frame.pts is not None else decoded / fps
                decoded += 1
                position = t
                while span_i < len(wanted) and t > wanted[span_i][1]:
                    span_i += 1
                if span_i == len(wanted):
                    break
                lo = wanted[span_i][0]
                if t >= lo:
                    yield DecodedFrame(index=round(t * fps), time=t, frame=frame)
                elif lo - t > min_seek_gap_s and sought != span_i:
                    break  # the next span is far ahead: seek to it
            else:
                break  # end of stream
        if decoded == 0:
            raise InputError(path, "video has no decodable frames")
        stopped_early = duration is not None and position < duration - 1.0
        if stopped_early and span_i < len(wanted) and wanted[span_i][1] > position + 1.0:
            raise InputError(path, f"video data ends at {position:.1f} s of {duration:.1f} s (truncated)")
    except av.error.FFmpegError as e:
        raise InputError(path, f"corrupt or truncated video data ({_reason(e)})") from None
    finally:
        container.close()
