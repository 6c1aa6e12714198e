"""The morning briefing delivered: each department's list gets it by e-mail at ``review.briefing.at``.

Each 106 service code (``tickets.service_codes``: the department that answers) named in
``review.briefing.recipients`` gets one message a morning, in the city's language (``review.language``):
yesterday's finds filed under its code and its open requests past their service-level target
(:func:`detector.review.briefing.briefing`), each with its street and a link to the hazard in the review app
(``tickets.review_url``). A morning with nothing still sends, saying so, so a missing e-mail means a fault.

Sent over SMTP with TLS only (STARTTLS, or implicit TLS): a server that offers no STARTTLS is refused, never
sent to in clear. The password comes from the variable ``review.briefing.password_env`` names, never the command
line; it appears in no log or error. ``detector review`` and ``detector hub serve`` send it each morning
(:class:`BriefingSchedule`); ``detector briefing send`` sends it now (for a cron job, or to try the settings).
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from zoneinfo import ZoneInfo

from babel.dates import format_date

from detector.config import Config
from detector.config.pipeline import BriefingConfig
from detector.errors import ConfigError, InputError
from detector.review import i18n
from detector.review.briefing import briefing
from detector.review.i18n import Messages
from detector.review.names import name
from detector.store import HazardStore
from detector.store.layers import street_names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """What one morning's sending did: messages sent, and the departments whose list could not be reached."""

    sent: int
    failed: tuple[str, ...] = ()


def _line(messages: Messages, hazard: Mapping, review_url: str) -> str:
    where = f", {hazard['street']}" if hazard.get("street") else ""
    return f"- #{hazard['id']} {name(messages, 'class', hazard['class'])}{where}: {review_url}/hazards/{hazard['id']}"


def compose(brief: Mapping, code: str, messages: Messages, review_url: str) -> tuple[str, str]:
    """The subject and plain-text body of department ``code``'s briefing (``brief`` from :func:`briefing`)."""
    found = [f for f in brief["found"] if f["service_code"] == code]
    late = [r for r in brief["past_target"] if r["service_code"] == code]
    day = format_date(datetime.fromisoformat(brief["day"]).date(), "full", locale=i18n.BABEL_LOCALES[messages.language])
    subject = messages.gettext("Road hazards, morning briefing: {day} ({service})", day=day, service=code)
    lines = [
        messages.gettext("Morning briefing: {day}", day=day),
        messages.gettext("Service: {service}", service=code),
        "",
        messages.gettext("Found yesterday: {count}", count=len(found)),
        *[_line(messages, f, review_url) for f in found],
        *([messages.gettext("none")] if not found else []),
        "",
        messages.gettext("Past the service-level target: {count}", count=len(late)),
    ]
    for r in late:
        values = {"request": r["request_id"] or "–", "days": r["days_open"], "target": r["target_days"]}
        lines.append(_line(messages, r, review_url))
        lines.append("  " + messages.gettext("106 request {request}: open {days} days (target {target})", **values))
    if not late:
        lines.append(messages.gettext("none"))
    return subject, "\n".join(lines) + "\n"


def briefing_messages(cfg: Config, store: HazardStore, now: datetime | None = None) -> list[EmailMessage]:
    """This morning's e-mail to each department in ``review.briefing.recipients``."""
    section = cfg.review.briefing
    messages = i18n.Messages.load(cfg.review.language)
    brief = briefing(
        store, cfg.tickets.timezone, dict(cfg.review.service_level_days), dict(cfg.tickets.service_codes),
        street_names(cfg, store), now,
    )  # fmt: skip
    review_url = cfg.tickets.review_url.rstrip("/")
    sender = section.sender or (section.username if section.username and "@" in section.username else None)
    if not sender:
        raise ConfigError("review.briefing.sender", "is needed to send the briefing (the From: address)")
    mails = []
    for code, addresses in sorted(section.recipients.items()):
        if not addresses:
            continue
        subject, body = compose(brief, code, messages, review_url)
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = sender, ", ".join(addresses), subject
        mail["Date"], mail["Message-ID"] = formatdate(localtime=False), make_msgid(domain=sender.split("@")[-1])
        mail.set_content(body)
        mail["Content-Language"] = cfg.review.language  # after the content, which resets content headers
        mails.append(mail)
    return mails


def _tls(section: BriefingConfig) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if section.ca_file:
        context.load_verify_locations(section.ca_file)
    return context


def send_all(mails: list[EmailMessage], section: BriefingConfig, env: Mapping[str, str] = os.environ) -> Delivery:
    """Send ``mails`` over one TLS connection to ``review.briefing.smtp_host``. A refused recipient list fails
    that department only; a server that cannot be reached or signed in to is an :class:`InputError`."""
    if not section.smtp_host:
        raise ConfigError("review.briefing.smtp_host", "is not set: no mail server to send the briefing through")
    password = env.get(section.password_env) if section.username else None
    if section.username and not password:
        raise ConfigError("review.briefing.password_env", f"the variable {section.password_env} is not set")
    context = _tls(section)
    host, port = section.smtp_host, int(section.smtp_port)
    try:
        if section.tls == "implicit":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=section.timeout_s, context=context)
        else:
            smtp = smtplib.SMTP(host, port, timeout=section.timeout_s)
        with smtp:
            if section.tls == "starttls":
                smtp.ehlo()
                if not smtp.has_extn("starttls"):
                    raise InputError(
                        None, f"mail server {host}:{port} offers no STARTTLS: the briefing is not sent in clear"
                    )
                smtp.starttls(context=context)
                smtp.ehlo()
            if section.username:
                smtp.login(section.username, password or "")
            failed = []
            for mail in mails:
                try:
                    smtp.send_message(mail)
                except (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as e:
                    log.warning("briefing to %s not sent: %s", mail["To"], type(e).__name__)
                    failed.append(str(mail["To"]))
    except smtplib.SMTPAuthenticationError:
        raise InputError(None, f"mail server {host}:{port} refused the sign-in of {section.username}") from None
    except (OSError, smtplib.SMTPException) as e:  # refused, unreachable, TLS not trusted, timed out
        raise InputError(None, f"mail server {host}:{port}: {type(e).__name__}: {e}") from None
    return Delivery(len(mails) - len(failed), tuple(failed))


def send_briefing(cfg: Config, store: HazardStore, now: datetime | None = None) -> Delivery:
    """Compose and send this morning's briefing to every department's list."""
    return send_all(briefing_messages(cfg, store, now), cfg.review.briefing)


def next_send(at: str, timezone: str, now: datetime) -> datetime:
    """The next ``at`` (HH:MM) of the city's day after ``now``, in UTC.

    >>> str(next_send("07:00", "Asia/Jerusalem", datetime(2026, 6, 1, 3, 0, tzinfo=UTC)))
    '2026-06-01 04:00:00+00:00'
    >>> str(next_send("07:00", "Asia/Jerusalem", datetime(2026, 6, 1, 4, 0, tzinfo=UTC)))
    '2026-06-02 04:00:00+00:00'
    """
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    hour, minute = (int(part) for part in at.split(":"))
    when = datetime.combine(local.date(), time(hour, minute), zone)
    if when <= local:
        when = datetime.combine(local.date() + timedelta(days=1), time(hour, minute), zone)
    return when.astimezone(UTC)


class BriefingSchedule:
    """A thread that sends the briefing each morning at ``review.briefing.at`` while the app serves; a failed
    morning is logged (without the password) and the next one tried. ``clock`` gives the time (tests)."""

    def __init__(self, cfg: Config, open_store: Callable[[], HazardStore], clock=lambda: datetime.now(UTC)) -> None:
        self.cfg = cfg
        self.open_store = open_store
        self.clock = clock
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="briefing", daemon=True)

    @staticmethod
    def wanted(cfg: Config) -> bool:
        return bool(cfg.review.briefing.smtp_host and cfg.review.briefing.recipients)

    def start(self) -> BriefingSchedule:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(10)

    def _run(self) -> None:
        section = self.cfg.review.briefing
        while not self.stopped.is_set():
            due = next_send(section.at, self.cfg.tickets.timezone, self.clock())
            if self.stopped.wait(max((due - self.clock()).total_seconds(), 0.0)):
                return
            try:
                with self.open_store() as store:
                    delivery = send_briefing(self.cfg, store)
                log.info("morning briefing sent to %d departments", delivery.sent)
            except InputError as e:
                log.warning("morning briefing not sent: %s", e)
