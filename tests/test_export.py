"""GIS exports: GeoJSON and GeoPackage read back through GDAL with every attribute, and CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import shapely
from pyogrio.raw import read
from test_cli import assert_one_line_error, detector
from test_store import TRUTH, _merge

from detector.export import DRIVE_FIELDS, HAZARD_FIELDS, SIGHTING_FIELDS
from detector.store import HazardStore


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "h.db"
    with HazardStore(path) as store:
        _merge(store, "d1", TRUTH, seed=1)
        store.conn.execute("UPDATE hazards SET status = 'rejected' WHERE class = 'fallen_sign'")
    return path


@pytest.mark.parametrize(("fmt", "suffix"), [("geojson", ".geojson"), ("gpkg", ".gpkg")])
def test_gis_formats_open_in_gdal_with_all_attributes(store_path: Path, tmp_path: Path, fmt: str, suffix: str):
    out = tmp_path / f"hazards{suffix}"
    result = detector("export", "--format", fmt, "--out", str(out), "--db", str(store_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("2 hazards")
    meta, _, geometry, fields = read(str(out), layer="hazards")
    assert "4326" in meta["crs"]
    assert meta["geometry_type"] == "Point"
    assert list(meta["fields"]) == HAZARD_FIELDS
    data = dict(zip(meta["fields"], fields, strict=True))
    with HazardStore(store_path) as store:
        stored = {r["id"]: r for r in store.query("SELECT * FROM hazards")}
    for i, geom in enumerate(shapely.from_wkb(geometry)):
        row = stored[int(data["id"][i])]
        assert geom.x == pytest.approx(row["lon"], abs=1e-9) and geom.y == pytest.approx(row["lat"], abs=1e-9)
        assert data["class"][i] == row["class"] and data["status"][i] == row["status"]
        assert data["sighting_count"][i] == row["sighting_count"]


def test_status_filter_and_csv(store_path: Path, tmp_path: Path):
    out = tmp_path / "confirmed.csv"
    result = detector("export", "--format", "csv", "--out", str(out), "--db", str(store_path), "--status", "confirmed")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(out.open()))
    assert [r["class"] for r in rows] == ["pothole"] and rows[0]["status"] == "confirmed"
    assert rows[0]["first_seen"].endswith("Z") and rows[0]["street"] == ""  # no street layer configured


def test_hazards_are_named_by_the_citys_street_layer(store_path: Path, tmp_path: Path):
    from test_gis_layers import streets_layer

    layer = streets_layer(tmp_path / "streets.gpkg")
    out = tmp_path / "named.csv"
    args = ["--format", "csv", "--out", str(out), "--db", str(store_path), "--set", f"streets.layer={layer}"]
    result = detector("export", *args)
    assert result.returncode == 0, result.stderr
    assert [r["street"] for r in csv.DictReader(out.open())] == ["Herzl", "Herzl"]
    missing = ["--set", f"streets.layer={tmp_path / 'nope.gpkg'}"]
    assert_one_line_error(detector("export", *args[:-2], *missing), "nope.gpkg", "feature layer not found")


def test_since_filters_by_last_sighting(store_path: Path, tmp_path: Path):
    out = tmp_path / "recent.geojson"
    result = detector(
        "export", "--format", "geojson", "--out", str(out), "--db", str(store_path), "--since", "2000-01-01"
    )
    assert result.returncode == 0, result.stderr
    assert len(json.loads(out.read_text())["features"]) == 0  # the test sightings are from 1970


def test_bad_filters_are_one_line_errors(store_path: Path, tmp_path: Path):
    out = str(tmp_path / "x.csv")
    assert_one_line_error(
        detector("export", "--format", "csv", "--out", out, "--db", str(store_path), "--since", "yesterday"), "--since"
    )
    assert_one_line_error(
        detector("export", "--format", "csv", "--out", out, "--db", str(store_path), "--status", "open"),
        "unknown status",
    )


def test_a_geopackage_holds_the_sightings_and_the_driven_tracks_too(store_path: Path, tmp_path: Path):
    from pyogrio import list_layers

    out = tmp_path / "city.gpkg"
    result = detector("export", "--format", "gpkg", "--out", str(out), "--db", str(store_path))
    assert result.returncode == 0, result.stderr
    with HazardStore(store_path) as store:
        sightings = {r["id"]: r for r in store.query("SELECT * FROM sightings")}
        (track,) = store.query("SELECT * FROM drive_tracks")
        (drive,) = store.query("SELECT * FROM drives")
    assert result.stdout.startswith(f"2 hazards, {len(sightings)} sightings, 1 drive, 0 signs written")
    assert list_layers(out).tolist() == [
        ["hazards", "Point"], ["sightings", "Point"], ["drives", "LineString"], ["signs", "Point"]
    ]  # fmt: skip

    meta, _, geometry, fields = read(str(out), layer="sightings")
    assert "4326" in meta["crs"] and list(meta["fields"]) == [name for name, _ in SIGHTING_FIELDS]
    data = dict(zip(meta["fields"], fields, strict=True))
    assert sorted(data["id"].tolist()) == sorted(sightings)
    for i, geom in enumerate(shapely.from_wkb(geometry)):  # each where its frame placed it, not the vehicle
        row = sightings[int(data["id"][i])]
        assert (geom.x, geom.y) == pytest.approx((row["lon"], row["lat"]), abs=1e-9)
        assert data["hazard_id"][i] == row["hazard_id"] and data["range_m"][i] == pytest.approx(row["range_m"])
        assert data["vehicle_lat"][i] == pytest.approx(row["vehicle_lat"]) and data["time"][i].endswith("Z")
    statuses = dict(zip(data["hazard_id"].tolist(), data["hazard_status"].tolist(), strict=True))
    assert sorted(set(statuses.values())) == ["confirmed", "rejected"]

    meta, _, geometry, fields = read(str(out), layer="drives")
    assert list(meta["fields"]) == [name for name, _ in DRIVE_FIELDS]
    data = dict(zip(meta["fields"], fields, strict=True))
    assert data["id"].tolist() == [drive["id"]] and data["sightings"].tolist() == [len(sightings)]
    assert data["hazards"].tolist() == [2] and data["distance_m"][0] == pytest.approx(drive["distance_m"])
    (line,) = shapely.from_wkb(geometry)
    assert shapely.get_coordinates(line).tolist() == json.loads(track["geojson"])["coordinates"]


def test_one_layer_per_geojson_or_csv_file_filtered_like_the_hazards(store_path: Path, tmp_path: Path):
    out = tmp_path / "sightings.geojson"
    result = detector(
        "export", "--format", "geojson", "--layer", "sightings", "--status", "confirmed", "--out", str(out),
        "--db", str(store_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    with HazardStore(store_path) as store:
        expected = store.query(
            "SELECT s.id FROM sightings s JOIN hazards h ON h.id = s.hazard_id WHERE h.status = 'confirmed'"
        )
    features = json.loads(out.read_text())["features"]
    assert sorted(f["properties"]["id"] for f in features) == sorted(r[0] for r in expected) and features
    assert {f["properties"]["class"] for f in features} == {"pothole"}  # the rejected sign's are left out

    drives = tmp_path / "drives.csv"
    result = detector("export", "--format", "csv", "--layer", "drives", "--out", str(drives), "--db", str(store_path))
    assert result.returncode == 0, result.stderr
    assert [r["id"] for r in csv.DictReader(drives.open())] == ["d1"]
    later = tmp_path / "later.csv"
    since = ["--since", "2000-01-01"]
    args = ["--format", "csv", "--layer", "drives", *since, "--out", str(later), "--db", str(store_path)]
    assert detector("export", *args).stdout.startswith("0 drives")  # the test drive is from 1970
    assert_one_line_error(
        detector("export", "--format", "csv", "--layer", "hazards", "--layer", "drives", "--out", str(tmp_path / "x"),
                 "--db", str(store_path)),
        "one layer",
    )  # fmt: skip
