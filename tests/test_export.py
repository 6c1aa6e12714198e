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

from detector.export import FIELDS
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
    assert "2 hazards written" in result.stdout
    meta, _, geometry, fields = read(str(out))
    assert "4326" in meta["crs"]
    assert meta["geometry_type"] == "Point"
    assert list(meta["fields"]) == [name for name, _ in FIELDS]
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
    assert rows[0]["first_seen"].endswith("Z")


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
