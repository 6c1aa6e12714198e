"""COCO-pretrained YOLOv8n from an Ultralytics TFLite export, the only YOLOv8 COCO weights to be had offline here.

The export (``yolov8n_int8.tflite``: dynamic-range quantization) folds each BatchNorm into its convolution and keeps
the weights as per-channel int8. Dequantized and turned to PyTorch's layout, its 64 convolutions are matched to those
of a ``YOLO("yolov8n.yaml")`` model by weight shape and output size, in the order the network runs them (the export
lists a C2f block's inner convolutions before its output one, and the Detect head's coarsest level first).

Each BatchNorm is then unfolded rather than left as an identity: its running statistics are measured on
``calibration`` images, and its scale and shift set so that in evaluation the layer computes exactly what the fused
one did. Training, which normalises by the batch's own statistics, then starts close to the COCO function instead of
from a rescaled one.

>>> model = YOLO("yolov8n.yaml").model  # doctest: +SKIP
>>> load_tflite_into(model, Path("yolov8n_int8.tflite"), images)  # doctest: +SKIP
64
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from detector.errors import InputError
from detector.pipeline.inference.detector import letterbox

CALIBRATION_SIZE = 640
ConvKey = tuple[tuple[int, ...], tuple[int, int]]  # weight shape (OIHW), output (H, W) at CALIBRATION_SIZE


def tflite_convolutions(path: Path) -> dict[ConvKey, list[tuple[np.ndarray, np.ndarray]]]:
    """The float weights (OIHW) and biases of every CONV_2D of ``path``, grouped by key in graph order."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise InputError(path, "reading .tflite weights needs the ai-edge-litert package (the privacy extra)") from None
    try:
        interpreter = Interpreter(model_path=str(path))
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise InputError(path, f"not a TFLite model ({e})") from None
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}

    def constant(index: int) -> np.ndarray:
        values = interpreter.get_tensor(index).astype(np.float32)
        quant = tensors[index]["quantization_parameters"]
        if tensors[index]["dtype"] == np.int8:
            shape = (-1,) + (1,) * (values.ndim - 1)  # per output channel (quantized_dimension 0)
            zero = np.broadcast_to(quant["zero_points"], quant["scales"].shape)
            values = (values - zero.reshape(shape)) * quant["scales"].reshape(shape)
        return values

    convs: dict[ConvKey, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for op in interpreter._get_ops_details():
        if op["op_name"] != "CONV_2D":
            continue
        weight = constant(op["inputs"][1]).transpose(0, 3, 1, 2)  # OHWI -> OIHW
        height, width = (int(v) for v in tensors[op["outputs"][0]]["shape"][1:3])
        convs[(weight.shape, (height, width))].append((weight, constant(op["inputs"][2])))
    return convs


def _run_order(model: nn.Module) -> list[tuple[str, nn.Conv2d, tuple[int, int]]]:
    """Every ``Conv2d`` of ``model`` with its output size, in the order a forward pass runs them."""
    order: list[tuple[str, nn.Conv2d, tuple[int, int]]] = []
    hooks = [
        module.register_forward_hook(lambda m, _, out, n=name: order.append((n, m, tuple(out.shape[2:]))))
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d)
    ]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, CALIBRATION_SIZE, CALIBRATION_SIZE))
    finally:
        for hook in hooks:
            hook.remove()
    return order


def network_input(path: Path) -> torch.Tensor | None:
    """The image at ``path`` letterboxed to a (3, 640, 640) tensor in 0-1, as the network takes it; None if
    unreadable."""
    image = cv2.imread(str(path))
    if image is None:
        return None
    scale = CALIBRATION_SIZE / max(image.shape[:2])
    chw, _, _ = letterbox(image, scale, CALIBRATION_SIZE, CALIBRATION_SIZE)
    return torch.from_numpy(chw.copy()).float() / 255


def _unfold_batchnorms(
    model: nn.Module, folded: dict[str, tuple[nn.Conv2d, nn.BatchNorm2d]], images: Sequence[Path]
) -> None:
    """Set each BatchNorm's statistics to those of its convolution's output on ``images``, keeping the function."""
    sums: dict[str, list[torch.Tensor]] = defaultdict(list)

    def record(name: str):
        def hook(_, __, out: torch.Tensor) -> None:
            sums[name].append(torch.stack([out.mean((0, 2, 3)), (out**2).mean((0, 2, 3))]))

        return hook

    hooks = [conv.register_forward_hook(record(name)) for name, (conv, _) in folded.items()]
    try:
        with torch.no_grad():
            for path in images:
                batch = network_input(path)
                if batch is not None:
                    model.eval()(batch[None])
    finally:
        for hook in hooks:
            hook.remove()
    with torch.no_grad():
        for name, (_, bn) in folded.items():
            if not sums[name]:
                continue
            mean, square = torch.stack(sums[name]).mean(0)
            var = (square - mean**2).clamp_min(1e-6)
            shift = bn.bias - bn.running_mean  # the fused bias
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            bn.weight.copy_(torch.sqrt(var + bn.eps))
            bn.bias.copy_(shift + mean)


def load_tflite_into(model: nn.Module, path: Path, calibration: Sequence[Path] = ()) -> int:
    """Fill a yolov8n ``DetectionModel`` (80 classes, BatchNorms unfused) from the TFLite export at ``path``.

    Returns how many convolutions were filled (64). Raises :class:`InputError` when the export's convolutions do not
    match the model's one for one, so a wrong file never half-loads.
    """
    source = tflite_convolutions(path)
    order = _run_order(model)
    if sum(map(len, source.values())) != len(order):
        raise InputError(path, f"{sum(map(len, source.values()))} convolutions, the model has {len(order)}")
    taken: dict[ConvKey, int] = defaultdict(int)
    pairs = []  # everything is matched before anything is copied
    for name, conv, size in order:
        key = (tuple(conv.weight.shape), size)
        if taken[key] >= len(source.get(key, [])):
            raise InputError(path, f"no convolution of shape {key[0]} and output {key[1]} left for {name}")
        pairs.append((name, conv, *source[key][taken[key]]))
        taken[key] += 1
    modules = dict(model.named_modules())
    folded: dict[str, tuple[nn.Conv2d, nn.BatchNorm2d]] = {}
    with torch.no_grad():
        for name, conv, weight, bias in pairs:
            conv.weight.copy_(torch.from_numpy(weight))
            parent = modules[name.rsplit(".", 1)[0]]
            bn = getattr(parent, "bn", None) if name.endswith(".conv") else None
            if isinstance(bn, nn.BatchNorm2d):  # y = bn(conv(x)) = conv(x) + bias until calibrated
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0)
                bn.weight.fill_(float(np.sqrt(1.0 + bn.eps)))
                bn.bias.copy_(torch.from_numpy(bias))
                folded[name] = (conv, bn)
            elif conv.bias is not None:
                conv.bias.copy_(torch.from_numpy(bias))
            # else: the DFL's fixed 0..15 projection, the same in the export
    _unfold_batchnorms(model, folded, calibration)
    return len(order)
