"""GPS embedded in a GoPro MP4/MOV as GPMF telemetry (the ``gpmd`` data track).

The telemetry track is demuxed with PyAV: one packet per ~1 s of video, each a tree of KLV
items (4-char key, 1-byte type, 1-byte struct size, 2-byte big-endian repeat count, payload
padded to 4 bytes; type 0 = nested). A ``DEVC/STRM`` holding ``GPS5`` (int32 lat, lon, alt,
2D speed, 3D speed, each divided by ``SCAL``) also holds ``GPSU``, the UTC time
``yymmddhhmmss.sss`` of the block, and ``GPSF``, the fix type (0 = none).

Timing: every fix gets the video time of its packet's start plus its position in the block
spread over the packet's duration; UTC = video time + offset, the offset being the median
over blocks of ``GPSU - packet pts``. The median matters: a camera's first block often
carries a stale GPSU (in ``max-heromode.mp4`` it is 1.47 s early, though its positions join
the next block's without a gap), and one offset keeps fix times strictly increasing despite
the ~50 ms jitter of GPSU. ``video_start_utc`` is that offset: the UTC time of video time 0.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import av
import av.error
import numpy as np
from av.stream import Discard

from detector.errors import InputError
from detector.sources.track import Track

_HEADER = struct.Struct(">4sBBH")
_DTYPES = {
    "b": "i1",
    "B": "u1",
    "s": ">i2",
    "S": ">u2",
    "l": ">i4",
    "L": ">u4",
    "f": ">f4",
    "d": ">f8",
    "j": ">i8",
    "J": ">u8",
}


class GoProReader:
    """Reads the GPS of GoPro videos."""

    name: ClassVar[str] = "GoPro GPMF"
    suffixes: ClassVar[tuple[str, ...]] = (".mp4", ".mov")

    def sniff(self, head: bytes) -> bool:
        return head[4:8] == b"ftyp"

    def read(self, path: Path) -> Track:
        return read_gopro(path)


@dataclass(frozen=True)
class Klv:
    """One GPMF item. ``type`` is the type character, ``"\\0"`` for nested items."""

    key: str
    type: str
    size: int
    repeat: int
    payload: bytes

    def children(self) -> Iterator[Klv]:
        return iter_klv(self.payload)

    def values(self) -> np.ndarray:
        """Numeric payload as a (repeat, size // itemsize) array."""
        if self.type not in _DTYPES:
            raise ValueError(f"GPMF {self.key} has non-numeric type {self.type!r}")
        return np.frombuffer(self.payload, dtype=_DTYPES[self.type]).reshape(self.repeat, -1)

    def text(self) -> str:
        return self.payload.decode("ascii", errors="replace").rstrip("\0")


def iter_klv(buf: bytes) -> Iterator[Klv]:
    """The KLV items at one level of a GPMF buffer.

    >>> [k.key for k in iter_klv(b"GPSF" b"L\\x04\\x00\\x01" b"\\x00\\x00\\x00\\x03")]
    ['GPSF']
    """
    offset = 0
    while offset + _HEADER.size <= len(buf):
        key, type_, size, repeat = _HEADER.unpack_from(buf, offset)
        start = offset + _HEADER.size
        end = start + size * repeat
        if end > len(buf):
            raise ValueError(f"GPMF item {key!r} runs past the end of its packet")
        yield Klv(key.decode("latin-1"), chr(type_), size, repeat, buf[start:end])
        offset = start + (size * repeat + 3) // 4 * 4


@dataclass(frozen=True)
class GpsBlock:
    """The GPS5 samples of one telemetry packet; times in seconds of video time."""

    pts: float
    duration: float
    gpsu: float | None
    has_fix: bool
    samples: np.ndarray  # (n, 5): lat, lon, alt, speed2d, speed3d

    def video_times(self) -> np.ndarray:
        n = len(self.samples)
        return self.pts + np.arange(n) * (self.duration / n)


def read_gopro(path: Path) -> Track:
    """Read the GPS5 fixes of a GoPro video; InputError for videos without them."""
    try:
        blocks = [b for pts, dur, data in _gpmf_packets(path) for b in gps_blocks(data, pts, dur)]
    except ValueError as e:  # av.error.FFmpegError is a ValueError too
        raise InputError(path, f"cannot read as a GoPro video: {_reason(e)}") from e
    if not blocks:
        raise InputError(path, "no GPS5 stream in the GoPro telemetry")
    located = [b for b in blocks if b.has_fix and len(b.samples)]
    if not located:
        raise InputError(path, f"the GoPro GPS had no fix in any of the {len(blocks)} telemetry packets")
    offsets = [b.gpsu - b.pts for b in located if b.gpsu is not None]
    if not offsets:
        raise InputError(path, "no GPS time (GPSU) in the GoPro telemetry")
    offset = float(np.median(offsets))
    samples = np.concatenate([b.samples for b in located])
    return Track.from_arrays(
        str(path),
        time=offset + np.concatenate([b.video_times() for b in located]),
        lat=samples[:, 0],
        lon=samples[:, 1],
        speed=samples[:, 3],
        video_start_utc=offset,
    )


def _gpmf_packets(path: Path) -> list[tuple[float, float, bytes]]:
    """(pts s, duration s, bytes) of the GPMF data track's packets, in order.

    Audio and video are discarded in the demuxer, so only the telemetry samples are read
    from disk (a few hundred KB, not the whole video).
    """
    with av.open(str(path)) as container:
        for stream in container.streams:
            if stream.type != "data":
                stream.discard = Discard.all
        streams = container.streams.data
        packets: dict[int, list[tuple[float, float, bytes]]] = {s.index: [] for s in streams}
        for packet in container.demux(*streams) if streams else ():
            if packet.size and packet.pts is not None:
                if not packet.duration:
                    raise ValueError(f"telemetry packet at pts {packet.pts} has no duration")
                base = packet.time_base
                packets[packet.stream.index].append(
                    (float(packet.pts * base), float(packet.duration * base), bytes(packet))
                )
    for found in packets.values():
        if found and found[0][2][:4] == b"DEVC":
            return found
    raise InputError(path, "no GPMF telemetry (not a GoPro video?)")


def gps_blocks(data: bytes, pts: float, duration: float) -> Iterator[GpsBlock]:
    """The GPS5 blocks in one GPMF packet (DEVC -> STRM -> GPS5)."""
    for devc in iter_klv(data):
        if devc.key != "DEVC":
            continue
        for strm in devc.children():
            items = {k.key: k for k in strm.children()} if strm.key == "STRM" else {}
            if "GPS5" in items:
                yield _gps_block(items, pts, duration)


def _gps_block(items: dict[str, Klv], pts: float, duration: float) -> GpsBlock:
    raw = items["GPS5"].values().astype(float)
    scale = items["SCAL"].values().ravel().astype(float) if "SCAL" in items else np.ones(1)
    gpsf = items.get("GPSF")
    return GpsBlock(
        pts=pts,
        duration=duration,
        gpsu=parse_gpsu(items["GPSU"].text()) if "GPSU" in items else None,
        has_fix=gpsf is None or int(gpsf.values().ravel()[0]) != 0,
        samples=raw / scale,
    )


def parse_gpsu(text: str) -> float:
    """GPSU ``yymmddhhmmss.sss`` -> UTC epoch seconds.

    >>> parse_gpsu("191118234514.000") == datetime(2019, 11, 18, 23, 45, 14, tzinfo=UTC).timestamp()
    True
    """
    return datetime.strptime(text, "%y%m%d%H%M%S.%f").replace(tzinfo=UTC).timestamp()


def _reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error)
