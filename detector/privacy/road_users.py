"""Road users to blur in evidence photos: a COCO detector's people and vehicles, as blur zones.

Face and plate detectors miss most of what a dashcam sees (helmeted riders, small and oblique plates;
measured in :mod:`detector.privacy.evidence`). A COCO detector finds the people and vehicles themselves,
so a person's head (the top of the box) and a vehicle's plate height (the lower half) are blurred whether
or not a face or a plate was found. The model is the city's to supply (``tickets.evidence.road_user_model``:
an Ultralytics YOLOv8 COCO export, ``.onnx`` or ``.tflite``); none ships with the project.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detector.errors import InputError
from detector.pipeline.inference.backends import load_backend
from detector.pipeline.inference.detector import HazardDetector
from detector.privacy.evidence import BlurRegion

HEAD_SHARE = 0.3  # of a person box, from the top
PLATE_SHARE = 0.5  # of a vehicle box, from the bottom: front and rear plates sit below the bonnet line
VEHICLES = ("car", "motorcycle", "bus", "truck")


class RoadUsers:
    """People and vehicles in a BGR frame, as the regions of them to blur (kinds ``head`` and ``plate_zone``).

    >>> users = RoadUsers("yolov8n_int8.tflite", conf=0.3)  # doctest: +SKIP
    >>> users.zones(frame)  # doctest: +SKIP
    [BlurRegion(kind='plate_zone', x1=412, y1=388, x2=590, y2=450)]
    """

    def __init__(self, model: str | Path, conf: float = 0.3, threads: int = 0) -> None:
        path = Path(model)
        backend = load_backend(path, "tflite" if path.suffix == ".tflite" else "onnx", threads=threads)
        missing = {"person", *VEHICLES} - set(backend.names)
        if missing:
            raise InputError(path, f"not a COCO detector: no class {', '.join(sorted(missing))} in its names")
        self.detector = HazardDetector(backend, backend.names, conf=conf, iou=0.5, source=str(path))
        self._person = backend.names.index("person")
        self._vehicles = {backend.names.index(name) for name in VEHICLES}

    def zones(self, image: np.ndarray) -> list[BlurRegion]:
        found = self.detector(image)
        zones = []
        for (x1, y1, x2, y2), cls in zip(found.xyxy.tolist(), found.class_id.tolist(), strict=True):
            if cls == self._person:
                zones.append(BlurRegion("head", round(x1), round(y1), round(x2), round(y1 + HEAD_SHARE * (y2 - y1))))
            elif cls in self._vehicles:
                zones.append(
                    BlurRegion("plate_zone", round(x1), round(y2 - PLATE_SHARE * (y2 - y1)), round(x2), round(y2))
                )
        return zones
