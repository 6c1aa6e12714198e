"""The review app over HTTP: sign-in, CSRF and roles, decisions in the store, evidence, exports, dashboard, public map.

A real store (built with the pipeline's store code from synthetic sightings) and the real app
served by uvicorn on loopback; the browser tests in ``test_review_browser.py`` reuse these helpers. The tests of
what the app reads and writes run on both backends (``store_address``: SQLite, PostgreSQL); those of sign-in
throttling, the command line and damaged values on SQLite only (:data:`SQLITE_ONLY`).
"""

from __future__ import annotations

import html
import io
import json
import re
import socket
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest
import requests
from conftest import wait_for
from test_store import _merge, _poses

from detector.config import load_config
from detector.review.auth import add_user
from detector.review.dashboard import week_start
from detector.review.public import PUBLIC_FIELDS
from detector.store import HazardStore
from detector.store.tracks import write_drive_track

uvicorn = pytest.importorskip("uvicorn", reason="the review app needs uvicorn (pip install -e .)")
from detector.review.app import AppSettings, server_config  # noqa: E402

# Six hazards 12 m apart along the drive, classes alternating.
SIX = [(1.0, 10.0, 0), (-1.5, 22.0, 1), (1.2, 34.0, 0), (-1.0, 46.0, 1), (1.5, 58.0, 0), (-1.5, 70.0, 1)]
BASE = datetime(2026, 6, 1, 5, 0, tzinfo=UTC).timestamp()
PASSWORDS = {"rita": "rita-Pa55word-unique-7f3a", "victor": "victor-Pa55word-unique-9c1b"}
XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'


SQLITE_ONLY = pytest.mark.parametrize("store_address", ["sqlite"], indirect=True)


def query(db: Path | str, sql: str, params=()) -> list[sqlite3.Row]:
    """Rows of the store at ``db``, either backend (rows read by name or position)."""
    with HazardStore(db) as store:
        return store.query(sql, params)


def write(db: Path | str, sql: str, params=()) -> None:
    """One statement in its own transaction on the store at ``db``, either backend."""
    with HazardStore(db) as store, store.transaction() as conn:
        conn.execute(sql, params)


def build_store(folder: Path, address: Path | str | None = None) -> Path:
    """Six hazards from one drive, then statuses, tickets, times and evidence set as a season would leave them.

    By id: 1 confirmed with an open request, 2 confirmed with a closed one (notes with markup),
    3 candidate, 4 possibly repaired, 5 rejected, 6 confirmed and queued. The drive is dated June 1st; a
    second drive of 12.4 km on June 6th found nothing. ``address``: where (default ``h.db`` in ``folder``; a
    PostgreSQL store keeps its evidence in the working folder).
    """
    db = address or folder / "h.db"
    with HazardStore(db) as store:
        _merge(store, "d1", SIX, seed=1)
        poses = _poses()
        with store.transaction() as conn:
            write_drive_track(conn, "d1", poses.lat, poses.lon)
        frame = np.full((720, 1280, 3), 90, np.uint8)
        cv2.rectangle(frame, (600, 500), (700, 560), (20, 20, 20), -1)
        (store.evidence_dir / "d1").mkdir(parents=True)
        cv2.imwrite(str(store.evidence_dir / "d1" / "000003.jpg"), frame)
        with store.transaction() as conn:
            ids = [r[0] for r in conn.execute("SELECT id FROM hazards ORDER BY id")]
            assert len(ids) == 6
            for i, hazard_id in enumerate(ids):  # two hazards a day, from June 1st
                shift = BASE + (i // 2) * 86400
                conn.execute("UPDATE sightings SET utc = utc + ? WHERE hazard_id = ?", (shift, hazard_id))
                conn.execute(
                    "UPDATE hazards SET first_seen = first_seen + ?, last_seen = last_seen + ? WHERE id = ?",
                    (shift, shift, hazard_id),
                )
            conn.execute("UPDATE sightings SET evidence_path = 'd1/000003.jpg', x1 = 600, y1 = 500, x2 = 700, y2 = 560")
            conn.execute("UPDATE hazards SET evidence_path = 'd1/000003.jpg'")
            h1, h2, h3, h4, h5, _h6 = ids
            stamp = datetime.fromtimestamp(BASE + 3600 * 3, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            closed = datetime.fromtimestamp(BASE + 3600 * 27, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            conn.execute(
                "INSERT INTO tickets (hazard_id, service_code, service_request_id, status, opened_at)"
                " VALUES (?,?,?,?,?)",
                (h1, "POTHOLE", "R-101", "open", stamp),
            )
            conn.execute(
                "INSERT INTO tickets (hazard_id, service_code, service_request_id, status, opened_at, closed_at,"
                " status_notes, service_notice) VALUES (?,?,?,?,?,?,?,?)",
                (h2, "SIGN_DOWN", "R-102", "closed", stamp, closed, XSS, f"Made safe <b>today</b>{XSS}"),
            )
            conn.execute("UPDATE outbox SET state = 'sent' WHERE hazard_id IN (?, ?)", (h1, h2))
            conn.execute("DELETE FROM outbox WHERE hazard_id IN (?, ?, ?)", (h3, h4, h5))
            conn.execute("UPDATE hazards SET status = 'candidate' WHERE id = ?", (h3,))
            conn.execute("UPDATE hazards SET status = 'possibly_repaired', misses = 2 WHERE id = ?", (h4,))
            conn.execute("UPDATE hazards SET status = 'rejected' WHERE id = ?", (h5,))
            conn.execute("UPDATE drives SET started_utc = ?, ended_utc = ? WHERE id = 'd1'", (BASE, BASE + 30))
            conn.execute(
                "INSERT INTO drives (id, content_hash, video, track, started_utc, ended_utc, distance_m,"
                " frames_sampled, camera, processed_at)"
                " VALUES ('d2', 'hash-d2', 'd2.mp4', 'd2.gpx', ?, ?, 12400.0, 4133, 'sim', 'then')",
                (BASE + 5 * 86400, BASE + 5 * 86400 + 1800),
            )
        for name, role in (("rita", "reviewer"), ("victor", "viewer")):
            add_user(store, name, role, PASSWORDS[name])
    return db


class App:
    """The app on a free loopback port, served by uvicorn in a thread of the test process."""

    def __init__(self, db: Path, overrides: tuple[str, ...] = ()) -> None:
        settings = AppSettings.from_config(load_config(overrides=list(overrides)), db)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(server_config(settings, "warning"))  # as `detector review` serves it
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started or not self.thread.is_alive(), "the review app to start", 30)
        assert self.server.started, "the review app did not start"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def login(self, name: str) -> tuple[requests.Session, str]:
        session = requests.Session()
        answer = session.post(f"{self.url}/api/login", json={"name": name, "password": PASSWORDS[name]}, timeout=30)
        assert answer.status_code == 200, answer.text
        return session, answer.json()["csrf"]


@pytest.fixture
def store_db(tmp_path: Path, store_address, monkeypatch) -> Path:
    """The store of :func:`build_store` on each backend; the working folder is ``tmp_path`` (where a PostgreSQL
    store's evidence folder is)."""
    monkeypatch.chdir(tmp_path)
    return build_store(tmp_path, store_address)


@pytest.fixture
def app(store_db: Path):
    served = App(store_db)
    yield served
    served.stop()


class Clock:
    """A clock the test moves: the sign-in throttle's, instead of waiting for real time to pass."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttled_app(store_db: Path, *overrides: str) -> tuple[App, Clock]:
    """The app, its sign-in throttle on a clock of the test's."""
    served, clock = App(store_db, overrides), Clock()
    served.server.config.app.state.throttle.clock = clock
    return served, clock


def sign_in(url: str, name: str, password: str, address: str | None = None) -> requests.Response:
    forwarded = {"X-Forwarded-For": address} if address else {}
    return requests.post(url + "/api/login", json={"name": name, "password": password}, headers=forwarded, timeout=30)


@SQLITE_ONLY
def test_password_guessing_is_slowed_to_a_few_tries_per_window(store_db: Path):
    served, clock = throttled_app(store_db, "review.sign_in_failures=3", "review.sign_in_window_min=0.05")  # 3 s
    try:
        assert [sign_in(served.url, "rita", f"guess{i}").status_code for i in range(3)] == [401, 401, 401]
        refused = sign_in(served.url, "rita", PASSWORDS["rita"])  # the right password, but too late
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) == 3
        assert sign_in(served.url, "victor", PASSWORDS["victor"]).status_code == 429  # the same address, another name
        clock.now += 2.9
        assert sign_in(served.url, "rita", PASSWORDS["rita"]).status_code == 429
        clock.now += 0.2  # the window has passed
        assert sign_in(served.url, "rita", PASSWORDS["rita"]).status_code == 200
    finally:
        served.stop()


@SQLITE_ONLY
def test_sign_in_limits_believe_x_forwarded_for_only_from_a_trusted_proxy(store_db: Path):
    def login(url: str, name: str, address: str) -> int:
        body, forwarded = {"name": name, "password": "guess"}, {"X-Forwarded-For": address}
        return requests.post(url + "/api/login", json=body, headers=forwarded, timeout=30).status_code

    served = App(store_db, ("review.sign_in_failures=3",))  # no proxy configured: the header is anyone's
    try:
        tries = [login(served.url, f"name{i}", f"203.0.113.{i}") for i in range(4)]
        assert tries == [401, 401, 401, 429]  # one client, however many addresses it claims
    finally:
        served.stop()
    served = App(store_db, ("review.sign_in_failures=3", "review.trusted_proxies=[127.0.0.1]"))
    try:  # behind the city's proxy on loopback: each forwarded client counts on its own
        assert [login(served.url, f"name{i}", f"203.0.113.{i}") for i in range(4)] == [401] * 4
        assert [login(served.url, f"other{i}", "198.51.100.9") for i in range(4)] == [401, 401, 401, 429]
    finally:
        served.stop()


@SQLITE_ONLY
def test_a_strangers_failed_sign_ins_from_one_address_never_keep_the_user_out_from_another(store_db: Path):
    served, clock = throttled_app(store_db, "review.sign_in_failures=3", "review.trusted_proxies=[127.0.0.1]")
    try:
        flood = [sign_in(served.url, "rita", f"guess{i}", "203.0.113.7").status_code for i in range(6)]
        assert flood == [401] * 3 + [429] * 3  # many failures at once: throttled at that address
        assert sign_in(served.url, "rita", PASSWORDS["rita"], "198.51.100.7").status_code == 200  # elsewhere: in
        refused = sign_in(served.url, "victor", PASSWORDS["victor"], "203.0.113.7")  # that address, any name
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) == 900
        stranger = []
        for minute in range(30):  # then a wrong password a minute for half an hour; rita, each time from a new address
            clock.now += 60.0
            stranger.append(sign_in(served.url, "rita", f"again{minute}", "203.0.113.7").status_code)
            assert sign_in(served.url, "rita", PASSWORDS["rita"], f"198.51.100.{minute + 10}").status_code == 200
        assert stranger.count(401) == 4  # minutes 15-17 and 30: three tries per quarter of an hour at its address
    finally:
        served.stop()


@SQLITE_ONLY
def test_a_guess_spread_over_addresses_slows_the_name_but_never_where_its_user_signs_in(store_db: Path):
    served, clock = throttled_app(store_db, "review.sign_in_failures=3", "review.trusted_proxies=[127.0.0.1]")
    try:
        assert sign_in(served.url, "rita", PASSWORDS["rita"], "198.51.100.7").status_code == 200  # her desk
        strangers = []
        for minute in range(30):  # strangers at five addresses spend a wrong password a minute
            clock.now += 60.0
            strangers.append(sign_in(served.url, "rita", "guess", f"203.0.113.{minute % 5}").status_code)
            assert sign_in(served.url, "rita", PASSWORDS["rita"], "198.51.100.7").status_code == 200, minute
        assert strangers == [401] * 30  # each address within its own limit: heard every time
        clock.now += 900.0
        guesses = [sign_in(served.url, "rita", "guess", f"203.0.113.{i}").status_code for i in range(3)]
        assert guesses == [401] * 3  # three addresses at once
        elsewhere = sign_in(served.url, "rita", PASSWORDS["rita"], "198.51.100.9")  # a new address: slowed
        assert elsewhere.status_code == 429 and int(elsewhere.headers["Retry-After"]) == 1
        clock.now += 1.0
        assert sign_in(served.url, "rita", PASSWORDS["rita"], "198.51.100.9").status_code == 200
        assert sign_in(served.url, "rita", "guess", "203.0.113.9").status_code == 401  # a fourth address
        assert sign_in(served.url, "rita", "guess", "203.0.113.10").status_code == 429  # the next guess waits 2 s
        clock.now += 2.0
        assert sign_in(served.url, "rita", "guess", "203.0.113.10").status_code == 401
    finally:
        served.stop()


def test_everything_but_the_public_map_needs_sign_in(app: App):
    for path in ("/api/hazards", "/api/hazards/1", "/api/dashboard", "/api/drives", "/api/export?format=csv"):
        assert requests.get(app.url + path, timeout=30).status_code == 401, path
    page = requests.get(app.url + "/hazards/2", allow_redirects=False, timeout=30)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/hazards/2"
    assert requests.get(app.url + "/public", timeout=30).status_code == 200
    assert requests.get(app.url + "/api/public/hazards", timeout=30).status_code == 200
    wrong = requests.post(app.url + "/api/login", json={"name": "rita", "password": "guess"}, timeout=30)
    assert wrong.status_code == 401
    unknown = requests.post(app.url + "/api/login", json={"name": "nobody", "password": "guess"}, timeout=30)
    assert unknown.status_code == 401
    form = requests.post(app.url + "/api/login", data={"name": "rita", "password": PASSWORDS["rita"]}, timeout=30)
    assert form.status_code == 422  # a cross-site HTML form cannot sign anyone in
    good = requests.post(app.url + "/api/login", json={"name": "rita", "password": PASSWORDS["rita"]}, timeout=30)
    cookie = good.headers["set-cookie"].lower()
    assert good.status_code == 200 and "httponly" in cookie and "samesite=strict" in cookie
    assert "script-src 'self'" in good.headers["content-security-policy"]


OFF_SITE = [
    "/%09/other-host:8443/x", "/%0a/other-host/x", "/%0d%0a/other-host", "%09//other-host", "//other-host/x",
    "/%5Cother-host", "/%5C%5Cother-host", "%5C%5Cother-host", "https://other-host/x", "http:other-host",
    "javascript:alert(1)", "%20//other-host", "/%09%5Cother-host", "other-host/x", "",
]  # fmt: skip


@SQLITE_ONLY
def test_sign_in_goes_back_only_to_a_path_on_this_site(app: App):
    def after_sign_in(query: str) -> str:
        page = requests.get(f"{app.url}/login?next={query}", timeout=30)
        assert page.status_code == 200
        return html.unescape(re.search(r'<form id="login" data-next="([^"]*)"', page.text)[1])

    assert [after_sign_in(q) for q in OFF_SITE] == ["/"] * len(OFF_SITE)
    assert after_sign_in("/hazards/2") == "/hazards/2"
    assert after_sign_in("/hazards/2%3Flang%3Den") == "/hazards/2?lang=en"
    assert after_sign_in("/x%22%3E%3Cscript%3E") == '/x"><script>'  # a path, as text: escaped in the page
    redirect = requests.get(app.url + "/hazards/2", allow_redirects=False, timeout=30).headers["location"]
    assert after_sign_in(redirect.split("next=", 1)[1]) == "/hazards/2"  # the way back from a page still works


def test_passwords_are_hashed_and_never_logged(app: App, store_db: Path, caplog):
    caplog.set_level("DEBUG")
    session, csrf = app.login("rita")
    requests.post(app.url + "/api/login", json={"name": "rita", "password": "wrong-" + PASSWORDS["rita"]}, timeout=30)
    session.post(app.url + "/api/logout", headers={"X-CSRF-Token": csrf}, timeout=30)
    assert session.get(app.url + "/api/me", timeout=30).status_code == 401  # signed out for real
    stored = {r["name"]: r["password_hash"] for r in query(store_db, "SELECT * FROM users")}
    assert all(h.startswith("scrypt$") and PASSWORDS[n] not in h for n, h in stored.items())
    for password in PASSWORDS.values():
        assert password not in caplog.text
        assert not query(store_db, "SELECT 1 FROM sessions WHERE token_hash LIKE ?", (f"%{password}%",))
    assert "rita" in caplog.text  # the sign-in itself is logged


def test_list_filters_match_the_store(app: App, store_db: Path):
    session, _ = app.login("victor")

    def ids(**params: Any) -> list[int]:
        answer = session.get(app.url + "/api/hazards", params=params, timeout=30)
        assert answer.status_code == 200, answer.text
        return [h["id"] for h in answer.json()["hazards"]]

    def sql(where: str, params=()) -> list[int]:
        return [r[0] for r in query(store_db, f"SELECT id FROM hazards WHERE {where} ORDER BY id", params)]

    assert ids() == sql("status != 'merged'")
    assert ids(**{"class": "pothole"}) == sql("class = 'pothole'")
    assert ids(status=["candidate", "rejected"]) == sql("status IN ('candidate', 'rejected')")
    threshold = float(np.median([r[0] for r in query(store_db, "SELECT confidence FROM hazards")]))
    assert ids(min_confidence=threshold) == sql("confidence >= ?", (threshold,))
    assert ids(drive="d1") == sql("1=1") and ids(drive="other") == []
    assert ids(since="2026-06-02", until="2026-06-02") == sql(
        "last_seen >= ? AND first_seen < ?", (BASE - 5 * 3600 + 86400, BASE - 5 * 3600 + 2 * 86400)
    )
    rows = session.get(app.url + "/api/hazards", timeout=30).json()["hazards"]
    assert all("evidence_path" not in r for r in rows)
    assert all(r["held_reason"] is None for r in rows)

    # A candidate held on a mapped cover says why; a hazard confirmed since keeps the event, not the flag.
    (candidate,), (confirmed, *_) = sql("status = 'candidate'"), sql("status = 'confirmed'")
    reason = "1.2 m from <b>MH-1</b> (covers.gpkg)"
    for hazard_id in (candidate, confirmed):
        write(
            store_db,
            "INSERT INTO events (hazard_id, at, actor, action, detail) VALUES (?, 'now', 'pipeline', 'held', ?)",
            (hazard_id, reason),
        )
    rows = {r["id"]: r for r in session.get(app.url + "/api/hazards?lang=en", timeout=30).json()["hazards"]}
    # In the reader's words (the session's language), the feature and layer as data.
    words = "1.2 m from the mapped feature \u2068<b>MH-1</b>\u2069 (\u2068covers.gpkg\u2069): a reviewer checks it"
    assert rows[candidate]["held_reason"].startswith(words)
    assert sum(r["held_reason"] is not None for r in rows.values()) == 1
    assert [r["state"] for r in rows.values()].count("held") == 1 and rows[candidate]["state"] == "held"
    assert session.get(app.url + "/api/hazards", params={"status": "bogus"}, timeout=30).status_code == 400


def test_decisions_need_the_csrf_token_and_a_reviewer(app: App, store_db: Path):
    candidate = query(store_db, "SELECT id FROM hazards WHERE status = 'candidate'")[0]["id"]
    url = f"{app.url}/api/hazards/{candidate}/decision"
    rita, csrf = app.login("rita")
    assert rita.post(url, json={"action": "confirm"}, timeout=30).status_code == 403
    assert rita.post(url, json={"action": "confirm"}, headers={"X-CSRF-Token": "forged"}, timeout=30).status_code == 403
    victor, viewer_csrf = app.login("victor")
    english = {"X-CSRF-Token": viewer_csrf, "Accept-Language": "en"}
    answer = victor.post(url, json={"action": "confirm"}, headers=english, timeout=30)
    assert answer.status_code == 403 and answer.json()["detail"] == "victor is a viewer: decisions need a reviewer."
    answer = victor.post(url, json={"action": "confirm"}, headers={"X-CSRF-Token": viewer_csrf}, timeout=30)
    assert answer.json()["detail"] == "victor הוא צופה: החלטות דורשות בודק."  # review.language: he
    assert requests.post(url, json={"action": "confirm"}, timeout=30).status_code == 401
    assert query(store_db, "SELECT status FROM hazards WHERE id = ?", (candidate,))[0][0] == "candidate"
    assert not query(store_db, "SELECT 1 FROM events")
    assert rita.post(url, json={"action": "confirm"}, headers={"X-CSRF-Token": csrf}, timeout=30).status_code == 200


def test_decisions_go_through_the_store_with_an_audit_trail(app: App, store_db: Path):
    rita, csrf = app.login("rita")
    by_status = {r["status"]: r["id"] for r in query(store_db, "SELECT id, status FROM hazards ORDER BY id DESC")}

    def decide(hazard_id: int, **body: Any) -> requests.Response:
        return rita.post(
            f"{app.url}/api/hazards/{hazard_id}/decision", json=body, headers={"X-CSRF-Token": csrf}, timeout=30
        )

    candidate = by_status["candidate"]
    assert decide(candidate, action="confirm", note="seen it").json()["status"] == "confirmed"
    assert query(store_db, "SELECT state FROM outbox WHERE hazard_id = ?", (candidate,))[0][0] == "pending"
    assert decide(candidate, action="confirm").status_code == 409  # already confirmed

    moved = decide(candidate, action="move", lat=31.2501, lon=34.7901)
    assert moved.status_code == 200
    row = query(store_db, "SELECT lat, lon, position_locked FROM hazards WHERE id = ?", (candidate,))[0]
    assert (row["lat"], row["lon"], row["position_locked"]) == (31.2501, 34.7901, 1)
    assert decide(candidate, action="move", lat=123, lon=0).status_code == 409

    failed = by_status["possibly_repaired"]
    assert decide(failed, action="open_request").json()["status"] == "confirmed"
    assert query(store_db, "SELECT state FROM outbox WHERE hazard_id = ?", (failed,))[0][0] == "pending"
    sent = query(store_db, "SELECT hazard_id FROM tickets WHERE status = 'closed'")[0][0]
    assert decide(sent, action="open_request").status_code == 409  # it has its request
    assert decide(sent, action="mark_repaired").json()["status"] == "repaired"

    # Merge two potholes: sightings move, the source points at the target, the target is recomputed.
    potholes = [
        r["id"] for r in query(store_db, "SELECT id FROM hazards WHERE class = 'pothole' AND status = 'confirmed'")
    ]
    source, target = potholes[0], potholes[1]
    counts = {r["id"]: r["sighting_count"] for r in query(store_db, "SELECT id, sighting_count FROM hazards")}
    assert decide(source, action="merge", target=target).status_code == 200
    after = {r["id"]: r for r in query(store_db, "SELECT * FROM hazards")}
    assert after[source]["status"] == "merged" and after[source]["merged_into"] == target
    assert after[target]["sighting_count"] == counts[source] + counts[target]
    assert query(store_db, "SELECT COUNT(*) FROM sightings WHERE hazard_id = ?", (source,))[0][0] == 0
    sign = query(store_db, "SELECT id FROM hazards WHERE class = 'fallen_sign' AND status = 'confirmed'")[0][0]
    assert decide(target, action="merge", target=sign).status_code == 409  # a pothole is not a sign
    assert decide(source, action="reject").status_code == 409  # merged: nothing left to decide
    assert decide(target, action="explode").status_code == 400

    events = query(store_db, "SELECT hazard_id, actor, action, at, detail FROM events ORDER BY id")
    assert [(e["hazard_id"], e["action"]) for e in events] == [
        (candidate, "confirm"), (candidate, "move"), (failed, "open_request"), (sent, "mark_repaired"),
        (source, "merge"), (target, "merge"),
    ]  # fmt: skip
    assert {e["actor"] for e in events} == {"rita"}
    assert json.loads(events[0]["detail"])["note"] == "seen it"
    assert all(datetime.strptime(e["at"], "%Y-%m-%dT%H:%M:%SZ") for e in events)
    detail = rita.get(f"{app.url}/api/hazards/{target}", timeout=30).json()
    assert detail["merged_from"] == [source] and detail["events"][-1]["actor"] == "rita"


def test_only_blurred_evidence_is_served_and_no_path_escapes(app: App, store_db: Path, tmp_path: Path):
    with HazardStore(store_db) as store:
        evidence = store.evidence_dir
    rita, _ = app.login("rita")
    hazard = query(store_db, "SELECT hazard_id FROM tickets WHERE status = 'open'")[0][0]
    photo = rita.get(f"{app.url}/api/hazards/{hazard}/photo", timeout=60)
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    assert (evidence / "tickets" / f"hazard_{hazard}.jpg").read_bytes() == photo.content  # the blurred composite
    assert photo.content != (evidence / "d1" / "000003.jpg").read_bytes()
    # The URL a 106 request carries works without sign-in, for a hazard that has its request.
    assert requests.get(f"{app.url}/evidence/tickets/hazard_{hazard}.jpg", timeout=30).status_code == 200
    candidate = query(store_db, "SELECT id FROM hazards WHERE status = 'candidate'")[0][0]
    assert rita.get(f"{app.url}/api/hazards/{candidate}/photo", timeout=60).status_code == 200
    assert requests.get(f"{app.url}/evidence/tickets/hazard_{candidate}.jpg", timeout=30).status_code == 404
    assert rita.get(f"{app.url}/evidence/tickets/hazard_{candidate}.jpg", timeout=30).status_code == 200
    # A photo not made yet (a dry run's request links to it) is made when a signed-in user opens the link.
    (evidence / "tickets" / f"hazard_{candidate}.jpg").unlink()
    assert requests.get(f"{app.url}/evidence/tickets/hazard_{candidate}.jpg", timeout=30).status_code == 404
    made = rita.get(f"{app.url}/evidence/tickets/hazard_{candidate}.jpg", timeout=60)
    assert made.status_code == 200 and made.content == (evidence / "tickets" / f"hazard_{candidate}.jpg").read_bytes()
    (evidence / "tickets" / "raw.jpg").symlink_to(evidence / "d1" / "000003.jpg")
    (tmp_path / "secret.jpg").write_bytes(b"not for you")
    for path in (
        "d1/000003.jpg",  # a raw, unblurred frame
        "tickets/raw.jpg",  # a link out of tickets/
        "tickets/../d1/000003.jpg",
        "tickets/%2e%2e/d1/000003.jpg",
        "%2e%2e/h.db",
        "tickets/%2e%2e/%2e%2e/secret.jpg",
        "..%2f..%2fsecret.jpg",
        "%2fetc%2fpasswd",
    ):
        for client in (rita, requests):
            answer = client.get(f"{app.url}/evidence/{path}", timeout=30)
            assert answer.status_code in (400, 404), (path, answer.status_code)
            assert b"not for you" not in answer.content and not answer.content.startswith(b"\xff\xd8")


def test_exports_follow_the_filter(app: App, store_db: Path, tmp_path: Path):
    from pyogrio import read_info

    victor, _ = app.login("victor")
    expected = query(store_db, "SELECT id FROM hazards WHERE class = 'pothole' AND status != 'merged' ORDER BY id")
    params = {"class": "pothole"}
    geojson = victor.get(app.url + "/api/export", params={**params, "format": "geojson"}, timeout=60)
    assert geojson.status_code == 200
    features = geojson.json()["features"]
    assert [f["properties"]["id"] for f in features] == [r[0] for r in expected]
    csv_text = victor.get(app.url + "/api/export", params={**params, "format": "csv"}, timeout=60).text
    assert len(csv_text.strip().splitlines()) == 1 + len(expected)
    gpkg = victor.get(app.url + "/api/export", params={**params, "format": "gpkg"}, timeout=60)
    (tmp_path / "x.gpkg").write_bytes(gpkg.content)
    assert read_info(tmp_path / "x.gpkg", layer="hazards")["features"] == len(expected)
    ids = ",".join(str(r[0]) for r in expected)
    sightings = query(store_db, f"SELECT COUNT(*) FROM sightings WHERE hazard_id IN ({ids})")[0][0]
    assert read_info(tmp_path / "x.gpkg", layer="sightings")["features"] == sightings > 0
    assert (
        read_info(tmp_path / "x.gpkg", layer="drives")["features"]
        == query(store_db, "SELECT COUNT(*) FROM drives")[0][0]
    )
    assert victor.get(app.url + "/api/export", params={"format": "shp"}, timeout=30).status_code == 400
    negatives = victor.get(app.url + "/api/negatives", timeout=30).json()["examples"]
    rejected = query(store_db, "SELECT sighting_count FROM hazards WHERE status = 'rejected'")[0][0]
    assert len(negatives) == rejected and {n["frame"] for n in negatives} == {"d1/000003.jpg"}


def expected_dashboard(db: Path) -> dict[str, Any]:
    """The dashboard's figures recomputed independently from the store."""
    zone = ZoneInfo("Asia/Jerusalem")
    found = query(db, "SELECT class, first_seen FROM hazards WHERE status NOT IN ('merged', 'rejected')")
    days = Counter((datetime.fromtimestamp(r[1], zone).strftime("%Y-%m-%d"), r[0]) for r in found)
    weeks = Counter((week_start(datetime.fromtimestamp(r[1], zone)), r[0]) for r in found)
    tickets = query(db, "SELECT t.*, h.first_seen FROM tickets t JOIN hazards h ON h.id = t.hazard_id")
    epoch = lambda s: datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()  # noqa: E731
    to_request = sorted((epoch(t["opened_at"]) - t["first_seen"]) / 3600 for t in tickets)
    to_close = [(epoch(t["closed_at"]) - epoch(t["opened_at"])) / 3600 for t in tickets if t["status"] == "closed"]
    km_per_day = Counter()
    for started, metres in query(db, "SELECT started_utc, distance_m FROM drives"):
        km_per_day[datetime.fromtimestamp(started, zone).strftime("%Y-%m-%d")] += metres / 1000
    return {
        "km_per_day": {day: round(km, 1) for day, km in km_per_day.items()},
        "found": len(found),
        "days": dict(days),
        "weeks": dict(weeks),
        "open": sum(t["status"] != "closed" for t in tickets),
        "closed": sum(t["status"] == "closed" for t in tickets),
        "queued": query(db, "SELECT COUNT(*) FROM outbox WHERE state = 'pending'")[0][0],
        "possibly_repaired": query(db, "SELECT COUNT(*) FROM hazards WHERE status = 'possibly_repaired'")[0][0],
        "to_request_median": round(float(np.median(to_request)), 2),
        "to_close_median": round(float(np.median(to_close)), 2),
    }


def test_dashboard_figures_equal_the_store(app: App, store_db: Path):
    victor, _ = app.login("victor")
    d = victor.get(app.url + "/api/dashboard", timeout=30).json()
    want = expected_dashboard(store_db)
    assert d["found"] == want["found"] == 5
    assert {(r["period"], c): n for r in d["per_day"] for c, n in r["counts"].items() if n} == want["days"]
    assert {(r["period"], c): n for r in d["per_week"] for c, n in r["counts"].items() if n} == want["weeks"]
    assert {r["period"]: r["km"] for r in d["per_day"] if r["drives"]} == want["km_per_day"]
    (idle,) = [r for r in d["per_day"] if r["period"] == "2026-06-06"]  # patrolled, nothing found: still a row
    assert (idle["total"], idle["drives"], idle["km"]) == (0, 1, 12.4)
    assert (d["drives"], d["km_patrolled"]) == (2, round(sum(want["km_per_day"].values()), 1))
    assert (d["requests"]["open"], d["requests"]["closed"], d["requests"]["queued"]) == (
        want["open"], want["closed"], want["queued"],
    )  # fmt: skip
    assert d["possibly_repaired"] == want["possibly_repaired"] == 1
    assert d["hours_to_request"]["median"] == want["to_request_median"]
    assert d["hours_to_close"]["median"] == want["to_close_median"] == 24.0
    assert d["neighbourhoods"] is None


def test_dashboard_per_neighbourhood(store_db: Path, tmp_path: Path):
    lats = sorted(r[0] for r in query(store_db, "SELECT lat FROM hazards WHERE status NOT IN ('merged', 'rejected')"))
    middle = (lats[1] + lats[2]) / 2  # south: the two southernmost hazards
    south = [[34.78, 31.24], [34.80, 31.24], [34.80, middle], [34.78, middle], [34.78, 31.24]]
    feature = {"type": "Feature", "properties": {"name": "South <b>end</b>"}}
    layer = {
        "type": "FeatureCollection",
        "features": [{**feature, "geometry": {"type": "Polygon", "coordinates": [south]}}],
    }
    (tmp_path / "n.geojson").write_text(json.dumps(layer))
    served = App(store_db, (f"review.neighbourhoods={tmp_path / 'n.geojson'}",))
    try:
        victor, _ = served.login("victor")
        rows = {r["name"]: r for r in victor.get(served.url + "/api/dashboard", timeout=30).json()["neighbourhoods"]}
    finally:
        served.stop()
    assert rows["South <b>end</b>"]["found"] == 2
    assert sum(r["found"] for r in rows.values()) == len(lats)


def test_public_map_data_leaks_nothing(app: App, store_db: Path):
    answer = requests.get(app.url + "/api/public/hazards", timeout=30)
    data = answer.json()
    confirmed = query(store_db, "SELECT lat, lon, class FROM hazards WHERE status = 'confirmed' ORDER BY lat, lon")
    assert [(h["class"], h["lat"], h["lon"]) for h in data["hazards"]] == [
        (r["class"], round(r["lat"], 5), round(r["lon"], 5)) for r in confirmed
    ]
    assert all(set(h) == set(PUBLIC_FIELDS) for h in data["hazards"])
    assert sorted(h["request_opened_at"] is not None for h in data["hazards"]) == [False, True, True]
    text = answer.text
    for private in ("rita", "victor", "evidence", "hazard_", ".jpg", "d1", "R-10", "script", "candidate", "rejected"):
        assert private not in text, private
    # The streets drawn are bare geometry: no drive names or times.
    assert all(set(g) == {"type", "coordinates"} for g in data["streets"])


def run_cli(*args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "detector", *args], input=stdin, capture_output=True, text=True, timeout=timeout
    )


def test_users_add_reads_the_password_from_stdin(store_db: Path, tmp_path: Path, monkeypatch, capsys):
    """As ``detector users add`` runs (its main, in this process: five commands without five interpreters)."""
    from detector.cli import main

    def users_add(*args: str, stdin: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        status = main(["users", "add", *args])
        said = capsys.readouterr()
        return status, said.out + said.err

    status, said = users_add("nora", "--role", "viewer", "--db", str(store_db), stdin="n0ra-secret\n")
    assert status == 0, said
    assert "n0ra-secret" not in said
    assert query(store_db, "SELECT role FROM users WHERE name = 'nora'")[0][0] == "viewer"
    for args, stdin, words in (
        (("nora", "--role", "admin", "--db", str(store_db)), "pw\n", "unknown role"),
        (("nora", "--role", "viewer", "--db", str(store_db)), "\n", "empty password"),
        (("nora", "--role", "viewer", "--db", str(tmp_path / "missing.db")), "pw\n", "no hazard store"),
        (("<script>", "--role", "viewer", "--db", str(store_db)), "pw\n", "user name"),
    ):
        status, said = users_add(*args, stdin=stdin)
        assert status == 2 and words in said, said
        assert len(said.strip().splitlines()) == 1, said
    assert not (tmp_path / "missing.db").exists()


def _serve_review(db: Path) -> tuple[subprocess.Popen, str]:
    """``detector review`` on a free port, and its base URL once it says it serves."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "detector", "review", "--port", "0", "--db", str(db), "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    line = proc.stdout.readline()
    if "review app on http://127.0.0.1:" not in line:
        proc.kill()
        pytest.fail(proc.stderr.read() if proc.poll() is not None else line)
    return proc, line.split()[3].rstrip("/")


@SQLITE_ONLY
def test_review_command_serves_and_refuses_bad_input(store_db: Path, tmp_path: Path):
    bad_port = run_cli("review", "--port", "70000", "--db", str(store_db))
    assert bad_port.returncode == 2 and "port" in bad_port.stderr and "Traceback" not in bad_port.stderr
    missing = run_cli("review", "--port", "0", "--db", str(tmp_path / "none.db"))
    assert missing.returncode == 2 and "no hazard store" in missing.stderr
    proc, url = _serve_review(store_db)
    try:
        assert requests.get(url + "/public", timeout=30).status_code == 200
        assert requests.get(url + "/static/vendor/leaflet/leaflet.js", timeout=30).status_code == 200
    finally:
        proc.terminate()
        proc.wait(30)
    assert "users add" not in proc.stdout.read()  # it has users


def test_review_on_a_store_without_users_says_how_to_make_one(tmp_path: Path):
    db = tmp_path / "fresh.db"
    HazardStore(db).close()
    proc, url = _serve_review(db)
    try:
        assert requests.get(url + "/public", timeout=30).status_code == 200  # serving: all said
    finally:
        proc.terminate()
        proc.wait(30)
    hint = proc.stdout.read()
    assert hint.startswith("no users yet") and f"detector users add NAME --role reviewer --db {db}" in hint, hint


def test_rejected_false_alarms_export_as_negatives_with_their_frames(store_db: Path, tmp_path: Path):
    import csv

    out = tmp_path / "negatives"
    result = subprocess.run(
        [sys.executable, "-m", "detector", "export", "--format", "negatives", "--out", str(out), "--db", str(store_db)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (rejected,) = query(store_db, "SELECT id, sighting_count FROM hazards WHERE status = 'rejected'")
    rows = list(csv.DictReader((out / "negatives.csv").open()))
    assert len(rows) == rejected["sighting_count"] > 0 and {r["hazard_id"] for r in rows} == {str(rejected["id"])}
    assert [float(rows[0][k]) for k in ("x1", "y1", "x2", "y2")] == [600, 500, 700, 560]
    image = cv2.imread(str(out / rows[0]["image"]))
    assert image is not None and image.shape == (720, 1280, 3)
    assert f"{len(rows)} rejected detections" in result.stdout


BAD_VALUES = {  # (column, value) a damaged or hand-edited store could hold: each on its own hazard
    "first_seen": 1e300, "last_seen": float("inf"), "lat": 1e300, "lon": float("-inf"), "confidence": "NaN",
    "severity": "high", "uncertainty_m": 1e308 * 10, "width_m": -1e300, "lane_offset_m": "n/a",
}  # fmt: skip


def damage(db: Path) -> dict[str, int]:
    """Each bad value written with sqlite3 straight into a copy of hazard 1; the new hazards' ids by column."""
    made = {}
    with sqlite3.connect(db) as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(hazards)") if r[1] != "id"]
        for column, value in BAD_VALUES.items():
            conn.execute(
                f"INSERT INTO hazards ({', '.join(columns)}) SELECT {', '.join(columns)} FROM hazards WHERE id = 1"
            )
            made[column] = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
            conn.execute(f"UPDATE hazards SET {column} = ? WHERE id = ?", (value, made[column]))
        conn.execute("UPDATE sightings SET utc = 1e300, lat = 'x' WHERE id = (SELECT MIN(id) FROM sightings)")
        conn.execute("UPDATE drives SET started_utc = 1e300, distance_m = 'far' WHERE id = 'd2'")
    return made


@SQLITE_ONLY
def test_a_bad_value_already_stored_is_skipped_not_a_500(store_db: Path, tmp_path: Path, caplog):
    made = damage(store_db)
    served = App(store_db)
    try:
        session, _ = served.login("rita")
        listed = session.get(served.url + "/api/hazards", timeout=30)
        assert listed.status_code == 200, listed.text
        shown = {h["id"]: h for h in listed.json()["hazards"]}
        assert made["lat"] not in shown and made["lon"] not in shown  # a point that cannot be placed: left out
        assert shown[made["first_seen"]]["first_seen"] is None and shown[made["confidence"]]["confidence"] is None
        assert shown[made["severity"]]["severity"] is None and shown[made["width_m"]]["width_m"] is None
        assert shown[made["confidence"]]["lat"] == shown[1]["lat"]  # the rest of the row as stored
        assert all(json.loads(json.dumps(h), parse_constant=lambda c: pytest.fail(c)) for h in listed.json()["hazards"])
        for path in ["/", "/dashboard", "/api/dashboard", "/api/drives", "/public", "/api/public/hazards"]:
            page = session.get(served.url + path, timeout=30)
            assert page.status_code == 200, (path, page.text[:300])
        for hazard_id in made.values():
            for path in (f"/hazards/{hazard_id}", f"/api/hazards/{hazard_id}"):
                page = session.get(served.url + path, timeout=30)
                assert page.status_code in (200, 404), (path, page.text[:300])
        for fmt in ("csv", "geojson"):
            page = session.get(served.url + f"/api/export?format={fmt}", timeout=30)
            assert page.status_code == 200, (fmt, page.text[:300])
    finally:
        served.stop()
    for fmt in ("geojson", "csv"):
        out = tmp_path / f"export.{fmt}"
        done = subprocess.run(
            [sys.executable, "-m", "detector", "export", "--db", str(store_db), "--format", fmt, "--out", str(out)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        text = out.read_text()
        assert "Infinity" not in text and "NaN" not in text and "1e+300" not in text
    assert "has a value that is not valid (first_seen '1e+300'): shown as empty" in caplog.text
    assert f"hazard #{made['lat']} in the store has a value that is not valid (lat '1e+300'): left out" in caplog.text


def test_the_sign_inventory_is_a_map_layer_and_an_export_layer_of_its_own(app: App, store_db: Path, tmp_path: Path):
    from pyogrio import read_info

    for lat, status in ((31.2501, "standing"), (31.2503, "missing")):  # two mapped signs, as signs.py writes them
        write(
            store_db,
            "INSERT INTO signs (lat, lon, uncertainty_m, height_m, first_seen, last_seen, views, drive_count,"
            " confidence, photo_path, status, created_at, updated_at) VALUES (?, 34.79, 1.0, 2.2, 1.7e9, 1.7e9,"
            " 5, 2, 0.9, 'd1/000003.jpg', ?, 'now', 'now')",
            (lat, status),
        )
    victor, _ = app.login("victor")
    layer = victor.get(app.url + "/api/signs", timeout=30).json()["features"]
    assert [(f["properties"]["status"], f["geometry"]["coordinates"][1]) for f in layer] == [
        ("standing", 31.2501), ("missing", 31.2503)
    ]  # fmt: skip
    assert all("photo_path" not in f["properties"] for f in layer)  # the raw frame stays inside the store
    geojson = victor.get(app.url + "/api/export", params={"format": "geojson", "layer": "signs"}, timeout=60)
    assert geojson.headers["content-disposition"].endswith('filename="signs.geojson"')
    assert [f["properties"]["height_m"] for f in geojson.json()["features"]] == [2.2, 2.2]
    gpkg = victor.get(app.url + "/api/export", params={"format": "gpkg"}, timeout=60)
    (tmp_path / "x.gpkg").write_bytes(gpkg.content)
    assert read_info(tmp_path / "x.gpkg", layer="signs")["features"] == 2
    assert victor.get(app.url + "/api/export", params={"format": "csv", "layer": "nope"}, timeout=30).status_code == 400
    assert requests.get(app.url + "/api/signs", timeout=30).status_code == 401
