"""Camera intrinsics from views of a printed checkerboard: OpenCV's calibration, pinhole or fisheye lens model.

Views come from photos or from a short video of the board moved about in front of the camera (every few frames
are tried). The board is ``columns`` x ``rows`` inner corners of squares ``square_m`` wide; what matters for the
focal length and the lens is that the views cover the frame, edges and corners included, at several tilts.

>>> Board.parse("9x6", 25.0)
Board(columns=9, rows=6, square_m=0.025)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from detector.errors import InputError

MIN_VIEWS = 8
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".m4v"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
MAX_VIDEO_VIEWS = 80  # frames tried from a board video, evenly spread
FISHEYE_GAIN = 0.6  # "auto" takes the fisheye model when its reprojection error is under this share of the pinhole's


@dataclass(frozen=True)
class Board:
    columns: int  # inner corners across
    rows: int  # inner corners down
    square_m: float

    @classmethod
    def parse(cls, size: str, square_mm: float) -> Board:
        try:
            columns, rows = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise InputError(None, f"--board-size {size!r}: expected inner corners as COLUMNSxROWS, e.g. 9x6") from None
        if columns < 3 or rows < 3 or square_mm <= 0:
            raise InputError(None, "the board needs at least 3x3 inner corners and a positive square size")
        return cls(columns, rows, square_mm / 1000.0)

    def object_points(self) -> np.ndarray:
        """The inner corners on the board's plane (metres, z = 0), row by row."""
        grid = np.mgrid[0 : self.columns, 0 : self.rows].T.reshape(-1, 2)
        return np.column_stack([grid * self.square_m, np.zeros(len(grid))]).astype(np.float32)


@dataclass(frozen=True)
class Intrinsics:
    """What the board gives: the lens and where its axis meets the picture."""

    width: int
    height: int
    focal_px: float
    principal_px: tuple[float, float]
    lens: str  # pinhole | fisheye
    distortion: tuple[float, ...]
    rms_px: float  # reprojection error over every corner of every view
    views: int  # views the board was found in
    tried: int  # views looked at


def board_images(paths: list[Path]) -> Iterator[tuple[str, np.ndarray]]:
    """(name, BGR image) for each photo, each photo in a folder, and frames spread over each video."""
    for path in paths:
        if path.is_dir():
            yield from board_images(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            yield from _video_frames(path)
        elif path.is_file():
            image = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
            if image is None:
                raise InputError(path, "not an image OpenCV can read")
            yield path.name, image
        else:
            raise InputError(path, "board photo or video not found")


def _video_frames(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    from detector.pipeline.sources.video import decode_frames, probe_video

    info = probe_video(path)
    step = max(1, info.frame_count // MAX_VIDEO_VIEWS)
    for frame in decode_frames(path):
        if frame.index % step == 0:
            yield f"{path.name}@{frame.time:.1f}s", frame.bgr()


def find_corners(image: np.ndarray, board: Board) -> np.ndarray | None:
    """The board's inner corners (N, 1, 2) in ``image``, sub-pixel, or None where the board is not found whole."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    found, corners = cv2.findChessboardCornersSB(grey, (board.columns, board.rows), flags=cv2.CALIB_CB_EXHAUSTIVE)
    return corners.astype(np.float32).reshape(-1, 1, 2) if found else None


def _pinhole_once(objects, images, size, focal0: float):
    w, h = size
    k0 = np.array([[focal0, 0, (w - 1) / 2], [0, focal0, (h - 1) / 2], [0, 0, 1]], float)
    flags = cv2.CALIB_USE_INTRINSIC_GUESS | cv2.CALIB_FIX_ASPECT_RATIO
    _, k, dist, rvecs, tvecs = cv2.calibrateCamera(objects, images, size, k0, np.zeros(5), flags=flags)
    return _view_errors(objects, images, rvecs, tvecs, lambda o, r, t: cv2.projectPoints(o, r, t, k, dist)[0]), k, dist


def _fisheye_once(objects, images, size, focal0: float):
    w, h = size
    k0 = np.array([[focal0, 0, (w - 1) / 2], [0, focal0, (h - 1) / 2], [0, 0, 1]], float)
    flags = cv2.fisheye.CALIB_RECOMPUTE_EXTRINSIC | cv2.fisheye.CALIB_FIX_SKEW | cv2.fisheye.CALIB_USE_INTRINSIC_GUESS
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-9)
    obj = [o.reshape(-1, 1, 3).astype(np.float64) for o in objects]
    img = [i.reshape(-1, 1, 2).astype(np.float64) for i in images]
    _, k, dist, rvecs, tvecs = cv2.fisheye.calibrate(obj, img, size, k0, np.zeros(4), flags=flags, criteria=criteria)
    project = lambda o, r, t: cv2.fisheye.projectPoints(o.reshape(-1, 1, 3).astype(np.float64), r, t, k, dist)[0]  # noqa: E731
    return _view_errors(objects, images, rvecs, tvecs, project), k, dist


def _view_errors(objects, images, rvecs, tvecs, project) -> np.ndarray:
    """Each view's RMS reprojection error, pixels."""
    return np.array([
        np.sqrt(np.mean(np.sum((project(o, r, t).reshape(-1, 2) - i.reshape(-1, 2)) ** 2, axis=-1)))
        for o, i, r, t in zip(objects, images, rvecs, tvecs, strict=True)
    ])  # fmt: skip


def _fit(fit_once, objects, images, size) -> tuple[float, np.ndarray, np.ndarray]:
    """The best of several starting focal lengths (OpenCV's calibrations find a false minimum from a poor start),
    then fitted again without the views far worse than the median (a pose solved wrongly, a misread board).
    Returns the RMS reprojection error over the views kept, K and the distortion coefficients."""
    best = None
    for focal0 in np.array([0.2, 0.3, 0.45, 0.7, 1.0]) * size[0]:
        try:
            errors, k, dist = fit_once(objects, images, size, float(focal0))
        except cv2.error:
            continue
        if best is None or np.median(errors) < np.median(best[0]):
            best = (errors, k, dist)
    if best is None:
        raise cv2.error("the calibration did not converge")
    errors, k, dist = best
    good = errors <= max(3 * np.median(errors), 1.0)
    if good.sum() >= MIN_VIEWS and not good.all():
        kept = [i for i, g in enumerate(good) if g]
        with contextlib.suppress(cv2.error):  # the first fit stands
            errors, k, dist = fit_once([objects[i] for i in kept], [images[i] for i in kept], size, float(k[0, 0]))
    return float(np.sqrt(np.mean(errors**2))), k, np.asarray(dist).ravel()


def calibrate_intrinsics(paths: list[Path], board: Board, lens: str = "auto", progress: bool = True) -> Intrinsics:
    """Find the board in every view and calibrate; ``lens`` pinhole, fisheye, or auto (the fisheye model when it
    fits clearly better, as for lenses past about 120 degrees)."""
    objects, images, size, tried = [], [], None, 0
    source = ", ".join(str(p) for p in paths)
    for name, image in tqdm(board_images(paths), desc="finding the board", unit="view", disable=not progress):
        tried += 1
        h, w = image.shape[:2]
        if size is None:
            size = (w, h)
        elif size != (w, h):
            raise InputError(name, f"is {w}x{h}; the first view was {size[0]}x{size[1]} (one camera, one size)")
        corners = find_corners(image, board)
        if corners is not None:
            objects.append(board.object_points())
            images.append(corners)
    if len(images) < MIN_VIEWS:
        raise InputError(
            source,
            f"the {board.columns}x{board.rows} board was found in {len(images)} of {tried} views; at least "
            f"{MIN_VIEWS} are needed (check --board-size: inner corners, not squares)",
        )
    fits = {}
    if lens in ("auto", "pinhole"):
        fits["pinhole"] = _fit(_pinhole_once, objects, images, size)
    if lens in ("auto", "fisheye"):
        try:
            fits["fisheye"] = _fit(_fisheye_once, objects, images, size)
        except cv2.error:
            if lens == "fisheye":
                raise InputError(source, "the fisheye calibration did not converge on these views") from None
    chosen = "pinhole" if "pinhole" in fits else "fisheye"
    if "fisheye" in fits and (chosen == "fisheye" or fits["fisheye"][0] < FISHEYE_GAIN * fits["pinhole"][0]):
        chosen = "fisheye"  # only when it fits clearly better: it has as many coefficients, and can fit noise
    rms, k, dist = fits[chosen]
    focal = float((k[0, 0] + k[1, 1]) / 2)
    return Intrinsics(
        size[0], size[1], focal, (float(k[0, 2]), float(k[1, 2])), chosen, tuple(float(d) for d in dist), rms,
        len(images), tried,
    )  # fmt: skip
