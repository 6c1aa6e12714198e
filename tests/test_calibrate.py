"""``detector calibrate``: the lens from a rendered board, the mount from a simulated drive, bad input refused."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from detector.calibration.board import Board, calibrate_intrinsics
from detector.camera import CameraModel, load_camera, save_camera
from detector.errors import ConfigError, InputError
from detector.simulate.board import board_views

BOARD = Board(9, 6, 0.03)
LENSES = {
    "wide pinhole": CameraModel(width=960, height=540, hfov_deg=110.0, distortion=(-0.28, 0.08, 0.0, 0.0)),
    "fisheye": CameraModel(width=960, height=540, hfov_deg=140.0, lens="fisheye", distortion=(0.05, -0.02, 0.01, 0.0)),
}


def _views(camera: CameraModel, folder: Path, count: int, seed: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, view in enumerate(board_views(camera, BOARD, count, np.random.default_rng(seed))):
        cv2.imwrite(str(folder / f"view{i:02d}.png"), view)
    return folder


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "detector", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=900)


@pytest.mark.slow
@pytest.mark.parametrize("name", LENSES)
def test_the_lens_comes_back_from_a_rendered_board_and_ranges_ground_points(tmp_path: Path, name: str):
    truth = LENSES[name]
    found = calibrate_intrinsics([_views(truth, tmp_path / "board", 26, 0)], replace(BOARD, square_m=0.03), "auto",
                                 progress=False)  # fmt: skip
    assert found.lens == truth.lens
    assert found.focal_px == pytest.approx(truth.focal, rel=0.02)
    assert found.rms_px < 0.5
    mount = {"height_m": 1.4, "pitch_deg": 8.0}
    real = replace(truth, **mount)
    calibrated = CameraModel(width=960, height=540, focal_px=found.focal_px, principal_px=found.principal_px,
                             lens=found.lens, distortion=found.distortion, **mount)  # fmt: skip
    ahead, side = np.meshgrid(np.arange(5.0, 26.0, 2.5), np.array([-2.0, 0.0, 2.0]))
    u, v = real.ground_to_pixel(ahead.ravel(), side.ravel())
    inside = (u >= 0) & (u < 960) & (v >= 0) & (v < 540)
    assert inside.sum() >= 20
    fwd, right = calibrated.pixel_to_ground(u[inside], v[inside])
    ranged = np.hypot(fwd, right)
    true_range = np.hypot(ahead.ravel()[inside], side.ravel()[inside])
    assert np.max(np.abs(ranged - true_range) / true_range) <= 0.03


def test_a_board_found_in_too_few_views_is_one_line_naming_them(tmp_path: Path):
    truth = LENSES["wide pinhole"]
    folder = _views(truth, tmp_path / "board", 3, 1)
    cv2.imwrite(str(folder / "wall.png"), np.full((540, 960, 3), 128, np.uint8))
    with pytest.raises(InputError, match=r"board: the 9x6 board was found in [0-3] of 4 views; at least 8 are needed"):
        calibrate_intrinsics([folder], BOARD, progress=False)


def test_a_lens_model_we_do_not_know_is_refused_naming_the_file(tmp_path: Path):
    profile = tmp_path / "van.yaml"
    profile.write_text("width: 1280\nheight: 720\nlens: kannala\ndistortion: [0.1, 0.0, 0.0, 0.0]\n")
    with pytest.raises(ConfigError, match=r"van\.yaml: config key 'camera.lens': unknown lens model 'kannala'"):
        load_camera(profile)
    profile.write_text("width: 1280\nheight: 720\nlens: fisheye\ndistortion: [0.1, 0.0]\n")
    with pytest.raises(ConfigError, match=r"camera\.distortion"):
        load_camera(profile)


def test_a_distorted_profile_ranges_what_it_projects_and_a_plain_one_is_the_pinhole():
    lens = LENSES["wide pinhole"]
    cam = replace(lens, height_m=1.4, pitch_deg=8.0, roll_deg=1.0)
    ahead, side = np.array([4.0, 12.0, 25.0, 5.0]), np.array([3.5, -2.5, 1.5, -4.0])
    u, v = cam.ground_to_pixel(ahead, side)
    fwd, right = cam.pixel_to_ground(u, v)
    assert np.allclose(fwd, ahead, atol=1e-3) and np.allclose(right, side, atol=1e-3)
    plain = replace(cam, distortion=())
    pu, _ = plain.ground_to_pixel(ahead, side)
    assert np.abs(pu - u).max() > 15  # the lens moves points near the edge by many pixels
    explicit = replace(plain, distortion=(0.0, 0.0, 0.0, 0.0))
    assert np.array_equal(explicit.ground_to_pixel(ahead, side)[0], pu)  # no distortion: exactly the pinhole


@pytest.fixture(scope="module")
def real_camera_drive(tmp_path_factory) -> Path:
    """40 s of a simulated real dashcam: wide lens with barrel distortion, a bonnet, a burned-in stamp, a mount
    pitched 9 degrees and rolled 1.2."""
    from detector.simulate import simulate_drive

    folder = tmp_path_factory.mktemp("realcam")
    settings = {
        "world_seed": 6, "drive_seed": 1, "duration_s": 40.0, "width": 960, "height": 540, "fps": 15,
        "camera": {"pitch_deg": 9.0, "roll_deg": 1.2, "hfov_deg": 110.0, "height_m": 1.4},
        "distortion": [-0.25, 0.07, 0.0, 0.0], "bonnet": 0.1, "overlay": 4,
    }  # fmt: skip
    simulate_drive(folder, settings, progress=False)
    return folder


@pytest.mark.slow
def test_calibrate_recovers_the_mount_of_a_simulated_real_camera(tmp_path: Path, real_camera_drive: Path):
    truth = load_camera(real_camera_drive / "profile.yaml")
    board = _views(truth, tmp_path / "board", 20, 3)
    out, check = tmp_path / "van-7.yaml", tmp_path / "check.jpg"
    drive = str(real_camera_drive / "drive.mp4")
    run = _cli("calibrate", "--board", str(board), "--square-mm", "30", "--drive", drive, "--height-m", "1.4",
               "--antenna-offset", "0.8,-0.2", "--out", str(out), "--check", str(check), "-q")  # fmt: skip
    assert run.returncode == 0, run.stderr
    profile = load_camera(out)
    assert profile.name == "van-7" and profile.lens == "pinhole"
    assert profile.focal == pytest.approx(truth.focal, rel=0.02)
    assert abs(profile.pitch_deg - 9.0) <= 0.5 and abs(profile.roll_deg - 1.2) <= 0.5
    assert abs(profile.horizon_row() - truth.horizon_row()) <= 0.01 * truth.height
    assert (profile.height_m, profile.offset_forward_m, profile.offset_right_m) == (1.4, 0.8, -0.2)
    assert "static mask:" in run.stdout and "horizon at row" in run.stdout
    picture = cv2.imread(str(check))
    assert picture.shape == (540, 960, 3)
    grid = (picture[..., 1] > 200) & (picture[..., 0] < 80) & (picture[..., 2] < 80)  # the green ground grid
    rows = np.flatnonzero(grid.any(axis=1))
    tilt = truth.width / 2 * np.tan(np.radians(abs(truth.roll_deg)))  # the rolled horizon drops this much at a side
    assert rows.min() > truth.horizon_row() - tilt and rows.max() < 540  # on the road, below the horizon


@pytest.mark.slow
def test_calibrate_without_a_board_measures_the_lens_from_the_drive(tmp_path: Path, real_camera_drive: Path):
    """No board, no intrinsics: the focal length from the road's and the upright edges' vanishing points, the
    distortion from the lines along the road, then the mount as with a board."""
    truth = load_camera(real_camera_drive / "profile.yaml")
    out = tmp_path / "van-8.yaml"
    run = _cli("calibrate", "--drive", str(real_camera_drive / "drive.mp4"), "--height-m", "1.4", "--out", str(out),
               "--check", str(tmp_path / "check.jpg"), "-q")  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "lens from the drive (no board): focal" in run.stdout
    profile = load_camera(out)
    assert profile.focal == pytest.approx(truth.focal, rel=0.05)
    assert abs(profile.pitch_deg - truth.pitch_deg) <= 1.0 and abs(profile.roll_deg - truth.roll_deg) <= 1.0
    assert profile.distortion[0] < -0.1  # a barrel lens, found as one
    assert (tmp_path / "check.jpg").is_file()


def test_calibrate_without_a_board_refuses_a_drive_too_short_to_measure_the_lens(tmp_path: Path):
    from conftest import write_csv_track, write_video

    video = write_video(tmp_path / "short.mp4", 3.0)
    write_csv_track(tmp_path / "short.csv", 1_780_000_000.0, [8.0, 8.0, 8.0])
    out = tmp_path / "van.yaml"
    run = _cli("calibrate", "--drive", str(video), "--gps", str(tmp_path / "short.csv"), "--height-m", "1.4",
               "--out", str(out), "-q")  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert "short.mp4: too short or too stationary to measure the lens" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and not out.exists()


def test_calibrate_refuses_a_board_video_without_a_board_and_writes_nothing(tmp_path: Path):
    from conftest import write_video

    video = write_video(tmp_path / "board.mp4", 0.5)  # 15 views searched for the board: enough to find none
    drive = write_video(tmp_path / "drive.mp4", 2.0)
    out = tmp_path / "van.yaml"
    run = _cli("calibrate", "--board", str(video), "--drive", str(drive), "--gps", str(tmp_path / "none.gpx"),
               "--height-m", "1.4", "--out", str(out), "-q")  # fmt: skip
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "board.mp4: the 9x6 board was found in 0 of" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob("van.yaml*"))


def test_calibrate_refuses_a_drive_too_short_to_find_the_horizon(tmp_path: Path):
    from conftest import write_csv_track, write_video

    lens = tmp_path / "lens.yaml"
    save_camera(LENSES["wide pinhole"], lens)
    video = write_video(tmp_path / "short.mp4", 3.0)
    write_csv_track(tmp_path / "short.csv", 1_780_000_000.0, [8.0, 8.0, 8.0])
    out = tmp_path / "van.yaml"
    run = _cli("calibrate", "--intrinsics", str(lens), "--drive", str(video), "--gps", str(tmp_path / "short.csv"),
               "--height-m", "1.4", "--out", str(out), "-q")  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert "short.mp4: too short or too stationary to find the horizon" in run.stderr
    assert not out.exists()


@pytest.mark.slow
def test_a_real_cameras_drive_places_its_hazards_and_none_on_its_stamp_or_bonnet(tmp_path: Path, real_camera_drive):
    """Distorted, stamped, with a bonnet, through its true profile: hazards land within the geo targets, and a
    detector that fires on the stamp and bonnet in every frame adds no hazard (the static mask keeps them out)."""
    from detector.config import load_config
    from detector.geo import LocalFrame
    from detector.run import run_drive
    from detector.simulate.oracle import FixedPixelFiring, Oracle, load_truth
    from detector.store import HazardStore

    folder = real_camera_drive
    truth = load_truth(folder / "truth.geojson")
    local = LocalFrame(float(np.median([t["lat"] for t in truth])), float(np.median([t["lon"] for t in truth])))
    profile = folder / "profile.yaml"
    oracle = Oracle(folder, truth, load_camera(profile), local)
    fooled = FixedPixelFiring.on_static(oracle, folder / "static.png")
    assert len(fooled.blobs) >= 3  # the stamp's lines, the logo, the bonnet
    cfg = load_config(overrides=["run.progress=false", "tickets.mode=off", "tickets.auto_file=true",
                                 f"drive.camera={profile}"])  # fmt: skip
    db, out = tmp_path / "h.db", tmp_path / "out"
    report = run_drive(folder / "drive.mp4", folder / "drive.gpx", cfg, out, db, fooled)

    with HazardStore(db) as store:
        hazards = store.query("SELECT class, lat, lon, status FROM hazards")
    tx, ty = local.to_xy([t["lat"] for t in truth], [t["lon"] for t in truth])
    errors = []
    for hazard in hazards:
        x, y = local.to_xy(hazard["lat"], hazard["lon"])
        same = np.array([t["class"] == hazard["class"] for t in truth])
        distance = np.where(same, np.hypot(tx - x, ty - y), np.inf).min()
        assert distance <= 5.0, f"a {hazard['class']} {distance:.1f} m from any true one: from the stamp or bonnet"
        if hazard["status"] == "confirmed":
            errors.append(distance)
    seen = int((oracle.views >= 3).sum())
    assert len(errors) >= 0.8 * seen and seen >= 3
    assert np.median(errors) <= 2.5 and np.percentile(errors, 90) <= 5.0

    truth_mask = cv2.imread(str(folder / "static.png"), cv2.IMREAD_GRAYSCALE) > 0
    learnt = cv2.imread(str(out / "static_mask.png"), cv2.IMREAD_GRAYSCALE) > 0
    assert learnt[truth_mask].mean() >= 0.9  # what rides along with the camera is masked...
    assert report.masked_fraction <= truth_mask.mean() + 0.08  # ...and not much of the road with it
