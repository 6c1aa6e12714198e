"""The review app as a municipal analyst opens it, in Chromium, in Hebrew and English: the city drawn under the map
from the layers the store remembers, markers with a size, no text overflowing its cell, no config key or raw code
in a page's text, and the streets not patrolled for N days. Screenshots go to ``$REVIEW_SCREENSHOTS`` (else the
test's temporary folder)."""

from __future__ import annotations

import http.server
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from test_gis_layers import streets_layer
from test_review import App, build_store, query
from test_review_browser import Tab, browser  # noqa: F401 (the fixture)

from detector.config import DEFAULT_CONFIG, load_config
from detector.store import HazardStore
from detector.store.layers import remember_layers, used_layers

# Raw codes a person must never read: class and status codes, the 106 queue's states.
RAW_CODES = ("fallen_sign", "possibly_repaired", "(pending)", "pending)", "auto_file")
OVERFLOW = """() => [...document.querySelectorAll("td, th, dd, dt, h1, h2, h3, p, label, legend, #list-pane, #detail")]
  .filter((el) => el.offsetParent !== null && el.scrollWidth > el.clientWidth + 1)
  .map((el) => `${el.tagName}#${el.id}: ${el.scrollWidth} > ${el.clientWidth}: ${el.textContent.slice(0, 40)}`)"""


def config_keys() -> set[str]:
    """Every dotted key of the pipeline's configuration (``tickets.auto_file``, ``review.tile_url``...)."""
    keys: set[str] = set()

    def walk(prefix: str, node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                dotted = f"{prefix}.{key}" if prefix else str(key)
                if prefix:
                    keys.add(dotted)
                walk(dotted, value)

    walk("", yaml.safe_load(Path(DEFAULT_CONFIG).read_text(encoding="utf-8")))
    return keys


KEYS = config_keys()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    """The six-hazard store, its drive merged with a street layer (remembered: the app is given no flag), one
    candidate held by the filing policy as an older version wrote it (a config key in the text)."""
    db = build_store(tmp_path)
    layer = streets_layer(tmp_path / "streets.gpkg")
    with HazardStore(db) as store, store.transaction() as conn:
        remember_layers(conn, used_layers(load_config(overrides=[f"streets.layer={layer}"])))
        candidate = conn.execute("SELECT id FROM hazards WHERE status = 'candidate'").fetchone()[0]
        conn.execute(
            "INSERT INTO events (hazard_id, at, actor, action, detail) VALUES (?, '2026-06-01T08:00:00Z', 'pipeline',"
            " 'held', 'pothole requests are filed after review (tickets.auto_file)')",
            (candidate,),
        )
    served = App(db)
    served.db = db
    yield served
    served.stop()


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("REVIEW_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _page_is_for_people(tab: Tab, name: str, folder: Path) -> str:
    """Screenshot the page, then: nothing overflows its cell, no config key or raw code in its text."""
    tab.page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    assert tab.page.evaluate(OVERFLOW) == [], name
    text = tab.page.inner_text("body")
    shown = [key for key in KEYS if re.search(rf"(?<![\w.]){re.escape(key)}(?![\w])", text)]
    assert shown == [], f"{name}: config keys on the page: {shown}"
    assert [code for code in RAW_CODES if code in text] == [], name
    return text


@pytest.mark.parametrize("lang", ["he", "ar", "en"])
def test_the_pages_draw_the_city_fit_their_cells_and_speak_words(browser, app: App, tmp_path: Path, lang: str):  # noqa: F811
    folder = _shots(tmp_path)
    tab = Tab(
        browser, app, viewport={"width": 1400, "height": 900}, locale={"he": "he-IL", "ar": "ar", "en": "en-GB"}[lang]
    )
    try:
        tab.page.goto(f"{app.url}/login?lang={lang}")  # the language switch: its cookie keeps the choice
        tab.sign_in("rita")
        page = tab.page
        # The city under the hazards: both streets of the layer the drive used, each named once.
        assert page.locator("path.basemap-street").count() == 2
        assert sorted(page.locator(".street-label").all_inner_texts()) == ["Herzl", "Kakal"]
        markers = page.locator("path.hazard-marker")
        assert markers.count() == 6
        for i in range(markers.count()):
            box = markers.nth(i).bounding_box()
            assert box is not None and box["width"] >= 8 and box["height"] >= 8
        assert page.locator("#hazard-list tbody .street").all_inner_texts() == ["Herzl"] * 6
        _page_is_for_people(tab, f"map-{lang}", folder)

        held = query(app.db, "SELECT id FROM hazards WHERE status = 'candidate'")[0][0]
        page.click(f"#hazard-list tbody tr[data-id='{held}']")
        page.wait_for_selector("#detail ol.events li")
        text = _page_is_for_people(tab, f"hazard-{lang}", folder)
        want = {"he": "בודק מאשר", "ar": "بعد أن يؤكده مراجع", "en": "only after a reviewer confirms it"}[lang]
        assert want in page.inner_text("#detail-held") and want in page.inner_text("#detail ol.events")
        assert (
            page.inner_text("#detail-status")
            == {"he": "ממתין לבדיקה", "ar": "محجوز للمراجعة", "en": "held for review"}[lang]
        )
        assert "Herzl" in text

        queued = query(app.db, "SELECT hazard_id FROM outbox WHERE state = 'pending'")[0][0]
        page.click(f"#hazard-list tbody tr[data-id='{queued}']")
        page.wait_for_function(f"() => document.querySelector('#detail h2').textContent.includes('#{queued}')")
        request = page.inner_text("#detail-request")
        assert (
            request
            == {
                "he": "בתור (ממתינה לשליחה)",
                "ar": "في الانتظار (بانتظار الإرسال)",
                "en": "queued (waiting to be sent)",
            }[lang]
        )
        _page_is_for_people(tab, f"hazard-queued-{lang}", folder)

        page.goto(app.url + "/dashboard")
        page.wait_for_selector("body[data-ready='1']")
        # An empty table says so; the chart's legend sits outside its bars.
        assert page.locator("#found-yesterday tbody tr.empty").count() == 1  # nothing found yesterday
        assert page.locator("#day-chart .chart-legend span.swatch").count() == 2
        chart_text = " ".join(page.locator("#day-chart svg text").all_text_contents())
        assert not any(name in chart_text for name in ("pothole", "fallen sign", "בור", "תמרור", "حفرة"))
        _page_is_for_people(tab, f"dashboard-{lang}", folder)
    finally:
        tab.close()


@pytest.mark.parametrize("lang", ["he", "en"])
def test_the_public_map_with_one_hazard_opens_at_street_level(browser, app: App, tmp_path: Path, lang: str):  # noqa: F811
    with sqlite3.connect(app.db) as conn:
        confirmed = [r[0] for r in conn.execute("SELECT id FROM hazards WHERE status = 'confirmed' ORDER BY id")]
        conn.execute(f"UPDATE hazards SET status = 'repaired' WHERE id IN ({','.join('?' * (len(confirmed) - 1))})",
                     confirmed[1:])  # fmt: skip
    tab = Tab(browser, app, viewport={"width": 1200, "height": 800})
    try:
        tab.page.goto(f"{app.url}/public?lang={lang}")
        tab.page.wait_for_selector("body[data-ready='1']")
        marker = tab.page.locator("path.public-marker")
        assert marker.count() == 1
        box = marker.bounding_box()
        assert box is not None and box["width"] >= 8 and box["height"] >= 8
        assert "leaflet-disabled" not in (tab.page.get_attribute(".leaflet-control-zoom-in", "class") or "")
        assert tab.page.locator("path.basemap-street").count() == 2
        _page_is_for_people(tab, f"public-{lang}", _shots(tmp_path))
    finally:
        tab.close()


def test_streets_not_patrolled_for_n_days(browser, app: App):  # noqa: F811
    """Herzl was driven on 1 June 2026, Kakal never: the filter keeps what was not seen for N days."""
    tab = Tab(browser, app)
    try:
        tab.sign_in("victor")
        page = tab.page
        shown = "path.basemap-street:not(.hidden-street)"
        assert page.locator(shown).count() == 2  # the filter off: every street
        page.check("#unpatrolled")
        page.fill("#unpatrolled-days", "0")
        assert page.locator(shown).count() == 2
        page.fill("#unpatrolled-days", "36500")  # a century: only the street never driven
        page.wait_for_function(f"() => document.querySelectorAll('{shown}').length === 1")
        assert page.locator(shown).get_attribute("stroke-dasharray")  # never: drawn dashed
        assert re.search(r"\b1\b", page.inner_text("#unpatrolled-count"))
        page.uncheck("#unpatrolled")
        page.wait_for_function(f"() => document.querySelectorAll('{shown}').length === 2")
    finally:
        tab.close()


PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a5a0e8f10000000049454e44ae426082"
)


class _Tiles(http.server.BaseHTTPRequestHandler):
    """The city's tile server, on loopback: one small PNG for every tile."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(PNG)))
        self.end_headers()
        self.wfile.write(PNG)

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize("kind", ["tiles", "wms"])
def test_a_configured_tile_server_or_wms_lies_under_everything(browser, tmp_path: Path, kind: str):  # noqa: F811
    tiles = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Tiles)
    threading.Thread(target=tiles.serve_forever, daemon=True).start()
    tile_root = f"http://127.0.0.1:{tiles.server_address[1]}"
    db = build_store(tmp_path)
    server = (
        f"review.tile_url={tile_root}/{{z}}/{{x}}/{{y}}.png"
        if kind == "tiles"
        else f"review.wms_url={tile_root}/wms"  # the city's orthophoto
    )
    served = App(db, (server, "review.wms_layers=ortho2025", "review.tile_attribution=City GIS"))
    tab = Tab(browser, served)
    try:
        tab.sign_in("rita")
        tab.page.wait_for_selector("img.leaflet-tile-loaded")
        assert tab.page.locator(".basemap-tiles img.leaflet-tile-loaded").count() > 0
        assert "City GIS" in tab.page.inner_text(".leaflet-control-attribution")
        assert tab.page.locator("path.hazard-marker").count() == 6  # over the tiles
        assert tab.outside and all(url.startswith(tile_root) for url in tab.outside)  # only the tile server
        if kind == "wms":
            assert all("request=GetMap" in url and "layers=ortho2025" in url for url in tab.outside)
        tab.outside.clear()
    finally:
        tab.close()
        served.stop()
        tiles.shutdown()
