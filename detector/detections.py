"""``Detections``: one columnar type for boxes, whatever backend produced them.

>>> d = Detections(
...     xyxy=np.array([[10, 20, 30, 60], [0, 0, 5, 5]], np.float32),
...     confidence=np.array([0.9, 0.2], np.float32),
...     class_id=np.array([0, 1]),
... )
>>> len(d[d.confidence > 0.5])
1
>>> d.bottom_center()[0].tolist()
[20.0, 60.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detector.yolo_labels import box_rows


@dataclass(frozen=True)
class Detections:
    """N boxes in full-frame pixels: ``xyxy`` (N, 4), ``confidence`` (N,), ``class_id`` (N,)."""

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    @classmethod
    def merge(cls, parts: list[Detections]) -> Detections:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.xyxy for p in parts]),
            np.concatenate([p.confidence for p in parts]),
            np.concatenate([p.class_id for p in parts]),
        )

    def __len__(self) -> int:
        return len(self.confidence)

    def __getitem__(self, index) -> Detections:
        return Detections(self.xyxy[index].reshape(-1, 4), self.confidence[index], self.class_id[index])

    def bottom_center(self) -> np.ndarray:
        """(N, 2) pixel points where each box meets the ground: the middle of its bottom edge."""
        return np.stack([(self.xyxy[:, 0] + self.xyxy[:, 2]) / 2, self.xyxy[:, 3]], axis=1)

    def to_yolo(self, width: int, height: int) -> np.ndarray:
        """(N, 6) YOLO label rows ``cls cx cy w h conf`` with coordinates normalised to the image size."""
        rows = box_rows(self.xyxy, self.class_id, width, height)
        return np.column_stack([rows, self.confidence.astype(np.float64)]).reshape(-1, 6)


def box_intersection(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Area shared by one ``x1 y1 x2 y2`` box and each of ``boxes`` (N, 4).

    >>> box_intersection(np.array([0, 0, 10, 10]), np.array([[5, 0, 15, 10], [20, 20, 30, 30]])).tolist()
    [50, 0]
    """
    w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    return w * h


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one ``x1 y1 x2 y2`` box with each of ``boxes`` (N, 4).

    >>> boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    >>> box_iou(np.array([0, 0, 10, 10]), boxes).round(3).tolist()
    [1.0, 0.333, 0.0]
    """
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    inter = box_intersection(box, boxes)
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def centres_in(boxes: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Which of ``regions`` (M, 4) hold the centre of each of ``boxes`` (N, 4): an (N, M) boolean matrix.

    >>> centres_in(np.array([[2, 2, 8, 8], [40, 0, 50, 10]]), np.array([[0, 0, 10, 10], [5, 0, 45, 10]])).tolist()
    [[True, True], [False, True]]
    """
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    regions = np.asarray(regions, float).reshape(-1, 4)
    cx, cy = ((boxes[:, 0] + boxes[:, 2]) / 2)[:, None], ((boxes[:, 1] + boxes[:, 3]) / 2)[:, None]
    return (regions[:, 0] <= cx) & (cx <= regions[:, 2]) & (regions[:, 1] <= cy) & (cy <= regions[:, 3])
