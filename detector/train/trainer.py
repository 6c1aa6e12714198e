"""Train the hazard detector with Ultralytics (CPU, or a GPU with ``train.device``), resumably; export ONNX.

``train(cfg)`` takes the parsed ``configs/train.yaml``. It builds the dataset when missing, makes the
COCO-pretrained yolov5nu start, and runs Ultralytics training into ``<output>/<name>`` with a checkpoint every
epoch; run again, it resumes from ``weights/last.pt`` (or only exports, when that run has finished).

On top of Ultralytics' own recipe:

* threads: Ultralytics trains on ``cpu_count - 1`` threads (1 on a 2-core machine); ``train.threads`` is used instead;
* validation every ``train.val_every`` epochs (and the last one), since a validation pass costs minutes on CPU;
* a freeze schedule: the first ``freeze.layers`` layers (the COCO backbone) stay frozen for ``freeze.epochs`` epochs
  while the new head settles, then everything trains;
* motion blur (patrol footage smears along the direction of travel), which Ultralytics lacks without
  albumentations.

With ``train.args.time`` (hours) Ultralytics re-plans the epoch count after every epoch to end within that time
(a partial last epoch is validated and saved); a resumed run gets the full time again.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from detector.config.training import TrainingConfig, TrainSection
from detector.errors import InputError
from detector.train.dataset import BuiltDataset, build_dataset

log = logging.getLogger(__name__)

PROJECT = Path(__file__).resolve().parents[2]
FORCED_ARGS = {"plots": False, "exist_ok": True, "save_period": 1}
CALIBRATION_IMAGES = 64  # training images that set a TFLite start's BatchNorm statistics


class MotionBlur:
    """Ultralytics transform: with probability ``p``, a linear motion blur of 3..``max_px`` px at a random angle.

    Mostly along the horizontal and vertical image axes, as for a camera moving forward over a bumpy road.
    """

    def __init__(self, p: float, max_px: int, seed: int = 0) -> None:
        self.p, self.max_px = p, int(max_px)
        self.rng = np.random.default_rng(seed)

    def __call__(self, labels: dict[str, Any]) -> dict[str, Any]:
        if self.max_px < 3 or self.rng.random() >= self.p:
            return labels
        length = int(self.rng.integers(3, self.max_px + 1))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0
        angle = float(self.rng.choice([0.0, 90.0])) + self.rng.normal(0.0, 15.0)
        rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), angle, 1.0)
        kernel = cv2.warpAffine(kernel, rot, (length, length))
        labels["img"] = cv2.filter2D(labels["img"], -1, kernel / max(kernel.sum(), 1e-6))
        return labels


def _trainer_class(blur: MotionBlur | None) -> type:
    """A ``DetectionTrainer`` whose training images get :class:`MotionBlur` (before Ultralytics' Format step)."""
    from ultralytics.models.yolo.detect import DetectionTrainer

    class PatrolTrainer(DetectionTrainer):
        def build_dataset(self, img_path: str, mode: str = "train", batch: int | None = None):
            dataset = super().build_dataset(img_path, mode, batch)
            if mode == "train" and blur is not None:
                dataset.transforms.insert(-1, blur)
            return dataset

        def _close_dataloader_mosaic(self) -> None:
            super()._close_dataloader_mosaic()  # rebuilds the transforms without ours
            if blur is not None:
                self.train_loader.dataset.transforms.insert(-1, blur)

    return PatrolTrainer


def _callbacks(tc: TrainSection) -> dict[str, Any]:
    """Ultralytics callbacks: the freeze schedule, periodic validation, and one log line per epoch."""
    started: dict[str, float] = {}

    def start(trainer: Any) -> None:
        started["train"] = time.monotonic()
        if trainer.epoch >= tc.freeze.epochs and len(trainer.freeze_layer_names) > 1:
            trainer.freeze_layer_names = [".dfl"]  # Ultralytics always keeps the DFL layer frozen
            for name, param in trainer.model.named_parameters():
                if ".dfl" not in name and param.dtype.is_floating_point:
                    param.requires_grad = True
            log.info("epoch %d: backbone unfrozen", trainer.epoch + 1)

    def pick_validation(trainer: Any) -> None:
        started["s_per_batch"] = (time.monotonic() - started["train"]) / max(len(trainer.train_loader), 1)
        trainer.args.val = should_validate(trainer.epoch + 1, tc.val_every, trainer.epochs)
        if not trainer.args.val:
            trainer.fitness = None  # so best.pt only ever changes on a validated epoch

    def report(trainer: Any) -> None:
        metrics = f"mAP50={trainer.metrics.get('metrics/mAP50(B)', 0):.3f} "
        metrics += f"mAP50-95={trainer.metrics.get('metrics/mAP50-95(B)', 0):.3f}"
        if trainer.epoch >= trainer.epochs:  # Ultralytics reports its final validation of best.pt as epoch N+1
            log.info("best.pt: %s", metrics)
            return
        loss = " ".join(f"{k}={float(v):.3f}" for k, v in (trainer.tloss or {}).items())
        line = f"epoch {trainer.epoch + 1}/{trainer.epochs} {trainer.epoch_time:.0f}s "
        line += f"({started.get('s_per_batch', 0):.2f} s/batch) {loss}"
        log.info("%s %s", line, metrics if trainer.args.val else "(not validated)")

    return {"on_train_epoch_start": start, "on_train_epoch_end": pick_validation, "on_fit_epoch_end": report}


def should_validate(epoch: int, every: int, epochs: int) -> bool:
    """Validate after 1-based ``epoch``? Every ``every`` epochs and always after the last (``every`` 0: last only)."""
    return epoch >= epochs or (every > 0 and epoch % every == 0)


def run_dir(cfg: TrainingConfig) -> Path:
    """The Ultralytics run folder: ``<output>/<name>`` under the project."""
    return PROJECT / cfg.output / cfg.name


def _finished(last: Path) -> bool:
    """Ultralytics strips the optimizer and sets epoch -1 in ``last.pt`` when a run ends."""
    import torch

    return torch.load(last, map_location="cpu", weights_only=False).get("epoch", -1) == -1


def _start_model(cfg: TrainingConfig, built: BuiltDataset) -> str:
    """``model.init`` (weights of an earlier run, to fine-tune), else the COCO-pretrained start (built once under
    ``<output>/pretrained``, BatchNorms calibrated on training images where needed), or the bare yaml without
    ``pretrained``."""
    from detector.train.pretrained import build_pretrained

    model = cfg.model
    if model.init:
        init = PROJECT / model.init
        if not init.is_file():
            raise InputError(init, "model.init: weights not found")
        return str(init)
    if not model.pretrained:
        return model.yaml
    out = PROJECT / cfg.output / "pretrained" / f"{Path(model.yaml).stem}-coco.pt"
    if out.exists():
        return str(out)
    train_images = Path(yaml.safe_load(built.data_yaml.read_text())["train"]).read_text().splitlines()
    step = max(1, len(train_images) // CALIBRATION_IMAGES)
    calibration = [Path(p) for p in train_images[::step][:CALIBRATION_IMAGES]]
    return str(build_pretrained(model.yaml, PROJECT / model.pretrained, out, calibration))


def export(best: Path, cfg: TrainingConfig) -> Path | None:
    """Export ``best`` to ONNX beside it when ``export.onnx`` is set; returns the ONNX path."""
    spec = cfg.export
    if not spec.onnx:
        return None
    from ultralytics import YOLO

    args = spec.model_dump(exclude={"onnx"})
    return Path(YOLO(str(best)).export(format="onnx", device="cpu", **args))


def _fit(cfg: TrainingConfig, tc: TrainSection, yolo: type) -> None:
    """Start, resume, or (for a finished run) skip the Ultralytics training of ``cfg``."""
    built = build_dataset(cfg, PROJECT)
    out = run_dir(cfg)
    last = out / "weights" / "last.pt"
    if last.exists() and _finished(last):
        log.info("%s is finished; exporting only", out)
        return
    if last.exists():
        model = yolo(str(last))
        kwargs: dict[str, Any] = {"resume": True}
        log.info("resuming %s", last)
    else:
        model = yolo(_start_model(cfg, built))
        kwargs = {
            **tc.args,
            **FORCED_ARGS,
            "device": tc.device,
            "workers": tc.workers,
            "data": str(built.data_yaml),
            "project": str(out.parent),
            "name": out.name,
            "freeze": tc.freeze.layers if tc.freeze.epochs > 0 else None,
            "val": should_validate(1, tc.val_every, int(tc.args.get("epochs", 100))),
            "seed": cfg.seed,
        }
    for event, func in _callbacks(tc).items():
        model.add_callback(event, func)
    blur = MotionBlur(**tc.motion_blur.model_dump(), seed=cfg.seed)
    model.train(trainer=_trainer_class(blur if blur.p > 0 else None), **kwargs)


def train(cfg: TrainingConfig, progress: bool = True) -> Path:
    """Build the dataset if needed, train (or resume, or skip a finished run), export; returns ``best.pt``."""
    tc = cfg.train
    os.environ["OMP_NUM_THREADS"] = str(tc.threads)  # effective when torch is not imported yet
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import ultralytics.utils.torch_utils as torch_utils
    from ultralytics import YOLO
    from ultralytics.utils import LOGGER

    torch_utils.NUM_THREADS = tc.threads  # Ultralytics' select_device() calls torch.set_num_threads(NUM_THREADS)
    level = LOGGER.level
    if not progress:
        LOGGER.setLevel(logging.WARNING)
    try:
        _fit(cfg, tc, YOLO)
    finally:
        LOGGER.setLevel(level)
    best = run_dir(cfg) / "weights" / "best.pt"
    export(best, cfg)
    return best
