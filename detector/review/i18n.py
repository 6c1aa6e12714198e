"""The app's languages: which one a request gets, and its messages from the gettext catalogs under ``locales/``.

A request's language is, in order: ``?lang=`` (the switch on each page sets it, and a cookie), the cookie,
the browser's ``Accept-Language``, then ``review.language``. Only a name in :data:`LANGUAGES` is ever used,
so a request's text never reaches a file path. The ``.po`` files are read as they are (Babel's reader):
no compile step, and the page scripts get the same messages as JSON from ``/i18n/<lang>.json``.
Messages name their values in braces, ``{count}``, the same in Python and in the page scripts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from babel.messages.pofile import read_po
from babel.numbers import format_decimal

LANGUAGES = ("he", "ar", "en")
RTL = frozenset({"he", "ar"})
# The city's locales: Babel's names on the server, BCP 47 tags for Intl in the page scripts. Arabic keeps the
# Western digits that Babel writes (and Israel's Arabic press uses), so both sides show the same figures.
BABEL_LOCALES = {"he": "he_IL", "ar": "ar_IL", "en": "en_IL"}
PAGE_LOCALES = {"he": "he-IL", "ar": "ar-IL-u-nu-latn", "en": "en-IL"}
AUTONYMS = {"he": "עברית", "ar": "العربية", "en": "English"}  # each language's own name, for the switch
LOCALES = Path(__file__).resolve().parent / "locales"
COOKIE = "review_lang"
COOKIE_MAX_AGE_S = 365 * 86400
OLD_CODES = {"iw": "he"}  # some browsers still send Hebrew's withdrawn code
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def catalog_path(language: str) -> Path:
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}")
    return LOCALES / language / "LC_MESSAGES" / "messages.po"


@dataclass(frozen=True)
class Messages:
    """One language's messages: msgid (the English text) -> its translation."""

    language: str
    texts: dict[str, str]

    @classmethod
    def load(cls, language: str) -> Messages:
        with catalog_path(language).open("rb") as f:
            catalog = read_po(f, locale=language)
        return cls(language, {m.id: m.string for m in catalog if m.id and isinstance(m.id, str) and m.string})

    @property
    def direction(self) -> str:
        return "rtl" if self.language in RTL else "ltr"

    @property
    def page_locale(self) -> str:
        return PAGE_LOCALES[self.language]

    def gettext(self, msgid: str, **values: object) -> str:
        """The translation of ``msgid``, its ``{name}`` placeholders filled; numbers in the locale's way.

        >>> Messages("en", {}).gettext("Try again in {seconds} s.", seconds=1200)
        'Try again in 1,200 s.'
        """
        text = self.texts.get(msgid, msgid)
        return PLACEHOLDER.sub(lambda m: self._value(values[m[1]]) if m[1] in values else m[0], text)

    def _value(self, value: object) -> str:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return format_decimal(value, locale=BABEL_LOCALES[self.language])
        return str(value)


def load_all() -> dict[str, Messages]:
    return {language: Messages.load(language) for language in LANGUAGES}


def _accepted(header: str) -> list[str]:
    """The base languages of an ``Accept-Language`` header, most wanted first (``q=0``: not wanted).

    >>> _accepted("en-US;q=0.5, he-IL, ar;q=0.8, *;q=0.1, fr;q=0")
    ['he', 'ar', 'en', '*']
    """
    ranked = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        if tag and weight > 0:
            ranked.append((-weight, position, tag.split("-")[0].lower()))
    return [base for _, _, base in sorted(ranked)]


def choose_language(query: str | None, cookie: str | None, accept: str | None, default: str) -> str:
    """The language of a request (see the module's docstring).

    >>> choose_language(None, "ar", "en", "he"), choose_language("en", "ar", None, "he")
    ('ar', 'en')
    >>> choose_language("../../etc", None, "iw, en;q=0.5", "he"), choose_language(None, None, "fr", "he")
    ('he', 'he')
    """
    for chosen in (query, cookie):
        if chosen in LANGUAGES:
            return chosen
    for base in _accepted(accept or ""):
        base = OLD_CODES.get(base, base)
        if base in LANGUAGES:
            return base
    return default
