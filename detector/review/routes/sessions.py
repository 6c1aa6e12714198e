"""Signing in and out, and who is signed in: the sign-in page, ``/api/login``, ``/api/logout``, ``/api/me``."""

from __future__ import annotations

import logging
from math import ceil
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from detector.export import STATUSES
from detector.review import auth
from detector.review.deps import COOKIE, Deciding, Language, Problem, Settings, SignedIn, StoreOpener, Throttle
from detector.review.pages import page

log = logging.getLogger(__name__)
router = APIRouter()


class Login(BaseModel):
    name: str = Field(max_length=64)
    password: str = Field(max_length=auth.MAX_PASSWORD)


DEFAULT_PAGE = "/"


def same_origin_path(target: str | None) -> str:
    r"""Where to go after signing in: ``target`` if it is a path on this site, else the default page.

    Browsers drop tabs and line breaks from a URL and read a backslash as a slash, so ``/<tab>/host`` and
    ``/\host`` lead to another host: tabs and line breaks are removed first, and the target must then have no
    scheme and no host, and start with one ``/`` followed by neither ``/`` nor ``\``.

    >>> [same_origin_path(t) for t in ("/hazards/2?lang=en", "/\t/evil.example:8/x", "//evil", "/\\evil", "https://x")]
    ['/hazards/2?lang=en', '/', '/', '/', '/']
    """
    if not target:
        return DEFAULT_PAGE
    cleaned = "".join(c for c in target if c not in "\t\r\n").strip()
    parts = urlsplit(cleaned.replace("\\", "/"))
    if parts.scheme or parts.netloc or not cleaned.startswith("/") or cleaned[1:2] in ("/", "\\"):
        return DEFAULT_PAGE
    if any(ord(c) < 0x20 or c == "\x7f" for c in cleaned) or len(cleaned) > 2000:
        return DEFAULT_PAGE
    return cleaned


@router.get("/login", include_in_schema=False)
def login_page(request: Request, messages: Language) -> Response:
    return page("login.html", request, messages, next=same_origin_path(request.query_params.get("next")))


@router.post("/api/login")
def login(body: Login, request: Request, settings: Settings, stores: StoreOpener, throttle: Throttle) -> JSONResponse:
    address = request.client.host if request.client else "?"
    wait = throttle.wait_s(address, body.name)
    if wait > 0:  # refused before the password is even checked: no guessing through the wait
        log.warning("review: sign-in for %r from %s refused for %.0f s (too many failures)", body.name, address, wait)
        raise Problem(
            429,
            "Too many failed sign-ins; try again in {seconds} s.",
            {"Retry-After": str(ceil(wait))},
            seconds=ceil(wait),
        )
    with stores.opened() as store:
        user = auth.authenticate(store, body.name, body.password)
        if user is None:
            throttle.failed(address, body.name)
            log.warning("review: failed sign-in for %r from %s", body.name, address)
            raise Problem(401, "Wrong name or password.")
        token, new = auth.open_session(store, user, settings.session_lifetime_s)
    throttle.succeeded(address, body.name)
    log.info("review: %s (%s) signed in", user.name, user.role)
    response = JSONResponse({"name": user.name, "role": user.role, "csrf": new.csrf})
    response.set_cookie(
        COOKIE, token, max_age=int(settings.session_lifetime_s), httponly=True, samesite="strict",
        secure=settings.review.secure_cookie, path="/",
    )  # fmt: skip
    return response


@router.post("/api/logout")
def logout(_: Deciding, request: Request, stores: StoreOpener) -> JSONResponse:
    with stores.opened() as store:
        auth.close_session(store, request.cookies.get(COOKIE))
    response = JSONResponse({"ok": True})
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/api/me")
def me(found: SignedIn, settings: Settings) -> dict[str, Any]:
    return {
        "name": found.user.name,
        "role": found.user.role,
        "csrf": found.csrf,
        "map": {"tile_url": settings.tile_url, "attribution": settings.review.tile_attribution},
        "classes": list(settings.classes),
        "statuses": list(STATUSES),
    }
