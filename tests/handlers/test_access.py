"""Private mode (``BOT_ALLOWED_USERS`` / ``BOT_ALLOWED_CHATS``) end to end, and its parts.

Refused updates must cost nothing: one polite answer per hour per (chat, user), no chat
registered, no storage write, no handler run. Operators and listed users or chats pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest

from bot.config import Settings
from bot.handlers.access import RefusalMemory, is_allowed
from bot.storage import get_storage_service
from tests.helpers.bot_runner import eventually, running_bot
from tests.helpers.conversation import say
from tests.helpers.fake_bot_api import FakeBotAPI

SettingsFactory = Callable[..., Settings]
REFUSAL = "Sorry, this bot is private: its operator has not given you access."
GREETING = "👋 Hi! I collect news from RSS, Atom and JSON feeds and post it here."
ALLOWED, STRANGER, OPERATOR = 600, 601, 602
GROUP, OTHER_GROUP = -1005550001, -1005550002


@pytest.fixture
def refusals(caplog: pytest.LogCaptureFixture) -> Callable[[], int]:
    """How many updates the gate has refused so far (each one is logged once)."""
    caplog.set_level(logging.INFO, logger="bot.handlers.access")

    def count() -> int:
        return sum(1 for r in caplog.records if getattr(r, "event", "") == "access_refused")

    return count


async def wait_refused(count: Callable[[], int], n: int) -> None:
    async def done() -> bool:
        return count() >= n

    await eventually(done, timeout=10, what=f"{n} refused updates")


async def test_a_stranger_is_refused_once_and_nothing_is_stored(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, refusals: Callable[[], int]
) -> None:
    settings = bot_settings(allowed_users=frozenset({ALLOWED}))
    async with running_bot(settings):
        storage = get_storage_service()
        writes_before = storage.write_count
        first = await say(fake_api, "/start", STRANGER)
        for text in ("/add https://example.com/feed.xml", "hello", "/news"):
            fake_api.send_command(text, chat_id=STRANGER, user_id=STRANGER)
        await wait_refused(refusals, 4)
        await storage.flush()
        writes_after, stranger_chat = storage.write_count, storage.chat(STRANGER)
        counters = storage.counters()
        allowed = await say(fake_api, "/start", ALLOWED)
        told = [m["plain"] for m in fake_api.sent_messages(STRANGER)]
    assert first == REFUSAL
    assert told == [REFUSAL]  # one answer for four messages
    assert stranger_chat is None
    assert writes_after == writes_before
    assert str(STRANGER) not in counters["chats"]
    assert allowed.startswith(GREETING)


async def test_operators_listed_users_and_listed_chats_pass(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, refusals: Callable[[], int]
) -> None:
    settings = bot_settings(
        allowed_users=frozenset({ALLOWED}),
        allowed_chats=frozenset({GROUP}),
        admin_ids=frozenset({OPERATOR}),
    )
    in_group = {"chat_type": "supergroup", "chat_title": "Team"}
    async with running_bot(settings):
        operator = await say(fake_api, "/list", OPERATOR)
        member_in_group = await say(fake_api, "/list", GROUP, STRANGER, **in_group)
        stranger_alone = await say(fake_api, "/list", STRANGER)
        allowed_elsewhere = await say(
            fake_api, "/list", OTHER_GROUP, ALLOWED, chat_type="group", chat_title="Other"
        )
        stranger_elsewhere = await say(
            fake_api, "/list", OTHER_GROUP, STRANGER, chat_type="group", chat_title="Other"
        )
        storage = get_storage_service()
        registered = {c.chat_id for c in storage.chats()}
    assert operator.startswith("No feeds yet.")
    assert member_in_group.startswith("No feeds yet.")
    assert stranger_alone == REFUSAL
    assert allowed_elsewhere.startswith("No feeds yet.")
    assert stranger_elsewhere == REFUSAL
    assert registered == {OPERATOR, GROUP, OTHER_GROUP}


async def test_groups_and_channels_hear_one_refusal_for_commands_only(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, refusals: Callable[[], int]
) -> None:
    settings = bot_settings(allowed_chats=frozenset({GROUP}))
    in_other = {"chat_type": "group", "chat_title": "Other"}

    def in_other_group(text: str) -> None:
        fake_api.send_command(
            text, chat_id=OTHER_GROUP, user_id=STRANGER, chat_type="group", chat_title="Other"
        )

    async with running_bot(settings):
        in_other_group("just chatting")
        await wait_refused(refusals, 1)
        refused = await say(fake_api, "/news", OTHER_GROUP, STRANGER, **in_other)
        in_other_group("/list")
        fake_api.channel_post("/list", chat_id=-1005550003)
        fake_api.channel_post("/list", chat_id=-1005550003)
        await wait_refused(refusals, 5)
        allowed_channel_reply = await fake_api.wait_for_messages(1, chat_id=-1005550003)
        fake_api.my_chat_member(OTHER_GROUP, "group", "left", "member", user_id=STRANGER)
        await wait_refused(refusals, 6)
        storage = get_storage_service()
        other, channel = storage.chat(OTHER_GROUP), storage.chat(-1005550003)
        in_group = [m["plain"] for m in fake_api.sent_messages(OTHER_GROUP)]
    assert refused == REFUSAL
    assert in_group == [REFUSAL]  # the chatter got no answer, the second command neither
    assert [m["plain"] for m in allowed_channel_reply] == [REFUSAL]
    assert other is None  # being added by a stranger registered nothing
    assert channel is None


async def test_button_presses_of_strangers_are_answered_politely(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, refusals: Callable[[], int]
) -> None:
    settings = bot_settings(allowed_users=frozenset({ALLOWED}))

    def press(n: int) -> None:
        fake_api.add_update(
            {
                "callback_query": {
                    "id": f"cb-{n}",
                    "from": {"id": STRANGER, "is_bot": False, "first_name": "S"},
                    "chat_instance": "ci",
                    "data": "list:1",
                    "message": {
                        "message_id": 1,
                        "date": int(time.time()),
                        "chat": {"id": STRANGER, "type": "private", "first_name": "S"},
                        "text": "an old list",
                    },
                }
            }
        )

    async with running_bot(settings):
        press(1)
        await fake_api.wait_for_call("answerCallbackQuery", 1)
        press(2)
        await fake_api.wait_for_call("answerCallbackQuery", 2)
        stored = get_storage_service().chat(STRANGER)
    first, second = (c.params for c in fake_api.calls_to("answerCallbackQuery"))
    assert (first["callback_query_id"], first.get("text")) == ("cb-1", REFUSAL)
    assert (second["callback_query_id"], second.get("text")) == ("cb-2", None)
    assert fake_api.sent_messages() == []
    assert stored is None


async def test_removing_the_bot_from_a_known_chat_still_deactivates_it(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    settings = bot_settings(allowed_users=frozenset({ALLOWED}))
    async with running_bot(settings):
        storage = get_storage_service()
        await storage.ensure_chat(OTHER_GROUP, "group", "Old friends")
        fake_api.my_chat_member(OTHER_GROUP, "group", "member", "left", user_id=STRANGER)

        async def inactive() -> bool:
            chat = storage.chat(OTHER_GROUP)
            return chat is not None and not chat.active

        await eventually(inactive, what="the chat being deactivated")


async def test_open_bot_serves_everyone(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings()):
        answer = await say(fake_api, "/start", STRANGER)
    assert answer.startswith(GREETING)


# --------------------------------------------------------------------------- the parts


def test_allow_rule() -> None:
    open_bot = Settings(token="1:x")
    private = Settings(
        token="1:x",
        admin_ids=frozenset({1}),
        allowed_users=frozenset({2}),
        allowed_chats=frozenset({-100}),
    )
    assert is_allowed(open_bot, 5, 5)
    assert is_allowed(open_bot, None, None)
    assert is_allowed(private, 1, 1)  # operator anywhere
    assert is_allowed(private, 2, -999)  # listed user anywhere
    assert is_allowed(private, 5, -100)  # anyone in a listed chat
    assert is_allowed(private, None, -100)  # channel posts of a listed channel
    assert not is_allowed(private, 5, 5)
    assert not is_allowed(private, None, -999)
    assert not is_allowed(private, None, None)
    only_chats = Settings(token="1:x", allowed_chats=frozenset({-100}))
    assert not is_allowed(only_chats, 5, 5)


def test_refusal_memory_tells_once_per_window_and_stays_bounded() -> None:
    now = [1000.0]
    memory = RefusalMemory(every_s=3600, max_size=3, clock=lambda: now[0])
    assert memory.should_tell((1, 1))
    assert not memory.should_tell((1, 1))
    now[0] += 3599
    assert not memory.should_tell((1, 1))
    now[0] += 1
    assert memory.should_tell((1, 1))  # an hour later: once more
    for key in ((2, 2), (3, 3), (4, 4)):
        assert memory.should_tell(key)
    assert len(memory) == 3  # (1, 1), the oldest, was forgotten
    assert memory.should_tell((1, 1))
    assert not memory.should_tell((4, 4))
