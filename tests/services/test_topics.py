"""Forum-topic rules (bot/services/topics.py) and the dispatcher's handling of refused topics.

Against the real storage and a recording bot: which Telegram answers mean "closed" and
"deleted", moving a subscription between topics durably, the retry of a closed topic by the
dispatcher's own timer (no new items needed), and a closed General topic (its note goes to
the chat's managers privately).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
from telegram.error import BadRequest, Forbidden, NetworkError

from bot.i18n import translator
from bot.models import Backlog, Delivery, FeedItem, FeedState, Subscription
from bot.services.delivery import Dispatcher
from bot.services.metrics import Metrics
from bot.services.topics import (
    NOTE_TITLES_MAX,
    feed_titles,
    group_by_topic,
    place,
    topic_link,
    topic_trouble,
)
from bot.storage import StorageService
from tests.helpers.scripted import T0, RecordingBot, reopened

URL = "https://feeds.example/rss"
FORUM = -1001234500001
TOPIC = 7
TIMEOUT_S = 5.0
CLOSED = "Bad Request: TOPIC_CLOSED"
NEVER_STARTED = "Forbidden: bot can't initiate conversation with a user"
ADMIN = 501  # manages FORUM from a private chat with the bot
STRANGER = 502  # manages FORUM too, but never started the bot
EN = translator("en")


def item(n: int, url: str = URL) -> FeedItem:
    return FeedItem(
        id=f"{url}#{n}",
        title=f"Story {n}",
        link=f"https://s.example/{n}",
        published=T0 + timedelta(minutes=n),
        source_title="Stories",
        feed_url=url,
    )


async def publish(storage: StorageService, numbers: range, url: str = URL) -> None:
    items = [item(n, url) for n in reversed(numbers)]
    await storage.record_fetch(url, items, FeedState(url=url, title="Stories"))


async def forum_follower(storage: StorageService, thread_id: int | None, url: str = URL) -> None:
    """FORUM follows ``url`` in ``thread_id`` (None: General), from the feed's baseline.

    In the compact ``title`` format: these tests count messages per topic, and the default
    format posts one message per item.
    """
    await storage.ensure_chat(FORUM, "supergroup", "Readers")
    await storage.update_chat(FORUM, lambda c: setattr(c, "format", "title"))
    await publish(storage, range(0, 1), url)  # first fetch: history, not news
    options = {} if thread_id is None else {"thread_id": thread_id}
    assert await storage.subscribe(FORUM, url, limit=50, options=options) == "added"


def cursor(storage: StorageService, url: str = URL) -> int:
    sub = storage.subscription(FORUM, url)
    assert sub is not None
    return sub.cursor


@pytest.fixture
def bot() -> RecordingBot:
    return RecordingBot()


@pytest.fixture
async def dispatcher(bot: RecordingBot, storage: StorageService) -> AsyncIterator[Dispatcher]:
    d = Dispatcher(
        bot,  # type: ignore[arg-type]  # duck-typed stand-in for ExtBot
        storage,
        Metrics(process_metrics=False),
        workers=2,
        retry_later_s=0.01,
    )
    d.start()
    yield d
    await d.stop()


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        while not check():
            await asyncio.sleep(0.005)


# ---------------------------------------------------------------------------- pure rules


@pytest.mark.parametrize(
    ("description", "trouble"),
    [
        ("Bad Request: TOPIC_CLOSED", "closed"),
        ("Bad Request: message thread not found", "deleted"),
        ("Bad Request: TOPIC_DELETED", "deleted"),
        ("Bad Request: can't parse entities: Unsupported start tag", None),
        ("Bad Request: chat not found", None),
        ("Bad Request: message is too long", None),
    ],
)
def test_topic_trouble_reads_telegrams_answers(description: str, trouble: str | None) -> None:
    assert topic_trouble(BadRequest(description)) == trouble


def test_topic_link_opens_the_topic_in_supergroups_only() -> None:
    assert topic_link(FORUM, TOPIC) == "https://t.me/c/1234500001/7"
    assert topic_link(-123456, TOPIC) is None  # a basic group has no topics
    assert topic_link(42, TOPIC) is None


def test_backlogs_are_grouped_by_topic_in_order_of_first_appearance() -> None:
    def backlog(url: str, thread_id: int | None) -> Backlog:
        sub = Subscription(FORUM, url)
        sub.thread_id = thread_id
        return Backlog(url, url, [], 1, 1, sub)

    a, b, c, d = backlog("a", 5), backlog("b", None), backlog("c", 5), backlog("d", 9)
    assert group_by_topic([a, b, c, d]) == [(5, [a, c]), (None, [b]), (9, [d])]


async def test_place_moves_a_subscription_durably_and_keeps_its_cursor(
    storage: StorageService,
) -> None:
    await forum_follower(storage, TOPIC)
    await publish(storage, range(1, 3))
    before = cursor(storage)
    moved = await place(storage, FORUM, URL, 9)
    same = await place(storage, FORUM, URL, 9)
    to_general = await place(storage, FORUM, URL, None)
    async with reopened(storage) as again:
        sub = again.subscription(FORUM, URL)
    assert (moved.moved, moved.previous) == (True, TOPIC)
    assert same.moved is False
    assert (to_general.moved, to_general.previous) == (True, 9)
    assert sub is not None and sub.thread_id is None and sub.cursor == before
    with pytest.raises(KeyError):
        await place(storage, FORUM, "https://unknown.example/rss", 9)


async def test_notes_name_at_most_ten_feeds_and_count_the_rest(storage: StorageService) -> None:
    await storage.ensure_chat(FORUM, "supergroup", "Readers")
    urls = [f"https://f{n}.example/rss" for n in range(NOTE_TITLES_MAX + 2)]
    for url in urls:
        await storage.subscribe(FORUM, url, limit=50, options={"thread_id": TOPIC})
    storage.set_feed_state(FeedState(url=urls[0], title="First <Feed>"))
    text = feed_titles(storage, storage.subscriptions(FORUM), EN)
    assert text.startswith("<b>First &lt;Feed&gt;</b>, <b>f1.example</b>")  # untitled: host
    assert text.count("<b>") == NOTE_TITLES_MAX
    assert text.endswith(" and 2 more feeds")


# ---------------------------------------------------------------------------- dispatcher


async def test_closed_topic_is_retried_by_the_timer_and_noted_once(
    dispatcher: Dispatcher, bot: RecordingBot, storage: StorageService
) -> None:
    await forum_follower(storage, TOPIC)
    # The item send is refused twice (the note between them goes through), then accepted.
    bot.fail_next(FORUM, BadRequest(CLOSED), None, BadRequest(CLOSED))
    await publish(storage, range(1, 3))
    start = cursor(storage)
    dispatcher.request(FORUM)
    await until(lambda: cursor(storage) > start)
    texts = bot.texts(FORUM)
    assert len(texts) == 2
    assert texts[0].startswith('🔒 The <a href="https://t.me/c/1234500001/7">topic</a> for ')
    assert bot.sent[0].kwargs["message_thread_id"] is None  # the note: General
    assert ">Story 1<" in texts[1] and ">Story 2<" in texts[1]
    assert bot.sent[1].kwargs["message_thread_id"] == TOPIC
    assert bot.attempts == [FORUM] * 4  # refused, note, refused (no second note), sent


async def managed_by(storage: StorageService, *users: int) -> None:
    """FORUM is managed from these users' private chats (as ``/add <chat> <url>`` records)."""
    await storage.update_chat(FORUM, lambda chat: setattr(chat, "managers", users))


def private_notes(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == "topic_closed_private_note"]


GENERAL_CLOSED_NOTE = (
    "🔒 The General topic of <b>Readers</b> is closed, so new items of <b>Stories</b> wait "
    "until it is reopened (or send /add with the feed's URL inside a topic there to post it "
    "in that topic)."
)


async def test_a_closed_general_is_told_to_the_managers_privately_once(
    dispatcher: Dispatcher,
    bot: RecordingBot,
    storage: StorageService,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await forum_follower(storage, None)
    await managed_by(storage, ADMIN, STRANGER)
    # STRANGER manages the chat but never started the bot: Telegram answers 403.
    bot.fail_next(STRANGER, Forbidden(NEVER_STARTED))
    bot.fail_next(FORUM, BadRequest(CLOSED), BadRequest(CLOSED))  # then General reopens
    await publish(storage, range(1, 2))
    start = cursor(storage)
    with caplog.at_level(logging.INFO, logger="bot.services.topics"):
        dispatcher.request(FORUM)
        await until(lambda: cursor(storage) > start)
    # No note tried in the closed General; the managers once, however many retries.
    assert bot.attempts == [FORUM, ADMIN, STRANGER, FORUM, FORUM]
    assert bot.texts(ADMIN) == [GENERAL_CLOSED_NOTE]
    [delivered] = bot.texts(FORUM)
    assert ">Story 1<" in delivered
    [record] = private_notes(caplog)
    assert (record.told, record.unreachable, record.failed) == ([ADMIN], [STRANGER], [])  # type: ignore[attr-defined]
    assert storage.chat(STRANGER) is None  # skipped silently: nothing stored about them


async def test_a_closed_general_with_no_manager_to_tell_is_logged_once(
    dispatcher: Dispatcher,
    bot: RecordingBot,
    storage: StorageService,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await forum_follower(storage, None)
    bot.fail_next(FORUM, BadRequest(CLOSED), BadRequest(CLOSED), BadRequest(CLOSED))
    await publish(storage, range(1, 2))
    start = cursor(storage)
    with caplog.at_level(logging.INFO, logger="bot.services.topics"):
        dispatcher.request(FORUM)
        await until(lambda: cursor(storage) > start)
    assert bot.attempts == [FORUM] * 4  # refused three times (no note possible), then sent
    [record] = private_notes(caplog)
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "nobody could be told that a forum topic is closed"


async def test_a_topic_note_general_refuses_goes_to_the_managers(
    dispatcher: Dispatcher, bot: RecordingBot, storage: StorageService
) -> None:
    await forum_follower(storage, TOPIC)
    await managed_by(storage, ADMIN)
    # The item (topic closed), the note (General closed too), then the topic reopens.
    bot.fail_next(FORUM, BadRequest(CLOSED), BadRequest(CLOSED))
    await publish(storage, range(1, 2))
    start = cursor(storage)
    dispatcher.request(FORUM)
    await until(lambda: cursor(storage) > start)
    assert bot.texts(ADMIN) == [
        '🔒 The <a href="https://t.me/c/1234500001/7">topic</a> of <b>Readers</b> for '
        "<b>Stories</b> is closed, and so is its General topic, so its new items wait until "
        "the topic is reopened (or send /add with the feed's URL inside another topic there "
        "to post it in that topic)."
    ]
    assert bot.attempts == [FORUM, FORUM, ADMIN, FORUM]


async def test_a_note_lost_to_a_network_error_is_sent_with_the_next_retry(
    dispatcher: Dispatcher, bot: RecordingBot, storage: StorageService
) -> None:
    await forum_follower(storage, TOPIC)
    # Item refused, note lost; item refused again, note sent; then the item goes out.
    bot.fail_next(FORUM, BadRequest(CLOSED), NetworkError("down"), BadRequest(CLOSED))
    await publish(storage, range(1, 2))
    start = cursor(storage)
    dispatcher.request(FORUM)
    await until(lambda: cursor(storage) > start)
    note, item_post = bot.texts(FORUM)
    assert note.startswith('🔒 The <a href="https://t.me/c/1234500001/7">topic</a> for ')
    assert ">Story 1<" in item_post
    assert bot.attempts == [FORUM] * 5


async def test_a_managers_note_lost_to_a_network_error_is_sent_with_the_next_retry(
    dispatcher: Dispatcher, bot: RecordingBot, storage: StorageService
) -> None:
    await forum_follower(storage, None)
    await managed_by(storage, ADMIN)
    bot.fail_next(ADMIN, NetworkError("down"))
    bot.fail_next(FORUM, BadRequest(CLOSED), BadRequest(CLOSED))
    await publish(storage, range(1, 2))
    start = cursor(storage)
    dispatcher.request(FORUM)
    await until(lambda: cursor(storage) > start)
    assert bot.attempts == [FORUM, ADMIN, FORUM, ADMIN, FORUM]
    assert bot.texts(ADMIN) == [GENERAL_CLOSED_NOTE]


async def test_a_deleted_topic_reported_for_general_is_an_ordinary_rejection(
    dispatcher: Dispatcher, bot: RecordingBot, storage: StorageService
) -> None:
    """ "message thread not found" without a thread cannot mean our topic: skipped, logged."""
    await forum_follower(storage, None)
    bot.fail_next(FORUM, BadRequest("Bad Request: message thread not found"))
    await publish(storage, range(1, 2))
    assert await dispatcher.deliver(FORUM, digest=False) == "done"
    assert bot.sent == []
    assert storage.pending(FORUM) == []
    sub = storage.subscription(FORUM, URL)
    assert sub is not None and sub.thread_id is None


async def test_a_digest_split_over_topics_counts_as_one_digest(
    bot: RecordingBot, storage: StorageService
) -> None:
    """Each topic gets its own digest message, but the chat had one digest."""
    other = "https://other.example/rss"
    await forum_follower(storage, TOPIC)
    await forum_follower(storage, None, other)
    await storage.update_chat(
        FORUM, lambda c: setattr(c, "delivery", Delivery("every", interval_s=3600))
    )
    await publish(storage, range(1, 3))
    await publish(storage, range(1, 3), other)
    metrics = Metrics(process_metrics=False)
    dispatcher = Dispatcher(bot, storage, metrics)  # type: ignore[arg-type]  # stand-in bot
    assert await dispatcher.deliver(FORUM, digest=True) == "done"
    assert [s.kwargs["message_thread_id"] for s in bot.sent] == [TOPIC, None]
    assert all(s.text.startswith("<b>📰 Digest</b>") for s in bot.sent)
    assert metrics.registry.get_sample_value("newsbot_digests_sent_total") == 1.0
    await storage.flush()
    assert storage.counters()["chats"][str(FORUM)]["digests_posted"] == 1
