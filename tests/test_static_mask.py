"""Static pixels: a dashcam's stamp, a logo and the bonnet are found from the drive's own frames and masked."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from detector.config import load_config
from detector.detections import Detections
from detector.geo import LocalFrame
from detector.pipeline.static_mask import MaskLearner, StaticMask, find_static
from detector.simulate.overlay import draw_overlay, random_style

SAMPLE = Path(__file__).resolve().parents[1] / "sample_footage"


@pytest.fixture(scope="module")
def moving_frames() -> list[np.ndarray]:
    """Frames of the sample drive about 6 m apart (by its true track), as the learner keeps them."""
    import csv

    rows = list(csv.DictReader((SAMPLE / "trajectory.csv").open()))
    lat = np.array([float(r["lat"]) for r in rows])
    lon = np.array([float(r["lon"]) for r in rows])
    x, y = LocalFrame(lat[0], lon[0]).to_xy(lat, lon)
    odometer = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
    keep, last = set(), -np.inf
    for i, d in enumerate(odometer):
        if d - last >= 6.0:
            keep.add(i)
            last = d
    with av.open(str(SAMPLE / "drive.mp4")) as video:
        return [f.to_ndarray(format="bgr24") for i, f in enumerate(video.decode(video=0)) if i in keep][:60]


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 5, 7])
def test_a_burned_in_stamp_is_found_digits_and_all(moving_frames, seed: int):
    style = random_style(np.random.default_rng(seed))
    stamped = [draw_overlay(f, style, 1780300800.0 + 1.7 * k, 12.0, 31.25, 34.79) for k, f in enumerate(moving_frames)]
    drawn = np.any([d for _, d in stamped], axis=0)  # every pixel any frame's stamp touched, each second's digits
    mask = find_static([s for s, _ in stamped], load_config().mask)
    assert mask is not None and mask.shape == drawn.shape
    assert (mask & drawn).sum() / drawn.sum() >= 0.85
    assert (mask & ~drawn).mean() <= 0.10  # besides the stamp: the simulator's sliver of bonnet, little else


def test_the_road_is_not_masked_without_a_stamp(moving_frames):
    mask = find_static(moving_frames, load_config().mask)
    assert mask is not None
    h = mask.shape[0]
    assert mask[int(0.4 * h) : int(0.9 * h)].mean() < 0.02  # where hazards are seen: kept
    assert mask[int(0.97 * h) :].mean() > 0.5  # the bonnet's sliver at the bottom: masked


def test_too_few_frames_or_a_stationary_camera_learn_nothing(moving_frames):
    assert find_static(moving_frames[:5], load_config().mask) is None
    assert find_static([moving_frames[10]] * 30, load_config().mask) is None  # everything still: not a moving drive


def test_the_learner_applies_the_profile_regions_at_once_and_what_it_learns_later(moving_frames):
    style = random_style(np.random.default_rng(1))
    learner = MaskLearner(load_config().mask, regions=((0.0, 0.0, 0.1, 0.1),))
    on_stamp = None
    for k, frame in enumerate(moving_frames):
        image, drawn = draw_overlay(frame, style, 1780300800.0 + k, 10.0)
        if on_stamp is None:
            import cv2

            joined = cv2.dilate(drawn.astype(np.uint8), np.ones((9, 25), np.uint8))
            _, _, stats, _ = cv2.connectedComponentsWithStats(joined)
            x, y, w, h, _ = stats[1 + int(np.argmax(stats[1:, 4]))]  # the stamp's longest line of text
            xs, ys = np.array([x, x + w]), np.array([y, y + h])
            on_stamp = Detections(np.array([[xs.min(), ys.min(), xs.max(), ys.max()]], np.float32),
                                  np.ones(1, np.float32), np.ones(1, np.int64))  # fmt: skip
            corner = Detections(np.array([[2, 2, 40, 30]], np.float32), np.ones(1, np.float32), np.zeros(1, np.int64))
            assert len(learner.keep(on_stamp)) == 1  # nothing learnt before the first frame
        learner.add(image, 6.0 * k)
        if k == 0:
            assert len(learner.keep(corner)) == 0  # the profile's region holds from the first frame
    assert learner.learnt and len(learner.keep(on_stamp)) == 0
    mask = learner.final()
    assert 0.0 < mask.fraction < 0.2
    road = Detections(np.array([[600, 450, 680, 500]], np.float32), np.ones(1, np.float32), np.zeros(1, np.int64))
    assert len(mask.keep(road)) == 1


def test_a_mask_drops_the_sightings_whose_box_it_covers():
    from types import SimpleNamespace

    mask = StaticMask.from_regions(((0.0, 0.8, 1.0, 1.0),), 100, 100)
    kept = mask.drop_sightings([SimpleNamespace(bbox=(10, 85, 30, 99)), SimpleNamespace(bbox=(10, 40, 30, 60))])
    assert [s.bbox for s in kept] == [(10, 40, 30, 60)]
