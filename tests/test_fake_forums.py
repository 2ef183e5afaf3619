"""FakeBotAPI's forum topics, driven by real PTB: it places and refuses messages like Telegram.

Sending: ``message_thread_id`` wins; a reply without it goes to the replied message's topic;
closed topics answer "TOPIC_CLOSED", deleted or unknown ones "message thread not found"
(and any thread id in a chat without topics); General is no thread (id 1 is refused).
Receiving: topic messages carry ``message_thread_id`` and ``is_topic_message``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from telegram import Bot, ReplyParameters, Update
from telegram.error import BadRequest

from tests.helpers.fake_bot_api import FakeBotAPI

FORUM = -1001234500001
PLAIN_SUPERGROUP = -1001234500002


@pytest.fixture
async def bot(fake_api: FakeBotAPI) -> AsyncIterator[Bot]:
    """PTB on the fake; users 1-99 started the bot (tests here check other rules)."""
    for user_id in range(1, 100):
        fake_api.start_private_chat(user_id)
    async with Bot(fake_api.token, base_url=f"{fake_api.base_url}/bot") as ptb_bot:
        yield ptb_bot


async def updates(fake: FakeBotAPI, bot: Bot) -> list[Update]:
    """Everything queued, parsed by PTB (and confirmed, so the next call sees only new ones)."""
    got = list(await bot.get_updates(timeout=0))
    if got:
        await bot.get_updates(offset=got[-1].update_id + 1, timeout=0)
    return got


async def test_messages_go_to_the_topic_asked_for_or_to_general(
    fake_api: FakeBotAPI, bot: Bot
) -> None:
    fake_api.make_forum(FORUM)
    tech = fake_api.create_topic(FORUM, "Tech")
    in_topic = await bot.send_message(FORUM, "in the topic", message_thread_id=tech)
    in_general = await bot.send_message(FORUM, "in General")
    assert tech > 1  # 1 is General's
    assert (in_topic.message_thread_id, in_topic.is_topic_message) == (tech, True)
    assert in_general.message_thread_id is None
    assert [m["plain"] for m in fake_api.topic_messages(FORUM, tech)] == ["in the topic"]
    assert [m["plain"] for m in fake_api.topic_messages(FORUM, None)] == ["in General"]


async def test_a_reply_follows_the_replied_message_unless_it_was_deleted(
    fake_api: FakeBotAPI, bot: Bot
) -> None:
    fake_api.make_forum(FORUM)
    tech = fake_api.create_topic(FORUM, "Tech")
    fake_api.send_command("/help", chat_id=FORUM, user_id=5, chat_type="supergroup", thread_id=tech)
    [update] = await updates(fake_api, bot)
    command = update.effective_message
    assert command is not None
    quoting = ReplyParameters(command.message_id, allow_sending_without_reply=True)
    follows = await bot.send_message(FORUM, "answer", reply_parameters=quoting)
    fake_api.delete_message(FORUM, command.message_id)
    orphan = await bot.send_message(FORUM, "late answer", reply_parameters=quoting)
    assert follows.message_thread_id == tech
    assert orphan.message_thread_id is None


async def test_closed_deleted_and_unknown_topics_are_refused_like_telegram(
    fake_api: FakeBotAPI, bot: Bot
) -> None:
    fake_api.make_forum(FORUM)
    fake_api.set_chat(PLAIN_SUPERGROUP, "supergroup")
    closed = fake_api.create_topic(FORUM, "Closed")
    deleted = fake_api.create_topic(FORUM, "Deleted")
    fake_api.close_topic(FORUM, closed)
    fake_api.delete_topic(FORUM, deleted)
    cases = [
        (FORUM, closed, "Topic_closed"),  # PTB capitalises Telegram's "TOPIC_CLOSED"
        (FORUM, deleted, "Message thread not found"),
        (FORUM, 999, "Message thread not found"),
        (FORUM, 1, "Message thread not found"),  # General is no thread
        (PLAIN_SUPERGROUP, closed, "Message thread not found"),
        (42, closed, "Message thread not found"),
    ]
    for chat_id, thread_id, refusal in cases:
        with pytest.raises(BadRequest) as refused:
            await bot.send_message(chat_id, "x", message_thread_id=thread_id)
        assert refused.value.message == refusal, (chat_id, thread_id)
    fake_api.deleted_topic_error = "Bad Request: TOPIC_DELETED"
    with pytest.raises(BadRequest, match="Topic_deleted"):
        await bot.send_message(FORUM, "x", message_thread_id=deleted)
    fake_api.reopen_topic(FORUM, closed)
    reopened = await bot.send_message(FORUM, "open again", message_thread_id=closed)
    assert reopened.message_thread_id == closed
    assert fake_api.sent_messages() == [fake_api.sent[-1]]  # refused = not posted


async def test_closed_general_refuses_messages_without_a_topic(
    fake_api: FakeBotAPI, bot: Bot
) -> None:
    fake_api.make_forum(FORUM)
    tech = fake_api.create_topic(FORUM, "Tech")
    fake_api.close_topic(FORUM, None)
    with pytest.raises(BadRequest, match="Topic_closed"):
        await bot.send_message(FORUM, "to General")
    await bot.send_message(FORUM, "topics still work", message_thread_id=tech)
    fake_api.reopen_topic(FORUM, None)
    await bot.send_message(FORUM, "General again")
    assert [m["thread_id"] for m in fake_api.sent_messages(FORUM)] == [tech, None]


async def test_topic_messages_and_service_messages_reach_the_bot_like_telegrams(
    fake_api: FakeBotAPI, bot: Bot
) -> None:
    fake_api.make_forum(FORUM, title="Readers")
    tech = fake_api.create_topic(FORUM, "Tech")
    fake_api.send_command(
        "/add x", chat_id=FORUM, user_id=5, chat_type="supergroup", thread_id=tech
    )
    fake_api.send_command("/add y", chat_id=FORUM, user_id=5, chat_type="supergroup", thread_id=77)
    fake_api.close_topic(FORUM, tech, by=5)
    fake_api.reopen_topic(FORUM, tech, by=5)
    in_topic, reply_in_general, closed, reopened = [u.message for u in await updates(fake_api, bot)]
    assert in_topic is not None and reply_in_general is not None
    assert in_topic.chat.is_forum is True
    assert (in_topic.message_thread_id, in_topic.is_topic_message) == (tech, True)
    created = in_topic.reply_to_message
    assert created is not None and created.forum_topic_created is not None
    assert created.forum_topic_created.name == "Tech"
    # A reply thread in General: it has a thread id, but is no topic message.
    assert reply_in_general.message_thread_id == 77
    assert not reply_in_general.is_topic_message
    assert closed is not None and closed.forum_topic_closed is not None
    assert reopened is not None and reopened.forum_topic_reopened is not None
    assert reopened.message_thread_id == tech


def test_forum_helpers_reject_what_cannot_exist(fake_api: FakeBotAPI) -> None:
    with pytest.raises(ValueError, match="supergroups"):
        fake_api.make_forum(-123)
    with pytest.raises(ValueError, match="not a forum"):
        fake_api.create_topic(PLAIN_SUPERGROUP, "Tech")
    fake_api.make_forum(FORUM)
    gone = fake_api.create_topic(FORUM, "Gone")
    fake_api.delete_topic(FORUM, gone)
    with pytest.raises(ValueError, match="deleted"):
        fake_api.reopen_topic(FORUM, gone)
