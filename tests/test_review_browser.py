"""The review app in a real browser: headless Debian Chromium driven by Playwright against the app on loopback."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import wait_for
from test_review import PASSWORDS, App, build_store, expected_dashboard, query, run_cli

from detector.config import load_config
from detector.gis_layers import StreetNames
from detector.privacy.evidence import ACTED_ON
from detector.review.auth import add_user
from detector.review.photos import PhotoPreparer, Photos
from detector.store import HazardStore

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():
    pytest.skip(
        "no Chromium: install Debian's chromium package (apt-get install chromium) for the browser tests",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]  # fmt: skip
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


def _served(folder: Path, address: Path | str) -> Iterator[App]:
    """The app on test_review's store at ``address``, the city's streets layered (the drive runs along Herzl)."""
    from test_gis_layers import streets_layer

    layer = streets_layer(folder / "streets.gpkg")
    served = App(build_store(folder, address), (f"streets.layer={layer}",))
    served.db = address
    yield served
    served.stop()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    yield from _served(tmp_path, tmp_path / "h.db")


@pytest.fixture
def app_on_each_backend(tmp_path: Path, store_address, monkeypatch) -> Iterator[App]:
    """The app on SQLite and on PostgreSQL (``store_address``): for the browser test of what a reviewer writes."""
    monkeypatch.chdir(tmp_path)  # a PostgreSQL store's evidence folder
    yield from _served(tmp_path, store_address)


class Tab:
    """One browser page on the app; records every request it makes off the app, and page errors."""

    def __init__(self, browser, app: App, **context_options) -> None:
        self.context = browser.new_context(**context_options)
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: None if r.url.startswith(app.url) else self.outside.append(r.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.app = app

    def sign_in(self, name: str, path: str = "/") -> None:
        self.page.goto(self.app.url + path)
        self.page.wait_for_url(lambda url: "/login?next=" in url)
        self.page.fill("#name", name)
        self.page.fill("#password", PASSWORDS[name])
        self.page.click("#sign-in")
        self.page.wait_for_url(self.app.url + path)
        self.page.wait_for_selector("body[data-ready='1']")

    def close(self) -> None:
        self.context.close()
        assert not self.outside, f"the page reached outside the app: {self.outside}"
        assert not self.errors, f"page errors: {self.errors}"


@pytest.fixture
def tab(browser, app: App) -> Iterator[Tab]:
    opened = Tab(browser, app)
    yield opened
    opened.close()


def test_map_shows_every_hazard_where_the_store_has_it(tab: Tab, app: App):
    tab.sign_in("rita")
    stored = {r["id"]: (r["lat"], r["lon"]) for r in query(app.db, "SELECT * FROM hazards WHERE status != 'merged'")}
    assert tab.page.locator("path.hazard-marker").count() == len(stored) == 6
    shown = tab.page.evaluate(
        "() => [...window.reviewState.markers].map(([id, m]) => [id, m.getLatLng().lat, m.getLatLng().lng])"
    )
    assert {i: (lat, lon) for i, lat, lon in shown} == stored
    assert tab.page.locator("#hazard-list tbody tr").count() == 6
    assert tab.page.locator("path.drive-track").count() == 1  # no basemap configured: the driven track
    # The list and the map stay in step with the filters.
    tab.page.check("#class-filter input[value='pothole']")
    potholes = query(app.db, "SELECT COUNT(*) FROM hazards WHERE class = 'pothole'")[0][0]
    tab.page.wait_for_function(f"() => document.querySelectorAll('#hazard-list tbody tr').length === {potholes}")
    assert tab.page.locator("path.hazard-marker").count() == potholes
    assert "class=pothole" in tab.page.get_attribute("#export-csv", "href")


def test_review_link_opens_the_hazard_with_its_evidence_and_escaped_text(tab: Tab, app: App):
    hazard = query(app.db, "SELECT hazard_id FROM tickets WHERE status = 'closed'")[0][0]
    tab.sign_in("rita", f"/hazards/{hazard}")  # the link every 106 request carries
    tab.page.wait_for_selector("#detail h2")
    assert tab.page.text_content("#detail h2").startswith(f"Hazard #{hazard}")
    assert "R-102" in tab.page.text_content("#detail-request")
    assert tab.page.text_content("#detail dt:text-is('Street') + dd") == "Herzl"
    assert tab.page.text_content(f"#hazard-list tr[data-id='{hazard}'] .street") == "Herzl"
    notes = tab.page.text_content("#detail-notes")
    assert notes.startswith("<script>window.__xss = 1</script>")  # the markup shows as text
    assert tab.page.text_content("#detail-notice").startswith("106: Made safe <b>today</b><script>")
    assert tab.page.locator("#detail script, #detail img[src='x']").count() == 0
    assert tab.page.evaluate("() => window.__xss") is None
    assert tab.page.locator("#detail tr.selected, #hazard-list tr.selected").count() == 1
    tab.page.wait_for_function(
        "() => { const i = document.querySelector('img.evidence'); return i && i.naturalWidth > 0 }"
    )
    src = tab.page.get_attribute("img.evidence", "src")
    assert src.startswith(f"/api/hazards/{hazard}/photo")


def test_reject_and_merge_in_the_browser_change_the_store(browser, app_on_each_backend: App):
    """The list, and a reviewer's decisions written to the store: on both backends."""
    app = app_on_each_backend
    tab = Tab(browser, app)
    try:
        _reject_and_merge(tab, app)
    finally:
        tab.close()


def _reject_and_merge(tab: Tab, app: App) -> None:
    tab.sign_in("rita")
    page = tab.page
    candidate = query(app.db, "SELECT id FROM hazards WHERE status = 'candidate'")[0][0]
    page.click(f"#hazard-list tbody tr[data-id='{candidate}']")
    page.wait_for_selector("#reject")
    page.fill("#note", "shadow of a tree <b>not</b> a pothole")
    page.click("#reject")
    page.wait_for_function("() => document.querySelector('#detail-status').textContent === 'rejected'")
    assert query(app.db, "SELECT status FROM hazards WHERE id = ?", (candidate,))[0][0] == "rejected"
    event = query(app.db, "SELECT actor, action, detail FROM events WHERE hazard_id = ?", (candidate,))[0]
    assert (event["actor"], event["action"]) == ("rita", "reject")
    assert json.loads(event["detail"])["note"] == "shadow of a tree <b>not</b> a pothole"
    assert "<b>not</b>" in page.text_content("#detail .events")  # the note shows as typed

    signs = [r[0] for r in query(app.db, "SELECT id FROM hazards WHERE class = 'fallen_sign' AND status != 'rejected'")]
    source, target = signs[0], signs[1]
    before = {r["id"]: r["sighting_count"] for r in query(app.db, "SELECT id, sighting_count FROM hazards")}
    page.click(f"#hazard-list tbody tr[data-id='{source}']")
    page.wait_for_function(f"() => document.querySelector('#detail h2').textContent.startsWith('Hazard #{source}')")
    page.fill("#merge-target", str(target))
    page.click("#merge")
    page.wait_for_function(f"() => document.querySelector('#detail h2').textContent.startsWith('Hazard #{target}')")
    rows = {r["id"]: r for r in query(app.db, "SELECT * FROM hazards")}
    assert (rows[source]["status"], rows[source]["merged_into"]) == ("merged", target)
    assert rows[target]["sighting_count"] == before[source] + before[target]
    assert (
        query(app.db, "SELECT COUNT(*) FROM sightings WHERE hazard_id = ?", (target,))[0][0]
        == rows[target]["sighting_count"]
    )
    actors = query(app.db, "SELECT DISTINCT actor FROM events WHERE action = 'merge'")
    assert [a[0] for a in actors] == ["rita"]
    assert page.locator("path.hazard-marker").count() == 5  # the merged one left the map
    assert f"#{source}" in page.text_content("#detail")  # "Merged from: #source"


def test_a_held_candidate_says_why_in_the_list_and_its_history(tab: Tab, app: App):
    candidate = query(app.db, "SELECT id FROM hazards WHERE status = 'candidate'")[0][0]
    reason = "0.9 m from <b>MH-7</b> (covers.gpkg)"
    with sqlite3.connect(app.db) as conn:
        conn.execute(
            "INSERT INTO events (hazard_id, at, actor, action, detail) VALUES (?, '2026-06-01T08:00:00Z', 'pipeline',"
            " 'held', ?)",
            (candidate, reason),
        )
    # The one vocabulary: "held for review", and why in words (the feature's name as data, shown as text).
    words = (
        "0.9 m from the mapped feature \u2068<b>MH-7</b>\u2069 (\u2068covers.gpkg\u2069):"
        " a reviewer checks it is not that feature."
    )
    tab.sign_in("rita")
    status = tab.page.locator(f"#hazard-list tbody tr[data-id='{candidate}'] span.status")
    assert status.text_content() == "held for review"
    assert status.get_attribute("title") == words
    why = tab.page.locator(f"#hazard-list tbody tr[data-id='{candidate}'] .held-reason")
    assert why.text_content() == words and tab.page.locator("#hazard-list b").count() == 0  # shown, as text
    assert tab.page.locator("#hazard-list span.status[title*='MH']").count() == 1
    tab.page.click(f"#hazard-list tbody tr[data-id='{candidate}']")
    tab.page.wait_for_selector("#detail ol.events li")
    assert tab.page.text_content("#detail-status") == "held for review"
    history = tab.page.locator("#detail ol.events").text_content()
    assert words in history and tab.page.locator("#detail ol.events b").count() == 0  # text, not markup


def test_a_viewer_sees_no_decisions(tab: Tab, app: App):
    tab.sign_in("victor")
    tab.page.click("#hazard-list tbody tr >> nth=0")
    tab.page.wait_for_selector("#detail h2")
    assert tab.page.locator("#detail .decisions").count() == 0


def test_a_selected_hazard_shows_its_sightings_and_the_rays_they_were_seen_along(tab: Tab, app: App):
    hazard, other = [r[0] for r in query(app.db, "SELECT id FROM hazards WHERE status = 'confirmed' ORDER BY id")][:2]
    stored = query(app.db, "SELECT lat, lon, vehicle_lat, vehicle_lon FROM sightings WHERE hazard_id = ?", (hazard,))
    tab.sign_in("rita", f"/hazards/{hazard}")
    tab.page.wait_for_selector("#detail h2")
    tab.page.wait_for_function(f"() => document.querySelectorAll('path.sighting-marker').length === {len(stored)}")
    shown = tab.page.evaluate(
        """() => window.reviewState.sightings.getLayers().map((layer) => layer.getRadius
            ? ["dot", layer.getLatLng().lat, layer.getLatLng().lng]
            : ["ray", ...layer.getLatLngs().flatMap((p) => [p.lat, p.lng])])"""
    )
    dots = sorted((round(lat, 7), round(lon, 7)) for kind, lat, lon, *_ in shown if kind == "dot")
    assert dots == sorted((round(r["lat"], 7), round(r["lon"], 7)) for r in stored)
    rays = sorted(tuple(round(v, 7) for v in ray[1:]) for ray in shown if ray[0] == "ray")
    expected = [
        (r["vehicle_lat"], r["vehicle_lon"], r["lat"], r["lon"]) for r in stored if r["vehicle_lat"] is not None
    ]
    assert rays == sorted(tuple(round(v, 7) for v in ray) for ray in expected) and rays  # each from the vehicle
    count = query(app.db, "SELECT COUNT(*) FROM sightings WHERE hazard_id = ?", (other,))[0][0]
    tab.page.click(f"#hazard-list tbody tr[data-id='{other}']")  # another hazard: its own sightings replace them
    tab.page.wait_for_function(f"() => document.querySelectorAll('path.sighting-marker').length === {count}")


def test_a_drive_named_with_markup_is_text_in_the_sighting_tooltips(tab: Tab, app: App):
    name = "<img src=x onerror=alert(1)>-2f0c61d1a6b7"  # the drive id of a video named <img src=x onerror=alert(1)>.mp4
    with sqlite3.connect(app.db) as conn:
        for table, column in (("drives", "id"), ("sightings", "drive_id"), ("passes", "drive_id"),
                              ("drive_tracks", "drive_id")):  # fmt: skip
            conn.execute(f"UPDATE {table} SET {column} = ? WHERE {column} = 'd1'", (name,))
    hazard = query(app.db, "SELECT id FROM hazards WHERE status = 'confirmed' ORDER BY id")[0][0]
    count = query(app.db, "SELECT COUNT(*) FROM sightings WHERE hazard_id = ?", (hazard,))[0][0]
    tab.sign_in("rita", f"/hazards/{hazard}")
    tab.page.wait_for_function(f"() => document.querySelectorAll('path.sighting-marker').length === {count}")
    tab.page.evaluate("() => window.reviewState.sightings.eachLayer((l) => l.getTooltip() && l.openTooltip())")
    tips = tab.page.locator(".leaflet-tooltip-pane .leaflet-tooltip")
    assert tips.count() >= 1 and all(name in tips.nth(i).text_content() for i in range(tips.count()))
    assert tab.page.locator(".leaflet-pane img").count() == 0  # the markup shows as text; none went in


def test_dashboard_figures_match_the_store(tab: Tab, app: App):
    tab.sign_in("victor", "/dashboard")
    want = expected_dashboard(app.db)
    figure = lambda name: tab.page.text_content(f"[data-figure='{name}']")  # noqa: E731
    assert figure("found") == str(want["found"])
    assert (figure("open"), figure("closed"), figure("queued")) == tuple(
        str(want[k]) for k in ("open", "closed", "queued")
    )
    assert figure("possibly_repaired") == str(want["possibly_repaired"])
    assert float(figure("to_close")) == want["to_close_median"]
    assert float(figure("to_request")) == want["to_request_median"]
    cells = tab.page.eval_on_selector_all(
        "#per-day tbody td[data-class]",
        "tds => tds.map(td => [td.parentElement.dataset.period, td.dataset.class, td.textContent])",
    )
    assert {(day, cls): int(n) for day, cls, n in cells if n != "0"} == want["days"]
    km = tab.page.eval_on_selector_all(
        "#per-day tbody td.km", "tds => tds.map(td => [td.parentElement.dataset.period, td.textContent])"
    )
    assert {day: float(n) for day, n in km if float(n)} == want["km_per_day"]
    assert float(figure("km")) == round(sum(want["km_per_day"].values()), 1)
    assert tab.page.locator("#day-chart svg rect").count() >= len(want["days"])


def test_public_map_shows_confirmed_hazards_only_and_fetches_nothing_private(browser, app: App):
    tab = Tab(browser, app)
    bodies: list[str] = []
    tab.page.on("response", lambda r: bodies.append(r.text()) if "/api/" in r.url else None)
    tab.page.goto(app.url + "/public")
    tab.page.wait_for_selector("body[data-ready='1']")
    confirmed = query(app.db, "SELECT lat, lon FROM hazards WHERE status = 'confirmed'")
    assert tab.page.locator("path.public-marker").count() == len(confirmed) == 3
    shown = tab.page.evaluate("() => window.publicMarkers.map(m => [m.getLatLng().lat, m.getLatLng().lng])")
    assert sorted(map(tuple, shown)) == sorted((round(r[0], 5), round(r[1], 5)) for r in confirmed)
    assert len(bodies) == 1  # only /api/public/hazards
    for private in ("rita", "victor", "evidence", ".jpg", "d1", "candidate", "rejected", "script"):
        assert private not in bodies[0]
    assert tab.page.locator("img.evidence").count() == 0
    tab.close()


@pytest.mark.slow
def test_map_shows_the_sample_drives_hazards(browser, tmp_path: Path):
    """The README's first run, to the letter (the sample drive with the sample town's layers), then the app and
    the exports with no flags: one marker per stored hazard, and each hazard's street in the app, the GeoJSON and
    the CSV (the store remembers the street layer the run used)."""
    project = Path(__file__).resolve().parents[1]
    if not (project / "models" / "hazards.onnx").is_file():
        pytest.skip("models/hazards.onnx not found (the shipped model)")
    out = tmp_path / "sample"
    done = subprocess.run(
        [sys.executable, "-m", "detector", "run", "sample_footage/drive.mp4", "--out", str(out), "-q",
         "--set", "dedup.hold_near.layer=sample_footage/covers.gpkg",
         "--set", "streets.layer=sample_footage/streets.gpkg"],
        capture_output=True, text=True, timeout=300, cwd=project,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    db = out / "hazards.db"
    with HazardStore(db) as store:
        add_user(store, "rita", "reviewer", PASSWORDS["rita"])
        layer = project / "sample_footage" / "streets.gpkg"
        streets = StreetNames.load(load_config(overrides=[f"streets.layer={layer}"]).streets)
    assert streets is not None
    stored = {r["id"]: (r["lat"], r["lon"]) for r in query(db, "SELECT * FROM hazards WHERE status != 'merged'")}
    assert stored, "the sample drive should yield hazards"
    street_of = {i: streets.name(lat, lon) for i, (lat, lon) in stored.items()}
    assert all(street_of.values()), street_of
    # `detector run` spends no time on photos; the review app makes those of the hazards people act on (confirmed,
    # held for review: their box drawn, faces blurred) in the background, before anyone opens them.
    photos = out / "hazards_evidence" / "tickets"
    assert not list(photos.glob("hazard_*.jpg"))
    acted_on = [r[0] for r in query(db, f"SELECT h.id FROM hazards h WHERE {ACTED_ON}")]
    assert len(acted_on) == 4, acted_on  # the README's sample: 1 confirmed, 3 held
    preparer = PhotoPreparer(lambda: HazardStore(db), Photos(load_config().tickets.evidence)).start()
    try:
        made = sorted(f"hazard_{i}.jpg" for i in acted_on)
        wait_for(lambda: sorted(p.name for p in photos.glob("hazard_*.jpg")) == made, f"the photos {made}", 120)
    finally:
        preparer.stop()
    served = App(db)  # as `detector review --db runs/sample/hazards.db`: no layer flag
    tab = Tab(browser, served)
    try:
        tab.sign_in("rita")
        assert tab.page.locator("path.hazard-marker").count() == len(stored)
        shown = tab.page.evaluate(
            "() => [...window.reviewState.markers].map(([id, m]) => [id, m.getLatLng().lat, m.getLatLng().lng])"
        )
        assert {i: (lat, lon) for i, lat, lon in shown} == stored
        assert tab.page.locator("path.drive-track").count() == 1
        assert tab.page.locator("path.basemap-street").count() == 20  # the sample town's streets
        listed = tab.page.eval_on_selector_all(
            "#hazard-list tbody tr",
            "rows => rows.map(r => [Number(r.dataset.id), r.querySelector('.street').textContent])",
        )
        assert dict(listed) == street_of
    finally:
        tab.close()
        served.stop()
    for fmt in ("geojson", "csv"):
        path = tmp_path / f"hazards.{fmt}"
        exported = run_cli("export", "--db", str(db), "--format", fmt, "--out", str(path))
        assert exported.returncode == 0, exported.stderr
        if fmt == "csv":
            rows = {int(r["id"]): r["street"] for r in csv.DictReader(path.open(encoding="utf-8"))}
        else:
            features = json.loads(path.read_text())["features"]
            rows = {f["properties"]["id"]: f["properties"]["street"] for f in features}
        assert rows == street_of, fmt


def test_the_map_draws_the_sign_inventory_standing_down_and_missing(browser, app: App):
    with sqlite3.connect(app.db) as conn:  # three mapped signs, as detector.store.signs writes them
        for lat, status in ((31.2501, "standing"), (31.2502, "down"), (31.2503, "missing")):
            conn.execute(
                "INSERT INTO signs (lat, lon, uncertainty_m, height_m, first_seen, last_seen, views, drive_count,"
                " confidence, status, created_at, updated_at) VALUES (?, 34.79, 1.0, 2.2, 1.7e9, 1.7e9, 5, 2, 0.9,"
                " ?, 'now', 'now')",
                (lat, status),
            )
    tab = Tab(browser, app)
    try:
        tab.sign_in("rita")
        tab.page.wait_for_selector("path.sign-marker")
        assert tab.page.locator("path.sign-marker").count() == 3
        assert [tab.page.locator(f"path.sign-{s}").count() for s in ("standing", "down", "missing")] == [1, 1, 1]
        assert tab.errors == [] and tab.outside == []
    finally:
        tab.close()
