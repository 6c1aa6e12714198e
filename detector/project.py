"""Where the project's own files are: configs/, models/ and the sample footage, beside the ``detector`` package."""

from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]  # the checkout (or the installed source tree, in an editable install)
