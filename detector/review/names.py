"""The names of what the store keeps as codes (hazard classes, statuses, roles, audit events, decisions), to show
translated: the page scripts get them with their messages, the server uses them in its errors."""

from __future__ import annotations

from detector.holds import parse_reason
from detector.review.i18n import Messages


def N_(msgid: str) -> str:
    """Marks a message for extraction (gettext's name); it is translated where it is shown."""
    return msgid


NAMES = {
    "class": {"pothole": N_("pothole"), "fallen_sign": N_("fallen sign"), "missing_sign": N_("missing sign")},
    "status": {
        "candidate": N_("candidate"), "confirmed": N_("confirmed"), "rejected": N_("rejected"),
        "possibly_repaired": N_("possibly repaired"), "repaired": N_("repaired"), "merged": N_("merged"),
        "open": N_("open"), "closed": N_("closed"), "submitted": N_("submitted"), "held": N_("held for review"),
    },
    "outbox": {  # a 106 request on its way (the outbox's state)
        "pending": N_("waiting to be sent"), "sent": N_("sent"), "failed": N_("sending failed"),
    },
    "role": {"reviewer": N_("reviewer"), "viewer": N_("viewer")},
    "action": {  # audit events, and what a decision just did
        "confirm": N_("confirmed"), "reject": N_("rejected"), "mark_repaired": N_("marked repaired"),
        "move": N_("moved"), "merge": N_("merged"), "open_request": N_("106 request opened by hand"),
        "held": N_("held for review"), "ticket_opened": N_("106 request opened"),
        "ticket_linked": N_("linked to an open 106 request"), "ticket_recovered": N_("106 request found again"),
        "ticket_failed": N_("106 request failed"), "ticket_token_resolved": N_("106 request number received"),
        "ticket_closed": N_("106 request closed"), "ticket_status": N_("106 request status changed"),
    },
    "decision": {  # what a decision that does not apply could not do (detector.store.review)
        "confirm": N_("confirm"), "reject": N_("reject"), "mark repaired": N_("mark repaired"), "move": N_("move"),
        "open a request for": N_("open a 106 request for"), "merge": N_("merge"), "merge into": N_("merge into"),
    },
}  # fmt: skip
# The values of a decision's error (detector.store.review.DecisionError) that are codes, by their kind.
DECISION_VALUES = {"status": "status", "action": "decision", "class": "class", "target_class": "class"}


def translated(messages: Messages) -> dict[str, dict[str, str]]:
    return {kind: {code: messages.gettext(name) for code, name in names.items()} for kind, names in NAMES.items()}


def name(messages: Messages, kind: str, code: str) -> str:
    """The translated name of ``code``; one not known here as it is (a class the catalogs do not know)."""
    known = NAMES.get(kind, {}).get(code)
    return messages.gettext(known) if known else code


def held_words(messages: Messages, detail: str | None) -> str | None:
    """Why a hazard is held (its ``held`` event's detail, :func:`detector.holds.parse_reason`), in words; text of
    another form as it is."""
    reason = parse_reason(detail)
    if reason is None:
        return detail
    if reason.rule == "filing_policy":
        return messages.gettext(
            "The city files requests for a {class} only after a reviewer confirms it.",
            **{"class": name(messages, "class", reason.class_name or "")},
        )
    return messages.gettext(
        "{distance} m from the mapped feature {feature} ({layer}): a reviewer checks it is not that feature.",
        distance=reason.distance_m,
        feature=isolated(reason.feature),
        layer=isolated(reason.layer),
    )


def isolated(value: object) -> str:
    """Data inside translated text, isolated (Unicode first-strong isolate) so its direction cannot reorder it."""
    return f"\u2068{value}\u2069"
