"""The rights rule in isolation: who may manage a chat, whether the bot may post, errors.

ChatMember objects are built from the fake Bot API's JSON (Telegram's shapes) and parsed by
PTB, exactly as the running bot receives them. ``may_manage`` gets a small stand-in context
that records which Bot API calls it makes.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from telegram import ChatMember
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError, TimedOut

from bot.config import Settings
from bot.context import BotContext
from bot.handlers.rights import bot_refusal, error_refusal, may_manage, user_refusal
from bot.i18n import translator
from bot.models import Chat
from tests.helpers.fake_members import chat_member

T = translator("en")
NOT_ADMIN = "You are not an administrator of X."
CANNOT_POST = (
    "You are an administrator of X but may neither post messages nor change its info, so "
    "you can't choose what I post in it."
)
NEITHER = {"can_post_messages": False, "can_change_info": False}
BOT_NOT_ADMIN = "I'm not an administrator of X with permission to post; add me as an admin first."
BOT_CANNOT_POST = (
    "I'm an administrator of X but may not post messages; turn on “Post messages” for me "
    "in its administrator settings."
)
BOT_NOT_MEMBER = "I'm not a member of X; add me to it first."
BOT_MUTED = "I'm not allowed to send messages in X; lift my restrictions first."


def member(status: str, chat_type: str, user_id: int = 7, **rights: bool) -> ChatMember:
    user = {"id": user_id, "is_bot": False, "first_name": "U"}
    data = chat_member(user, status, chat_type, rights)
    parsed = ChatMember.de_json(data, None)
    assert parsed is not None
    return parsed


@pytest.mark.parametrize(
    ("status", "chat_type", "rights", "expected"),
    [
        ("creator", "channel", {}, None),
        ("administrator", "channel", {}, None),
        ("administrator", "channel", {"can_post_messages": False}, None),  # may change info
        ("administrator", "channel", {"can_change_info": False}, None),  # may post
        ("administrator", "channel", NEITHER, CANNOT_POST),
        ("member", "channel", {}, NOT_ADMIN),
        ("creator", "supergroup", {}, None),
        ("administrator", "supergroup", {"can_change_info": False}, None),
        ("administrator", "group", {}, None),
        ("member", "group", {}, NOT_ADMIN),
        ("restricted", "supergroup", {"can_send_messages": True}, NOT_ADMIN),
        ("left", "supergroup", {}, NOT_ADMIN),
        ("kicked", "supergroup", {}, NOT_ADMIN),
    ],
)
def test_who_may_manage(
    status: str, chat_type: str, rights: dict[str, bool], expected: str | None
) -> None:
    assert user_refusal(member(status, chat_type, **rights), chat_type, "X", T) == expected


@pytest.mark.parametrize(
    ("status", "chat_type", "rights", "expected"),
    [
        ("administrator", "channel", {}, None),
        ("administrator", "channel", {"can_post_messages": False}, BOT_CANNOT_POST),
        # Changing the channel's info does not let the bot post in it.
        (
            "administrator",
            "channel",
            {"can_post_messages": False, "can_change_info": True},
            BOT_CANNOT_POST,
        ),
        ("member", "channel", {}, BOT_NOT_ADMIN),
        ("left", "channel", {}, BOT_NOT_ADMIN),
        ("member", "supergroup", {}, None),
        ("administrator", "supergroup", {}, None),
        ("restricted", "supergroup", {"can_send_messages": True}, None),
        ("restricted", "supergroup", {}, BOT_MUTED),
        ("left", "group", {}, BOT_NOT_MEMBER),
        ("kicked", "supergroup", {}, BOT_NOT_MEMBER),
    ],
)
def test_whether_the_bot_may_post(
    status: str, chat_type: str, rights: dict[str, bool], expected: str | None
) -> None:
    assert bot_refusal(member(status, chat_type, **rights), chat_type, "X", T) == expected


@pytest.mark.parametrize(
    ("error", "chat_type", "expected"),
    [
        (Forbidden("Forbidden: bot is not a member of the channel chat"), "channel", BOT_NOT_ADMIN),
        (Forbidden("Forbidden: bot was kicked from the group chat"), "group", BOT_NOT_MEMBER),
        (BadRequest("Bad Request: member list is inaccessible"), "channel", BOT_NOT_ADMIN),
        (
            BadRequest("Bad Request: chat not found"),
            None,
            "I can't find X — is it public, and am I a member?",
        ),
        (BadRequest("Bad Request: user not found"), "group", NOT_ADMIN),
        (
            TimedOut(),
            "group",
            "Telegram did not answer while I checked X; please try again in a minute.",
        ),
        (
            RetryAfter(5),
            "group",
            "Telegram did not answer while I checked X; please try again in a minute.",
        ),
        (
            BadRequest("Bad Request: not enough rights"),
            "group",
            "Telegram would not let me check X (Not enough rights).",
        ),
        (TelegramError("odd"), "group", "Telegram would not let me check X (odd)."),
    ],
)
def test_telegram_errors_become_specific_answers(
    error: TelegramError, chat_type: str | None, expected: str
) -> None:
    assert error_refusal(error, "X", chat_type, T) == expected


class StubBot:
    """Answers getChat/getChatMember from tables and records each call."""

    id = 1

    def __init__(self, members: dict[int, ChatMember], chat_error: TelegramError | None = None):
        self.members = members
        self.chat_error = chat_error
        self.calls: list[tuple[str, Any]] = []

    async def get_chat(self, chat_id: int) -> Any:
        self.calls.append(("getChat", chat_id))
        if self.chat_error is not None:
            raise self.chat_error
        return SimpleNamespace(id=chat_id, type="supergroup", title="Team", username=None)

    async def get_chat_member(self, chat_id: int, user_id: int) -> ChatMember:
        self.calls.append(("getChatMember", chat_id))
        return self.members[user_id]


def context_with(bot: StubBot, stored: dict[int, Chat] | None = None) -> BotContext:
    settings = Settings(token="1:x", admin_ids=frozenset({99}))
    storage = SimpleNamespace(chat=(stored or {}).get)
    return cast(
        BotContext,
        SimpleNamespace(services=SimpleNamespace(settings=settings), storage=storage, bot=bot),
    )


async def test_may_manage_asks_telegram_only_when_it_must() -> None:
    bot = StubBot({7: member("administrator", "supergroup"), 8: member("member", "supergroup")})
    stored = {-100: Chat(chat_id=-100, type="supergroup", title="Team")}
    context = context_with(bot, stored)
    assert await may_manage(context, 99, -100) is None  # operator: no call
    assert await may_manage(context, 5, 5) is None  # one's own private chat: no call
    assert await may_manage(context, 5, 6) == "That is someone else's private chat."
    assert bot.calls == []
    assert await may_manage(context, 7, -100) is None
    assert await may_manage(context, 8, -100) == "You are not an administrator of Team."
    assert bot.calls == [("getChatMember", -100), ("getChatMember", -100)]


async def test_may_manage_looks_up_unknown_chats() -> None:
    bot = StubBot({7: member("administrator", "supergroup")})
    assert await may_manage(context_with(bot), 7, -200) is None
    assert bot.calls == [("getChat", -200), ("getChatMember", -200)]
    gone = StubBot({}, chat_error=BadRequest("Bad Request: chat not found"))
    answer = await may_manage(context_with(gone), 7, -200)
    assert answer == "I can't find -200 — is it public, and am I a member?"
