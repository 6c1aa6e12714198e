"""The morning dashboard: its page, its figures and the service manager's briefing."""

from __future__ import annotations

import time
from typing import Any

from babel.dates import format_date
from fastapi import APIRouter, Request
from fastapi.responses import Response

from detector.review import i18n
from detector.review.briefing import briefing, yesterday_in
from detector.review.dashboard import dashboard
from detector.review.deps import Language, MaybeSession, Settings, SignedIn, StoreOpener
from detector.review.fleet import fleet
from detector.review.pages import signed_in_page

router = APIRouter()


@router.get("/dashboard", include_in_schema=False)
def dashboard_page(request: Request, session: MaybeSession, messages: Language, settings: Settings) -> Response:
    day = format_date(yesterday_in(settings.timezone), "full", locale=i18n.BABEL_LOCALES[messages.language])
    silent_h = settings.review.vehicle_silent_h
    return signed_in_page("dashboard.html", request, session, messages, yesterday=day, silent_h=silent_h)


@router.get("/api/dashboard")
def dashboard_data(_: SignedIn, settings: Settings, stores: StoreOpener) -> dict[str, Any]:
    with stores.opened() as store:
        figures = dashboard(store, settings.timezone, settings.neighbourhoods)
        figures["briefing"] = briefing(
            store, settings.timezone, settings.review.service_level_days, settings.service_codes, settings.streets
        )
        figures["fleet"] = fleet(store, settings.timezone, settings.review.vehicle_silent_h, time.time())
    return figures
