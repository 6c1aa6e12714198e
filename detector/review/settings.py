"""What the review app needs from the config (the ``review`` section and a few others), checked at start."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detector.config import Config
from detector.config.pipeline import EvidenceConfig, ReviewConfig
from detector.gis_layers import LABEL_FIELDS, FeatureLayer, StreetNames
from detector.review.dashboard import Neighbourhoods
from detector.store import review as decisions
from detector.store.db import HazardStore, existing_store
from detector.store.layers import covers_layer, street_names


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
    streets: StreetNames | None  # the config's street layer, else the one the store's drives were merged with
    basemap_layers: tuple[FeatureLayer, ...]  # drawn under the streets: the covers, then review.basemap_layers
    decisions: decisions.ReviewSettings
    evidence: EvidenceConfig
    service_codes: dict[str, str]  # per class: the 106 service (department) its requests go to

    @property
    def tile_url(self) -> str | None:
        return self.review.tile_url or None

    @property
    def map_config(self) -> dict[str, Any]:
        """What the page scripts need to draw the basemap (:mod:`detector.review.basemap`)."""
        section = self.review
        return {
            "tile_url": self.tile_url, "attribution": section.tile_attribution,
            "wms_url": section.wms_url or None, "wms_layers": section.wms_layers,
            "unpatrolled_days": section.unpatrolled_days,
        }  # fmt: skip

    @property
    def session_lifetime_s(self) -> float:
        return self.review.session_hours * 3600

    @classmethod
    def from_config(cls, cfg: Config, db: Path | None = None) -> AppSettings:
        section = cfg.review
        path = existing_store(cfg, db)
        layer = section.neighbourhoods
        with HazardStore(path, cfg.store.lock_timeout_s) as store:
            streets, covers = street_names(cfg, store), covers_layer(cfg, store)
        drawn = [FeatureLayer.load(covers, LABEL_FIELDS, "dedup.hold_near.layer")] if covers else []
        drawn += [FeatureLayer.load(extra, LABEL_FIELDS, "review.basemap_layers") for extra in section.basemap_layers]
        return cls(
            db=path,
            review=section,
            lock_timeout_s=cfg.store.lock_timeout_s,
            timezone=cfg.tickets.timezone,
            classes=tuple(cfg.detect.classes),
            neighbourhoods=Neighbourhoods.load(layer, section.neighbourhood_name) if layer else None,
            streets=streets,
            basemap_layers=tuple(drawn),
            decisions=decisions.ReviewSettings.from_config(cfg),
            evidence=cfg.tickets.evidence,
            service_codes=dict(cfg.tickets.service_codes),
        )
