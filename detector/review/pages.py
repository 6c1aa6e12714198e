"""The app's HTML pages: Jinja templates in the request's language, behind the sign-in page unless public.

Autoescape is on: a template's values (the language switch's links keep the page's own query) are text.
A valid ``?lang=`` also sets the language cookie, so the page's own API calls and the next pages follow it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined

from detector.review import i18n
from detector.review.auth import Session
from detector.review.i18n import Messages

STATIC = Path(__file__).resolve().parent / "static"
TEMPLATES = Environment(
    loader=PackageLoader("detector.review", "templates"), autoescape=True, undefined=StrictUndefined
)


def _switch(request: Request) -> list[dict[str, str]]:
    """One link per language: this page, its query kept, ``lang`` set."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    return [
        {"code": code, "name": name, "href": f"{request.url.path}?{urlencode([*kept, ('lang', code)])}"}
        for code, name in i18n.AUTONYMS.items()
    ]


def page(name: str, request: Request, messages: Messages, **context: Any) -> Response:
    settings = request.app.state.settings
    html = TEMPLATES.get_template(name).render(
        _=messages.gettext, lang=messages.language, dir=messages.direction, locale=messages.page_locale,
        timezone=settings.timezone,
        languages=_switch(request), **context,
    )  # fmt: skip
    response = HTMLResponse(html)
    if request.query_params.get("lang") in i18n.LANGUAGES:  # not a session secret: a preference only
        response.set_cookie(
            i18n.COOKIE, messages.language, max_age=i18n.COOKIE_MAX_AGE_S, httponly=True, samesite="lax",
            secure=settings.review.secure_cookie, path="/",
        )  # fmt: skip
    return response


def signed_in_page(
    name: str, request: Request, session: Session | None, messages: Messages, **context: Any
) -> Response:
    """The page, or to the sign-in page (which comes back here) for a stranger."""
    if session is None:
        chosen = request.query_params.get("lang")
        keep = f"&lang={chosen}" if chosen in i18n.LANGUAGES else ""  # a 106 link's language survives the sign-in
        return RedirectResponse(f"/login?next={quote(request.url.path)}{keep}", status_code=303)
    return page(name, request, messages, **context)
