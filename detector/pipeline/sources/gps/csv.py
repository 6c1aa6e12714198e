"""CSV tracks: a header with ``time,lat,lon`` and optionally ``speed`` (m/s) and ``heading``.

Column names are case-insensitive, extra columns are ignored, empty speed/heading cells
are unknown. ``time`` is ISO 8601 (``Z`` or an offset; without one it is UTC) or epoch
seconds. For example::

    time,lat,lon,speed
    2024-05-01T10:00:00Z,31.25,34.79,12.5
    1714557601.5,31.2501,34.79,
"""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from detector.bounds import check_lat_lon, check_time
from detector.errors import InputError
from detector.pipeline.sources.track import Track

REQUIRED = ("time", "lat", "lon")
OPTIONAL = ("speed", "heading")


class CsvReader:
    """Reads ``.csv`` tracks."""

    name: ClassVar[str] = "CSV"
    suffixes: ClassVar[tuple[str, ...]] = (".csv",)

    def sniff(self, head: bytes) -> bool:
        first = head.decode("utf-8", errors="replace").lstrip("\ufeff").splitlines()[:1]
        names = {c.strip().lower() for c in first[0].split(",")} if first else set()
        return set(REQUIRED) <= names

    def read(self, path: Path) -> Track:
        return read_csv(path)


def read_csv(path: Path) -> Track:
    """Read a CSV track; a bad row is an InputError naming its line."""
    columns: dict[str, list[float]] = {name: [] for name in REQUIRED + OPTIONAL}
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise InputError(path, "empty file (expected a header time,lat,lon[,speed,heading])")
        index = {name.strip().lower(): i for i, name in enumerate(header)}
        missing = [name for name in REQUIRED if name not in index]
        if missing:
            raise InputError(path, f"missing column(s) {', '.join(missing)} in the header (line 1)")
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            where = f"line {reader.line_num}"
            try:
                values = _row(row, index)
            except ValueError as e:
                raise InputError(path, f"{where}: {e}") from None
            try:
                check_time(values["time"], where)
                check_lat_lon(values["lat"], values["lon"], where)
            except ValueError as e:
                raise InputError(path, str(e)) from None
            for name, value in values.items():
                columns[name].append(value)
    return Track.from_arrays(str(path), **columns)


def _row(row: list[str], index: dict[str, int]) -> dict[str, float]:
    """One row's values; ValueError with a readable message when bad."""
    cells = {name: row[i].strip() if i < len(row) else "" for name, i in index.items()}
    for name in REQUIRED:
        if not cells[name]:
            raise ValueError(f"empty {name}")
    values = {"time": parse_time(cells["time"])}
    for name in ("lat", "lon", *OPTIONAL):
        cell = cells.get(name, "")
        try:
            values[name] = float(cell) if cell else math.nan
        except ValueError:
            raise ValueError(f"{name} {cell!r} is not a number") from None
    return values


def parse_time(text: str) -> float:
    """ISO 8601 or epoch seconds -> UTC epoch seconds; naive ISO times are UTC.

    >>> parse_time("2024-05-01T10:00:00Z"), parse_time("2024-05-01T12:00:00+02:00"), parse_time("1714557600")
    (1714557600.0, 1714557600.0, 1714557600.0)
    """
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"time {text!r} is neither ISO 8601 nor epoch seconds") from None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()
