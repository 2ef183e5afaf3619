"""Pure helpers of bot/handlers/common.py (the async ones are covered end to end)."""

from __future__ import annotations

from bot.handlers.common import headed


def test_headed_names_the_chat_first_in_bold_and_escapes_its_name() -> None:
    assert headed("<A & B>", "<i>text</i>") == "<b>&lt;A &amp; B&gt;</b>\n<i>text</i>"
