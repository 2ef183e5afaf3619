"""Telegram's HTML as Telegram reads it: visible length in UTF-16 units, and cutting to fit.

The one definition of how Telegram counts a message (the fake Bot API in the tests keeps an
independent counter on purpose, as the oracle): tags count nothing, an entity counts as the
character it stands for, and an emoji outside the BMP counts 2 — against 4,096 for text and
1,024 for captions. :mod:`bot.richtext` writes Telegram HTML from feed HTML and renders it
through :func:`render`, so a summary and a post are cut by the same rules: at a word,
never inside a tag, an entity, a surrogate pair or a joined emoji.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterable, Iterator
from html.parser import HTMLParser
from typing import Final

logger = logging.getLogger(__name__)

ELLIPSIS: Final = "…"
# What may not start a cut: joiners, variation selectors and skin-tone modifiers belong to
# the character before them.
_GLUE: Final = frozenset({"\u200d", "\ufe0e", "\ufe0f"} | {chr(c) for c in range(0x1F3FB, 0x1F400)})


# Events: (kind, text or tag name, the tag as written: "<a href=…>", "</a>"; "" for text) —
# the form both the converter and the Telegram-HTML reader produce, so one renderer does the
# truncation for both.
TEXT: Final = 0
OPEN: Final = 1
CLOSE: Final = 2
Event = tuple[int, str, str]


class LenientHTMLParser(HTMLParser):
    """HTMLParser that never raises on input.

    The stdlib parser hands ``<![…`` to ``_markupbase``, which raises ``AssertionError`` on an
    unknown keyword (``<![foo[``). HTML5 reads any ``<![…>`` outside SVG/MathML as a bogus
    comment ending at the first ``>``, so that is what this does.
    """

    def parse_marked_section(self, i: int, report: bool = True) -> int:
        """``<![CDATA[…``, ``<![if …]>`` and any other marked section: a bogus comment."""
        return self.parse_bogus_comment(i, report=False)


# --------------------------------------------------------------------------- length rules


def utf16_len(text: str) -> int:
    """How many UTF-16 code units ``text`` takes: Telegram's unit for every length limit."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def visible_len(telegram_html: str) -> int:
    """Telegram's length of a message in HTML parse mode: UTF-16 units of its visible text.

    Tags count nothing and an entity counts as the one character it stands for — this is
    the figure Telegram compares with 4,096 (text) and 1,024 (captions).
    """
    return utf16_len("".join(text for kind, text, _ in parse_telegram(telegram_html)
                             if kind == TEXT))  # fmt: skip


def truncate_html(telegram_html: str, limit: int, *, ellipsis: str = ELLIPSIS) -> str:
    """Cut Telegram HTML to at most ``limit`` visible UTF-16 units, ending with ``ellipsis``.

    The cut falls at a word boundary when there is one in the second half of what fits (a
    single huge word is cut inside), never inside a tag, an entity, a surrogate pair or a
    joined emoji sequence; tags left open are closed in order, so the result is valid
    Telegram HTML whenever the input is. Text that already fits comes back unchanged.
    """
    events = list(parse_telegram(telegram_html))
    if utf16_len("".join(t for kind, t, _ in events if kind == TEXT)) <= limit:
        return telegram_html
    return render(events, limit, ellipsis)


# --------------------------------------------------------------------------- Telegram HTML


class _TelegramReader(LenientHTMLParser):
    """Telegram HTML (already valid) → events, keeping attributes as written."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.events: list[Event] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Keep the tag with its attributes (``href``, ``class``, ``expandable``…)."""
        rendered = "".join(
            f" {name}" if value is None else f' {name}="{escape_attr(value)}"'
            for name, value in attrs
        )
        self.events.append((OPEN, tag, f"<{tag}{rendered}>"))

    def handle_endtag(self, tag: str) -> None:
        """Keep the end tag."""
        self.events.append((CLOSE, tag, f"</{tag}>"))

    def handle_data(self, data: str) -> None:
        """Keep decoded text (the renderer escapes it again)."""
        self.events.append((TEXT, data, ""))


def parse_telegram(telegram_html: str) -> Iterator[Event]:
    """Valid Telegram HTML as events (text decoded, tags with their attributes as written)."""
    reader = _TelegramReader()
    reader.feed(telegram_html)
    reader.close()
    return iter(reader.events)


# --------------------------------------------------------------------------- rendering


def escape_text(text: str) -> str:
    """Text as Telegram HTML: the three characters its parser reads as markup, escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_attr(text: str) -> str:
    """An attribute value as Telegram HTML (double-quoted)."""
    return escape_text(text).replace('"', "&quot;")


def serialise(events: Iterable[Event]) -> str:
    """Events back to Telegram HTML, text escaped, tags as written."""
    return "".join([escape_text(value) if kind == TEXT else markup
                    for kind, value, markup in events])  # fmt: skip


def _cut_point(plain: str, budget: int) -> int:
    """How many characters of ``plain`` to keep so they take at most ``budget`` UTF-16 units."""
    if budget <= 0:
        return 0
    kept = plain.encode("utf-16-le", "surrogatepass")[: 2 * budget].decode(
        "utf-16-le", "surrogatepass"
    )
    index = len(kept)
    if kept and "\ud800" <= kept[-1] <= "\udbff" and kept[-1] != plain[index - 1]:
        index -= 1  # the budget ended between the halves of a pair
    if 0 < index < len(plain) and not plain[index].isspace() and not plain[index - 1].isspace():
        boundary = max(plain.rfind(" ", 0, index), plain.rfind("\n", 0, index))
        if boundary > index // 2:
            index = boundary
    while 0 < index < len(plain) and (
        plain[index] in _GLUE or plain[index - 1] == "\u200d" or unicodedata.combining(plain[index])
    ):
        index -= 1  # do not split a joined emoji, a flag's selector or a combining accent
    if 0 < index < len(plain) and _is_flag_half(plain[index]):
        run = index
        while run and _is_flag_half(plain[run - 1]):
            run -= 1
        index -= (index - run) % 2  # regional indicators pair up into flags from the left
    while index and plain[index - 1].isspace():
        index -= 1
    return index


def _is_flag_half(char: str) -> bool:
    return "\U0001f1e6" <= char <= "\U0001f1ff"


def render(events: list[Event], limit: int, ellipsis: str) -> str:
    """Serialise events, cut to ``limit`` visible UTF-16 units with ``ellipsis`` if longer."""
    plain = "".join(value for kind, value, _ in events if kind == TEXT)
    if utf16_len(plain) <= limit:
        return serialise(events)
    if limit < utf16_len(ellipsis):
        return ""
    cut = _cut_point(plain, limit - utf16_len(ellipsis))
    kept: list[Event] = []
    open_tags: list[str] = []
    position = 0
    for kind, value, attrs in events:
        if position >= cut:
            break  # what is still open closes after the ellipsis, so "…" stays inside it
        if kind == CLOSE:
            if open_tags and open_tags[-1] == value:
                open_tags.pop()
                kept.append((kind, value, attrs))
            continue
        if kind == OPEN:
            open_tags.append(value)
            kept.append((kind, value, attrs))
            continue
        piece = value[: cut - position]
        position += len(value)
        kept.append((TEXT, piece, ""))
    kept.append((TEXT, ellipsis, ""))
    kept.extend((CLOSE, tag, f"</{tag}>") for tag in reversed(open_tags))
    return serialise(kept)
