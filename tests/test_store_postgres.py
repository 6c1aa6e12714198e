"""The store on PostgreSQL + PostGIS: concurrent merges and senders in several processes, the geometry columns and
their indexes, the GIS views as GDAL/OGR reads them, and ``detector store migrate`` from an SQLite store.

The session's throwaway cluster (tests/postgres_cluster.py) serves them; they skip where PostgreSQL is absent.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from test_store import TRUTH, _merge
from test_tickets import api_key, config, ours, serve  # noqa: F401 (fixtures: the 106 server, its key)

from detector.store import HazardStore
from detector.tickets.outbox import sync

PROJECT = Path(__file__).resolve().parents[1]
PROCESSES = 4
DRIVES_EACH = 2


def _merge_then_send(url: str, worker: int, endpoint: str, start: multiprocessing.synchronize.Barrier) -> None:
    """One hub worker: merge its drives past the same hazards as every other worker's, then drain the outbox."""
    start.wait(120)
    with HazardStore(url) as store:
        for k in range(DRIVES_EACH):
            _merge(store, f"w{worker}-d{k}", TRUTH, seed=10 * worker + k)
    sync(config(endpoint), url)


def test_concurrent_merges_in_several_processes_make_no_duplicate_and_one_request_each(serve, postgres_url):  # noqa: F811
    """Four processes merge drives past the same two hazards at the same moment, then each drains the outbox to
    the real 106 stand-in: two hazards, every drive counted on each, one request per hazard."""
    server = serve()
    HazardStore(postgres_url).close()  # created and migrated before the workers start
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES)
    workers = [
        context.Process(target=_merge_then_send, args=(postgres_url, w, server.url, start)) for w in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(300)
    assert [w.exitcode for w in workers] == [0] * PROCESSES
    with HazardStore(postgres_url) as store:
        hazards = store.query("SELECT id, class, status, drive_count FROM hazards ORDER BY class")
        assert [(h["class"], h["status"]) for h in hazards] == [("fallen_sign", "confirmed"), ("pothole", "confirmed")]
        assert all(h["drive_count"] == PROCESSES * DRIVES_EACH for h in hazards)
        assert store.query("SELECT COUNT(*) FROM drives")[0][0] == PROCESSES * DRIVES_EACH
        assert [tuple(r) for r in store.query("SELECT state, COUNT(*) FROM outbox GROUP BY state")] == [("sent", 2)]
        tickets = store.query("SELECT hazard_id, service_request_id FROM tickets ORDER BY hazard_id")
    rows = server.rows()
    assert len(rows) == 2 and all(len(ours(rows, h["id"])) == 1 for h in hazards)
    assert sorted(t["service_request_id"] for t in tickets) == sorted(str(r["id"]) for r in rows)


def test_hazards_sightings_and_tracks_are_postgis_geometry_with_spatial_indexes(postgres_url):
    with HazardStore(postgres_url) as store:
        _merge(store, "d1", TRUTH, seed=1)
        (hazard,) = store.query(
            "SELECT ST_SRID(geom), GeometryType(geom), ST_X(geom) = lon AND ST_Y(geom) = lat FROM hazards LIMIT 1"
        )
        assert tuple(hazard) == (4326, "POINT", True)
        (track,) = store.query("SELECT ST_SRID(geom), GeometryType(geom), ST_NPoints(geom) FROM drive_tracks")
        assert track[:2] == (4326, "LINESTRING") and track[2] >= 2
        indexes = {r[0] for r in store.query("SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%USING gist%'")}
        assert {"hazards_geom", "hazards_geog", "sightings_geom", "drive_tracks_geom"} <= indexes
        with store.transaction() as conn:  # the merge's candidate query is answered from the geography index
            conn.execute("SET LOCAL enable_seqscan = off")
            plan = "\n".join(
                r[0]
                for r in conn.execute(
                    "EXPLAIN SELECT * FROM hazards WHERE ST_DWithin(geom::geography,"
                    " ST_MakeEnvelope(34.79, 31.25, 34.80, 31.26, 4326)::geography, 60)"
                )
            )
        assert "hazards_geog" in plan


def _detector(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    return subprocess.run(
        [sys.executable, "-m", "detector", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_store_migrate_copies_every_table_with_ids_and_evidence_checked_by_counts(tmp_path: Path, postgres_url):
    from detector.hub.vehicles import add_vehicle
    from detector.review.auth import add_user

    source = tmp_path / "central.db"
    with HazardStore(source) as store:
        _merge(store, "d1", TRUTH, seed=1)
        _merge(store, "d2", TRUTH, seed=2)
        add_vehicle(store, "van-1")
        add_user(store, "dana", "reviewer", "a long enough password")
        with store.transaction() as conn:  # a hazard merged into a later one: a reference forward in its own table
            conn.execute("UPDATE hazards SET evidence_path = 'd1/000012.jpg' WHERE id = 1")
    with sqlite3.connect(source) as conn:
        conn.execute(
            "INSERT INTO hazards (id, class, lat, lon, uncertainty_m, first_seen, last_seen, sighting_count,"
            " drive_count, confidence, status, created_at, updated_at) SELECT 9, class, lat, lon, uncertainty_m,"
            " first_seen, last_seen, 0, 1, confidence, 'confirmed', created_at, updated_at FROM hazards WHERE id = 2"
        )
        conn.execute("UPDATE hazards SET status = 'merged', merged_into = 9 WHERE id = 2")
    conn.close()
    (tmp_path / "central_evidence" / "d1").mkdir(parents=True)
    (tmp_path / "central_evidence" / "d1" / "000012.jpg").write_bytes(b"\xff\xd8 a frame")
    with sqlite3.connect(source) as conn:
        expected = {
            t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        hazards = conn.execute("SELECT id, class, lat, lon, status, merged_into, evidence_path FROM hazards").fetchall()
    conn.close()

    moved = _detector("store", "migrate", "--from", str(source), "--to", postgres_url, cwd=tmp_path)
    assert moved.returncode == 0, moved.stderr
    assert "counts checked" in moved.stdout and "evidence: 1 files" in moved.stdout
    with HazardStore(postgres_url) as store:
        assert {t: store.query(f"SELECT COUNT(*) FROM {t}")[0][0] for t in expected} == expected
        copied = store.query("SELECT id, class, lat, lon, status, merged_into, evidence_path FROM hazards ORDER BY id")
        assert [tuple(r) for r in copied] == sorted(tuple(r) for r in hazards)
        assert (tmp_path / store.evidence_dir / "d1" / "000012.jpg").read_bytes() == b"\xff\xd8 a frame"
    with HazardStore(postgres_url) as store:  # the identities go on after the copied ids
        report = _merge(store, "d3", [(0.0, 90.0, 0)], seed=3)
        assert report.new == 1 and store.query("SELECT MAX(id) FROM hazards")[0][0] == 10

    again = _detector("store", "migrate", "--from", str(source), "--to", postgres_url, cwd=tmp_path)
    assert again.returncode == 2 and "move into an empty database" in again.stderr
    for args, said in (
        (["--from", str(tmp_path / "none.db"), "--to", postgres_url], "no hazard store here"),
        (["--from", str(source), "--to", str(tmp_path / "other.db")], "--to must be a PostgreSQL address"),
        (["--from", str(source), "--to", postgres_url.replace("@", ":pw@")], "PGPASSWORD"),
    ):
        bad = _detector("store", "migrate", *args, cwd=tmp_path)
        assert bad.returncode == 2 and said in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1 and ":pw@" not in bad.stderr


GIS_LAYERS = {"gis_hazards": "Point", "gis_sightings": "Point", "gis_coverage": "Line String", "gis_signs": "Point"}


def _ogr_layers(connection: str) -> dict[str, tuple[str, int | None, list[str]]]:
    """Each layer GDAL/OGR finds at ``connection`` (a ``PG:`` string): its geometry type, EPSG code and fields.
    Through pyogrio where its GDAL has the PostgreSQL driver, else ``ogrinfo``; the test skips where neither has
    it."""
    import re
    import shutil

    import pyogrio

    if "PostgreSQL" in pyogrio.list_drivers():
        found = {}
        for name, kind in pyogrio.list_layers(connection):
            info = pyogrio.read_info(connection, layer=name)
            crs = info["crs"]
            found[str(name)] = (str(kind), int(crs.split(":")[-1]) if crs else None, [str(f) for f in info["fields"]])
        return found
    if shutil.which("ogrinfo") is None:
        pytest.skip("no GDAL with the PostgreSQL driver here (pyogrio's wheel lacks it): apt-get install gdal-bin")
    found = {}
    for name in GIS_LAYERS:
        info = subprocess.run(["ogrinfo", "-ro", "-so", connection, name], capture_output=True, text=True, timeout=60)
        assert info.returncode == 0, info.stderr
        kind = re.search(r"^Geometry: (.+)$", info.stdout, re.MULTILINE)
        epsg = re.findall(r'ID\["EPSG",(\d+)\]\]\s*$', info.stdout, re.MULTILINE)
        fields = re.findall(r"^(\w+): \w+ \(", info.stdout, re.MULTILINE)  # "street: String (0.0)"
        found[name] = (kind[1] if kind else "", int(epsg[-1]) if epsg else None, fields)
    return found


def test_the_gis_opens_the_views_with_their_geometry_and_srid(postgres_url):
    """What QGIS or ArcGIS sees (docs/postgis.md): GDAL/OGR opens the store's views as layers, SRID 4326."""
    from urllib.parse import urlsplit

    with HazardStore(postgres_url) as store:
        _merge(store, "d1", TRUTH, seed=1)
        (hazard,) = store.query("SELECT status, outbox_state FROM gis_hazards WHERE class = 'pothole'")
        assert tuple(hazard) == ("confirmed", "pending")
    url = urlsplit(postgres_url)  # the password: PGPASSWORD, as for every client
    connection = f"PG:host={url.hostname} port={url.port} dbname={url.path.strip('/')} user={url.username}"
    layers = _ogr_layers(connection)
    for name, kind in GIS_LAYERS.items():
        assert layers[name][:2] == (kind, 4326), layers
    assert {"street", "status", "service_request_id"} <= set(layers["gis_hazards"][2]), layers["gis_hazards"]


def test_the_review_app_reads_a_moved_store_as_it_read_the_sqlite_one(tmp_path: Path, postgres_url, monkeypatch):
    """The review app over the same season, SQLite and then moved to PostgreSQL: the same answers; a reviewer's
    decision is written on PostgreSQL too."""
    pytest.importorskip("uvicorn", reason="the review app needs uvicorn")
    from test_review import App, build_store

    from detector.store.move import move_store

    monkeypatch.chdir(tmp_path)  # the PostgreSQL store's evidence folder
    source = build_store(tmp_path)
    move_store(source, postgres_url)
    paths = ["/api/hazards", "/api/hazards/2", "/api/dashboard", "/api/drives", "/api/public/hazards",
             "/api/export?format=geojson"]  # fmt: skip
    answers = {}
    for db in (source, postgres_url):
        app = App(db)
        try:
            rita, csrf = app.login("rita")
            answers[str(db)] = [rita.get(app.url + path, timeout=60).json() for path in paths]
            if db == postgres_url:
                decided = rita.post(f"{app.url}/api/hazards/3/decision", json={"action": "confirm"},
                                    headers={"X-CSRF-Token": csrf}, timeout=30)  # fmt: skip
                assert decided.status_code == 200, decided.text
        finally:
            app.stop()
    for path, on_sqlite, on_postgres in zip(paths, answers[str(source)], answers[postgres_url], strict=True):
        assert on_postgres == on_sqlite, (path, _differences(on_postgres, on_sqlite))
    with HazardStore(postgres_url) as store:
        assert store.query("SELECT status FROM hazards WHERE id = 3")[0][0] == "confirmed"
        assert store.query("SELECT COUNT(*) FROM events WHERE hazard_id = 3 AND actor = 'rita'")[0][0] == 1


def _differences(a, b, at: str = "") -> list[str]:
    """Where two JSON answers differ (the first few), for the assertion's message."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _differences(a.get(k), b.get(k), f"{at}.{k}")][:5]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f"{at}[{i}]")][:5]
    return [] if a == b else [f"{at}: {a!r} != {b!r}"[:300]]
