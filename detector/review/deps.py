"""The review app's FastAPI dependencies: its settings and services from ``app.state``, and who is signed in.

Every request opens the store for its own duration, in the thread that uses it (SQLite connections
stay in one thread; WAL lets the pipeline write meanwhile): a dependency hands out :class:`Stores`,
the endpoint opens one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from detector.review import auth, i18n
from detector.review.i18n import Messages
from detector.review.photos import Photos
from detector.review.settings import AppSettings
from detector.store import HazardStore

COOKIE = "review_session"


class Stores:
    """Opens the hazard store for one use."""

    def __init__(self, db: Path, lock_timeout_s: float) -> None:
        self.db, self.lock_timeout_s = db, lock_timeout_s

    @contextmanager
    def opened(self) -> Iterator[HazardStore]:
        store = HazardStore(self.db, self.lock_timeout_s)
        try:
            yield store
        finally:
            store.close()


def _settings(request: Request) -> AppSettings:
    return request.app.state.settings


def _stores(request: Request) -> Stores:
    return request.app.state.stores


def _photos(request: Request) -> Photos:
    return request.app.state.photos


def _throttle(request: Request) -> auth.SignInThrottle:
    return request.app.state.throttle


def messages_for(request: Request) -> Messages:
    """The messages in the request's language (see :mod:`detector.review.i18n`)."""
    chosen = i18n.choose_language(
        request.query_params.get("lang"),
        request.cookies.get(i18n.COOKIE),
        request.headers.get("accept-language"),
        request.app.state.settings.review.language,
    )
    return request.app.state.messages[chosen]


class Problem(HTTPException):
    """An error answer whose message is translated: ``message`` is a msgid, ``values`` fill its placeholders."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, **values: object) -> None:
        super().__init__(status, message, headers)
        self.values = values


Language = Annotated[Messages, Depends(messages_for)]
Settings = Annotated[AppSettings, Depends(_settings)]
StoreOpener = Annotated[Stores, Depends(_stores)]
PhotoMaker = Annotated[Photos, Depends(_photos)]
Throttle = Annotated[auth.SignInThrottle, Depends(_throttle)]


def _session(request: Request, stores: StoreOpener) -> auth.Session | None:
    with stores.opened() as store:
        return auth.find_session(store, request.cookies.get(COOKIE))


MaybeSession = Annotated[auth.Session | None, Depends(_session)]


def _signed_in(found: MaybeSession) -> auth.Session:
    if found is None:
        raise Problem(401, "Sign in first.")
    return found


SignedIn = Annotated[auth.Session, Depends(_signed_in)]


def _deciding(found: SignedIn, request: Request) -> auth.Session:
    """A state-changing request: signed in, with the session's CSRF token."""
    if not auth.csrf_ok(found, request.headers.get("x-csrf-token")):
        raise Problem(403, "Missing or wrong CSRF token.")
    return found


Deciding = Annotated[auth.Session, Depends(_deciding)]


def _reviewer(found: Deciding) -> auth.Session:
    """A decision: a state-changing request by a reviewer."""
    if not found.user.can_decide:
        raise Problem(403, "{name} is a viewer: decisions need a reviewer.", name=found.user.name)
    return found


Reviewer = Annotated[auth.Session, Depends(_reviewer)]
