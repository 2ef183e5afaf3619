"""Dispatcher and send_html against a recording bot and the real storage.

The rules under test are the delivery guarantees of issue 8: a cursor advances only after
Telegram accepted the message; 403 / "chat not found" deactivate the chat; any other 400 is
logged with its feed and items and skipped; a migrated group is followed to its new id; one
delivery per chat at a time, so nothing is sent twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
from telegram import ReplyParameters
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

from bot.formatting import format_backlogs
from bot.i18n import translator
from bot.models import Chat, Delivery, FeedItem, FeedState, LogEntry
from bot.services.delivery import Dispatcher, send_html
from bot.services.metrics import Metrics
from bot.services.telegram_limits import BULK
from bot.storage import StorageService
from bot.storage.state import LOG_MAX
from tests.helpers.scripted import T0, RecordingBot

EN = translator("en")

URL = "https://feeds.example/rss"
OTHER = "https://other.example/rss"
TIMEOUT_S = 5.0


def item(n: int, url: str = URL, *, pad: int = 0) -> FeedItem:
    return FeedItem(
        id=f"{url}#{n}",
        title=f"{'Story' if url == URL else 'Other'} {n}" + " lorem" * pad,
        link=f"https://s.example/{n}",
        published=T0 + timedelta(minutes=n),
        source_title="Stories",
        feed_url=url,
    )


async def baseline(storage: StorageService, url: str = URL) -> None:
    """A feed's first fetch: one old item, logged as history."""
    await storage.record_fetch(url, [item(0, url)], FeedState(url=url, title="Stories"))


async def publish(
    storage: StorageService, numbers: range, url: str = URL, *, pad: int = 0
) -> list[LogEntry]:
    """A later fetch finding these items (given newest first, as parsed)."""
    items = [item(n, url, pad=pad) for n in reversed(numbers)]
    return await storage.record_fetch(url, items, FeedState(url=url, title="Stories"))


async def follower(
    storage: StorageService,
    chat_id: int,
    *urls: str,
    delivery: Delivery | None = None,
    chat_type: str = "private",
) -> None:
    """A chat following ``urls`` in the compact ``title`` format without link previews.

    The guarantees here are about messages, and the compact format packs many items into
    few of them; per-item formats are tested in ``test_delivery_posts.py``.
    """
    await storage.ensure_chat(chat_id, chat_type, f"chat {chat_id}", delivery=delivery)

    def compact(chat: Chat) -> None:
        chat.format, chat.previews = "title", False

    await storage.update_chat(chat_id, compact)
    for url in urls or (URL,):
        assert await storage.subscribe(chat_id, url, limit=50) == "added"


def cursor(storage: StorageService, chat_id: int, url: str = URL) -> int:
    [sub] = [s for s in storage.subscriptions(chat_id) if s.url == url]
    return sub.cursor


def sent_items(bot: RecordingBot, chat_id: int, numbers: range, label: str = "Story") -> list[int]:
    """How many times each item number (of URL, or of OTHER with "Other") reached the chat."""
    text = "\n".join(bot.texts(chat_id))
    return [text.count(f">{label} {n}<") + text.count(f">{label} {n} lorem") for n in numbers]


class Moves:
    """Records ``on_chat_moved`` calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int | None]] = []

    async def __call__(self, old: int, new: int | None) -> None:
        self.calls.append((old, new))


@pytest.fixture
def bot() -> RecordingBot:
    return RecordingBot()


@pytest.fixture
def moves() -> Moves:
    return Moves()


@pytest.fixture
async def dispatcher(
    bot: RecordingBot, storage: StorageService, moves: Moves
) -> AsyncIterator[Dispatcher]:
    d = Dispatcher(
        bot,  # type: ignore[arg-type]  # duck-typed stand-in for ExtBot
        storage,
        Metrics(process_metrics=False),
        on_chat_moved=moves,
        workers=4,
        retry_later_s=0.01,
    )
    d.start()
    yield d
    await d.stop()


async def until(check: Callable[[], bool]) -> None:
    """Wait for an effect of a delayed retry (the dispatcher is idle while it waits)."""
    async with asyncio.timeout(TIMEOUT_S):
        while not check():
            await asyncio.sleep(0.005)


async def settle(dispatcher: Dispatcher) -> None:
    """Wait until nothing is queued or being delivered."""
    async with asyncio.timeout(TIMEOUT_S):
        while not dispatcher.idle():
            await asyncio.sleep(0.005)


# ---------------------------------------------------------------------------- happy path


async def test_instant_delivery_sends_new_items_and_advances_the_cursor(
    dispatcher: Dispatcher, bot: RecordingBot, storage: StorageService
) -> None:
    await follower(storage, 1)
    await baseline(storage)
    assert await dispatcher.deliver(1, digest=False) == "nothing"  # the baseline is history
    await publish(storage, range(1, 3))
    assert await dispatcher.deliver(1, digest=False) == "done"
    [message] = bot.sent
    assert message.chat_id == 1
    assert sent_items(bot, 1, range(3)) == [0, 1, 1]
    assert message.text.index("Story 1") < message.text.index("Story 2")
    assert message.kwargs["parse_mode"] == ParseMode.HTML
    assert message.kwargs["rate_limit_args"] is BULK  # fan-out never delays replies
    assert message.kwargs["link_preview_options"].is_disabled is True
    assert cursor(storage, 1) == storage.feed_head(URL) == 3
    assert storage.pending(1) == []
    assert await dispatcher.deliver(1, digest=False) == "nothing"
    assert storage.counters()["chats"]["1"]["items_sent"] == 2


# ---------------------------------------------------------------------------- transient errors


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # RetryAfter's own
@pytest.mark.parametrize(
    "make_error",
    [
        lambda: NetworkError("connection reset"),
        TimedOut,
        lambda: RetryAfter(timedelta(seconds=30)),
    ],
    ids=["network", "timeout", "retry_after"],
)
async def test_a_failed_send_keeps_the_cursor_and_is_retried_later(
    dispatcher: Dispatcher,
    bot: RecordingBot,
    storage: StorageService,
    make_error: Callable[[], Exception],
) -> None:
    await follower(storage, 1)
    await baseline(storage)
    await publish(storage, range(1, 3))
    bot.fail_next(1, make_error())
    assert await dispatcher.deliver(1, digest=False) == "retry"
    assert bot.sent == []
    assert cursor(storage, 1) == 1  # nothing accepted: nothing advanced
    await until(lambda: bool(bot.sent))  # re-requested after retry_later_s
    await settle(dispatcher)
    assert sent_items(bot, 1, range(1, 3)) == [1, 1]
    assert cursor(storage, 1) == 3


async def test_an_unexpected_error_in_an_instant_delivery_is_retried_later(
    dispatcher: Dispatcher, bot: RecordingBot, storage: StorageService
) -> None:
    await follower(storage, 1)
    await baseline(storage)
    await publish(storage, range(1, 3))
    bot.fail_next(1, RuntimeError("HTTP client not initialised"))  # not a TelegramError
    dispatcher.request(1)  # through a worker, as a poll would
    await until(lambda: bool(bot.sent))  # the worker logged it and re-requested the chat
    await settle(dispatcher)
    assert sent_items(bot, 1, range(1, 3)) == [1, 1]
    assert cursor(storage, 1) == 3


async def test_a_failure_mid_delivery_keeps_what_was_accepted(
    dispatcher: Dispatcher, bot: RecordingBot, storage: StorageService
) -> None:
    await follower(storage, 1)
    await baseline(storage)
    await publish(storage, range(1, 31), pad=60)  # long titles: several messages
    messages = format_backlogs(storage.pending(1), digest=False, t=EN)
    assert len(messages) >= 3
    bot.fail_next(1, None, NetworkError("gateway timeout"))  # the second send fails
    assert await dispatcher.deliver(1, digest=False) == "retry"
    assert bot.texts(1) == [messages[0].text]
    assert cursor(storage, 1) == messages[0].advances[URL]  # what was accepted stays sent
    await until(lambda: cursor(storage, 1) == storage.feed_head(URL))  # retried later
    await settle(dispatcher)
    assert sent_items(bot, 1, range(1, 31)) == [1] * 30  # exactly once, across the retry
    assert cursor(storage, 1) == storage.feed_head(URL)


# ---------------------------------------------------------------------------- permanent errors


@pytest.mark.parametrize(
    "error",
    [
        Forbidden("Forbidden: bot was blocked by the user"),
        BadRequest("Bad Request: chat not found"),
    ],
    ids=["blocked", "chat_not_found"],
)
async def test_a_chat_that_is_gone_is_deactivated_and_nothing_more_is_sent(
    dispatcher: Dispatcher,
    bot: RecordingBot,
    storage: StorageService,
    moves: Moves,
    error: Exception,
) -> None:
    await follower(storage, 7)
    await baseline(storage)
    await publish(storage, range(1, 31), pad=60)
    bot.fail_next(7, error)
    assert await dispatcher.deliver(7, digest=False) == "gone"
    assert bot.attempts == [7]  # the later messages were not even tried
    chat = storage.chat(7)
    assert chat is not None
    assert chat.active is False
    assert storage.feed_urls(7) == [URL]  # kept, in case the user comes back
    assert moves.calls == [(7, None)]
    entries = await publish(storage, range(31, 32))
    dispatcher.feed_updated(URL, entries)
    await settle(dispatcher)
    assert await dispatcher.deliver(7, digest=False) == "skipped"
    assert bot.attempts == [7]


async def test_a_rejected_message_is_logged_and_skipped(
    dispatcher: Dispatcher,
    bot: RecordingBot,
    storage: StorageService,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await follower(storage, 1)
    await baseline(storage)
    await publish(storage, range(1, 31), pad=60)
    messages = format_backlogs(storage.pending(1), digest=False, t=EN)
    assert len(messages) >= 3
    bot.fail_next(1, BadRequest("Can't parse entities: unsupported start tag"))
    with caplog.at_level(logging.ERROR, logger="bot.services.delivery"):
        assert await dispatcher.deliver(1, digest=False) == "done"
    [record] = [r for r in caplog.records if getattr(r, "event", None) == "delivery_rejected"]
    assert record.feeds == [URL]  # type: ignore[attr-defined]
    assert record.items == list(messages[0].item_ids)  # type: ignore[attr-defined]
    assert "parse entities" in record.error  # type: ignore[attr-defined]
    assert bot.texts(1) == [m.text for m in messages[1:]]  # the rest was still delivered
    assert cursor(storage, 1) == storage.feed_head(URL)  # never retried
    chat = storage.chat(1)
    assert chat is not None
    assert chat.active is True


async def test_a_migrated_group_is_followed_to_its_new_id_once(
    dispatcher: Dispatcher, bot: RecordingBot, storage: StorageService, moves: Moves
) -> None:
    old, new = -100, -1000100
    await follower(storage, old, chat_type="group")
    await baseline(storage)
    await publish(storage, range(1, 31), pad=60)
    count = len(format_backlogs(storage.pending(old), digest=False, t=EN))
    bot.migrated[old] = new
    assert await dispatcher.deliver(old, digest=False) == "done"
    assert bot.attempts.count(old) == 1  # later messages go straight to the new id
    assert len(bot.texts(new)) == count
    assert sent_items(bot, new, range(1, 31)) == [1] * 30
    assert storage.chat(old) is None
    assert storage.chat(new) is not None
    assert cursor(storage, new) == storage.feed_head(URL)
    assert moves.calls == [(old, new)]


# ---------------------------------------------------------------------------- gating


async def test_instant_and_digest_deliveries_only_serve_their_own_chats(
    dispatcher: Dispatcher, bot: RecordingBot, storage: StorageService
) -> None:
    await follower(storage, 1)
    await follower(storage, 2, delivery=Delivery("every", interval_s=3600))
    await baseline(storage)
    await publish(storage, range(1, 3))
    assert await dispatcher.deliver(1, digest=True) == "skipped"
    assert await dispatcher.deliver(2, digest=False) == "skipped"
    assert bot.sent == []
    assert await dispatcher.deliver(2, digest=True) == "done"
    [digest] = bot.sent
    assert digest.text.startswith("<b>📰 Digest</b>")
    assert cursor(storage, 2) == 3
    assert cursor(storage, 1) == 1
    assert storage.counters()["chats"]["2"]["digests_posted"] == 1


async def test_paused_inactive_and_unknown_chats_are_skipped(
    dispatcher: Dispatcher, bot: RecordingBot, storage: StorageService
) -> None:
    await follower(storage, 1)
    await follower(storage, 2)
    await baseline(storage)
    await publish(storage, range(1, 3))
    await storage.update_chat(1, lambda c: setattr(c, "paused", True))
    await storage.deactivate_chat(2)
    assert await dispatcher.deliver(1, digest=False) == "skipped"
    assert await dispatcher.deliver(2, digest=False) == "skipped"
    assert await dispatcher.deliver(3, digest=False) == "skipped"
    assert bot.attempts == []
    assert cursor(storage, 1) == 1  # what was found while paused waits for /resume
    await storage.update_chat(1, lambda c: setattr(c, "paused", False))
    assert await dispatcher.deliver(1, digest=False) == "done"
    assert sent_items(bot, 1, range(1, 3)) == [1, 1]


async def test_feed_updated_queues_only_instant_active_unpaused_followers(
    dispatcher: Dispatcher, bot: RecordingBot, storage: StorageService
) -> None:
    await follower(storage, 1)
    await follower(storage, 2, delivery=Delivery("at", at="08:00"))
    await follower(storage, 3)
    await follower(storage, 4)
    await follower(storage, 5, OTHER)
    await follower(storage, 6, OTHER, URL)
    await storage.update_chat(3, lambda c: setattr(c, "paused", True))
    await storage.deactivate_chat(4)
    await baseline(storage)
    await baseline(storage, OTHER)
    entries = await publish(storage, range(1, 3))
    dispatcher.feed_updated(URL, entries)
    await settle(dispatcher)
    assert sorted({s.chat_id for s in bot.sent}) == [1, 6]
    assert sent_items(bot, 6, range(1, 3)) == [1, 1]
    dispatcher.feed_updated(URL, [])  # a stale notice: the cursors say there is nothing
    await settle(dispatcher)
    assert len(bot.sent) == 2


# ---------------------------------------------------------------------------- concurrency


async def test_concurrent_deliveries_to_one_chat_never_send_an_item_twice(
    dispatcher: Dispatcher, bot: RecordingBot, storage: StorageService
) -> None:
    await follower(storage, 1, URL, OTHER)
    await baseline(storage)
    await baseline(storage, OTHER)
    entries = await publish(storage, range(1, 41), pad=40)
    await publish(storage, range(1, 11), OTHER)
    for _ in range(5):
        dispatcher.feed_updated(URL, entries)  # the workers, racing the direct calls below
    outcomes = await asyncio.gather(*(dispatcher.deliver(1, digest=False) for _ in range(10)))
    await settle(dispatcher)
    assert outcomes.count("done") <= 1
    assert set(outcomes) <= {"done", "nothing"}
    assert sent_items(bot, 1, range(1, 41)) == [1] * 40
    assert sent_items(bot, 1, range(1, 11), "Other") == [1] * 10
    assert cursor(storage, 1, OTHER) == storage.feed_head(OTHER)
    assert cursor(storage, 1) == storage.feed_head(URL)


# ---------------------------------------------------------------------------- overflow


async def test_items_the_log_no_longer_holds_are_announced_as_skipped(
    dispatcher: Dispatcher, bot: RecordingBot, storage: StorageService
) -> None:
    await follower(storage, 1)
    await baseline(storage)
    await storage.update_chat(1, lambda c: setattr(c, "paused", True))
    missed = LOG_MAX + 37
    for start in range(1, missed + 1, 50):  # the chat is paused while the feed runs on
        await publish(storage, range(start, min(start + 50, missed + 1)))
    await storage.update_chat(1, lambda c: setattr(c, "paused", False))
    assert await dispatcher.deliver(1, digest=False) == "done"
    texts = bot.texts(1)
    assert f"… {missed - LOG_MAX} earlier items of Stories were skipped" in texts[0]
    assert sum(t.count("skipped") for t in texts) == 1
    numbers = range(1, missed + 1)
    counts = sent_items(bot, 1, numbers)
    assert counts == [0] * (missed - LOG_MAX) + [1] * LOG_MAX
    assert cursor(storage, 1) == storage.feed_head(URL)


# ---------------------------------------------------------------------------- send_html


async def test_send_html_replies_to_the_first_message_only(
    bot: RecordingBot, storage: StorageService
) -> None:
    await storage.ensure_chat(1, "private", "A")
    assert await send_html(bot, 1, ["one", "two"], reply_to=42) == 2  # type: ignore[arg-type]
    first, second = bot.sent
    assert isinstance(first.kwargs["reply_parameters"], ReplyParameters)
    assert first.kwargs["reply_parameters"].message_id == 42
    assert second.kwargs["reply_parameters"] is None
    assert "rate_limit_args" not in first.kwargs  # interactive: ahead of any fan-out


async def test_send_html_follows_a_migration(
    bot: RecordingBot, storage: StorageService, moves: Moves
) -> None:
    await storage.ensure_chat(-5, "group", "G")
    bot.migrated[-5] = -1005
    sent = await send_html(bot, -5, ["a", "b"], on_chat_moved=moves)  # type: ignore[arg-type]
    assert sent == 2
    assert bot.texts(-1005) == ["a", "b"]
    assert moves.calls == [(-5, -1005)]
    assert storage.chat(-1005) is not None
    assert storage.chat(-5) is None


async def test_send_html_deactivates_a_blocked_chat_and_stops(
    bot: RecordingBot, storage: StorageService, moves: Moves
) -> None:
    await storage.ensure_chat(1, "private", "A")
    bot.fail_next(1, Forbidden("Forbidden: bot was blocked by the user"))
    sent = await send_html(bot, 1, ["a", "b"], on_chat_moved=moves)  # type: ignore[arg-type]
    assert sent == 0
    assert bot.attempts == [1]
    chat = storage.chat(1)
    assert chat is not None
    assert chat.active is False
    assert moves.calls == [(1, None)]


async def test_send_html_skips_a_rejected_message_and_stops_on_network_errors(
    bot: RecordingBot, storage: StorageService, caplog: pytest.LogCaptureFixture
) -> None:
    await storage.ensure_chat(1, "private", "A")
    bot.fail_next(1, BadRequest("Can't parse entities"))
    with caplog.at_level(logging.ERROR, logger="bot.services.delivery"):
        assert await send_html(bot, 1, ["bad", "good"]) == 1  # type: ignore[arg-type]
    assert bot.texts(1) == ["good"]
    assert any(getattr(r, "event", None) == "send_rejected" for r in caplog.records)
    bot.fail_next(1, NetworkError("down"))
    assert await send_html(bot, 1, ["x", "y"]) == 0  # type: ignore[arg-type]
    assert bot.texts(1) == ["good"]
    chat = storage.chat(1)
    assert chat is not None
    assert chat.active is True
