"""The outbox sender: confirmed hazards become 106 requests exactly once, and their status comes back.

``merge_drive`` queues an ``outbox`` row in the same transaction that confirms a hazard. This
module drains those rows:

1. **Claim** (one transaction): ``attempts += 1`` and ``next_attempt_at`` a lease ahead, only if
   the row is still pending with the attempts we read (another sender racing for it loses). On PostgreSQL the
   row is taken ``FOR UPDATE SKIP LOCKED``: concurrent senders (hub workers) pass over a row one of them holds.
2. **Look before posting**: ``GET requests`` of the service near the hazard since its date. A
   request carrying this hazard's marker (its review link) is ours from an earlier attempt whose
   answer never reached the store (a crash or a lost response between POST and commit): record
   it, post nothing. An open request of the same service within ``link_radius_m`` that is not
   one of ours (a resident's report) is linked instead of opening a duplicate.
3. **Post** otherwise, then record the ticket, mark the row ``sent`` and write an ``events`` row,
   all in one transaction.

Network errors, timeouts, 5xx and 429 stop the round and leave the row pending: due again at once
(the server being down is the server's state, not the request's: the next round, or a ``tickets sync``
once it is back, sends everything), unless the server said ``Retry-After`` or the POST itself may
have reached the server (its answer was lost): then the next look waits at least ``recheck_s``, so
that servers which list a request only later (token mode) show it first. The background sender
waits longer between rounds, with exponential backoff and jitter, while the server keeps failing.
Other 4xx mark the row ``failed`` with ``last_error`` for review.
A refused API key (401/403) or a redirect (3xx, never followed: the POST carries the key) stops the round and
leaves the row pending, for an operator to fix the key or ``tickets.endpoint``. ``mode: dry-run``
writes what it would send to the log and a JSONL file and touches no server and no outbox row.

:func:`mirror_statuses` resolves tokens and polls open requests: a closed one gets its time and
the server's notes on the ticket, and an ``events`` row. :class:`TicketSender` does both in a
background thread for ``detector run``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from detector.config import Config
from detector.config.pipeline import TicketsConfig
from detector.errors import ConfigError, InputError, shown
from detector.geo import geodesic_distance_m
from detector.gis_layers import StreetNames
from detector.privacy.evidence import Redactor, photo_path, refresh_photo
from detector.store import HazardStore
from detector.store.db import now_text, store_path
from detector.store.layers import street_names
from detector.store.streets import street_of
from detector.tickets.adapter import (
    AuthError,
    NewRequest,
    RedirectedError,
    RejectedError,
    RemoteRequest,
    RetryableError,
    Secret,
    TicketAdapter,
)
from detector.tickets.describe import HazardFacts, describe, marks_hazard, template_fields

log = logging.getLogger(__name__)

NEVER_SEND = ("rejected", "merged", "repaired")
ACTOR = "tickets"


def dry_run_path(settings: TicketsConfig, store: Path) -> Path:
    """The dry-run JSONL file: ``dry_run_file``, else ``<store>_tickets_dryrun.jsonl`` beside the store."""
    return (
        Path(settings.dry_run_file) if settings.dry_run_file else store.with_name(store.stem + "_tickets_dryrun.jsonl")
    )


def destination(settings: TicketsConfig, store: Path) -> str:
    """Where requests go, as a run's summary says it."""
    if settings.mode == "off":
        return "106 requests: none (tickets.mode off)"
    if settings.mode == "dry-run":
        return f"106 requests: dry run, written to {shown(dry_run_path(settings, store))}"
    return f"106 requests: sent to {settings.endpoint}"


def api_key(settings: TicketsConfig) -> Secret:
    """From the key file when one is configured, else from the environment variable."""
    if settings.api_key_file:
        path = Path(settings.api_key_file)
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise InputError(path, f"cannot read the API key file ({e.strerror or e})") from None
        if not value:
            raise InputError(path, "the API key file is empty")
        if os.name == "posix" and path.stat().st_mode & 0o077:
            log.warning("%s: the API key file is readable by other users (chmod 600 it)", path)
        return Secret(value)
    value = os.environ.get(settings.api_key_env, "").strip()
    if not value:
        raise ConfigError(
            "tickets.api_key_env",
            f"environment variable {settings.api_key_env} is not set (or name a key file in tickets.api_key_file)",
        )
    return Secret(value)


def build_adapter(settings: TicketsConfig) -> TicketAdapter:
    """The configured hotline API (Open311 GeoReport v2)."""
    from detector.tickets.open311 import Open311Client

    parts = urlsplit(settings.endpoint)
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        log.warning("tickets.endpoint %s is plain http: the API key would travel unencrypted", settings.endpoint)
    return Open311Client(
        settings.endpoint,
        api_key(settings),
        settings.jurisdiction_id,
        settings.timeout_s,
        settings.format,
        settings.radius_search,
        settings.deadline_s,
    )


@dataclass
class DrainReport:
    opened: int = 0
    linked: int = 0
    recovered: int = 0
    failed: int = 0  # refused by the server, or of a class with no service code: a person must look
    withdrawn: int = 0  # the hazard was rejected, merged or repaired before its request went out
    waiting: int = 0  # left pending for a later round: not sent now (server down, --limit, not yet due)
    next_retry_s: float | None = None  # when the first of those is due, from the end of the round
    dry_run: int | None = None  # in dry-run mode: how many would be opened
    problem: str | None = None  # why the round stopped early (server unreachable, key refused)
    operator_must_act: bool = False  # the key refused, or the endpoint redirected: retrying alone will not help

    def line(self) -> str:
        if self.dry_run is not None:
            return f"dry run: requests that would be opened: {self.dry_run} (nothing sent)"
        when = f" (the next in {self.next_retry_s:.0f} s)" if self.waiting and self.next_retry_s else ""
        text = (
            f"requests opened: {self.opened}, linked to existing requests: {self.linked}, "
            f"found from an earlier attempt: {self.recovered}, failed (see the outbox): {self.failed}, "
            f"waiting to retry: {self.waiting}{when}"
        )
        if self.withdrawn:
            text += f", not sent as the hazard was rejected, merged or repaired: {self.withdrawn}"
        return f"{text}; stopped: {self.problem}" if self.problem else text


@dataclass
class MirrorReport:
    resolved: int = 0
    closed: int = 0
    changed: int = 0
    problem: str | None = None

    def line(self) -> str:
        text = f"statuses: tokens resolved: {self.resolved}, closed: {self.closed}, other changes: {self.changed}"
        return f"{text}; stopped: {self.problem}" if self.problem else text


def _epoch(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _event(conn, hazard_id: int, action: str, detail: str) -> None:
    conn.execute(
        "INSERT INTO events (hazard_id, at, actor, action, detail) VALUES (?,?,?,?,?)",
        (hazard_id, now_text(), ACTOR, action, detail),
    )


class OutboxSender:
    """Drains one store's outbox through ``adapter`` (None in dry-run mode)."""

    def __init__(
        self,
        store: HazardStore,
        settings: TicketsConfig,
        adapter: TicketAdapter | None,
        streets: StreetNames | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.adapter = adapter
        self.streets = streets  # names each request's street
        self._redactor: Redactor | None = None
        # dry run: hazards the dry-run file already holds (from this sender or an earlier run), each written once
        self._shown = _logged_hazards(dry_run_path(settings, store.path)) if adapter is None else set()

    def _due(self, now: float, limit: int | None) -> list:
        rows = self.store.query(
            "SELECT o.id AS outbox_id, o.attempts, o.created_at AS queued_at, h.*, s.x1, s.y1, s.x2, s.y2"
            " FROM outbox o JOIN hazards h ON h.id = o.hazard_id LEFT JOIN sightings s ON s.id = h.best_sighting_id"
            " WHERE o.state = 'pending' AND o.next_attempt_at <= ? ORDER BY o.id",
            (now,),
        )
        return rows[:limit] if limit is not None else rows

    def _media_url(self, row) -> str | None:
        if not (self.settings.media_url and row["evidence_path"] and row["x1"] is not None):
            return None
        if self.adapter is None:  # a dry run sends nothing: the review app blurs the photo when it is first opened
            if not (self.store.evidence_dir / row["evidence_path"]).is_file():
                return None
            path = photo_path(row["id"])
            return self.settings.media_url.format(review_url=self.settings.review_url, path=path, id=row["id"])
        if refresh_photo(self.store, row["id"], self._loaded_redactor, self.settings.evidence) is None:
            log.warning("hazard #%d: evidence frame %s not found; no photo", row["id"], row["evidence_path"])
            return None
        path = photo_path(row["id"])  # made at the merge (tickets.evidence.at_merge) unless the hazard changed since
        return self.settings.media_url.format(review_url=self.settings.review_url, path=path, id=row["id"])

    def _loaded_redactor(self) -> Redactor:
        if self._redactor is None:
            self._redactor = Redactor(self.settings.evidence)
        return self._redactor

    def _request(self, row, service_code: str) -> NewRequest:
        facts = HazardFacts.from_row(row, street_of(row, self.streets))
        fields = template_fields(facts, self.settings.review_url)
        return NewRequest(
            hazard_id=facts.id,
            service_code=service_code,
            lat=facts.lat,
            lon=facts.lon,
            description=describe(
                facts, self.settings.review_url, list(self.settings.languages), self.settings.timezone
            ),
            media_url=self._media_url(row),
            attributes={code: t.format_map(fields) for code, t in self.settings.attributes.items()},
            address=facts.street,
        )

    def drain(self, limit: int | None = None) -> DrainReport:
        """Send the pending rows that are due (at most ``limit``); see the module docstring."""
        report = DrainReport(dry_run=0 if self.adapter is None else None)
        for row in self._due(time.time(), limit):
            status = row["status"]
            if status != "confirmed":
                if status in NEVER_SEND:
                    self._fail(row, f"hazard is {status}; no request sent")
                    report.withdrawn += 1
                continue  # candidate / possibly_repaired: wait until it is confirmed again
            code = self.settings.service_codes.get(row["class"])
            if code is None:
                self._fail(row, f"no service code for class {row['class']!r} (set tickets.service_codes)")
                report.failed += 1
                continue
            if self.adapter is None:
                if row["id"] not in self._shown:
                    self._dry_run(self._request(row, code))
                    self._shown.add(row["id"])
                report.dry_run += 1
                continue
            request = self._request(row, code)
            if not self._claim(row):
                continue  # another sender took it
            try:
                self._send(row, request, report)
            except RedirectedError as e:  # before RetryableError, its base: the request waits for an operator
                self._retry_later(row, str(e), 0.0)
                report.problem = str(e)
                report.operator_must_act = True
                break
            except RetryableError as e:
                recheck = self.settings.recheck_s if e.maybe_created else 0.0
                self._retry_later(row, str(e), max(e.retry_after_s or 0.0, recheck))
                report.problem = str(e)
                break  # the server is unreachable or overloaded: the rest waits too
            except AuthError as e:
                self._retry_later(row, str(e), 0.0)
                report.problem = str(e)
                report.operator_must_act = True
                break
            except RejectedError as e:
                self._fail(row, str(e))
                report.failed += 1
        if self.adapter is not None:
            report.waiting, report.next_retry_s = self._left()
        return report

    def _left(self) -> tuple[int, float | None]:
        """The requests still to send (of confirmed hazards), and in how many seconds the first is due."""
        (row,) = self.store.query(
            "SELECT COUNT(*) AS n, MIN(o.next_attempt_at) AS due FROM outbox o JOIN hazards h ON h.id = o.hazard_id"
            " WHERE o.state = 'pending' AND h.status = 'confirmed'"
        )
        return row["n"], max(0.0, row["due"] - time.time()) if row["n"] else None

    def _claim(self, row) -> bool:
        with self.store.transaction(row_locks=True) as conn:
            if (
                self.store.dialect == "postgresql"
                and not conn.execute(
                    "SELECT id FROM outbox WHERE id = ? AND state = 'pending' AND attempts = ? FOR UPDATE SKIP LOCKED",
                    (row["outbox_id"], row["attempts"]),
                ).fetchone()
            ):
                return False  # another sender holds it (SQLite has one writer at a time: the UPDATE below decides)
            cur = conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?"
                " WHERE id = ? AND state = 'pending' AND attempts = ?",
                (time.time() + self.settings.lease_s, row["outbox_id"], row["attempts"]),
            )
            return cur.rowcount == 1

    def _send(self, row, request: NewRequest, report: DrainReport) -> None:
        assert self.adapter is not None
        retrying = row["attempts"] > 0  # an earlier POST may have reached the server
        now = datetime.now(UTC)
        since = now - timedelta(days=self.settings.search_days)
        if retrying:
            since = min(since, _epoch(row["queued_at"]) - timedelta(days=1))
        found = self.adapter.search(
            request.service_code, request.lat, request.lon, self.settings.search_m, since, open_only=not retrying
        )
        ours = [r for r in found if marks_hazard(r.description, self.settings.review_url, request.hazard_id)]
        if ours:
            self._record(row, request.service_code, ours[0], None, False, "ticket_recovered")
            report.recovered += 1
            return
        nearby = self._nearest_foreign(found, request)
        if nearby is not None:
            self._record(row, request.service_code, nearby, None, True, "ticket_linked")
            report.linked += 1
            return
        submission = self.adapter.submit(request)
        remote = None
        if submission.service_request_id:
            remote = RemoteRequest(submission.service_request_id, "open", request.service_code, requested=now_text())
        self._record(row, request.service_code, remote, submission.token, False, "ticket_opened", submission.notice)
        report.opened += 1

    def _nearest_foreign(self, found: list[RemoteRequest], request: NewRequest) -> RemoteRequest | None:
        """The closest open request within ``link_radius_m`` that none of our hazards opened."""
        best, best_d = None, self.settings.link_radius_m
        for r in found:
            if r.status == "closed" or r.lat is None or r.lon is None:
                continue
            if r.service_code not in (None, request.service_code):
                continue
            if marks_hazard(r.description, self.settings.review_url):
                continue  # another of our hazards: dedup kept them apart, so do we
            d = float(geodesic_distance_m(request.lat, request.lon, r.lat, r.lon))
            if d <= best_d:
                best, best_d = r, d
        return best

    def _record(
        self,
        row,
        code: str,
        remote: RemoteRequest | None,
        token: str | None,
        linked: bool,
        action: str,
        notice: str | None = None,
    ) -> None:
        request_id = remote.service_request_id if remote else None
        status = remote.status if remote else "submitted"  # a token: the id comes later
        notice = notice or (remote.service_notice if remote else None)
        opened = (remote and remote.requested) or now_text()
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO tickets (hazard_id, service_code, service_request_id, token, status, opened_at, linked,"
                " service_notice) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (hazard_id) DO UPDATE SET"
                " service_code = excluded.service_code, service_request_id = excluded.service_request_id,"
                " token = excluded.token, status = excluded.status, opened_at = excluded.opened_at,"
                " linked = excluded.linked, service_notice = excluded.service_notice",
                (row["id"], code, request_id, token, status, opened, int(linked), notice),
            )
            conn.execute("UPDATE outbox SET state = 'sent', last_error = NULL WHERE id = ?", (row["outbox_id"],))
            what = f"request {request_id}" if request_id else f"token {token}"
            _event(conn, row["id"], action, f"{what} ({code}) at {self.settings.endpoint}")
        log.info("hazard #%d: %s %s", row["id"], action.removeprefix("ticket_"), what)

    def _retry_later(self, row, error: str, delay_s: float) -> None:
        """Release the row's claim: due again after ``delay_s`` (0: at the next round)."""
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE outbox SET last_error = ?, next_attempt_at = ? WHERE id = ? AND state = 'pending'",
                (error, time.time() + delay_s, row["outbox_id"]),
            )
        log.warning("hazard #%d: %s; %s", row["id"], error, f"retry in {delay_s:.0f} s" if delay_s else "will retry")

    def _fail(self, row, error: str) -> None:
        with self.store.transaction() as conn:
            conn.execute("UPDATE outbox SET state = 'failed', last_error = ? WHERE id = ?", (error, row["outbox_id"]))
            _event(conn, row["id"], "ticket_failed", error)
        log.error("hazard #%d: request not sent: %s", row["id"], error)

    def _dry_run(self, request: NewRequest) -> None:
        path = dry_run_path(self.settings, self.store.path)
        record = {"at": now_text(), "endpoint": self.settings.endpoint, **asdict(request)}
        try:
            with path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        except OSError as e:
            raise InputError(path, f"cannot write the dry-run file ({e.strerror})") from None
        log.info("dry run: would open %s for hazard #%d (written to %s)", request.service_code, request.hazard_id, path)


def _logged_hazards(path: Path) -> set[int]:
    """The hazards a dry-run file holds a would-be request for."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return set()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(path, f"cannot read the dry-run file ({getattr(e, 'strerror', None) or e})") from None
    hazards = set()
    for line in lines:
        try:
            hazards.add(int(json.loads(line)["hazard_id"]))
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a crash: its hazard is written again
    return hazards


def mirror_statuses(store: HazardStore, adapter: TicketAdapter) -> MirrorReport:
    """Resolve tokens, then poll every request not yet closed; record changes on the ticket and in events."""
    report = MirrorReport()
    rows = store.query(
        "SELECT hazard_id, service_request_id, token, status FROM tickets WHERE status != 'closed' ORDER BY hazard_id"
    )
    for row in rows:
        try:
            request_id = row["service_request_id"]
            if request_id is None and row["token"]:
                request_id = adapter.resolve_token(row["token"])
                if request_id is None:
                    continue
                with store.transaction() as conn:
                    conn.execute(
                        "UPDATE tickets SET service_request_id = ?, status = 'open' WHERE hazard_id = ?",
                        (request_id, row["hazard_id"]),
                    )
                    _event(
                        conn, row["hazard_id"], "ticket_token_resolved", f"token {row['token']}: request {request_id}"
                    )
                report.resolved += 1
            remote = adapter.status(request_id)
        except RetryableError as e:
            report.problem = str(e)
            break
        except RejectedError as e:
            log.warning("hazard #%d: status not available: %s", row["hazard_id"], e)
            continue
        current = row["status"] if row["service_request_id"] else "open"
        if remote.status == current:
            continue
        closed = remote.status == "closed"
        with store.transaction() as conn:
            conn.execute(
                "UPDATE tickets SET status = ?, status_notes = ?, closed_at = ? WHERE hazard_id = ?",
                (
                    remote.status,
                    remote.status_notes,
                    (remote.updated or now_text()) if closed else None,
                    row["hazard_id"],
                ),
            )
            detail = f"request {request_id}: {remote.status}" + (
                f": {remote.status_notes}" if remote.status_notes else ""
            )
            _event(conn, row["hazard_id"], "ticket_closed" if closed else "ticket_status", detail)
        report.closed += closed
        report.changed += not closed
    return report


def sync(cfg: Config, db: Path | None = None, limit: int | None = None) -> tuple[DrainReport, MirrorReport | None]:
    """``detector tickets sync``: drain the outbox once, then mirror statuses (mode ``on`` only)."""
    settings = cfg.tickets
    if settings.mode == "off":
        raise ConfigError("tickets.mode", "is off: no requests are sent (set it to dry-run or on)")
    adapter = build_adapter(settings) if settings.mode == "on" else None
    with HazardStore(store_path(cfg, db), cfg.store.lock_timeout_s) as store:
        drained = OutboxSender(store, settings, adapter, street_names(cfg, store)).drain(limit)
        mirrored = mirror_statuses(store, adapter) if adapter is not None and drained.problem is None else None
    return drained, mirrored
