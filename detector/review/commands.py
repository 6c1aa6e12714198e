"""Command-line entry points of the review app: ``detector review`` and ``detector users add``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from detector.command_registry import STORE_HELP, AddCommon, Handlers
from detector.config import Config
from detector.errors import InputError


def _check_port(port: Any) -> int:
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise InputError(None, f"port {port!r}: expected a whole number from 0 (any free port) to 65535")
    return port


def _cmd_review(args: argparse.Namespace, cfg: Config) -> int:
    import socket

    import uvicorn

    from detector.review.app import AppSettings, server_config
    from detector.review.auth import has_users
    from detector.store import HazardStore

    section = cfg.review
    port = _check_port(section.port)
    settings = AppSettings.from_config(cfg, args.db)
    with HazardStore(settings.db, settings.lock_timeout_s) as store:
        nobody = not has_users(store)
    host = str(section.host)
    try:  # bind first, so that a busy port or a bad address is a one-line error, and port 0 can be printed
        sock = socket.create_server((host, port))
    except OSError as e:
        raise InputError(None, f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    bound = sock.getsockname()[1]
    print(f"review app on http://{host}:{bound}/ (public map: http://{host}:{bound}/public); store {settings.db}")
    if nobody:  # the app opens on a sign-in page that nobody can pass yet
        print(
            f"no users yet: make one to sign in with, the password on standard input: "
            f"detector users add NAME --role reviewer --db {settings.db}"
        )
    sys.stdout.flush()
    config = server_config(settings, "warning" if args.quiet else "info")
    with background_work(cfg, config.app, settings.db):
        uvicorn.Server(config).run(sockets=[sock])
    return 0


@contextmanager
def background_work(cfg: Config, app, db: Path) -> Iterator[None]:
    """While the review app (``app``, alone or in the hub) serves: the photos people will open made ahead, with the
    app's own photo maker (one redaction at a time), and the morning briefing sent when one is configured."""
    from detector.review.photos import PhotoPreparer
    from detector.store import HazardStore

    schedule = morning_briefing(cfg, db)
    preparer = PhotoPreparer(lambda: HazardStore(db, cfg.store.lock_timeout_s), app.state.photos).start()
    try:
        yield
    finally:
        preparer.stop()
        if schedule is not None:
            schedule.stop()


def morning_briefing(cfg: Config, db: Path):
    """Start sending the morning briefing at ``review.briefing.at`` when a mail server and lists are configured
    (:class:`~detector.review.mail.BriefingSchedule`); None when not."""
    from detector.review.mail import BriefingSchedule
    from detector.store import HazardStore

    if not BriefingSchedule.wanted(cfg):
        return None
    section = cfg.review.briefing
    print(f"morning briefing: each day at {section.at} ({cfg.tickets.timezone}) through {section.smtp_host}")
    return BriefingSchedule(cfg, lambda: HazardStore(db, cfg.store.lock_timeout_s)).start()


def _cmd_briefing(args: argparse.Namespace, cfg: Config) -> int:
    from detector.review.mail import briefing_messages, send_all
    from detector.store import HazardStore
    from detector.store.db import existing_store

    db = existing_store(cfg, args.db)
    with HazardStore(db, cfg.store.lock_timeout_s) as store:
        mails = briefing_messages(cfg, store)
    if not mails:
        raise InputError(None, "config key 'review.briefing.recipients': no department's list to send to")
    if args.dry_run:
        for mail in mails:
            print(f"To: {mail['To']}\nSubject: {mail['Subject']}\n\n{mail.get_content()}")
        return 0
    delivery = send_all(mails, cfg.review.briefing)
    print(f"morning briefing sent to {delivery.sent} of {len(mails)} departments' lists")
    for to in delivery.failed:
        print(f"not sent (refused by the mail server): {to}")
    return 0 if not delivery.failed else 1


def _cmd_users(args: argparse.Namespace, cfg: Config) -> int:
    from detector.review.auth import add_user
    from detector.store import HazardStore
    from detector.store.db import existing_store

    db = existing_store(cfg, args.db)
    password = sys.stdin.readline().rstrip("\r\n")
    with HazardStore(db, cfg.store.lock_timeout_s) as store:
        user = add_user(store, args.name, args.role, password)
    print(f"user {user.name} ({user.role}) saved in {db}")
    return 0


def register(
    sub: argparse._SubParsersAction,
    handlers: Handlers,
    common: AddCommon,
) -> None:
    """Add ``review``, ``briefing send`` and ``users add`` to the ``detector`` parser."""
    review = sub.add_parser(
        "review",
        help="serve the GIS review web app (map, evidence, decisions, dashboard, public status map)",
        description="Serve the review app over the hazard store. Users sign in (see `detector users add`); "
        "the read-only public map is at /public.",
    )
    review.add_argument("--host", help="address to listen on (default: review.host, loopback)")
    review.add_argument("--port", type=int, help="port, 0 for any free one (default: review.port)")
    review.add_argument("--db", type=Path, help=STORE_HELP)
    common(review)
    handlers["review"] = (_cmd_review, {"host": "review.host", "port": "review.port"})

    brief = sub.add_parser(
        "briefing",
        help="e-mail the morning briefing to each department now (review and hub serve send it each morning)",
        description="Send the service manager's morning briefing (yesterday's finds, requests past their "
        "service-level target) to each department's list in review.briefing.recipients, over SMTP with TLS "
        "(review.briefing). The password comes from the variable review.briefing.password_env names. Exit 0 "
        "when every list got it, 1 when the server refused one.",
    )
    brief_actions = brief.add_subparsers(dest="briefing_action", required=True, metavar="ACTION")
    send = brief_actions.add_parser("send", help="send this morning's briefing now")
    send.add_argument("--dry-run", action="store_true", help="print the messages instead of sending them")
    send.add_argument("--db", type=Path, help=STORE_HELP)
    common(send)
    handlers["briefing"] = (_cmd_briefing, {})

    users = sub.add_parser("users", help="review app users")
    actions = users.add_subparsers(dest="users_action", required=True, metavar="ACTION")
    add = actions.add_parser(
        "add",
        help="create a user (or replace their role and password); the password is read from standard input",
        description="Create a review app user, or replace an existing user's role and password (which signs "
        "them out). The password is the first line of standard input, never a command-line argument.",
    )
    add.add_argument("name", help="user name (shown in the audit trail)")
    add.add_argument("--role", required=True, help="reviewer (decides) or viewer (read-only)")
    add.add_argument("--db", type=Path, help=STORE_HELP)
    common(add)
    handlers["users"] = (_cmd_users, {})
