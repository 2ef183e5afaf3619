"""Telegram HTML as Telegram reads it (:mod:`bot.telegram_html`): lengths and cutting.

UTF-16 lengths (:func:`~bot.telegram_html.utf16_len`, :func:`~bot.telegram_html.visible_len`)
against a counter written out in :mod:`tests.helpers.telegram_html_checks`, and cuts —
through :func:`~bot.telegram_html.truncate_html` and through the converter's ``limit``, which
renders with the same code — that land at a word, never split a tag, an entity, a surrogate
pair or a joined emoji, and leave HTML the fake Bot API's validator accepts.
"""

from __future__ import annotations

import pytest

from bot.richtext import to_telegram_html
from bot.telegram_html import ELLIPSIS, truncate_html, utf16_len, visible_len
from tests.helpers.fake_bot_api import telegram_html_to_plain
from tests.helpers.telegram_html_checks import utf16_units, valid_telegram_html

BASE = "https://example.com/news/item-1"


@pytest.mark.parametrize(
    "text", ["", "abc", "😀", "a😀b", "👨‍👩‍👧", "🇺🇦", "𝔘𝔫", "é", "e\u0301", "\uffff", "\U0010ffff"]
)
def test_utf16_len_counts_astral_characters_twice(text: str) -> None:
    assert utf16_len(text) == utf16_units(text)


@pytest.mark.parametrize(
    ("telegram_html", "expected"),
    [
        ("", 0),
        ("<b>bold</b>", 4),
        ('<a href="https://a.very.long/url">x</a>', 1),
        ("&lt;&gt;&amp;&quot;", 4),
        ("&#128512;", 2),
        ("<b>😀</b>\n<i>🇺🇦</i>", 7),
        ('<blockquote expandable>q</blockquote><pre><code class="language-py">c</code></pre>', 2),
    ],
)
def test_visible_len_counts_text_after_entity_parsing(telegram_html: str, expected: int) -> None:
    assert visible_len(telegram_html) == expected


def test_a_long_body_is_cut_at_a_word_boundary_within_the_limit() -> None:
    body = "<p>" + " ".join(f"word{n}" for n in range(3000)) + "</p>"  # ~20,000 characters
    result = to_telegram_html(body, BASE, limit=50)
    assert result == "word0 word1 word2 word3 word4 word5 word6 word7…"
    assert utf16_units(valid_telegram_html(result, 50)) <= 50


def test_a_cut_closes_open_tags_in_order_and_never_splits_an_entity() -> None:
    body = '<b>bold <a href="https://a.b/?x=1&amp;y=2">link &amp; text here</a> more</b>'
    result = to_telegram_html(body, BASE, limit=14)
    assert result == '<b>bold <a href="https://a.b/?x=1&amp;y=2">link &amp;…</a></b>'
    valid_telegram_html(result, 14)


def test_a_single_huge_word_is_cut_inside_the_word() -> None:
    assert to_telegram_html("a" * 10_000, BASE, limit=10) == "a" * 9 + ELLIPSIS


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("😀" * 10, 7, "😀😀😀…"),  # 3 × 2 units + 1: a pair is never split
        ("ab👨‍👩‍👧cd", 7, "ab…"),  # the family emoji is kept whole or not at all
        ("xy🇺🇦🇺🇦", 6, "xy…"),  # a flag is two regional indicators: never half a flag
        ("xy🇺🇦🇺🇦", 7, "xy🇺🇦…"),
        ("ae\u0301e\u0301e\u0301", 4, "ae\u0301…"),  # an accent stays with its letter
        ("short", 5, "short"),
        ("toolong", 0, ""),
    ],
)
def test_cuts_respect_utf16_and_joined_characters(text: str, limit: int, expected: str) -> None:
    result = to_telegram_html(text, None, limit=limit)
    assert result == expected
    assert utf16_units(result) <= limit


def test_truncate_html_returns_fitting_text_unchanged() -> None:
    text = '<blockquote expandable>a &amp; b</blockquote> <a href="https://a.b/?q=&quot;">x</a>'
    assert truncate_html(text, visible_len(text)) == text


def test_truncate_html_cuts_converted_html_and_keeps_attributes() -> None:
    text = '<b>hello <i>big</i> world</b> tail <a href="https://a.b/?q=1&amp;r=2">link text</a>'
    assert truncate_html(text, 12) == "<b>hello <i>big…</i></b>"
    assert truncate_html(text, 22, ellipsis=" [more]") == "<b>hello <i>big</i> world [more]</b>"
    assert truncate_html(text, 27) == (
        '<b>hello <i>big</i> world</b> tail <a href="https://a.b/?q=1&amp;r=2">link…</a>'
    )


def test_truncate_html_keeps_empty_tags_before_the_cut_point_balanced() -> None:
    text = "<b></b>one two three <i>four</i>"
    result = truncate_html(text, 8)
    assert result == "<b></b>one two…"
    telegram_html_to_plain(result)
