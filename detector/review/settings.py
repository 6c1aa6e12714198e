"""What the review app needs from the config (the ``review`` section and a few others), checked at start."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from detector.config import Config
from detector.config.pipeline import EvidenceConfig, ReviewConfig
from detector.errors import InputError
from detector.gis_layers import StreetNames
from detector.review.dashboard import Neighbourhoods
from detector.store import review as decisions
from detector.store.db import store_path


@dataclass(frozen=True)
class AppSettings:
    """The app's settings, from the config by :meth:`from_config`: the ``review`` section as it is, and what the
    app takes from the others or loads at start (the GIS layers), so that a bad layer fails before serving."""

    db: Path
    review: ReviewConfig
    lock_timeout_s: float
    timezone: str
    classes: tuple[str, ...]
    neighbourhoods: Neighbourhoods | None
    streets: StreetNames | None
    decisions: decisions.ReviewSettings
    evidence: EvidenceConfig
    service_codes: dict[str, str]  # per class: the 106 service (department) its requests go to

    @property
    def tile_url(self) -> str | None:
        return self.review.tile_url or None

    @property
    def session_lifetime_s(self) -> float:
        return self.review.session_hours * 3600

    @classmethod
    def from_config(cls, cfg: Config, db: Path | None = None) -> AppSettings:
        section = cfg.review
        path = store_path(cfg, db)
        if not path.is_file():
            raise InputError(path, "no hazard store here (run a drive first, or give --db)")
        layer = section.neighbourhoods
        return cls(
            db=path,
            review=section,
            lock_timeout_s=cfg.store.lock_timeout_s,
            timezone=cfg.tickets.timezone,
            classes=tuple(cfg.detect.classes),
            neighbourhoods=Neighbourhoods.load(layer, section.neighbourhood_name) if layer else None,
            streets=StreetNames.load(cfg.streets),
            decisions=decisions.ReviewSettings.from_config(cfg),
            evidence=cfg.tickets.evidence,
            service_codes=dict(cfg.tickets.service_codes),
        )
