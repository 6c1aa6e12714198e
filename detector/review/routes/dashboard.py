"""The morning dashboard: its page and its figures."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from detector.review.dashboard import dashboard
from detector.review.deps import MaybeSession, Settings, SignedIn, StoreOpener
from detector.review.pages import signed_in_page

router = APIRouter()


@router.get("/dashboard", include_in_schema=False)
def dashboard_page(request: Request, session: MaybeSession) -> Response:
    return signed_in_page("dashboard.html", request, session)


@router.get("/api/dashboard")
def dashboard_data(_: SignedIn, settings: Settings, stores: StoreOpener) -> dict[str, Any]:
    with stores.opened() as store:
        return dashboard(store, settings.timezone, settings.neighbourhoods)
