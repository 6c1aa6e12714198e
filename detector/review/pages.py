"""The app's HTML pages: static files, behind the sign-in page unless public."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from detector.review.auth import Session

STATIC = Path(__file__).resolve().parent / "static"


def page(name: str) -> Response:
    return FileResponse(STATIC / name, media_type="text/html")


def signed_in_page(name: str, request: Request, session: Session | None) -> Response:
    """The page, or to the sign-in page (which comes back here) for a stranger."""
    if session is None:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
    return page(name)
