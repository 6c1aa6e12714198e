"""Shared fixtures: the real data beside the project, and small synthetic drives."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import av
import numpy as np
import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")

PROJECT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT.parent / "shared" / "data"
T = TypeVar("T")


def wait_for(condition: Callable[[], T], what: str, timeout_s: float = 60.0, every_s: float = 0.05) -> T:
    """Ask ``condition`` every ``every_s`` until it gives something true, and return that; fail naming ``what``
    after ``timeout_s`` (generous: the machine is shared). The tests wait on what they can observe (a row, a file,
    a port), never for a guessed time."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout_s:g} s waiting for {what}"
        time.sleep(every_s)
    return value


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """An untrained two-class yolov5nu saved as .pt and exported to a dynamic-shape .onnx."""
    import torch
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    model = DetectionModel("yolov5nu.yaml", nc=2, verbose=False)
    with torch.no_grad():  # fresh heads score every anchor alike: perturb so that scores and boxes vary
        for param in model.parameters():
            param.add_(0.1 * torch.randn_like(param))
    model.names = dict(enumerate(["pothole", "fallen_sign"]))
    torch.save({"model": model, "train_args": {}}, folder / "tiny.pt")
    YOLO(str(folder / "tiny.pt")).export(format="onnx", dynamic=True, simplify=True, imgsz=640, verbose=False)
    return folder / "tiny"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that takes ``shared_data``, directly or through another fixture, is marked ``shared_data`` even where
    its decorator was forgotten, so that ``-m "not shared_data"`` leaves out every test that needs the real data."""
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("shared_data"):
            item.add_marker(pytest.mark.shared_data)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests that need it skip on a fresh clone without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (it sits beside the project on the team's machines)")
    return SHARED_DATA


def write_video(
    path: Path,
    duration_s: float,
    fps: int = 30,
    size: tuple[int, int] = (320, 180),
    creation_time: datetime | None = None,
    gop: int | None = None,
    blur_every: int = 0,
) -> Path:
    """Write an H.264 test video of a scrolling checkerboard; every ``blur_every``-th frame is blurred."""
    import cv2

    width, height = size
    with av.open(str(path), "w") as out:
        if creation_time is not None:
            out.metadata["creation_time"] = creation_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.gop_size = gop or fps
        stream.options = {"preset": "ultrafast", "crf": "30"}
        stream.codec_context.time_base = Fraction(1, fps)
        yy, xx = np.mgrid[0:height, 0:width]
        for i in range(round(duration_s * fps)):
            board = (((xx + 3 * i) // 16 + yy // 16) % 2 * 200 + 25).astype(np.uint8)
            image = np.dstack([board, board, board])
            if blur_every and i % blur_every:
                image = cv2.GaussianBlur(image, (15, 15), 5)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_csv_track(path: Path, t0: float, speeds: list[float], lat0: float = 31.25, lon0: float = 34.79) -> Path:
    """A 1 Hz CSV track heading due north at the given speed per second (m/s)."""
    lines = ["time,lat,lon,speed,heading"]
    north = 0.0
    for i, v in enumerate([*speeds, speeds[-1]]):
        lat = lat0 + north / 111_000.0
        lines.append(f"{t0 + i:.3f},{lat:.8f},{lon0:.8f},{v:.2f},0.0")
        north += v
    path.write_text("\n".join(lines) + "\n")
    return path


def clip_video(source: Path, dest: Path, seconds: float) -> Path:
    """The first ``seconds`` of a video, remuxed without re-encoding, with its container's recording time."""
    with av.open(str(source)) as src, av.open(str(dest), "w") as out:
        out.metadata.update(src.metadata)
        stream = src.streams.video[0]
        copy = out.add_stream_from_template(stream)
        for packet in src.demux(stream):
            if packet.dts is None:
                continue  # the demuxer's end-of-stream marker
            if packet.pts * stream.time_base > seconds:
                break
            packet.stream = copy
            out.mux(packet)
    return dest


@pytest.fixture(scope="session")
def sample_clip(tmp_path_factory) -> Path:
    """The first 6 s of the sample drive (two hazards the shipped model confirms), its GPX track and camera
    profile beside it."""
    folder = tmp_path_factory.mktemp("clip")
    sample = PROJECT / "sample_footage"
    (folder / "clip.gpx").write_bytes((sample / "drive.gpx").read_bytes())
    (folder / "profile.yaml").write_bytes((sample / "profile.yaml").read_bytes())
    return clip_video(sample / "drive.mp4", folder / "clip.mp4", 6.0)


@pytest.fixture(scope="session")
def postgres_cluster():
    """A throwaway PostgreSQL + PostGIS cluster on loopback for the whole session (tests/postgres_cluster.py);
    tests that need it skip, saying why, where PostgreSQL or PostGIS is not installed."""
    from postgres_cluster import ClusterUnavailable, throwaway_cluster

    try:
        cluster = throwaway_cluster()
        running = cluster.__enter__()
    except ClusterUnavailable as e:
        pytest.skip(str(e))
    try:
        yield running
    finally:
        cluster.__exit__(None, None, None)


@pytest.fixture
def postgres_url(postgres_cluster) -> str:
    """A fresh, empty PostGIS database of the session's cluster: its store address (no password in it)."""
    return postgres_cluster.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_address(request, tmp_path: Path):
    """The store of a test that runs on both backends: an SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "h.db"
    return request.getfixturevalue("postgres_url")
