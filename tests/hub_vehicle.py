"""A vehicle's ``detector push`` with the simulator's oracle as detector, as a process of its own:
``python tests/hub_vehicle.py LOCAL_DB HUB_URL VIDEO... [--set KEY=VALUE]...``; the token from ``$HUB_TOKEN``.
The oracle is handed in here, as the batch tests hand it to run_batch, so that push itself has no test hook."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from detector.config import load_config
from detector.hub.link import hub_token
from detector.hub.push import push_drives
from detector.simulate.oracle import oracle_for


def main(argv: list[str]) -> int:
    overrides = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    rest = [a for i, a in enumerate(argv) if a != "--set" and (i == 0 or argv[i - 1] != "--set")]
    db, url, *videos = rest
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)
    cfg = load_config(overrides=["run.progress=false", *overrides])
    summary = push_drives(videos, cfg, Path(db), url, hub_token(cfg.hub), detector=oracle_for)
    print("\n".join(summary.lines()), flush=True)
    return 1 if summary.failures or summary.refused or (summary.queue and summary.queue.queued) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
