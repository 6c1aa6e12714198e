"""``drive.camera: auto``: a drive from a camera never calibrated is measured from its own first few hundred metres,
or, where it gives too little, the run says in one line that positions will be rough and how to calibrate."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from conftest import PROJECT, write_csv_track, write_video

from detector.calibration.auto import REMEMBERED, CameraEstimate, choose_camera, implausible, remember_estimate
from detector.camera import AUTO, load_camera, save_camera
from detector.config import load_config
from detector.errors import ConfigError

TRUE_CAMERA = {"pitch_deg": 11.0, "roll_deg": -0.8, "hfov_deg": 110.0, "height_m": 1.5}


@pytest.fixture(scope="module")
def unknown_camera_drive(tmp_path_factory) -> Path:
    """40 s of a simulated real dashcam nobody calibrated: a wide lens with barrel distortion, pitched 11 degrees
    (the default profile says 8), rolled, 1.5 m up, a bonnet and a burned-in stamp. Its true profile is kept as
    ``true_profile.yaml``, not where ``auto`` would find it."""
    from detector.simulate import simulate_drive

    folder = tmp_path_factory.mktemp("unknown-camera")
    settings = {
        "world_seed": 6, "drive_seed": 1, "duration_s": 40.0, "width": 960, "height": 540, "fps": 15,
        "camera": TRUE_CAMERA, "distortion": [-0.25, 0.07, 0.0, 0.0], "bonnet": 0.1, "overlay": 4,
    }  # fmt: skip
    simulate_drive(folder, settings, progress=False)
    (folder / "profile.yaml").rename(folder / "true_profile.yaml")
    return folder


def _number(line: str, pattern: str) -> float:
    found = re.search(pattern, line)
    assert found, f"{pattern!r} not in {line!r}"
    return float(found.group(1))


@pytest.mark.slow
def test_run_measures_an_unknown_camera_from_the_drive_and_places_its_hazards(tmp_path: Path, unknown_camera_drive):
    """No profile given, none beside the drive: the run measures focal length, lens, pitch, roll, yaw and height from
    the drive's start, says so with the uncertainties and how to keep it, and its hazards land within the targets."""
    from detector.geo import LocalFrame
    from detector.run import run_drive
    from detector.simulate.oracle import Oracle, load_truth
    from detector.store import HazardStore

    folder = unknown_camera_drive
    truth_camera = load_camera(folder / "true_profile.yaml")
    truth = load_truth(folder / "truth.geojson")
    local = LocalFrame(float(np.median([t["lat"] for t in truth])), float(np.median([t["lon"] for t in truth])))
    oracle = Oracle(folder, truth, truth_camera, local)  # what a detector sees through the true camera
    cfg = load_config(overrides=["run.progress=false", "tickets.mode=off", "tickets.auto_file=true"])
    assert cfg.drive.camera == AUTO  # the default
    db = tmp_path / "h.db"
    report = run_drive(folder / "drive.mp4", folder / "drive.gpx", cfg, tmp_path / "out", db, oracle)

    line = report.camera
    assert line.startswith("camera: no profile; estimated from this drive: focal") and "\n" not in line
    # The quick estimate (24 stretches at 960 px) trades focal against barrel distortion: 339-365 px for a true 336
    # across encodings of this same drive (x264 output differs run to run). `detector calibrate --drive`, on every
    # stretch, holds the 5%; the positions below are what the quick one must get right.
    assert _number(line, r"focal (\d+) px") == pytest.approx(truth_camera.focal, rel=0.10)
    assert abs(_number(line, r"pitch (-?[\d.]+) deg") - TRUE_CAMERA["pitch_deg"]) <= 1.0
    assert abs(_number(line, r"roll (-?[\d.]+)") - TRUE_CAMERA["roll_deg"]) <= 1.0
    assert _number(line, r"height ([\d.]+) m") == pytest.approx(TRUE_CAMERA["height_m"], rel=0.15)  # +2..8% measured
    assert "+/-" in line and "detector calibrate --drive" in line and str(folder / "profile.yaml") in line
    assert line in report.summary()

    with HazardStore(db) as store:
        hazards = store.query("SELECT class, lat, lon, status FROM hazards")
        (camera_name,) = {r["camera"] for r in store.query("SELECT camera FROM drives")}
    assert camera_name == "estimated from drive"
    tx, ty = local.to_xy([t["lat"] for t in truth], [t["lon"] for t in truth])
    errors = []
    for hazard in hazards:
        x, y = local.to_xy(hazard["lat"], hazard["lon"])
        same = np.array([t["class"] == hazard["class"] for t in truth])
        if hazard["status"] == "confirmed":
            errors.append(np.where(same, np.hypot(tx - x, ty - y), np.inf).min())
    seen = int((oracle.views >= 3).sum())
    assert seen >= 3 and len(errors) >= 0.8 * seen
    assert len(hazards) <= seen + 1  # a hazard is one place, not one per frame that saw it
    # the target is a median of 2.5 m; measured 1.5 m, p90 2.1 (through the default profile: 2.1 and 4.0)
    assert np.median(errors) <= 2.5 and np.percentile(errors, 90) <= 3.0

    # Remembered beside the drive: the vehicle's next drive (here the same one, into another store) is not measured
    # again, and what it gives is what the measured camera gave, sighting for sighting.
    remembered = folder / REMEMBERED
    assert f"remembered for this vehicle's next drives in {remembered}" in line
    again = run_drive(
        folder / "drive.mp4", folder / "drive.gpx", cfg, tmp_path / "again", tmp_path / "again.db", oracle
    )
    assert again.camera.startswith(f"camera: no profile; estimated from drive (an earlier drive of this vehicle), "
                                   f"remembered in {remembered}")  # fmt: skip
    for name in ("samples.csv", "sightings.csv"):
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "out" / name).read_bytes()
    remembered.unlink()


def test_a_drive_too_short_to_measure_says_positions_will_be_rough_and_how_to_calibrate(tmp_path: Path):
    """Too short, and too stationary: the default profile, and one line that says so, with the command."""
    from detector.pipeline.sources.drive import open_drive

    cfg = load_config(overrides=["run.progress=false"])
    video = write_video(tmp_path / "short.mp4", 4.0)
    for name, speeds in (("short", [8.0] * 4), ("crawling", [1.0] * 4)):
        drive = open_drive(video, write_csv_track(tmp_path / f"{name}.csv", 1_780_000_000.0, speeds), cfg)
        choice = choose_camera(AUTO, cfg.drive.camera_estimate_m, drive)
        assert choice.rough and choice.camera == load_camera("configs/cameras/sim_dashcam.yaml")
        assert "\n" not in choice.line
        assert "positions will be rough until the camera is calibrated" in choice.line
        assert "straight stretches at speed in its first 400 m (need 12): too short, too stationary" in choice.line
        assert f"detector calibrate --drive {video} --height-m HEIGHT --out {tmp_path / 'profile.yaml'}" in choice.line


def test_the_run_prints_the_rough_line_for_a_drive_it_cannot_measure(tmp_path: Path, tiny_model: Path):
    start = datetime(2026, 6, 1, 7, 30, tzinfo=UTC)
    video = write_video(tmp_path / "patrol.mp4", 5, creation_time=start)
    write_csv_track(tmp_path / "patrol.csv", start.timestamp(), [6.0] * 5)
    run = subprocess.run(
        [sys.executable, "-m", "detector", "run", str(video), "--out", str(tmp_path / "out"), "-q",
         "--set", f"detect.model={tiny_model}"],
        capture_output=True, text=True, cwd=PROJECT, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    (line,) = [x for x in run.stdout.splitlines() if x.startswith("camera:")]
    assert "positions will be rough until the camera is calibrated" in line and "detector calibrate --drive" in line


def test_a_profile_beside_the_drive_is_the_vehicles_camera_and_a_named_one_wins(tmp_path: Path):
    video = tmp_path / "drive.mp4"
    video.write_bytes(b"")
    van = load_camera("configs/cameras/sim_dashcam.yaml")
    save_camera(replace(van, name="van-12", pitch_deg=6.0), tmp_path / "profile.yaml")
    beside = choose_camera(AUTO, 400.0, None, video)
    assert not beside.rough and beside.camera.name == "van-12" and beside.camera.pitch_deg == 6.0
    assert "kept beside the drive" in beside.line
    named = choose_camera("configs/cameras/sim_dashcam.yaml", 400.0, None, video)
    assert named.camera.name == "sim_dashcam" and not named.rough
    live = choose_camera(AUTO, 400.0, None, Path("/dev/video0"))  # a live camera: nothing to measure
    assert live.rough and "no recorded drive to measure it from" in live.line


def test_an_estimate_remembered_beside_the_drive_is_the_vehicles_next_drives_camera(tmp_path: Path):
    """A drive too short to measure, in a folder where an earlier drive's estimate is remembered: that camera, with
    a line saying where it is kept; not for a video of another size, nor from a file that does not read."""
    from detector.pipeline.sources.drive import open_drive

    cfg = load_config(overrides=["run.progress=false"])
    video = write_video(tmp_path / "next.mp4", 4.0, size=(320, 180))
    drive = open_drive(video, write_csv_track(tmp_path / "next.csv", 1_780_000_000.0, [8.0] * 4), cfg)
    van = load_camera("configs/cameras/sim_dashcam.yaml")
    measured = replace(van.scaled_to(320, 180), name="estimated from first", pitch_deg=9.5, height_m=1.6)
    estimate = CameraEstimate(measured, 3.0, None, 180.0, 24, 6.0)  # type: ignore[arg-type]  # the mount is not read
    kept = remember_estimate(estimate, tmp_path / "first.mp4")
    assert kept == tmp_path / REMEMBERED and "first.mp4" in kept.read_text()

    choice = choose_camera(AUTO, cfg.drive.camera_estimate_m, drive)
    assert not choice.rough and choice.camera == measured and "\n" not in choice.line
    assert choice.line.startswith(f"camera: no profile; estimated from first (an earlier drive of this vehicle), "
                                  f"remembered in {kept} (delete it to measure this drive's)")  # fmt: skip
    assert f"--out {tmp_path / 'profile.yaml'}" in choice.line

    save_camera(replace(measured, width=640, height=360), kept)  # another size: not this camera as it records now
    assert choose_camera(AUTO, cfg.drive.camera_estimate_m, drive).rough
    kept.write_text("focal_px: [\n", encoding="utf-8")
    assert choose_camera(AUTO, cfg.drive.camera_estimate_m, drive).rough  # measured again (too short here)
    unwritable = tmp_path / "a-file" / "drive.mp4"  # its folder is a file: nothing remembered, no error
    unwritable.parent.write_text("", encoding="utf-8")
    assert remember_estimate(estimate, unwritable) is None


def test_the_estimate_distance_is_bounded():
    with pytest.raises(ConfigError, match=r"drive\.camera_estimate_m"):
        load_config(overrides=["drive.camera_estimate_m=0"])
    assert load_config().drive.camera_estimate_m == 400.0


def test_a_copied_drive_without_its_profile_is_not_taken_for_another_camera(tmp_path: Path, sample_clip: Path):
    """The sample clip's folder keeps its profile; a copy of the video alone has none beside it."""
    moved = Path(shutil.copy(sample_clip, tmp_path / "copy.mp4"))
    assert choose_camera(AUTO, 400.0, None, sample_clip).camera.name == "sim_dashcam"
    assert choose_camera(AUTO, 400.0, None, moved).rough


def test_a_measured_camera_no_dashcam_could_be_is_refused():
    """A scene that fooled the measurement (a wall, a level camera on a ramp) gives the warning, not the camera."""
    good = replace(load_camera("configs/cameras/sim_dashcam.yaml"), pitch_deg=9.0, height_m=1.45)
    assert implausible(good) is None
    assert "field of view" in implausible(replace(good, focal_px=good.width * 3.0))
    assert "pitched 45.0 degrees down" in implausible(replace(good, pitch_deg=45.0))
    assert "rolled -12.0 degrees" in implausible(replace(good, roll_deg=-12.0))
    assert "9.00 m above the road" in implausible(replace(good, height_m=9.0))
