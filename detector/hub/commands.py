"""``detector hub serve``, ``detector hub vehicles add|list|revoke`` and, on a vehicle, ``detector push``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from detector.command_registry import STORE_HELP, AddCommon, Handlers
from detector.config import Config
from detector.errors import InputError


def _cmd_hub(args: argparse.Namespace, cfg: Config) -> int:
    if args.hub_action == "serve":
        return _serve(args, cfg)
    return _vehicles(args, cfg)


def _serve(args: argparse.Namespace, cfg: Config) -> int:
    import logging
    import socket

    import uvicorn

    from detector.http_deadline import DeadlineProtocol
    from detector.hub.app import HubSettings, create_hub_app
    from detector.review.app import AppSettings, create_app
    from detector.review.commands import background_work
    from detector.store import HazardStore
    from detector.store.db import store_path
    from detector.tickets.sender import ticket_sender

    path = store_path(cfg, args.db)
    HazardStore(path, cfg.store.lock_timeout_s).close()  # created and migrated before anything listens
    host, port = str(cfg.hub.host), int(cfg.hub.port)
    try:  # bind first: a busy port is a one-line error, and port 0 can be printed
        sock = socket.create_server((host, port))
    except OSError as e:
        raise InputError(None, f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    logging.getLogger("detector.hub").setLevel(logging.INFO)
    with ticket_sender(cfg, path) as wake:
        review = create_app(AppSettings.from_config(cfg, path))
        app = create_hub_app(HubSettings(path, cfg, wake), review)
        print(f"hub on http://{host}:{sock.getsockname()[1]}/ (uploads: /api/v1/segments); store {path}", flush=True)
        level = "warning" if args.quiet else "info"
        protocol = DeadlineProtocol.limited(cfg.hub.head_timeout_s, None)  # a body: hub.body_timeout_s, the app's check
        config = uvicorn.Config(
            app, log_level=level, access_log=False, http=protocol, timeout_keep_alive=cfg.hub.head_timeout_s
        )
        with background_work(cfg, review, path):
            uvicorn.Server(config).run(sockets=[sock])
    return 0


def _vehicles(args: argparse.Namespace, cfg: Config) -> int:
    from detector.hub.vehicles import add_vehicle, list_vehicles, revoke_vehicle
    from detector.store import HazardStore
    from detector.store.db import store_path

    path = store_path(cfg, args.db)
    with HazardStore(path, cfg.store.lock_timeout_s) as store:
        if args.vehicles_action == "add":
            token = add_vehicle(store, args.name)
            print(f"vehicle {args.name} added to {store.address}. Its token, shown only this once (give it to the "
                  f"vehicle as {cfg.hub.token_env} or in hub.token_file):\n{token}")  # fmt: skip
        elif args.vehicles_action == "revoke":
            revoke_vehicle(store, args.name)
            print(f"vehicle {args.name} revoked: its uploads are refused from now on")
        else:
            print(f"{'vehicle':16} {'state':8} {'segments':>8} {'drives':>6}  last contact")
            for v in list_vehicles(store):
                state = "revoked" if v.revoked_at else "active"
                print(f"{v.name:16} {state:8} {v.segments:8} {v.drives:6}  {v.last_contact_at or 'never'}")
    return 0


def _cmd_push(args: argparse.Namespace, cfg: Config) -> int:
    """Exit status: 0 everything sent; 1 some still queued (the hub unreachable: push again later); 2 some
    drives failed or were refused."""
    from detector.hub.link import hub_token
    from detector.hub.push import push_drives
    from detector.store.db import store_path

    if not cfg.hub.url:
        raise InputError(None, "name the hub: --hub URL (or hub.url)")
    token = hub_token(cfg.hub)
    summary = push_drives(
        args.paths, cfg, store_path(cfg, args.db), cfg.hub.url, token,
        report=lambda line: print(f"detector push: {line}", file=sys.stderr, flush=True),
    )  # fmt: skip
    print("\n".join(summary.lines()))
    if summary.failures or summary.refused:
        return 2
    return 1 if summary.queue and summary.queue.queued else 0


def register(sub: argparse._SubParsersAction, handlers: Handlers, common: AddCommon) -> None:
    """Add ``hub`` and ``push`` to the ``detector`` parser."""
    hub = sub.add_parser(
        "hub",
        help="the council's central hub: vehicles upload segments, it merges them and files 106 requests",
        description="Serve the central store: vehicles upload finished segments (detector push, detector live "
        "--hub), each merged as detector batch merges a drive; the ticket sender files the 106 requests; the "
        "review app is served beside it. Manage the vehicles allowed to upload.",
    )
    actions = hub.add_subparsers(dest="hub_action", required=True, metavar="ACTION")
    serve = actions.add_parser("serve", help="serve uploads, the ticket sender and the review app")
    serve.add_argument("--host", help="address to listen on (default: hub.host, loopback)")
    serve.add_argument("--port", type=int, help="port, 0 for any free one (default: hub.port)")
    serve.add_argument("--db", type=Path, help=STORE_HELP)
    common(serve)
    vehicles = actions.add_parser("vehicles", help="vehicles allowed to upload: add, list, revoke")
    what = vehicles.add_subparsers(dest="vehicles_action", required=True, metavar="ACTION")
    add = what.add_parser("add", help="register a vehicle and print its token, once")
    add.add_argument("name", help="vehicle name (letters, digits, '.', '-', '_')")
    revoke = what.add_parser("revoke", help="refuse a vehicle's uploads from now on")
    revoke.add_argument("name")
    listing = what.add_parser("list", help="each vehicle, its state, what it sent and when it was last heard")
    for p in (add, revoke, listing):
        p.add_argument("--db", type=Path, help=STORE_HELP)
        common(p)
    handlers["hub"] = (_cmd_hub, {"host": "hub.host", "port": "hub.port"})

    push = sub.add_parser(
        "push",
        help="analyse recorded drives on the vehicle and send them to the hub",
        description="Analyse each drive (a video with its GPS track beside it), queue it in the local store and "
        "send the queue to the hub; drives queued before are not analysed again. Waits up to hub.push_wait_s for "
        "the queue to empty. The token comes from $HUB_TOKEN (hub.token_env) or hub.token_file. Exit status: 0 "
        "all sent, 1 some still queued (push again later), 2 some drives failed or were refused.",
    )
    push.add_argument("paths", nargs="+", metavar="VIDEO", help="videos, folders (searched) or globs")
    push.add_argument("--hub", metavar="URL", help="the hub's base URL (default: hub.url)")
    push.add_argument("--db", type=Path, help="the vehicle's local store, which holds the queue; " + STORE_HELP)
    common(push)
    handlers["push"] = (_cmd_push, {"hub": "hub.url"})
