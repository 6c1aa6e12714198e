"""Errors a user can cause, reported as one line that names the file and the problem."""

from __future__ import annotations

import os
from pathlib import Path


def path_text(path: str | Path) -> str:
    """A path as text that prints and stores anywhere: bytes of the name that are not UTF-8 shown as ``\\xNN``.

    The OS accepts any bytes in a name; Python keeps the undecodable ones as lone surrogates, which UTF-8
    output, SQLite and OpenCV refuse (the last by crashing).

    >>> path_text(os.fsdecode(b"bad\\xff\\xfename.mp4"))
    'bad\\\\xff\\\\xfename.mp4'
    """
    try:
        raw = os.fsencode(path)
    except UnicodeEncodeError:  # a surrogate no file name can hold: the text came from elsewhere
        raw = str(path).encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


def shown(path: str | Path) -> str:
    """A user's path as it prints on one line: :func:`path_text`, quoted as Python quotes a string only when
    it holds a character that is not printable (a newline, a tab, an escape, a right-to-left override), so a
    file named ``a\\nb.mp4`` cannot break, or forge, a line of output.

    >>> shown("drive 1.mp4"), shown("pat\\nrol.mp4"), shown(os.fsdecode(b"bad\\xff.mp4"))
    ('drive 1.mp4', "'pat\\\\nrol.mp4'", 'bad\\\\xff.mp4')
    """
    text = path_text(path)
    return text if text.isprintable() else repr(text)


class InputError(Exception):
    """Bad user input: a file that cannot be read, a malformed track, a wrong config value.

    The CLI prints ``str(error)`` on one line and exits non-zero, without a traceback.

    >>> str(InputError("drive.gpx", "no track points"))
    'drive.gpx: no track points'
    """

    def __init__(self, source: str | Path | None, problem: str) -> None:
        self.source = shown(source) if source is not None else None
        self.problem = problem
        super().__init__(f"{self.source}: {problem}" if self.source else problem)


class ConfigError(InputError):
    """A configuration key with a bad value; names the key."""

    def __init__(self, key: str, problem: str, source: str | Path | None = None) -> None:
        self.key = key
        where = f"{shown(source)}: " if source else ""
        named = key if key.isprintable() else repr(key)[1:-1]  # a newline in a YAML key would break the line
        InputError.__init__(self, None, f"{where}config key '{named}': {problem}")
