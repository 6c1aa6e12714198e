"""The review web app (FastAPI): map and list, evidence, decisions, dashboard, exports, and the public map.

:func:`create_app` assembles the routers of :mod:`detector.review.routes`, the security headers and
the error answers; :mod:`detector.review.deps` gives the routes the store and who is signed in. Pages
need a signed-in user except ``/public`` and the blurred photo a 106 request links to; decisions need
a reviewer and the session's CSRF token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from detector.errors import InputError
from detector.review import auth, i18n, names
from detector.review.deps import Problem, Stores, messages_for
from detector.review.pages import STATIC
from detector.review.photos import Photos
from detector.review.routes import dashboard, exports, hazards, languages, photos, public, sessions
from detector.review.settings import AppSettings
from detector.store import review as decisions

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import uvicorn

__all__ = ["AppSettings", "create_app", "server_config"]
ROUTERS = (
    sessions.router,
    hazards.router,
    photos.router,
    dashboard.router,
    public.router,
    exports.router,
    languages.router,
)


def server_config(settings: AppSettings, log_level: str = "info") -> uvicorn.Config:
    """How uvicorn serves the app. ``X-Forwarded-For`` names the client only on connections from
    ``trusted_proxies``: uvicorn by default believes it from loopback, from where anyone on the machine could
    set it and sign in as many addresses (the sign-in limit per address would then limit nobody)."""
    import uvicorn

    proxies = list(settings.review.trusted_proxies)
    return uvicorn.Config(
        create_app(settings), log_level=log_level, access_log=False,
        proxy_headers=bool(proxies), forwarded_allow_ips=proxies or None,
    )  # fmt: skip


def create_app(settings: AppSettings) -> FastAPI:
    """The app over the store at ``settings.db``."""
    app = FastAPI(title="Road hazards review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.stores = Stores(settings.db, settings.lock_timeout_s)
    app.state.photos = Photos(settings.evidence)
    review = settings.review
    app.state.throttle = auth.SignInThrottle(
        review.sign_in_failures, review.sign_in_window_min * 60, review.sign_in_name_wait_max_s
    )
    app.state.csp = _csp(settings.tile_url, review.wms_url)
    app.state.messages = i18n.load_all()
    app.middleware("http")(_security_headers)
    app.add_exception_handler(HTTPException, _problem)
    app.add_exception_handler(decisions.DecisionError, _conflict)
    app.add_exception_handler(InputError, _bad_input)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in ROUTERS:
        app.include_router(router)
    return app


def _csp(tile_url: str | None, wms_url: str | None = None) -> str:
    images = "'self' data:"
    if tile_url:  # the basemap's own server, with a {s} subdomain as a wildcard
        parts = urlsplit(tile_url.replace("{s}", "x"))
        host = parts.netloc.replace("x.", "*.", 1) if "{s}." in tile_url else parts.netloc
        images += f" {parts.scheme}://{host}"
    if wms_url:  # the orthophoto's WMS
        parts = urlsplit(wms_url)
        images += f" {parts.scheme}://{parts.netloc}"
    return (
        f"default-src 'self'; img-src {images}; style-src 'self' 'unsafe-inline'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )


async def _security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    response = await call_next(request)
    response.headers["Content-Security-Policy"] = request.app.state.csp
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


async def _problem(request: Request, e: Exception) -> JSONResponse:
    assert isinstance(e, HTTPException)
    detail = messages_for(request).gettext(e.detail, **e.values) if isinstance(e, Problem) else e.detail
    return JSONResponse({"detail": detail}, status_code=e.status_code, headers=e.headers)


async def _conflict(request: Request, e: Exception) -> JSONResponse:
    assert isinstance(e, decisions.DecisionError)
    messages = messages_for(request)
    values = {
        key: names.name(messages, names.DECISION_VALUES[key], value) if key in names.DECISION_VALUES
        else str(value) if isinstance(value, int) else value  # hazard numbers, not quantities
        for key, value in e.values.items()
    }  # fmt: skip
    return JSONResponse({"detail": messages.gettext(e.message, **values)}, status_code=409)


async def _bad_input(request: Request, e: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(e)}, status_code=400)
