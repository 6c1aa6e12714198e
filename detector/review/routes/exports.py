"""Exports for signed-in users: the filtered list as GeoJSON, GeoPackage or CSV, and negatives for retraining."""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from detector.export import FORMATS, LAYERS, check_layers, export_layers, sign_rows, write_layers
from detector.review.deps import Language, Problem, Settings, SignedIn, StoreOpener
from detector.review.filters import FilterParams
from detector.review.names import held_words
from detector.store import review as decisions

router = APIRouter()
MEDIA = {"geojson": "application/geo+json", "gpkg": "application/geopackage+sqlite3", "csv": "text/csv"}


@router.get("/api/export")
def export(
    _: SignedIn, format: str, query: FilterParams, settings: Settings, stores: StoreOpener, messages: Language,
    layer: str | None = None,
) -> Response:  # fmt: skip
    """The filtered hazards (a GeoPackage: every layer), or the one ``layer`` asked for (``signs``: the sign
    inventory), as the command's export writes them."""
    if format not in FORMATS:
        raise Problem(400, "Export format: geojson, gpkg or csv.")
    if layer is not None and layer not in LAYERS:
        raise Problem(400, f"Export layer: {', '.join(LAYERS)}.")
    filt = query.hazard_filter()
    with stores.opened() as store:
        words = partial(held_words, messages)  # why a hazard is held, in the reader's language
        layers = export_layers(store, filt, check_layers([layer] if layer else None, format), settings.streets, words)
    name = layer if layer == "signs" else "hazards"
    with tempfile.TemporaryDirectory(prefix="review-export-") as folder:
        path = Path(folder) / f"{name}.{format}"
        write_layers(layers, path, format)
        data = path.read_bytes()
    return Response(
        data, media_type=MEDIA[format], headers={"Content-Disposition": f'attachment; filename="{name}.{format}"'}
    )


@router.get("/api/signs")
def signs(_: SignedIn, settings: Settings, stores: StoreOpener) -> dict[str, Any]:
    """The sign inventory as GeoJSON points for the map's signs layer (standing and missing); the raw frame's
    path stays inside the store, as a hazard's does."""
    with stores.opened() as store:
        rows = sign_rows(store, settings.streets)
    features = []
    for r in rows:
        properties = {k: v for k, v in r.items() if k != "photo_path"}
        features.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
                         "properties": properties})  # fmt: skip
    return {"type": "FeatureCollection", "features": features}


@router.get("/api/negatives")
def negatives(_: SignedIn, stores: StoreOpener) -> dict[str, Any]:
    """Rejected hazards' sightings (frame path under the evidence folder, box): negatives for retraining."""
    with stores.opened() as store:
        return {"evidence_dir": store.evidence_dir.name, "examples": decisions.negative_examples(store)}
