"""Exports for signed-in users: the filtered list as GeoJSON, GeoPackage or CSV, and negatives for retraining."""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from detector.export import FORMATS, check_layers, export_layers, write_layers
from detector.review.deps import Language, Problem, Settings, SignedIn, StoreOpener
from detector.review.filters import FilterParams
from detector.review.names import held_words
from detector.store import review as decisions

router = APIRouter()
MEDIA = {"geojson": "application/geo+json", "gpkg": "application/geopackage+sqlite3", "csv": "text/csv"}


@router.get("/api/export")
def export(
    _: SignedIn, format: str, query: FilterParams, settings: Settings, stores: StoreOpener, messages: Language
) -> Response:
    if format not in FORMATS:
        raise Problem(400, "Export format: geojson, gpkg or csv.")
    filt = query.hazard_filter()
    with stores.opened() as store:
        words = partial(held_words, messages)  # why a hazard is held, in the reader's language
        layers = export_layers(store, filt, check_layers(None, format), settings.streets, words)
    with tempfile.TemporaryDirectory(prefix="review-export-") as folder:
        path = Path(folder) / f"hazards.{format}"
        write_layers(layers, path, format)
        data = path.read_bytes()
    return Response(
        data, media_type=MEDIA[format], headers={"Content-Disposition": f'attachment; filename="hazards.{format}"'}
    )


@router.get("/api/negatives")
def negatives(_: SignedIn, stores: StoreOpener) -> dict[str, Any]:
    """Rejected hazards' sightings (frame path under the evidence folder, box): negatives for retraining."""
    with stores.opened() as store:
        return {"evidence_dir": store.evidence_dir.name, "examples": decisions.negative_examples(store)}
