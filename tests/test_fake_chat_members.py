"""The fake Bot API answers getChat and getChatMember about other chats as Telegram does.

Driven by PTB's own ``Bot``, so the shapes must parse into the right ChatMember classes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from telegram import Bot, ChatMemberAdministrator, ChatMemberLeft, ChatMemberRestricted
from telegram.error import BadRequest, Forbidden

from tests.helpers.fake_bot_api import FakeBotAPI

CHANNEL, GROUP = -1001000000001, -1001000000002


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
