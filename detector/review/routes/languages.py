"""The page scripts' messages and names: ``/i18n/<lang>.json``, from the same ``.po`` catalogs as the pages."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from detector.review import i18n, names
from detector.review.deps import Problem

router = APIRouter()


@router.get("/i18n/{language}.json")
def catalog(language: str, request: Request) -> dict[str, Any]:
    if language not in i18n.LANGUAGES:
        raise Problem(404, "No such language.")
    messages = request.app.state.messages[language]
    return {
        "language": language, "direction": messages.direction, "messages": messages.texts,
        "names": names.translated(messages),
    }  # fmt: skip
