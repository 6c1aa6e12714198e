"""The review app and the public map in Hebrew, Arabic and English: complete catalogs, the language chosen as
documented, right to left where it should be, data shown as it is, the morning briefing; pages in headless Chromium."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import requests
from babel.messages.pofile import read_po
from test_review import PASSWORDS, App, build_store, query
from test_store import LOCAL

from detector.review import i18n
from detector.review.briefing import briefing
from detector.review.catalogs import used_messages
from detector.simulate.citymap import write_lines
from detector.store import HazardStore

CITY = ZoneInfo("Asia/Jerusalem")
STREET = "הרצל"  # the test drive runs along it
DRIVE = "Drive-A7_2026-06-01"  # a Latin drive id inside Hebrew and Arabic text
# Latin text a Hebrew or Arabic page may show besides data: export formats, the map library's credit, the
# switch's own name of English, the CSRF acronym in one error.
LATIN_ALLOWED = {"GeoJSON", "GeoPackage", "CSV", "Leaflet", "English", "CSRF", "Esc", "geojson", "gpkg", "csv"}
NAMES = {
    "he": {"pothole": "בור", "Street": "רחוב", "Audit trail": "יומן פעולות"},
    "ar": {"pothole": "حفرة", "Street": "الشارع", "Audit trail": "سجل الإجراءات"},
    "en": {"pothole": "pothole", "Street": "Street", "Audit trail": "Audit trail"},
}


def catalog(language: str):
    with i18n.catalog_path(language).open("rb") as f:
        return read_po(f, locale=language)


# --- the catalogs -------------------------------------------------------------------------------------------


def test_every_catalog_has_every_message_the_code_uses_and_translates_it():
    used = used_messages()
    assert {"Sign in first.", "Morning briefing: {day}", "Hazard #{id}: {class}"} <= set(used)  # server, pages, scripts
    for language in i18n.LANGUAGES:
        messages = [m for m in catalog(language) if m.id]
        ids = {m.id for m in messages}
        assert ids == set(used), f"{language}: missing {sorted(set(used) - ids)}, unused {sorted(ids - set(used))}"
        assert [m.id for m in messages if not m.string] == [], f"{language}: untranslated"
        for m in messages:  # a translation fills the same values as its message
            assert sorted(i18n.PLACEHOLDER.findall(m.string)) == sorted(i18n.PLACEHOLDER.findall(m.id)), m.id
            if language in i18n.RTL:  # no English left in a Hebrew or Arabic message
                latin = set(re.findall(r"[A-Za-z]+", i18n.PLACEHOLDER.sub("", m.string)))
                assert latin <= LATIN_ALLOWED, (language, m.id, m.string)


def test_messages_fill_values_and_write_numbers_the_locales_way():
    he = i18n.Messages.load("he")
    assert he.gettext("Hazard #{id} does not exist.", id="12") == "מפגע #12 אינו קיים."
    assert he.gettext("Too many failed sign-ins; try again in {seconds} s.", seconds=1500).endswith("1,500 שניות.")
    assert he.gettext("a message no catalog has") == "a message no catalog has"
    assert he.direction == "rtl" and i18n.Messages.load("en").direction == "ltr"
    with pytest.raises(ValueError, match="unknown language"):
        i18n.catalog_path("../../etc")


# --- choosing the language over HTTP ------------------------------------------------------------------------


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    """The six-hazard store of test_review along a street named in Hebrew, its drive named in Latin letters."""
    layer = tmp_path / "streets.gpkg"
    write_lines(layer, [np.array([(0.0, -50.0), (0.0, 150.0)])], [STREET], LOCAL)
    db = build_store(tmp_path)
    with sqlite3.connect(db) as conn:
        for table, column in (("drives", "id"), ("sightings", "drive_id"), ("passes", "drive_id"),
                              ("drive_tracks", "drive_id")):  # fmt: skip
            conn.execute(f"UPDATE {table} SET {column} = ? WHERE {column} = 'd1'", (DRIVE,))
        candidate = conn.execute("SELECT id FROM hazards WHERE status = 'candidate'").fetchone()[0]
        yesterday = datetime.now(CITY).date() - timedelta(days=1)  # the briefing's yesterday, in the city
        noon = datetime.combine(yesterday, datetime.min.time(), CITY) + timedelta(hours=12)
        conn.execute("UPDATE hazards SET first_seen = ? WHERE id = ?", (noon.timestamp(), candidate))
    served = App(db, (f"streets.layer={layer}",))
    served.db = db
    yield served
    served.stop()


def _html_language(text: str) -> tuple[str, str]:
    match = re.search(r'<html lang="(\w+)" dir="(\w+)"', text)
    assert match, text[:200]
    return match[1], match[2]


def test_the_language_is_the_query_then_the_cookie_then_the_browser_then_the_config(app: App):
    def get(path: str, accept: str | None = None, cookie: str | None = None) -> requests.Response:
        headers = {"Accept-Language": accept} if accept else {}
        return requests.get(
            app.url + path, headers=headers, cookies={i18n.COOKIE: cookie} if cookie else {}, timeout=30
        )

    assert _html_language(get("/public").text) == ("he", "rtl")  # review.language
    assert _html_language(get("/public", accept="fr, en-GB;q=0.8, ar;q=0.5").text) == ("en", "ltr")
    chosen = get("/public?lang=ar", accept="en")
    assert _html_language(chosen.text) == ("ar", "rtl") and chosen.cookies[i18n.COOKIE] == "ar"
    assert "httponly" in chosen.headers["set-cookie"].lower()
    assert _html_language(get("/login", accept="en", cookie="ar").text) == ("ar", "rtl")  # the cookie, then
    assert _html_language(get("/login?lang=en", cookie="ar").text) == ("en", "ltr")
    refused = get("/public?lang=../../etc/passwd", accept="de", cookie="<script>")
    assert _html_language(refused.text) == ("he", "rtl") and i18n.COOKIE not in refused.cookies
    assert requests.get(app.url + "/i18n/xx.json", timeout=30).status_code == 404
    assert requests.get(app.url + "/i18n/..%2Fen.json", timeout=30).status_code == 404
    served = requests.get(app.url + "/i18n/ar.json", timeout=30).json()
    assert served["direction"] == "rtl" and served["messages"] == i18n.Messages.load("ar").texts
    assert (
        served["names"]["status"]["possibly_repaired"] == "ربما أُصلح" and served["names"]["class"]["pothole"] == "حفرة"
    )
    assert set(served["messages"]) == set(used_messages())
    # The switch keeps the page's query, escaped; a 106 link's language survives the sign-in.
    page = get("/login?next=/hazards/2&x=<b>x</b>")
    assert 'href="/login?next=%2Fhazards%2F2&amp;x=%3Cb%3Ex%3C%2Fb%3E&amp;lang=ar"' in page.text
    assert "<b>x</b>" not in page.text
    link = requests.get(app.url + "/hazards/2?lang=ar", allow_redirects=False, timeout=30)
    assert link.headers["location"] == "/login?next=/hazards/2&lang=ar"


def test_errors_come_in_the_requests_language(app: App):
    def sign_in(accept: str) -> str:
        body = {"name": "rita", "password": "not it"}
        return requests.post(app.url + "/api/login", json=body, headers={"Accept-Language": accept}, timeout=30).json()[
            "detail"
        ]

    assert [sign_in(a) for a in ("en", "he", "ar")] == [
        "Wrong name or password.",
        "שם או סיסמה שגויים.",
        "الاسم أو كلمة المرور خاطئة.",
    ]
    assert requests.get(app.url + "/api/hazards", headers={"Accept-Language": "ar"}, timeout=30).json() == {
        "detail": "سجّل الدخول أولًا."
    }
    # A decision that does not apply: the store's reason, its codes named in the language too.
    rita, csrf = app.login("rita")
    rejected = query(app.db, "SELECT id FROM hazards WHERE status = 'rejected'")[0][0]
    decide = lambda hazard, body, language: rita.post(  # noqa: E731
        f"{app.url}/api/hazards/{hazard}/decision",
        json=body,
        headers={"X-CSRF-Token": csrf, "Accept-Language": language},
        timeout=30,
    )
    answer = decide(rejected, {"action": "reject"}, "he")
    assert answer.status_code == 409 and answer.json()["detail"] == f"מפגע #{rejected} במצב נדחה: אי אפשר לדחות"
    assert (
        decide(rejected, {"action": "reject"}, "en").json()["detail"]
        == f"hazard #{rejected} is rejected: cannot reject"
    )
    pothole, sign = (query(app.db, f"SELECT id FROM hazards WHERE class = '{c}' AND status = 'confirmed'")[0][0]
                     for c in ("pothole", "fallen_sign"))  # fmt: skip
    assert decide(pothole, {"action": "merge", "target": sign}, "ar").json()["detail"] == (
        f"الخطر #{pothole} من نوع حفرة، و#{sign} من نوع إشارة ساقطة"
    )


def test_the_default_language_is_configured(tmp_path: Path):
    served = App(build_store(tmp_path), ("review.language=en",))
    try:
        assert _html_language(requests.get(served.url + "/public", timeout=30).text) == ("en", "ltr")
    finally:
        served.stop()


# --- the morning briefing -----------------------------------------------------------------------------------


def test_the_briefing_counts_yesterday_in_the_citys_day_and_requests_past_their_target(tmp_path: Path):
    db = build_store(tmp_path)
    hazards = {r["id"]: r for r in query(db, "SELECT id, class, status FROM hazards ORDER BY id")}
    h1, _h2, h3, h4, _h5, h6 = hazards  # h1: open request since 2026-06-01 08:00 UTC; h2: closed; h5: rejected
    now = datetime(2026, 6, 9, 7, 0, tzinfo=CITY)  # a Tuesday morning: yesterday is Monday the 8th
    local = lambda *hm: datetime(2026, 6, *hm, tzinfo=CITY).timestamp()  # noqa: E731
    with sqlite3.connect(db) as conn:
        for hazard, first_seen in ((h3, local(8, 23, 30)), (h4, local(9, 0, 30)), (h6, local(7, 23, 59))):
            conn.execute("UPDATE hazards SET first_seen = ? WHERE id = ?", (first_seen, hazard))
    codes = {"pothole": "POTHOLE", "fallen_sign": "SIGN_DOWN"}
    h1_class, other = hazards[h1]["class"], ({"pothole", "fallen_sign"} - {hazards[h1]["class"]}).pop()
    with HazardStore(db) as store:
        told = briefing(store, "Asia/Jerusalem", {h1_class: 7.0, other: 30.0}, codes, None, now.astimezone(UTC))
        lenient = briefing(store, "Asia/Jerusalem", {h1_class: 8.0, other: 30.0}, codes, None, now)
    assert told["day"] == "2026-06-08"
    assert [f["id"] for f in told["found"]] == [h3]  # 23:30 on the 8th counts; 00:30 on the 9th and the 7th do not
    late = told["past_target"]
    assert [(r["id"], r["request_id"], r["target_days"]) for r in late] == [(h1, "R-101", 7.0)]
    assert late[0]["days_open"] == round((now - datetime(2026, 6, 1, 8, tzinfo=UTC)).total_seconds() / 86400, 1)
    assert lenient["past_target"] == []  # 7.8 days open, 8 allowed
    services = {s["service_code"]: s for s in told["services"]}
    assert (services["POTHOLE"]["open"], services["POTHOLE"]["past_target"]) == (1, 1)
    assert services[codes[hazards[h3]["class"]]]["found_yesterday"] == 1  # under the service its class is filed with
    assert sum(s["found_yesterday"] for s in told["services"]) == 1


# --- the pages in a browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator:
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
    import test_review_browser  # skips the module where Chromium is missing
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=test_review_browser.CHROMIUM, args=test_review_browser.ARGS)
        yield launched
        launched.close()


# How each language is reached: Hebrew from the browser's own language, Arabic from the switch's ?lang= (then its
# cookie, against an English browser), English from ?lang= against a Hebrew browser.
WAYS = {"he": ("he-IL", ""), "ar": ("en-US", "?lang=ar"), "en": ("he-IL", "?lang=en")}


def _open(browser, app: App, language: str):
    from test_review_browser import Tab

    browser_locale, query_string = WAYS[language]
    tab = Tab(browser, app, locale=browser_locale, timezone_id="UTC")  # the city's zone must come from the app
    tab.page.goto(app.url + "/" + query_string)
    tab.page.wait_for_url(lambda url: "/login?next=" in url)
    tab.page.wait_for_selector("body[data-ready='1']")
    tab.page.fill("#name", "rita")
    tab.page.fill("#password", PASSWORDS["rita"])
    tab.page.click("#sign-in")
    tab.page.wait_for_url(app.url + "/")
    tab.page.wait_for_selector("body[data-ready='1']")
    return tab


def _ui_text(page) -> str:
    """The page's text without its data (isolated in <bdi>, dir=auto or isolate marks) and the language names."""
    text = page.evaluate(
        """() => { const copy = document.body.cloneNode(true);
            for (const n of copy.querySelectorAll('bdi, [dir=auto], script, nav.languages')) n.remove();
            return document.title + ' ' + copy.textContent; }"""
    )
    return re.sub("\u2068[^\u2069]*\u2069", "", text)


def _assert_no_english(page, language: str) -> None:
    if language == "en":
        return
    text = _ui_text(page)
    translated = {m.id: m.string for m in catalog(language) if m.id and m.string != m.id}
    shown = [
        msgid for msgid in translated if any(len(part) > 3 and part in text for part in i18n.PLACEHOLDER.split(msgid))
    ]
    assert shown == [], f"English UI text on the {language} page: {shown}"
    assert set(re.findall(r"[A-Za-z]{2,}", text)) <= LATIN_ALLOWED


@pytest.mark.parametrize("language", ["he", "ar", "en"])
def test_each_page_in_each_language(browser, app: App, language: str, tmp_path_factory):
    tab = _open(browser, app, language)
    page, words = tab.page, NAMES[language]
    direction = "rtl" if language in i18n.RTL else "ltr"
    assert page.get_attribute("html", "lang") == language and page.get_attribute("html", "dir") == direction
    # The map page mirrors: the list on the reading side of the map, the zoom control at the line's start.
    list_x, map_x = (page.locator(s).bounding_box()["x"] for s in ("#list-pane", "#map"))
    assert (list_x > map_x) == (direction == "rtl")
    zoom_side = page.locator(".leaflet-control-zoom").evaluate("n => n.parentElement.className")
    assert ("leaflet-right" in zoom_side) == (direction == "rtl")
    rows = page.locator("#hazard-list tbody tr")
    assert rows.count() == 6
    assert page.locator(f"#hazard-list tbody .street:text-is('{STREET}')").count() == 6
    _assert_no_english(page, language)

    confirmed = query(app.db, "SELECT id, first_seen FROM hazards WHERE class = 'pothole' AND status = 'confirmed'")[0]
    page.click(f"#hazard-list tbody tr[data-id='{confirmed['id']}']")
    page.wait_for_selector("#detail table.sightings")
    assert page.text_content("#detail h2").endswith(f"#{confirmed['id']}: {words['pothole']}")
    street = page.locator(f"#detail dt:text-is('{words['Street']}') + dd bdi")
    assert street.text_content() == STREET
    drives = page.locator("#detail table.sightings td bdi.drive")
    assert drives.count() > 0 and set(drives.all_text_contents()) == {DRIVE}  # as stored, isolated
    first_seen = datetime.fromtimestamp(confirmed["first_seen"], CITY)  # the browser runs in UTC
    shown = page.text_content(f"#hazard-list tbody tr[data-id='{confirmed['id']}'] td:last-child")
    assert f"{first_seen.hour}:{first_seen:%M}" in shown and "26" in shown  # the city's time, not the browser's
    assert page.locator("#detail h3", has_text=words["Audit trail"]).count() == 1
    _assert_no_english(page, language)
    shots = tmp_path_factory.mktemp("screens-he") if language == "he" else None  # the city's first language
    if shots:
        page.screenshot(path=str(shots / "map.png"), full_page=True)

    page.goto(app.url + "/dashboard")  # the cookie (or the browser) keeps the language
    page.wait_for_selector("body[data-ready='1']")
    assert page.get_attribute("html", "dir") == direction
    found = page.locator("#found-yesterday tbody tr")
    assert found.count() == 1 and found.locator("bdi").first.text_content() == STREET
    late = page.locator("#past-target tbody tr")
    assert late.count() == 1 and late.locator("td.days").count() == 1
    assert page.locator("#per-service tr[data-service='POTHOLE'] td.late").text_content() == "1"
    assert page.text_content("[data-figure='past_target']") == "1"
    _assert_no_english(page, language)
    if shots:
        page.screenshot(path=str(shots / "dashboard.png"), full_page=True)

    page.goto(app.url + "/public")
    page.wait_for_selector("body[data-ready='1']")
    assert page.get_attribute("html", "dir") == direction and page.locator("path.public-marker").count() == 3
    _assert_no_english(page, language)
    if shots:
        page.screenshot(path=str(shots / "public.png"), full_page=True)
        for name in ("map", "dashboard", "public"):
            png = (shots / f"{name}.png").read_bytes()
            assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000, name
    tab.close()


def test_the_sign_in_page_answers_in_its_language(browser, app: App):
    from test_review_browser import Tab

    tab = Tab(browser, app, locale="en-US")
    tab.page.goto(app.url + "/login?lang=ar")
    tab.page.wait_for_selector("html[dir='rtl'] body[data-ready='1']")
    assert tab.page.text_content("#sign-in") == "تسجيل الدخول" and tab.page.title() == "مخاطر الطرق: تسجيل الدخول"
    tab.page.fill("#name", "rita")
    tab.page.fill("#password", "not it")
    tab.page.click("#sign-in")
    tab.page.wait_for_function("() => document.querySelector('#message').textContent !== ''")
    assert tab.page.text_content("#message") == "الاسم أو كلمة المرور خاطئة."
    _assert_no_english(tab.page, "ar")
    tab.close()


def test_the_switch_changes_the_language_and_keeps_it(browser, app: App):
    tab = _open(browser, app, "he")
    tab.page.click("nav.languages a[data-lang='en']")
    tab.page.wait_for_selector("html[dir='ltr'] body[data-ready='1']")
    assert tab.page.get_attribute("html", "lang") == "en"
    assert tab.page.locator("nav.languages a[aria-current]").get_attribute("data-lang") == "en"
    tab.page.goto(app.url + "/public")  # no ?lang= now: the cookie beats the Hebrew browser
    tab.page.wait_for_selector("body[data-ready='1']")
    assert tab.page.get_attribute("html", "dir") == "ltr" and "Known hazards: 3" in tab.page.text_content("#count")
    tab.close()
