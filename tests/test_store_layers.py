"""The GIS layers a store's drives used, remembered by the store: review, export and the public map name and draw
the city's streets without the flags; the map's basemap and each street's patrol coverage."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from test_gis_layers import streets_layer
from test_review import BASE, App, build_store, run_cli
from test_store import LOCAL

from detector.config import load_config
from detector.simulate.citymap import write_lines, write_points
from detector.store import HazardStore
from detector.store.layers import remember_layers, remembered_layers, used_layers

pytest.importorskip("uvicorn", reason="the review app needs uvicorn (pip install -e .)")


def _remember(db: Path, *overrides: str) -> None:
    """What a drive merged with these flags leaves in the store (``commit_analysis`` does it in the merge)."""
    with HazardStore(db) as store, store.transaction() as conn:
        remember_layers(conn, used_layers(load_config(overrides=list(overrides))))


def _export(db: Path, out: Path, *flags: str) -> list[str | None]:
    done = run_cli("export", "--db", str(db), "--format", out.suffix[1:], "--out", str(out), *flags)
    assert done.returncode == 0, done.stderr
    if out.suffix == ".csv":
        return [r["street"] or None for r in csv.DictReader(out.open(encoding="utf-8"))]
    return [f["properties"]["street"] for f in json.loads(out.read_text())["features"]]


def test_review_and_exports_name_streets_from_the_layer_the_drives_used(tmp_path: Path):
    db = build_store(tmp_path)
    layer = streets_layer(tmp_path / "streets.gpkg")  # the test drive runs along Herzl
    _remember(db, f"streets.layer={layer}")
    assert set(remembered_layers(HazardStore(db))) == {"streets"}
    app = App(db)  # no --set streets.layer
    try:
        session, _ = app.login("rita")
        rows = session.get(app.url + "/api/hazards", timeout=30).json()["hazards"]
        assert [r["street"] for r in rows] == ["Herzl"] * 6
        one = session.get(f"{app.url}/api/hazards/{rows[0]['id']}", timeout=30).json()["hazard"]
        assert one["street"] == "Herzl"
    finally:
        app.stop()
    assert _export(db, tmp_path / "h.csv") == ["Herzl"] * 6
    assert _export(db, tmp_path / "h.geojson") == ["Herzl"] * 6
    # A layer given on the command line still wins: the same centrelines under other names.
    renamed = tmp_path / "renamed.gpkg"
    write_lines(renamed, [np.array([(0.0, -50.0), (0.0, 150.0)])], ["Jabotinsky"], LOCAL)
    assert _export(db, tmp_path / "o.csv", "--set", f"streets.layer={renamed}") == ["Jabotinsky"] * 6
    # A later drive merged without the flag does not make the store forget the layer.
    _remember(db)
    assert _export(db, tmp_path / "again.csv") == ["Herzl"] * 6
    # The layer's file gone: a warning naming it, and the store still exports (without streets).
    layer.unlink()
    done = run_cli("export", "--db", str(db), "--format", "csv", "--out", str(tmp_path / "gone.csv"))
    assert done.returncode == 0 and "streets layer this store's drives used is gone" in done.stderr
    assert str(layer) in done.stderr


def test_the_map_draws_the_citys_streets_with_when_each_was_last_patrolled(tmp_path: Path):
    db = build_store(tmp_path)
    layer = streets_layer(tmp_path / "streets.gpkg")  # Herzl along the drive d1, Kakal crossing it
    covers = tmp_path / "covers.gpkg"
    write_points(covers, np.array([(4.0, 30.0), (-4.0, 80.0)]), ["MH-1", "MH-2"], LOCAL)
    _remember(db, f"streets.layer={layer}", f"dedup.hold_near.layer={covers}")
    app = App(db)
    try:
        session, _ = app.login("victor")
        drawn = session.get(app.url + "/api/basemap", timeout=30).json()
        streets = {f["properties"]["name"]: f for f in drawn["streets"]["features"]}
        assert set(streets) == {"Herzl", "Kakal"}
        assert streets["Herzl"]["geometry"]["type"] == "LineString"
        # d1 drove Herzl (ended BASE + 30); it only crossed Kakal; d2 has no track.
        assert streets["Herzl"]["properties"]["last_driven"] == BASE + 30
        assert streets["Kakal"]["properties"]["last_driven"] is None
        assert [(x["name"], len(x["features"]["features"])) for x in drawn["layers"]] == [("covers.gpkg", 2)]
        assert drawn["map"]["tile_url"] is None and drawn["map"]["unpatrolled_days"] == 7
        # The public map draws the streets too, without patrol times or the utility layers.
        public = session.get(app.url + "/api/public/hazards", timeout=30).json()
        assert {f["properties"]["name"] for f in public["basemap"]["streets"]["features"]} == {"Herzl", "Kakal"}
        assert "last_driven" not in json.dumps(public) and public["basemap"]["layers"] == []
    finally:
        app.stop()
