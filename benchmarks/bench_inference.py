"""Detector speed on the CPU: ONNX Runtime against Ultralytics/PyTorch, square and road-region inputs.

    .venv/bin/python benchmarks/bench_inference.py [--model models/hazards] [--frames 30] [--threads 2]

Times one 1280x720 frame end to end (pre-processing, forward pass, decoding, NMS) per row.
The first row (ONNX at 640x640) is the baseline the others are compared with.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("YOLO_OFFLINE", "1")

import numpy as np

from detector.pipeline.inference.backends import OnnxBackend, TorchBackend
from detector.pipeline.inference.detector import HazardDetector, RoadRegion, resolve_model_path


class _Square:
    """Wrap a backend so the detector letterboxes to a fixed 640x640 (as a plain export would)."""

    def __init__(self, backend, size: int = 640) -> None:
        self.backend, self.names, self.stride = backend, backend.names, backend.stride
        self.dynamic, self.input_size = False, (size, size)

    def forward(self, batch):
        return self.backend.forward(batch)


def time_detector(detector: HazardDetector, frames: list[np.ndarray]) -> float:
    detector(frames[0])  # warm-up
    times = []
    for frame in frames:
        t = time.perf_counter()
        detector(frame)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/hazards")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8) for _ in range(args.frames)]
    onnx = OnnxBackend(resolve_model_path(args.model, "onnx"), threads=args.threads)
    import torch

    torch.set_num_threads(args.threads)
    pt = TorchBackend(resolve_model_path(args.model, "torch"), device="cpu")
    classes = onnx.names
    road = RoadRegion(top=0.4)
    rows = [
        ("onnx 640x640 letterbox (baseline)", HazardDetector(_Square(onnx), classes)),
        ("onnx road region 640 wide", HazardDetector(onnx, classes, roi=road)),
        ("onnx road region, 2 tiles", HazardDetector(onnx, classes, roi=road, tiles=2)),
        ("torch 640x640 letterbox", HazardDetector(_Square(pt), classes)),
        ("torch road region 640 wide", HazardDetector(pt, classes, roi=road)),
    ]
    print(f"model: {args.model}  threads: {args.threads}  frames: {args.frames} x 1280x720")
    print(f"{'backend / input':36} {'ms/frame':>9} {'vs baseline':>12}")
    baseline = None
    for name, detector in rows:
        ms = time_detector(detector, frames)
        baseline = baseline or ms
        print(f"{name:36} {ms:9.1f} {ms / baseline:11.2f}x")


if __name__ == "__main__":
    main()
