"""Each hazard's street, stored at the merge (``hazards.street``, detector.store.streets) on both backends: the GIS
view carries it, exports and requests say the same, and ``detector store name-streets`` names hazards stored before
the street layer was set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from test_geolocate import DEDUP, _drive_past
from test_gis_layers import streets_layer
from test_store import LOCAL, TRUTH, _drive

from detector.config import load_config
from detector.export import hazard_rows
from detector.pipeline.dedup.within_drive import cluster_drive
from detector.store import HazardStore
from detector.store.layers import RememberedLayer, remember_layers, street_names
from detector.store.merge import MergeSettings, merge_drive
from detector.store.review import move
from detector.store.streets import street_of

PROJECT = Path(__file__).resolve().parents[1]


def _merge(store: HazardStore, name: str, seed: int, layers: tuple[RememberedLayer, ...] = ()):
    sightings = _drive_past(LOCAL, TRUTH, np.random.default_rng(seed), noise_m=1.0, drive=name)
    settings = MergeSettings(DEDUP, 3.0, layers=layers)
    return merge_drive(store, _drive(name, cluster_drive(sightings, LOCAL, DEDUP)), settings)


def _streets(store: HazardStore) -> list[str | None]:
    return [r["street"] for r in store.query("SELECT street FROM hazards ORDER BY id")]


def test_a_merge_with_a_street_layer_stores_each_hazards_street(tmp_path: Path, store_address, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a PostgreSQL store's evidence folder
    layer = streets_layer(tmp_path / "streets.gpkg")
    with HazardStore(store_address) as store:
        report = _merge(store, "d1", seed=1, layers=(RememberedLayer("streets", layer.resolve(), None),))
        assert report.new == 2
        assert _streets(store) == ["Herzl", "Herzl"]
        if store.dialect == "postgresql":  # the GIS reads it from its view
            assert [r[0] for r in store.query("SELECT street FROM gis_hazards ORDER BY id")] == ["Herzl", "Herzl"]
        # The export says what is stored, with the layer or without it.
        assert [r["street"] for r in hazard_rows(store)] == ["Herzl", "Herzl"]

        # A reviewer moves the pothole onto Kakal: its stored street goes; exports name it from where it now is.
        pothole = store.query("SELECT id FROM hazards WHERE class = 'pothole'")[0][0]
        move(store, pothole, *map(float, LOCAL.to_latlon(40.0, 101.0)), actor="dana")
        row = store.query("SELECT street, lat, lon FROM hazards WHERE id = ?", (pothole,))[0]
        assert row["street"] is None
        assert street_of(row, street_names(load_config(overrides=[f"streets.layer={layer}"]), store)) == "Kakal"
        # The next drive past it stores the street of where the reviewer put it.
        _merge(store, "d2", seed=2, layers=(RememberedLayer("streets", layer.resolve(), None),))
        assert store.query("SELECT street FROM hazards WHERE id = ?", (pothole,))[0][0] == "Kakal"


def _detector(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    return subprocess.run(
        [sys.executable, "-m", "detector", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_hazards_stored_before_the_layer_are_named_by_name_streets(tmp_path: Path, store_address, monkeypatch):
    monkeypatch.chdir(tmp_path)
    layer = streets_layer(tmp_path / "streets.gpkg")
    with HazardStore(store_address) as store:
        _merge(store, "d1", seed=1)
        assert _streets(store) == [None, None]
    db = str(store_address)
    refused = _detector("store", "name-streets", "--db", db, cwd=tmp_path)  # no layer set nor remembered
    assert refused.returncode == 2 and "no street layer" in refused.stderr and "Traceback" not in refused.stderr
    done = _detector("store", "name-streets", "--db", db, "--set", f"streets.layer={layer}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "2 hazards: 2 on a named street, 0 on none within reach; 2 changed" in done.stdout
    with HazardStore(store_address) as store:
        assert _streets(store) == ["Herzl", "Herzl"]
        # The store remembers the layer: a hazard merged later without the flag is named from it.
        with store.transaction() as conn:
            conn.execute("UPDATE hazards SET street = NULL")
        _merge(store, "d2", seed=2)
        assert _streets(store) == ["Herzl", "Herzl"]


def test_a_merge_names_the_stored_hazards_near_its_drive_that_have_none(tmp_path: Path, store_address, monkeypatch):
    monkeypatch.chdir(tmp_path)
    layer = streets_layer(tmp_path / "streets.gpkg")
    with HazardStore(store_address) as store:
        _merge(store, "d1", seed=1)
        with store.transaction() as conn:  # as a drive elsewhere, merged with the layer, records it
            remember_layers(conn, [RememberedLayer("streets", layer.resolve(), None)])
        assert _streets(store) == [None, None]
        _merge(store, "d2", seed=2)  # no layer in its settings: the remembered one
        assert _streets(store) == ["Herzl", "Herzl"]


def test_a_street_layer_that_is_gone_names_nothing_and_loses_no_hazard(tmp_path: Path, caplog):
    gone = RememberedLayer("streets", tmp_path / "gone.gpkg", None)
    with HazardStore(tmp_path / "h.db") as store:
        report = _merge(store, "d1", seed=1, layers=(gone,))
        assert report.new == 2 and _streets(store) == [None, None]
    assert "hazards not named by street" in caplog.text and "gone.gpkg" in caplog.text
