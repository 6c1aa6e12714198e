"""The configurations of the development tools, apart from the production defaults: the drive simulator
(``configs/simulate.yaml``) and the demo 106 server (``configs/serve-106.yaml``), with its failure knobs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import Field, StrictInt, field_validator, model_validator

from detector.bounds import check_time
from detector.camera import DISTORTION_TERMS
from detector.config.sections import KeyProblem, NonNegative, Port, Positive, Section
from detector.pipeline.sources.track import parse_utc


def _between(low: float, high: float) -> object:
    return Field(ge=low, le=high)


class SimulatedCameraConfig(Section):
    height_m: Annotated[float, _between(0.3, 5.0)]
    pitch_deg: Annotated[float, _between(-10.0, 45.0)]
    roll_deg: Annotated[float, _between(-30.0, 30.0)]
    hfov_deg: Annotated[float, _between(20.0, 150.0)]


class OriginConfig(Section):
    lat: Annotated[float, _between(-85.0, 85.0)]
    lon: Annotated[float, _between(-180.0, 180.0)]


class SimulateConfig(Section):
    """One simulated drive: its world and drive seeds, the camera, and a real dashcam's look (lens, bonnet,
    stamp) when asked for."""

    world_seed: Annotated[int, Field(ge=0)]
    drive_seed: Annotated[int, Field(ge=0)]
    duration_s: Annotated[float, _between(0.1, 3600.0)]
    width: Annotated[int, _between(16, 7680)]
    height: Annotated[int, _between(16, 4320)]
    fps: Annotated[int, _between(1, 240)]
    gps_noise_m: Annotated[float, _between(0.0, 100.0)]
    gps_rate_hz: Annotated[float, _between(0.01, 100.0)]
    start_time: str
    origin: OriginConfig
    camera: SimulatedCameraConfig
    crf: Annotated[int, _between(0, 51)]
    lens: Literal["pinhole", "fisheye"]
    distortion: list[float]
    bonnet: Annotated[float, _between(0.0, 0.4)]
    overlay: StrictInt | None  # a stamp's style seed
    knock_signs: Annotated[int, _between(0, 20)]  # standing signs knocked down before this drive (seed-stable choice)
    remove_signs: Annotated[int, _between(0, 20)]  # standing signs taken away before this drive
    damage_signs: Annotated[int, _between(0, 20)]  # standing signs damaged (plate twisted, pole bent) but standing

    @field_validator("start_time", mode="before")
    @classmethod
    def _iso(cls, value: object) -> str:
        text = value.isoformat() if isinstance(value, datetime) else str(value)
        when = parse_utc(text)
        if when is None:
            raise ValueError(f"expected an ISO 8601 time, got {value!r}")
        try:
            check_time(when.timestamp(), "start_time")
        except (OverflowError, ValueError):
            raise ValueError(f"expected a time from 2000-01-01 to 2100-01-01 UTC, got {text!r}") from None
        return text

    @model_validator(mode="after")
    def _even_frame(self) -> SimulateConfig:
        if self.width % 2 or self.height % 2:
            raise KeyProblem(
                "simulate.width", f"frame size must be even for yuv420p video, got {self.width}x{self.height}"
            )
        terms = DISTORTION_TERMS[self.lens]
        if self.distortion and len(self.distortion) not in terms:
            counts = " or ".join(map(str, terms))
            raise KeyProblem("simulate.distortion", f"a {self.lens} lens takes {counts} numbers, got {self.distortion}")
        return self

    @property
    def start_utc(self) -> datetime:
        when = datetime.fromisoformat(self.start_time.replace("Z", "+00:00"))
        return when if when.tzinfo else when.replace(tzinfo=UTC)


class SimulatorFile(Section):
    simulate: SimulateConfig


class ServerConfig(Section):
    """``detector serve-106``: a GeoReport v2 server for demos and tests, not the city's."""

    host: str
    port: Port
    db: str
    mode: Literal["realtime", "token"]
    token_delay_s: NonNegative
    post_delay_s: NonNegative  # hold each POST's answer (tests of lost answers)
    fail_posts: tuple[int, ...]  # answer the first POSTs with these HTTP statuses (tests of retries)
    jurisdiction_id: str | None
    read_timeout_s: Positive
    head_timeout_s: Annotated[float, Field(gt=0, le=600)]  # all of a request's head
    request_timeout_s: Annotated[float, Field(gt=0, le=600)]  # all of a request, head and body

    @field_validator("fail_posts", mode="before")
    @classmethod
    def _statuses(cls, value: object) -> tuple[int, ...]:
        codes = (
            list(value) if isinstance(value, list | tuple) else [c.strip() for c in str(value).split(",") if c.strip()]
        )
        if not all(str(c).isdigit() and 400 <= int(c) <= 599 for c in codes):
            raise ValueError(f"HTTP error statuses, comma-separated: {codes!r}")
        return tuple(int(c) for c in codes)

    @field_validator("jurisdiction_id")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None


class ServerFile(Section):
    server: ServerConfig
