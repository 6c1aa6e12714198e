"""The city's GIS layers: potholes found on its manhole covers are held for review; its streets name hazards."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from test_geolocate import DEDUP, _drive_past
from test_store import LOCAL, TRUTH, _drive

from detector.config.pipeline import HoldNearConfig, StreetsConfig
from detector.errors import InputError
from detector.gis_layers import HoldRule, StreetNames
from detector.pipeline.dedup.within_drive import cluster_drive
from detector.simulate.citymap import write_lines, write_points
from detector.store import HazardStore
from detector.store.merge import MergeSettings, merge_drive
from detector.store.review import confirm

POTHOLE_XY = TRUTH[0][:2]  # local metres; TRUTH[1] is a fallen sign


def _covers(path: Path, local_xy: list[tuple[float, float]]) -> Path:
    """Covers as a city keeps them: a GeoPackage in the Israeli grid (EPSG:2039), one named point each."""
    write_points(path, np.array(local_xy), [f"MH-{k + 1}" for k in range(len(local_xy))], LOCAL)
    return path


def _rule(layer: Path, radius_m: float = 3.0) -> HoldRule:
    rule = HoldRule.load(HoldNearConfig(layer=str(layer), radius_m=radius_m, classes=["pothole"]))
    assert rule is not None
    return rule


def test_a_layer_in_the_israeli_grid_is_measured_in_metres(tmp_path: Path):
    rule = _rule(_covers(tmp_path / "covers.gpkg", [(POTHOLE_XY[0] + 0.5, POTHOLE_XY[1]), (30.0, 60.0)]))
    assert rule.features.labels == ("MH-1", "MH-2")
    lat, lon = LOCAL.to_latlon(*POTHOLE_XY)
    assert rule.reason("pothole", float(lat), float(lon)) == "0.5 m from MH-1 (covers.gpkg)"
    lat, lon = LOCAL.to_latlon(28.0, 60.0)
    assert rule.reason("pothole", float(lat), float(lon)) == "2.0 m from MH-2 (covers.gpkg)"
    lat, lon = LOCAL.to_latlon(POTHOLE_XY[0] + 4.0, POTHOLE_XY[1])  # 3.5 m from MH-1: beyond the radius
    assert rule.reason("pothole", float(lat), float(lon)) is None
    lat, lon = LOCAL.to_latlon(*POTHOLE_XY)
    assert rule.reason("fallen_sign", float(lat), float(lon)) is None  # covers are not taken for signs
    assert HoldRule.load(HoldNearConfig(layer=None, radius_m=3.0, classes=["pothole"])) is None


def test_bad_layers_are_named_with_the_problem(tmp_path: Path):
    with pytest.raises(InputError, match="feature layer not found") as err:
        _rule(tmp_path / "missing.gpkg")
    assert "missing.gpkg" in str(err.value)
    garbage = tmp_path / "covers.geojson"
    garbage.write_text("not a layer at all")
    with pytest.raises(InputError, match="not a GIS layer GDAL can read"):
        _rule(garbage)
    empty = tmp_path / "empty.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}')
    with pytest.raises(InputError, match="no geometries"):
        _rule(empty)


def _merge(store: HazardStore, name: str, seed: int, rule: HoldRule):
    sightings = _drive_past(LOCAL, TRUTH, np.random.default_rng(seed), noise_m=1.0, drive=name)
    return merge_drive(store, _drive(name, cluster_drive(sightings, LOCAL, DEDUP)), MergeSettings(DEDUP, 3.0, rule))


def test_a_pothole_on_a_cover_waits_for_a_reviewer_and_no_request_opens(tmp_path: Path):
    rule = _rule(_covers(tmp_path / "covers.gpkg", [(POTHOLE_XY[0] + 0.5, POTHOLE_XY[1] + 0.5)]))
    with HazardStore(tmp_path / "h.db") as store:
        report = _merge(store, "d1", seed=1, rule=rule)
        assert (report.new, report.confirmed, report.held) == (2, 1, 1)
        assert "1 held for review" in report.line()
        pothole = store.query("SELECT id, status FROM hazards WHERE class = 'pothole'")[0]
        sign = store.query("SELECT id, status FROM hazards WHERE class = 'fallen_sign'")[0]
        assert (pothole["status"], sign["status"]) == ("candidate", "confirmed")
        assert [r["hazard_id"] for r in store.query("SELECT hazard_id FROM outbox")] == [sign["id"]]
        (event,) = store.query("SELECT actor, action, detail FROM events WHERE hazard_id = ?", (pothole["id"],))
        assert (event["actor"], event["action"]) == ("pipeline", "held")
        assert event["detail"].endswith("m from MH-1 (covers.gpkg)")
        assert float(event["detail"].split(" m ")[0]) < 3.0

        # Seen again: still held, but neither reported as newly held nor its reason written twice.
        report = _merge(store, "d2", seed=2, rule=rule)
        assert (report.new, report.merged, report.confirmed, report.held) == (0, 2, 0, 0)
        assert "held for review" not in report.line()
        assert store.query("SELECT status FROM hazards WHERE id = ?", (pothole["id"],))[0][0] == "candidate"
        assert store.query("SELECT COUNT(*) FROM events WHERE action = 'held'")[0][0] == 1

        # The reviewer sees a pothole around the cover's frame: confirmed, and its request is queued once.
        assert confirm(store, pothole["id"], "dana").status == "confirmed"
        assert store.query("SELECT COUNT(*) FROM outbox WHERE hazard_id = ?", (pothole["id"],))[0][0] == 1
        report = _merge(store, "d3", seed=3, rule=rule)
        assert (report.confirmed, report.held) == (0, 0)
        assert store.query("SELECT status FROM hazards WHERE id = ?", (pothole["id"],))[0][0] == "confirmed"


def test_covers_elsewhere_hold_nothing(tmp_path: Path):
    rule = _rule(_covers(tmp_path / "covers.gpkg", [(POTHOLE_XY[0] + 6.0, POTHOLE_XY[1])]))
    with HazardStore(tmp_path / "h.db") as store:
        report = _merge(store, "d1", seed=1, rule=rule)
        assert (report.confirmed, report.held) == (2, 0)
        assert store.query("SELECT COUNT(*) FROM outbox")[0][0] == 2


def streets_layer(path: Path) -> Path:
    """Street centrelines as a city keeps them (EPSG:2039): Herzl along the test drive, Kakal crossing it at 100 m."""
    write_lines(path, [np.array([(0.0, -50.0), (0.0, 150.0)]), np.array([(-80.0, 100.0), (80.0, 100.0)])],
                ["Herzl", "Kakal"], LOCAL)  # fmt: skip
    return path


def test_a_hazard_is_named_by_the_nearest_street_within_reach(tmp_path: Path):
    layer = streets_layer(tmp_path / "streets.gpkg")
    streets = StreetNames.load(StreetsConfig(layer=str(layer), name_field=None, max_distance_m=25.0))
    assert streets is not None
    name = lambda x, y: streets.name(*map(float, LOCAL.to_latlon(x, y)))  # noqa: E731
    assert [name(x, y) for x, y, _ in TRUTH] == ["Herzl", "Herzl"]
    assert (name(3.0, 96.0), name(40.0, 101.0), name(40.0, 40.0)) == ("Herzl", "Kakal", None)  # 40 m off: no street
    assert StreetNames.load(StreetsConfig(layer=None, name_field=None, max_distance_m=25.0)) is None
    wrong_field = re.escape("no attribute 'shem_rechov' (streets.layer; the layer has name)")
    with pytest.raises(InputError, match=wrong_field) as err:
        StreetNames.load(StreetsConfig(layer=str(layer), name_field="shem_rechov", max_distance_m=25.0))
    assert "streets.gpkg" in str(err.value)
    unnamed = tmp_path / "unnamed.geojson"  # centrelines without a name attribute: nothing to name a hazard by
    line = {"type": "Feature", "properties": {"kind": "road"},
            "geometry": {"type": "LineString", "coordinates": [[34.79, 31.25], [34.79, 31.26]]}}  # fmt: skip
    unnamed.write_text(json.dumps({"type": "FeatureCollection", "features": [line]}))
    with pytest.raises(InputError, match=r"no attribute 'name' or 'street' or .*'name_he' .*the layer has kind"):
        StreetNames.load(StreetsConfig(layer=str(unnamed), name_field=None, max_distance_m=25.0))
