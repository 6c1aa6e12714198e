"""The text of a 106 request: Hebrew and English, plain text, at most 4,000 characters.

It names the hazard class, confidence, first-seen time, sighting count and severity, and ends
with the hazard's page in the review app, ``{review_url}/hazards/{id}``. That link is also the
request's stable marker: the outbox recognises its own requests on the server by it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

MAX_CHARS = 4000  # GeoReport v2's limit on description
LANGUAGES = ("he", "en")
CLASS_NAMES = {
    "he": {"pothole": "בור בכביש", "fallen_sign": "תמרור שנפל"},
    "en": {"pothole": "Pothole", "fallen_sign": "Fallen traffic sign"},
}
LABELS = {
    "he": {
        "title": "{cls} (מפגע #{id}), זוהה אוטומטית על ידי רכב סיור",
        "confidence": "ודאות זיהוי",
        "first_seen": "נראה לראשונה",
        "sightings": "מספר תצפיות",
        "severity": "חומרה",
        "street": "רחוב",
        "location": "מיקום",
        "link": "פרטים ותמונות",
    },
    "en": {
        "title": "{cls} (hazard #{id}), detected automatically by a patrol vehicle",
        "confidence": "Detection confidence",
        "first_seen": "First seen",
        "sightings": "Sightings",
        "severity": "Severity",
        "street": "Street",
        "location": "Location",
        "link": "Details and photos",
    },
}
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class HazardFacts:
    """What a request says about a hazard (from its ``hazards`` row)."""

    id: int
    class_name: str
    lat: float
    lon: float
    confidence: float
    first_seen: float  # UTC epoch seconds
    sighting_count: int
    severity: float
    street: str | None = None

    @classmethod
    def from_row(cls, row, street: str | None = None) -> HazardFacts:
        return cls(
            id=int(row["id"]),
            class_name=str(row["class"]),
            lat=float(row["lat"]),
            lon=float(row["lon"]),
            confidence=float(row["confidence"]),
            first_seen=float(row["first_seen"]),
            sighting_count=int(row["sighting_count"]),
            severity=float(row["severity"]),
            street=street,
        )

    @classmethod
    def example(cls) -> HazardFacts:
        """A hazard with a value of each field's kind: what ``tickets.attributes`` templates are checked with."""
        return cls(
            id=1, class_name="pothole", lat=31.0, lon=34.0, confidence=0.9, first_seen=0.0, sighting_count=3,
            severity=50.0, street="Herzl",
        )  # fmt: skip


def template_fields(facts: HazardFacts, review_url: str) -> dict[str, Any]:
    """What a ``tickets.attributes`` template may name: each of the hazard's facts and its ``link``.

    >>> fields = template_fields(HazardFacts.example(), "http://review")
    >>> fields["link"], fields["street"]
    ('http://review/hazards/1', 'Herzl')
    """
    return {**asdict(facts), "link": hazard_link(review_url, facts.id)}


def hazard_link(review_url: str, hazard_id: int) -> str:
    return f"{review_url.rstrip('/')}/hazards/{hazard_id}"


def marks_hazard(description: str, review_url: str, hazard_id: int | None = None) -> bool:
    """Whether a request's text carries this hazard's link (any of ours when ``hazard_id`` is None).

    >>> marks_hazard("see https://r/hazards/12", "https://r", 1), marks_hazard("https://r/hazards/1.", "https://r", 1)
    (False, True)
    """
    number = str(hazard_id) if hazard_id is not None else r"\d+"
    return re.search(re.escape(f"{review_url.rstrip('/')}/hazards/") + number + r"(?!\d)", description) is not None


def _block(facts: HazardFacts, language: str, link: str, zone: ZoneInfo) -> str:
    words = LABELS[language]
    cls = CLASS_NAMES[language].get(facts.class_name, facts.class_name)
    seen = datetime.fromtimestamp(facts.first_seen, UTC).astimezone(zone)
    return "\n".join(
        [
            words["title"].format(cls=cls, id=facts.id),
            f"{words['confidence']}: {facts.confidence:.0%}",
            f"{words['first_seen']}: {seen:%Y-%m-%d %H:%M} ({zone.key})",
            f"{words['sightings']}: {facts.sighting_count}",
            f"{words['severity']}: {facts.severity:.0f}/100",
            *([f"{words['street']}: {facts.street}"] if facts.street else []),
            f"{words['location']}: {facts.lat:.6f}, {facts.lon:.6f}",
            f"{words['link']}: {link}",
        ]
    )


def describe(facts: HazardFacts, review_url: str, languages: list[str], timezone: str) -> str:
    """The request text, one block per language; cut to :data:`MAX_CHARS` keeping the link.

    Plain text: nothing is escaped or marked up (a ``<`` stays a ``<``); control characters
    other than newlines are dropped.
    """
    link = hazard_link(review_url, facts.id)
    zone = ZoneInfo(timezone)
    text = CONTROL.sub("", "\n\n".join(_block(facts, lang, link, zone) for lang in languages))
    if len(text) <= MAX_CHARS:
        return text
    tail = f"…\n{link}"
    return text[: MAX_CHARS - len(tail)] + tail
