"""A finished segment as it travels from a vehicle to the hub: versioned JSON, evidence frames as base64 JPEG.

:func:`segment_payload` builds it from a :class:`~detector.pipeline.analysis.DriveAnalysis`; the hub checks it whole
(:class:`SegmentPayload`, every field typed and bounded, nothing unknown) and only then rebuilds the analysis
(:func:`to_analysis`) for :func:`~detector.pipeline.analysis.commit_analysis`. The digest over the exact bytes sent
identifies the segment: the same segment sent twice is merged once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from detector.bounds import check_time
from detector.camera import LENSES, CameraModel
from detector.geo import LocalFrame
from detector.pipeline.analysis import DriveAnalysis
from detector.pipeline.dedup.across_drives import FramePoses
from detector.pipeline.sampler import SamplingStats
from detector.pipeline.signs import DriveSign, PlateFix
from detector.records import DriveHazard, DriveRecord, Sighting
from detector.store.db import evidence_folder

VERSION = 1
QUEUED_HEADER = "X-Queued-Segments"  # sent with each upload: segments the vehicle still has queued, this one too
# Every number is bounded, not only finite: a time of 1e300 or a position 1e300 m away, once stored, breaks each
# page and export that turns it into a date or a place (detector.bounds holds the shared time and place checks).
MAX_LOCAL_M = 100_000.0  # a segment's hazards and ranges lie within this of its local frame's origin
MAX_COUNT = 10**9  # frames, detections: also what a SQLite INTEGER holds with room to spare
MAX_FRAMES = 200_000
MAX_SIGNS = 10_000  # judged sign plates in one segment


def _utc(value: float) -> float:
    return check_time(value, "value")


Utc = Annotated[float, Field(allow_inf_nan=False), AfterValidator(_utc)]
Metres = Annotated[float, Field(ge=-MAX_LOCAL_M, le=MAX_LOCAL_M, allow_inf_nan=False)]
Distance = Annotated[float, Field(ge=0, le=1e8, allow_inf_nan=False)]  # metres driven: up to 100,000 km
Seconds = Annotated[float, Field(ge=0, le=1e7, allow_inf_nan=False)]  # a segment's durations: up to 115 days
Degrees = Annotated[float, Field(ge=-720, le=720, allow_inf_nan=False)]  # a heading, in whichever turn it comes
Pixel = Annotated[float, Field(ge=-1e5, le=1e5, allow_inf_nan=False)]
Lat = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Lon = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
Text = Annotated[str, Field(max_length=1000, pattern=r"^[^\x00-\x1f\x7f]*$")]
Id = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]  # one line in any log
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RecordModel(_Strict):
    id: Id
    content_hash: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    video: Text
    track: Text
    started_utc: Utc
    ended_utc: Utc
    distance_m: Distance
    frames_sampled: Count
    camera: Text
    trip: Text = ""


class SightingModel(_Strict):
    frame_index: Count
    utc: Utc
    odometer_m: Annotated[float, Field(ge=-1e8, le=1e8, allow_inf_nan=False)]
    class_name: Id
    confidence: Annotated[float, Field(ge=0, le=1)]
    lat: Lat
    lon: Lon
    range_m: Metres
    lateral_m: Metres
    uncertainty_m: Annotated[float, Field(ge=0.001, le=MAX_LOCAL_M, allow_inf_nan=False)]
    width_m: Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)]
    bbox: tuple[Pixel, Pixel, Pixel, Pixel]
    vehicle_lat: Lat
    vehicle_lon: Lon
    heading: Degrees
    far: bool


class HazardModel(_Strict):
    class_name: Id
    origin: tuple[Lat, Lon]  # the drive's local frame the positions are in
    sightings: Annotated[list[SightingModel], Field(min_length=1)]
    xy: list[tuple[Metres, Metres]]

    @model_validator(mode="after")
    def _one_position_per_sighting(self) -> HazardModel:
        if len(self.xy) != len(self.sightings):
            raise ValueError("xy needs one position per sighting")
        if any(s.class_name != self.class_name for s in self.sightings):
            raise ValueError("a hazard's sightings must all be of its class")
        return self


class PlateFixModel(_Strict):
    """A judged plate's fix (:class:`~detector.pipeline.signs.PlateFix`); a plate judged ``unknown`` never travels."""

    x: Metres
    y: Metres
    height_m: Annotated[float, Field(ge=-100, le=100, allow_inf_nan=False)]
    tilt_deg: Annotated[float, Field(ge=0, le=90, allow_inf_nan=False)] | None
    state: Literal["standing", "leaning", "down"]
    views: Annotated[int, Field(ge=1, le=MAX_FRAMES)]
    triangulated: bool
    parallax_deg: Annotated[float, Field(ge=0, le=180, allow_inf_nan=False)]


class SignModel(_Strict):
    """One judged sign plate (:class:`~detector.pipeline.signs.DriveSign`): its track, placed at its fix."""

    hazard: HazardModel
    fix: PlateFixModel


class PosesModel(_Strict):
    lat: Annotated[list[Lat], Field(max_length=MAX_FRAMES)]
    lon: Annotated[list[Lon], Field(max_length=MAX_FRAMES)]
    heading: Annotated[list[Degrees], Field(max_length=MAX_FRAMES)]
    width: Annotated[int, Field(gt=0, le=20_000)]
    height: Annotated[int, Field(gt=0, le=20_000)]

    @model_validator(mode="after")
    def _same_length(self) -> PosesModel:
        if not len(self.lat) == len(self.lon) == len(self.heading):
            raise ValueError("lat, lon and heading need one value per frame")
        return self


class StatsModel(_Strict):
    video_s: Seconds
    covered_s: Seconds
    frames_decoded: Count
    frames_sampled: Count
    distance_m: Distance
    stationary_s: Seconds


Angle = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Pixels = Annotated[int, Field(gt=0, le=16384)]
Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class CameraProfile(_Strict):
    """The vehicle's camera profile (``drive.camera``): the hub places and counts misses with it, not its own."""

    width: Pixels
    height: Pixels
    hfov_deg: Annotated[float, Field(gt=0, lt=180, allow_inf_nan=False)]
    focal_px: Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)] | None
    height_m: Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)]
    pitch_deg: Angle
    roll_deg: Angle
    yaw_deg: Angle
    offset_forward_m: Annotated[float, Field(ge=-20, le=20, allow_inf_nan=False)]
    offset_right_m: Annotated[float, Field(ge=-20, le=20, allow_inf_nan=False)]
    name: Text
    principal_px: tuple[Pixel, Pixel] | None
    lens: Literal[LENSES]
    distortion: Annotated[list[Annotated[float, Field(ge=-1e3, le=1e3, allow_inf_nan=False)]], Field(max_length=8)]
    mask: Annotated[list[tuple[Share, Share, Share, Share]], Field(max_length=64)]

    def camera(self) -> CameraModel:
        values = self.model_dump()
        values["distortion"], values["mask"] = tuple(self.distortion), tuple(self.mask)
        return CameraModel(**values)


class EvidenceModel(_Strict):
    name: Annotated[str, Field(max_length=300)]
    jpeg: str  # base64

    def data(self) -> bytes:
        return base64.b64decode(self.jpeg, validate=True)


class SegmentPayload(_Strict):
    """Version 1 of a segment upload."""

    version: Literal[1]
    segment_id: Id
    record: RecordModel
    camera: CameraProfile
    hazards: list[HazardModel]
    poses: PosesModel
    stats: StatsModel
    detections: Count
    video_start_utc: Utc
    start_source: Text
    masked_fraction: Annotated[float, Field(ge=0, le=1)]
    evidence: dict[Annotated[int, Field(ge=0, le=MAX_COUNT)], EvidenceModel]
    # The sign inventory: absent (None) where the vehicle's model has no sign class, as in payloads from before it.
    signs: Annotated[list[SignModel], Field(max_length=MAX_SIGNS)] | None = None

    @field_validator("evidence")
    @classmethod
    def _jpegs(cls, evidence: dict[int, EvidenceModel]) -> dict[int, EvidenceModel]:
        for index, frame in evidence.items():
            try:
                data = frame.data()
            except (binascii.Error, ValueError):
                raise ValueError(f"evidence frame {index}: not base64") from None
            if not data.startswith(b"\xff\xd8"):
                raise ValueError(f"evidence frame {index}: not a JPEG")
        return evidence

    @model_validator(mode="after")
    def _consistent(self) -> SegmentPayload:
        if self.hazards and not self.poses.lat:
            raise ValueError("hazards without the frames' poses")
        if self.signs is not None and not self.poses.lat:
            raise ValueError("signs without the frames' poses")
        folder = evidence_folder(self.record.id)
        for index, frame in self.evidence.items():
            # Written under the hub's evidence folder: only the drive's own folder, one plain file name.
            parts = frame.name.split("/")
            if len(parts) != 2 or parts[0] != folder or parts[1] != f"{index:08d}.jpg":
                raise ValueError(f"evidence frame {index}: name {frame.name!r} is not {folder}/{index:08d}.jpg")
        return self


class PayloadError(ValueError):
    """An upload that is not a valid segment: its one-line reason."""


def _sighting_dict(s: Sighting) -> dict:
    values = {k: getattr(s, k) for k in SightingModel.model_fields}
    values["bbox"] = [float(v) for v in s.bbox]
    return {k: float(v) if isinstance(v, np.floating) else v for k, v in values.items()}


def _hazard_dict(h: DriveHazard) -> dict:
    return {
        "class_name": h.class_name,
        "origin": [h.local.lat0, h.local.lon0],
        "sightings": [_sighting_dict(s) for s in h.sightings],
        "xy": [[float(x), float(y)] for x, y in h.xy],
    }


def _sign_dict(sign: DriveSign) -> dict:
    fix = {k: getattr(sign.fix, k) for k in PlateFixModel.model_fields}
    return {"hazard": _hazard_dict(sign.hazard), "fix": {k: float(v) if isinstance(v, np.floating) else v
                                                         for k, v in fix.items()}}  # fmt: skip


def segment_payload(segment_id: str, analysis: DriveAnalysis, camera: CameraModel, evidence_dir: Path | None) -> bytes:
    """The upload for a finished segment; evidence frames from ``analysis.evidence_jpeg`` or, written by the
    vehicle's own store, from ``evidence_dir``. Only the frames its sightings (hazards' and signs') use travel.
    Without a sign inventory (``analysis.signs`` None) there is no ``signs`` key: the bytes, and so the digest,
    are those of a payload from before signs travelled."""
    signs = analysis.signs or []
    used = {s.frame_index for h in [*analysis.hazards, *(sign.hazard for sign in signs)] for s in h.sightings}
    evidence = {}
    for index in sorted(used & set(analysis.evidence)):
        data = analysis.evidence_jpeg.get(index)
        if data is None and evidence_dir is not None and (evidence_dir / analysis.evidence[index]).is_file():
            data = (evidence_dir / analysis.evidence[index]).read_bytes()
        if data is not None:
            evidence[str(index)] = {"name": analysis.evidence[index], "jpeg": base64.b64encode(data).decode()}
    record = analysis.record
    body = {
        "version": VERSION,
        "segment_id": segment_id,
        "record": {k: getattr(record, k) for k in RecordModel.model_fields},
        "camera": {k: getattr(camera, k) for k in CameraProfile.model_fields},
        "hazards": [_hazard_dict(h) for h in analysis.hazards],
        "poses": {
            "lat": analysis.poses.lat.tolist(),
            "lon": analysis.poses.lon.tolist(),
            "heading": analysis.poses.heading.tolist(),
            "width": int(analysis.poses.width),
            "height": int(analysis.poses.height),
        },
        "stats": {k: getattr(analysis.stats, k) for k in StatsModel.model_fields},
        "detections": analysis.detections,
        "video_start_utc": analysis.video_start_utc,
        "start_source": analysis.start_source,
        "masked_fraction": float(analysis.masked_fraction),
        "evidence": evidence,
    }
    if analysis.signs is not None:
        body["signs"] = [_sign_dict(sign) for sign in analysis.signs]
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def parse_payload(body: bytes) -> SegmentPayload:
    """The checked upload, or :class:`PayloadError` naming the first problem."""
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PayloadError(f"not JSON ({e})") from None
    except RecursionError:
        raise PayloadError("not JSON (nested too deep)") from None
    if not isinstance(raw, dict):
        raise PayloadError("not a JSON object")
    if raw.get("version") != VERSION:
        raise PayloadError(f"unknown payload version {raw.get('version')!r} (this hub reads {VERSION})")
    try:
        return SegmentPayload.model_validate(raw)
    except ValueError as e:
        errors = getattr(e, "errors", lambda: [])()
        if errors:
            first = errors[0]
            where = ".".join(str(p) for p in first["loc"]) or "payload"
            raise PayloadError(f"{where}: {first['msg']} ({len(errors)} problems)") from None
        raise PayloadError(str(e)) from None


def owned_id(vehicle: str, vehicle_id: str) -> str:
    """A drive, trip or segment id as the hub keeps it: the vehicle's own id under the vehicle's name, so that no
    vehicle can name (and so take) another's. ``vehicle`` is a plain name (no '/').

    >>> owned_id("van-2", "live-van3-20260101T080000Z-ab12")
    'van-2/live-van3-20260101T080000Z-ab12'
    """
    return f"{vehicle}/{vehicle_id}"


def to_analysis(payload: SegmentPayload, vehicle: str | None = None) -> DriveAnalysis:
    """The analysis to merge; evidence bytes go in ``evidence_jpeg`` for commit_analysis to write. With
    ``vehicle`` (at the hub), the drive and its trip are that vehicle's (:func:`owned_id`), and so is the folder
    its evidence frames go to."""
    record = payload.record
    if vehicle is not None:
        trip = owned_id(vehicle, record.trip) if record.trip else ""
        record = record.model_copy(update={"id": owned_id(vehicle, record.id), "trip": trip})
    drive_id = record.id
    folder = evidence_folder(drive_id)
    hazards = [_drive_hazard(h, drive_id) for h in payload.hazards]
    signs = None
    if payload.signs is not None:
        signs = [DriveSign(_drive_hazard(s.hazard, drive_id), PlateFix(**s.fix.model_dump())) for s in payload.signs]
    poses = payload.poses
    return DriveAnalysis(
        record=DriveRecord(**record.model_dump()),
        hazards=hazards,
        poses=FramePoses(
            np.array(poses.lat, dtype=float),
            np.array(poses.lon, dtype=float),
            np.array(poses.heading, dtype=float),
            poses.width,
            poses.height,
        ),
        stats=SamplingStats(**payload.stats.model_dump()),
        detections=payload.detections,
        sightings=[s for h in hazards for s in h.sightings],
        video_start_utc=payload.video_start_utc,
        start_source=payload.start_source,
        evidence={i: f"{folder}/{i:08d}.jpg" for i in payload.evidence},  # the names checked: the same files
        evidence_jpeg={i: e.data() for i, e in payload.evidence.items()},
        masked_fraction=payload.masked_fraction,
        signs=signs,
    )


def _drive_hazard(h: HazardModel, drive_id: str) -> DriveHazard:
    hazard = DriveHazard(h.class_name, LocalFrame(*h.origin))
    for s, (x, y) in zip(h.sightings, h.xy, strict=True):
        hazard.add(Sighting(drive_id=drive_id, **{**s.model_dump(), "bbox": tuple(s.bbox)}), x, y)
    return hazard
