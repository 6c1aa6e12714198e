"""What the embedded-GPS readers share: the "not this format" error and the library's errors as one-line ones."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import construct
from mapillary_tools import exceptions as mapillary_errors
from mapillary_tools.mp4 import construct_mp4_parser, simple_mp4_parser

from detector.errors import InputError

# What mapillary_tools' MP4 and telemetry parsers raise on a damaged or foreign file.
_LIBRARY_ERRORS = (
    ValueError,
    EOFError,
    struct.error,
    construct.ConstructError,
    simple_mp4_parser.ParsingError,
    construct_mp4_parser.BoxNotFoundError,
    mapillary_errors.MapillaryUserError,
    mapillary_errors.MapillaryDescriptionError,
)


class GpsNotFound(InputError):
    """The file holds no GPS of the format asked for (another reader may still find some)."""


@contextmanager
def library_errors(path: Path, format_name: str) -> Iterator[None]:
    """Turn a decoding library's exceptions into an InputError naming ``path`` and the format."""
    try:
        yield
    except OSError as e:
        raise InputError(path, f"cannot read: {e.strerror or e}") from e
    except _LIBRARY_ERRORS as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(path, f"cannot read as {format_name}: {reason}") from e


MP4_FIRST_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")


def require_mp4(path: Path, format_name: str) -> None:
    """GpsNotFound unless ``path`` starts like an MP4/QuickTime file (the native readers parse only those)."""
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError as e:
        raise InputError(path, f"cannot read: {e.strerror or e}") from e
    if head[4:8] not in MP4_FIRST_BOXES:
        raise GpsNotFound(path, f"not an MP4/MOV file, so no {format_name}")
