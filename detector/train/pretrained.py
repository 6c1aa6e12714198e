"""COCO-pretrained start: the legacy YOLOv5n checkpoint's backbone and neck copied into a ``yolov5nu`` model, or a
YOLOv8n TFLite export's weights into a ``yolov8n`` one (:mod:`detector.train.tflite_weights`).

The official ``yolov5n.pt`` pickles a ``models.yolo.Model`` from the YOLOv5 repository, which Ultralytics 8 cannot
import. A stub unpickler stands in for those legacy classes (as empty ``nn.Module`` subclasses, so the torch state
inside them is restored as usual); the 342 tensors of layers 0-23 are then copied, in order, into the tensors of a
``YOLO("yolov5nu.yaml")`` model, whose anchor-free Detect head (layer 24) stays freshly initialised.
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

LEGACY_PACKAGES = frozenset({"models", "utils"})
EXPECTED_TENSORS = 342  # layers 0-23 of YOLOv5n: weights, biases and BatchNorm buffers
HEAD_LAYER = 24


class _LegacyStub(nn.Module):
    """Stand-in for a class of the YOLOv5 repository; holds the unpickled module state and nothing else."""


@functools.cache
def _stub(module: str, name: str) -> type:
    return type(name, (_LegacyStub,), {"__module__": module})


class _StubUnpickler(pickle.Unpickler):
    """Resolves ``models.*`` / ``utils.*`` classes to stubs and everything else (torch, builtins) normally."""

    def find_class(self, module: str, name: str) -> Any:
        if module.split(".", 1)[0] in LEGACY_PACKAGES:
            return _stub(module, name)
        return super().find_class(module, name)


class _StubPickle:
    """A ``pickle_module`` for ``torch.load`` that unpickles with :class:`_StubUnpickler`."""

    Unpickler = _StubUnpickler
    load = staticmethod(pickle.load)


@dataclass(frozen=True)
class Transfer:
    """What :func:`load_legacy_into` copied."""

    copied: int
    names: tuple[str, ...]  # target tensor names, in copy order


def legacy_state_dict(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The float32 state dict of the legacy checkpoint's model (EMA weights when the file has them)."""
    ckpt = torch.load(checkpoint, map_location="cpu", pickle_module=_StubPickle, weights_only=False)
    model = ckpt.get("ema") or ckpt["model"]
    return {k: v.float() if v.is_floating_point() else v for k, v in model.state_dict().items()}


def _layer(name: str) -> int:
    return int(name.split(".")[1])  # "model.17.cv1.conv.weight" -> 17


def load_legacy_into(model: nn.Module, checkpoint: Path) -> Transfer:
    """Copy layers 0-23 of ``checkpoint`` into ``model`` (a yolov5nu ``DetectionModel``) by order and shape.

    Raises ``ValueError`` when the counts or any shape differ, so a wrong checkpoint never half-loads.
    """
    source = [(k, v) for k, v in legacy_state_dict(checkpoint).items() if _layer(k) < HEAD_LAYER]
    target_sd = model.state_dict()
    target = [(k, v) for k, v in target_sd.items() if _layer(k) < HEAD_LAYER]
    if len(source) != len(target) or len(source) != EXPECTED_TENSORS:
        raise ValueError(f"expected {EXPECTED_TENSORS} tensors, checkpoint has {len(source)}, model {len(target)}")
    for (src_name, src), (dst_name, dst) in zip(source, target, strict=True):
        if src.shape != dst.shape:
            raise ValueError(f"shape mismatch: {src_name} {tuple(src.shape)} -> {dst_name} {tuple(dst.shape)}")
    with torch.no_grad():
        for (_, src), (_, dst) in zip(source, target, strict=True):
            dst.copy_(src.to(dst.dtype))
    return Transfer(copied=len(target), names=tuple(k for k, _ in target))


def build_pretrained(model_yaml: str, checkpoint: Path, out: Path, calibration: Sequence[Path] = ()) -> Path:
    """Write an Ultralytics checkpoint of ``model_yaml`` initialised from the COCO ``checkpoint``: a legacy YOLOv5n
    ``.pt``, or a YOLOv8n ``.tflite`` export whose BatchNorms are unfolded on the ``calibration`` images.

    Training then starts from ``out`` (Ultralytics keeps every tensor whose name and shape match the data's
    class count, i.e. everything but the Detect head's class branch). Returns ``out``.
    """
    from ultralytics import YOLO

    yolo = YOLO(model_yaml)
    if checkpoint.suffix == ".tflite":
        from detector.train.tflite_weights import load_tflite_into

        load_tflite_into(yolo.model, checkpoint, calibration)
    else:
        load_legacy_into(yolo.model, checkpoint)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": yolo.model, "train_args": {}, "epoch": -1, "source": str(checkpoint)}, out)
    return out
