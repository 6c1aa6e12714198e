"""``detector live``: the patrol vehicle's run, camera and gpsd in, hazards and 106 requests out."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from detector.command_registry import STORE_HELP, AddCommon, Handlers
from detector.config import Config

if TYPE_CHECKING:
    from detector.hub.link import QueueCounts
    from detector.live.runner import LiveReport
    from detector.pipeline.frame_step import FrameDetector


def _cmd_live(args: argparse.Namespace, cfg: Config) -> int:
    from detector.live.gpsd import parse_address
    from detector.live.runner import run_live
    from detector.store.db import store_path
    from detector.tickets.sender import ticket_sender

    parse_address(cfg.live.gpsd)  # a malformed address is the user's one-line error, before anything
    path = store_path(cfg, args.db)
    if cfg.hub.url:
        return _live_for_hub(args, cfg, path)
    with ticket_sender(cfg, path) as wake:
        report = run_live(cfg, args.db, on_merged=wake)
    print(report.summary())
    return 0


def _live_for_hub(args: argparse.Namespace, cfg: Config, path: Path) -> int:
    report, left = live_for_hub(cfg, path)
    print(report.summary())
    print(left.line() + ("; the rest goes on the next run" if left.queued else ""))
    return 0


def live_for_hub(cfg: Config, path: Path, detect: FrameDetector | None = None) -> tuple[LiveReport, QueueCounts]:
    """A fleet vehicle: each segment queued for the hub (which merges it and files the 106 requests), none here;
    the report and what was still queued at the end. ``detect`` replaces the model (tests)."""
    from detector.hub.link import HubSender, hub_token, live_forwarder, wait_for_queue
    from detector.live.runner import live_setup, run_live
    from detector.store import HazardStore

    token = hub_token(cfg.hub)
    HazardStore(path, cfg.store.lock_timeout_s).close()  # created and migrated before the sender's thread opens it
    setup = live_setup(cfg)
    forward = live_forwarder(setup.camera)
    with HubSender(path, cfg, cfg.hub.url, token) as sender:
        report = run_live(cfg, path, detect, on_merged=sender.wake, forward=forward, setup=setup)
        left = wait_for_queue(sender, path, cfg.hub.timeout_s, cfg.store.lock_timeout_s)
    return report, left


def register(sub: argparse._SubParsersAction, handlers: Handlers, common: AddCommon) -> None:
    """Add ``live`` to the ``detector`` parser."""
    live = sub.add_parser(
        "live",
        help="run on the patrol vehicle: camera + gpsd in, hazards and 106 requests out",
        description="Sample the camera by distance driven (position from gpsd), detect, and merge hazards into the "
        "store every live.segment_s seconds or live.segment_m metres; the ticket sender drains the outbox when "
        "there is connectivity. Survives the camera or gpsd going away. Stop with SIGINT or SIGTERM.",
    )
    live.add_argument("--camera", metavar="SOURCE", help="/dev/video0, a device number, an RTSP URL or a video file")
    live.add_argument("--gpsd", metavar="HOST:PORT", help="gpsd address (default: live.gpsd)")
    live.add_argument("--loop", action="store_true", default=None, help="a video file: play it again at its end")
    live.add_argument("--speed", type=float, metavar="X", help="a video file: playback speed (default 1 = real time)")
    live.add_argument("--hub", metavar="URL", help="send each segment to the fleet hub, which files the 106 requests "
                      "(token: $HUB_TOKEN or hub.token_file; default: hub.url)")  # fmt: skip
    live.add_argument("--db", type=Path, help=STORE_HELP)
    common(live)
    handlers["live"] = (
        _cmd_live,
        {
            "camera": "live.camera",
            "gpsd": "live.gpsd",
            "loop": "live.loop",
            "speed": "live.file_speed",
            "hub": "hub.url",
        },
    )
