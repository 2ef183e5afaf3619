"""Translations: one gettext catalogue per language, compiled from its ``.po`` file by Babel.

Every user-visible string goes through a :class:`Translator`. Mark strings where they are
written so ``pybabel extract`` (``scripts/i18n.sh``) finds them:

- in handlers: ``_ = tr(update, context).gettext`` then ``_("…")``;
- in services and formatting, which get a translator as a parameter: ``t.gettext("…")``,
  ``t.ngettext("one …", "%(n)d …", n)``;
- constants defined before any translator exists: ``N_("…")``, translated where they are used.

The catalogues are ``bot/locales/<lang>/LC_MESSAGES/newsbot.po``; English is the source
language (msgids), so it needs no catalogue. ``.po`` files are compiled in memory on first
use (no ``.mo`` build outputs in the tree or the image).
"""

from __future__ import annotations

import functools
import gettext
import io
import logging
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

logger = logging.getLogger(__name__)

DOMAIN = "newsbot"
LANGUAGES: tuple[str, ...] = ("en", "ru")
DEFAULT_LANGUAGE = "en"
LOCALES_DIR = Path(__file__).parent / "locales"


def N_(message: str) -> str:
    """Mark ``message`` for extraction without translating it (translate where it is used)."""
    return message


def catalogue_path(language: str) -> Path:
    """Where the ``.po`` catalogue of ``language`` lives."""
    return LOCALES_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


class Translator:
    """The strings, plural rules and date formats of one language."""

    def __init__(self, language: str, translations: gettext.NullTranslations) -> None:
        self.language = language
        self.locale = Locale.parse(language)
        self._translations = translations

    def gettext(self, message: str) -> str:
        """``message`` in this language (itself when untranslated)."""
        return self._translations.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        """The form of a counted message for ``n`` (Russian has three)."""
        return self._translations.ngettext(singular, plural, n)


@functools.cache
def translator(language: str) -> Translator:
    """The translator for ``language`` (a supported code; anything else gives English)."""
    if language not in LANGUAGES or language == DEFAULT_LANGUAGE:
        return Translator(DEFAULT_LANGUAGE, gettext.NullTranslations())
    path = catalogue_path(language)
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)  # fuzzy entries are left out, as msgfmt does
    compiled.seek(0)
    return Translator(language, gettext.GNUTranslations(compiled))


def supported_language(user_code: str | None) -> str | None:
    """The supported language of a Telegram IETF tag (``"ru-RU"`` → ``"ru"``), else None.

    Only the primary subtag counts: Telegram sends ``"pt-br"`` or ``"en-US"`` as often as
    bare codes.
    """
    primary = (user_code or "").split("-")[0].split("_")[0].lower()
    return primary if primary in LANGUAGES else None


def pick_language(chosen: str | None, user_code: str | None) -> str:
    """The language to answer in: the chat's ``/language`` choice, else the user's own.

    ``user_code`` is Telegram's IETF tag (``"ru"``, ``"pt-br"``, ``"en-US"``); only its
    primary subtag counts. Unsupported languages get English.
    """
    if chosen in LANGUAGES:
        return chosen
    return supported_language(user_code) or DEFAULT_LANGUAGE


def chat_translator(chosen: str | None) -> Translator:
    """The translator for what a chat receives unasked (posts, digests, notices).

    Nobody's ``language_code`` comes with those, so only the chat's explicit choice counts;
    without one, English (a private chat records its user's language when it registers).
    """
    return translator(pick_language(chosen, None))


def language_name(language: str) -> str:
    """A language's name in that language (``"English"``, ``"Русский"``), from CLDR."""
    name = Locale.parse(language).get_display_name(language) or language
    return name[:1].upper() + name[1:]
