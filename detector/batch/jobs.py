"""Which drives a batch processes: videos from paths, folders and globs, or an index CSV.

A video's GPS track is found beside it by name (see :func:`detector.pipeline.sources.drive.find_track`)
unless an index file names it. Index files are CSV with a header: ``video,gps[,gps_offset_s]``;
relative paths are relative to the index file, an empty ``gps`` means "find it by name".
"""

from __future__ import annotations

import csv
import glob
import io
import math
from dataclasses import dataclass, replace
from pathlib import Path

from detector.errors import InputError
from detector.pipeline.analysis import content_hash
from detector.pipeline.sources.drive import find_track

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".m4v")


@dataclass(frozen=True)
class DriveJob:
    """One drive of a batch or push. ``digest`` (the store's content hash) is filled in by :func:`prepare_job`."""

    video: Path
    gps: Path | None = None
    gps_offset_s: float | None = None
    digest: str = ""


def _videos_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def _expand(item: str) -> list[Path]:
    path = Path(item)
    if path.is_dir():
        return _videos_in(path)
    if path.is_file():
        return [path]
    if glob.has_magic(item):
        found: list[Path] = []
        for match in sorted(glob.glob(item, recursive=True)):
            p = Path(match)
            if p.is_dir():
                found += _videos_in(p)
            elif p.suffix.lower() in VIDEO_SUFFIXES:
                found.append(p)
        if not found:
            raise InputError(item, "no video files match this pattern")
        return found
    raise InputError(path, "no such file or folder")


MAX_OFFSET_S = 1e9  # as drive.gps_offset_s: a camera clock reset to 2000 is some 8.5e8 s off


def read_index(index: Path) -> list[DriveJob]:
    """Drives listed in an index CSV (``video,gps[,gps_offset_s]``); InputError naming the file (and line)."""
    try:
        text = index.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise InputError(index, f"cannot read index file ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise InputError(
            index, f"not a UTF-8 text file (byte {e.start}); expected CSV video,gps[,gps_offset_s]"
        ) from None
    if "\0" in text:
        raise InputError(index, "holds a NUL byte: not a CSV text file")
    rows = csv.DictReader(io.StringIO(text, newline=""))  # a quoted name may hold a newline
    try:
        fieldnames = rows.fieldnames
    except csv.Error as e:
        raise InputError(index, f"not a readable CSV file ({e})") from None
    if not fieldnames or "video" not in [f.strip() for f in fieldnames]:
        raise InputError(index, "index file needs a header with a 'video' column (video,gps[,gps_offset_s])")
    jobs = []
    base = index.parent
    try:
        for row in rows:
            jobs.append(_job(base, {k.strip(): (v or "").strip() for k, v in row.items() if isinstance(k, str)}))
    except ValueError as e:
        raise InputError(index, f"line {rows.line_num}: {e}") from None
    except csv.Error as e:
        raise InputError(index, f"line {rows.line_num}: not readable CSV ({e})") from None
    return jobs


def _job(base: Path, row: dict[str, str]) -> DriveJob:
    """One index row's drive; ValueError naming the bad cell."""
    if not row.get("video"):
        raise ValueError("no video")
    offset = row.get("gps_offset_s") or None
    try:
        offset_s = float(offset) if offset is not None else None
    except ValueError:
        raise ValueError(f"gps_offset_s {offset!r} is not a number") from None
    if offset_s is not None and not (math.isfinite(offset_s) and abs(offset_s) <= MAX_OFFSET_S):
        raise ValueError(f"gps_offset_s {offset!r} is not a finite number of seconds within ±{MAX_OFFSET_S:g}")
    gps = row.get("gps")
    return DriveJob(base / row["video"], base / gps if gps else None, offset_s)


def find_jobs(items: list[str], index: Path | None = None) -> list[DriveJob]:
    """The batch's drives, in a stable order (sorted by video path), each video once."""
    jobs = read_index(index) if index else []
    for item in items:
        jobs += [DriveJob(p) for p in _expand(item)]
    unique: dict[Path, DriveJob] = {}
    for job in jobs:
        unique.setdefault(job.video.resolve(), job)
    if not unique:
        raise InputError(index or (items[0] if items else None), "no drives to process")
    return sorted(unique.values(), key=lambda j: str(j.video))


@dataclass(frozen=True)
class JobError:
    """A drive that cannot be analysed, as a value (as mapillary_tools' ``ErrorMetadata``): the file at fault and
    the error, whose ``__cause__`` keeps the ``OSError`` where reading failed."""

    file: Path
    error: InputError

    def __str__(self) -> str:
        return str(self.error)


def prepare_job(job: DriveJob) -> DriveJob | JobError:
    """The job with its drive's content hash (``digest``: how the store and the hub know a drive), or why it
    cannot be analysed: its video or GPS track missing, or unreadable. ``batch`` and ``push`` both prepare here,
    so a bad drive is one line in each, never a traceback."""
    if not job.video.is_file():
        return JobError(job.video, InputError(job.video, "video file not found"))
    gps = job.gps or find_track(job.video)
    if not gps.is_file():
        return JobError(gps, InputError(gps, "GPS track not found"))
    try:
        return replace(job, digest=content_hash(job.video, gps))
    except OSError as e:
        unreadable = e.filename or job.video
        error = InputError(unreadable, f"cannot read ({e.strerror or e})")
        error.__cause__ = e
        return JobError(Path(unreadable), error)
