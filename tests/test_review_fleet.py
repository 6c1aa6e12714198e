"""The fleet on a hub's store: which vehicle saw each sighting, drives and kilometres per vehicle per day, each
vehicle's last contact and what it still has queued, a silent vehicle flagged; in the API and in Chromium. The
API's tests run on both backends (``store_address``), the browser's on SQLite."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from test_review import SQLITE_ONLY, App, build_store, query
from test_review_browser import Tab, browser  # noqa: F401 (the browser fixture)

from detector.review.fleet import fleet
from detector.store import HazardStore

CITY = "Asia/Jerusalem"
HOUR_S = 3600.0


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def hub_store(folder: Path, now: float, address: Path | str | None = None) -> Path:
    """test_review's store as a hub's: its first drive from van-12 (heard from an hour ago, nothing queued), the
    second from van-7 (silent 30 hours, 4 segments queued at its last upload); van-3 revoked, never heard from."""
    db = build_store(folder, address)
    vehicles = [
        ("van-12", "a" * 64, _utc(now - 900 * HOUR_S), None, _utc(now - HOUR_S), 3, 1, 0),
        ("van-7", "b" * 64, _utc(now - 900 * HOUR_S), None, _utc(now - 30 * HOUR_S), 1, 1, 4),
        ("van-3", "c" * 64, _utc(now - 900 * HOUR_S), _utc(now - 24 * HOUR_S), None, 0, 0, None),
    ]
    with HazardStore(db) as store, store.transaction() as conn:
        first, second = (r[0] for r in conn.execute("SELECT id FROM drives ORDER BY started_utc"))
        for vehicle in vehicles:
            conn.execute(
                "INSERT INTO hub_vehicles (name, token_hash, created_at, revoked_at, last_contact_at, segments,"
                " drives, queued) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                vehicle,
            )
        sent = [("van-12", first), ("van-12", first), ("van-7", second)]  # van-12's drive came in two segments
        for k, (vehicle, drive) in enumerate(sent):
            conn.execute(
                "INSERT INTO hub_segments (digest, segment_id, vehicle, drive_id, sightings, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (f"{k:064x}", f"seg-{k}", vehicle, drive, 10, _utc(now)),
            )
    return db


@pytest.fixture
def fleet_db(tmp_path: Path, store_address, monkeypatch) -> Path:
    """:func:`hub_store` on each backend, its time now; the working folder is ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    return hub_store(tmp_path, time.time(), store_address)


def _expected_days(db: Path) -> set[tuple[str, str, int, float]]:
    rows = query(db, "SELECT id, started_utc, distance_m FROM drives ORDER BY started_utc")
    vehicles = ["van-12", "van-7"]
    return {
        (datetime.fromtimestamp(r["started_utc"], ZoneInfo(CITY)).strftime("%Y-%m-%d"), v, 1,
         round(r["distance_m"] / 1000, 2))
        for r, v in zip(rows, vehicles, strict=True)
    }  # fmt: skip


def test_fleet_figures_per_vehicle_and_day(fleet_db: Path):
    now, db = time.time(), fleet_db
    with HazardStore(db) as store:
        figures = fleet(store, CITY, 24.0, now)
        assert fleet(store, CITY, 36.0, now)["vehicles"][2]["silent"] is False  # van-7 within 36 h
    by_name = {v["name"]: v for v in figures["vehicles"]}
    assert list(by_name) == ["van-12", "van-3", "van-7"]
    assert [by_name[n]["silent"] for n in by_name] == [False, False, True]  # a revoked vehicle is not missed
    assert by_name["van-3"]["revoked"] and by_name["van-3"]["queued"] is None
    assert (by_name["van-7"]["queued"], by_name["van-12"]["segments"]) == (4, 3)
    assert {(r["day"], r["vehicle"], r["drives"], r["km"]) for r in figures["per_day"]} == _expected_days(db)
    assert [r["day"] for r in figures["per_day"]] == sorted((r["day"] for r in figures["per_day"]), reverse=True)


def test_a_live_runs_segments_are_one_drive_in_the_figures(fleet_db: Path):
    """van-12's drive went on as a live run: a second segment of the same trip is kilometres, not a drive."""
    from detector.review.dashboard import dashboard

    now, db = time.time(), fleet_db
    before = {(r[0], r[1]) for r in _expected_days(db)}
    with HazardStore(db) as store, store.transaction() as conn:
        first, started = conn.execute("SELECT id, started_utc FROM drives ORDER BY started_utc").fetchone()
        conn.execute(
            "INSERT INTO drives (id, content_hash, video, track, started_utc, ended_utc, distance_m, frames_sampled,"
            " camera, trip, processed_at) VALUES ('seg-2', 'h2', 'cam', 'gpsd', ?, ?, 2500.0, 40, 'sim', ?, 'now')",
            (started + 60, started + 120, first),
        )
        conn.execute(
            "INSERT INTO hub_segments (digest, segment_id, vehicle, drive_id, sightings, received_at)"
            " VALUES (?, 'live-seg-2', 'van-12', 'seg-2', 0, ?)",
            ("f" * 64, _utc(now)),
        )
    with HazardStore(db) as store:
        days = {(r["day"], r["vehicle"]): r for r in fleet(store, CITY, 24.0, now)["per_day"]}
        figures = dashboard(store, CITY)
    assert set(days) == before  # the segment started on its trip's day
    van12 = next(r for (day, vehicle), r in days.items() if vehicle == "van-12")
    first_km = query(db, "SELECT distance_m FROM drives WHERE id = ?", (first,))[0][0] / 1000
    assert (van12["drives"], van12["km"]) == (1, round(first_km + 2.5, 2))
    assert figures["drives"] == 2  # three rows in drives, two patrols
    assert sum(r["drives"] for r in figures["per_day"]) == 2


def test_a_store_no_vehicle_reports_to_has_no_fleet(tmp_path: Path, store_address, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with HazardStore(build_store(tmp_path, store_address)) as store:
        assert fleet(store, CITY, 24.0, time.time()) is None


@pytest.fixture
def app(fleet_db: Path) -> Iterator[App]:
    served = App(fleet_db, ("review.language=en",))
    served.db = fleet_db
    yield served
    served.stop()


def test_the_api_names_the_vehicle_of_each_sighting_and_drive(app: App):
    session, _ = app.login("victor")
    dashboard = session.get(app.url + "/api/dashboard", timeout=30).json()
    assert [v["name"] for v in dashboard["fleet"]["vehicles"] if v["silent"]] == ["van-7"]
    drives = {d["id"]: d["vehicle"] for d in session.get(app.url + "/api/drives", timeout=30).json()["drives"]}
    first, second = (r["id"] for r in query(app.db, "SELECT id FROM drives ORDER BY started_utc"))
    assert drives == {first: "van-12", second: "van-7"}
    hazard = query(app.db, "SELECT hazard_id FROM sightings WHERE drive_id = ? LIMIT 1", (first,))[0][0]
    detail = session.get(f"{app.url}/api/hazards/{hazard}", timeout=30).json()
    assert detail["sightings"] and {s["vehicle"] for s in detail["sightings"]} == {"van-12"}


@SQLITE_ONLY
def test_the_dashboard_shows_the_fleet_and_flags_the_silent_vehicle(browser, app: App):  # noqa: F811
    tab = Tab(browser, app)
    try:
        tab.sign_in("victor", "/dashboard")
        assert tab.page.is_visible("#fleet")
        assert tab.page.text_content("[data-figure='silent']") == "1"
        rows = tab.page.eval_on_selector_all(
            "#vehicles tbody tr",
            "trs => trs.map(tr => [tr.dataset.vehicle, tr.className, tr.querySelector('.queued').textContent])",
        )
        assert rows == [["van-12", "", "0"], ["van-3", "revoked", "–"], ["van-7", "silent", "4"]]
        days = tab.page.eval_on_selector_all(
            "#vehicle-days tbody tr",
            "trs => trs.map(tr => [tr.dataset.day, tr.dataset.vehicle, tr.querySelector('.drives').textContent,"
            " tr.querySelector('.km').textContent])",
        )
        assert {(d, v, int(n), round(float(km), 1)) for d, v, n, km in days} == {
            (d, v, n, round(km, 1)) for d, v, n, km in _expected_days(app.db)
        }
        hazard = query(app.db, "SELECT hazard_id FROM sightings LIMIT 1")[0][0]
        tab.page.goto(f"{app.url}/hazards/{hazard}")
        tab.page.wait_for_selector("table.sightings .vehicle")
        assert set(
            tab.page.eval_on_selector_all("table.sightings .vehicle", "tds => tds.map(td => td.textContent)")
        ) == {"van-12"}
    finally:
        tab.close()
