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
'filing policy: fallen_sign'

The reason is stored as the ``held`` event's detail in a fixed form that :func:`parse_reason` reads back, so
that the review app and the exports say it in the reader's words (``detector.review.names.held_words``):

>>> parse_reason("1.1 m from MH-7 (covers.gpkg)")
HeldReason(rule='mapped_feature', class_name=None, feature='MH-7', distance_m=1.1, layer='covers.gpkg')
>>> held_words("filing policy: fallen_sign")
'The city files requests for a fallen sign only after a reviewer confirms it.'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from detector.config import Config
from detector.gis_layers import HoldRule


class Hold(Protocol):
    def reason(self, class_name: str, lat: float, lon: float) -> str | None: ...


POLICY_PREFIX = "filing policy: "
NEAR_FEATURE = re.compile(r"(?P<distance>\d+(?:\.\d+)?) m from (?P<feature>.+) \((?P<layer>[^()]+)\)")
OLD_POLICY = re.compile(r"(?P<class_name>\S+) requests are filed after review \(tickets\.auto_file\)")  # before v12


@dataclass(frozen=True)
class HeldReason:
    """Why a hazard is held, read from its ``held`` event: the city's filing policy for its class, or a mapped
    feature (a manhole cover) ``distance_m`` from it in ``layer``."""

    rule: str  # "filing_policy" or "mapped_feature"
    class_name: str | None = None
    feature: str | None = None
    distance_m: float | None = None
    layer: str | None = None

    def words(self) -> str:
        """The reason in English words, for the command line and the exports (the review app translates the
        same messages: ``detector.review.names.held_words``)."""
        if self.rule == "filing_policy":
            kind = (self.class_name or "").replace("_", " ")
            return f"The city files requests for a {kind} only after a reviewer confirms it."
        return (
            f"{self.distance_m:g} m from the mapped feature {self.feature} ({self.layer}): "
            "a reviewer checks it is not that feature."
        )


def held_words(detail: str | None) -> str | None:
    """A ``held`` event's detail in English words (:meth:`HeldReason.words`); text of another form as it is."""
    reason = parse_reason(detail)
    return reason.words() if reason else detail


def parse_reason(detail: str | None) -> HeldReason | None:
    """The reason a ``held`` event's detail gives (see the module docstring); None for text of another form."""
    if not detail:
        return None
    if detail.startswith(POLICY_PREFIX):
        return HeldReason("filing_policy", class_name=detail.removeprefix(POLICY_PREFIX))
    if old := OLD_POLICY.fullmatch(detail):
        return HeldReason("filing_policy", class_name=old["class_name"])
    if near := NEAR_FEATURE.fullmatch(detail):
        return HeldReason("mapped_feature", feature=near["feature"], distance_m=float(near["distance"]),
                          layer=near["layer"])  # fmt: skip
    return None


@dataclass(frozen=True)
class FilingPolicy:
    """The classes whose requests wait for a reviewer (``tickets.auto_file`` false)."""

    manual: frozenset[str]

    @staticmethod
    def load(auto_file: dict[str, bool]) -> FilingPolicy | None:
        manual = frozenset(c for c, auto in auto_file.items() if not auto)
        return FilingPolicy(manual) if manual else None

    def reason(self, class_name: str, lat: float, lon: float) -> str | None:
        return f"{POLICY_PREFIX}{class_name}" if class_name in self.manual else None


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
