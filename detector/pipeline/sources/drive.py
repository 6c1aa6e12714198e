"""A drive: one video and its GPS track, aligned in time.

Alignment decides the UTC time of the video's first frame:

* ``auto`` uses the GPS embedded in the video's timed track (exact: GoPro, CAMM) when there is
  some; for GPS embedded beside the video's tracks (BlackVue, Novatek) the first fix, as the
  camera writes both together and dashcam container times are often local time; else the
  container's recording time, else the track's start;
* ``container`` and ``track`` force one of the latter two.

``gps_offset_s`` is then added (GPS time = video time + offset), to correct a camera clock
known to be off.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from detector.bounds import check_time
from detector.config import Config
from detector.errors import InputError, path_text, shown
from detector.pipeline.sources.gps import read_track
from detector.pipeline.sources.gps.library import GpsNotFound
from detector.pipeline.sources.gps.video import read_embedded
from detector.pipeline.sources.track import Track, Trajectory, utc_text
from detector.pipeline.sources.video import VideoInfo, probe_video

log = logging.getLogger(__name__)

TRACK_SUFFIXES = (".gpx", ".nmea", ".csv", ".log")


@dataclass(frozen=True)
class Drive:
    """A video with the trajectory that explains where each of its frames was taken."""

    id: str
    video: VideoInfo
    track: Track
    trajectory: Trajectory
    video_start_utc: float
    start_source: str
    covered: tuple[float, float]  # video-time span inside the track
    warnings: list[str] = field(default_factory=list)

    def utc(self, video_time):
        return self.video_start_utc + video_time


def content_id(path: Path, chunk: int = 1 << 20) -> str:
    """A short fingerprint of a file's content: its size, first and last MiB (fast on big videos)."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    digest.update(str(size).encode())
    with path.open("rb") as f:
        digest.update(f.read(chunk))
        f.seek(max(0, size - chunk))
        digest.update(f.read(chunk))
    return digest.hexdigest()[:12]


def find_sidecar(video_path: Path) -> Path | None:
    """The GPS track beside a video: same stem, a known suffix; None if there is none."""
    for suffix in TRACK_SUFFIXES:
        for candidate in (video_path.with_suffix(suffix), video_path.with_suffix(suffix.upper())):
            if candidate.is_file():
                return candidate
    return None


def find_track(video_path: Path) -> Path:
    """The file a video's GPS comes from, for fingerprints: the track beside it, else the video itself."""
    return find_sidecar(video_path) or video_path


def read_drive_track(video_path: Path) -> Track:
    """The GPS of a video given no ``--gps``: embedded in the video, else the track beside it.

    A video with neither is one InputError saying what was looked for.
    """
    try:
        return read_embedded(video_path)
    except GpsNotFound as missing:
        sidecar = find_sidecar(video_path)
        if sidecar is None:
            beside = ", ".join(video_path.stem + s for s in TRACK_SUFFIXES)
            problem = f"{missing.problem}, and no GPS file beside it ({beside}); pass --gps"
            raise InputError(video_path, problem) from None
        return read_track(sidecar)


def _video_start(video: VideoInfo, track: Track, mode: str) -> tuple[float, str]:
    if mode == "auto" and track.video_start_utc is not None:
        return track.video_start_utc, "embedded GPS"
    if mode == "auto" and Path(track.source) == video.path:
        return track.start, "embedded GPS, first fix"
    if mode in ("auto", "container") and video.creation_time is not None:
        return video.creation_time, "container time"
    if mode == "container":
        raise InputError(video.path, "no recording time in the container (try --set drive.video_start=track)")
    return track.start, "track start"


def _coverage(video: VideoInfo, start: float, traj: Trajectory, how: str) -> tuple[tuple[float, float], list[str]]:
    end = start + video.duration_s
    if end < traj.start or start > traj.end:
        if start > traj.end:
            gap = f"starts {start - traj.end:.1f} s after the track ends"
        else:
            gap = f"ends {traj.start - end:.1f} s before the track starts"
        raise InputError(
            video.path,
            f"video ({utc_text(start)} to {utc_text(end)}, from its {how}) lies outside the GPS track "
            f"({utc_text(traj.start)} to {utc_text(traj.end)}): it {gap}; correct it with --gps-offset",
        )
    warnings = []
    if start < traj.start:
        warnings.append(
            f"{shown(video.path)}: first {traj.start - start:.1f} s of video precede the GPS track; not sampled"
        )
    if end > traj.end:
        warnings.append(f"{shown(video.path)}: last {end - traj.end:.1f} s of video follow the GPS track; not sampled")
    return (max(start, traj.start) - start, min(end, traj.end) - start), warnings


def open_drive(video_path: str | Path, gps_path: str | Path | None, cfg: Config) -> Drive:
    """Probe the video, read its track and align them, or raise :class:`InputError`."""
    video_path = Path(video_path)
    video = probe_video(video_path)
    track = read_track(gps_path) if gps_path else read_drive_track(video_path)
    log.info("%s: %s", path_text(track.source), track.describe())
    offset = float(cfg.drive.gps_offset_s)
    trajectory = track.trajectory(max_gap_s=cfg.gps.max_gap_s, max_speed_mps=cfg.gps.max_speed_mps)
    start, how = _video_start(video, track, cfg.drive.video_start)
    start += offset
    try:
        check_time(start, f"the video's start ({how}, plus a GPS offset of {offset:g} s)")
    except ValueError as e:
        raise InputError(video_path, str(e)) from None
    covered, warnings = _coverage(video, start, trajectory, how)
    for w in warnings:
        log.warning(w)
    return Drive(
        id=path_text(cfg.drive.id or f"{video_path.stem}-{content_id(video_path)}"),
        video=video,
        track=track,
        trajectory=trajectory,
        video_start_utc=start,
        start_source=how,
        covered=covered,
        warnings=[*trajectory.warnings, *warnings],
    )
