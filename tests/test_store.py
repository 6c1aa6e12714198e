"""The hazard store: merging drives, confirmation and outbox, misses, idempotence, schema and locks."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from test_geolocate import CAMERA, CLASSES, DEDUP, LOC, _drive_past, box_at, frame_at

from detector.errors import InputError
from detector.geo import LocalFrame, geodesic_distance_m
from detector.pipeline.dedup.across_drives import FramePoses
from detector.pipeline.dedup.within_drive import cluster_drive
from detector.pipeline.localize import localize
from detector.records import DriveRecord
from detector.store import HazardStore
from detector.store.db import integrity_errors
from detector.store.merge import (
    DriveAlreadyStored,
    DriveResult,
    MergeReport,
    MergeSettings,
    drive_processed,
    merge_drive,
)
from detector.store.schema import MIGRATIONS, SCHEMA_VERSION, for_dialect

LOCAL = LocalFrame(31.25, 34.79)
TRUTH = [(1.0, 20.0, 0), (-1.5, 40.0, 1)]


def _record(name: str, trip: str = "") -> DriveRecord:
    return DriveRecord(name, f"hash-{name}", f"{name}.mp4", f"{name}.gpx", 0.0, 30.0, 110.0, 37, "sim", trip)


def _poses() -> FramePoses:
    ys = np.arange(-30.0, 80.0, 3.0)
    lat, lon = LOCAL.to_latlon(np.zeros_like(ys), ys)
    return FramePoses(np.asarray(lat), np.asarray(lon), np.zeros_like(ys), 1280, 720)


def _drive(name: str, hazards, trip: str = "") -> DriveResult:
    """Drive ``name`` (part of ``trip``) along the test road, with ``hazards`` clustered from its sightings."""
    return DriveResult(_record(name, trip), hazards, _poses(), CAMERA)


def _merge(store: HazardStore, name: str, truth, seed: int, noise_m: float = 2.0, trip: str = ""):
    sightings = _drive_past(LOCAL, truth, np.random.default_rng(seed), noise_m=noise_m, drive=name)
    hazards = cluster_drive(sightings, LOCAL, DEDUP)
    return merge_drive(store, _drive(name, hazards, trip), MergeSettings(DEDUP, 3.0))


def test_first_drive_creates_confirmed_hazards_and_queues_tickets(store_address):
    with HazardStore(store_address) as store:
        report = _merge(store, "d1", TRUTH, seed=1)
        assert (report.new, report.merged, report.confirmed) == (2, 0, 2)
        rows = store.query("SELECT * FROM hazards ORDER BY class")
        assert [r["class"] for r in rows] == ["fallen_sign", "pothole"]
        assert all(r["status"] == "confirmed" and r["drive_count"] == 1 for r in rows)
        assert all(r["sighting_count"] >= 5 for r in rows)
        assert store.query("SELECT COUNT(*) FROM outbox WHERE state = 'pending'")[0][0] == 2
        assert drive_processed(store, "hash-d1") and not drive_processed(store, "hash-d2")
        if store.dialect == "sqlite":
            assert store.query("PRAGMA journal_mode")[0][0] == "wal"
        (track,) = store.query("SELECT * FROM drive_tracks")  # the driven line, for the review map
        coords = np.array(json.loads(track["geojson"])["coordinates"])
        poses = _poses()
        assert track["drive_id"] == "d1" and len(coords) >= 2
        assert coords[:, 1].min() == pytest.approx(poses.lat.min(), abs=1e-6)
        assert coords[:, 1].max() == pytest.approx(poses.lat.max(), abs=1e-6)


def _pothole_views(frames: list[list[float]]):
    """Sightings of one pothole 10 m ahead: per frame (3 m apart, 0.3 s), one box per confidence given."""
    sightings = []
    for i, confidences in enumerate(frames):
        lat, lon = LOCAL.to_latlon(0.0, 3.0 * i)
        frame = frame_at(float(lat), float(lon), 0.0, utc=0.3 * i, index=i)
        for conf in confidences:
            box = box_at(10.0 - 3.0 * i, 1.0, conf=conf)
            sightings += localize(frame, box, CLASSES, CAMERA, LOCAL, LOC)
    return sightings


@pytest.mark.parametrize(
    ("frames", "confirmed"),
    [([[0.55, 0.55]], False), ([[0.55], [0.55]], True), ([[0.5, 0.45], [0.3]], False), ([[0.5, 0.45], [0.45]], True)],
)
def test_a_frame_is_one_view_of_a_hazard(store_address, frames, confirmed: bool):
    """Two boxes on one pothole in one frame are one look at it: the evidence rule (2 views, 0.7) counts frames."""
    rule = DEDUP.model_copy(update={"confirm_sightings": {"pothole": 2}, "confirm_evidence": {"pothole": 0.7}})
    hazards = cluster_drive(_pothole_views(frames), LOCAL, rule)
    assert len(hazards) == 1 and len(hazards[0].sightings) == sum(map(len, frames))
    with HazardStore(store_address) as store:
        report = merge_drive(store, _drive("d1", hazards), MergeSettings(rule, 3.0))
        (row,) = store.query("SELECT status, sighting_count FROM hazards")
    assert report.confirmed == int(confirmed)
    assert row["status"] == ("confirmed" if confirmed else "candidate")
    assert row["sighting_count"] == sum(map(len, frames))


def test_later_drives_merge_and_average_out_gps_error(store_address):
    with HazardStore(store_address) as store:
        _merge(store, "d1", TRUTH, seed=1, noise_m=3.0)
        one = store.query("SELECT uncertainty_m FROM hazards WHERE class = 'pothole'")[0][0]
        for i in range(2, 6):
            report = _merge(store, f"d{i}", TRUTH, seed=i, noise_m=3.0)
            assert (report.new, report.merged, report.confirmed) == (0, 2, 0)
        rows = store.query("SELECT * FROM hazards")
        assert len(rows) == 2 and all(r["drive_count"] == 5 for r in rows)
        pothole = next(r for r in rows if r["class"] == "pothole")
        assert pothole["uncertainty_m"] < one * 0.6
        lat, lon = LOCAL.to_latlon(1.0, 20.0)
        assert geodesic_distance_m(pothole["lat"], pothole["lon"], lat, lon) < 3.0
        assert store.query("SELECT COUNT(*) FROM outbox")[0][0] == 2  # still one per hazard


def test_segments_of_one_patrol_count_as_one_drive(store_address):
    """A live run's segments share one GPS error: they neither raise the drive count nor average the error out."""
    with HazardStore(store_address) as store:
        for i in range(1, 5):
            _merge(store, f"live-{i}", TRUTH, seed=i, noise_m=3.0, trip="live-1")
        _merge(store, "other", TRUTH, seed=9, noise_m=3.0)
        rows = store.query("SELECT class, sighting_count, drive_count, uncertainty_m FROM hazards ORDER BY class")
        assert [r["drive_count"] for r in rows] == [2, 2] and all(r["sighting_count"] >= 25 for r in rows)
        # Two drives' GPS errors (3 m each) average to 3 / sqrt(2), not 3 / sqrt(5).
        assert all(3.0 / 2**0.5 <= r["uncertainty_m"] < 3.0 for r in rows)
        trips = store.query("SELECT id, trip FROM drives ORDER BY id")
        assert [tuple(t) for t in trips] == [(f"live-{i}", "live-1") for i in range(1, 5)] + [("other", None)]


def test_missed_hazards_become_possibly_repaired_and_come_back(store_address):
    with HazardStore(store_address) as store:
        _merge(store, "d1", TRUTH, seed=1)
        only_sign = [TRUTH[1]]
        assert _merge(store, "d2", only_sign, seed=2).possibly_repaired == 0
        pothole = store.query("SELECT status, misses FROM hazards WHERE class = 'pothole'")[0]
        assert tuple(pothole) == ("confirmed", 1)
        assert _merge(store, "d3", only_sign, seed=3).possibly_repaired == 1
        assert store.query("SELECT status FROM hazards WHERE class = 'pothole'")[0][0] == "possibly_repaired"
        _merge(store, "d4", TRUTH, seed=4)
        assert tuple(store.query("SELECT status, misses FROM hazards WHERE class = 'pothole'")[0]) == ("confirmed", 0)
        assert store.query("SELECT COUNT(*) FROM hazards")[0][0] == 2  # never deleted, never duplicated


def test_a_patrol_misses_a_hazard_once_not_once_per_segment(store_address):
    """A live run's later segments that pass a hazard again without seeing it add no miss: one patrol, one pass.
    Another patrol's does."""
    with HazardStore(store_address) as store:
        _merge(store, "p-1", TRUTH, seed=1, trip="p-1")
        only_sign = [TRUTH[1]]
        for k in (2, 3):
            assert _merge(store, f"p-{k}", only_sign, seed=k, trip="p-1").possibly_repaired == 0
        pothole = "SELECT status, misses FROM hazards WHERE class = 'pothole'"
        assert tuple(store.query(pothole)[0]) == ("confirmed", 0)
        assert store.query("SELECT COUNT(*) FROM passes WHERE seen = 0")[0][0] == 0
        _merge(store, "other", only_sign, seed=4)
        assert tuple(store.query(pothole)[0]) == ("confirmed", 1)


def test_a_failed_merge_leaves_nothing_behind(store_address):
    with HazardStore(store_address) as store:
        _merge(store, "d1", TRUTH, seed=1)
        before = [store.query(f"SELECT COUNT(*) FROM {t}")[0][0] for t in ("hazards", "sightings", "outbox")]
        with pytest.raises(DriveAlreadyStored):
            _merge(store, "d1", [(0.0, 60.0, 0)], seed=5)  # the same drive again: refused in the transaction
        after = [store.query(f"SELECT COUNT(*) FROM {t}")[0][0] for t in ("hazards", "sightings", "outbox")]
        assert before == after


def test_a_merge_that_fails_halfway_leaves_nothing_behind(store_address):
    with HazardStore(store_address) as store:
        _merge(store, "d1", TRUTH, seed=1)
        tables = ("drives", "hazards", "sightings", "outbox", "events")
        before = [store.query(f"SELECT COUNT(*) FROM {t}")[0][0] for t in tables]
        # The drive and its hazards are written before its sightings: fail there, halfway through the merge.
        if store.dialect == "sqlite":
            store.conn.execute(
                "CREATE TEMP TRIGGER halfway BEFORE INSERT ON sightings BEGIN SELECT RAISE(ABORT, 'x'); END"
            )
        else:
            store.conn.execute(
                "CREATE FUNCTION halfway() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                " RAISE integrity_constraint_violation USING MESSAGE = 'x'; END $$"
            )
            store.conn.execute(
                "CREATE TRIGGER halfway BEFORE INSERT ON sightings FOR EACH ROW EXECUTE FUNCTION halfway()"
            )
        with pytest.raises(integrity_errors()):
            _merge(store, "d2", TRUTH, seed=2)
        after = [store.query(f"SELECT COUNT(*) FROM {t}")[0][0] for t in tables]
        assert before == after


def test_a_newer_schema_is_refused_and_left_untouched(tmp_path: Path):
    path = tmp_path / "h.db"
    HazardStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(InputError, match="newer version"):
        HazardStore(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION))
def test_a_store_written_by_an_older_version_is_migrated_keeping_its_rows(tmp_path: Path, version: int):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # a store as that version of the software left it
        for migration in MIGRATIONS[:version]:
            conn.executescript(for_dialect(migration, "sqlite"))
        conn.execute(
            "INSERT INTO hazards (id, class, lat, lon, uncertainty_m, first_seen, last_seen, sighting_count,"
            " drive_count, confidence, status, created_at, updated_at)"
            " VALUES (7, 'pothole', 31.25, 34.79, 1.5, 0, 60, 3, 1, 0.8, 'confirmed', 'then', 'then')"
        )
        conn.execute("INSERT INTO tickets (hazard_id, service_request_id, status) VALUES (7, 'R-7', 'open')")
        conn.execute(f"PRAGMA user_version = {version}")
    conn.close()
    with HazardStore(path) as store:
        assert store.version == SCHEMA_VERSION
        (ticket,) = store.query("SELECT * FROM tickets")
        assert (ticket["hazard_id"], ticket["service_request_id"], ticket["status"]) == (7, "R-7", "open")
        assert ticket["service_notice"] is None  # a column added since: empty, not invented
        report = _merge(store, "d1", TRUTH, seed=1)  # and the migrated store takes new drives
        assert report.new == 2 and store.query("SELECT COUNT(*) FROM hazards")[0][0] == 3


def test_a_locked_store_waits_then_says_so(tmp_path: Path):
    path = tmp_path / "h.db"
    HazardStore(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        store = HazardStore(path, lock_timeout_s=0.3)
        with pytest.raises(InputError, match=r"locked by another process \(waited 0.3 s\)"), store.transaction():
            pass
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_not_a_database(tmp_path: Path):
    bad = tmp_path / "h.db"
    bad.write_bytes(b"hello" * 1000)
    with pytest.raises(InputError, match="not a hazard store"):
        HazardStore(bad)


def _open_and_close(path: Path, errors: list[str]) -> None:
    try:
        HazardStore(path, 10.0).close()
    except Exception as e:
        errors.append(repr(e))


def test_a_new_store_opened_by_several_writers_at_once_is_created_once(tmp_path: Path):
    import threading

    for round_ in range(5):
        path, errors = tmp_path / f"new{round_}.db", []
        threads = [threading.Thread(target=_open_and_close, args=(path, errors)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        with HazardStore(path) as store:
            assert store.version == SCHEMA_VERSION


def _faint(sightings, confidence: float):
    from dataclasses import replace

    return [replace(s, confidence=confidence) for s in sightings]


def test_a_hazard_is_confirmed_by_the_evidence_of_all_its_sightings(store_address):
    strict = DEDUP.model_copy(update={"confirm_sightings": {"pothole": 2, "fallen_sign": 2},
                                      "confirm_evidence": {"pothole": 0.9, "fallen_sign": 0.9}})  # fmt: skip
    sightings = _drive_past(LOCAL, [(1.0, 20.0, 0)], np.random.default_rng(1), drive="d1")
    with HazardStore(store_address) as store:
        few = _faint(sightings[:3], 0.3)  # noisy-OR 0.66: under 0.9
        report = merge_drive(store, _drive("d1", cluster_drive(few, LOCAL, strict)), MergeSettings(strict, 3.0))
        assert (report.new, report.confirmed) == (1, 0)
        assert store.query("SELECT status FROM hazards")[0][0] == "candidate"
        more = _faint(_drive_past(LOCAL, [(1.0, 20.0, 0)], np.random.default_rng(2), drive="d2")[:4], 0.3)
        report = merge_drive(store, _drive("d2", cluster_drive(more, LOCAL, strict)), MergeSettings(strict, 3.0))
        assert (report.merged, report.confirmed) == (1, 1)  # seven faint sightings over two drives: 0.92
        assert store.query("SELECT status FROM hazards")[0][0] == "confirmed"
        assert store.query("SELECT COUNT(*) FROM outbox")[0][0] == 1


def test_classes_the_city_files_by_hand_wait_for_a_reviewer_with_the_reason(store_address):
    from detector.holds import FilingPolicy, ReviewHolds
    from detector.store.review import confirm

    holds = ReviewHolds((FilingPolicy.load({"pothole": True, "fallen_sign": False}),))
    sightings = _drive_past(LOCAL, TRUTH, np.random.default_rng(1), drive="d1")
    with HazardStore(store_address) as store:
        hazards = cluster_drive(sightings, LOCAL, DEDUP)
        report = merge_drive(store, _drive("d1", hazards), MergeSettings(DEDUP, 3.0, holds))
        assert (report.confirmed, report.held) == (1, 1)
        rows = {r["class"]: r for r in store.query("SELECT * FROM hazards")}
        assert rows["pothole"]["status"] == "confirmed" and rows["fallen_sign"]["status"] == "candidate"
        queued = store.query("SELECT hazard_id FROM outbox")
        assert [q[0] for q in queued] == [rows["pothole"]["id"]]  # the sign's request is not queued
        (event,) = store.query("SELECT detail FROM events WHERE action = 'held'")
        assert event[0] == "filing policy: fallen_sign"  # read back into words by detector.holds.parse_reason
        again = _drive_past(LOCAL, TRUTH, np.random.default_rng(2), drive="d2")
        merge_drive(store, _drive("d2", cluster_drive(again, LOCAL, DEDUP)), MergeSettings(DEDUP, 3.0, holds))
        assert store.query("SELECT COUNT(*) FROM events WHERE action = 'held'")[0][0] == 1  # said once
        assert store.query("SELECT COUNT(*) FROM outbox")[0][0] == 1
        confirm(store, rows["fallen_sign"]["id"], "dana")  # a reviewer looked: now it is filed
        assert store.query("SELECT COUNT(*) FROM outbox")[0][0] == 2


def test_batch_and_live_totals_count_every_merge_counter() -> None:
    """A batch's and a live run's totals add each drive's merge the same way: held and possibly repaired too."""
    from detector.batch.runner import BatchSummary
    from detector.live.runner import LiveReport

    drives = [
        MergeReport(sightings=4, new=2, confirmed=1, held=1),
        MergeReport(sightings=3, merged=1, possibly_repaired=1),
    ]
    batch, live = BatchSummary(drives=2), LiveReport(segments=2)
    for merge in drives:
        batch.add(merge)
        live.add(merge)
    said = "7 sightings: 2 new hazards, 1 merged into known ones, 1 newly confirmed, 1 possibly repaired, 1 held"
    assert said in batch.lines()[1] and said in live.summary()
    assert (batch.held, batch.possibly_repaired) == (live.held, live.possibly_repaired) == (1, 1)


def test_postgres_a_newer_schema_is_refused_and_left_untouched(postgres_url: str):
    import psycopg

    HazardStore(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE store_version SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(InputError, match="newer version"):
        HazardStore(postgres_url)
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT version FROM store_version").fetchone()[0] == SCHEMA_VERSION + 1


def test_postgres_a_locked_store_waits_then_says_so(postgres_url: str):
    import psycopg

    from detector.store.postgres import STORE_LOCK

    HazardStore(postgres_url).close()
    with psycopg.connect(postgres_url) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (STORE_LOCK,))  # a writer in the middle of its transaction
        with HazardStore(postgres_url, lock_timeout_s=0.3) as store:
            with pytest.raises(InputError, match=r"locked by another process \(waited 0.3 s\)"), store.transaction():
                pass
            with store.transaction(row_locks=True) as conn:  # the outbox's claims lock rows, not the store
                assert conn.execute("SELECT 1").fetchone()[0] == 1


def test_postgres_a_password_in_the_address_is_refused_unshown(postgres_url: str):
    with pytest.raises(InputError) as refused:
        HazardStore(postgres_url.replace("@", ":hunter2@", 1))
    assert "hunter2" not in str(refused.value) and "PGPASSWORD" in str(refused.value)


def test_postgres_a_wrong_password_is_one_line_without_it(postgres_url: str, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "not-the-password")
    with pytest.raises(InputError, match="cannot connect to PostgreSQL") as refused:
        HazardStore(postgres_url.replace("/t_", "/other_"), lock_timeout_s=2)
    assert "not-the-password" not in str(refused.value) and "\n" not in str(refused.value)


def test_postgres_a_new_store_opened_by_several_processes_at_once_is_created_once(postgres_cluster):
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    url = postgres_cluster.new_database()
    with ProcessPoolExecutor(4, mp_context=get_context("spawn")) as pool:
        versions = list(pool.map(_version_of, [url] * 4))
    assert versions == [SCHEMA_VERSION] * 4


def _version_of(url: str) -> int:
    with HazardStore(url, 30.0) as store:
        return store.version
