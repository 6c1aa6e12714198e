"""Hazard detection: backends (ONNX Runtime, PyTorch) behind one detector."""

from detector.inference.detector import HazardDetector, Region, detect_section, load_detector

__all__ = ["HazardDetector", "Region", "detect_section", "load_detector"]
