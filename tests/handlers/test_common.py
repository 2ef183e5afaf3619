"""Pure helpers of bot/handlers/common.py (the async ones are covered end to end)."""

from __future__ import annotations

from telegram import Chat

from bot.handlers.common import Target, headed, heading, stored_title


def test_headed_names_the_chat_first_in_bold_and_escapes_its_name() -> None:
    assert headed("<A & B>", "<i>text</i>") == "<b>&lt;A &amp; B&gt;</b>\n<i>text</i>"


def test_heading_names_a_remote_target_and_nothing_for_the_chat_itself() -> None:
    remote = Target(-1001, "channel", "Title & Co", True, (), "mychannel")
    titled = Target(-1002, "supergroup", "Title & Co", True)
    local = Target(-1003, "supergroup", "Here", False)
    assert heading(remote) == "<b>@mychannel</b>"
    assert heading(titled) == "<b>Title &amp; Co</b>"
    assert heading(local) == ""


def test_a_chat_is_stored_under_its_title_else_a_persons_name_else_its_username() -> None:
    assert stored_title(Chat(-1, Chat.SUPERGROUP, title="Readers", username="readers")) == (
        "Readers"
    )
    assert stored_title(Chat(5, Chat.PRIVATE, first_name="Ann", last_name="Lee")) == "Ann Lee"
    assert stored_title(Chat(6, Chat.PRIVATE, username="ann")) == "ann"
    assert stored_title(Chat(7, Chat.PRIVATE)) == ""
