"""YOLO label files, read and written here only.

One ``<image stem>.txt`` per image under a ``labels/`` folder beside ``images/``; a line per box,
``class cx cy w h`` normalised to the image size (a detection adds its confidence, ``conf``). An image without
boxes has an empty (or no) label file.

>>> rows = box_rows(np.array([[10.0, 20.0, 30.0, 60.0]]), np.array([1]), width=100, height=80)
>>> format_rows(rows)
['1 0.200000 0.500000 0.200000 0.500000']
>>> pixel_boxes(rows, width=100, height=80).round(6).tolist()
[[10.0, 20.0, 30.0, 60.0]]
>>> label_path(Path("/data/images/train/dnit/a.jpg")).as_posix()
'/data/labels/train/dnit/a.txt'
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

ROW_FORMAT = ("%d", "%.6f", "%.6f", "%.6f", "%.6f", "%.4f")  # class, cx, cy, w, h, and a detection's confidence


def label_path(image: Path) -> Path:
    """Ultralytics' label file of ``image``: the last ``/images/`` in the path becomes ``/labels/``, suffix ``.txt``."""
    head, _, tail = str(image).rpartition(f"{os.sep}images{os.sep}")
    return Path(f"{head}{os.sep}labels{os.sep}{tail}").with_suffix(".txt")


def box_rows(xyxy: np.ndarray, classes: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N, 5) label rows ``class cx cy w h`` of pixel boxes ``x1 y1 x2 y2`` in an image ``width`` x ``height``."""
    x0, y0, x1, y1 = np.asarray(xyxy).reshape(-1, 4).T
    columns = [np.asarray(classes).reshape(-1), (x0 + x1) / 2 / width, (y0 + y1) / 2 / height]
    return np.column_stack([*columns, (x1 - x0) / width, (y1 - y0) / height]).astype(np.float64).reshape(-1, 5)


def pixel_boxes(rows: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N, 4) pixel boxes ``x1 y1 x2 y2`` of label rows, clipped to the image."""
    xywh = np.asarray(rows, np.float64)[:, 1:5]
    xyxy = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], axis=1)
    return np.clip(xyxy, 0.0, 1.0) * [width, height, width, height]


def format_rows(rows: np.ndarray) -> list[str]:
    """The text lines of label rows: five columns, or six with a detection's confidence."""
    rows = np.asarray(rows, np.float64)
    if not rows.size:
        return []
    fmt = " ".join(ROW_FORMAT[: rows.shape[1]])
    return [fmt % tuple(row) for row in rows]


def write_label(path: Path, rows: np.ndarray) -> None:
    """Write label rows (:func:`box_rows`, or with a confidence column) to ``path``; no rows: an empty file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in format_rows(rows)))


def read_label(path: Path) -> np.ndarray:
    """(N, 5) rows ``class cx cy w h`` of a label file; a missing or empty file has none (a confidence is dropped).

    >>> read_label(Path("no-such-label.txt")).shape
    (0, 5)
    """
    if not path.exists():
        return np.zeros((0, 5))
    rows = [line.split()[:5] for line in path.read_text().splitlines() if line.strip()]
    return np.array(rows, np.float64).reshape(-1, 5)
