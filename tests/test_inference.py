"""Inference: both backends give the same boxes; the road region, tiling and bad models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import PROJECT

from detector.config import load_config
from detector.detections import box_iou
from detector.errors import ConfigError, InputError
from detector.pipeline.inference import HazardDetector, RoadRegion, load_detector
from detector.pipeline.inference.backends import OnnxBackend, TorchBackend

CLASSES = ["pothole", "fallen_sign"]


@pytest.fixture(scope="module")
def road_image() -> np.ndarray:
    rng = np.random.default_rng(1)
    image = rng.integers(60, 120, (720, 1280, 3), dtype=np.uint8)
    cv2.ellipse(image, (640, 600), (80, 30), 0, 0, 360, (20, 20, 20), -1)
    return image


def _detector(backend, conf, **kw) -> HazardDetector:
    return HazardDetector(backend, CLASSES, conf=conf, iou=0.5, imgsz=640, **kw)


def test_backends_give_the_same_raw_output_and_boxes(tiny_model: Path, road_image: np.ndarray):
    onnx = OnnxBackend(tiny_model.with_suffix(".onnx"))
    torch_ = TorchBackend(tiny_model.with_suffix(".pt"), device="cpu")
    assert onnx.names == torch_.names == CLASSES and onnx.dynamic
    batch, _ = _detector(onnx, 0.5)._prepare(road_image)
    raw_onnx, raw_torch = onnx.forward(batch), torch_.forward(batch)
    assert raw_onnx.shape == raw_torch.shape == (1, 6, raw_onnx.shape[2])
    np.testing.assert_allclose(raw_onnx, raw_torch, atol=2e-3, rtol=1e-3)
    # An untrained head scores low: put the threshold where a few hundred anchors pass.
    conf = float(np.quantile(raw_onnx[0, 4:].max(0), 0.97))
    a, b = _detector(onnx, conf)(road_image), _detector(torch_, conf)(road_image)
    assert len(a) >= 3
    assert abs(len(a) - len(b)) <= 2
    n = min(len(a), len(b), 20)
    np.testing.assert_allclose(a.xyxy[:n], b.xyxy[:n], atol=1.0)
    np.testing.assert_allclose(a.confidence[:n], b.confidence[:n], atol=2e-3)


def test_road_region_and_tiles_keep_boxes_in_the_region(tiny_model: Path, road_image: np.ndarray):
    onnx = OnnxBackend(tiny_model.with_suffix(".onnx"))
    raw = onnx.forward(_detector(onnx, 0.5)._prepare(road_image)[0])
    conf = float(np.quantile(raw[0, 4:].max(0), 0.9))
    for tiles in (1, 2, 3):
        found = _detector(onnx, conf, roi=RoadRegion(top=0.5), tiles=tiles)(road_image)
        assert len(found) > 0
        # Boxes come back in frame pixels, inside the region (plus what a box may overhang).
        assert found.xyxy[:, 3].min() >= 360 - 1
        assert found.xyxy[:, [0, 2]].min() >= 0 and found.xyxy[:, [0, 2]].max() <= 1280
        assert np.all(np.diff(found.confidence) <= 0)


def test_mirror_pass_keeps_every_plain_box_and_is_symmetric(tiny_model: Path, road_image: np.ndarray):
    onnx = OnnxBackend(tiny_model.with_suffix(".onnx"))
    raw = onnx.forward(_detector(onnx, 0.5)._prepare(road_image)[0])
    conf = float(np.quantile(raw[0, 4:].max(0), 0.97))
    plain = _detector(onnx, conf)(road_image)
    both_ways = _detector(onnx, conf, flip=True)
    found = both_ways(road_image)
    assert len(plain) >= 3 and len(found) >= len(plain) // 2
    # A plain box is kept, or suppressed by a box as sure of the same thing from the mirrored pass.
    for box, score, cls in zip(plain.xyxy, plain.confidence, plain.class_id, strict=True):
        same = (found.class_id == cls) & (box_iou(box, found.xyxy) >= both_ways.iou - 1e-6)
        assert same.any() and found.confidence[same].max() >= score - 1e-6
    # The frame and its mirror image are seen by the same two passes: the same boxes, mirrored.
    mirrored = both_ways(np.ascontiguousarray(road_image[:, ::-1]))
    assert len(mirrored) == len(found)
    width = road_image.shape[1]
    back = np.column_stack(
        [width - mirrored.xyxy[:, 2], mirrored.xyxy[:, 1], width - mirrored.xyxy[:, 0], mirrored.xyxy[:, 3]]
    )
    order_a, order_b = np.lexsort(found.xyxy.T), np.lexsort(back.T)
    np.testing.assert_allclose(found.xyxy[order_a], back[order_b], atol=1.0)
    np.testing.assert_allclose(found.confidence[order_a], mirrored.confidence[order_b], atol=1e-3)


def test_any_frame_size_works(tiny_model: Path):
    onnx = OnnxBackend(tiny_model.with_suffix(".onnx"))
    for shape in [(480, 848, 3), (640, 1024, 3), (1080, 1920, 3), (100, 333, 3)]:
        batch, _tiles = _detector(onnx, 0.5)._prepare(np.zeros(shape, np.uint8))
        assert batch.shape[2] % 32 == 0 and batch.shape[3] % 32 == 0
        assert max(batch.shape[2:]) == 640
        onnx.forward(batch)


def test_class_names_must_match_the_config(tiny_model: Path):
    with pytest.raises(InputError) as err:
        HazardDetector(OnnxBackend(tiny_model.with_suffix(".onnx")), ["pothole", "crack"], source="tiny.onnx")
    assert "['pothole', 'fallen_sign']" in str(err.value) and "['pothole', 'crack']" in str(err.value)


class _FixedBackend:
    """A backend that returns one fixed raw output (4 box rows, then one score row per class, per anchor)."""

    stride, dynamic, input_size = 32, True, None

    def __init__(self, names: list[str], raw: np.ndarray) -> None:
        self.names, self.raw = names, raw

    def forward(self, batch: np.ndarray) -> np.ndarray:
        return np.repeat(self.raw[None], len(batch), axis=0)


@pytest.mark.parametrize("extra", ["crack", "traffic_sign"])
def test_a_box_a_competing_class_wins_is_no_hazard(extra: str):
    # anchors: a pothole, a crack (or a standing sign) that also looks a little like a pothole, a fallen sign; far
    # apart, 640x640 input. A class after detect.classes (a sign model's traffic_sign) is never a hazard by itself.
    boxes = [[100, 500, 540], [100, 100, 100], [40, 40, 40], [40, 40, 40]]
    scores = [[0.9, 0.5, 0.05], [0.01, 0.01, 0.8], [0.02, 0.9, 0.01]]  # pothole, fallen_sign, the extra class
    backend = _FixedBackend(["pothole", "fallen_sign", extra], np.array(boxes + scores, np.float32))
    found = HazardDetector(backend, CLASSES, conf=0.3, imgsz=640)(np.zeros((640, 640, 3), np.uint8))
    assert sorted(found.class_id.tolist()) == [0, 1]
    assert sorted(found.xyxy[:, 0].round().tolist()) == [80.0, 520.0]  # the crack at x=500 is not reported


def test_competing_classes_come_after_the_configured_ones():
    backend = _FixedBackend(["crack", "pothole", "fallen_sign"], np.zeros((7, 1), np.float32))
    with pytest.raises(InputError, match="do not match"):
        HazardDetector(backend, CLASSES)


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_missing_and_corrupt_models_name_the_path(tmp_path: Path, backend: str):
    cfg = load_config(overrides=[f"detect.backend={backend}", f"detect.model={tmp_path / 'none'}"])
    with pytest.raises(InputError, match="model file not found") as err:
        load_detector(cfg.detect)
    assert str(tmp_path / "none") in str(err.value)
    bad = tmp_path / ("bad.onnx" if backend == "onnx" else "bad.pt")
    bad.write_bytes(np.random.default_rng(0).bytes(50_000))
    cfg = load_config(overrides=[f"detect.backend={backend}", f"detect.model={bad}"])
    with pytest.raises(InputError, match="not a valid") as err:
        load_detector(cfg.detect)
    assert str(bad) in str(err.value)


def test_detect_command_writes_labels_and_annotations(tiny_model: Path, tmp_path: Path, road_image: np.ndarray):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    cv2.imwrite(str(photos / "a.jpg"), road_image)
    cv2.imwrite(str(photos / "sub" / "b.png"), road_image[:400, :600])
    (photos / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "detector",
            "detect",
            str(photos),
            "--out",
            str(out),
            "-q",
            "--model",
            str(tiny_model.with_suffix(".onnx")),
            "--conf",
            "0.0001",
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT,
    )
    assert result.returncode == 0, result.stderr
    assert "broken.jpg: not a readable image; skipped" in result.stderr
    assert "2 images, 2 with hazards" in result.stdout and "1 unreadable" in result.stdout
    rows = np.loadtxt(out / "a.txt", ndmin=2)
    assert rows.shape[1] == 6 and len(rows) > 0
    assert set(np.unique(rows[:, 0])) <= {0, 1}
    assert np.all((rows[:, 1:5] >= 0) & (rows[:, 1:5] <= 1)) and np.all(rows[:, 5] >= 0.0001)
    assert cv2.imread(str(out / "b.jpg")).shape == (400, 600, 3)


def test_road_region_starts_above_each_cameras_horizon(tiny_model: Path, tmp_path: Path):
    from detector.pipeline.inference import detect_section

    cfg = load_config()
    assert cfg.detect.roi.top == "horizon"
    sim = detect_section(cfg).roi.top  # pitched 8 degrees down: horizon at 0.375 of the height
    assert round(sim * 720) == 216 and round(sim * 1080) == 324  # the crop measured as "top 0.3"
    level = tmp_path / "level.yaml"
    level.write_text("name: level\nwidth: 1280\nheight: 720\nhfov_deg: 90\nheight_m: 2.0\npitch_deg: 0.0\n")
    top = detect_section(load_config(overrides=[f"drive.camera={level}"])).roi.top
    assert top * 720 == pytest.approx(360 - 640 * np.tan(np.radians(4.8)), abs=1.0)  # level: from above mid-frame
    fixed = detect_section(load_config(overrides=["detect.roi.top=0.45"])).roi.top
    assert fixed == 0.45
    skyward = tmp_path / "skyward.yaml"
    skyward.write_text("name: up\nwidth: 1280\nheight: 720\nhfov_deg: 90\nheight_m: 2.0\npitch_deg: -60.0\n")
    with pytest.raises(InputError, match="horizon is below") as err:
        detect_section(load_config(overrides=[f"drive.camera={skyward}"]))
    assert str(skyward) in str(err.value)
    with pytest.raises(ConfigError, match="detect_section"):  # unresolved: a clear error, not a crash on a string
        load_detector(cfg.detect.model_copy(update={"model": str(tiny_model.with_suffix(".onnx"))}))
