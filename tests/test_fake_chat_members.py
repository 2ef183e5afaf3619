"""The fake Bot API answers getChat and getChatMember about other chats as Telegram does,
and refuses to write first to a user who never started the bot.

Driven by PTB's own ``Bot``, so the shapes must parse into the right ChatMember classes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from telegram import Bot, ChatMemberAdministrator, ChatMemberLeft, ChatMemberRestricted
from telegram.error import BadRequest, Forbidden

from tests.helpers.fake_bot_api import FakeBotAPI

CHANNEL, GROUP = -1001000000001, -1001000000002
USER = 501  # has not started the bot unless a test makes them
CANT_INITIATE = "Forbidden: bot can't initiate conversation with a user"


@pytest.fixture
async def bot(fake_api: FakeBotAPI) -> AsyncIterator[Bot]:
    async with Bot(fake_api.token, base_url=f"{fake_api.base_url}/bot") as ptb_bot:
        yield ptb_bot


async def test_unknown_chats_are_not_found(fake_api: FakeBotAPI, bot: Bot) -> None:
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.get_chat(-1009999)
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.get_chat("@nobody_here")
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.get_chat_member(-1009999, 5)


async def test_chats_are_found_by_username_in_any_case(fake_api: FakeBotAPI, bot: Bot) -> None:
    fake_api.set_chat(CHANNEL, "channel", title="Daily", username="daily_news")
    chat = await bot.get_chat("@Daily_News")
    assert (chat.id, chat.type, chat.title, chat.username) == (
        CHANNEL,
        "channel",
        "Daily",
        "daily_news",
    )


async def test_admin_rights_depend_on_the_chat_type(fake_api: FakeBotAPI, bot: Bot) -> None:
    fake_api.set_chat(CHANNEL, "channel", title="Daily")
    fake_api.set_chat(GROUP, "supergroup", title="Team")
    fake_api.set_admin(CHANNEL, fake_api.bot_id)
    fake_api.set_admin(CHANNEL, 7, can_post_messages=False)
    fake_api.set_admin(GROUP, 7)
    bot_in_channel = await bot.get_chat_member(CHANNEL, fake_api.bot_id)
    user_in_channel = await bot.get_chat_member(CHANNEL, 7)
    user_in_group = await bot.get_chat_member(GROUP, 7)
    assert isinstance(bot_in_channel, ChatMemberAdministrator)
    assert isinstance(user_in_channel, ChatMemberAdministrator)
    assert isinstance(user_in_group, ChatMemberAdministrator)
    assert bot_in_channel.user.is_bot
    assert (bot_in_channel.can_post_messages, bot_in_channel.can_pin_messages) == (True, None)
    assert user_in_channel.can_post_messages is False
    assert user_in_channel.can_change_info is True
    assert (user_in_group.can_post_messages, user_in_group.can_pin_messages) == (None, True)
    assert user_in_group.can_manage_topics is True


async def test_only_channel_admins_see_its_members(fake_api: FakeBotAPI, bot: Bot) -> None:
    fake_api.set_chat(CHANNEL, "channel", title="Daily", username="daily")
    fake_api.set_admin(CHANNEL, fake_api.bot_id, "left")
    fake_api.set_admin(CHANNEL, 7, "creator")
    itself = await bot.get_chat_member(CHANNEL, fake_api.bot_id)
    with pytest.raises(BadRequest, match="Member list is inaccessible"):
        await bot.get_chat_member(CHANNEL, 7)
    assert isinstance(itself, ChatMemberLeft)


async def test_restricted_members_and_removed_bots(fake_api: FakeBotAPI, bot: Bot) -> None:
    fake_api.set_chat(GROUP, "supergroup", title="Team")
    fake_api.set_admin(GROUP, 7, "restricted", can_send_messages=True)
    restricted = await bot.get_chat_member(GROUP, 7)
    assert isinstance(restricted, ChatMemberRestricted)
    assert (restricted.can_send_messages, restricted.can_send_polls) == (True, False)
    fake_api.set_admin(GROUP, fake_api.bot_id, "kicked")
    with pytest.raises(Forbidden, match="kicked from the supergroup chat"):
        await bot.get_chat(GROUP)
    fake_api.set_admin(GROUP, fake_api.bot_id, "left")
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.get_chat(GROUP)  # a private group the bot is not in


def test_rights_must_fit_the_status(fake_api: FakeBotAPI) -> None:
    with pytest.raises(ValueError, match="can_post_messages"):
        fake_api.set_admin(GROUP, 7, "member", can_post_messages=True)
    with pytest.raises(ValueError, match="can_fly"):
        fake_api.set_admin(GROUP, 7, "administrator", can_fly=True)


# ------------------------------------------------------------------ writing first


async def test_a_user_who_never_started_the_bot_cannot_be_written_to(
    fake_api: FakeBotAPI, bot: Bot
) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        raw = await client.post(
            f"{fake_api.base_url}/bot{fake_api.token}/sendMessage",
            data={"chat_id": str(USER), "text": "hi"},
        )
    assert raw.status_code == 403
    assert raw.json() == {"ok": False, "error_code": 403, "description": CANT_INITIATE}
    with pytest.raises(Forbidden, match="can't initiate conversation with a user"):
        await bot.send_message(USER, "hi")
    with pytest.raises(Forbidden, match="can't initiate conversation with a user"):
        await bot.send_photo(USER, "https://img.example/cat.jpg", caption="x")
    with pytest.raises(Forbidden, match="can't initiate conversation with a user"):
        await bot.send_document(USER, document=b"<opml/>", filename="feeds.opml")
    with pytest.raises(Forbidden, match="can't initiate conversation with a user"):
        await bot.copy_message(USER, from_chat_id=GROUP, message_id=1)
    assert fake_api.sent_messages() == []
    assert fake_api.files.sent_documents == []
    fake_api.blocked_chats.add(USER + 1)  # one who blocked it gets that answer instead
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(USER + 1, "hi")
    assert (await bot.send_message(GROUP, "groups need no start")).chat.id == GROUP
    assert await bot.send_chat_action(USER, "typing")  # an action posts no message


async def test_only_the_users_own_private_message_starts_the_bot(
    fake_api: FakeBotAPI, bot: Bot
) -> None:
    fake_api.send_command("/news", chat_id=GROUP, user_id=USER, chat_type="supergroup")
    with pytest.raises(Forbidden, match="can't initiate conversation"):
        await bot.send_message(USER, "seen in a group is not enough")
    fake_api.send_command("/start", chat_id=USER, user_id=USER)
    assert (await bot.send_message(USER, "welcome")).chat.id == USER
    other = USER + 1  # a raw update (as the control API queues it) counts the same
    chat = {"id": other, "type": "private", "first_name": "O"}
    sender = {"id": other, "is_bot": False, "first_name": "O"}
    fake_api.add_update({"message": {"message_id": 1, "date": 0, "chat": chat, "from": sender}})
    assert (await bot.send_message(other, "hi")).chat.id == other
    assert [m["chat_id"] for m in fake_api.sent_messages()] == [USER, other]


async def test_start_private_chat_or_pressing_start_lets_the_bot_write(
    fake_api: FakeBotAPI, bot: Bot
) -> None:
    fake_api.start_private_chat(USER)
    assert (await bot.send_message(USER, "hi")).text == "hi"
    pressed = USER + 1  # Start pressed (or the bot unblocked): a my_chat_member update
    fake_api.my_chat_member(pressed, "private", "kicked", "member", user_id=pressed)
    assert (await bot.send_message(pressed, "hi")).text == "hi"
    left = USER + 2
    fake_api.my_chat_member(left, "private", "member", "kicked", user_id=left)
    with pytest.raises(Forbidden):
        await bot.send_message(left, "hi")
    with pytest.raises(ValueError, match="positive"):
        fake_api.start_private_chat(GROUP)
