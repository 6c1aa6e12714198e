"""Evidence photos: a hazard's blurred photo for signed-in users, and the one a sent 106 request links to."""

from __future__ import annotations

import re

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from detector.review.deps import MaybeSession, PhotoMaker, Problem, SignedIn, StoreOpener
from detector.review.photos import resolve_evidence

router = APIRouter()
PHOTO_NAME = re.compile(r"^tickets/hazard_(\d+)\.jpe?g$")


@router.get("/api/hazards/{hazard_id}/photo")
def photo(_: SignedIn, hazard_id: int, stores: StoreOpener, photos: PhotoMaker) -> Response:
    with stores.opened() as store:
        path = photos.for_hazard(store, hazard_id)
    if path is None:
        raise Problem(404, "No evidence photo for this hazard.")
    return FileResponse(path, media_type="image/jpeg")


@router.get("/evidence/{relative:path}")
def evidence(relative: str, session: MaybeSession, stores: StoreOpener, photos: PhotoMaker) -> Response:
    """A blurred photo under the evidence folder: for signed-in users (a hazard's photo not made yet, as a dry
    run's request links to, is made now), or linked from a sent 106 request."""
    with stores.opened() as store:
        path = resolve_evidence(store.evidence_dir, relative)
        if path is None and session is not None and (wanted := PHOTO_NAME.match(relative)):
            path = photos.for_hazard(store, int(wanted[1]))
        if path is None:
            raise Problem(404, "Not found.")
        if session is None:
            match = PHOTO_NAME.match(path.relative_to(store.evidence_dir.resolve()).as_posix())
            if not match or not store.query("SELECT 1 FROM tickets WHERE hazard_id = ?", (int(match[1]),)):
                raise Problem(404, "Not found.")
    return FileResponse(path, media_type="image/jpeg")
