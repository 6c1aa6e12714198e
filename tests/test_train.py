"""Training side: splits, label cleaning, sign composites, the COCO start, and a tiny end-to-end training."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from detector.config import TRAINING, simulator_settings
from detector.config.training import CompositeConfig, DataConfig, SimulatorFramesConfig, SourceSpec, TrainingConfig
from detector.errors import ConfigError, InputError
from detector.train.composite import (
    Background,
    SignPose,
    composite,
    load_sign,
    paste_sign,
    road_region,
)
from detector.train.dataset import (
    build_dataset,
    dnit_segment,
    load_source,
    read_boxes,
    split_groups,
)
from detector.train.trainer import MotionBlur, _callbacks, should_validate

os.environ.setdefault("YOLO_OFFLINE", "1")

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data not found at {DATA}")
DATA_CFG = {
    "root": str(DATA),
    "work_dir": "unused",
    "sources": {
        "rdd2022-india": {"path": "potholes/rdd2022-india", "split": "groups"},
        "dnit": {"path": "potholes/dnit", "split": "segments"},
        "chitholian": {"path": "potholes/chitholian", "split": "folders"},
    },
}


def _recipe(**values: Any) -> TrainingConfig:
    """configs/train.yaml with dotted keys set (``data__holdout`` is ``data.holdout``)."""
    return TRAINING.updated(TRAINING.load(), {k.replace("__", "."): v for k, v in values.items()})


def _data(**values: Any) -> DataConfig:
    return _recipe(data={**DATA_CFG, **values}).data


def _composite(**values: Any) -> CompositeConfig:
    return _recipe(**{f"composite__{k}": v for k, v in values.items()}).composite


def _simulator(**values: Any) -> SimulatorFramesConfig:
    return _recipe(**{f"simulator__{k}": v for k, v in values.items()}).simulator


# --- splits -----------------------------------------------------------------------------------------------------


def test_dnit_segment_is_the_fourth_field_even_with_a_run_suffix() -> None:
    assert dnit_segment("1007607_RS_386_386RS289112_28960") == "386RS289112"
    assert dnit_segment("1080089_DF_010_010BDF0030_1_03336") == "010BDF0030"
    with pytest.raises(ValueError, match="not <frame>"):
        dnit_segment("img-415")


def test_split_groups_takes_whole_groups_near_the_target_share() -> None:
    groups = {f"im{i}": f"g{i // 10}" for i in range(200)}  # 20 groups of 10
    val = split_groups(groups, 0.2, seed=3)
    assert len(val) == 4  # 40 of 200 images
    assert split_groups(groups, 0.2, seed=3) == val  # deterministic
    assert split_groups(groups, 0.2, seed=4) != val


def test_split_groups_skips_a_group_larger_than_the_target() -> None:
    groups = {f"big{i}": "big" for i in range(60)} | {f"s{i}": f"s{i // 5}" for i in range(40)}
    val = split_groups(groups, 0.2, seed=0)
    assert "big" not in val
    assert sum(groups[k] in val for k in groups) == 20


@pytest.mark.shared_data
@needs_data
@pytest.mark.parametrize(("source", "n_images"), [("rdd2022-india", 1405), ("dnit", 546)])
def test_real_split_never_puts_one_road_in_two_splits(source: str, n_images: int) -> None:
    cfg = _data()
    samples = load_source(source, cfg.sources[source], DATA, cfg, seed=0)
    assert len(samples) == n_images
    splits_of: dict[str, set[str]] = {}
    for s in samples:
        splits_of.setdefault(s.group, set()).add(s.split)
    assert all(len(splits) == 1 for splits in splits_of.values())
    val = sum(s.split == "val" for s in samples) / len(samples)
    assert 0.15 <= val <= 0.25
    if source == "dnit":
        assert all(s.group == dnit_segment(Path(s.name).stem) for s in samples)


# --- labels -----------------------------------------------------------------------------------------------------


def test_read_boxes_drops_degenerate_and_clips(tmp_path: Path) -> None:
    label = tmp_path / "a.txt"
    label.write_text("0 0.5 0.5 0.2 0.1\n0 0.68 0.545 0 0.0033\n0 0.98 0.5 0.1 0.1\n")
    boxes = read_boxes(label, 200, 100, min_px=2)
    np.testing.assert_allclose(boxes, [[80, 45, 120, 55], [186, 45, 200, 55]])
    assert read_boxes(tmp_path / "missing.txt", 200, 100, 2).shape == (0, 4)


@pytest.mark.shared_data
@needs_data
def test_chitholian_img415_zero_width_box_is_dropped() -> None:
    folder = DATA / "potholes" / "chitholian" / "test"
    label = next((folder / "labels").glob("img-415_*.txt"))
    assert len(label.read_text().split("\n")) >= 3  # three boxes in the file, one of them zero-width
    image = cv2.imread(str(folder / "images" / f"{label.stem}.jpg"))
    boxes = read_boxes(label, image.shape[1], image.shape[0], min_px=2)
    assert len(boxes) == 2
    assert (boxes[:, 2] - boxes[:, 0] >= 2).all()


# --- composites -------------------------------------------------------------------------------------------------


def _disc_sign(size: int = 120) -> np.ndarray:
    """A red disc with a white centre on a transparent square (BGRA)."""
    sign = np.zeros((size, size, 4), np.uint8)
    cv2.circle(sign, (size // 2, size // 2), size // 2 - 2, (0, 0, 220, 255), -1, cv2.LINE_AA)
    cv2.circle(sign, (size // 2, size // 2), size // 3, (255, 255, 255, 255), -1, cv2.LINE_AA)
    return sign


def _changed_bbox(before: np.ndarray, after: np.ndarray, threshold: int = 25) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(np.abs(after.astype(int) - before.astype(int)).max(axis=2) > threshold)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


@pytest.mark.parametrize(
    "pose",
    [
        SignPose("flat", 30.0, squash=0.4, yaw=1.0, keystone=0.2, pole=False, back=False),
        SignPose("knocked", 95.0, squash=0.85, yaw=0.8, keystone=0.05, pole=False, back=False),
        SignPose("leaning", -40.0, squash=1.0, yaw=0.9, keystone=0.0, pole=False, back=False),
    ],
)
def test_pasted_sign_box_matches_the_changed_pixels(pose: SignPose) -> None:
    cfg = _composite(occlude_p=0.0, blur_sigma=[0.8, 0.8])
    image = np.full((240, 320, 3), 114, np.uint8)
    before = image.copy()
    pasted = paste_sign(image, _disc_sign(), (160.0, 130.0), 90.0, pose, np.random.default_rng(0), cfg)
    assert pasted is not None
    changed = _changed_bbox(before, image)
    np.testing.assert_allclose(pasted.box, changed, atol=3)
    ys, xs = np.nonzero(pasted.plate)
    assert pasted.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    width, height = pasted.box[2] - pasted.box[0], pasted.box[3] - pasted.box[1]
    if pose.kind == "flat":
        assert height < 0.75 * width  # squashed onto the ground plane


def test_pole_is_drawn_but_left_out_of_the_box() -> None:
    cfg = _composite(occlude_p=0.0, blur_sigma=[0.5, 0.5])
    image = np.full((300, 300, 3), 114, np.uint8)
    before = image.copy()
    pose = SignPose("leaning", 0.0, squash=1.0, yaw=1.0, keystone=0.0, pole=True, back=False)
    pasted = paste_sign(image, _disc_sign(), (150.0, 90.0), 80.0, pose, np.random.default_rng(1), cfg)
    assert pasted is not None
    x0, y0, x1, y1 = _changed_bbox(before, image, threshold=10)
    assert y1 > pasted.box[3] + 40  # the pole reaches well below the plate
    np.testing.assert_allclose(pasted.box[:3], (x0, y0, x1), atol=3)
    assert pasted.cover.sum() > pasted.plate.sum()


def test_occluded_sign_box_covers_only_the_visible_plate() -> None:
    cfg = _composite(occlude_p=1.0, occlude_frac=[0.35, 0.35], blur_sigma=[0.5, 0.5])
    pose = SignPose("knocked", 80.0, squash=1.0, yaw=1.0, keystone=0.0, pole=False, back=False)
    image = np.full((240, 320, 3), 114, np.uint8)
    whole = paste_sign(
        image.copy(),
        _disc_sign(),
        (160.0, 120.0),
        100.0,
        pose,
        np.random.default_rng(2),
        _composite(occlude_p=0.0, blur_sigma=[0.5, 0.5]),
    )
    part = paste_sign(image, _disc_sign(), (160.0, 120.0), 100.0, pose, np.random.default_rng(2), cfg)
    assert whole is not None and part is not None
    assert 0.5 < part.plate.sum() / whole.plate.sum() < 0.8
    ys, xs = np.nonzero(part.plate)
    assert part.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_composite_keeps_potholes_and_drops_one_a_sign_hides() -> None:
    image = np.full((200, 300, 3), 100, np.uint8)
    road = road_region(image.shape[:2], band=[0.0, 1.0])
    road[:, :200] = False  # signs go on the right; the pothole on the left stays visible
    bg = Background(image, np.array([[20.0, 150.0, 60.0, 180.0]]), road)
    cfg = _composite(occlude_p=0.0, size_px=[30, 60])
    out, potholes, signs = composite(bg, [_disc_sign()], np.random.default_rng(0), cfg)
    np.testing.assert_allclose(potholes, [[20, 150, 60, 180]])
    assert len(signs) == 1 and signs[0, 0] > 150
    assert (out[:, :120] == 100).all()  # nothing drawn outside the sign

    hidden = Background(image, np.array([[240.0, 90.0, 250.0, 100.0]]), road_region(image.shape[:2], [0.0, 1.0]))
    cfg = _composite(occlude_p=0.0, size_px=[150, 150])
    hits = [len(composite(hidden, [_disc_sign()], np.random.default_rng(s), cfg, tries=1)[1]) for s in range(20)]
    assert 0 in hits and 1 in hits  # a pothole under a pasted sign loses its box, others keep theirs


def test_a_decoy_is_pasted_like_a_sign_and_left_unlabelled() -> None:
    image = np.random.default_rng(5).integers(70, 130, (240, 360, 3)).astype(np.uint8)  # road texture
    bg = Background(image, np.zeros((0, 4)), road_region(image.shape[:2], band=[0.0, 1.0]))
    cfg = _composite(occlude_p=0.0, pole_p=0.0, size_px=[50, 70])  # no pole: only the plate is drawn
    results = {
        p: composite(bg, [_disc_sign()], np.random.default_rng(3), cfg.model_copy(update={"decoy_p": p}))
        for p in (0.0, 1.0)
    }
    outside = {}
    for p, (out, potholes, signs) in results.items():
        assert len(signs) == 1 and len(potholes) == 0  # the decoy gets no label
        x0, y0, x1, y1 = (round(v) for v in signs[0])
        changed = (out != image).any(axis=2)
        changed[max(y0 - 8, 0) : y1 + 8, max(x0 - 8, 0) : x1 + 8] = False  # the sign and its blurred rim
        outside[p] = int(changed.sum())
    assert outside[0.0] == 0 and outside[1.0] > 500  # without decoys nothing else is drawn; with one, a plate's worth


def test_white_box_around_sign_artwork_is_made_transparent(tmp_path: Path) -> None:
    sign = np.full((60, 60, 4), 255, np.uint8)
    cv2.fillPoly(sign, [np.array([[30, 5], [55, 55], [5, 55]])], (0, 0, 200, 255))
    cv2.imwrite(str(tmp_path / "543.png"), sign)
    loaded = load_sign(tmp_path / "543.png")
    assert loaded[0, 0, 3] == 0 and loaded[2, 58, 3] == 0
    assert loaded[40, 30, 3] == 255


# --- pretrained start -------------------------------------------------------------------------------------------


@pytest.mark.shared_data
@needs_data
def test_legacy_yolov5n_fills_342_tensors_of_a_yolov5nu_model() -> None:
    from ultralytics import YOLO

    from detector.train.pretrained import legacy_state_dict, load_legacy_into

    model = YOLO("yolov5nu.yaml").model
    head_before = model.model[24].cv2[0][0].conv.weight.detach().clone()
    transfer = load_legacy_into(model, DATA / "weights" / "yolov5n.pt")
    assert transfer.copied == 342
    assert transfer.names[0] == "model.0.conv.weight" and transfer.names[-1].startswith("model.23.")
    legacy = legacy_state_dict(DATA / "weights" / "yolov5n.pt")
    state = model.state_dict()
    for name in ("model.0.conv.weight", "model.9.cv2.bn.running_var", "model.23.m.0.cv2.conv.weight"):
        assert state[name].shape == legacy[name].shape
        assert torch_equal(state[name], legacy[name])
    assert torch_equal(model.model[24].cv2[0][0].conv.weight, head_before)  # the Detect head stays new


@pytest.mark.slow
@pytest.mark.shared_data
@needs_data
def test_yolov8n_tflite_export_becomes_a_trainable_yolov8n_that_detects_as_the_export_does() -> None:
    pytest.importorskip("ai_edge_litert", reason="the privacy extra (ai-edge-litert) reads .tflite files")
    import torch
    from ai_edge_litert.interpreter import Interpreter
    from ultralytics import YOLO

    from detector.train.tflite_weights import load_tflite_into, network_input

    export = DATA / "weights" / "yolov8n_int8.tflite"
    images = sorted((DATA / "potholes" / "rdd2022-india" / "images").glob("*.jpg"))
    folded, unfolded = YOLO("yolov8n.yaml").model, YOLO("yolov8n.yaml").model
    assert load_tflite_into(folded, export) == 64
    assert load_tflite_into(unfolded, export, images[::100]) == 64
    bn = unfolded.model[2].cv1.bn  # calibrated statistics, not the identity's
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
    assert not torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean))

    interpreter = Interpreter(model_path=str(export))
    interpreter.allocate_tensors()
    confident = 0
    for path in images[5:8]:  # Delhi streets: trucks, buses, cars, people
        x = network_input(path)
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x.permute(1, 2, 0).numpy()[None])
        interpreter.invoke()
        ref = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
        with torch.no_grad():
            ours = unfolded.eval()(x[None])[0][0].numpy()
            before = folded.eval()(x[None])[0][0].numpy()
        np.testing.assert_allclose(ours, before, atol=2e-3)  # unfolding BatchNorm keeps the function
        keep = ref[4:].max(0) > 0.5
        confident += int(keep.sum())
        # The export quantizes activations on the fly: scores agree to a few hundredths, boxes to pixels.
        assert np.abs(ours[4:, keep] - ref[4:, keep]).max() < 0.1
        assert np.abs(ours[:4, keep] - ref[:4, keep] * 640).max() < 4.0
        assert (ours[4:, keep].argmax(0) == ref[4:, keep].argmax(0)).all()
    assert confident >= 20

    wrong = YOLO("yolov5nu.yaml").model  # another network: refused, and left as it was
    before = wrong.model[0].conv.weight.detach().clone()
    with pytest.raises(InputError, match="convolution"):
        load_tflite_into(wrong, export)
    assert torch.equal(wrong.model[0].conv.weight, before)


def test_a_file_that_is_not_tflite_is_refused_naming_it(tmp_path: Path) -> None:
    pytest.importorskip("ai_edge_litert", reason="the privacy extra (ai-edge-litert) reads .tflite files")
    from detector.train.tflite_weights import tflite_convolutions

    junk = tmp_path / "yolov8n.tflite"
    junk.write_bytes(b"not a flatbuffer at all" * 10)
    with pytest.raises(InputError, match=r"yolov8n\.tflite"):
        tflite_convolutions(junk)


def torch_equal(a: Any, b: Any) -> bool:
    return bool((a.float() == b.float()).all())


# --- training helpers -------------------------------------------------------------------------------------------


def test_validation_schedule() -> None:
    assert [e for e in range(1, 12) if should_validate(e, 3, 11)] == [3, 6, 9, 11]
    assert [e for e in range(1, 6) if should_validate(e, 0, 5)] == [5]


def test_freeze_schedule_unfreezes_the_backbone_after_its_epochs() -> None:
    from types import SimpleNamespace

    from torch import nn

    model = nn.Module()
    model.model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 1))
    model.head = nn.Module()
    model.head.dfl = nn.Conv2d(4, 1, 1)  # "head.dfl.weight", like Ultralytics' "model.24.dfl.conv.weight"
    for name, param in model.named_parameters():
        param.requires_grad = not name.startswith("model.0.") and "dfl" not in name
    trainer = SimpleNamespace(epoch=0, freeze_layer_names=["model.0.", ".dfl"], model=model)
    start = _callbacks(_recipe(train__freeze={"layers": 1, "epochs": 2}).train)["on_train_epoch_start"]
    for epoch in (0, 1):
        trainer.epoch = epoch
        start(trainer)
        assert not model.model[0].weight.requires_grad
    trainer.epoch = 2
    start(trainer)
    assert model.model[0].weight.requires_grad and model.model[0].bias.requires_grad
    assert not model.head.dfl.weight.requires_grad
    assert trainer.freeze_layer_names == [".dfl"]


def test_motion_blur_smears_along_one_direction_and_keeps_brightness() -> None:
    image = np.zeros((64, 64, 3), np.uint8)
    image[32, 32] = 255
    labels = MotionBlur(p=1.0, max_px=9, seed=0)({"img": image.copy()})
    out = labels["img"][..., 0].astype(float)
    assert out.max() < 255 and (out > 0).sum() >= 3
    assert abs(out.sum() - 255) < 30
    assert MotionBlur(p=0.0, max_px=9)({"img": image})["img"] is image


# --- a tiny dataset and training run ------------------------------------------------------------------------------


def _road(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    image = rng.integers(60, 140, (h, w, 3), dtype=np.uint8)
    return cv2.GaussianBlur(image, (5, 5), 1.5)


def _write(folder: Path, name: str, image: np.ndarray, boxes: list[tuple[float, float, float, float]]) -> None:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    h, w = image.shape[:2]
    for x0, y0, x1, y1 in boxes:
        cv2.ellipse(
            image,
            (int((x0 + x1) / 2), int((y0 + y1) / 2)),
            (int((x1 - x0) / 2), int((y1 - y0) / 2)),
            0,
            0,
            360,
            (30, 30, 30),
            -1,
        )
    cv2.imwrite(str(folder / "images" / f"{name}.jpg"), image)
    lines = [f"0 {(a + c) / 2 / w} {(b + d) / 2 / h} {(c - a) / w} {(d - b) / h}\n" for a, b, c, d in boxes]
    (folder / "labels" / f"{name}.txt").write_text("".join(lines))


@pytest.fixture()
def tiny_root(tmp_path: Path) -> Path:
    """A data root shaped like ../shared/data: three pothole sources and two sign templates, 96x64 images."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    rdd = root / "potholes" / "rdd"
    groups = ["image,group"]
    for i in range(10):
        _write(rdd, f"India_{i:06d}", _road(rng, 96, 96), [(30, 60, 50, 72)] if i % 5 else [])
        groups.append(f"India_{i:06d}.jpg,g{i // 2}")
    (rdd / "groups.csv").write_text("\n".join(groups) + "\n")
    dnit = root / "potholes" / "dnit"
    (dnit / "lane_masks").mkdir(parents=True)
    for i in range(6):
        name = f"{1000 + i}_RS_386_386RS{i // 2:06d}_{i:05d}"
        _write(dnit, name, _road(rng, 96, 64), [(40, 40, 56, 52)] if i % 3 else [])
        lane = np.zeros((64, 96), np.uint8)
        lane[:, 24:80] = 255
        cv2.imwrite(str(dnit / "lane_masks" / f"{name}.png"), lane)
    for sub, n in (("train", 4), ("valid", 2), ("test", 1)):
        for i in range(n):
            _write(root / "potholes" / "chit" / sub, f"img-{sub}{i}", _road(rng, 80, 80), [(20, 20, 60, 50)])
    signs = root / "signs"
    signs.mkdir()
    cv2.imwrite(str(signs / "disc.png"), _disc_sign(60))
    tri = np.zeros((60, 60, 4), np.uint8)
    cv2.fillPoly(tri, [np.array([[30, 4], [56, 56], [4, 56]])], (0, 0, 220, 255))
    cv2.imwrite(str(signs / "tri.png"), tri)
    return root


def _tiny_cfg(root: Path, out: Path, holdout: str | None = None, **values: Any) -> TrainingConfig:
    """The training recipe over the tiny data set, with no simulator frames; ``values`` as for :func:`_recipe`."""
    return _recipe(
        output=str(out),
        data={
            "root": str(root),
            "work_dir": str(out / "dataset"),
            "val_fraction": 0.2,
            "holdout": holdout,
            "sources": {
                "rdd2022-india": {"path": "potholes/rdd", "split": "groups"},
                "dnit": {"path": "potholes/dnit", "split": "segments", "outside_lane": "grey"},
                "chitholian": {"path": "potholes/chit", "split": "folders"},
            },
        },
        composite={"signs": "signs", "count": {"train": 3, "val": 2}, "size_px": [10, 24]},
        simulator__worlds={"train": [], "val": []},
        **values,
    )


def _lines(path: Path) -> list[str]:
    return path.read_text().split()


def test_build_dataset_layout_splits_and_masking(tiny_root: Path, tmp_path: Path) -> None:
    built = build_dataset(_tiny_cfg(tiny_root, tmp_path / "runs"), Path("/"))
    assert built.counts == {
        "test/chitholian": 1,
        "train/chitholian": 4,
        "train/composite": 3,
        "train/dnit": 4,
        "train/rdd2022-india": 8,
        "val/chitholian": 2,
        "val/composite": 2,
        "val/dnit": 2,
        "val/rdd2022-india": 2,
    }
    data = yaml.safe_load(built.data_yaml.read_text())
    assert data["names"] == {0: "pothole", 1: "fallen_sign"}
    train, val = set(_lines(Path(data["train"]))), set(_lines(Path(data["val"])))
    assert len(train) == 19 and len(val) == 8 and not train & val
    assert set(built.val_yamls) == {"chitholian", "chitholian-test", "composite", "dnit", "rdd2022-india"}
    rdd_val = _lines(Path(yaml.safe_load(built.val_yamls["rdd2022-india"].read_text())["val"]))
    assert len(rdd_val) == 2 and all("/val/rdd2022-india/" in p for p in rdd_val)

    rdd = sorted((built.root / "images" / "train" / "rdd2022-india").iterdir())
    assert all(p.is_symlink() and str(p.resolve()).startswith(str(tiny_root)) for p in rdd)
    negative = built.root / "labels" / "train" / "rdd2022-india" / "India_000000.txt"
    assert negative.exists() and negative.read_text() == ""
    dnit = next((built.root / "images" / "train" / "dnit").iterdir())
    assert not dnit.is_symlink()
    pixels = cv2.imread(str(dnit)).astype(int)
    assert np.abs(pixels[:, :20] - 114).max() <= 3  # outside the lane: letterbox grey
    assert pixels[:, 30:70].std() > 5  # inside: the road

    comp_labels = sorted((built.root / "labels" / "val" / "composite").glob("*.txt"))
    classes = [int(line.split()[0]) for p in comp_labels for line in p.read_text().splitlines()]
    assert classes.count(1) >= 2
    assert all(any(line.startswith("1 ") for line in p.read_text().splitlines()) for p in comp_labels)
    assert build_dataset(_tiny_cfg(tiny_root, tmp_path / "runs"), Path("/")).counts == built.counts  # reused


def test_build_refuses_to_replace_a_folder_it_did_not_build(tiny_root: Path, tmp_path: Path) -> None:
    cfg = _tiny_cfg(tiny_root, tmp_path / "runs")
    (tmp_path / "runs" / "dataset").mkdir(parents=True)
    (tmp_path / "runs" / "dataset" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="refusing"):
        build_dataset(cfg, Path("/"))
    assert (tmp_path / "runs" / "dataset" / "notes.txt").read_text() == "mine"


def test_holdout_build_keeps_a_source_out_of_training(tiny_root: Path, tmp_path: Path) -> None:
    built = build_dataset(_tiny_cfg(tiny_root, tmp_path / "runs", holdout="dnit"), Path("/"))
    assert built.root.name == "dataset-no-dnit"
    assert built.counts["val/dnit"] == 6 and "train/dnit" not in built.counts
    train = _lines(Path(yaml.safe_load(built.data_yaml.read_text())["train"]))
    assert not any("dnit" in Path(p).name for p in train)  # no dnit image, nor a composite on a dnit background


def test_repeat_lists_a_sources_training_images_more_often_without_rebuilding(tiny_root: Path, tmp_path: Path) -> None:
    cfg = _tiny_cfg(tiny_root, tmp_path / "runs")
    built = build_dataset(cfg, Path("/"))
    image = next((built.root / "images" / "train" / "composite").iterdir())
    written = image.stat().st_mtime_ns

    weighed = TRAINING.updated(cfg, {"data.repeat": {"rdd2022-india": 3, "composite": 2}})
    reindexed = build_dataset(weighed, Path("/"))
    assert reindexed.counts == built.counts  # every image once in the counts
    assert image.stat().st_mtime_ns == written  # the same images, not redrawn
    data = yaml.safe_load(reindexed.data_yaml.read_text())
    train = _lines(Path(data["train"]))
    assert len(train) == 19 + 2 * 8 + 1 * 3
    assert {train.count(p) for p in train if "/train/rdd2022-india/" in p} == {3}
    assert {train.count(p) for p in train if "/train/composite/" in p} == {2}
    assert {train.count(p) for p in train if "/train/dnit/" in p} == {1}
    assert len(_lines(Path(data["val"]))) == 8  # validation is never repeated

    assert len(_lines(Path(yaml.safe_load(build_dataset(cfg, Path("/")).data_yaml.read_text())["train"]))) == 19


@pytest.mark.parametrize("repeat", [{"mexico": 2}, {"dnit": 0}, {"dnit": 1.5}])
def test_repeat_of_an_unknown_source_or_not_a_whole_number_is_rejected(repeat: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"data\.repeat"):
        _data(repeat=repeat)


def test_packed_dataset_unpacks_to_the_same_splits_and_labels_elsewhere(tiny_root: Path, tmp_path: Path) -> None:
    import shutil

    from detector.train.pack import pack_dataset, unpack_dataset

    cfg = _tiny_cfg(tiny_root, tmp_path / "runs")
    built = build_dataset(cfg, Path("/"))
    labels = {p.relative_to(built.root): p.read_text() for p in (built.root / "labels").rglob("*.txt")}
    assert pack_dataset(built, tmp_path / "packed", max_side=48, progress=False) > 0
    with pytest.raises(InputError, match="not unpacked from a pack"):
        unpack_dataset(tmp_path / "packed", cfg, Path("/"))  # never replaces a build from the raw data
    shutil.rmtree(built.root)
    moved = tmp_path / "other-machine" / "packed"
    shutil.move(tmp_path / "packed", moved)

    unpacked = unpack_dataset(moved, cfg, Path("/"))
    assert unpacked.counts == built.counts
    assert build_dataset(cfg, Path("/")).counts == built.counts  # trains from the pack, no rebuild
    train = _lines(Path(yaml.safe_load(unpacked.data_yaml.read_text())["train"]))
    assert len(train) == 19 and all(p.startswith(str(moved)) and p.endswith(".avif") for p in train)
    assert all(max(cv2.imread(p).shape[:2]) <= 48 for p in train)
    assert {p.relative_to(moved): p.read_text() for p in (moved / "labels").rglob("*.txt")} == labels

    loso = unpack_dataset(moved, TRAINING.updated(cfg, {"data.holdout": "dnit"}), Path("/"))
    assert loso.root.name == "dataset-no-dnit"
    assert loso.counts["val/dnit"] == 6 and "train/dnit" not in loso.counts
    loso_train = _lines(Path(yaml.safe_load(loso.data_yaml.read_text())["train"]))
    assert not any("dnit" in Path(p).name for p in loso_train)  # nor a composite drawn on a dnit image
    assert len(loso_train) == 19 - 4 - sum("_dnit_" in Path(p).name for p in train)

    elsewhere = TRAINING.updated(cfg, {"data.work_dir": str(tmp_path / "other-machine" / "runs" / "dataset")})
    assert unpack_dataset(moved, elsewhere, Path("/")).counts == built.counts  # where it lives is not its content

    weighed = unpack_dataset(moved, TRAINING.updated(cfg, {"data.repeat": {"dnit": 2}}), Path("/"))
    assert len(_lines(Path(yaml.safe_load(weighed.data_yaml.read_text())["train"]))) == 19 + 4  # packed once
    with pytest.raises(InputError, match="unpack it again"):
        build_dataset(cfg, Path("/"))  # another weighting of an unpacked set comes from the pack's index

    changed = TRAINING.updated(cfg, {"composite.count": {"train": 4, "val": 2}})
    with pytest.raises(InputError, match="different data config"):
        unpack_dataset(moved, changed, Path("/"))


def test_unknown_holdout_is_rejected() -> None:
    with pytest.raises(ConfigError, match="not a source"):
        _data(holdout="mexico")
    assert SourceSpec(path="x", split="groups").outside_lane == "keep"


@pytest.mark.slow
def test_one_epoch_training_writes_best_pt_with_both_classes(tiny_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    import torch

    from detector.train.evaluate import evaluate, hazard_free
    from detector.train.trainer import train

    cfg = _tiny_cfg(
        tiny_root,
        tmp_path / "runs",
        name="tiny",
        model__pretrained=None,
        train={"freeze": {"layers": 10, "epochs": 0}, "val_every": 1},
        export__imgsz=64,
    )
    args = {"imgsz": 64, "epochs": 1, "batch": 4, "cache": False, "close_mosaic": 0}
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"args": args})})  # not merged over the recipe's
    best = train(cfg, progress=False)
    assert best == tmp_path / "runs" / "tiny" / "weights" / "best.pt"
    ckpt = torch.load(best, map_location="cpu", weights_only=False)
    assert list(ckpt["model"].names.values()) == ["pothole", "fallen_sign"]
    assert ckpt["epoch"] == -1  # finished
    assert best.with_suffix(".onnx").stat().st_size > 1_000_000
    rows = (best.parents[1] / "results.csv").read_text().splitlines()
    assert train(cfg, progress=False) == best  # a finished run only re-exports
    assert (best.parents[1] / "results.csv").read_text().splitlines() == rows

    data_yaml = tmp_path / "runs" / "dataset" / "data.yaml"
    clean = hazard_free(data_yaml)
    assert clean and all("/val/" in str(p) for p in clean)
    every = evaluate(best, data_yaml, conf=1e-6, imgsz=64)
    assert every["hazard_free"] == {"images": len(clean), "with_detection": len(clean), "fraction": 1.0, "conf": 1e-6}
    assert set(every["classes"]) == {"pothole", "fallen_sign"}
    assert every["classes"]["fallen_sign"]["images"] == 2  # the two validation composites
    assert all(0.0 <= v <= 1.0 for m in every["classes"].values() for k, v in m.items() if k in ("P", "R", "mAP50"))
    assert evaluate(best, data_yaml, conf=0.99, imgsz=64)["hazard_free"]["fraction"] == 0.0


SAMPLE_DRIVE = Path(__file__).resolve().parents[1] / "sample_footage"


def test_simulator_frames_are_picked_by_distance_along_the_true_track() -> None:
    from detector.geo import LocalFrame
    from detector.train.simframes import picked_frames

    index, utc = picked_frames(SAMPLE_DRIVE, spacing_m=4.0)
    rows = np.genfromtxt(SAMPLE_DRIVE / "trajectory.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
    local = LocalFrame(float(rows["lat"][0]), float(rows["lon"][0]))
    x, y = local.to_xy(rows["lat"][index], rows["lon"][index])
    gaps = np.hypot(np.diff(x), np.diff(y))
    assert 80 <= len(index) <= 95  # the sample drive covers about 356 m
    assert np.all(np.diff(index) > 0) and np.all(np.diff(utc) > 0)
    assert np.median(gaps) == pytest.approx(4.0, abs=0.3) and gaps.max() < 5.0  # none bunched at the stops


def test_frames_with_a_manhole_cover_in_view_are_added_metres_apart() -> None:
    import shapely

    from detector.camera import load_camera
    from detector.gis_layers import LABEL_FIELDS, FeatureLayer
    from detector.simulate.oracle import Oracle
    from detector.train.simframes import lookalike_frames, picked_frames, true_track

    def covers(**asked) -> np.ndarray:  # the sample drive is world 1, 60 s
        return lookalike_frames(SAMPLE_DRIVE, 1, _simulator(duration_s=60.0, roi_top=0.3, **asked))["cover"]

    picked = covers(cover_spacing_m=2.0, cover_range_m=(3.0, 20.0))
    odometer, utc = (true_track(SAMPLE_DRIVE)[k] for k in ("odometer", "utc"))
    assert 10 <= len(picked) < len(picked_frames(SAMPLE_DRIVE, 4.0)[0])
    assert np.diff(odometer[picked]).min() >= 2.0
    assert len(covers(cover_spacing_m=1.0)) > len(picked)
    assert lookalike_frames(SAMPLE_DRIVE, 1, _simulator(duration_s=60.0)) == {}  # off unless asked for
    assert set(lookalike_frames(SAMPLE_DRIVE, 1, _simulator(duration_s=60.0, cover_spacing_m=2.0))) == {"cover"}

    # Checked another way: the covers as the city's GIS layer, projected by the benchmarks' oracle as specks.
    layer = FeatureLayer.load(SAMPLE_DRIVE / "covers.gpkg", LABEL_FIELDS, "covers")
    x, y = shapely.get_coordinates(layer.tree.geometries).T
    lat, lon = layer.local.to_latlon(x, y)
    covers = [{"class": "pothole", "lat": a, "lon": b, "width": 0.01} for a, b in zip(lat, lon, strict=True)]
    oracle = Oracle(SAMPLE_DRIVE, covers, load_camera("configs/cameras/sim_dashcam.yaml"), layer.local, 3.0, 20.0)
    for i in picked:
        boxes, _ = oracle.boxes(float(utc[i]))
        assert np.any(boxes[:, 3] >= 0.3 * 720), f"frame {i}: no cover in the road region"
    unseen = [i for i in range(0, len(utc), 10) if not len(oracle.boxes(float(utc[i]))[0])]
    assert unseen and not set(unseen) & set(picked.tolist())  # the drive also passes stretches without covers


def test_simulator_labels_move_into_the_road_crop_and_drop_specks() -> None:
    from detector.train.simframes import label_rows
    from detector.yolo_labels import format_rows

    boxes = np.array([[100, 400, 160, 420], [500, 300, 504, 302], [600, 280, 700, 330]], np.float32)
    lines = format_rows(label_rows(boxes, np.array([0, 0, 1]), top=288, width=1280, height=432, min_px=(6, 3)))
    assert len(lines) == 2  # the 4x2 px speck is dropped
    cls, cx, cy, w, h = map(float, lines[0].split())
    assert (cls, cx * 1280, cy * 432, w * 1280, h * 432) == pytest.approx((0, 130, 122, 60, 20), abs=0.01)
    cls, cx, cy, w, h = map(float, lines[1].split())  # cut at the crop's top edge: 288..330 remains
    assert (cls, cy * 432, h * 432) == pytest.approx((1, 21, 42), abs=0.01)


def test_simulator_labels_skip_far_cut_off_and_edge_on_hazards() -> None:
    from detector.simulate.labels import HazardBox
    from detector.train.simframes import trainable

    cfg = _simulator(range_m=(2.0, 35.0), min_visible=0.5, min_fill=0.1, min_box_px=(8.0, 4.0))
    box = (600.0, 400.0, 660.0, 430.0)
    edge_on = (600.0, 300.0, 630.0, 303.0)  # a pothole 20 m ahead: 30 px wide, 3 px tall
    kept = {
        name: trainable(HazardBox(name, 1, shape, range_m, visible, fill), cfg)
        for name, shape, range_m, visible, fill in [
            ("plate", box, 9.0, 1.0, 0.8), ("thin ellipse", box, 9.0, 1.0, 0.15), ("sliver", box, 9.0, 1.0, 0.05),
            ("far", box, 38.0, 1.0, 0.8), ("cut off", box, 9.0, 0.3, 0.8), ("under the bonnet", box, 1.5, 1.0, 0.8),
            ("speck", edge_on, 20.0, 1.0, 0.6),
        ]
    }  # fmt: skip
    assert kept == {"plate": True, "thin ellipse": True, "sliver": False, "far": False, "cut off": False,
                    "under the bonnet": False, "speck": False}  # fmt: skip


def test_oracle_sees_the_sample_drives_hazards_where_the_truth_puts_them() -> None:
    from detector.config import load_config
    from detector.simulate.oracle import oracle_for

    oracle = oracle_for(SAMPLE_DRIVE / "drive.mp4", load_config(), max_range_m=20.0)
    t = oracle.t[::15]
    counts = [len(oracle.boxes(float(u))[0]) for u in t]
    assert sum(counts) > 0 and (oracle.views > 0).sum() >= 3
    for u in t:
        boxes, _ = oracle.boxes(float(u))
        assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
        assert np.all(boxes[:, 3] > oracle.camera.height * 0.4)  # on the road, below the horizon


@pytest.mark.slow
def test_build_dataset_adds_labelled_simulator_frames_split_by_world(tiny_root: Path, tmp_path: Path) -> None:
    simulator = {"worlds": {"train": [11], "val": [12]}, "duration_s": 6.0, "fps": 5, "spacing_m": 4.0}
    cfg = TRAINING.updated(_tiny_cfg(tiny_root, tmp_path / "runs"), {"simulator": simulator})
    built = build_dataset(cfg, Path("/"))
    assert built.counts["train/simulator"] >= 5 and built.counts["val/simulator"] >= 5
    train = _lines(Path(yaml.safe_load(built.data_yaml.read_text())["train"]))
    assert sum("/train/simulator/w11_" in p for p in train) == built.counts["train/simulator"]
    assert not any("/w12_" in p for p in train)  # a world is in one split only
    assert set(built.val_yamls) >= {"simulator"}
    image = next((built.root / "images" / "train" / "simulator").iterdir())
    assert cv2.imread(str(image)).shape == (504, 1280, 3)  # the road region below 0.3 of 720 rows
    labels = list((built.root / "labels" / "train" / "simulator").glob("*.txt"))
    assert len(labels) == built.counts["train/simulator"]
    for label in labels:
        for line in label.read_text().splitlines():
            cls, *box = line.split()
            assert cls in {"0", "1"} and all(0.0 <= float(v) <= 1.0 for v in box)


def test_frames_with_an_upright_sign_ahead_are_added_metres_apart() -> None:
    from detector.geo import LocalFrame
    from detector.simulate import drive_world
    from detector.train.simframes import lookalike_frames, true_track

    cfg = _simulator(duration_s=60.0, standing_sign_spacing_m=2.0, standing_sign_range_m=(5.0, 30.0))
    picked = lookalike_frames(SAMPLE_DRIVE, 1, cfg)["standing_sign"]
    origin = simulator_settings().origin
    track = true_track(SAMPLE_DRIVE, LocalFrame(origin.lat, origin.lon))
    assert len(picked) >= 10 and np.diff(track["odometer"][picked]).min() >= 2.0

    # Checked by plain geometry: in each picked frame an upright sign's foot is 5-30 m ahead, within the camera's
    # 90 degree field of view (a little wider low in the frame: the camera looks 8 degrees down); fallen signs do
    # not count.
    world = drive_world(1, 60.0)
    upright = np.array([(s.x, s.y) for s in world.signs if s.pose == "upright"])
    assert 0 < len(upright) < len(world.signs)
    for i in picked:
        dx, dy = upright[:, 0] - track["x"][i], upright[:, 1] - track["y"][i]
        off_heading = (np.degrees(np.arctan2(dx, dy)) - track["heading"][i] + 180.0) % 360.0 - 180.0
        ahead = np.hypot(dx, dy) * np.cos(np.radians(off_heading))
        near = (ahead >= 4.9) & (ahead <= 30.1) & (np.abs(off_heading) <= 47.0)
        assert near.any(), f"frame {i}: no upright sign ahead"


# --- stamped copies and hard negatives -----------------------------------------------------------------------------


def test_stamped_copies_keep_their_backgrounds_labels_and_stay_in_their_split(tiny_root: Path, tmp_path: Path) -> None:
    overlay = {"count": {"train": 6, "val": 3}, "backgrounds": {"rdd2022-india": 1, "composite": 1},
               "jpeg_quality": [90, 95]}  # fmt: skip
    cfg = _tiny_cfg(tiny_root, tmp_path / "runs", overlay=overlay)
    built = build_dataset(cfg, Path("/"))
    assert built.counts["train/overlay"] == 6 and built.counts["val/overlay"] == 3
    assert "overlay" in built.val_yamls  # measured on its own
    for split in ("train", "val"):
        for image in (built.root / "images" / split / "overlay").iterdir():
            _, source, stem = image.stem.split("_", 2)
            background = built.root / "images" / split / source / f"{stem}.jpg"
            assert background.exists()  # drawn on an image of the same split
            label = built.root / "labels" / split / "overlay" / f"{image.stem}.txt"
            assert label.read_text() == (built.root / "labels" / split / source / f"{stem}.txt").read_text()
            changed = np.abs(cv2.imread(str(image)).astype(int) - cv2.imread(str(background)).astype(int)).max(2) > 40
            assert 0.002 < changed.mean() < 0.6  # the stamp, not the whole picture


def test_hard_negatives_are_the_training_images_the_model_fires_on(tiny_root: Path, tmp_path: Path, tiny_model) -> None:
    from detector.config import load_config
    from detector.pipeline.inference import load_detector

    conf = 0.01  # the untrained model's scores are faint
    mining = {"model": str(tiny_model), "classes": ["fallen_sign"], "conf": conf, "sources": ["rdd2022-india", "dnit"]}
    cfg = _tiny_cfg(tiny_root, tmp_path / "runs", hard_negatives=mining, data__repeat={"hard_negative": 3})
    built = build_dataset(cfg, Path("/"))
    detect = load_config(overrides=[f"detect.model={tiny_model}"]).detect
    detector = load_detector(detect, use_roi=False, conf=conf)
    expected = set()
    for source in ("rdd2022-india", "dnit"):
        for image in (built.root / "images" / "train" / source).iterdir():
            if (detector(cv2.imread(str(image))).class_id == 1).any():
                expected.add(f"{source}_{image.name}")
    mined = {p.name for p in (built.root / "images" / "train" / "hard_negative").glob("*")}
    assert mined == expected and len(mined) > 0
    train = _lines(Path(yaml.safe_load(built.data_yaml.read_text())["train"]))
    assert {train.count(p) for p in train if "/hard_negative/" in p} == {3}
    assert not any("/val/" in p for p in train)
    retrained = TRAINING.updated(cfg, {"hard_negatives.conf": 0.5})
    assert build_dataset(retrained, Path("/")).counts.get("train/hard_negative", 0) < len(mined)  # mined again


def test_mining_with_a_missing_model_names_it(tiny_root: Path, tmp_path: Path) -> None:
    mining = {"model": str(tmp_path / "gone"), "classes": ["fallen_sign"], "conf": 0.1, "sources": []}
    cfg = _tiny_cfg(tiny_root, tmp_path / "runs", hard_negatives=mining)
    with pytest.raises(InputError, match=r"gone\.onnx: hard_negatives\.model: model not found"):
        build_dataset(cfg, Path("/"))


def test_a_pack_holds_each_image_once_and_a_validation_sample(tiny_root: Path, tmp_path: Path, monkeypatch) -> None:
    from detector.train.pack import pack_dataset, unpack_dataset

    overlay = {"count": {"train": 4, "val": 4}, "backgrounds": {"rdd2022-india": 1}, "jpeg_quality": [90, 95]}
    cfg = _tiny_cfg(tiny_root, tmp_path / "runs", overlay=overlay)
    built = build_dataset(cfg, Path("/"))
    (built.root / "images" / "train" / "hard_negative").mkdir()
    twice = next((built.root / "images" / "train" / "rdd2022-india").iterdir())
    (built.root / "images" / "train" / "hard_negative" / f"rdd2022-india_{twice.name}").symlink_to(twice.resolve())
    label = built.root / "labels" / "train" / "rdd2022-india" / f"{twice.stem}.txt"
    (built.root / "labels" / "train" / "hard_negative").mkdir()
    (built.root / "labels" / "train" / "hard_negative" / f"rdd2022-india_{twice.stem}.txt").write_text(
        label.read_text()
    )
    pack_dataset(built, tmp_path / "packed", max_side=48, val_images=1, progress=False)
    avif = list((tmp_path / "packed").rglob("*.avif"))
    train_images = sum(n for k, n in built.counts.items() if k.startswith("train/"))
    val_sets = sum(1 for k in built.counts if not k.startswith("train/"))
    assert len(avif) == train_images + val_sets  # the hard negative not again; one image per validation set

    import cv2 as opencv

    monkeypatch.setattr(opencv, "haveImageReader", lambda path: False)  # a machine whose OpenCV has no AVIF
    import shutil

    shutil.rmtree(tmp_path / "runs" / "dataset")
    unpacked = unpack_dataset(tmp_path / "packed", cfg, Path("/"))
    train = _lines(Path(yaml.safe_load(unpacked.data_yaml.read_text())["train"]))
    assert all(p.endswith(".jpg") and cv2.imread(p) is not None for p in train)
    assert len(train) == train_images + 1
    assert len(set(train)) == train_images  # the hard negative is its source's packed image, listed twice


# --- runs in several sittings, the compute record, RDD2022-style VOC sources --------------------------------------


@pytest.mark.slow
def test_a_run_stopped_after_one_epoch_resumes_to_the_second(tiny_root: Path, tmp_path: Path) -> None:
    import json

    import torch

    from detector.train.trainer import SessionEnd, resume_recipe, train

    cfg = _tiny_cfg(
        tiny_root,
        tmp_path / "runs",
        name="sittings",
        model__pretrained=None,
        train={"freeze": {"layers": 10, "epochs": 0}, "val_every": 1, "session": {"epochs": 1, "hours": None}},
        export__onnx=False,
    )
    args = {"imgsz": 64, "epochs": 2, "batch": 4, "cache": "ram", "close_mosaic": 0}
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"args": args})})
    run = tmp_path / "runs" / "sittings"
    with pytest.raises(SessionEnd):
        train(cfg, progress=False)
    last = torch.load(run / "weights" / "last.pt", map_location="cpu", weights_only=False)
    assert last["epoch"] == 0 and last["optimizer"] is not None  # epoch 1 done, resumable
    assert len((run / "results.csv").read_text().splitlines()) == 2  # header and epoch 1
    first = json.loads((run / "compute.json").read_text())
    assert [(s["first_epoch"], s["last_epoch"], s["how"]) for s in first["sittings"]] == [(1, 1, "session")]
    assert first["sittings"][0]["threads"] == 2  # both cores, not Ultralytics' cpu_count - 1
    train_images = len((tmp_path / "runs" / "dataset" / "lists" / "train.txt").read_text().splitlines())
    assert first["totals"]["images"] == train_images

    resumed = resume_recipe(run, ["train.session.epochs=5", "train.args.imgsz=96"])  # its own recipe.yaml, and a
    assert resumed.data.sources == cfg.data.sources  # larger size for the later sitting
    assert resumed.train.args == {**cfg.train.args, "imgsz": 96}
    best = train(resumed, progress=False)
    assert best == run / "weights" / "best.pt"
    assert torch.load(run / "weights" / "last.pt", map_location="cpu", weights_only=False)["epoch"] == -1  # finished
    epochs = [int(row.split(",")[0]) for row in (run / "results.csv").read_text().splitlines()[1:]]
    assert epochs == [1, 2]
    record = json.loads((run / "compute.json").read_text())
    sittings = [(s["first_epoch"], s["last_epoch"], s["imgsz"], s["how"]) for s in record["sittings"]]
    assert sittings == [(1, 1, 64, "session"), (2, 2, 96, "finished")]
    assert torch.load(best, map_location="cpu", weights_only=False)["train_args"]["imgsz"] == 96
    assert record["totals"]["epochs"] == 2 and record["totals"]["images"] == 2 * train_images
    assert record["totals"]["cpu_s"] > 0 and record["totals"]["wall_s"] > 0


def test_resume_of_a_folder_without_a_run_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from detector.cli import main

    assert main(["train", "--resume", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no weights/last.pt" in err[0] and str(tmp_path) in err[0]


@pytest.mark.parametrize(
    "values",
    [{"train__session__hours": float("inf")}, {"train__session__epochs": 0}, {"train__session__hours": -1}],
)
def test_a_session_share_out_of_range_is_rejected(values: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="session"):
        _recipe(**values)


def _voc(path: Path, size: tuple[int, int], objects: list[tuple[str, tuple[int, int, int, int]]]) -> None:
    body = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax><ymax>{d}</ymax>"
        "</bndbox></object>"
        for name, (a, b, c, d) in objects
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<annotation><size><width>{size[0]}</width><height>{size[1]}</height></size>{body}</annotation>")


@pytest.fixture()
def voc_root(tmp_path: Path) -> Path:
    """An RDD2022 country as its snapshot holds it: train/images + train/annotations/xmls, 6 frames in 3 drives."""
    rng = np.random.default_rng(1)
    country = tmp_path / "fetched" / "Czech"
    for i in (1, 2, 101, 102, 201, 202):
        stem = f"Czech_{i:06d}"
        (country / "train" / "images").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(country / "train" / "images" / f"{stem}.jpg"), _road(rng, 96, 64))
        objects = [("D40", (10, 30, 30, 50)), ("D00", (40, 10, 46, 60)), ("D20", (50, 20, 90, 40))]
        objects += [("D43", (0, 0, 20, 20)), ("D40", (90, 60, 91, 61))]  # a class not kept, a degenerate box
        _voc(country / "train" / "annotations" / "xmls" / f"{stem}.xml", (96, 64), objects if i % 2 else objects[1:2])
    return country


def _voc_spec(path: Path, **values: Any) -> dict[str, Any]:
    mapping = {"D40": "pothole", "D00": "crack", "D10": "crack", "D20": "crack"}
    return {"path": str(path), "split": "blocks", "format": "voc", "voc_classes": mapping, **values}


def test_a_voc_source_keeps_potholes_and_competing_classes_split_by_drive(
    tiny_root: Path, voc_root: Path, tmp_path: Path
) -> None:
    classes = ["pothole", "fallen_sign", "crack"]
    cfg = _tiny_cfg(tiny_root, tmp_path / "runs", classes=classes)  # the voc source lies elsewhere, read in place
    spec = _voc_spec(voc_root, repository="github.com/example/rdd2022-czech", commit="0" * 40, licence="CC BY-SA 4.0")
    cfg = TRAINING.updated(cfg, {"data.sources.rdd2022-czech": spec})
    samples = load_source("rdd2022-czech", cfg.data.sources["rdd2022-czech"], Path("/"), cfg.data, 0, classes)
    assert [s.group for s in samples] == ["Czech_0", "Czech_0", "Czech_1", "Czech_1", "Czech_2", "Czech_2"]
    for s in samples:  # the two frames of one drive share a split
        assert {t.split for t in samples if t.group == s.group} == {s.split}
    odd = samples[0]
    assert odd.boxes.tolist() == [[10, 30, 30, 50]]  # D43 and the 1-px D40 dropped
    assert odd.extra.tolist() == [[2, 40, 10, 46, 60], [2, 50, 20, 90, 40]]
    assert samples[1].boxes.shape == (0, 4) and samples[1].extra[:, 0].tolist() == [2]

    built = build_dataset(cfg, Path("/"))
    assert built.counts["train/rdd2022-czech"] + built.counts["val/rdd2022-czech"] == 6
    label = next((built.root / "labels").glob("*/rdd2022-czech/Czech_000001.txt"))
    assert [line.split()[0] for line in label.read_text().splitlines()] == ["0", "2", "2"]
    assert yaml.safe_load(built.data_yaml.read_text())["names"] == dict(enumerate(classes))
    assert build_dataset(cfg, Path("/")).root == built.root  # reused

    on_voc = TRAINING.updated(cfg, {"data.work_dir": str(tmp_path / "on-voc")})
    only_voc = on_voc.composite.model_copy(update={"backgrounds": {"rdd2022-czech": 1.0}})  # not merged over the rest
    on_voc = on_voc.model_copy(update={"composite": only_voc})
    composites = list((build_dataset(on_voc, Path("/")).root / "labels").glob("*/composite/*.txt"))
    assert len(composites) == 5
    for label in composites:  # a sign pasted on a frame with cracks keeps its cracks labelled
        assert {line.split()[0] for line in label.read_text().splitlines()} >= {"1", "2"}


def test_a_sources_record_of_origin_does_not_rebuild_the_set(tiny_root: Path, tmp_path: Path) -> None:
    from detector.train.dataset import fingerprint

    cfg = _tiny_cfg(tiny_root, tmp_path / "runs")
    dnit = cfg.data.sources["dnit"].model_dump()
    noted = TRAINING.updated(cfg, {"data.sources.dnit": {**dnit, "commit": "1" * 40, "licence": "MIT"}})
    assert noted.data.sources["dnit"].licence == "MIT"
    assert fingerprint(noted) == fingerprint(cfg)
    assert fingerprint(TRAINING.updated(cfg, {"data.sources.dnit": {**dnit, "split": "groups"}})) != fingerprint(cfg)


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        ({"voc_classes": {"D40": "pothole", "D00": "crack"}}, "voc_classes.D00"),  # crack is not a class
        ({"voc_classes": {}}, "voc_classes"),  # a voc source without its mapping
    ],
)
def test_a_voc_mapping_to_an_unknown_class_or_none_is_rejected(tmp_path: Path, spec: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"data.sources.x.{key}")):
        _recipe(**{"data__sources__x": _voc_spec(tmp_path, **spec)})


def test_a_voc_source_split_by_segment_is_rejected(voc_root: Path, tmp_path: Path) -> None:
    cfg = _tiny_cfg(voc_root.parent.parent, tmp_path / "runs", classes=["pothole", "fallen_sign", "crack"])
    cfg = TRAINING.updated(cfg, {"data.sources.cz": _voc_spec(voc_root, split="segments")})
    with pytest.raises(ConfigError, match=r"data\.sources\.cz\.split"):
        load_source("cz", cfg.data.sources["cz"], Path("/"), cfg.data, 0, list(cfg.classes))


def test_a_malformed_voc_file_is_named(voc_root: Path, tmp_path: Path) -> None:
    bad = voc_root / "train" / "annotations" / "xmls" / "Czech_000002.xml"
    bad.write_text("<annotation><object><name>D40</name><bndbox><xmin>x</xmin>")
    cfg = _tiny_cfg(voc_root.parent.parent, tmp_path / "runs", classes=["pothole", "fallen_sign", "crack"])
    cfg = TRAINING.updated(cfg, {"data.sources.cz": _voc_spec(voc_root)})
    with pytest.raises(InputError, match=r"Czech_000002\.xml"):
        load_source("cz", cfg.data.sources["cz"], Path("/"), cfg.data, 0, list(cfg.classes))


def test_shipping_copies_the_weights_and_the_runs_compute_record(tmp_path: Path) -> None:
    import json

    from detector.train.ship import compute_summary, ship

    run, models = tmp_path / "runs" / "v13", tmp_path / "models"
    (run / "weights").mkdir(parents=True)
    models.mkdir()
    for suffix in (".pt", ".onnx"):
        (run / "weights" / f"best{suffix}").write_bytes(suffix.encode())
    totals = {"sittings": 2, "epochs": 4, "images": 25000, "wall_s": 7200.0, "cpu_s": 12600.0}
    (run / "compute.json").write_text(json.dumps({"totals": totals, "sittings": []}))
    config = tmp_path / "default.yaml"
    config.write_text("detect:\n  conf: {pothole: 0.25, fallen_sign: 0.55}  # kept\n")
    written = ship(run / "weights" / "best.pt", models, config, {"pothole": 0.3, "fallen_sign": 0.5})
    assert [p.name for p in written] == ["hazards.pt", "hazards.onnx", "hazards.compute.json"]
    assert (models / "hazards.onnx").read_bytes() == b".onnx"
    assert config.read_text() == "detect:\n  conf: {pothole: 0.3, fallen_sign: 0.5}  # kept\n"
    summary = compute_summary(models / "hazards.compute.json")
    assert summary == "4 epochs, 25,000 training images seen, 2.00 h wall, 3.50 CPU-hours in 2 sitting(s)"

    (run / "compute.json").unlink()  # a candidate without a record: the shipped model's no longer applies
    ship(run / "weights" / "best.pt", models, config, {"pothole": 0.3, "fallen_sign": 0.5})
    assert not (models / "hazards.compute.json").exists()


@pytest.mark.slow
def test_a_terminated_sitting_is_recorded_and_the_run_goes_on(tiny_root: Path, tmp_path: Path) -> None:
    import json
    import signal
    import subprocess
    import sys

    from conftest import wait_for

    cfg = _tiny_cfg(tiny_root, tmp_path / "runs", name="killed", model__pretrained=None, export__onnx=False)
    train = cfg.train.model_copy(update={"args": {"imgsz": 64, "epochs": 400, "batch": 4, "close_mosaic": 0}})
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(cfg.model_copy(update={"train": train}).model_dump(mode="json")))
    run = tmp_path / "runs" / "killed"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "detector", "train", "--config", str(recipe), "-q"], env=env)
    record = run / "compute.json"
    epochs = lambda: record.is_file() and json.loads(record.read_text())["totals"]["epochs"]  # noqa: E731
    wait_for(lambda: proc.poll() is not None or epochs(), "the first whole epoch", 240, 0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    sitting = json.loads((run / "compute.json").read_text())["sittings"][0]
    assert sitting["how"] == "stopped" and sitting["last_epoch"] >= 1 and sitting["ended"]
    done = sitting["last_epoch"]

    again = [sys.executable, "-m", "detector", "train", "--resume", str(run), "--set", "train.session.epochs=1", "-q"]
    out = subprocess.run(again, env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0 and f"detector train --resume {run}" in out.stdout  # one more epoch, and how to go on
    sittings = json.loads((run / "compute.json").read_text())["sittings"]
    assert [(s["first_epoch"], s["how"]) for s in sittings][1:] == [(done + 1, "session")]


def test_a_model_widened_to_competing_classes_scores_its_own_as_before(tiny_model: Path, tmp_path: Path) -> None:
    import torch

    from detector.train.competing import with_more_classes

    wide = with_more_classes(
        tiny_model.with_suffix(".pt"), ["pothole", "fallen_sign", "crack", "repair"], tmp_path / "w.pt"
    )
    before = torch.load(tiny_model.with_suffix(".pt"), map_location="cpu", weights_only=False)["model"].float().eval()
    after = torch.load(wide, map_location="cpu", weights_only=False)["model"].eval()
    assert after.names == {0: "pothole", 1: "fallen_sign", 2: "crack", 3: "repair"} and after.yaml["nc"] == 4
    image = torch.rand(1, 3, 128, 160)
    with torch.no_grad():
        old, new = before(image)[0], after(image)[0]
    assert old.shape[1] == 4 + 2 and new.shape[1] == 4 + 4
    torch.testing.assert_close(new[:, :6], old, atol=1e-5, rtol=1e-4)  # boxes and the known classes unchanged
    assert float(new[:, 6:].max()) < 0.01  # the new classes start unsure
    with pytest.raises(InputError, match="not the first of"):
        with_more_classes(tiny_model.with_suffix(".pt"), ["crack", "pothole", "fallen_sign"], tmp_path / "x.pt")


@pytest.mark.parametrize(
    ("stem", "size", "group"),
    [("Japan_001234", 100, "Japan_12"), ("United_States_000099", 100, "United_States_0"), ("img", 100, "img"),
     ("Norway_000250", 50, "Norway_5")],
)  # fmt: skip
def test_block_groups_are_runs_of_file_numbers(stem: str, size: int, group: str) -> None:
    from detector.train.dataset import block_group

    assert block_group(stem, size) == group


def test_a_stopped_sitting_without_a_whole_epoch_is_started_again_not_resumed(tmp_path: Path) -> None:
    from detector.train.trainer import how_to_go_on

    assert how_to_go_on(tmp_path, "configs/finetune-sittings.yaml").endswith(
        "start it again: detector train --config configs/finetune-sittings.yaml (the dataset built stays)"
    )
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "last.pt").write_bytes(b"")
    assert how_to_go_on(tmp_path, None) == f"goes on from its last whole epoch: detector train --resume {tmp_path}"


@pytest.fixture()
def gtsdb_root(tmp_path: Path) -> Path:
    """A GTSDB snapshot as it lies: numbered street images beside one gt.txt; 00003 shows no benchmark sign."""
    rng = np.random.default_rng(2)
    folder = tmp_path / "fetched" / "GTSDB" / "train"
    folder.mkdir(parents=True)
    for i in (0, 1, 2, 3, 600, 601):
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), _road(rng, 136, 80))
    rows = ["00000.ppm;10;20;30;40;11", "00001.ppm;5;5;25;25;40", "00001.ppm;100;10;140;50;38", "00002.ppm;1;1;2;2;1"]
    rows += ["00600.ppm;50;30;70;50;2", "00601.ppm;60;10;80;30;14"]
    (folder / "gt.txt").write_text("\n".join(rows) + "\n")
    return folder


def _gtsdb_spec(path: Path, **values: Any) -> dict[str, Any]:
    spec = {"path": str(path), "split": "blocks", "format": "gtsdb", "block_size": 600, "box_class": "traffic_sign"}
    return {**spec, **values}


def test_a_gtsdb_source_maps_every_sign_to_one_class_on_its_own_split(
    tiny_root: Path, gtsdb_root: Path, tmp_path: Path
) -> None:
    classes = ["pothole", "fallen_sign", "traffic_sign"]
    cfg = _tiny_cfg(tiny_root, tmp_path / "runs", classes=classes)
    cfg = TRAINING.updated(cfg, {"data.sources.gtsdb": _gtsdb_spec(gtsdb_root, val_groups=["1"])})
    samples = load_source("gtsdb", cfg.data.sources["gtsdb"], Path("/"), cfg.data, 0, classes)
    assert [(s.name, s.split) for s in samples] == [
        ("00000.jpg", "train"),
        ("00001.jpg", "train"),
        ("00002.jpg", "train"),
        ("00003.jpg", "train"),
        ("00600.jpg", "val"),
        ("00601.jpg", "val"),
    ]
    assert all(s.boxes.shape == (0, 4) for s in samples)  # no potholes
    assert samples[1].extra.tolist() == [[2, 5, 5, 25, 25], [2, 100, 10, 136, 50]]  # clipped to the 136 px width
    assert samples[2].extra.shape == (0, 5) and samples[3].extra.shape == (0, 5)  # a 1-px box dropped; no sign

    built = build_dataset(cfg, Path("/"))
    assert (built.counts["train/gtsdb"], built.counts["val/gtsdb"]) == (4, 2)
    label = next((built.root / "labels").glob("train/gtsdb/00001.txt"))
    assert [line.split()[0] for line in label.read_text().splitlines()] == ["2", "2"]
    assert "gtsdb" in built.val_yamls


@pytest.mark.parametrize(
    ("values", "key"),
    [({"box_class": "sign"}, "box_class"), ({"box_class": None}, "box_class")],
)
def test_a_gtsdb_source_must_name_a_known_class(tmp_path: Path, values: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"data.sources.x.{key}")):
        _recipe(classes=["pothole", "fallen_sign", "traffic_sign"], data__sources__x=_gtsdb_spec(tmp_path, **values))


def test_a_malformed_gtsdb_row_names_the_file_and_line(gtsdb_root: Path, tmp_path: Path) -> None:
    (gtsdb_root / "gt.txt").write_text("00000.ppm;10;20;30;40;11\n00001.ppm;5;5;x;25;40\n")
    classes = ["pothole", "fallen_sign", "traffic_sign"]
    cfg = _recipe(classes=classes, data__sources__x=_gtsdb_spec(gtsdb_root))
    with pytest.raises(InputError, match="line 2"):
        load_source("x", cfg.data.sources["x"], Path("/"), cfg.data, 0, classes)


def test_the_final_validation_is_not_counted_as_an_epoch_when_time_replans_the_count(tmp_path: Path) -> None:
    # A one-epoch run with `time` (hours): Ultralytics stops after its epoch, then re-plans the count to 2 from the
    # time left, and reports its final validation of best.pt as epoch index 1, below that count.
    from types import SimpleNamespace

    from detector.train.trainer import ComputeRecord, Meter

    meter = Meter(ComputeRecord.load(tmp_path / "compute.json"), _recipe().train)
    trainer = SimpleNamespace(epoch=0, epochs=1, stop=False, train_loader=SimpleNamespace(dataset=[0] * 5))
    meter.epoch_trained(trainer)
    trainer.epochs, trainer.stop = 2, True
    meter.epoch_done(trainer)
    trainer.epoch = 1  # the final validation
    meter.epoch_done(trainer)
    totals = ComputeRecord.load(tmp_path / "compute.json").totals()
    assert (totals["epochs"], totals["images"]) == (1, 5)
