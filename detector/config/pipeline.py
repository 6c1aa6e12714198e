"""The pipeline's configuration (``configs/default.yaml``): one section per stage, as the data flows.

>>> from detector.config import load_config
>>> cfg = load_config(overrides=["sampling.spacing_m=5", "detect.conf=0.3"])
>>> cfg.sampling.spacing_m, cfg.detect.conf
(5.0, {'pothole': 0.3, 'fallen_sign': 0.3})
"""

from __future__ import annotations

import ipaddress
import string
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from detector.config.sections import (
    Fraction,
    KeyProblem,
    NonNegative,
    Port,
    Positive,
    PositiveInt,
    Section,
    Threads,
    open_mapping,
    per_class,
)
from detector.tickets.describe import HazardFacts, template_fields

LANGUAGES = ("he", "en")  # the 106 request's description blocks (detector.tickets.describe)
TICKET_FIELDS = template_fields(HazardFacts.example(), "http://review")  # what tickets.attributes may name


def check_template(template: str, fields: dict[str, Any]) -> str:
    """A ``str.format`` template that formats with these sample fields, else ValueError naming the problem."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
        unknown = sorted({n.split(".")[0].split("[")[0] for n in names} - set(fields))
        if unknown:
            raise ValueError(f"unknown field {', '.join(unknown)} (fields: {', '.join(fields)})")
        template.format(**fields)
    except (ValueError, IndexError, KeyError) as e:
        raise ValueError(f"{template!r}: {e}") from None
    return template


class DriveConfig(Section):
    gps_offset_s: Annotated[float, Field(ge=-1e9, le=1e9)]  # a camera clock reset to 2000 is ~27 years off
    video_start: Literal["auto", "container", "track"]
    id: str | None
    camera: str  # a profile's path, or auto (detector.calibration.auto)
    camera_estimate_m: Annotated[float, Field(gt=0, le=100_000)]


class GpsConfig(Section):
    max_gap_s: Positive
    max_speed_mps: Positive


class SamplingConfig(Section):
    spacing_m: Positive
    min_speed_mps: NonNegative
    sharpness_step: PositiveInt
    min_seek_gap_s: NonNegative
    decoder_threads: Threads
    prefetch_frames: Annotated[int, Field(ge=0, le=1000)]
    focus_m: NonNegative
    focus_spacing_m: Positive
    focus_conf: Fraction


class RoadRegionConfig(Section):
    """The road region, fractions of the frame; ``top`` may be ``horizon`` (from the camera profile)."""

    top: Fraction | Literal["horizon"]
    bottom: Fraction
    left: Fraction
    right: Fraction

    @model_validator(mode="after")
    def _ordered(self) -> RoadRegionConfig:
        top = 0.0 if self.top == "horizon" else self.top
        if not (top < self.bottom and self.left < self.right):
            raise ValueError("fractions must satisfy 0 <= top < bottom <= 1 and 0 <= left < right <= 1")
        return self


class DetectConfig(Section):
    model: str
    backend: Literal["onnx", "torch"]
    device: str
    threads: Threads
    classes: list[str]
    conf: dict[str, Fraction] = per_class()
    iou: Fraction
    imgsz: Annotated[int, Field(gt=0, le=8192)]
    roi: RoadRegionConfig
    roi_above_horizon_deg: NonNegative
    tiles: Annotated[int, Field(gt=0, le=16)]
    flip: bool

    @field_validator("classes")
    @classmethod
    def _some(cls, classes: list[str]) -> list[str]:
        if not classes:
            raise ValueError("needs at least one class")
        return classes


class MaskConfig(Section):
    """Static pixels: what stays put while the vehicle moves (a stamp, a logo, the bonnet)."""

    learn: bool
    frames: PositiveInt
    spacing_m: Positive
    min_frames: PositiveInt
    relearn_every: PositiveInt
    edge_level: Positive
    still_level: Positive
    max_fraction: Fraction


class LocalizeConfig(Section):
    max_range_m: Positive
    gps_sigma_m: Positive
    heading_sigma_deg: NonNegative
    pitch_sigma_deg: NonNegative
    far_uncertainty_factor: Positive
    flat_classes: tuple[str, ...]
    plate_width_m: Positive
    max_plate_width_m: Positive
    min_plate_px: NonNegative
    max_contact_range_m: Positive
    plate_classes: tuple[str, ...]
    plate_min_px: NonNegative


class HoldNearConfig(Section):
    layer: str | None
    radius_m: Positive
    classes: list[str]


class DedupConfig(Section):
    radius_m: dict[str, Positive] = open_mapping()
    track_gap_m: Positive
    confirm_sightings: dict[str, PositiveInt] = per_class()
    confirm_evidence: dict[str, Fraction] = per_class()
    miss_limit: PositiveInt
    view_min_range_m: NonNegative
    view_max_range_m: Positive
    min_frames_in_view: PositiveInt
    ride_along_follow: Annotated[float, Field(gt=0, le=2)]
    ride_along_travel_m: Positive
    ride_along_range_m: Positive
    hold_near: HoldNearConfig

    @property
    def view_range_m(self) -> tuple[float, float]:
        """The ranges at which a stored hazard is in good view (a pass without a sighting counts as a miss)."""
        return self.view_min_range_m, self.view_max_range_m

    def radius(self, class_name: str) -> float:
        """The merge radius of ``class_name`` (the largest one for a class without its own)."""
        return self.radius_m.get(class_name, max(self.radius_m.values()))


class SignsConfig(Section):
    """The sign inventory (:mod:`detector.pipeline.signs`): what a plate's triangulated height and tilt say."""

    class_name: str
    standing_height_m: tuple[NonNegative, Positive]
    down_height_m: NonNegative
    lean_deg: Annotated[float, Field(gt=0, le=90)]
    plate_aspect: Positive
    min_box_px: NonNegative
    min_views: PositiveInt
    min_parallax_deg: NonNegative
    match_m: Positive
    map_within_m: Positive
    missing_after: PositiveInt
    fallen_gate: bool

    @model_validator(mode="after")
    def _heights_in_order(self) -> SignsConfig:
        low, high = self.standing_height_m
        if not self.down_height_m < low < high:
            raise KeyProblem(
                "signs.standing_height_m",
                f"expected down_height_m < low < high, got {self.down_height_m}, {low}, {high}",
            )
        return self


class StreetsConfig(Section):
    layer: str | None
    name_field: str | None
    max_distance_m: Positive


class StoreConfig(Section):
    path: str | None
    lock_timeout_s: Positive


class RunConfig(Section):
    out_dir: str
    progress: bool


class BatchConfig(Section):
    workers: Threads


class LiveConfig(Section):
    camera: str
    gpsd: str
    vehicle: str
    segment_s: Positive
    segment_m: Positive
    trip_gap_s: Positive
    queue_frames: PositiveInt
    fix_timeout_s: Positive
    reconnect_s: Positive
    file_speed: Positive
    loop: bool


class EvidenceConfig(Section):
    """The photo sent with a request and shown in the review app (faces and plates blurred)."""

    face_threshold: Fraction
    height: PositiveInt
    quality: Annotated[int, Field(ge=1, le=100)]  # JPEG
    road_user_model: str | None
    road_user_conf: Fraction
    at_merge: bool

    @field_validator("road_user_model")
    @classmethod
    def _model_file(cls, model: str | None) -> str | None:
        if model and not Path(model).is_file():
            raise ValueError(f"{model}: model file not found")
        return model


class RetryConfig(Section):
    base_s: Positive
    max_s: Positive


class TicketsConfig(Section):
    mode: Literal["off", "dry-run", "on"]
    endpoint: str
    format: Literal["json", "xml"]
    jurisdiction_id: str | None
    api_key_env: str
    api_key_file: str | None
    auto_file: dict[str, bool] = per_class()
    service_codes: dict[str, str] = open_mapping()
    attributes: dict[str, str] = open_mapping()
    review_url: str
    media_url: str | None
    languages: tuple[Literal["he", "en"], ...]
    timezone: str
    link_radius_m: Positive
    search_radius_m: Positive
    search_days: Positive
    radius_search: bool
    timeout_s: Positive
    deadline_s: Annotated[float, Field(gt=0, le=600)]  # one call in all, dribbled or not
    retry: RetryConfig
    recheck_s: Positive
    poll_s: Positive
    dry_run_file: str | None
    evidence: EvidenceConfig

    @field_validator("mode", mode="before")
    @classmethod
    def _yaml_boolean(cls, mode: Any) -> Any:
        # YAML 1.1 reads a bare off/on as a boolean
        return {False: "off", True: "on"}.get(mode, mode) if isinstance(mode, bool) else mode

    @field_validator("endpoint", "review_url")
    @classmethod
    def _url(cls, url: str) -> str:
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"expected an http(s) URL, got {url!r}")
        return url.rstrip("/")

    @field_validator("jurisdiction_id", "api_key_file", "media_url", "dry_run_file")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("languages")
    @classmethod
    def _some_language(cls, languages: tuple[str, ...]) -> tuple[str, ...]:
        if not languages:
            raise ValueError(f"a list of {', '.join(LANGUAGES)}")
        return languages

    @field_validator("timezone")
    @classmethod
    def _zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone!r}") from None
        return zone

    @field_validator("attributes")
    @classmethod
    def _attribute_templates(cls, attributes: dict[str, str]) -> dict[str, str]:
        return {code: check_template(template, TICKET_FIELDS) for code, template in attributes.items()}

    @field_validator("media_url")
    @classmethod
    def _media_template(cls, url: str | None) -> str | None:
        return check_template(url, {"review_url": "", "path": "", "id": 1}) if url else None

    @field_validator("service_codes")
    @classmethod
    def _codes(cls, codes: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in codes.items() if v}

    @property
    def search_m(self) -> float:
        """The look-up radius before posting: never under the link radius."""
        return max(self.search_radius_m, self.link_radius_m)

    @property
    def lease_s(self) -> float:
        """How long a claimed row is left alone: a search, a discovery and a POST (each up to the timeout),
        and after a crash, until the server lists what it may have received."""
        return max(4 * self.timeout_s + 5, self.recheck_s)


class BriefingConfig(Section):
    """The morning briefing e-mailed to each department (``detector.review.mail``)."""

    at: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]  # HH:MM in tickets.timezone
    smtp_host: str | None
    smtp_port: Port
    tls: Literal["starttls", "implicit"]
    username: str | None
    password_env: str
    ca_file: str | None
    sender: str | None
    recipients: dict[str, list[str]] = open_mapping()  # per 106 service code (department): its addresses
    timeout_s: Positive

    @field_validator("recipients")
    @classmethod
    def _addresses(cls, recipients: dict[str, list[str]]) -> dict[str, list[str]]:
        for code, addresses in recipients.items():
            for address in addresses:
                if address.count("@") != 1 or any(c.isspace() or c in "<>,;" for c in address):
                    raise ValueError(f"{code}: {address!r} is not an e-mail address")
        return recipients

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, path: str | None) -> str | None:
        if path and not Path(path).is_file():
            raise ValueError(f"{path}: no such file")
        return path


class ReviewConfig(Section):
    host: str
    port: Port
    tile_url: str | None
    tile_attribution: str
    wms_url: str | None
    wms_layers: str
    basemap_layers: tuple[str, ...]
    unpatrolled_days: PositiveInt
    neighbourhoods: str | None
    neighbourhood_name: str
    session_hours: Positive
    sign_in_failures: PositiveInt
    sign_in_window_min: Positive
    sign_in_name_wait_max_s: Positive
    trusted_proxies: tuple[str, ...]
    secure_cookie: bool
    language: Literal["he", "ar", "en"]
    service_level_days: dict[str, Positive] = per_class()
    vehicle_silent_h: Positive
    briefing: BriefingConfig

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, proxies: tuple[str, ...]) -> tuple[str, ...]:
        for entry in proxies:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return proxies


class HubConfig(Section):
    """The council's central hub (``detector hub serve``) and a vehicle's link to it (``push``, ``live --hub``)."""

    host: str
    port: Port
    url: str | None
    token_env: str
    token_file: str | None
    timeout_s: Positive
    retry: RetryConfig
    push_wait_s: Positive
    set_aside_after: PositiveInt
    max_segment_mb: Positive
    head_timeout_s: Positive
    body_timeout_s: Positive


class Config(Section):
    """Every command's configuration, as ``configs/default.yaml`` and its overlays fill it."""

    drive: DriveConfig
    gps: GpsConfig
    sampling: SamplingConfig
    detect: DetectConfig
    mask: MaskConfig
    localize: LocalizeConfig
    dedup: DedupConfig
    signs: SignsConfig
    streets: StreetsConfig
    store: StoreConfig
    run: RunConfig
    batch: BatchConfig
    live: LiveConfig
    tickets: TicketsConfig
    review: ReviewConfig
    hub: HubConfig

    @model_validator(mode="after")
    def _per_class_values_name_the_classes(self) -> Config:
        classes = sorted(self.detect.classes)
        for key, value in (
            ("detect.conf", self.detect.conf),
            ("dedup.confirm_sightings", self.dedup.confirm_sightings),
            ("dedup.confirm_evidence", self.dedup.confirm_evidence),
            ("tickets.auto_file", self.tickets.auto_file),
            ("review.service_level_days", self.review.service_level_days),
        ):
            if sorted(value) != classes:
                raise KeyProblem(key, f"needs a value for each class of detect.classes ({', '.join(classes)})")
        return self
