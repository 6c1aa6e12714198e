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
    assert summary["video_start"].startswith("2019-11-18T23:45:15")
    rows = list(csv.DictReader((out / "samples.csv").open()))
    assert len(rows) >= 5  # about 12 m walked at 1 m spacing, minus slow stretches
    assert all(abs(float(r["lat"]) - 33.1268) < 0.001 for r in rows)


@pytest.mark.shared_data
def test_gopro_clip_without_gps_is_a_one_line_error(shared_data: Path):
    karma = shared_data / "video" / "gopro" / "karma.mp4"
    assert_one_line_error(detector("run", str(karma), "-q"), "karma.mp4", "no GPS5 stream")


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
    ],
)
def test_a_command_whose_extra_is_missing_names_the_extra(tmp_path: Path, argv, absent, extra) -> None:
    """On a lean (vehicle) install the review app and the cluster are extras; each command says which to add."""
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
