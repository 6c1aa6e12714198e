"""106 tickets: the Open311 client and the outbox against a real ``detector serve-106`` process on loopback."""

from __future__ import annotations

import base64
import http.server
import json
import logging
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, quote, quote_plus

import cv2
import numpy as np
import pytest
import requests
from conftest import wait_for
from test_store import TRUTH, _merge

from detector.config import Config, load_config
from detector.errors import ConfigError
from detector.export import export_layers, write_layers
from detector.privacy.evidence import Redactor, write_evidence
from detector.store import HazardStore
from detector.store.merge import drive_processed
from detector.tickets.adapter import AuthError, NewRequest, RejectedError, Secret
from detector.tickets.describe import MAX_CHARS, HazardFacts, describe, marks_hazard
from detector.tickets.open311 import Open311Client
from detector.tickets.outbox import api_key as ticket_api_key
from detector.tickets.outbox import sync
from detector.tickets.sender import start_ticket_sender
from hotline106.services import NOTICES

API_KEY = f"test-key-{uuid.uuid4().hex}"  # unique, so that a leak is found by grepping for it
RESIDENT_KEY = "resident-app-key"
REVIEW = "https://review.example/app"
# Six hazards 12 m apart along the drive, classes alternating: same-class neighbours 24 m apart.
SIX = [(1.0, 10.0, 0), (-1.5, 22.0, 1), (1.2, 34.0, 0), (-1.0, 46.0, 1), (1.5, 58.0, 0), (-1.5, 70.0, 1)]
TIMEOUT_S = 60.0  # generous: the machine is shared with a training job
NOT_DUE = "SELECT 1 FROM outbox WHERE state = 'pending' AND next_attempt_at > ?"  # rows that wait for a later round


class Server:
    """``detector serve-106`` as a separate process; restarts reuse its port and database."""

    def __init__(self, folder: Path, args: tuple[str, ...]) -> None:
        self.folder = folder
        self.db = folder / "server.db"
        self.log = folder / "server.log"
        self.args = args
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        out = self.folder / f"server-{uuid.uuid4().hex[:6]}.out"
        env = {**os.environ, "OPEN311_API_KEYS": f"{API_KEY},{RESIDENT_KEY}"}
        command = [sys.executable, "-m", "detector", "serve-106", "--port", str(self.port), "--db", str(self.db)]
        with out.open("w") as stdout, self.log.open("a") as stderr:
            self.proc = subprocess.Popen([*command, *self.args], stdout=stdout, stderr=stderr, env=env)
        found = wait_for(
            lambda: re.search(r"http://127\.0\.0\.1:(\d+)/", out.read_text()) or self.proc.poll(), "server"
        )
        assert not isinstance(found, int), f"serve-106 exited: {self.log.read_text()[-2000:]}"
        self.port = int(found[1])
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(TIMEOUT_S)

    def rows(self) -> list[sqlite3.Row]:
        with sqlite3.connect(self.db, timeout=TIMEOUT_S) as conn:
            conn.row_factory = sqlite3.Row
            return conn.execute("SELECT * FROM requests ORDER BY id").fetchall()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(*args: str) -> Server:
        folder = tmp_path / f"server{len(servers)}"
        folder.mkdir()
        servers.append(Server(folder, args).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop(signal.SIGKILL)


@pytest.fixture(autouse=True)
def api_key(monkeypatch) -> None:
    monkeypatch.setenv("OPEN311_API_KEY", API_KEY)


def overrides(endpoint: str, **values: object) -> list[str]:
    base = {
        "tickets.mode": "on",
        "tickets.endpoint": endpoint,
        "tickets.review_url": REVIEW,
        "tickets.media_url": "null",
        "tickets.timeout_s": 10,
        "tickets.retry.base_s": 0.05,
        "tickets.retry.max_s": 0.2,
        "tickets.recheck_s": 0.5,
        "tickets.poll_s": 0.2,
    }
    return [f"{k}={v}" for k, v in {**base, **values}.items()]


def config(endpoint: str, **values: object) -> Config:
    return load_config(overrides=overrides(endpoint, **values))


def make_store(path: Path, truth=TRUTH) -> Path:
    with HazardStore(path) as store:
        assert _merge(store, "d1", truth, seed=1).confirmed == len(truth)
    return path


def query(db: Path, sql: str, params=()) -> list[sqlite3.Row]:
    with HazardStore(db) as store:
        return store.query(sql, params)


def cli(db: Path, endpoint: str, key: str, **values: object) -> subprocess.Popen:
    env = {**os.environ, "OPEN311_API_KEY": key}
    args = [a for o in overrides(endpoint, **values) for a in ("--set", o)]
    command = [sys.executable, "-m", "detector", "tickets", "sync", "--db", str(db), *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def ours(rows: list[sqlite3.Row], hazard_id: int) -> list[sqlite3.Row]:
    return [r for r in rows if marks_hazard(r["description"], REVIEW, hazard_id)]


def test_description_is_bilingual_plain_text_within_the_limit():
    facts = HazardFacts(12, "pothole", 31.25, 34.79, 0.87, 1780300800.0, 5, 63.4)
    text = describe(facts, REVIEW, ["he", "en"], "Asia/Jerusalem")
    assert "בור בכביש" in text and "Pothole" in text and "87%" in text and "Sightings: 5" in text
    assert "Severity: 63/100" in text and "2026-06-01 11:00 (Asia/Jerusalem)" in text
    assert text.count(f"{REVIEW}/hazards/12") == 2 and marks_hazard(text, REVIEW, 12)
    assert not marks_hazard(text, REVIEW, 1) and not marks_hazard(text, "https://other.example", 12)
    hostile = HazardFacts(13, "<script>alert(1)</script>\x07" * 300, 31.25, 34.79, 0.5, 0.0, 2, 10.0)
    text = describe(hostile, REVIEW, ["en", "he"], "UTC")
    assert len(text) <= MAX_CHARS and text.endswith(f"{REVIEW}/hazards/13")
    assert "<script>alert(1)</script>" in text and "&lt;" not in text and "\x07" not in text


def test_settings_modes_and_keys(tmp_path: Path, monkeypatch):
    off = load_config(overrides=["tickets.mode=off"])  # YAML reads a bare off as false
    assert off.tickets.mode == "off"
    assert start_ticket_sender(off, tmp_path / "h.db") is None
    with pytest.raises(ConfigError, match=r"tickets\.mode"):
        sync(off, tmp_path / "h.db")
    assert load_config(overrides=["tickets.mode=on"]).tickets.mode == "on"
    with pytest.raises(ConfigError, match=r"tickets\.attributes\.severity"):
        load_config(overrides=["tickets.attributes.severity={nope}"])
    monkeypatch.delenv("OPEN311_API_KEY")
    settings = config("http://127.0.0.1:9").tickets
    with pytest.raises(ConfigError, match="environment variable OPEN311_API_KEY is not set"):
        ticket_api_key(settings)
    key_file = tmp_path / "secret" / "key"
    key_file.parent.mkdir()
    key_file.write_text(API_KEY + "\n")
    key_file.chmod(0o600)
    secret = ticket_api_key(config("http://127.0.0.1:9", **{"tickets.api_key_file": key_file}).tickets)
    assert secret.reveal() == API_KEY and API_KEY not in repr(secret) + str(secret) + f"{secret}"


def test_client_discovery_post_and_status_in_json_and_xml(serve):
    server = serve()
    for fmt in ("json", "xml"):
        client = Open311Client(server.url, Secret(API_KEY), fmt=fmt)
        services = client.services()
        assert set(services) == {"POTHOLE", "SIGN_DOWN", "STREETLIGHT"}
        attributes = {a["code"]: a for a in client.definition("POTHOLE")["attributes"]}
        assert str(attributes["severity"]["required"]).lower() == "true"
        assert [v["key"] for v in attributes["lane"]["values"]] == ["driving", "shoulder"]
        text = "<script>alert(1)</script> בור & more"
        request = NewRequest(1, "POTHOLE", 31.25, 34.79, text, None, {"severity": "70", "lane": "driving", "x": "1"})
        submitted = client.submit(request)
        assert isinstance(submitted.service_request_id, str) and submitted.token is None
        remote = client.status(submitted.service_request_id)
        assert (remote.status, remote.description, remote.service_code) == ("open", text, "POTHOLE")
        assert remote.lat == pytest.approx(31.25) and remote.lon == pytest.approx(34.79)
        since = datetime.now(UTC) - timedelta(days=1)
        near = client.search("POTHOLE", 31.25, 34.79, 10.0, since, open_only=True)
        assert submitted.service_request_id in {r.service_request_id for r in near}
        assert not client.search("POTHOLE", 31.26, 34.79, 10.0, since, open_only=True)  # 1.1 km away
        with pytest.raises(RejectedError, match=r"HTTP 400: 400: attribute\[severity\] is required") as err:
            client.submit(NewRequest(2, "POTHOLE", 31.25, 34.79, "no severity"))
        assert not isinstance(err.value, AuthError)
        with pytest.raises(AuthError, match="HTTP 403") as err:
            Open311Client(server.url, Secret("wrong-key-123"), fmt=fmt).submit(request)
        assert "wrong-key-123" not in str(err.value)
    rows = server.rows()
    assert len(rows) == 2  # one per format; the refused ones stored nothing
    assert [json.loads(r["attributes"]) for r in rows] == [{"severity": "70", "lane": "driving"}] * 2
    assert all(r["jurisdiction_id"] is None for r in rows)  # not configured: not sent


def _raw_post(port: int, length: str, body: bytes) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=15)
    head = "POST /requests.json HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    conn.sendall(f"{head}Content-Length: {length}\r\n\r\n".encode() + body)
    return conn


def _answer(conn: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    with conn:
        while chunk := conn.recv(65536):
            data += chunk
    return data


def test_the_106_server_refuses_a_bad_content_length_and_drops_a_body_that_never_comes(serve):
    server = serve("--set", "server.read_timeout_s=1")
    for length in ("-5", "abc"):
        answer = _answer(_raw_post(server.port, length, b"service_code=POTHOLE"))
        assert answer.startswith(b"HTTP/1.1 400 ") and b"Content-Length must be a whole number" in answer, answer
    stalled = [_raw_post(server.port, "100", b"service_code=POT") for _ in range(20)]  # 16 of 100 bytes sent
    for conn in stalled:  # each answered and closed once its read timeout passed, not held open forever
        assert _answer(conn).startswith(b"HTTP/1.1 408 ")
    assert requests.get(f"{server.url}/services.json", timeout=TIMEOUT_S).status_code == 200  # still serving
    server.stop()
    log = server.log.read_text()
    assert "Traceback" not in log and " 500" not in log, log
    assert not server.rows()


def test_the_106_server_closes_a_connection_silent_before_or_within_a_request_head(serve):
    server = serve("--set", "server.read_timeout_s=1")
    for sent in (b"", b"GET /services.json HTTP/1.1\r\nHo"):  # nothing at all; half a head
        conn = socket.create_connection(("127.0.0.1", server.port), timeout=15)
        conn.sendall(sent)
        started = time.monotonic()
        assert _answer(conn) == b"" and time.monotonic() - started < 10  # closed, not held until the client gives up


def dribble(conn: socket.socket, head: bytes, slow: bytes, every_s: float = 0.2, give_up_s: float = 20.0) -> float:
    """Send ``head``, then ``slow`` a byte at a time, each once the server has been quiet for ``every_s``; the
    seconds until the server closed the connection (``give_up_s`` if it never did)."""
    started = time.monotonic()
    conn.sendall(head)
    conn.settimeout(every_s)
    for byte in slow:
        if time.monotonic() - started > give_up_s:
            break
        try:
            if conn.recv(65536) == b"":
                return time.monotonic() - started
            continue  # an answer (a 408): the close follows
        except TimeoutError:
            pass
        try:
            conn.sendall(bytes([byte]))
        except OSError:  # closed by the server
            return time.monotonic() - started
    return give_up_s


def test_the_106_server_cuts_off_a_request_that_trickles_in(serve):
    server = serve("--set", "server.read_timeout_s=2", "--set", "server.head_timeout_s=1.5",
                   "--set", "server.request_timeout_s=3")  # fmt: skip
    head = b"GET /services.json HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: "
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as conn:
        held = dribble(conn, head, b"x" * 1000)  # a byte every 0.2 s: never silent for read_timeout_s
    assert held < 5, f"a trickling head held the connection for {held:.0f} s"
    post = b"POST /requests.json HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as conn:
        held = dribble(conn, post + b"Content-Length: 1000\r\n\r\n", b"service_code=POTHOLE&" * 50)
    assert 2 < held < 7, f"a trickling body held the connection for {held:.0f} s"
    answer = requests.get(f"{server.url}/services.json", timeout=TIMEOUT_S)  # a prompt client is served
    assert answer.status_code == 200 and len(answer.json()) == 3
    server.stop()
    log = server.log.read_text()
    assert "Traceback" not in log and not server.rows(), log


def test_the_106_server_limits_are_bounded(tmp_path: Path):
    env = {**os.environ, "OPEN311_API_KEYS": API_KEY}
    command = [sys.executable, "-m", "detector", "serve-106", "--port", "0", "--db", str(tmp_path / "s.db")]
    refused = subprocess.run([*command, "--set", "server.head_timeout_s=1e300"], env=env, capture_output=True,
                             text=True, timeout=TIMEOUT_S)  # fmt: skip
    assert refused.returncode == 2 and "server.head_timeout_s" in refused.stderr and "Traceback" not in refused.stderr


def test_outbox_opens_one_request_per_hazard_and_mirrors_closed(serve, store_address):
    server = serve()
    db = make_store(store_address)
    cfg = config(server.url)
    drained, mirrored = sync(cfg, db)
    assert (drained.opened, drained.failed, drained.waiting, drained.problem) == (2, 0, 0, None)
    assert mirrored is not None and mirrored.closed == 0
    tickets = query(db, "SELECT t.*, h.class, h.severity FROM tickets t JOIN hazards h ON h.id = t.hazard_id")
    rows = server.rows()
    assert sorted(t["service_request_id"] for t in tickets) == sorted(str(r["id"]) for r in rows)
    for ticket in tickets:
        (row,) = ours(rows, ticket["hazard_id"])
        assert ticket["status"] == "open" and not ticket["linked"] and ticket["opened_at"]
        assert ticket["service_notice"] == NOTICES[ticket["service_code"]]  # what the hotline answered
        assert row["jurisdiction_id"] is None and len(row["description"]) <= MAX_CHARS
        expected = {"hazard_ref": f"hazard #{ticket['hazard_id']}"}
        if ticket["class"] == "pothole":  # SIGN_DOWN defines no severity attribute: not sent
            expected["severity"] = f"{ticket['severity']:.0f}"
        assert json.loads(row["attributes"]) == expected
    assert [r[0] for r in query(db, "SELECT state FROM outbox")] == ["sent", "sent"]
    assert len(query(db, "SELECT * FROM events WHERE action = 'ticket_opened'")) == 2

    closed_id = tickets[0]["service_request_id"]
    notes = "Filled and sealed by the roads team"
    answer = requests.post(
        f"{server.url}/admin/requests/{closed_id}/close.json", data={"api_key": API_KEY, "status_notes": notes}
    )
    assert answer.status_code == 200
    drained, mirrored = sync(cfg, db)
    assert drained.opened == 0 and mirrored is not None and (mirrored.closed, mirrored.changed) == (1, 0)
    (ticket,) = query(db, "SELECT * FROM tickets WHERE service_request_id = ?", (closed_id,))
    assert (ticket["status"], ticket["status_notes"]) == ("closed", notes)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", ticket["closed_at"])
    (event,) = query(db, "SELECT * FROM events WHERE action = 'ticket_closed'")
    assert event["hazard_id"] == ticket["hazard_id"] and notes in event["detail"]
    assert sync(cfg, db)[1].closed == 0  # closed tickets are not polled again
    assert len(server.rows()) == 2


def test_requests_name_the_street_from_the_citys_street_layer(serve, tmp_path: Path):
    from test_gis_layers import streets_layer

    server = serve()
    db = make_store(tmp_path / "h.db")
    layer = streets_layer(tmp_path / "streets.gpkg")
    assert sync(config(server.url, **{"streets.layer": layer}), db)[0].opened == 2
    rows = server.rows()
    assert [r["address"] for r in rows] == ["Herzl", "Herzl"]  # sent as GeoReport's address_string
    assert all("\nStreet: Herzl\n" in r["description"] and "\nרחוב: Herzl\n" in r["description"] for r in rows)
    listed = requests.get(f"{server.url}/requests.json", timeout=10).json()
    assert sorted(r["address"] for r in listed) == ["Herzl", "Herzl"]


# The table as serve-106 wrote it before its file had a schema version (user_version 0), with and without addresses.
UNVERSIONED = """CREATE TABLE requests (id INTEGER PRIMARY KEY AUTOINCREMENT, token TEXT UNIQUE,
    visible_at REAL NOT NULL, service_code TEXT NOT NULL, lat REAL NOT NULL, long REAL NOT NULL,
    description TEXT, media_url TEXT, attributes TEXT NOT NULL, jurisdiction_id TEXT, status TEXT NOT NULL,
    status_notes TEXT, requested_at REAL NOT NULL, updated_at REAL NOT NULL{address})"""


@pytest.mark.parametrize("address", ["", ", address TEXT"])
def test_a_server_database_from_before_addresses_gains_the_column_and_keeps_its_requests(tmp_path: Path, address):
    from hotline106.requests_db import MIGRATIONS, RequestDb

    path = tmp_path / "server.db"
    with sqlite3.connect(path) as conn:
        conn.execute(UNVERSIONED.format(address=address))
        conn.execute(
            "INSERT INTO requests (visible_at, service_code, lat, long, attributes, status, requested_at, updated_at)"
            " VALUES (0, 'POTHOLE', 31.25, 34.79, '{}', 'open', 0, 0)"
        )
    conn.close()
    db = RequestDb(path)
    (row,) = db.rows("SELECT * FROM requests")
    assert (row["service_code"], row["address"]) == ("POTHOLE", None)
    assert db.rows("PRAGMA user_version")[0][0] == len(MIGRATIONS)
    db.close()


def test_token_mode_resolves_ids_later(serve, store_address):
    server = serve("--mode", "token", "--token-delay", "1.0")
    db = make_store(store_address)
    cfg = config(server.url)
    assert sync(cfg, db)[0].opened == 2
    tickets = query(db, "SELECT * FROM tickets")
    assert all(t["token"] and t["service_request_id"] is None and t["status"] == "submitted" for t in tickets)
    assert all(t["service_notice"] == NOTICES[t["service_code"]] for t in tickets)  # it comes with the token
    resolved = wait_for(lambda: sync(cfg, db)[1].resolved or None, "tokens to resolve", every_s=0.2)
    if resolved < 2:
        wait_for(lambda: sync(cfg, db)[1].resolved, "the other token", every_s=0.2)
    tickets = query(db, "SELECT * FROM tickets")
    assert sorted(t["service_request_id"] for t in tickets) == sorted(str(r["id"]) for r in server.rows())
    assert all(t["status"] == "open" for t in tickets) and len(server.rows()) == 2
    assert len(query(db, "SELECT * FROM events WHERE action = 'ticket_token_resolved'")) == 2


def test_4xx_is_failed_for_review_and_not_retried(serve, store_address):
    server = serve()
    db = make_store(store_address)
    cfg = config(server.url, **{"tickets.attributes.severity": ""})  # the POTHOLE service requires it
    drained, _ = sync(cfg, db)
    assert (drained.opened, drained.failed, drained.waiting) == (1, 1, 0)
    (failed,) = query(
        db, "SELECT o.*, h.class FROM outbox o JOIN hazards h ON h.id = o.hazard_id WHERE state = 'failed'"
    )
    assert failed["class"] == "pothole" and failed["attempts"] == 1
    assert "HTTP 400" in failed["last_error"] and "attribute[severity] is required" in failed["last_error"]
    assert sync(cfg, db)[0].failed == 0
    assert tuple(query(db, "SELECT attempts, state FROM outbox WHERE id = ?", (failed["id"],))[0]) == (1, "failed")
    assert len(server.rows()) == 1 and len(query(db, "SELECT * FROM events WHERE action = 'ticket_failed'")) == 1


def test_5xx_and_429_are_retried_with_backoff(serve, store_address):
    server = serve("--fail-posts", "503,429")
    db = make_store(store_address, TRUTH[:1])
    cfg = config(server.url)
    started = [time.time()]
    drained, _ = sync(cfg, db)
    assert (drained.opened, drained.waiting) == (0, 1) and "HTTP 503" in drained.problem
    (row,) = query(db, "SELECT * FROM outbox")
    assert (row["state"], row["attempts"]) == ("pending", 1) and "503" in row["last_error"]
    assert row["next_attempt_at"] >= started[-1] + 0.5  # a 5xx POST may have been stored: recheck_s
    wait_for(lambda: started.append(time.time()) or sync(cfg, db)[0].problem, "the second attempt", every_s=0.02)
    (row,) = query(db, "SELECT * FROM outbox")
    assert (row["state"], row["attempts"]) == ("pending", 2) and "429" in row["last_error"]
    assert row["next_attempt_at"] >= started[-1] + 1.0  # Retry-After: 1
    wait_for(lambda: sync(cfg, db)[0].opened, "the third attempt", every_s=0.1)
    (row,) = query(db, "SELECT * FROM outbox")
    assert (row["state"], row["attempts"], row["last_error"]) == ("sent", 3, None)
    assert len(server.rows()) == 1


def test_sync_exit_status_tells_down_from_sent_and_the_first_sync_after_an_outage_sends_all(serve, store_address):
    """What a cron job sees: 1 while the hotline is down (every request left waiting, and counted), 0 once a sync
    after it came back sent everything, however long a backoff the outage started."""
    server = serve()
    server.stop()  # down; it comes back on the same port
    db = make_store(store_address)
    slow = {"tickets.retry.base_s": 600, "tickets.retry.max_s": 900}
    for _ in range(2):
        down = cli(db, server.url, API_KEY, **slow)
        out, err = down.communicate(timeout=TIMEOUT_S)
        assert down.returncode == 1 and "Traceback" not in err, err
        assert "waiting to retry: 2" in out and "cannot reach the server" in out, out
    assert not query(db, "SELECT * FROM tickets")
    server.start()
    back = cli(db, server.url, API_KEY, **slow)
    out, err = back.communicate(timeout=TIMEOUT_S)
    assert back.returncode == 0, out + err
    assert "requests opened: 2," in out and "waiting to retry: 0" in out, out
    rows = server.rows()
    assert len(rows) == 2 and all(len(ours(rows, h)) == 1 for h in [r[0] for r in query(db, "SELECT id FROM hazards")])


def test_sync_exits_2_when_the_server_refuses_a_request(serve, store_address):
    server = serve()
    db = make_store(store_address)
    refused = cli(db, server.url, API_KEY, **{"tickets.attributes.severity": ""})  # the POTHOLE service requires it
    out, err = refused.communicate(timeout=TIMEOUT_S)
    assert refused.returncode == 2 and "requests opened: 1," in out and "failed (see the outbox): 1" in out, out
    assert err.strip().splitlines()[-1] == "detector tickets: requests failed: 1; see them in the review app"


def test_an_open_request_nearby_is_linked_not_duplicated(serve, store_address):
    server = serve()
    db = make_store(store_address)
    (pothole,) = query(db, "SELECT * FROM hazards WHERE class = 'pothole'")
    resident = requests.post(
        f"{server.url}/requests.json",
        data={"api_key": RESIDENT_KEY, "service_code": "POTHOLE", "lat": pothole["lat"] + 4 / 111_000,
              "long": pothole["lon"], "description": "Deep hole by the bus stop", "attribute[severity]": "80"},
    ).json()[0]["service_request_id"]  # fmt: skip
    drained, _ = sync(config(server.url), db)
    assert (drained.linked, drained.opened) == (1, 1)
    (ticket,) = query(db, "SELECT * FROM tickets WHERE hazard_id = ?", (pothole["id"],))
    assert (ticket["service_request_id"], ticket["linked"]) == (resident, 1)
    assert len(server.rows()) == 2


def test_jurisdiction_id_is_sent_when_configured(serve, tmp_path: Path):
    server = serve("--jurisdiction-id", "city-7")
    db = make_store(tmp_path / "h.db", TRUTH[:1])
    assert sync(config(server.url, **{"tickets.jurisdiction_id": "city-7"}), db)[0].opened == 1
    assert [r["jurisdiction_id"] for r in server.rows()] == ["city-7"]


def test_dry_run_writes_what_it_would_send_and_touches_nothing(tmp_path: Path):
    db = make_store(tmp_path / "h.db")
    cfg = config("http://127.0.0.1:9", **{"tickets.mode": "dry-run"})  # nothing listens there
    drained, mirrored = sync(cfg, db)
    assert drained.dry_run == 2 and mirrored is None
    records = [json.loads(line) for line in (tmp_path / "h_tickets_dryrun.jsonl").read_text().splitlines()]
    assert sorted(r["service_code"] for r in records) == ["POTHOLE", "SIGN_DOWN"]
    assert all(marks_hazard(r["description"], REVIEW, r["hazard_id"]) and "api_key" not in r for r in records)
    assert [tuple(r) for r in query(db, "SELECT state, attempts FROM outbox")] == [("pending", 0)] * 2
    assert not query(db, "SELECT * FROM tickets")


def test_the_api_key_never_leaks(serve, tmp_path: Path, caplog):
    caplog.set_level(logging.DEBUG)
    server = serve()
    db = make_store(tmp_path / "h.db")
    refused = cli(db, server.url, "wrong-key-456")
    out, err = refused.communicate(timeout=TIMEOUT_S)
    assert refused.returncode == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("detector tickets: error: ") and "HTTP 403" in err
    assert "wrong-key-456" not in out + err
    assert [r[0] for r in query(db, "SELECT state FROM outbox")] == ["pending", "pending"]  # they wait
    query(db, "UPDATE outbox SET next_attempt_at = 0")
    assert sync(config(server.url), db, limit=1)[0].opened == 1  # in-process, logging at DEBUG (urllib3 too)
    accepted = cli(db, server.url, API_KEY)
    out, err = accepted.communicate(timeout=TIMEOUT_S)
    assert accepted.returncode == 0 and "requests opened: 1," in out, err
    assert "POST /requests.json" in caplog.text and "hazard #" in caplog.text
    server.stop()  # flush its log
    assert sync(config(server.url, **{"tickets.mode": "dry-run"}), db)[0].dry_run == 0  # all sent
    with HazardStore(db) as store:
        write_layers(export_layers(store), tmp_path / "export.csv", "csv")
        write_layers(export_layers(store), tmp_path / "export.geojson", "geojson")
        write_layers(export_layers(store, layers=("hazards", "sightings", "drives")), tmp_path / "export.gpkg", "gpkg")
    assert API_KEY not in out + err + caplog.text
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {"h.db", "server.db", "server.log", "export.csv", "export.geojson", "export.gpkg"} <= {p.name for p in files}
    assert not [p for p in files if API_KEY.encode() in p.read_bytes()]


def test_server_stopped_halfway_no_request_lost_or_duplicated(serve, store_address):
    """Must show: the drive with tickets on; the server killed and restarted mid-way; then the drive again."""
    server = serve("--post-delay", "0.3")
    db = store_address
    HazardStore(db).close()
    cfg = config(server.url)
    sender = start_ticket_sender(cfg, db)
    try:
        with HazardStore(db) as store:
            assert _merge(store, "d1", SIX, seed=1).confirmed == 6
        sender.wake()
        wait_for(lambda: len(server.rows()) >= 3, "three requests")
        server.stop(signal.SIGKILL)
        wait_for(lambda: query(db, "SELECT 1 FROM outbox WHERE last_error LIKE '%cannot reach%'"), "a failed send")
        assert query(db, "SELECT COUNT(*) FROM outbox WHERE state = 'pending'")[0][0] >= 1
        server.start()  # same port, same database
        wait_for(lambda: not query(db, "SELECT 1 FROM outbox WHERE state != 'sent'"), "the outbox to drain")
    finally:
        sender.stop()
    rows = server.rows()
    hazards = [r[0] for r in query(db, "SELECT id FROM hazards")]
    assert len(rows) == 6 and all(len(ours(rows, h)) == 1 for h in hazards)
    tickets = query(db, "SELECT * FROM tickets")
    assert sorted(t["service_request_id"] for t in tickets) == sorted(str(r["id"]) for r in rows)
    assert {t["hazard_id"] for t in tickets} == set(hazards)

    with HazardStore(db) as store:  # the drive again: the pipeline skips it; another pass confirms nothing new
        assert drive_processed(store, "hash-d1")
        report = _merge(store, "d2", SIX, seed=2)
    assert (report.new, report.merged, report.confirmed) == (0, 6, 0)
    drained, _ = sync(cfg, db)
    assert (drained.opened, drained.linked, drained.recovered) == (0, 0, 0)
    assert len(server.rows()) == 6


SAMPLE = Path(__file__).resolve().parents[1] / "sample_footage" / "drive.mp4"
MODEL = SAMPLE.parents[1] / "models" / "hazards.onnx"


@pytest.mark.slow
@pytest.mark.skipif(not MODEL.is_file(), reason="models/hazards.onnx is not trained yet")
def test_sample_drive_with_tickets_on_survives_a_server_restart(serve, tmp_path: Path):
    """Must show, as a user runs it: ``detector run`` on the sample drive with tickets on, the 106 server
    killed after its first request and restarted; ``tickets sync`` finishes; the drive again opens nothing."""
    server = serve("--post-delay", "1.0")  # the first request is stored, then its answer is held
    db = tmp_path / "h.db"
    # Every class filed on confirmation, so the drive confirms more than one request to be cut off halfway through.
    args = [a for o in [*overrides(server.url), "tickets.auto_file=true"] for a in ("--set", o)]
    run = [sys.executable, "-m", "detector", "run", str(SAMPLE), "--db", str(db), "--out", str(tmp_path / "out"), "-q"]
    proc = subprocess.Popen([*run, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: server.rows() or proc.poll() is not None, "the first request", timeout_s=300)
        server.stop(signal.SIGKILL)  # before its answer: the vehicle never learns the first request's id
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    confirmed = [r["id"] for r in query(db, "SELECT id FROM hazards WHERE status = 'confirmed'")]
    assert len(confirmed) >= 2, out  # otherwise there is no "halfway"
    assert len(server.rows()) == 1
    assert len(query(db, "SELECT * FROM outbox WHERE state = 'pending'")) == len(confirmed)

    server.start()  # same port, same database
    wait_for(lambda: not query(db, NOT_DUE, (time.time(),)), "the unanswered POST to be due again (tickets.recheck_s)")
    sync_ = cli(db, server.url, API_KEY)
    out, err = sync_.communicate(timeout=120)
    assert sync_.returncode == 0, err
    assert f"requests opened: {len(confirmed) - 1}," in out and "found from an earlier attempt: 1," in out, out
    rows = server.rows()
    assert len(rows) == len(confirmed) and all(len(ours(rows, h)) == 1 for h in confirmed)
    tickets = query(db, "SELECT hazard_id, service_request_id FROM tickets")
    assert {t["hazard_id"] for t in tickets} == set(confirmed)
    assert sorted(t["service_request_id"] for t in tickets) == sorted(str(r["id"]) for r in rows)

    again = subprocess.run([*run, *args], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stderr
    assert len(server.rows()) == len(confirmed)


def test_a_crash_between_post_and_commit_makes_no_duplicate(serve, store_address):
    server = serve("--post-delay", "60")  # the server stores the request, then holds the answer
    db = make_store(store_address, TRUTH[:1])
    sender = cli(db, server.url, API_KEY)
    try:
        wait_for(lambda: len(server.rows()) == 1, "the POST to arrive")
    finally:
        sender.kill()  # the sender dies before the answer comes back and before its commit
        sender.communicate(timeout=TIMEOUT_S)
    (row,) = query(db, "SELECT * FROM outbox")
    assert (row["state"], row["attempts"]) == ("pending", 1) and not query(db, "SELECT * FROM tickets")
    query(db, "UPDATE outbox SET next_attempt_at = 0")  # time passes: the claim's lease runs out
    drained, _ = sync(config(server.url), db)
    assert (drained.recovered, drained.opened) == (1, 0)
    (ticket,) = query(db, "SELECT * FROM tickets")
    assert [ticket["service_request_id"]] == [str(r["id"]) for r in server.rows()]
    assert ticket["service_notice"] == NOTICES[ticket["service_code"]]  # read from the request found, too
    assert query(db, "SELECT COUNT(*) FROM events WHERE action = 'ticket_recovered'")[0][0] == 1


def test_evidence_photo_is_sent_with_the_request(serve, tmp_path: Path):
    server = serve()
    db = make_store(tmp_path / "h.db", TRUTH[:1])
    (hazard,) = query(db, "SELECT * FROM hazards")
    frame = np.random.default_rng(0).integers(60, 200, (720, 1280, 3), dtype=np.uint8)
    evidence_dir = tmp_path / "h_evidence"
    (evidence_dir / "d1").mkdir(parents=True)
    cv2.imwrite(str(evidence_dir / "d1" / "000003.jpg"), frame)
    query(db, "UPDATE hazards SET evidence_path = 'd1/000003.jpg'")
    media = "{review_url}/evidence/{path}"
    assert sync(config(server.url, **{"tickets.media_url": media}), db)[0].opened == 1
    assert [r["media_url"] for r in server.rows()] == [f"{REVIEW}/evidence/tickets/hazard_{hazard['id']}.jpg"]
    photo = cv2.imread(str(evidence_dir / "tickets" / f"hazard_{hazard['id']}.jpg"))
    assert photo.shape[0] == 360 and photo.shape[1] > 640  # the crop beside a 640x360 context view
    assert [p.name for p in tmp_path.rglob("*.jpg")] == ["000003.jpg", f"hazard_{hazard['id']}.jpg"]


def test_a_dry_run_links_the_photo_and_leaves_the_blurring_to_the_review_app(tmp_path: Path):
    """A dry run sends nothing, so it runs no face and plate detectors (seconds per 1080p frame, at the end of
    every ``detector run``): its request links the photo the review app makes when it is first opened."""
    db = make_store(tmp_path / "h.db", TRUTH[:2])
    evidence_dir = tmp_path / "h_evidence"
    (evidence_dir / "d1").mkdir(parents=True)
    cv2.imwrite(str(evidence_dir / "d1" / "000003.jpg"), np.zeros((72, 128, 3), np.uint8))
    first, second = (h["id"] for h in query(db, "SELECT id FROM hazards ORDER BY id"))
    query(db, "UPDATE hazards SET evidence_path = 'd1/000003.jpg' WHERE id = ?", (first,))
    query(db, "UPDATE hazards SET evidence_path = 'd1/gone.jpg' WHERE id = ?", (second,))  # its frame is missing
    media = "{review_url}/evidence/{path}"
    cfg = config("http://127.0.0.1:9", **{"tickets.mode": "dry-run", "tickets.media_url": media})
    assert sync(cfg, db)[0].dry_run == 2
    records = [json.loads(line) for line in (tmp_path / "h_tickets_dryrun.jsonl").read_text().splitlines()]
    urls = {r["hazard_id"]: r["media_url"] for r in records}
    assert urls == {first: f"{REVIEW}/evidence/tickets/hazard_{first}.jpg", second: None}
    assert not (evidence_dir / "tickets").exists()  # nothing blurred yet


@pytest.mark.shared_data
def test_faces_are_blurred_before_the_photo_is_written(shared_data: Path, tmp_path: Path):
    frame = cv2.imread(str(shared_data / "potholes" / "rdd2022-india" / "images" / "India_000963.jpg"))
    (tmp_path / "d1").mkdir()
    cv2.imwrite(str(tmp_path / "d1" / "f.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 100])
    redactor = Redactor(load_config().tickets.evidence)
    path, regions = write_evidence(
        tmp_path, 7, "d1/f.jpg", (250, 480, 420, 560), redactor, load_config().tickets.evidence
    )
    assert path == "tickets/hazard_7.jpg" and cv2.imread(str(tmp_path / path)).shape[0] == 360
    faces = [r for r in regions if r.kind == "face"]
    assert len(faces) >= 3  # riders on the motorbikes and the rickshaw
    clean, _ = redactor.redact(frame)

    def detail(image: np.ndarray, r) -> float:
        return float(cv2.Laplacian(cv2.cvtColor(image[r.y1 : r.y2, r.x1 : r.x2], cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())

    assert all(detail(clean, r) < 0.2 * detail(frame, r) for r in faces)
    assert write_evidence(tmp_path, 8, "../outside.jpg", (0, 0, 1, 1), redactor, load_config().tickets.evidence) is None


@pytest.mark.shared_data
def test_road_user_model_blurs_heads_and_plate_zones_but_not_the_hazard(shared_data: Path):
    pytest.importorskip("ai_edge_litert", reason="the privacy extra (ai-edge-litert) is not installed")
    frame = cv2.imread(str(shared_data / "potholes" / "rdd2022-india" / "images" / "India_000963.jpg"))
    settings = load_config(
        overrides=[f"tickets.evidence.road_user_model={shared_data / 'weights' / 'yolov8n_int8.tflite'}"]
    ).tickets.evidence
    hazard = (250, 480, 420, 560)  # a pothole in front of the rickshaw
    clean, regions = Redactor(settings).redact(frame, keep=hazard)
    kinds = [r.kind for r in regions]
    assert kinds.count("head") >= 3 and kinds.count("plate_zone") >= 2  # riders, motorbikes, the rickshaw
    x1, y1, x2, y2 = hazard
    assert np.array_equal(clean[y1:y2, x1:x2], frame[y1:y2, x1:x2])

    def detail(image: np.ndarray, x1: int, y1: int, x2: int, y2: int) -> float:
        return float(cv2.Laplacian(cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())

    for r in regions:
        if r.kind == "head" or (r.kind == "plate_zone" and r.y2 <= y1):  # wholly outside the hazard's box
            assert detail(clean, r.x1, r.y1, r.x2, r.y2) < 0.2 * detail(frame, r.x1, r.y1, r.x2, r.y2), r
    inside = np.zeros(frame.shape[:2], bool)  # every region grown by a fifth, as blurred
    for r in regions:
        gx, gy = (r.x2 - r.x1) // 5 + 2, (r.y2 - r.y1) // 5 + 2
        inside[max(0, r.y1 - gy) : r.y2 + gy, max(0, r.x1 - gx) : r.x2 + gx] = True
    changed = (clean != frame).any(axis=2)
    assert changed.sum() > 1000 and not (changed & ~inside).any()  # the rest of the road is left alone


def test_road_user_model_that_is_missing_or_not_coco_is_refused(tmp_path: Path):
    from detector.errors import InputError
    from detector.privacy.road_users import RoadUsers

    with pytest.raises(ConfigError, match=r"road_user_model.*nowhere\.onnx: model file not found"):
        load_config(overrides=["tickets.evidence.road_user_model=nowhere.onnx"])
    with pytest.raises(InputError, match="not a COCO detector: no class bus, car, motorcycle, person, truck"):
        RoadUsers(Path(__file__).resolve().parents[1] / "models" / "hazards.onnx")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model" * 200)
    with pytest.raises(InputError, match=r"junk\.tflite"):
        RoadUsers(junk)


def test_evidence_photo_from_a_box_outside_the_frame_is_still_made():
    from detector.privacy.evidence import compose

    frame = np.zeros((360, 640, 3), np.uint8)
    photo = compose(frame, (900.0, 500.0, 950.0, 520.0), 360)  # recorded for a 1280x720 frame
    assert photo.shape[0] == 360 and photo.shape[1] > 640 * 360 / 360  # crop beside the whole context view


# Hostile or broken hotlines: stand-ins served by http.server in a thread of the test process.

STAND_IN_SERVICES = [{"service_code": c, "service_name": c, "metadata": False} for c in ("POTHOLE", "SIGN_DOWN")]


class StandIn:
    """An HTTP server on loopback whose answers ``answer(handler)`` writes; it records every request it gets."""

    def __init__(self, answer: Callable[[http.server.BaseHTTPRequestHandler, bytes], None]) -> None:
        self.seen: list[tuple[str, str, bytes]] = []
        self.stopping = threading.Event()  # ends a dribble
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stand_in.seen.append((self.command, self.path, body))
                try:
                    answer(self, body)
                except OSError:  # the client hung up (a dribble cut short)
                    self.close_connection = True

            do_GET = do_POST = _any

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stand_in() -> Iterator[Callable[..., StandIn]]:
    started: list[StandIn] = []

    def start(answer: Callable[[http.server.BaseHTTPRequestHandler, bytes], None]) -> StandIn:
        started.append(StandIn(answer))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def reply(handler: http.server.BaseHTTPRequestHandler, status: int, body: bytes = b"[]", **headers: str) -> None:
    handler.send_response(status)
    named = {k.replace("_", "-"): v for k, v in headers.items()}
    for name, value in {"Content-Type": "application/json", **named}.items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def hotline(post: Callable[[http.server.BaseHTTPRequestHandler, bytes], None], redirect_gets: str | None = None):
    """A GeoReport stand-in: services and an empty search as a real server; POSTs (and, if given, GETs of
    ``requests``, redirected there) answered by ``post``."""

    def answer(handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        if handler.command == "POST":
            post(handler, body)
        elif handler.path.startswith("/services.json"):
            reply(handler, 200, json.dumps(STAND_IN_SERVICES).encode())
        elif redirect_gets and handler.path.startswith("/requests.json"):
            reply(handler, 302, b"", Location=redirect_gets + handler.path)
        else:
            reply(handler, 200)

    return answer


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_not_followed_and_the_key_goes_nowhere_else(stand_in, tmp_path: Path, status: int):
    elsewhere = stand_in(lambda handler, body: reply(handler, 200, b'[{"service_request_id": "stolen"}]'))
    target = f"{elsewhere.url}/steal/requests.json?api_key={API_KEY}"
    server = stand_in(hotline(lambda handler, body: reply(handler, status, b"", Location=target)))
    db = make_store(tmp_path / "h.db")
    drained, mirrored = sync(config(server.url), db)
    assert elsewhere.seen == []  # not the POST, not a GET: nothing reaches the other host
    assert [m for m, _, _ in server.seen].count("POST") == 1  # the round stopped at the first redirect
    host = f"127.0.0.1:{elsewhere.server.server_address[1]}"
    assert drained.opened == 0 and drained.waiting == 2 and drained.operator_must_act and mirrored is None
    assert f"HTTP {status} redirect to {host} not followed" in drained.problem and API_KEY not in drained.problem
    rows = query(db, "SELECT state, last_error FROM outbox WHERE last_error IS NOT NULL")
    assert [r["state"] for r in rows] == ["pending"] and host in rows[0]["last_error"]
    assert "steal" not in rows[0]["last_error"] and not query(db, "SELECT * FROM tickets")

    if status == 307:  # what a cron job sees: a person must act
        run = cli(db, server.url, API_KEY)
        out, err = run.communicate(timeout=TIMEOUT_S)
        last = err.strip().splitlines()[-1]
        assert run.returncode == 2 and last.startswith("detector tickets: error: ") and "redirect to" in last, err
        assert API_KEY not in out + err and elsewhere.seen == []

    polled = stand_in(hotline(lambda handler, body: reply(handler, 200), redirect_gets=elsewhere.url))
    drained, _ = sync(config(polled.url), db)  # a redirected look-up: stopped as well
    assert elsewhere.seen == [] and "redirect to" in drained.problem
    assert [m for m, _, _ in polled.seen].count("POST") == 0


ECHO_KEY = f"Ech0/{uuid.uuid4().hex}+k=y"  # quoting and base64 change it


def echoed_forms(key: str) -> list[str]:
    """How a careless server could write a key back: changed in case, cut short, URL-quoted, base64-encoded."""
    return [
        key, key.upper(), key.lower(), key[:10], key[3:21], quote(key, safe=""), quote_plus(key),
        base64.b64encode(key.encode()).decode(), base64.b64encode(f"api_key={key}".encode()).decode(),
        base64.urlsafe_b64encode(key.encode()).decode(),
    ]  # fmt: skip


def leaks(text: str, key: str = ECHO_KEY) -> list[str]:
    """The forms of ``key`` in ``text``, and any 8 characters of it (or its quoted form) in a row: none, or a leak."""
    folded = text.lower()
    found = [f for f in echoed_forms(key) if f.lower() in folded]
    for form in (key, quote(key, safe="")):
        found += [form[i : i + 8] for i in range(len(form) - 7) if form[i : i + 8].lower() in folded]
    return found


def echoing() -> Callable[[http.server.BaseHTTPRequestHandler, bytes], None]:
    """POSTs answered with errors that echo the key, changed: a documented GeoReport error (JSON), then an HTML
    page, then XML errors."""
    posts = []

    def post(handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        forms = " ".join(echoed_forms(dict(parse_qsl(body.decode()))["api_key"]))
        posts.append(body)
        if len(posts) == 1:
            documented = [{"code": 400, "description": f"api_key {forms} cannot open POTHOLE requests"}]
            reply(handler, 400, json.dumps(documented).encode())
        elif len(posts) == 2:
            reply(handler, 502, f"<html><pre>{body.decode()} {forms}</pre></html>".encode(), Content_Type="text/html")
        else:
            xml = f"<errors><error><code>403</code><description>key {forms} refused</description></error></errors>"
            reply(handler, 403, xml.encode(), Content_Type="text/xml")

    return post


def test_a_key_the_server_echoes_changed_reaches_no_log_store_or_page(stand_in, tmp_path: Path):
    from test_review import PASSWORDS, App

    from detector.review.auth import add_user

    server = stand_in(hotline(echoing()))
    db = make_store(tmp_path / "h.db")
    printed = ""
    for _ in range(2):  # 400 (failed) then 502 (waits); then 403 (the key refused)
        wait_for(lambda: not query(db, NOT_DUE, (time.time(),)), "the 502'd request to be due again")
        run = cli(db, server.url, ECHO_KEY)
        out, err = run.communicate(timeout=TIMEOUT_S)
        printed += out + err
        assert run.returncode in (1, 2) and "Traceback" not in err, err
    posted = [body.decode() for method, _, body in server.seen if method == "POST"]
    assert len(posted) == 3 and all(quote_plus(ECHO_KEY) in body for body in posted), printed
    assert "HTTP 400: 400: api_key *** cannot open POTHOLE requests" in printed, printed  # documented, scrubbed
    assert "HTTP 502 from 127.0.0.1" in printed and "HTTP 403: 403: key" in printed
    assert leaks(printed) == []
    stored = [r["last_error"] for r in query(db, "SELECT last_error FROM outbox")]
    stored += [r["detail"] for r in query(db, "SELECT detail FROM events")]
    assert any("HTTP 400" in s for s in stored if s) and any("HTTP 403" in s for s in stored if s)
    assert leaks(" ".join(s for s in stored if s)) == []

    with HazardStore(db) as store:
        add_user(store, "rita", "reviewer", PASSWORDS["rita"])
    app = App(db)
    try:
        session, _ = app.login("rita")
        pages = [session.get(app.url + path, timeout=TIMEOUT_S) for path in ("/api/hazards", "/", "/dashboard")]
        ids = [h["id"] for h in pages[0].json()["hazards"]]
        for path in [f"{base}{hazard_id}" for hazard_id in ids for base in ("/api/hazards/", "/hazards/")]:
            pages.append(session.get(app.url + path, timeout=TIMEOUT_S))
        assert all(p.status_code == 200 for p in pages)
        shown = " ".join(p.text for p in pages)
        assert "HTTP 403" in shown and leaks(shown) == []
    finally:
        app.stop()


def dribbling(stand_in, head: bool) -> StandIn:
    """A hotline that sends a byte every 0.2 s: of its headers (``head``) or of a 200-byte body; a minute in all."""
    server: list[StandIn] = []

    def answer(handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        start = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        slow = b"X-Padding: " + b"x" * 200 + b"\r\nContent-Length: 2\r\n\r\n[]" if head else b"[" + b" " * 198 + b"]"
        handler.wfile.write(start if head else start + b"Content-Length: 200\r\n\r\n")
        for byte in slow:
            handler.wfile.write(bytes([byte]))
            if server[0].stopping.wait(0.2):
                return

    server.append(stand_in(answer))
    return server[0]


@pytest.mark.parametrize("head", [True, False], ids=["headers", "body"])
def test_a_hotline_that_dribbles_its_answer_is_cut_off_at_the_deadline(stand_in, tmp_path: Path, head: bool):
    server = dribbling(stand_in, head)
    db = make_store(tmp_path / "h.db")
    started = time.monotonic()
    drained, mirrored = sync(config(server.url, **{"tickets.deadline_s": 1.5}), db)
    took = time.monotonic() - started
    assert took < 10, f"the sync took {took:.0f} s"  # 40 s for the dribble to end otherwise
    assert drained.problem.endswith("no complete answer within 1.5 s (tickets.deadline_s)"), drained.problem
    assert (drained.opened, drained.waiting, mirrored) == (0, 2, None)
    rows = query(db, "SELECT state, attempts FROM outbox ORDER BY id")
    assert [tuple(r) for r in rows] == [("pending", 1), ("pending", 0)]  # the look-up only: no POST was made
    assert [m for m, _, _ in server.seen] == ["GET"]


def test_the_deadline_setting_is_bounded():
    with pytest.raises(ConfigError, match=r"tickets\.deadline_s"):
        config("http://127.0.0.1:9", **{"tickets.deadline_s": 601})
    with pytest.raises(ConfigError, match=r"tickets\.deadline_s"):
        config("http://127.0.0.1:9", **{"tickets.deadline_s": 0})


def test_an_answer_nested_past_any_real_one_is_an_error_not_a_crash(stand_in, tmp_path: Path):
    nested = b"[" * 100_000 + b"]" * 100_000
    server = stand_in(hotline(lambda handler, body: reply(handler, 400, nested)))
    db = make_store(tmp_path / "h.db")
    drained, _ = sync(config(server.url), db)  # the look-up answers [], the POST a 400 nested 100,000 deep
    assert drained.failed == 2 and [r[0] for r in query(db, "SELECT state FROM outbox")] == ["failed"] * 2
    assert {r[0] for r in query(db, "SELECT last_error FROM outbox")} == {f"HTTP 400 from {server.url[7:]}"}
    deep = stand_in(lambda handler, body: reply(handler, 200, nested))
    drained, _ = sync(config(deep.url), make_store(tmp_path / "h2.db"))
    assert drained.problem.endswith("HTTP 200 but the answer is not valid JSON") and drained.waiting == 2


def test_a_wake_files_at_once_but_asks_for_statuses_once_per_poll(serve, tmp_path: Path):
    """A hub wakes its sender after every merged segment, ten a second when busy: each wake files what was
    confirmed, but the open requests' statuses are asked for once per ``tickets.poll_s``, not once per merge."""
    from detector.tickets.outbox import build_adapter
    from detector.tickets.sender import TicketSender

    server = serve()
    db = make_store(tmp_path / "h.db", SIX)
    settings = config(server.url, **{"tickets.poll_s": 60}).tickets
    now = [1000.0]
    sender = TicketSender(db, TIMEOUT_S, settings, build_adapter(settings), clock=lambda: now[0]).start()

    def round_after_wake():
        before = sender.last
        sender.wake()
        wait_for(lambda: sender.last is not before, "a round of the sender")
        return sender.last

    try:
        wait_for(lambda: sender.last is not None, "the first round")
        drained, mirrored = sender.last
        assert drained.opened == 6 and mirrored is not None  # the first round files and mirrors
        woken = [round_after_wake() for _ in range(3)]
        assert [m for _, m in woken] == [None, None, None]
        now[0] += 61
        assert round_after_wake()[1] is not None
    finally:
        sender.stop()
    assert len(server.rows()) == 6
