"""The vehicle's link to the hub: finished segments wait in the local store's ``hub_queue``, and a sender thread
sends them in order.

A segment is queued in one transaction, so a vehicle that stops (or loses power) loses nothing: the next run
sends what is still queued. The hub's answer decides: 200/201 with the hub's receipt for this segment: sent; 400,
409 or 413 in the hub's own words (JSON; the hub refuses the segment's content): refused for good (the reason is
kept in the queue, the next segment goes). Anything else (5xx, 401/403, a redirect, 404, 429, a proxy's page or
its own 413, no connection) says nothing about the segment's content: the same segment again later, after an
exponential backoff from ``hub.retry.base_s`` to ``hub.retry.max_s``. A segment answered 5xx (or a proxy's
400/409/413) ``hub.set_aside_after`` times in a row is set aside (still queued, ``set_aside_at`` set) so that
the segments behind it go; set-aside segments are tried again after the others. Redirects are never followed:
the token goes only to ``hub.url``. The token is read from the environment or a file, never the command line,
and never logged.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from detector.camera import CameraModel
from detector.config import Config
from detector.config.pipeline import HubConfig
from detector.errors import InputError
from detector.hub.payload import QUEUED_HEADER, digest, segment_payload
from detector.pipeline.analysis import DriveAnalysis
from detector.store import HazardStore
from detector.store.db import now_text

log = logging.getLogger(__name__)
SEGMENTS_PATH = "/api/v1/segments"
CONTENT_REFUSALS = (400, 409, 413)  # the hub refuses the segment itself: sending it again cannot help
# The next segment to send: the oldest not set aside; then the set-aside ones, the least tried first.
NEXT_SEGMENT = (
    "SELECT id, segment_id, payload FROM hub_queue WHERE state = 'queued'"
    " ORDER BY set_aside_at IS NOT NULL, CASE WHEN set_aside_at IS NULL THEN id END, attempts, id LIMIT 1"
)


def hub_token(hub: HubConfig) -> str:
    """The vehicle's token: ``$HUB_TOKEN`` (named by ``hub.token_env``), else the first line of ``hub.token_file``."""
    token = os.environ.get(hub.token_env, "").strip()
    if not token and hub.token_file:
        try:
            token = Path(hub.token_file).read_text(encoding="utf-8").splitlines()[0].strip()
        except (OSError, IndexError, UnicodeDecodeError) as e:
            raise InputError(hub.token_file, f"cannot read the hub token ({e})") from None
    if not token:
        raise InputError(None, f"no hub token: set {hub.token_env} or hub.token_file")
    return token


def enqueue_segment(
    store: HazardStore, segment_id: str, analysis: DriveAnalysis, camera: CameraModel, evidence_dir: Path | None
) -> bool:
    """Queue a finished segment, seen through ``camera``, for the hub (one transaction); False if it was queued
    before."""
    body = segment_payload(segment_id, analysis, camera, evidence_dir)
    with store.transaction() as conn:
        cur = conn.execute(
            "INSERT OR IGNORE INTO hub_queue (segment_id, digest, payload, state, created_at)"
            " VALUES (?, ?, ?, 'queued', ?)",
            (segment_id, digest(body), body, now_text()),
        )
    return cur.rowcount > 0


def live_forwarder(camera: CameraModel) -> Callable[[HazardStore, DriveAnalysis], None]:
    """``detector live --hub``'s hand-over: each finished live segment into the queue, its evidence frames read
    from the local store's folder."""

    def forward(store: HazardStore, analysis: DriveAnalysis) -> None:
        enqueue_segment(store, analysis.record.id, analysis, camera, store.evidence_dir)

    return forward


def queued_segment(store: HazardStore, segment_id: str) -> bool:
    return bool(store.query("SELECT 1 FROM hub_queue WHERE segment_id = ?", (segment_id,)))


@dataclass(frozen=True)
class QueueCounts:
    queued: int
    sent: int
    refused: int
    set_aside: int = 0  # of ``queued``: the hub failed on them repeatedly; retried after the others

    def line(self) -> str:
        return (f"hub queue: {self.sent} sent, {self.queued} still queued, {self.refused} refused, "
                f"{self.set_aside} set aside")  # fmt: skip


def queue_counts(store: HazardStore) -> QueueCounts:
    counts = {"queued": 0, "sent": 0, "refused": 0, "set_aside": 0}
    for state, aside, n in store.query(
        "SELECT state, set_aside_at IS NOT NULL, count(*) FROM hub_queue GROUP BY state, set_aside_at IS NOT NULL"
    ):
        counts[state] += n
        if state == "queued" and aside:
            counts["set_aside"] += n
    return QueueCounts(**counts)


def refusals(store: HazardStore, segment_ids: list[str]) -> list[str]:
    """Why the hub refused those of ``segment_ids`` it refused."""
    rows = store.query("SELECT segment_id, last_error FROM hub_queue WHERE state = 'refused' ORDER BY id")
    wanted = set(segment_ids)
    return [f"{r[0]}: {r[1]}" for r in rows if r[0] in wanted]


class HubSender:
    """A background thread that sends the queue to the hub at ``url``, oldest first; :meth:`wake` after each
    segment queued, :meth:`stop` to end (what is still queued stays for the next run)."""

    def __init__(self, store_path: Path, cfg: Config, url: str, token: str) -> None:
        self.store_path = store_path
        self.lock_timeout_s = cfg.store.lock_timeout_s
        self.hub = cfg.hub
        self.url = url.rstrip("/") + SEGMENTS_PATH
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.idle = threading.Event()  # set while the queue holds nothing to send
        self.failures = 0  # tries in a row that were not answered with a receipt or a refusal of the segment
        self._server_errors: dict[int, int] = {}  # queue row -> 5xx (or a proxy's 4xx) answers in a row
        self.tried: set[int] = set()  # queue rows tried since the sender started
        self._retry_after_s = 0.0  # what the last answer asked for (Retry-After), up to hub.retry.max_s
        self._thread = threading.Thread(target=self._run, name="hub-sender", daemon=True)

    def start(self) -> HubSender:
        self._thread.start()
        return self

    def wake(self) -> None:
        self.idle.clear()
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()

    def __enter__(self) -> HubSender:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _backoff(self) -> float:
        retry = self.hub.retry
        return min(retry.max_s, retry.base_s * 2 ** (self.failures - 1)) * random.uniform(0.5, 1.0)

    def _run(self) -> None:
        with HazardStore(self.store_path, self.lock_timeout_s) as store:
            session = requests.Session()
            while not self._stop.is_set():
                rows = store.query(NEXT_SEGMENT)
                if not rows:
                    self.idle.set()
                    self._wake.wait(1.0)
                    self._wake.clear()
                    continue
                if not self._send(store, session, *rows[0]):
                    self._wake.wait(max(self._backoff(), self._retry_after_s))
                    self._wake.clear()

    def _send(self, store: HazardStore, session: requests.Session, row_id: int, segment_id: str, body: bytes) -> bool:
        """Send one segment; False if it is to be tried again later (after a backoff)."""
        self.tried.add(row_id)
        queued = store.query("SELECT COUNT(*) FROM hub_queue WHERE state = 'queued'")[0][0]
        headers = {**self._headers, QUEUED_HEADER: str(queued)}  # the hub's dashboard shows what is left
        try:
            # Never redirected: the token goes to hub.url only, and a redirect means hub.url is out of date.
            answer = session.post(
                self.url, data=body, headers=headers, timeout=self.hub.timeout_s, allow_redirects=False
            )
        except requests.RequestException as e:
            return self._retry_later(store, row_id, segment_id, f"hub unreachable ({type(e).__name__})")
        status, detail = answer.status_code, _detail(answer)
        self._retry_after_s = _retry_after(answer, self.hub.retry.max_s)
        said = _hub_json(answer)  # the hub answers in JSON; a proxy's or portal's page is not the hub's word
        if status in (200, 201) and said.get("segment_id") == segment_id:
            self._done(store, row_id, "sent", None)
            log.info("hub: %s sent (%s)", segment_id, detail)
            return True
        if status in CONTENT_REFUSALS and "detail" in said:
            self._done(store, row_id, "refused", f"{status}: {detail}")
            log.warning("hub: %s refused by the hub (%d: %s); not sent again", segment_id, status, detail)
            return True
        if 300 <= status < 400:
            where = answer.headers.get("location", "?")[:200]
            reason = f"the hub URL redirects ({status} to {where}); not followed: set hub.url to the hub's address"
        elif status in (401, 403):  # the vehicle's token, not this segment: kept until it is put right
            reason = f"hub refused this vehicle ({status}: {detail})"
        elif status in (200, 201):
            reason = f"hub answered {status} without a receipt for this segment (not the hub, or a proxy's page)"
        elif status in CONTENT_REFUSALS:  # e.g. a proxy's own size limit (nginx: 1 MB by default)
            reason = f"answered {status} by something other than the hub (a proxy's limit?): {detail}"
        else:  # 5xx, 404, 429, a proxy's refusal: nothing about the segment's content
            reason = f"hub answered {status}: {detail}"
        if status >= 500 or status in CONTENT_REFUSALS:  # perhaps this segment's own: it must not block the rest
            self._server_errors[row_id] = self._server_errors.get(row_id, 0) + 1
            if self._server_errors[row_id] >= self.hub.set_aside_after:
                self._server_errors.pop(row_id)
                self._retry_later(store, row_id, segment_id, reason)
                self._set_aside(store, row_id, segment_id)
                return True  # the next segment goes now
        else:
            self._server_errors.pop(row_id, None)
        return self._retry_later(store, row_id, segment_id, reason)

    def _done(self, store: HazardStore, row_id: int, state: str, error: str | None) -> None:
        self.failures = 0
        self._server_errors.pop(row_id, None)
        sent_at = now_text() if state == "sent" else None
        with store.transaction() as conn:
            conn.execute(
                "UPDATE hub_queue SET state = ?, sent_at = ?, attempts = attempts + 1, last_error = ?,"
                " set_aside_at = NULL WHERE id = ?",
                (state, sent_at, error, row_id),
            )

    def _set_aside(self, store: HazardStore, row_id: int, segment_id: str) -> None:
        with store.transaction() as conn:
            conn.execute(
                "UPDATE hub_queue SET set_aside_at = COALESCE(set_aside_at, ?) WHERE id = ?", (now_text(), row_id)
            )
        log.warning(
            "hub: %s set aside after %d failed answers in a row; the segments behind it go first",
            segment_id,
            self.hub.set_aside_after,
        )

    def _retry_later(self, store: HazardStore, row_id: int, segment_id: str, reason: str) -> bool:
        self.failures += 1
        with store.transaction() as conn:
            conn.execute("UPDATE hub_queue SET attempts = attempts + 1, last_error = ? WHERE id = ?", (reason, row_id))
        log.warning("hub: %s not sent: %s; trying again later", segment_id, reason)
        return False


def _retry_after(answer: requests.Response, most_s: float) -> float:
    """The answer's ``Retry-After`` in seconds (a 429, a 503), up to ``most_s``; 0 without one (or a date)."""
    value = answer.headers.get("retry-after", "").strip()
    return min(float(value), most_s) if value.isdigit() and len(value) <= 9 else 0.0


def _hub_json(answer: requests.Response) -> dict:
    """The answer's JSON object, as the hub answers; empty for anything else (a proxy's or portal's page)."""
    try:
        said = answer.json()
    except ValueError:
        return {}
    return said if isinstance(said, dict) else {}


def _detail(answer: requests.Response) -> str:
    try:
        detail = answer.json().get("detail", "")
    except (ValueError, AttributeError):
        detail = answer.text
    return str(detail).splitlines()[0][:300] if detail else answer.reason or ""


def wait_for_queue(sender: HubSender, store_path: Path, timeout_s: float, lock_timeout_s: float) -> QueueCounts:
    """Wait until nothing is left to send but set-aside segments, or ``timeout_s``; what the queue holds then."""
    deadline = time.monotonic() + timeout_s
    with HazardStore(store_path, lock_timeout_s) as store:
        while time.monotonic() < deadline:
            left = store.query("SELECT id, set_aside_at IS NOT NULL FROM hub_queue WHERE state = 'queued'")
            if all(aside and row_id in sender.tried for row_id, aside in left):
                break  # all sent, or only what the hub keeps failing on, tried again in this run
            sender.idle.wait(min(0.5, max(0.0, deadline - time.monotonic())))
        return queue_counts(store)
