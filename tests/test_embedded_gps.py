"""GPS embedded in videos: GoPro GPMF, CAMM, BlackVue (mapillary_tools) and what ExifTool reads (Novatek, Garmin...).

Each format is read from a real file and checked against a reference decode: the GoPro clip's
GPS5 CSV, ExifTool's own output (``exiftool -ee -n -X``), or the fixes a CAMM file was built from
with mapillary_tools' CAMM writer. BlackVue, Novatek and Garmin clips are not in the shared data
yet: their tests read ``$DASHCAM_SAMPLES/<format>/`` (or ``../shared/data/video/dashcam/<format>/``)
and skip, saying so, when it is absent.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import av
import numpy as np
import pynmea2
import pytest
from conftest import SHARED_DATA, write_csv_track
from mapillary_tools import telemetry
from mapillary_tools.camm import camm_builder, camm_parser
from mapillary_tools.gpmf import gpmf_parser
from mapillary_tools.mp4 import simple_mp4_builder
from mapillary_tools.mp4.construct_mp4_parser import MP4BuilderConstruct

from detector.config import load_config
from detector.errors import InputError
from detector.geo import geodesic_distance_m
from detector.pipeline.sources.drive import open_drive, read_drive_track
from detector.pipeline.sources.gps import read_track
from detector.pipeline.sources.gps.gopro import GoProReader
from detector.pipeline.sources.gps.library import GpsNotFound
from detector.pipeline.sources.track import Track

GOPRO = SHARED_DATA / "video" / "gopro"
SAMPLES = Path(os.environ.get("DASHCAM_SAMPLES", SHARED_DATA / "video" / "dashcam"))
needs_exiftool = pytest.mark.skipif(
    shutil.which("exiftool") is None, reason="exiftool not on PATH (apt-get install libimage-exiftool-perl)"
)


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class Fixes:
    """A reference decode: UTC time (NaN where the decoder gave none), latitude, longitude."""

    time: np.ndarray
    lat: np.ndarray
    lon: np.ndarray


def exiftool_fixes(path: Path) -> Fixes:
    """ExifTool's own decode of a file's GPS, in file order: each GPSLatitude/GPSLongitude pair, with the last
    GPSDateTime seen (NaN if none). ExifTool's Composite tags (a summary of the others) are left out."""
    xml = subprocess.run(["exiftool", "-ee", "-n", "-X", str(path)], capture_output=True, text=True, check=True).stdout
    time, lat, lon, now = [], [], [], np.nan
    for element in ET.fromstring(xml)[0]:
        namespace, _, tag = element.tag.rpartition("}")
        if "/Composite/" in namespace:
            continue
        if tag == "GPSDateTime":
            text = element.text.rstrip("Z")
            when = datetime.strptime(text, "%Y:%m:%d %H:%M:%S.%f" if "." in text else "%Y:%m:%d %H:%M:%S")
            now = when.replace(tzinfo=UTC).timestamp()
        elif tag == "GPSLatitude":
            lat.append(float(element.text))
            time.append(now)
        elif tag == "GPSLongitude":
            lon.append(float(element.text))
    return Fixes(np.array(time), np.array(lat), np.array(lon))


def assert_matches(track: Track, ref: Fixes, metres: float = 1.0, seconds: float = 0.1) -> None:
    """Every fix within ``metres`` and ``seconds`` of the reference's, one to one."""
    assert len(track) == len(ref.lat)
    assert geodesic_distance_m(track.lat, track.lon, ref.lat, ref.lon).max() < metres
    timed = np.isfinite(ref.time)
    assert timed.any()
    assert np.abs(track.time[timed] - ref.time[timed]).max() < seconds


# --- GoPro GPMF (mapillary_tools) ---------------------------------------------------------


@pytest.mark.shared_data
def test_gopro_fixes_match_reference_decoding(shared_data: Path) -> None:
    track = read_track(GOPRO / "max-heromode.mp4")
    with (GOPRO / "max-heromode_gps5.csv").open() as f:
        ref = list(csv.DictReader(f))
    assert track.format == "GoPro GPMF"
    assert len(track) == len(ref) == 191
    error = geodesic_distance_m(track.lat, track.lon, [float(r["lat"]) for r in ref], [float(r["lon"]) for r in ref])
    assert error.max() < 0.5
    np.testing.assert_allclose(track.speed, [float(r["speed2d_mps"]) for r in ref], atol=1e-3)
    assert np.isnan(track.heading).all()
    step = np.diff(track.time)
    assert step.min() > 0.04 and step.max() < 0.07  # ~18 Hz, no gap between blocks


@pytest.mark.shared_data
def test_gopro_timing_ignores_stale_first_gpsu(shared_data: Path) -> None:
    """The first block says 23:45:14.000, 1.47 s before what the ten others agree on.

    Its positions join the next block's without a gap (walking at 1.2 m/s), so the stale
    one is the first GPSU; the reader takes the median offset GPSU - video time over the blocks.
    """
    with (GOPRO / "max-heromode.mp4").open("rb") as f:
        first = gpmf_parser.extract_gopro_info(f).gps[0]
    assert first.epoch_time == utc(2019, 11, 18, 23, 45, 14)
    track = read_track(GOPRO / "max-heromode.mp4")
    assert track.video_start_utc == pytest.approx(utc(2019, 11, 18, 23, 45, 15) + 0.425, abs=0.05)
    assert track.start == pytest.approx(track.video_start_utc, abs=1e-6)  # first fix at video time 0
    assert track.end - track.start == pytest.approx(10.4, abs=0.1)


def exiftool_video_times(path: Path) -> np.ndarray:
    """ExifTool's timing of the fixes in a timed track: each sample's fixes spread evenly over its duration."""
    xml = subprocess.run(["exiftool", "-ee", "-n", "-X", str(path)], capture_output=True, text=True, check=True).stdout
    samples: list[list[float]] = []  # [sample time, duration, fixes]
    for element in ET.fromstring(xml)[0]:
        namespace, _, tag = element.tag.rpartition("}")
        if "/Track" not in namespace:
            continue
        if tag == "SampleTime":
            samples.append([float(element.text), 0.0, 0])
        elif tag == "SampleDuration" and samples:
            samples[-1][1] = float(element.text)
        elif tag == "GPSLatitude":
            samples[-1][2] += 1
    return np.concatenate([start + np.arange(n) * duration / n for start, duration, n in samples if n])


@needs_exiftool
@pytest.mark.shared_data
def test_gopro_fixes_agree_with_exiftool(shared_data: Path) -> None:
    """Every fix within 1 m and 0.1 s (of video time) of ExifTool's decode of the same file."""
    clip = GOPRO / "max-heromode.mp4"
    track = read_track(clip)
    ref = exiftool_fixes(clip)
    assert len(ref.lat) == len(track) == 191
    assert geodesic_distance_m(track.lat, track.lon, ref.lat, ref.lon).max() < 1.0
    video_time = track.time - track.video_start_utc
    assert np.abs(video_time - exiftool_video_times(clip)).max() < 0.1


@pytest.mark.shared_data
def test_gopro_telemetry_without_gps5(shared_data: Path) -> None:
    with pytest.raises(GpsNotFound, match=r"karma\.mp4: GPMF telemetry .*without a GPS5 or GPS9 stream"):
        GoProReader().read(GOPRO / "karma.mp4")


@pytest.mark.shared_data
def test_truncated_gopro_file_is_an_error_not_a_missing_gps(shared_data: Path, tmp_path: Path) -> None:
    whole = (GOPRO / "max-heromode.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole[: len(whole) * 3 // 10])
    with pytest.raises(InputError, match=r"cut\.mp4: cannot read as GoPro GPMF") as caught:
        read_track(cut)
    assert not isinstance(caught.value, GpsNotFound)


# --- ExifTool: the Karma drone's GPS (GPRI), which GoPro's GPS5 readers do not see ---------


@needs_exiftool
@pytest.mark.shared_data
def test_karma_drone_gps_is_read_by_exiftool(shared_data: Path) -> None:
    clip = GOPRO / "karma.mp4"
    track = read_track(clip)
    assert track.format.startswith("ExifTool")
    assert len(track) == 47
    assert_matches(track, exiftool_fixes(clip))
    assert track.start == pytest.approx(utc(2017, 4, 17, 19, 27, 57) + 0.526, abs=0.01)
    assert track.video_start_utc is not None  # the fixes sit in the timed gpmd track: video time is exact
    assert track.start - track.video_start_utc == pytest.approx(0.19, abs=0.05)


@pytest.mark.shared_data
def test_without_exiftool_the_search_says_it_is_missing(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(GpsNotFound, match=r"karma\.mp4: no GPS in the video .*ExifTool is not installed"):
        read_track(GOPRO / "karma.mp4")


# --- CAMM (mapillary_tools' own writer, then its reader and ExifTool's) --------------------

CAMM_START = 1_780_000_000.0  # 2026-05-28T20:26:40Z


def camm_point(i: int) -> telemetry.CAMMGPSPoint:
    """Fix ``i`` of a walk north-east at 0.2 s steps, the first fix 0.1 s into the video."""
    return telemetry.CAMMGPSPoint(
        time=0.1 + 0.2 * i, lat=48.85 + 1e-5 * i, lon=2.35 + 2e-5 * i, alt=35.0, angle=None,
        time_gps_epoch=CAMM_START + 0.1 + 0.2 * i, gps_fix_type=3, horizontal_accuracy=2.0,
        vertical_accuracy=3.0, velocity_east=1.5, velocity_north=1.1, velocity_up=0.0, speed_accuracy=0.3,
    )  # fmt: skip


def camm_points(n: int = 14) -> list[telemetry.CAMMGPSPoint]:
    return [camm_point(i) for i in range(n)]


def plain_video(path: Path, seconds: float = 3.0, fps: int = 10) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(round(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i, np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


@pytest.fixture
def camm_video(tmp_path: Path) -> Path:
    """A video with a CAMM GPS track written by mapillary_tools' CAMM builder."""
    source = plain_video(tmp_path / "plain.mp4")
    info = camm_parser.CAMMInfo(gps=camm_points(), make="Insta360", model="test")
    with source.open("rb") as f:
        built = simple_mp4_builder.transform_mp4(f, camm_builder.camm_sample_generator2(info))
        path = tmp_path / "camm.mp4"
        path.write_bytes(built.read())
    return path


def test_camm_track_matches_the_fixes_it_was_built_from(camm_video: Path) -> None:
    points = camm_points()
    track = read_track(camm_video)
    assert track.format == "CAMM"
    ref = Fixes(np.array([p.time_gps_epoch for p in points]), np.array([p.lat for p in points]),
                np.array([p.lon for p in points]))  # fmt: skip
    assert_matches(track, ref)
    assert track.video_start_utc == pytest.approx(CAMM_START, abs=0.1)
    np.testing.assert_allclose(track.speed, np.hypot(1.5, 1.1), rtol=1e-6)
    np.testing.assert_allclose(track.heading, np.degrees(np.arctan2(1.5, 1.1)), rtol=1e-5)


@needs_exiftool
def test_camm_track_agrees_with_exiftool(camm_video: Path) -> None:
    assert_matches(read_track(camm_video), exiftool_fixes(camm_video))


# --- BlackVue: the box layout mapillary_tools parses, written with its MP4 box writer ---------

BLACKVUE_START = utc(2026, 6, 1, 7, 30, 0)


def blackvue_nmea(n: int = 5, clock_ahead_s: float = 7200.0) -> bytes:
    """BlackVue's ``gps `` box: ``[camera clock ms]$GPRMC...`` lines, the camera clock on local time (UTC+2)."""
    lines = []
    for i in range(n):
        when = datetime.fromtimestamp(BLACKVUE_START + i, UTC)
        lat = 48.85 + 1e-4 * i
        rmc = pynmea2.RMC("GP", "RMC", (
            when.strftime("%H%M%S.00"), "A", f"{int(lat):02d}{(lat % 1) * 60:08.5f}", "N", "00221.00000", "E",
            "21.6", "0.0", when.strftime("%d%m%y"), "", "", "A",
        ))  # fmt: skip
        lines.append(b"[%d]%s\r\n" % (round((BLACKVUE_START + i + clock_ahead_s) * 1000), rmc.render().encode()))
    return b"".join(lines)


@pytest.fixture
def blackvue_video(tmp_path: Path) -> Path:
    """Not a camera's file (none is in the shared data yet): the layout, built with mapillary_tools' writers."""
    with plain_video(tmp_path / "plain.mp4").open("rb") as f:
        body = simple_mp4_builder.transform_mp4(f).read()  # ftyp, moov, mdat: no empty 'free' box first
    gps = MP4BuilderConstruct.build_box({"type": b"gps ", "data": blackvue_nmea()})
    path = tmp_path / "20260601_093000_NF.mp4"
    path.write_bytes(body + MP4BuilderConstruct.build_box({"type": b"free", "data": gps}))
    return path


def test_blackvue_gps_box_is_read_in_utc(blackvue_video: Path) -> None:
    path = blackvue_video
    track = read_track(path)
    assert track.format == "BlackVue"
    assert track.video_start_utc is None  # the box says nothing of video time
    lat = 48.85 + 1e-4 * np.arange(5)
    assert_matches(track, Fixes(BLACKVUE_START + np.arange(5.0), lat, np.full(5, 2 + 21 / 60)))
    if shutil.which("exiftool"):
        assert_matches(track, exiftool_fixes(path))


def test_gps_beside_the_video_tracks_starts_the_video_at_its_first_fix(blackvue_video: Path) -> None:
    """Not the container time (dashcams often write local time there): the first embedded fix is the start."""
    drive = open_drive(blackvue_video, None, load_config())
    assert (drive.start_source, drive.video_start_utc) == ("embedded GPS, first fix", BLACKVUE_START)


# --- BlackVue, Novatek (Viofo...), Garmin: real clips where the integrator put them --------

SAMPLE_FORMATS = [("blackvue", "BlackVue"), ("novatek", "ExifTool"), ("garmin", "ExifTool")]


def sample_clips(kind: str) -> list[Path]:
    folder = SAMPLES / kind
    clips = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".mp4", ".mov", ".avi", ".ts"))
    if not clips:
        pytest.skip(f"no {kind} sample clips in {folder} (set DASHCAM_SAMPLES to a folder with {kind}/*.mp4; no "
                    f"public one was found to pin: docs/sources-and-sampler.md, 'Real sample clips')")  # fmt: skip
    return clips


@needs_exiftool
@pytest.mark.shared_data  # by default; $DASHCAM_SAMPLES may point elsewhere
@pytest.mark.parametrize(("kind", "format_name"), SAMPLE_FORMATS)
def test_dashcam_sample_clips_match_exiftool(kind: str, format_name: str) -> None:
    for clip in sample_clips(kind):
        track = read_track(clip)
        assert track.format.startswith(format_name), clip
        ref = exiftool_fixes(clip)
        timed = np.isfinite(ref.time)
        unique = np.concatenate([[True], np.diff(ref.time[timed]) > 0])  # NMEA repeats a fix in GGA and RMC
        ref = Fixes(ref.time[timed][unique], ref.lat[timed][unique], ref.lon[timed][unique])
        assert_matches(track, ref)


# --- The search: embedded formats in turn, then the sidecar --------------------------------


def test_video_without_gps_names_what_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(GpsNotFound, match=r"phone\.mp4: no GPS in the video \(GoPro GPMF: no GPMF telemetry; CAMM"):
        read_track(plain_video(tmp_path / "phone.mp4"))


def test_not_a_video_is_not_parsed_as_mp4(tmp_path: Path) -> None:
    path = tmp_path / "x.mov"
    path.write_text("not a video\n")
    with pytest.raises(GpsNotFound, match=r"GoPro GPMF: not an MP4/MOV file"):
        read_track(path)


def test_embedded_gps_wins_over_the_track_beside_the_video(camm_video: Path) -> None:
    write_csv_track(camm_video.with_suffix(".csv"), CAMM_START, [1.0] * 4, lat0=10.0, lon0=10.0)
    assert read_drive_track(camm_video).format == "CAMM"


def test_the_track_beside_a_video_without_gps_is_used(tmp_path: Path) -> None:
    video = plain_video(tmp_path / "v.mp4")
    write_csv_track(tmp_path / "v.csv", CAMM_START, [1.0] * 4)
    track = read_drive_track(video)
    assert (track.format, len(track)) == ("CSV", 5)


def test_a_video_with_no_gps_anywhere_is_one_error(tmp_path: Path) -> None:
    video = plain_video(tmp_path / "v.mp4")
    with pytest.raises(InputError, match=r"v\.mp4: no GPS in the video .*and no GPS file beside it \(v\.gpx, "):
        read_drive_track(video)
