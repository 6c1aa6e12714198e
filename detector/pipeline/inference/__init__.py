"""Hazard detection: backends (ONNX Runtime, PyTorch) behind one detector."""

from detector.pipeline.inference.detector import HazardDetector, RoadRegion, detect_section, load_detector

__all__ = ["HazardDetector", "RoadRegion", "detect_section", "load_detector"]
