"""GPS readers: NMEA, GPX and CSV, on real data where we have it (embedded GPS: test_embedded_gps.py)."""

from __future__ import annotations

import csv
import logging
import math
import re
from datetime import UTC, datetime
from functools import reduce
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA

from detector.errors import InputError
from detector.geo import geodesic_distance_m
from detector.pipeline.sources.gps import read_track, read_tracks, reader_for
from detector.pipeline.sources.track import Track

GENIVI = SHARED_DATA / "gps" / "genivi"


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def data(shared_data: Path) -> Path:
    """``../shared/data``, through conftest's fixture: the tests that take it are marked ``shared_data``."""
    return shared_data


def sentence(body: str) -> str:
    """``'GPGGA,...'`` -> ``'$GPGGA,...*CS'`` with a correct checksum."""
    checksum = reduce(lambda a, c: a ^ ord(c), body, 0)
    return f"${body}*{checksum:02X}"


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


# --- NMEA -------------------------------------------------------------------------------

GENIVI_LOGS = [
    # file, fixes, km (README), km/h max
    ("switzerland_2010-04-03.nmea", 10_327, 242.6, 130),
    ("regensburg_2010-04-11.nmea", 774, 18.0, 104),
    # 1847 valid RMC lines, but two fixes repeat the timestamps of the two before them
    ("munich_2009-04-01.nmea", 1_845, 12.0, 62),
]


@pytest.fixture(scope="module")
def genivi(data: Path) -> dict[str, Track]:
    return {name: read_track(GENIVI / name) for name, *_ in GENIVI_LOGS}


@pytest.mark.shared_data
@pytest.mark.parametrize(("name", "fixes", "km", "max_kmh"), GENIVI_LOGS)
def test_genivi_logs(genivi: dict[str, Track], name: str, fixes: int, km: float, max_kmh: float) -> None:
    track = genivi[name]
    assert len(track) == fixes
    assert np.all(np.diff(track.time) > 0)
    summed = geodesic_distance_m(track.lat[:-1], track.lon[:-1], track.lat[1:], track.lon[1:]).sum()
    assert summed / 1000 == pytest.approx(km, rel=0.03)
    # The odometer integrates Doppler speed and ignores the jumps the trajectory skips; munich's
    # noisy urban fixes (HDOP up to 24) sum to 6-7% more than its speed field integrates to.
    assert track.trajectory().distance[-1] / 1000 == pytest.approx(km, rel=0.08)
    assert np.nanmax(track.speed) * 3.6 == pytest.approx(max_kmh, abs=1.0)


@pytest.mark.shared_data
def test_switzerland_times_and_speed(genivi: dict[str, Track]) -> None:
    track = genivi["switzerland_2010-04-03.nmea"]
    assert track.start == pytest.approx(utc(2010, 4, 3, 11, 22, 25) + 0.844)
    assert track.end == utc(2010, 4, 3, 14, 19, 29)
    assert 125 / 3.6 < np.nanmax(track.speed) < 135 / 3.6  # m/s, from knots
    assert np.isfinite(track.heading).mean() > 0.9


@pytest.mark.shared_data
def test_munich_repeated_timestamps_warn(data: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        read_track(GENIVI / "munich_2009-04-01.nmea")
    assert "repeat an earlier timestamp (first at line 1215" in caplog.text


def test_nmea_merges_rmc_and_gga(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "drive.nmea",
        [
            "# a comment",
            sentence("GNRMC,101500.00,A,4810.8509,N,01133.9095,E,010.0,171.1,010424,,,A"),
            sentence("GNGGA,101500.00,4810.8509,N,01133.9095,E,1,08,0.9,500.0,M,46.3,M,,"),
            sentence("GPGSA,A,3,23,13,,20,25,,,,,,,,2.6,0.9,1.4"),
            sentence("GLRMC,101501.00,V,4810.8600,N,01133.9095,E,,,010424,,,N"),
            sentence("GNGGA,101502.00,4810.8609,S,01133.9095,W,1,08,0.9,500.0,M,46.3,M,,"),
            sentence("GNGGA,101503.00,4810.8709,N,01133.9095,E,0,00,,,M,,M,,"),
        ],
    )
    track = read_track(path)
    assert len(track) == 2
    np.testing.assert_allclose(track.time, utc(2024, 4, 1, 10, 15) + np.array([0.0, 2.0]))
    assert track.lat[0] == pytest.approx(48 + 10.8509 / 60)
    assert (track.lat[1], track.lon[1]) == pytest.approx((-(48 + 10.8609 / 60), -(11 + 33.9095 / 60)))
    assert track.speed[0] == pytest.approx(10.0 * 1852 / 3600)
    assert track.heading[0] == pytest.approx(171.1)
    assert math.isnan(track.speed[1]) and math.isnan(track.heading[1])


def test_nmea_gga_rolls_over_midnight(tmp_path: Path) -> None:
    gga = "GPGGA,{},4810.8509,N,01133.9095,E,1,08,0.9,500.0,M,46.3,M,,"
    path = write_lines(
        tmp_path / "night.txt",
        [
            sentence(gga.format("235958.0")),
            sentence("GPRMC,235959.0,A,4810.8509,N,01133.9095,E,0.0,,311224,,,A"),
            sentence(gga.format("000000.0")),
            sentence(gga.format("000001.0")),
        ],
    )
    track = read_track(path)
    np.testing.assert_allclose(track.time - utc(2025, 1, 1), [-2.0, -1.0, 0.0, 1.0])


def test_nmea_skips_a_few_bad_lines(tmp_path: Path) -> None:
    rmc = "GPRMC,1015{:02d}.00,A,4810.8509,N,01133.9095,E,0.0,,010424,,,A"
    lines = [sentence(rmc.format(s)) for s in range(5)]
    lines[2] = lines[2][:-2] + "00"  # checksum
    lines[3] = sentence(rmc.format(3).replace("010424", "320424"))  # no 32 April
    lines.insert(1, "$GPRMC,garbage")
    assert len(read_track(write_lines(tmp_path / "a.nmea", lines))) == 3


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        ([], "no NMEA sentences"),
        (
            ["hello world", "not NMEA", "at all"],
            "3 of 3 sentence lines are malformed .*line 1: could not parse",
        ),
        (
            ["$GPRMC,101500.00,A,4810.8509,N,01133.9095,E,0.0,,010424,,,A*00"] * 3,
            "3 of 3 sentence lines are malformed .*line 1: checksum does not match",
        ),
        ([sentence("GPGGA,101500.00,4810.8509,N,01133.9095,E,1,08,0.9,500.0,M,46.3,M,,")], "no RMC sentence"),
        ([sentence("GPGSA,A,3,23,13,,20,25,,,,,,,,2.6,0.9,1.4")], "no valid RMC or GGA fix"),
    ],
    ids=["empty", "garbage", "bad-checksums", "gga-only", "no-fix"],
)
def test_nmea_bad_input(tmp_path: Path, lines: list[str], problem: str) -> None:
    path = tmp_path / "bad.nmea"
    path.write_text("\n".join(lines))
    with pytest.raises(InputError, match=rf"bad\.nmea: .*{problem}"):
        read_track(path)


# --- GPX --------------------------------------------------------------------------------

GPX10 = """<?xml version="1.0"?>
<gpx version="1.0" creator="test" xmlns="http://www.topografix.com/GPX/1/0">
<trk><trkseg>
<trkpt lat="31.25" lon="34.79"><time>2024-05-01T10:00:00Z</time>
  <course>90.5</course><speed>12.5</speed></trkpt>
<trkpt lat="31.25" lon="34.7901"><time>2024-05-01T10:00:01Z</time>
  <course>91</course><speed>12.0</speed></trkpt>
</trkseg></trk>
<trk><trkseg>
<trkpt lat="31.25" lon="34.7902"><time>2024-05-01T12:00:02+02:00</time></trkpt>
</trkseg></trk>
</gpx>"""

GPX11 = """<?xml version="1.0"?>
<gpx version="1.1" creator="test" xmlns="http://www.topografix.com/GPX/1/1"
     xmlns:tpx="http://www.garmin.com/xmlschemas/TrackPointExtension/v2">
<trk><trkseg>{points}</trkseg></trk>
</gpx>"""


def gpx11(path: Path, *points: str) -> Path:
    path.write_text(GPX11.format(points="\n".join(points)))
    return path


def test_gpx10_speed_and_course(tmp_path: Path) -> None:
    path = tmp_path / "drive.gpx"
    path.write_text(GPX10)
    track = read_track(path)
    np.testing.assert_allclose(track.time - utc(2024, 5, 1, 10), [0.0, 1.0, 2.0])
    np.testing.assert_allclose(track.lon, [34.79, 34.7901, 34.7902])
    np.testing.assert_allclose(track.speed[:2], [12.5, 12.0])
    np.testing.assert_allclose(track.heading[:2], [90.5, 91.0])
    assert math.isnan(track.speed[2]) and math.isnan(track.heading[2])


def test_gpx11_plain_and_garmin_extension(tmp_path: Path) -> None:
    path = gpx11(
        tmp_path / "drive.gpx",
        '<trkpt lat="31.25" lon="34.79"><time>2024-05-01T10:00:00</time></trkpt>',
        '<trkpt lat="31.2501" lon="34.79"><time>2024-05-01T10:00:01.5Z</time><extensions>'
        "<tpx:TrackPointExtension><tpx:speed>7.5</tpx:speed><tpx:course>45</tpx:course>"
        "</tpx:TrackPointExtension></extensions></trkpt>",
    )
    track = read_track(path)
    np.testing.assert_allclose(track.time - utc(2024, 5, 1, 10), [0.0, 1.5])
    assert math.isnan(track.speed[0]) and math.isnan(track.heading[0])
    assert (track.speed[1], track.heading[1]) == (7.5, 45.0)


def test_gpx_route_points_when_no_track(tmp_path: Path) -> None:
    path = tmp_path / "route.gpx"
    path.write_text(
        '<gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1"><rte>'
        '<rtept lat="1" lon="2"><time>2024-05-01T10:00:00Z</time></rtept>'
        '<rtept lat="1.001" lon="2"><time>2024-05-01T10:00:10Z</time></rtept></rte></gpx>'
    )
    assert list(read_track(path).lat) == [1.0, 1.001]


@pytest.mark.parametrize(
    ("points", "problem"),
    [
        ((), "no track or route points"),
        (('<trkpt lat="1" lon="2"></trkpt>',), "track point 1 .* has no valid <time>"),
        (
            (
                '<trkpt lat="1" lon="2"><time>2024-05-01T10:00:05Z</time></trkpt>',
                '<trkpt lat="1" lon="2"><time>2024-05-01T10:00:00Z</time></trkpt>',
            ),
            "not sorted",
        ),
        (('<trkpt lat="north" lon="2"></trkpt>',), "not a valid GPX file"),
    ],
    ids=["no-points", "no-time", "unsorted", "bad-number"],
)
def test_gpx_bad_input(tmp_path: Path, points: tuple[str, ...], problem: str) -> None:
    with pytest.raises(InputError, match=rf"bad\.gpx: .*{problem}"):
        read_track(gpx11(tmp_path / "bad.gpx", *points))


def test_gpx_malformed_xml(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"bad\.gpx: not a valid GPX file"):
        read_track(write_lines(tmp_path / "bad.gpx", ['<gpx version="1.1"><trk>']))


# --- CSV --------------------------------------------------------------------------------


def test_csv_iso_and_epoch_times(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "t.csv",
        [
            "Time,LAT,Lon,note",
            "2024-05-01T10:00:00Z,31.25,34.79,start",
            "2024-05-01T12:00:01+02:00,31.2501,34.79,",
            "2024-05-01T10:00:02,31.2502,34.79,naive is UTC",
            f"{utc(2024, 5, 1, 10) + 3.5},31.2503,34.79,epoch",
        ],
    )
    track = read_track(path)
    np.testing.assert_allclose(track.time - utc(2024, 5, 1, 10), [0.0, 1.0, 2.0, 3.5])
    np.testing.assert_allclose(track.lat, [31.25, 31.2501, 31.2502, 31.2503])
    assert np.isnan(track.speed).all() and np.isnan(track.heading).all()


def test_csv_optional_columns(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "t.csv", ["heading,time,lat,lon,speed", "90,1714557600,1,2,3.5", ",1714557601,1,2.0001,"]
    )
    track = read_track(path)
    np.testing.assert_allclose(track.speed, [3.5, np.nan])
    np.testing.assert_allclose(track.heading, [90.0, np.nan])


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        (["time,lat,lon", "1714557600,1,2", "1714557601,north,2"], "line 3: lat 'north' is not a number"),
        (["time,lat,lon", "1714557600,1,2", "", "yesterday,1,2"], "line 4: time 'yesterday' is neither ISO"),
        (["time,lat,lon", "0,1"], "line 2: empty lon"),
        (["time,lat,lon", "1714557600,91,2"], "line 2: latitude 91.0 is not a number from -90 to 90"),
        (["time,latitude,lon", "0,1,2"], "missing column.s. lat"),
        ([""], "empty file"),
        (["time,lat,lon"], "no GPS fixes"),
    ],
    ids=["bad-number", "bad-time", "short-row", "out-of-range", "missing-column", "empty", "header-only"],
)
def test_csv_bad_input(tmp_path: Path, lines: list[str], problem: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines))
    with pytest.raises(InputError, match=rf"bad\.csv: {problem}"):
        read_track(path)


# --- choosing the reader, batches -----------------------------------------------------


def test_unknown_suffix_is_sniffed(tmp_path: Path) -> None:
    nmea = write_lines(tmp_path / "gps.dat", [sentence("GPRMC,101500.00,A,4810.8509,N,01133.9095,E,0.0,,010424,,,A")])
    table = write_lines(tmp_path / "gps.out", ["time,lat,lon", "1714557600,1,2"])
    gpx = tmp_path / "gps.xml"
    gpx.write_text(GPX10)
    assert [reader_for(p).name for p in (nmea, table, gpx)] == ["NMEA 0183", "CSV", "GPX"]
    assert len(read_track(nmea)) == 1


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"notes\.md: unknown GPS file format"):
        read_track(write_lines(tmp_path / "notes.md", ["# hello"]))
    with pytest.raises(InputError, match=r"nope\.gpx: file not found"):
        read_track(tmp_path / "nope.gpx")


def test_read_tracks_keeps_order_and_errors(tmp_path: Path) -> None:
    good = write_lines(tmp_path / "good.csv", ["time,lat,lon", "1714557600,1,2", "1714557601,1,2"])
    bad = write_lines(tmp_path / "bad.csv", ["time,lat", "0,1"])
    results = read_tracks([good, tmp_path / "missing.nmea", bad, good])
    assert [type(r).__name__ for r in results] == ["Track", "InputError", "InputError", "Track"]
    assert "missing.nmea: file not found" in str(results[1])
    assert "bad.csv: missing column" in str(results[2])


# --- a raw track through Track.trajectory() ---------------------------------------------


def test_trajectory_drops_spike_and_skips_gap_and_jump(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """1 Hz due north at 10 m/s; a 500 m spike at 11 s, a 30 s gap 20-50 s, a 500 m jump 60-61 s."""
    t0, lat0, lon0 = utc(2024, 5, 1, 10), 31.25, 34.79
    m_lat = 1 / 111_000  # degrees per metre north (near enough here)
    m_lon = m_lat / math.cos(math.radians(lat0))
    lines = ["time,lat,lon"]
    for s in [*range(21), *range(50, 71)]:
        east = 500.0 if s == 11 or s > 60 else 0.0
        lines.append(f"{t0 + s},{lat0 + 10 * s * m_lat:.8f},{lon0 + east * m_lon:.8f}")
    with caplog.at_level(logging.WARNING):
        trajectory = read_track(write_lines(tmp_path / "drive.csv", lines)).trajectory()
    warnings = "\n".join(trajectory.warnings)
    assert re.search(r"fix at 2024-05-01T10:00:11.00Z jumps 50\d m from its neighbours; dropped", warnings)
    assert "a 30.0 s gap after 2024-05-01T10:00:20.00Z" in warnings
    assert re.search(r"a jump of 50\d m in 1.0 s after 2024-05-01T10:01:00.00Z", warnings)
    assert trajectory.skipped == [(t0 + 20, t0 + 50), (t0 + 60, t0 + 61)]
    assert "dropped" in caplog.text

    state = trajectory.at(t0 + np.array([5.0, 11.0, 35.0, 55.5, 60.5, 65.0, 80.0]))
    assert state.valid.tolist() == [True, True, False, True, False, True, False]
    ok = state.valid
    expected_lat = lat0 + 10 * (state.time[ok] - t0) * m_lat
    expected_lon = lon0 + np.where(state.time[ok] > t0 + 60, 500.0, 0.0) * m_lon
    assert geodesic_distance_m(state.lat[ok], state.lon[ok], expected_lat, expected_lon).max() < 2.0
    np.testing.assert_allclose(state.speed[ok], 10.0, atol=0.5)
    assert np.isnan(state.lat[~ok]).all()


# --- bounds on what a file may hold -------------------------------------------------------

T0 = 1714557600  # 2024-05-01T10:00:00Z


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ([f"{T0},1,2", "1e300,1,2.001"], r"line 3: time 1e\+300 is outside 2000-01-01 to 2100-01-01 UTC"),
        ([f"{T0},1,2", "1e12,1,2.001"], r"line 3: time 1000000000000.0 is outside"),
        (["-1e11,1,2", f"{T0},1,2.001"], r"line 2: time -100000000000.0 is outside"),
        (["1e400,1,2"], r"line 2: time inf is outside"),
        (["0001-01-01T00:00:00Z,1,2"], r"line 2: time -62135596800.0 is outside"),
        (["9999-12-31T00:00:00Z,1,2"], r"line 2: time 253402214400.0 is outside"),
        ([f"{T0},nan,2"], r"line 2: latitude nan is not a number from -90 to 90"),
        ([f"{T0},1,inf"], r"line 2: longitude inf is not a number from -180 to 180"),
    ],
    ids=["1e300", "1e12", "-1e11", "1e400", "year-1", "year-9999", "nan-lat", "inf-lon"],
)
def test_a_csv_time_or_place_no_drive_can_have_is_refused_naming_its_line(
    tmp_path: Path, rows: list[str], problem: str
) -> None:
    with pytest.raises(InputError, match=rf"bad\.csv: {problem}"):
        read_track(write_lines(tmp_path / "bad.csv", ["time,lat,lon", *rows]))


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59Z",
                                  "1999-12-31T23:59:59Z", "2100-01-01T00:00:01Z"])  # fmt: skip
def test_a_gpx_dated_outside_this_century_is_refused_naming_its_point(tmp_path: Path, when: str) -> None:
    path = gpx11(
        tmp_path / "bad.gpx",
        '<trkpt lat="1" lon="2"><time>2024-05-01T10:00:00Z</time></trkpt>',
        f'<trkpt lat="1" lon="2.001"><time>{when}</time></trkpt>',
    )
    with pytest.raises(InputError, match=r"bad\.gpx: track point 2 \(.*\): time .* is outside 2000-01-01"):
        read_track(path)


def test_an_nmea_fix_dated_before_2000_is_refused_naming_its_line(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "bad.nmea",
        [
            sentence("GPRMC,101500.00,A,4810.8509,N,01133.9095,E,0.0,,010424,,,A"),
            sentence("GPRMC,101501.00,A,4810.8509,N,01133.9095,E,0.0,,010499,,,A"),  # 1999 (a week rollover)
        ],
    )
    with pytest.raises(InputError, match=r"bad\.nmea: line 2 \(1999-04-01T10:15:01.00Z\): time .* is outside"):
        read_track(path)


def test_an_nmea_position_past_the_pole_is_refused_naming_its_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "bad.nmea", [sentence("GPRMC,101500.00,A,9510.8509,N,01133.9095,E,0.0,,010424,,,A")])
    with pytest.raises(InputError, match=r"bad\.nmea: line 1: latitude 95.18.* is not a number from -90 to 90"):
        read_track(path)


def test_the_track_builder_bounds_every_time() -> None:
    with pytest.raises(InputError, match=r"feed: fix 2: time 1000000000000000.0 is outside"):
        Track.from_arrays("feed", time=[T0, 1e15], lat=[1, 1], lon=[2, 2])
    with pytest.raises(InputError, match=r"feed: the video.s start: time -1000000000000000.0 is outside"):
        Track.from_arrays("feed", time=[T0, T0 + 1], lat=[1, 1], lon=[2, 2], video_start_utc=-1e15)


def test_a_drive_needs_two_fixes_at_two_places() -> None:
    with pytest.raises(InputError, match=r"feed: only one GPS fix \(2024-05-01T10:00:00.00Z\)"):
        Track.from_arrays("feed", time=[T0, T0, T0], lat=[1, 1, 1], lon=[2, 2, 2]).trajectory()
    with pytest.raises(InputError, match=r"feed: the track does not move: its 3 fixes lie within 1 m of 1.0+, 2.0+"):
        Track.from_arrays("feed", time=[T0, T0 + 1, T0 + 2], lat=[1, 1, 1], lon=[2, 2, 2]).trajectory()
    waits_then_drives = Track.from_arrays("feed", time=[T0, T0 + 1, T0 + 2], lat=[1, 1, 1.0001], lon=[2, 2, 2])
    assert waits_then_drives.trajectory().distance[-1] > 5


# --- property: any text a GPS file may hold is read or refused in one line -------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

extreme_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e300, -1e300, 1e12, -1e11, 1e-300, 90.0, -90.0, 180.0, 180.0000001, 4102444800.0]),
    st.floats(min_value=T0 - 100, max_value=T0 + 100),
    st.floats(min_value=-91, max_value=91),
)
number_text = st.one_of(
    extreme_floats.map(repr), st.integers().map(str), st.sampled_from(["nan", "inf", "-inf", "1e309", "", " "])
)
iso_text = st.one_of(
    st.datetimes(timezones=st.one_of(st.none(), st.timezones())).map(lambda d: d.isoformat()),
    st.sampled_from(["0001-01-01T00:00:00Z", "9999-12-31T23:59:59+14:00", "2024-02-30T00:00:00Z", "T"]),
)
cell = st.one_of(number_text, iso_text, st.text(max_size=12))


def read_or_refuse(path: Path) -> None:
    """The reader and the drive's track builder: a track, or one InputError naming the file (nothing else)."""
    from detector.bounds import EARLIEST_UTC, LATEST_UTC

    try:
        track = read_track(path)
        track.trajectory()
    except InputError as e:
        assert "\n" not in str(e) and str(e).startswith(str(path)), str(e)
        return
    assert ((track.time >= EARLIEST_UTC) & (track.time <= LATEST_UTC)).all(), track.time
    assert (np.abs(track.lat) <= 90).all() and (np.abs(track.lon) <= 180).all()
    assert len(track) >= 2 and np.all(np.diff(track.time) > 0)
    assert not (track.speed[np.isfinite(track.speed)] > 300).any() and not (track.speed < 0).any()


time_text = st.one_of(
    st.floats(min_value=T0 - 100, max_value=T0 + 100).map(repr), iso_text, number_text, st.text(max_size=8)
)
lat_text = st.one_of(st.floats(min_value=-91, max_value=91).map(repr), number_text)


@PROPERTY
@given(
    extra=st.lists(st.sampled_from(["speed", "heading", "note"]), unique=True),
    rows=st.lists(st.tuples(time_text, lat_text, lat_text, st.lists(cell, max_size=3)), max_size=8),
)
def test_any_csv_is_read_or_refused_in_one_line(tmp_path_factory, extra, rows) -> None:
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    with path.open("w", newline="", encoding="utf-8", errors="surrogatepass") as f:
        writer = csv.writer(f)
        writer.writerow(["time", "lat", "lon", *extra])
        writer.writerows([t, lat, lon, *more] for t, lat, lon, more in rows)
    read_or_refuse(path)


@PROPERTY
@given(
    points=st.lists(
        st.tuples(
            number_text, number_text, st.one_of(iso_text, st.text(max_size=8)), st.one_of(st.none(), number_text)
        ),
        max_size=6,
    )
)
def test_any_gpx_is_read_or_refused_in_one_line(tmp_path_factory, points) -> None:
    from xml.sax.saxutils import escape, quoteattr

    body = []
    for lat, lon, when, speed in points:
        extra = f"<speed>{escape(speed)}</speed>" if speed is not None else ""
        body.append(f"<trkpt lat={quoteattr(lat)} lon={quoteattr(lon)}><time>{escape(when)}</time>{extra}</trkpt>")
    path = tmp_path_factory.mktemp("gpx") / "t.gpx"
    path.write_text(GPX10.split("<trk>")[0] + "<trk><trkseg>" + "".join(body) + "</trkseg></trk></gpx>")
    read_or_refuse(path)


digits = st.integers(min_value=0, max_value=10**12).map(str)


@PROPERTY
@given(
    fixes=st.lists(
        st.tuples(
            st.sampled_from(["GPRMC", "GNRMC", "GPGGA"]),
            st.one_of(digits, st.sampled_from(["101500.00", "235959.99", "246060.00", ""])),
            st.one_of(digits, st.sampled_from(["4810.8509", "9959.9999", "0000.0000", "nan", ""])),
            st.sampled_from(["N", "S", "X", ""]),
            st.one_of(digits, st.sampled_from(["01133.9095", "18100.0000", "inf", ""])),
            st.sampled_from(["E", "W", ""]),
            st.one_of(number_text, st.just("12.5")),
            st.one_of(digits, st.sampled_from(["010424", "010499", "311299", "000000", "320199", ""])),
        ),
        max_size=6,
    ),
    junk=st.lists(st.text(max_size=20), max_size=2),
)
def test_any_nmea_is_read_or_refused_in_one_line(tmp_path_factory, fixes, junk) -> None:
    lines = []
    for kind, clock, lat, ns, lon, ew, speed, day in fixes:
        if kind.endswith("RMC"):
            body = f"{kind},{clock},A,{lat},{ns},{lon},{ew},{speed},90.0,{day},,,A"
        else:
            body = f"{kind},{clock},{lat},{ns},{lon},{ew},1,08,0.9,500.0,M,46.3,M,,"
        lines.append(sentence(body))
    path = tmp_path_factory.mktemp("nmea") / "t.nmea"
    path.write_text("\n".join([*lines, *junk]), encoding="utf-8", errors="surrogatepass")
    read_or_refuse(path)


def test_a_recorded_speed_no_vehicle_reaches_is_refused_and_a_negative_one_is_unknown(tmp_path: Path) -> None:
    """A speed of 1e300 m/s made the odometer jump past the whole drive: one frame sampled."""
    rows = ["time,lat,lon,speed", f"{T0},31.25,34.79,10", f"{T0 + 1},31.2501,34.79,1e300"]
    with pytest.raises(InputError, match=r"fast\.csv: fix 2: speed 1e\+300 m/s is over 300 m/s"):
        read_track(write_lines(tmp_path / "fast.csv", rows))
    unknown = read_track(write_lines(tmp_path / "unknown.csv", [*rows[:2], f"{T0 + 1},31.2501,34.79,-1"]))
    assert unknown.speed[0] == 10 and math.isnan(unknown.speed[1])
