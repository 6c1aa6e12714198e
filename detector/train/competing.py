"""Competing classes on a trained model: its detection head widened to more classes, the ones it knows kept.

A detector that knows what a crack or a patch looks like calls fewer of them potholes. Fine-tuning a two-class model
on a set with more classes would make Ultralytics start the head's last class convolution afresh (its shape no longer
fits), throwing away what the model knew of potholes and fallen signs. :func:`with_more_classes` instead writes a
start whose class convolutions keep their rows for the known classes and gain new rows for the others (zero weights,
the known classes' mean bias: they start unsure), so training goes on from the model as it was.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from detector.errors import InputError


def _names(model: nn.Module) -> list[str]:
    names = model.names
    return [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)


def _widen(conv: nn.Conv2d, extra: int) -> nn.Conv2d:
    """``conv`` with ``extra`` more output channels after its own."""
    wide = nn.Conv2d(conv.in_channels, conv.out_channels + extra, conv.kernel_size, conv.stride, conv.padding)
    with torch.no_grad():
        wide.weight.zero_()
        wide.weight[: conv.out_channels] = conv.weight
        wide.bias[: conv.out_channels] = conv.bias
        wide.bias[conv.out_channels :] = conv.bias.mean()
    return wide


def with_more_classes(weights: Path, classes: list[str], out: Path) -> Path:
    """Write to ``out`` the model of ``weights`` with its classes widened to ``classes`` (its own, then more)."""
    ckpt = torch.load(weights, map_location="cpu", weights_only=False)
    model = (ckpt.get("ema") or ckpt["model"]).float()
    known = _names(model)
    if classes[: len(known)] != known or len(classes) <= len(known):
        raise InputError(weights, f"its classes {known} are not the first of {classes}")
    head, extra = model.model[-1], len(classes) - len(known)
    for name in ("cv3", "one2one_cv3"):
        for branch in getattr(head, name, None) or []:
            branch[-1] = _widen(branch[-1], extra)
    head.nc = len(classes)
    head.no = head.nc + head.reg_max * 4
    model.yaml["nc"] = len(classes)
    model.names = dict(enumerate(classes))
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model, "train_args": ckpt.get("train_args", {})}, out)
    return out
