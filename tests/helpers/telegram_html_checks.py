"""Checks that a string is Telegram HTML that Telegram accepts, for the rich-text tests.

Shared by :mod:`tests.test_richtext` (feed HTML converted) and :mod:`tests.test_telegram_html`
(lengths and cutting): the oracle for "Telegram accepts it" is the fake Bot API's validator
(:func:`tests.helpers.fake_bot_api.telegram_html_to_plain`), which parses independently of
:mod:`bot.richtext`; the nesting rules it does not check (code/pre hold no tags, links hold no
links…) are checked by :class:`_NestingChecker`, and lengths are compared with a UTF-16 counter
written out here rather than :func:`bot.telegram_html.utf16_len`.
"""

from __future__ import annotations

from html.parser import HTMLParser

from bot.richtext import SUMMARY_LIMIT
from tests.helpers.fake_bot_api import telegram_html_to_plain


def utf16_units(text: str) -> int:
    """UTF-16 code units counted the long way: astral characters take two."""
    return sum(2 if ord(char) > 0xFFFF else 1 for char in text)


class _NestingChecker(HTMLParser):
    """Telegram's nesting rules on top of the fake's parse-level validation."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert not {"code", "pre"} & set(self.stack), f"<{tag}> inside code/pre: {self.stack}"
        if tag in ("a", "code", "pre"):
            assert not {"a", "code", "pre"} & set(self.stack), f"<{tag}> in {self.stack}"
        if tag == "blockquote":
            assert "blockquote" not in self.stack
        if tag == "a":
            href = dict(attrs)["href"] or ""
            assert href.startswith(("http://", "https://")), href
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        self.stack.pop()


def valid_telegram_html(telegram_html: str, limit: int = SUMMARY_LIMIT) -> str:
    """Assert ``telegram_html`` is what Telegram accepts and within ``limit``; its plain text."""
    plain = telegram_html_to_plain(telegram_html)
    checker = _NestingChecker()
    checker.feed(telegram_html)
    checker.close()
    for entity in ("&#", "&nbsp;", "&apos;", "&#x27;"):
        assert entity not in telegram_html
    assert utf16_units(plain) <= limit
    assert not plain.startswith("\n")
    assert not plain.startswith(" ") or "<pre>" in telegram_html or not plain.strip()
    return plain
