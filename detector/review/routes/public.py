"""The public status map, for anyone: its page and its data (see :mod:`detector.review.public`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from detector.review.basemap import basemap
from detector.review.deps import Language, Settings, StoreOpener
from detector.review.pages import page
from detector.review.public import public_hazards
from detector.store.tracks import drive_tracks

router = APIRouter()


@router.get("/public", include_in_schema=False)
def public_page(request: Request, messages: Language) -> Response:
    return page("public.html", request, messages)


@router.get("/api/public/hazards")
def public_data(settings: Settings, stores: StoreOpener) -> dict[str, Any]:
    with stores.opened() as store:
        data = public_hazards(store)
        tracks = drive_tracks(store)
    # The streets driven, without drive names or times, draw the map when there is no basemap.
    data["streets"] = [f["geometry"] for f in tracks["features"]]
    data["map"] = settings.map_config
    # The city's street layer (names only: no patrol times), without the covers or other utility layers.
    data["basemap"] = basemap(settings.streets.features if settings.streets else None, (), None)
    return data
