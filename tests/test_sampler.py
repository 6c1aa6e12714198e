"""The distance sampler on small synthetic drives: a checkerboard video and a CSV track."""

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from conftest import write_csv_track, write_video

from detector.config import load_config
from detector.errors import InputError
from detector.pipeline.sampler import CloserLook, DistanceSelector, SamplingStats, sample_drive
from detector.pipeline.sources.drive import open_drive

START = datetime(2026, 6, 1, 7, 30, tzinfo=UTC)
# 3 s at 6 m/s, 4 s stopped, 3 s at 6 m/s: 36 m in 10 s.
STOP_AND_GO = [6.0] * 3 + [0.0] * 4 + [6.0] * 3


def _drive(tmp_path: Path, speeds=STOP_AND_GO, blur_every=0, offset_s=0.0, **overrides):
    video = write_video(tmp_path / "drive.mp4", len(speeds), creation_time=START, blur_every=blur_every)
    write_csv_track(tmp_path / "drive.csv", START.timestamp() + offset_s, speeds)
    cfg = load_config(overrides=[f"{k}={v}" for k, v in overrides.items()])
    return open_drive(video, None, cfg), cfg


def test_selector_keeps_the_sharpest_of_each_window_and_nothing_when_slow():
    sel = DistanceSelector(spacing_m=3.0, min_speed_mps=1.0)
    kept = []
    pushes = [("a", 0.1, 5, 1.0), ("b", 1.0, 5, 9.0), ("slow", 2.0, 0.5, 99.0), ("c", 2.5, 5, 2.0)]
    pushes += [("d", 3.1, 5, 1.0), ("e", 3.0, 0.2, 50.0), ("f", 8.9, 5, 3.0)]
    for name, d, v, score in pushes:
        kept += [item for item, _ in sel.push(name, d, v, score)]
    kept += [item for item, _ in sel.finish()]
    assert kept == ["b", "d", "f"]


def test_selector_never_emits_a_window_twice():
    sel = DistanceSelector(spacing_m=3.0, min_speed_mps=0.0)
    kept = []
    for d in [0.5, 3.5, 2.9, 3.6, 6.1]:  # odometer dithers back into window 0
        kept += [d for d, _ in sel.push(d, d, 1.0, 1.0)]
    kept += [d for d, _ in sel.finish()]
    assert kept == [0.5, 3.5, 6.1]


def test_samples_one_frame_per_spacing_and_none_while_stopped(tmp_path: Path):
    drive, cfg = _drive(tmp_path)
    stats = SamplingStats()
    frames = list(sample_drive(drive, cfg.sampling, stats=stats))
    assert 11 <= len(frames) <= 13  # 36 m at 3 m spacing
    times = np.array([f.video_time for f in frames])
    assert not np.any((times > 3.2) & (times < 6.8)), "sampled while stationary"
    dist = np.array([f.distance_m for f in frames])
    assert np.all(np.diff(dist) > 1.0)
    assert stats.frames_sampled == len(frames)
    assert 3.0 <= stats.stationary_s <= 5.0
    assert 33 <= stats.distance_m <= 39
    # The stationary span was sought over, not decoded.
    assert stats.frames_decoded < 300 - 30


def test_progress_counts_the_covered_video_to_its_end_in_seconds_and_times_real_time(tmp_path: Path, monkeypatch):
    from tqdm import tqdm

    from detector.pipeline import sampler

    shown: list[tuple[float, float, str]] = []

    class Bar(tqdm):
        def close(self) -> None:
            shown.append((self.n, self.total, str(self)))
            super().close()

    monkeypatch.setattr(sampler, "tqdm", Bar)
    drive, cfg = _drive(tmp_path)  # the stop is sought over: the bar jumps across it
    list(sample_drive(drive, cfg.sampling, progress=True))
    n, total, text = shown[0]  # as the bar stood when sampling ended
    assert n == pytest.approx(total) and total == pytest.approx(drive.covered[1] - drive.covered[0])
    assert f"{total:.1f}/{total:.1f} s of video" in text and "x real time" in text, text


def test_sampled_frames_carry_position_time_and_motion(tmp_path: Path):
    drive, cfg = _drive(tmp_path)
    frames = list(sample_drive(drive, cfg.sampling))
    f = frames[3]
    assert f.image.shape == (180, 320, 3)
    assert f.drive_id == drive.id and drive.id.startswith("drive-")
    assert f.utc == pytest.approx(START.timestamp() + f.video_time)
    assert f.speed == pytest.approx(6.0, abs=0.01)
    assert f.heading == pytest.approx(0.0, abs=0.5) or f.heading == pytest.approx(360.0, abs=0.5)
    lats = [fr.lat for fr in frames]
    assert lats == sorted(lats)  # driving north
    # Position agrees with the odometer: 111 km per degree of latitude.
    assert (f.lat - 31.25) * 111_000 == pytest.approx(f.distance_m, abs=0.5)


def test_prefers_the_sharpest_frame_in_each_window(tmp_path: Path):
    drive, cfg = _drive(tmp_path, speeds=[6.0] * 6, blur_every=5)
    frames = list(sample_drive(drive, cfg.sampling))
    assert len(frames) >= 10
    assert all(f.frame_index % 5 == 0 for f in frames), [f.frame_index for f in frames]


def test_gps_offset_shifts_the_alignment(tmp_path: Path):
    # The track starts 2 s after the container's time; an offset of 2 s aligns them again.
    drive, _ = _drive(tmp_path, offset_s=2.0, **{"drive.gps_offset_s": 2.0})
    assert drive.start_source == "container time"
    assert drive.covered == (pytest.approx(0.0), pytest.approx(10.0))
    assert drive.video_start_utc == pytest.approx(START.timestamp() + 2.0)


def test_partial_overlap_warns_and_samples_only_the_covered_part(tmp_path: Path):
    drive, cfg = _drive(tmp_path, offset_s=4.0)
    assert drive.covered[0] == pytest.approx(4.0)
    assert any("precede the GPS track" in w for w in drive.warnings)
    assert all(f.video_time >= 4.0 for f in sample_drive(drive, cfg.sampling))


def test_video_outside_the_track_says_by_how_much(tmp_path: Path):
    with pytest.raises(InputError, match=r"starts 90\.0 s after the track ends"):
        _drive(tmp_path, offset_s=-100.0)


def test_track_start_alignment_when_asked(tmp_path: Path):
    drive, _ = _drive(tmp_path, offset_s=3600.0, **{"drive.video_start": "track"})
    assert drive.start_source == "track start"
    assert drive.video_start_utc == pytest.approx(START.timestamp() + 3600.0)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "cannot open video"), (b"not a video at all" * 100, "cannot open video")],
)
def test_unreadable_video_is_a_one_line_error(tmp_path: Path, content: bytes, message: str):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    write_csv_track(tmp_path / "bad.csv", START.timestamp(), [5.0] * 5)
    with pytest.raises(InputError, match=message) as err:
        open_drive(bad, None, load_config())
    assert str(err.value).startswith(str(bad))


def test_truncated_video_is_an_error_not_a_crash(tmp_path: Path):
    full = write_video(tmp_path / "full.mp4", 6, creation_time=START)
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    write_csv_track(tmp_path / "cut.csv", START.timestamp(), [6.0] * 6)
    cfg = load_config()
    with pytest.raises(InputError, match=r"cut\.mp4"):
        drive = open_drive(cut, None, cfg)
        list(sample_drive(drive, cfg.sampling))


def test_prefetched_keeps_order_raises_the_producers_error_and_stops_early():
    from detector.pipeline.sampler import prefetched

    assert list(prefetched(iter(range(50)), depth=3)) == list(range(50))

    def failing():
        yield 1
        raise InputError("drive.mp4", "corrupt frame")

    stream = prefetched(failing(), depth=3)
    assert next(stream) == 1
    with pytest.raises(InputError, match="corrupt frame"):
        next(stream)

    finished = []

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            finished.append(True)

    stream = prefetched(endless(), depth=2)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()  # the consumer stops: the producer and its generator end too
    assert finished == [True]


def test_focus_samples_closer_after_a_detection_then_goes_back():
    closer_look = CloserLook(spacing_m=1.0, length_m=6.0)
    sel = DistanceSelector(spacing_m=3.0, min_speed_mps=0.0, closer_look=closer_look)
    kept: list[float] = []
    for d in np.arange(0.0, 30.0, 0.25):
        for item, _ in sel.push(float(d), float(d), 5.0, 1.0):
            kept.append(item)
            if item == 9.0:  # the detector sees something in the frame at 9 m
                closer_look.request(np.array([0.5]), item)
    kept += [d for d, _ in sel.finish()]
    ends, gaps = np.array(kept[1:]), np.diff(kept)
    # The 9 m frame is handed over when its window closes at 12 m: closer frames from there.
    before, during, after = gaps[ends <= 12.0], gaps[(ends > 12.0) & (ends <= 15.0)], gaps[ends > 18.0]
    assert np.all(before == 3.0) and np.all(during == 1.0) and np.all(after == 3.0)
    assert len(kept) == len(set(kept)) and kept == sorted(kept)
    assert kept[-1] >= 14.0 and sum(9.0 < k <= 15.0 for k in kept) == 4


def test_focus_off_when_its_length_is_zero():
    cfg = load_config(overrides=["sampling.focus_m=0"])
    assert CloserLook.from_config(cfg.sampling) is None
    assert CloserLook.from_config(load_config().sampling).spacing_m < load_config().sampling.spacing_m


def test_a_faint_detection_starts_the_closer_look_but_is_not_reported():
    from detector.detections import Detections
    from detector.pipeline.frame_step import screen

    focus = CloserLook.from_config(load_config(overrides=["sampling.focus_conf=0.15"]).sampling)
    at = np.array([0.4, 0.4])  # per class: pothole, fallen_sign
    boxes = np.array([[10, 10, 50, 40], [100, 10, 140, 40]], np.float32)
    faint = Detections(boxes, np.array([0.2, 0.3], np.float32), np.array([0, 0]))
    assert len(screen(faint, at, focus, 100.0)) == 0
    assert focus.until_m == 100.0 + focus.length_m  # looked closer all the same

    fainter = Detections(boxes[:1], np.array([0.1], np.float32), np.array([0]))
    assert len(screen(fainter, at, focus, 200.0)) == 0 and focus.until_m == 115.0  # below focus_conf: nothing
    mixed = Detections(boxes, np.array([0.2, 0.7], np.float32), np.array([0, 1]))
    reported = screen(mixed, at, focus, 300.0)
    assert reported.class_id.tolist() == [1] and focus.until_m == 315.0
    assert len(screen(mixed, at, None, 400.0)) == 1  # closer look off: reporting unchanged


def test_the_closer_look_keeps_the_farthest_request_from_many_threads():
    import threading

    closer_look = CloserLook(spacing_m=1.0, length_m=10.0, conf=0.2)
    requests = [np.arange(k, 4000, 8, dtype=float) for k in range(8)]

    def ask(distances: np.ndarray) -> None:
        for d in distances:
            closer_look.request(np.array([0.9]), float(d))

    threads = [threading.Thread(target=ask, args=(d,)) for d in requests]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert closer_look.until_m == 3999.0 + 10.0
    assert closer_look.spacing_at(4005.0, default=4.0) == 1.0 and closer_look.spacing_at(4009.0, default=4.0) == 4.0
    # Below conf: no closer look.
    assert not closer_look.request(np.array([0.1]), 9000.0) and closer_look.until_m == 4009.0


def test_each_class_is_reported_at_its_own_threshold():
    from detector.detections import Detections
    from detector.pipeline.frame_step import report_thresholds, screen

    cfg = load_config(overrides=["detect.conf.pothole=0.25", "detect.conf.fallen_sign=0.6"])
    at = report_thresholds(cfg)
    assert at.tolist() == [0.25, 0.6]
    boxes = np.array([[10, 10, 50, 40], [100, 10, 140, 40], [200, 10, 240, 40]], np.float32)
    found = Detections(boxes, np.array([0.3, 0.5, 0.7], np.float32), np.array([0, 1, 1]))
    assert screen(found, at, None, 0.0).confidence.tolist() == pytest.approx([0.3, 0.7])
    assert report_thresholds(load_config(overrides=["detect.conf=0.3"])).tolist() == [0.3, 0.3]  # one for all
