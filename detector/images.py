"""Image files at any path the OS accepts: OpenCV encodes and decodes in memory, Python reads and writes the file.

``cv2.imwrite`` and ``cv2.imread`` take the path as a C string: one that is not valid UTF-8 (a file name whose
bytes ``os.fsdecode`` turns into surrogates) takes the process down inside OpenCV (a segfault, measured).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from detector.errors import InputError


def write_image(path: Path, image: np.ndarray, params: Sequence[int] = ()) -> None:
    """Encode ``image`` in the format its suffix names (``.jpg``, ``.webp``...) and write it to ``path``."""
    ok, data = cv2.imencode(path.suffix, image, list(params))
    if not ok:
        raise InputError(path, f"cannot encode the image as {path.suffix}")
    try:
        path.write_bytes(data.tobytes())
    except OSError as e:
        raise InputError(path, f"cannot write the image ({e.strerror or e})") from None


def read_image(path: Path) -> np.ndarray | None:
    """The image at ``path`` as BGR pixels, or None when it cannot be read or decoded."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
