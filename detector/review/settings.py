"""What the review app needs from the config (the ``review`` section and a few others), checked at start."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detector.errors import ConfigError, InputError
from detector.gis_layers import StreetNames
from detector.privacy.evidence import EvidenceSettings
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
    evidence: EvidenceSettings
    sign_in_limit: int = 5
    sign_in_window_s: float = 900.0
    sign_in_name_wait_max_s: float = 60.0
    trusted_proxies: tuple[str, ...] = ()  # whose X-Forwarded-For names the client (review.trusted_proxies)

    @classmethod
    def from_config(cls, cfg: dict[str, Any], db: Path | None = None) -> AppSettings:
        section = cfg["review"]
        path = store_path(cfg, db)
        if not path.is_file():
            raise InputError(path, "no hazard store here (run a drive first, or give --db)")
        layer = section.get("neighbourhoods")
        for key in ("session_hours", "sign_in_failures", "sign_in_window_min", "sign_in_name_wait_max_s"):
            if section[key] <= 0:
                raise InputError(None, f"config key 'review.{key}' must be positive")
        return cls(
            db=path,
            lock_timeout_s=float(cfg["store"]["lock_timeout_s"]),
            tile_url=section.get("tile_url") or None,
            tile_attribution=str(section.get("tile_attribution") or ""),
            session_lifetime_s=float(section["session_hours"]) * 3600,
            secure_cookie=bool(section["secure_cookie"]),
            timezone=str(cfg["tickets"]["timezone"]),
            classes=tuple(cfg["detect"]["classes"]),
            neighbourhoods=Neighbourhoods.load(layer, section["neighbourhood_name"]) if layer else None,
            streets=StreetNames.load(cfg["streets"]),
            decisions=decisions.ReviewSettings.from_config(cfg),
            evidence=EvidenceSettings.from_config(cfg["tickets"]["evidence"]),
            sign_in_limit=int(section["sign_in_failures"]),
            sign_in_window_s=float(section["sign_in_window_min"]) * 60,
            sign_in_name_wait_max_s=float(section["sign_in_name_wait_max_s"]),
            trusted_proxies=_proxies(section["trusted_proxies"]),
        )


def _proxies(value: list[Any]) -> tuple[str, ...]:
    for entry in value:
        try:
            ipaddress.ip_network(str(entry), strict=False)
        except ValueError:
            raise ConfigError("review.trusted_proxies", f"{entry!r} is not an IP address or network") from None
    return tuple(str(entry) for entry in value)
