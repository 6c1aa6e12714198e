"""Types for the modules that add sub-commands to the ``detector`` parser: ``register(sub, handlers, common)``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

Handler = Callable[[argparse.Namespace, dict[str, Any]], int]
# command -> (handler, {argparse dest: config key} for flags that are config overrides)
Handlers = dict[str, tuple[Handler, dict[str, str]]]
AddCommon = Callable[[argparse.ArgumentParser], None]
STORE_HELP = "hazard store (default: store.path, else hazards.db in run.out_dir)"
