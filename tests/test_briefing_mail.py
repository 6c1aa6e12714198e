"""The morning briefing by e-mail, against a real SMTP server (aiosmtpd) on loopback with STARTTLS, a certificate
made for the test, and a password sign-in: each department's list gets its finds and late requests in the city's
language with a link to each hazard; the password never leaves the environment; no TLS, no mail."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as day_time
from email import message_from_bytes, policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import wait_for
from test_gis_layers import streets_layer
from test_review import SQLITE_ONLY, build_store

from detector.config import load_config
from detector.review.briefing import yesterday_in
from detector.review.mail import BriefingSchedule, next_send
from detector.store import HazardStore
from detector.store.layers import remember_layers, used_layers

controller = pytest.importorskip("aiosmtpd.controller", reason="aiosmtpd is not installed (pip install -e '.[dev]')")
smtp_module = pytest.importorskip("aiosmtpd.smtp")
if not Path("/usr/bin/openssl").is_file():
    pytest.skip("no openssl to make the test's certificate", allow_module_level=True)

USER, PASSWORD = "briefing", "smtp-Pa55word-never-on-argv-4e1d"
TIMEZONE = "Asia/Jerusalem"


@dataclass
class Received:
    """What the server saw: each message, its envelope and whether the session was encrypted."""

    mails: list = field(default_factory=list)
    logins: list[tuple[str, bool]] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:
        self.mails.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default),
                           session.ssl is not None))  # fmt: skip
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        good = auth_data.login.decode() == USER and auth_data.password.decode() == PASSWORD
        self.logins.append((auth_data.login.decode(), good))
        return smtp_module.AuthResult(success=good, handled=False)  # the server answers 535 on a failure


def _certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    return _certificate(tmp_path_factory.mktemp("tls"))


def _server(certificate: tuple[Path, Path] | None) -> tuple[controller.Controller, Received]:
    import ssl

    received = Received()
    options = {}
    if certificate:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(certificate[0]), str(certificate[1]))
        options = {"tls_context": context, "require_starttls": True}
    server = controller.Controller(
        received, hostname="127.0.0.1", port=_free_port(), auth_required=True, auth_require_tls=True,
        authenticator=received.authenticate, **options,
    )  # fmt: skip
    server.start()
    return server, received


@pytest.fixture
def smtp(certificate) -> Iterator[tuple[controller.Controller, Received]]:
    server, received = _server(certificate)
    yield server, received
    server.stop()


@pytest.fixture
def store_db(tmp_path: Path, store_address, monkeypatch) -> Path:
    """The six-hazard store (R-101, a pothole's request, open past its 7 days), hazard 6 (a fallen sign) found
    yesterday in the city's day, streets remembered from the drive; on each backend (``store_address``)."""
    monkeypatch.chdir(tmp_path)
    db = build_store(tmp_path, store_address)
    layer = streets_layer(tmp_path / "streets.gpkg")
    zone = ZoneInfo(TIMEZONE)
    yesterday_noon = datetime.combine(yesterday_in(TIMEZONE), day_time(12), zone).timestamp()
    with HazardStore(db) as store, store.transaction() as conn:
        remember_layers(conn, used_layers(load_config(overrides=[f"streets.layer={layer}"])))
        conn.execute("UPDATE hazards SET first_seen = ? WHERE id = 6", (yesterday_noon,))
    return db


def _settings(server, certificate: tuple[Path, Path], language: str = "he") -> list[str]:
    overrides = [
        "review.briefing.smtp_host=127.0.0.1", f"review.briefing.smtp_port={server.port}",
        f"review.briefing.username={USER}", f"review.briefing.ca_file={certificate[0]}",
        "review.briefing.sender=hazards@city.example", f"review.language={language}",
        "review.briefing.recipients={POTHOLE: [roads@city.example],"
        " SIGN_DOWN: [signs@city.example, duty@city.example]}",
        "tickets.review_url=https://hazards.city.example", f"tickets.timezone={TIMEZONE}",
    ]  # fmt: skip
    return [part for o in overrides for part in ("--set", o)]


def _send(db: Path, flags: list[str], password: str | None = PASSWORD) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env |= {k: v for k, v in os.environ.items() if k.startswith("PG")}  # a PostgreSQL store's password (libpq's)
    if password is not None:
        env["SMTP_PASSWORD"] = password
    return subprocess.run(
        [sys.executable, "-m", "detector", "briefing", "send", "--db", str(db), *flags],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def test_each_department_gets_its_briefing_in_the_citys_language_over_tls(smtp, certificate, store_db: Path):
    server, received = smtp
    flags = _settings(server, certificate)
    done = _send(store_db, flags)
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr and PASSWORD not in " ".join(flags)
    assert received.logins == [(USER, True)]
    by_list = {tuple(rcpt): (mail, tls) for rcpt, mail, tls in received.mails}
    assert set(by_list) == {("roads@city.example",), ("signs@city.example", "duty@city.example")}
    assert all(tls for _, tls in by_list.values())  # every message went over the STARTTLS session
    signs, _ = by_list[("signs@city.example", "duty@city.example")]
    body = signs.get_body().get_content()
    assert "SIGN_DOWN" in signs["Subject"] and "תדריך בוקר" in signs["Subject"] + body
    assert "נמצאו אתמול: 1" in body and "https://hazards.city.example/hazards/6" in body and "Herzl" in body
    assert "חרגו מיעד השירות: 0" in body
    roads, _ = by_list[("roads@city.example",)]
    text = roads.get_body().get_content()
    assert "נמצאו אתמול: 0" in text and "חרגו מיעד השירות: 1" in text
    assert "https://hazards.city.example/hazards/1" in text and "R-101" in text
    assert signs["From"] == "hazards@city.example" and signs["Content-Language"] == "he"


@SQLITE_ONLY
def test_a_wrong_password_or_a_server_without_tls_sends_nothing(smtp, certificate, store_db: Path):
    server, received = smtp
    wrong = _send(store_db, _settings(server, certificate), password="not-" + PASSWORD)
    assert wrong.returncode == 2 and "refused the sign-in of briefing" in wrong.stderr
    assert "Traceback" not in wrong.stderr and "not-" + PASSWORD not in wrong.stderr
    missing = _send(store_db, _settings(server, certificate), password=None)
    assert missing.returncode == 2 and "SMTP_PASSWORD is not set" in missing.stderr
    assert received.mails == []
    plain, seen = _server(None)  # no STARTTLS offered: the password and the briefing stay here
    try:
        refused = _send(store_db, _settings(plain, certificate))
        assert refused.returncode == 2 and "offers no STARTTLS" in refused.stderr
        assert seen.logins == [] and seen.mails == []
    finally:
        plain.stop()


@SQLITE_ONLY
def test_the_schedule_sends_at_the_configured_time(smtp, certificate, store_db: Path, monkeypatch):
    server, received = smtp
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
    flags = _settings(server, certificate, language="en")
    cfg = load_config(overrides=[flags[i + 1] for i in range(0, len(flags), 2)] + ["review.briefing.at=07:00"])
    due = next_send("07:00", TIMEZONE, datetime.now(UTC))
    started, origin = time.monotonic(), due - timedelta(seconds=0.5)  # the clock starts half a second before 07:00
    clock = lambda: origin + timedelta(seconds=time.monotonic() - started)  # noqa: E731
    schedule = BriefingSchedule(cfg, lambda: HazardStore(store_db), clock).start()
    try:
        wait_for(lambda: len(received.mails) >= 2, "the briefing sent at 07:00", 30)
        assert clock() >= due
        bodies = [mail.get_body().get_content() for _, mail, _ in received.mails]
        assert any("Found yesterday: 1" in b for b in bodies) and any(
            "Past the service-level target: 1" in b for b in bodies
        )
    finally:
        schedule.stop()
    assert not schedule.thread.is_alive()
