"""``detector batch``: many drives into one store, on local processes or a Dask cluster."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from detector.command_registry import STORE_HELP, AddCommon, Handlers
from detector.config import Config


def _cmd_batch(args: argparse.Namespace, cfg: Config) -> int:
    """Exit status: 0 every drive merged or already there; 1 some failed; 2 all failed (or bad arguments)."""
    from detector.batch.jobs import find_jobs
    from detector.batch.runner import run_batch
    from detector.errors import InputError
    from detector.store.db import store_path
    from detector.tickets.sender import ticket_sender

    if not args.paths and not args.index:
        raise InputError(None, "name drives: videos, folders or globs, or --index FILE")
    jobs = find_jobs(args.paths, args.index)
    workers = int(cfg.batch.workers) or os.cpu_count() or 1
    path = store_path(cfg, args.db)
    with ticket_sender(cfg, path) as wake:
        summary = run_batch(
            jobs,
            cfg,
            args.db,
            workers,
            args.scheduler,
            report=lambda line: print(f"detector batch: {line}", file=sys.stderr, flush=True),
            on_merged=wake,
        )
    print("\n".join(summary.lines()))
    if summary.failed and summary.failed == summary.drives:
        return 2
    return 1 if summary.failed else 0


def register(sub: argparse._SubParsersAction, handlers: Handlers, common: AddCommon) -> None:
    """Add ``batch`` to the ``detector`` parser."""
    batch = sub.add_parser(
        "batch",
        help="reprocess many drives into one store, on local processes or a Dask cluster",
        description="Process every drive (a video with its GPS track beside it by name, or as listed in an index "
        "CSV video,gps[,gps_offset_s]) into one store. Drives already in the store (same content) are skipped, so "
        "an interrupted batch resumes; a bad drive is reported on one line and the batch goes on. Exit status: 0 "
        "when every drive was merged or already there, 1 when some failed, 2 when all failed.",
    )
    batch.add_argument("paths", nargs="*", metavar="PATH_OR_GLOB", help="videos, folders (searched) or globs")
    batch.add_argument("--index", type=Path, metavar="FILE", help="CSV with columns video,gps[,gps_offset_s]")
    batch.add_argument("--workers", type=int, metavar="N", help="local worker processes (default: batch.workers)")
    batch.add_argument("--scheduler", metavar="ADDRESS", help="run on this Dask cluster, e.g. tcp://10.0.0.5:8786")
    batch.add_argument("--db", type=Path, help=STORE_HELP)
    common(batch)
    handlers["batch"] = (_cmd_batch, {"workers": "batch.workers"})
