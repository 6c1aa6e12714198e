"""Errors a user can cause, reported as one line that names the file and the problem."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad user input: a file that cannot be read, a malformed track, a wrong config value.

    The CLI prints ``str(error)`` on one line and exits non-zero, without a traceback.

    >>> str(InputError("drive.gpx", "no track points"))
    'drive.gpx: no track points'
    """

    def __init__(self, source: str | Path | None, problem: str) -> None:
        self.source = str(source) if source is not None else None
        self.problem = problem
        super().__init__(f"{self.source}: {problem}" if self.source else problem)


class ConfigError(InputError):
    """A configuration key with a bad value; names the key."""

    def __init__(self, key: str, problem: str, source: str | Path | None = None) -> None:
        self.key = key
        where = f"{source}: " if source else ""
        InputError.__init__(self, None, f"{where}config key '{key}': {problem}")
