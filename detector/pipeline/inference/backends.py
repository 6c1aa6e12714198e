"""Network backends: raw forward passes, the same contract for ONNX Runtime, PyTorch and TFLite.

A backend takes a float32 batch (B, 3, H, W) in [0, 1], RGB, and returns the YOLO head's
raw output (B, 4 + classes, anchors): box centre/size in input pixels, then class scores.
Pre- and post-processing live in :mod:`detector.pipeline.inference.detector`, shared by both, so the
same image gives the same boxes whichever backend runs it.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Protocol

import numpy as np

from detector.errors import InputError


class Backend(Protocol):
    names: list[str]
    stride: int
    dynamic: bool  # accepts any input size that is a multiple of ``stride``
    input_size: tuple[int, int] | None  # (height, width) when fixed

    def forward(self, batch: np.ndarray) -> np.ndarray: ...


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise InputError(path, "model file not found")
    if path.stat().st_size < 1024:
        raise InputError(path, "model file is empty or truncated")


def _names(raw) -> list[str]:
    if isinstance(raw, str):
        raw = ast.literal_eval(raw)
    if isinstance(raw, dict):
        return [raw[k] for k in sorted(raw, key=int)]
    return list(raw)


class OnnxBackend:
    """ONNX Runtime on the CPU: the default on patrol vehicles' onboard computers."""

    def __init__(self, path: Path, threads: int = 0) -> None:
        import onnxruntime as ort

        _check_file(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        # Idle pool threads would spin between frames, on the cores the video decoder needs meanwhile.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            raise InputError(path, f"not a valid ONNX model ({type(e).__name__})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if "names" not in meta:
            raise InputError(path, "ONNX model has no class names in its metadata (export it with Ultralytics)")
        self.names = _names(meta["names"])
        self.stride = int(meta.get("stride", 32))
        shape = self.session.get_inputs()[0].shape
        self.dynamic = not all(isinstance(s, int) for s in shape[2:])
        self.input_size = None if self.dynamic else (int(shape[2]), int(shape[3]))
        self._input = self.session.get_inputs()[0].name

    def forward(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self._input: batch})[0]


class TorchBackend:
    """Ultralytics/PyTorch: uses a GPU when there is one (``device='auto'``)."""

    def __init__(self, path: Path, device: str = "auto") -> None:
        import torch
        from ultralytics import YOLO

        _check_file(path)
        try:
            model = YOLO(str(path), task="detect").model
        except Exception as e:  # torch.load raises many types for a damaged file
            raise InputError(path, f"not a valid PyTorch model ({type(e).__name__})") from None
        if device == "auto":
            device = "cuda:0" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.model = model.float().fuse().eval().to(self.device)
        self.names = _names(model.names)
        self.stride = int(max(model.stride))
        self.dynamic = True
        self.input_size = None
        self._torch = torch

    def forward(self, batch: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            out = self.model(self._torch.from_numpy(batch).to(self.device))
        out = out[0] if isinstance(out, list | tuple) else out
        return out.float().cpu().numpy()


class TfliteBackend:
    """An Ultralytics TFLite export (float or int8) on LiteRT: for COCO models that exist only in that form.

    Its class names are in the metadata Ultralytics appends to the file (a zip member).
    """

    def __init__(self, path: Path, threads: int = 0) -> None:
        import zipfile

        _check_file(path)
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise InputError(path, "reading .tflite models needs the ai-edge-litert package") from None
        try:
            with zipfile.ZipFile(path) as z:
                meta = ast.literal_eval(z.read(z.namelist()[0]).decode("utf-8"))
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads or os.cpu_count() or 1)
            self.interpreter.allocate_tensors()
        except (zipfile.BadZipFile, IndexError, SyntaxError, ValueError, RuntimeError) as e:
            raise InputError(path, f"not an Ultralytics TFLite export ({type(e).__name__})") from None
        self.names = _names(meta["names"]) if isinstance(meta, dict) and "names" in meta else []
        if not self.names:
            raise InputError(path, "TFLite model has no class names in its metadata (export it with Ultralytics)")
        self.stride = int(meta.get("stride", 32))
        self._in, self._out = self.interpreter.get_input_details()[0], self.interpreter.get_output_details()[0]
        self.dynamic = False
        self.input_size = (int(self._in["shape"][1]), int(self._in["shape"][2]))  # NHWC

    def forward(self, batch: np.ndarray) -> np.ndarray:
        outs = []
        for image in batch.transpose(0, 2, 3, 1):  # NCHW -> NHWC, one at a time (batch 1 model)
            x = image[None]
            scale, zero = self._in["quantization"]
            if scale:
                x = np.round(x / scale + zero)
            self.interpreter.set_tensor(self._in["index"], x.astype(self._in["dtype"]))
            self.interpreter.invoke()
            y = self.interpreter.get_tensor(self._out["index"])[0].astype(np.float32)
            scale, zero = self._out["quantization"]
            if scale:
                y = (y - zero) * scale
            y[[0, 2]] *= self.input_size[1]  # boxes come normalised: to input pixels like the others
            y[[1, 3]] *= self.input_size[0]
            outs.append(y)
        return np.stack(outs)


def load_backend(path: str | Path, backend: str, device: str = "auto", threads: int = 0) -> Backend:
    path = Path(path)
    if backend == "onnx":
        return OnnxBackend(path, threads)
    if backend == "torch":
        return TorchBackend(path, device)
    if backend == "tflite":
        return TfliteBackend(path, threads)
    raise InputError(None, f"unknown detector backend {backend!r} (onnx, torch or tflite)")
