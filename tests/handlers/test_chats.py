"""The bot added, removed and added back (``my_chat_member``), through the real Application."""

from __future__ import annotations

from collections.abc import Callable

from bot.config import Settings
from bot.models import Chat, Delivery
from bot.storage import get_storage_service
from tests.helpers.bot_runner import eventually, running_bot
from tests.helpers.fake_bot_api import FakeBotAPI

SettingsFactory = Callable[..., Settings]
GROUP, ADMIN, PERSON = -4201, 4210, 4202


def stored(chat_id: int) -> Chat | None:
    return get_storage_service().chat(chat_id)


async def until_active(chat_id: int, active: bool) -> None:
    async def check() -> bool:
        chat = stored(chat_id)
        return chat is not None and chat.active == active

    await eventually(check, what=f"chat {chat_id} active={active}")


async def test_a_group_that_adds_the_bot_back_is_registered_with_the_default_delivery(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    digest = Delivery("every", interval_s=3600)
    async with running_bot(bot_settings(default_delivery=digest)):
        fake_api.my_chat_member(GROUP, "group", "left", "member", user_id=ADMIN)
        await until_active(GROUP, True)
        added = stored(GROUP)
        fake_api.my_chat_member(GROUP, "group", "member", "left", user_id=ADMIN)
        await until_active(GROUP, False)
        fake_api.my_chat_member(GROUP, "group", "left", "member", user_id=ADMIN)
        await until_active(GROUP, True)
        back = stored(GROUP)
    assert added is not None and back is not None
    assert (added.type, added.title, added.delivery) == ("group", f"Chat {GROUP}", digest)
    assert added.language is None  # a group records nobody's language
    assert back.next_digest_at is not None  # its digest is scheduled again


async def test_a_person_who_unblocks_the_bot_gets_their_chat_back_in_their_language(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings()):
        fake_api.my_chat_member(PERSON, "private", "kicked", "member", user_id=PERSON)
        await until_active(PERSON, True)
        chat = stored(PERSON)
    assert chat is not None
    assert (chat.type, chat.title, chat.language) == ("private", f"User{PERSON}", "en")
