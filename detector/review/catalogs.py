"""The message catalogs kept in step with the code: Babel extracts every message the app, its templates, its
page scripts and the store's decision errors use; ``python -m detector.review.catalogs`` writes them into each
``.po`` file.

A new message enters every catalog with an empty translation (to fill in); one no longer used leaves them.
``tests/test_review_languages.py`` fails while any catalog lacks a message or has one untranslated.
"""

from __future__ import annotations

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from detector.review import i18n

SOURCES = i18n.LOCALES.parent
METHODS = [
    ("**.py", "python"),
    ("templates/**.html", "jinja2.ext:babel_extract"),
    ("static/*.js", "javascript"),
]
HEADER = "# The review app's messages. After a code change: python -m detector.review.catalogs (docs/review-app.md)."
KEYWORDS = {"_": None, "gettext": None, "N_": None, "Problem": (2,), "review.t": None}
STORE_ERRORS = SOURCES.parent / "store"  # a decision's errors (DecisionError), which the app translates


def used_messages() -> dict[str, list[tuple[str, int]]]:
    """Each message the code uses -> where (file under ``detector/review``, line)."""
    found: dict[str, list[tuple[str, int]]] = {}
    sources = [
        (SOURCES, METHODS, KEYWORDS, ""),
        (STORE_ERRORS, [("review.py", "python")], {"DecisionError": None}, "../store/"),
    ]
    for folder, methods, keywords, prefix in sources:
        for path, line, message, _comments, _context in extract_from_dir(folder, methods, keywords=keywords):
            if isinstance(message, str) and message:
                found.setdefault(message, []).append((prefix + path, line))
    return found


def update() -> dict[str, int]:
    """Write the used messages into every catalog, keeping their translations; the untranslated, per language."""
    used = used_messages()
    untranslated = {}
    for language in i18n.LANGUAGES:
        path = i18n.catalog_path(language)
        if path.is_file():
            with path.open("rb") as f:
                old = read_po(f, locale=language)
        else:
            old = Catalog(locale=language)
        new = Catalog(
            locale=language, header_comment=HEADER, project="road-hazard-detector review app", version="1",
            msgid_bugs_address="", creation_date=old.creation_date, fuzzy=False,
            last_translator=old.last_translator, language_team=language,
        )  # fmt: skip
        for msgid, places in sorted(used.items()):
            known = old.get(msgid)
            text = known.string if known and known.string else (msgid if language == "en" else "")
            new.add(msgid, text, locations=sorted(places))
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            write_po(f, new, width=120, omit_header=False)
        untranslated[language] = sum(1 for m in new if m.id and not m.string)
    return untranslated


if __name__ == "__main__":
    for language, missing in update().items():
        print(f"{i18n.catalog_path(language)}: {missing} message(s) to translate")
