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
(a partial last epoch is validated and saved); a resumed run gets the full time again, and a run it ends is
finished. For a long run in several sittings, give ``epochs`` without ``time`` and ``train.session`` (epochs or
hours per invocation): the run stops after its share with ``weights/last.pt`` resumable, and the next invocation
(the same command, or ``detector train --resume RUN_DIR``) goes on from the next epoch. A sitting may change the
training size, batch and cache (``SITTING_ARGS``): early sittings at a smaller size, later ones at the detector's.

Beside ``weights/`` each run keeps ``recipe.yaml`` (the whole resolved recipe, sources with repository and commit
included, which ``--resume`` reads back) and ``compute.json`` (each sitting's wall and CPU seconds, epochs and
training images seen, with totals; updated after every epoch, so a killed sitting is counted to its last epoch).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import resource
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from detector.config.training import TrainingConfig, TrainSection
from detector.errors import InputError
from detector.project import PROJECT
from detector.train.dataset import BuiltDataset, build_dataset

log = logging.getLogger(__name__)

FORCED_ARGS = {"plots": False, "exist_ok": True, "save_period": 1}
CALIBRATION_IMAGES = 64  # training images that set a TFLite start's BatchNorm statistics
RECIPE = "recipe.yaml"  # the resolved recipe, beside weights/
SITTING_ARGS = ("imgsz", "batch", "cache")  # train.args a sitting may change (Ultralytics keeps the rest of the run's)
COMPUTE = "compute.json"  # the compute record, beside weights/


class SessionEnd(Exception):
    """Raised from the epoch-end callback when this invocation's share (``train.session``) is done: it leaves
    Ultralytics' loop before its final evaluation, which would strip the optimizer from ``last.pt``."""


def _cpu_seconds() -> float:
    """User and system CPU seconds of this process and its finished children (dataloader workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class Sitting:
    """One invocation's share of a run, as the compute record keeps it."""

    started: str
    device: str
    threads: int  # torch's intra-op threads as training ran (measured after each epoch)
    imgsz: int  # the training size of this sitting
    cpus: int | None
    nice: int
    host: str
    first_epoch: int = 0  # 1-based; 0 until an epoch ends
    last_epoch: int = 0
    images: int = 0  # training images seen (an image listed twice counts twice)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    ended: str | None = None
    how: str = "running"  # running, session (its share done), finished, stopped (an error or a kill)


@dataclass
class ComputeRecord:
    """What a run's training cost, sitting by sitting: ``<run>/compute.json``."""

    path: Path
    sittings: list[Sitting] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> ComputeRecord:
        if not path.is_file():
            return cls(path)
        doc = json.loads(path.read_text())
        return cls(path, [Sitting(**s) for s in doc.get("sittings", [])])

    def totals(self) -> dict[str, float]:
        epochs = sum(s.last_epoch - s.first_epoch + 1 for s in self.sittings if s.first_epoch)
        return {
            "sittings": len(self.sittings),
            "epochs": epochs,
            "images": sum(s.images for s in self.sittings),
            "wall_s": round(sum(s.wall_s for s in self.sittings), 1),
            "cpu_s": round(sum(s.cpu_s for s in self.sittings), 1),
        }

    def save(self) -> None:
        doc = {"totals": self.totals(), "sittings": [asdict(s) for s in self.sittings]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        tmp.replace(self.path)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Meter:
    """Measures one sitting into the run's compute record, and ends the sitting when its share is done."""

    def __init__(self, record: ComputeRecord, tc: TrainSection) -> None:
        self.record, self.session = record, tc.session
        imgsz = int(tc.args.get("imgsz", 640))
        self.sitting = Sitting(_now(), tc.device, tc.threads, imgsz, os.cpu_count(), os.nice(0), platform.node())
        record.sittings.append(self.sitting)
        self.wall0, self.cpu0 = time.monotonic(), _cpu_seconds()
        self.trained = False  # an epoch's training loop ended and it is not counted yet

    def epoch_trained(self, trainer: Any) -> None:
        """Ultralytics ends an epoch's training loop (its final validation of best.pt runs none)."""
        self.trained = True

    def update(self, how: str | None = None) -> None:
        s = self.sitting
        s.wall_s, s.cpu_s = round(time.monotonic() - self.wall0, 1), round(_cpu_seconds() - self.cpu0, 1)
        if how is not None:
            s.how, s.ended = how, _now()
        self.record.save()

    def epoch_done(self, trainer: Any) -> None:
        """After an epoch is saved: count it, and raise :class:`SessionEnd` when this sitting's share is done."""
        if not self.trained:  # Ultralytics' final validation of best.pt, reported as one epoch more: with `time`,
            return  # its re-planned epoch count may exceed that epoch, so the epoch number cannot tell
        self.trained = False
        import torch

        s, epoch = self.sitting, trainer.epoch + 1
        s.threads = torch.get_num_threads()
        s.first_epoch = s.first_epoch or epoch
        s.last_epoch = epoch
        s.images += len(trainer.train_loader.dataset)
        self.update()
        if trainer.stop or epoch >= trainer.epochs:
            return  # the run ends now anyway
        done = s.last_epoch - s.first_epoch + 1
        per_epoch = s.wall_s / done
        if self.session.epochs is not None and done >= self.session.epochs:
            raise SessionEnd(f"{done} epoch(s) this session (train.session.epochs)")
        if self.session.hours is not None and s.wall_s + per_epoch > self.session.hours * 3600:
            raise SessionEnd(f"another epoch would end past {self.session.hours} h (train.session.hours)")


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
        started["trained"] = 1.0  # an epoch was trained (the final validation of best.pt trains none)
        started["s_per_batch"] = (time.monotonic() - started["train"]) / max(len(trainer.train_loader), 1)
        trainer.args.val = should_validate(trainer.epoch + 1, tc.val_every, trainer.epochs)
        if not trainer.args.val:
            trainer.fitness = None  # so best.pt only ever changes on a validated epoch

    def report(trainer: Any) -> None:
        metrics = f"mAP50={trainer.metrics.get('metrics/mAP50(B)', 0):.3f} "
        metrics += f"mAP50-95={trainer.metrics.get('metrics/mAP50-95(B)', 0):.3f}"
        if not started.pop("trained", 0.0):  # Ultralytics reports its final validation of best.pt as epoch N+1
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


def _with_recipe_classes(init: Path, cfg: TrainingConfig) -> Path:
    """``init``, or, when the recipe adds competing classes to the ones it knows, its head widened to them (written
    once under ``<output>/pretrained``)."""
    import torch

    from detector.train.competing import with_more_classes

    names = torch.load(init, map_location="cpu", weights_only=False)["model"].names
    if len(names) >= len(cfg.classes):
        return init
    out = PROJECT / cfg.output / "pretrained" / f"{init.stem}-{'-'.join(cfg.classes[len(names) :])}.pt"
    return out if out.exists() else with_more_classes(init, list(cfg.classes), out)


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
        return str(_with_recipe_classes(init, cfg))
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


def write_recipe(cfg: TrainingConfig, out: Path) -> Path:
    """The resolved recipe beside the run's weights: every source with its repository, commit and licence."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / RECIPE
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, width=120))
    return path


def how_to_go_on(run: Path, config: str | None) -> str:
    """What a stopped sitting of ``run`` (started with ``--config config``) should be followed by."""
    if (run / "weights" / "last.pt").is_file():
        return f"goes on from its last whole epoch: detector train --resume {run}"
    again = f"detector train --config {config}" if config else "detector train"
    return f"finished no epoch, so nothing to resume; start it again: {again} (the dataset built stays)"


def resume_recipe(run: Path, overrides: list[str] | None = None) -> TrainingConfig:
    """The recipe of the run in ``run`` (its ``recipe.yaml``, with ``overrides``) to go on with it there.

    Raises :class:`InputError` when ``run`` holds no resumable run.
    """
    from detector.config import TRAINING

    run = run.resolve()
    if not (run / "weights" / "last.pt").is_file():
        raise InputError(run, "no weights/last.pt: not a run that can be resumed")
    if not (run / RECIPE).is_file():
        raise InputError(run, f"no {RECIPE} beside its weights (a run from before recipes were kept)")
    cfg = TRAINING.parse(run / RECIPE)  # whole, not over today's train.yaml: its sources and args as they were
    values = {"output": str(run.parent), "name": run.name}
    return TRAINING.updated(TRAINING.overridden(cfg, overrides or []), values, f"--resume {run}")


def _fit(cfg: TrainingConfig, tc: TrainSection, yolo: type) -> None:
    """Start, resume, or (for a finished run) skip the Ultralytics training of ``cfg``."""
    built = build_dataset(cfg, PROJECT)
    out = run_dir(cfg)
    last = out / "weights" / "last.pt"
    if last.exists() and _finished(last):
        log.info("%s is finished; exporting only", out)
        return
    write_recipe(cfg, out)
    if last.exists():
        model = yolo(str(last))
        kwargs: dict[str, Any] = {"resume": True, "device": tc.device, "workers": tc.workers}
        kwargs |= {k: tc.args[k] for k in SITTING_ARGS if k in tc.args}  # e.g. a smaller size for early sittings
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
    meter = Meter(ComputeRecord.load(out / COMPUTE), tc)
    model.add_callback("on_train_epoch_end", meter.epoch_trained)
    model.add_callback("on_fit_epoch_end", meter.epoch_done)  # after the epoch's checkpoint is written
    blur = MotionBlur(**tc.motion_blur.model_dump(), seed=cfg.seed)
    try:
        model.train(trainer=_trainer_class(blur if blur.p > 0 else None), **kwargs)
    except SessionEnd as end:
        meter.update("session")
        log.info("session over: %s; %s resumes from epoch %d", end, out, meter.sitting.last_epoch + 1)
        raise
    except BaseException:
        meter.update("stopped")
        raise
    meter.update("finished")


class Terminated(Exception):
    """SIGTERM arrived during training: the sitting is recorded as stopped; ``last.pt`` holds its last whole epoch."""


@contextmanager
def _terminate_as_exception() -> Iterator[None]:
    """Turn SIGTERM (``kill PID``, the end of a job's time) into :class:`Terminated` while training runs in the main
    thread, so that the compute record is written before the process ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def train(cfg: TrainingConfig, progress: bool = True) -> Path:
    """Build the dataset if needed, train (or resume, or skip a finished run), export; returns ``best.pt``.

    Raises :class:`SessionEnd` when the run stopped for ``train.session`` (resumable; nothing exported), and
    :class:`Terminated` on SIGTERM (resumable from the last whole epoch)."""
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
        with _terminate_as_exception():
            _fit(cfg, tc, YOLO)
    finally:
        LOGGER.setLevel(level)
    best = run_dir(cfg) / "weights" / "best.pt"
    export(best, cfg)
    return best
