"""/list pages: every page fits one message and one keyboard, whatever the titles and URLs."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.i18n import translator
from bot.listing import (
    PAGE_SIZE,
    Entry,
    find,
    numbered,
    page_count,
    page_of,
    render_filters,
    render_page,
)
from bot.models import Chat, Filters
from bot.services.buttons import MAX_DATA_BYTES, ButtonSigner, url_key
from bot.services.filters import MAX_TERM_CHARS, MAX_TERMS
from tests.helpers.fake_bot_api import MAX_MESSAGE_LENGTH, telegram_html_to_plain

EN = translator("en")
SIGNER = ButtonSigner("123456789:" + "A" * 35)
CHAT = Chat(chat_id=-1_009_999_999_999, type="supergroup", title="G", paused=True,
            filters=Filters(include=tuple("w" * 50 for _ in range(20))))  # fmt: skip


def worst_entries(total: int) -> list[Entry]:
    """Entries with the longest titles and URLs, HTML-heavy, every status set."""
    return [
        Entry(n, f"https://e.example/{n}/" + "&<>" * 1000, "<&>" * 200, muted=True,
              filters=Filters(include=("x",)), paused=n % 2 == 0, failing=True)
        for n in range(1, total + 1)
    ]  # fmt: skip


@pytest.mark.parametrize("page", range(page_count(1001)))
def test_every_page_fits_one_message_and_one_keyboard(page: int) -> None:
    entries = worst_entries(1001)
    text, markup = render_page(EN, SIGNER, CHAT, entries, page)
    assert len(telegram_html_to_plain(text)) <= MAX_MESSAGE_LENGTH  # what Telegram counts
    assert markup is not None
    buttons = [b for row in markup.inline_keyboard for b in row]
    assert len(buttons) <= 100
    assert all(len(str(b.callback_data).encode()) <= MAX_DATA_BYTES for b in buttons)
    shown = [int(line.split(".", 1)[0]) for line in telegram_html_to_plain(text).splitlines()
             if line[:1].isdigit()]  # fmt: skip
    assert shown == list(range(page * PAGE_SIZE + 1, min(1001, (page + 1) * PAGE_SIZE) + 1))


def test_the_biggest_filters_view_fits_one_message() -> None:
    full = Filters(
        include=tuple(f"{n:02d}" + "i" * (MAX_TERM_CHARS - 2) for n in range(MAX_TERMS)),
        exclude=tuple(f"{n:02d}" + "e" * (MAX_TERM_CHARS - 2) for n in range(MAX_TERMS)),
    )
    chat = Chat(chat_id=-5, type="group", title="G", filters=full)
    [entry] = worst_entries(1)
    text, markup = render_filters(EN, SIGNER, chat, replace(entry, filters=full), 0)
    plain = telegram_html_to_plain(text)
    assert len(plain) <= MAX_MESSAGE_LENGTH
    assert plain.count("i" * (MAX_TERM_CHARS - 2)) == MAX_TERMS  # every term is shown
    assert "This chat's filters apply too (/filter shows them)." in plain
    assert [b.text for b in markup.inline_keyboard[0]] == ["🧹 Clear filters", "◀ Back to the list"]


def test_pages_are_clamped_and_numbered() -> None:
    entries = worst_entries(25)
    assert page_count(0) == 1
    assert page_count(25) == 3
    assert (page_of(1), page_of(10), page_of(11), page_of(25)) == (0, 0, 1, 2)
    last, _ = render_page(EN, SIGNER, CHAT, entries, 99)
    assert "21–25 of 25" in last
    first, _ = render_page(EN, SIGNER, CHAT, entries, -3)
    assert "1–10 of 25" in first


def test_an_empty_list_has_no_buttons() -> None:
    assert render_page(EN, SIGNER, CHAT, [], 0) == (
        "No feeds yet. Add one with /add &lt;url&gt;.",
        None,
    )


def test_find_uses_the_key_wherever_the_feed_is_now() -> None:
    entries = worst_entries(3)
    assert find(entries, url_key(entries[2].url)) is entries[2]
    assert find(entries, url_key("https://gone.example/")) is None


def test_numbered_takes_the_numbers_list_shows_and_nothing_else() -> None:
    entries = worst_entries(3)
    assert [numbered(entries, n) for n in (1, 2, 3)] == entries
    assert [numbered(entries, n) for n in (0, -1, 4, 10**9)] == [None] * 4
    assert numbered([], 1) is None
