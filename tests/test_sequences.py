"""Real frame sequences: potholes followed frame to frame by the road's motion, one view per frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detector.detections import Detections
from detector.pipeline.dedup.within_drive import evidence
from detector.train.sequences import Frame, RoadGeometry, advance_boxes, confirmed_tracks, follow

ROAD = RoadGeometry(x_v=512.0, y_h=100.0)
K = 0.004  # the road's advance between frames


def _frames(truth: list[np.ndarray], found: list[list[tuple[list[float], float]]]) -> list[Frame]:
    return [
        Frame(
            Path(f"{i}.jpg"),
            boxes,
            Detections(
                np.array([b for b, _ in dets], np.float32).reshape(-1, 4),
                np.array([c for _, c in dets], np.float32),
                np.zeros(len(dets), np.int64),
            ),
        )
        for i, (boxes, dets) in enumerate(zip(truth, found, strict=True))
    ]


def _drive(box: np.ndarray, frames: int) -> list[np.ndarray]:
    """A box carried forward ``frames`` times by the road's motion."""
    out = [box.reshape(1, 4)]
    for _ in range(frames - 1):
        out.append(advance_boxes(out[-1], ROAD, K))
    return out


def test_touching_labels_are_one_pothole_seen_once_per_frame():
    """A pothole labelled with two touching boxes, each with a box of its own, is one track seen once per frame
    (its surest box); a false box in no label, carried along, is one false track."""
    pothole = _drive(np.array([480.0, 200.0, 540.0, 220.0]), 3)
    shift = np.array([1.0, 0.0, 1.0, 0.0])  # the right half, overlapping the left by 2 px
    halves = [np.vstack([b, b + shift * (b[0, 2] - b[0, 0] - 2)]) for b in pothole]
    crack = _drive(np.array([300.0, 160.0, 330.0, 170.0]), 3)
    found = [
        [(list(halves[0][0]), 0.4), (list(halves[0][1]), 0.5), (list(crack[0][0]), 0.3)],
        [(list(halves[1][1]), 0.3), (list(crack[1][0]), 0.35)],
        [(list(halves[2][0]), 0.35)],
    ]
    tracks = follow(_frames(halves, found), ROAD, conf=0.25)
    true = [t for t in tracks if t.true]
    false = [t for t in tracks if not t.true]
    assert len(true) == 1 and true[0].frames == [0, 1, 2]
    assert true[0].views == pytest.approx({0: 0.5, 1: 0.3, 2: 0.35}) and true[0].detected_run == 3
    assert len(false) == 1 and false[0].views == pytest.approx({0: 0.3, 1: 0.35})
    # Below the per-frame threshold a box is no view: the pothole is then detected in two frames, not three.
    assert follow(_frames(halves, found), ROAD, conf=0.32)[0].views == pytest.approx({0: 0.5, 2: 0.35})


def test_confirmed_tracks_counts_what_a_rule_confirms():
    """Two potholes labelled in 3 frames: one seen in all 3, one in a single frame; a false box in 2 frames."""
    seen = _drive(np.array([480.0, 200.0, 540.0, 220.0]), 3)
    once = _drive(np.array([700.0, 180.0, 740.0, 195.0]), 3)
    truth = [np.vstack([a, b]) for a, b in zip(seen, once, strict=True)]
    glare = _drive(np.array([200.0, 150.0, 220.0, 160.0]), 2)
    found = [
        [(list(seen[0][0]), 0.3), (list(once[0][0]), 0.9), (list(glare[0][0]), 0.6)],
        [(list(seen[1][0]), 0.3), (list(glare[1][0]), 0.6)],
        [(list(seen[2][0]), 0.3)],
    ]
    sequences = [(_frames(truth, found), ROAD)]

    def rule(need: int, level: float):
        return lambda views: len(views) >= need and evidence(views) >= level

    r = confirmed_tracks(sequences, 0.25, rule(2, 0.6))  # 0.3 x 3: 0.657; glare 0.6 x 2: 0.84
    assert (r.long_tracks, r.long_confirmed, r.seen_tracks, r.seen_confirmed) == (2, 1, 1, 1)
    assert (r.true_tracks, r.false_confirmed, r.frames) == (2, 1, 3)
    r = confirmed_tracks(sequences, 0.25, rule(3, 0.6))
    assert (r.long_confirmed, r.seen_confirmed, r.false_confirmed) == (1, 1, 0)
    r = confirmed_tracks(sequences, 0.25, rule(2, 0.7))
    assert (r.long_confirmed, r.seen_confirmed, r.false_confirmed) == (0, 0, 1)


def test_a_frame_without_labels_gives_false_tracks_only():
    """Between labelled frames, a frame with no labelled pothole: its boxes are false, the pothole is not seen there."""
    pothole = _drive(np.array([480.0, 200.0, 540.0, 220.0]), 3)
    truth = [pothole[0], np.zeros((0, 4)), pothole[2]]
    found = [[(list(pothole[0][0]), 0.5)], [(list(pothole[1][0]), 0.4)], [(list(pothole[2][0]), 0.6)]]
    tracks = follow(_frames(truth, found), ROAD, conf=0.25)
    assert sorted((t.true, len(t.views)) for t in tracks) == [(False, 1), (True, 1), (True, 1)]
