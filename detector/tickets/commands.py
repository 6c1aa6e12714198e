"""Command-line entry points of the ticket stage: ``detector tickets sync`` and ``detector serve-106``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from detector.command_registry import STORE_HELP, AddCommon, Handlers
from detector.config import Config

SYNC_EXIT = (
    "Exit status: 0 when every request due was sent (or none was due); 1 when some are left waiting to retry "
    "(the server unreachable or overloaded, --limit): a later sync sends them; 2 when a person must act: a bad "
    "config or API key, an endpoint that redirects, or requests the server refused (failed: see them in the "
    "review app)."
)


def _cmd_sync(args: argparse.Namespace, cfg: Config) -> int:
    from detector.errors import InputError
    from detector.tickets.outbox import sync

    drained, mirrored = sync(cfg, args.db, args.limit)
    print(f"tickets ({cfg.tickets.endpoint}): {drained.line()}")
    if mirrored is not None:
        print(mirrored.line())
    if drained.operator_must_act:  # the key refused, the endpoint redirected: the requests wait in the outbox
        raise InputError(cfg.tickets.endpoint, drained.problem)
    if drained.failed:
        print(f"detector tickets: requests failed: {drained.failed}; see them in the review app", file=sys.stderr)
        return 2
    stopped = drained.problem or (mirrored is not None and mirrored.problem)
    return 1 if drained.waiting or stopped else 0


def _cmd_serve(args: argparse.Namespace, cfg: Config) -> int:
    from hotline106.server import serve

    serve(cfg.server)
    return 0


def register(
    sub: argparse._SubParsersAction,
    handlers: Handlers,
    common: AddCommon,
) -> None:
    """Add ``tickets sync`` and ``serve-106`` to the ``detector`` parser."""
    tickets = sub.add_parser("tickets", help="106 requests: drain the outbox and mirror request statuses")
    actions = tickets.add_subparsers(dest="tickets_action", required=True, metavar="ACTION")
    sync = actions.add_parser(
        "sync",
        help="send pending requests now, then poll the status of open ones",
        description="Drain the ticket outbox once (tickets.mode on: send; dry-run: write what would be sent), "
        "then resolve tokens and record closed requests. The API key comes from the environment variable "
        "named by tickets.api_key_env or the file in tickets.api_key_file, never from the command line.",
        epilog=SYNC_EXIT,
    )
    sync.add_argument("--db", type=Path, help=STORE_HELP)
    sync.add_argument("--limit", type=int, metavar="N", help="send at most N requests")
    sync.add_argument("--mode", choices=["dry-run", "on"], help="override tickets.mode")
    sync.add_argument("--endpoint", metavar="URL", help="GeoReport v2 base URL (default: tickets.endpoint)")
    common(sync)
    handlers["tickets"] = (_cmd_sync, {"mode": "tickets.mode", "endpoint": "tickets.endpoint"})

    serve = sub.add_parser(
        "serve-106",
        help="run a local Open311 GeoReport v2 server (a 106 hotline for demos and tests)",
        description="Serve GeoReport v2 (JSON and XML) on HOST:PORT, keeping requests in an SQLite file. "
        "POSTs need an api_key listed in the environment variable OPEN311_API_KEYS (comma-separated).",
    )
    serve.add_argument("--host", help="address to listen on (default: server.host in configs/serve-106.yaml, loopback)")
    serve.add_argument("--port", type=int, help="port, 0 for any free one (default: server.port)")
    serve.add_argument("--db", help="the server's own SQLite file (default: server.db)")
    serve.add_argument("--mode", choices=["realtime", "token"], help="answer POSTs with an id, or a token")
    serve.add_argument("--token-delay", type=float, metavar="S", help="token mode: seconds until the id exists")
    serve.add_argument("--post-delay", type=float, metavar="S", help="hold each POST's answer this long")
    serve.add_argument("--jurisdiction-id", help="the only jurisdiction_id accepted (default: any)")
    serve.add_argument("--fail-posts", metavar="CODES", help="answer the first POSTs with these statuses, e.g. 503,429")
    common(serve)
    serve.set_defaults(defaults="serve-106")
    flags = {"token_delay": "token_delay_s", "post_delay": "post_delay_s", "fail_posts": "fail_posts"}
    handlers["serve-106"] = (
        _cmd_serve,
        {k: f"server.{flags.get(k, k)}" for k in ("host", "port", "db", "mode", *flags, "jurisdiction_id")},
    )
