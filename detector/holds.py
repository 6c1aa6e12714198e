"""Why a hazard the pipeline would confirm waits for a person instead: the rules that hold it for review.

A held hazard stays a candidate with one ``held`` event giving the reason, and no 106 request opens until a
reviewer confirms it in the review app. Two rules hold hazards:

* a mapped street feature near it (``dedup.hold_near``, :class:`detector.gis_layers.HoldRule`), such as a manhole
  cover, the classic false pothole;
* the city's filing policy (``tickets.auto_file``, :class:`FilingPolicy`): classes whose requests are not filed
  automatically. By default potholes are filed once confirmed and fallen signs wait for a reviewer: the model has
  learnt fallen signs from composites and the simulator only (``models/MODEL_CARD.md``).

>>> holds = ReviewHolds((FilingPolicy.load({"pothole": True, "fallen_sign": False}),))
>>> holds.reason("pothole", 31.25, 34.79) is None
True
>>> holds.reason("fallen_sign", 31.25, 34.79)
'fallen_sign requests are filed after review (tickets.auto_file)'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from detector.config import Config
from detector.gis_layers import HoldRule


class Hold(Protocol):
    def reason(self, class_name: str, lat: float, lon: float) -> str | None: ...


@dataclass(frozen=True)
class FilingPolicy:
    """The classes whose requests wait for a reviewer (``tickets.auto_file`` false)."""

    manual: frozenset[str]

    @staticmethod
    def load(auto_file: dict[str, bool]) -> FilingPolicy | None:
        manual = frozenset(c for c, auto in auto_file.items() if not auto)
        return FilingPolicy(manual) if manual else None

    def reason(self, class_name: str, lat: float, lon: float) -> str | None:
        return (
            f"{class_name} requests are filed after review (tickets.auto_file)" if class_name in self.manual else None
        )


@dataclass(frozen=True)
class ReviewHolds:
    """Every rule that may hold a hazard; the first that does gives the reason."""

    rules: tuple[Hold, ...]

    def reason(self, class_name: str, lat: float, lon: float) -> str | None:
        return next((r for rule in self.rules if (r := rule.reason(class_name, lat, lon))), None)


def load_holds(cfg: Config) -> ReviewHolds | None:
    """The hold rules a config sets (the feature layer is read here, so a bad one fails before any work)."""
    rules = [r for r in (HoldRule.load(cfg.dedup.hold_near), FilingPolicy.load(cfg.tickets.auto_file)) if r]
    return ReviewHolds(tuple(rules)) if rules else None
