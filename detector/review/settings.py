"""What the review app needs from the config (the ``review`` section and a few others), checked at start."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from detector.config import Config
from detector.config.pipeline import EvidenceConfig
from detector.errors import InputError
from detector.gis_layers import StreetNames
from detector.review.dashboard import Neighbourhoods
from detector.store import review as decisions
from detector.store.db import store_path


@dataclass(frozen=True)
class AppSettings:
    """The app's settings, from the config by :meth:`from_config`."""

    db: Path
    lock_timeout_s: float
    tile_url: str | None
    tile_attribution: str
    session_lifetime_s: float
    secure_cookie: bool
    timezone: str
    classes: tuple[str, ...]
    neighbourhoods: Neighbourhoods | None
    streets: StreetNames | None
    decisions: decisions.ReviewSettings
    evidence: EvidenceConfig
    sign_in_limit: int
    sign_in_window_s: float
    sign_in_name_wait_max_s: float
    trusted_proxies: tuple[str, ...]  # whose X-Forwarded-For names the client (review.trusted_proxies)
    language: str  # when neither the request nor its cookie nor the browser names one
    service_level_days: dict[str, float]  # per class: a request open longer is past its target
    service_codes: dict[str, str]  # per class: the 106 service (department) its requests go to
    vehicle_silent_h: float  # a fleet vehicle not heard from this long is flagged

    @classmethod
    def from_config(cls, cfg: Config, db: Path | None = None) -> AppSettings:
        section = cfg.review
        path = store_path(cfg, db)
        if not path.is_file():
            raise InputError(path, "no hazard store here (run a drive first, or give --db)")
        layer = section.neighbourhoods
        return cls(
            db=path,
            lock_timeout_s=cfg.store.lock_timeout_s,
            tile_url=section.tile_url or None,
            tile_attribution=section.tile_attribution,
            session_lifetime_s=section.session_hours * 3600,
            secure_cookie=section.secure_cookie,
            timezone=cfg.tickets.timezone,
            classes=tuple(cfg.detect.classes),
            neighbourhoods=Neighbourhoods.load(layer, section.neighbourhood_name) if layer else None,
            streets=StreetNames.load(cfg.streets),
            decisions=decisions.ReviewSettings.from_config(cfg),
            evidence=cfg.tickets.evidence,
            sign_in_limit=section.sign_in_failures,
            sign_in_window_s=section.sign_in_window_min * 60,
            sign_in_name_wait_max_s=section.sign_in_name_wait_max_s,
            trusted_proxies=section.trusted_proxies,
            language=section.language,
            service_level_days=dict(section.service_level_days),
            service_codes=dict(cfg.tickets.service_codes),
            vehicle_silent_h=section.vehicle_silent_h,
        )
