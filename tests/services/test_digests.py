"""DigestScheduler: due times persisted with the chat, phase kept, catch-up after downtime."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from telegram.error import Forbidden, NetworkError

from bot.models import Delivery, FeedItem, FeedState
from bot.services.delivery import Dispatcher
from bot.services.digests import RETRY_DIGEST_S, DigestScheduler
from bot.services.metrics import Metrics
from bot.storage import StorageService
from bot.storage.journal import list_segments, segment_path
from tests.helpers.scripted import FakeClock, RecordingBot, reopened

URL = "https://feeds.example/rss"
HOUR = 3600
START = datetime(2026, 3, 1, 10, tzinfo=UTC).timestamp()
EVERY_HOUR = Delivery("every", interval_s=HOUR)


def item(n: int) -> FeedItem:
    return FeedItem(
        id=f"s{n}",
        title=f"Story {n}",
        link=f"https://s.example/{n}",
        published=datetime(2026, 3, 1, tzinfo=UTC) + timedelta(minutes=n),
        source_title="Stories",
        feed_url=URL,
    )


async def publish(storage: StorageService, numbers: range) -> None:
    items = [item(n) for n in reversed(numbers)]
    await storage.record_fetch(URL, items, FeedState(url=URL, title="Stories"))


async def digest_chat(
    storage: StorageService, chat_id: int, delivery: Delivery = EVERY_HOUR, tz: str = "UTC"
) -> None:
    await storage.ensure_chat(chat_id, "private", "c", delivery=delivery)
    if tz != "UTC":
        await storage.update_chat(chat_id, lambda c: setattr(c, "tz", tz))
    await storage.subscribe(chat_id, URL, limit=50)


def make(
    storage: StorageService, bot: RecordingBot, clock: FakeClock
) -> tuple[Dispatcher, DigestScheduler]:
    dispatcher = Dispatcher(
        bot,  # type: ignore[arg-type]  # duck-typed stand-in for ExtBot
        storage,
        Metrics(process_metrics=False),
    )
    return dispatcher, DigestScheduler(storage, dispatcher, clock=clock)


async def one_chat_with_news(
    storage: StorageService, bot: RecordingBot, clock: FakeClock, *, upto: int
) -> tuple[Dispatcher, DigestScheduler]:
    """Chat 1 on an hourly digest, scheduled, with stories 1 … upto-1 new since its cursor."""
    await publish(storage, range(1))  # baseline
    await digest_chat(storage, 1)
    dispatcher, scheduler = make(storage, bot, clock)
    await scheduler.restore()
    await publish(storage, range(1, upto))
    return dispatcher, scheduler


def persisted_due(storage: StorageService, chat_id: int) -> float | None:
    chat = storage.chat(chat_id)
    assert chat is not None
    return chat.next_digest_at


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def bot() -> RecordingBot:
    return RecordingBot()


async def test_every_keeps_its_phase_across_a_restart_and_catches_up_once(
    storage: StorageService, bot: RecordingBot, clock: FakeClock
) -> None:
    await publish(storage, range(1))  # baseline
    await digest_chat(storage, 1)
    _, scheduler = make(storage, bot, clock)
    assert await scheduler.restore() == 1
    first_due = START + HOUR
    assert scheduler.due_time(1) == persisted_due(storage, 1) == first_due

    clock.now = first_due
    assert await scheduler.run_due() == 1  # nothing new: nothing sent...
    assert bot.sent == []
    assert persisted_due(storage, 1) == first_due + HOUR  # ...but the next one is scheduled

    await publish(storage, range(1, 4))
    # Down from before the second due time until well after the fourth.
    clock.now = first_due + 3 * HOUR + 17 * 60
    async with reopened(storage) as restarted:
        bot2 = RecordingBot()
        _, after = make(restarted, bot2, clock)
        await after.restore()
        assert after.due_time(1) == first_due + HOUR  # persisted, not reset to now + 1h
        assert await after.run_due() == 1
        [digest] = bot2.sent
        assert all(f"Story {n}" in digest.text for n in range(1, 4))
        assert "Story 0" not in digest.text
        nxt = persisted_due(restarted, 1)
        assert nxt == first_due + 4 * HOUR  # the phase of the original schedule
        assert after.due_time(1) == nxt
        assert await after.run_due() == 0  # the missed slots are not replayed one by one
        assert len(bot2.sent) == 1


async def test_at_time_in_the_chats_zone_across_a_dst_change(
    storage: StorageService, bot: RecordingBot, clock: FakeClock
) -> None:
    await publish(storage, range(1))
    await digest_chat(storage, 1, Delivery("at", at="08:00"), tz="Europe/Berlin")
    await digest_chat(storage, 2, Delivery("at", at="08:00"), tz="America/New_York")
    clock.now = datetime(2026, 3, 28, 5, tzinfo=UTC).timestamp()
    _, scheduler = make(storage, bot, clock)
    await scheduler.restore()
    berlin_today = datetime(2026, 3, 28, 7, tzinfo=UTC).timestamp()  # 08:00 CET
    new_york_today = datetime(2026, 3, 28, 12, tzinfo=UTC).timestamp()  # 08:00 EDT
    assert scheduler.due_time(1) == berlin_today
    assert scheduler.due_time(2) == new_york_today
    await publish(storage, range(1, 3))
    clock.now = berlin_today
    assert await scheduler.run_due() == 1
    assert [s.chat_id for s in bot.sent] == [1]
    # Berlin moves to summer time overnight: tomorrow's 08:00 is 06:00 UTC, 23 h later.
    assert scheduler.due_time(1) == datetime(2026, 3, 29, 6, tzinfo=UTC).timestamp()
    clock.now = new_york_today
    assert await scheduler.run_due() == 1
    assert [s.chat_id for s in bot.sent] == [1, 2]
    assert scheduler.due_time(2) == datetime(2026, 3, 29, 12, tzinfo=UTC).timestamp()


async def test_a_failed_digest_is_retried_soon_and_keeps_the_phase(
    storage: StorageService, bot: RecordingBot, clock: FakeClock
) -> None:
    _, scheduler = await one_chat_with_news(storage, bot, clock, upto=3)
    due = START + HOUR
    clock.now = due
    bot.fail_next(1, NetworkError("Bad Gateway"))
    assert await scheduler.run_due() == 1
    assert bot.sent == []
    assert scheduler.due_time(1) == due + RETRY_DIGEST_S
    [sub] = storage.subscriptions(1)
    assert sub.cursor == 1  # nothing was accepted, nothing advanced
    clock.advance(RETRY_DIGEST_S - 1)
    assert await scheduler.run_due() == 0
    clock.advance(1)
    assert await scheduler.run_due() == 1
    [digest] = bot.sent
    assert "Story 1" in digest.text
    assert "Story 2" in digest.text
    assert scheduler.due_time(1) == persisted_due(storage, 1) == due + HOUR  # not shifted


async def test_a_chat_that_blocked_the_bot_is_not_rescheduled(
    storage: StorageService, bot: RecordingBot, clock: FakeClock
) -> None:
    _, scheduler = await one_chat_with_news(storage, bot, clock, upto=2)
    clock.advance(HOUR)
    bot.fail_next(1, Forbidden("Forbidden: bot was blocked by the user"))
    assert await scheduler.run_due() == 1
    assert scheduler.due_time(1) is None
    chat = storage.chat(1)
    assert chat is not None
    assert chat.active is False
    assert chat.delivery == EVERY_HOUR  # kept, in case the user comes back
    clock.advance(10 * HOUR)
    assert await scheduler.run_due() == 0


async def test_restore_schedules_only_active_digest_chats(
    storage: StorageService, bot: RecordingBot, clock: FakeClock
) -> None:
    await digest_chat(storage, 1)
    await digest_chat(storage, 2, Delivery())
    await digest_chat(storage, 3)
    await storage.deactivate_chat(3)
    _, scheduler = make(storage, bot, clock)
    assert await scheduler.restore() == 1
    assert scheduler.due_time(1) == START + HOUR
    assert scheduler.due_time(2) is None
    assert scheduler.due_time(3) is None
    assert persisted_due(storage, 2) is None


async def test_switching_to_instant_or_forgetting_stops_the_digest(
    storage: StorageService, bot: RecordingBot, clock: FakeClock
) -> None:
    await publish(storage, range(1))
    await digest_chat(storage, 1)
    await digest_chat(storage, 2)
    _, scheduler = make(storage, bot, clock)
    await scheduler.restore()
    await publish(storage, range(1, 2))
    await storage.update_chat(1, lambda c: setattr(c, "delivery", Delivery()))
    chat = storage.chat(1)
    assert chat is not None
    await scheduler.update(chat)
    scheduler.forget(2)
    assert scheduler.due_time(1) is None
    assert persisted_due(storage, 1) is None
    assert scheduler.due_time(2) is None
    clock.advance(5 * HOUR)
    assert await scheduler.run_due() == 0
    assert bot.sent == []


async def test_paused_digest_chat_sends_nothing_but_stays_scheduled(
    storage: StorageService, bot: RecordingBot, clock: FakeClock
) -> None:
    _, scheduler = await one_chat_with_news(storage, bot, clock, upto=3)
    await storage.update_chat(1, lambda c: setattr(c, "paused", True))
    clock.advance(HOUR)
    assert await scheduler.run_due() == 1
    assert bot.sent == []
    assert scheduler.due_time(1) == START + 2 * HOUR


async def test_start_tick_runs_in_the_background_one_at_a_time(
    storage: StorageService, bot: RecordingBot, clock: FakeClock
) -> None:
    _, scheduler = await one_chat_with_news(storage, bot, clock, upto=2)
    clock.advance(HOUR)
    assert scheduler.start_tick() is True
    assert scheduler.start_tick() is False  # the first run is still going
    running = scheduler._running
    assert running is not None
    assert await running == 1
    assert len(bot.sent) == 1


async def test_a_hand_edited_invalid_schedule_is_logged_and_ignored(
    storage: StorageService, bot: RecordingBot, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    await digest_chat(storage, 1)
    await storage.close()
    last = segment_path(storage.data_dir, list_segments(storage.data_dir)[-1])
    broken = {"chat_id": 9, "type": "private", "title": "x", "active": True,
              "delivery": {"mode": "at", "interval_s": None, "at": "25:00"}}  # fmt: skip
    with last.open("a", encoding="utf-8") as journal:
        journal.write(json.dumps({"op": "chat", "chat": broken}) + "\n")
    with caplog.at_level(logging.WARNING):
        async with reopened(storage) as restarted:
            _, scheduler = make(restarted, bot, clock)
            assert await scheduler.restore() == 1  # chat 1 only; the bot starts regardless
            chat = restarted.chat(9)
            assert chat is not None
            assert chat.delivery == Delivery()
            assert scheduler.due_time(9) is None
    [warning] = [r for r in caplog.records if getattr(r, "event", None) == "invalid_schedule"]
    assert warning.chat_id == 9  # type: ignore[attr-defined]


async def test_a_schedule_changed_while_its_digest_is_sent_is_not_overwritten(
    storage: StorageService, bot: RecordingBot, clock: FakeClock
) -> None:
    dispatcher, scheduler = await one_chat_with_news(storage, bot, clock, upto=3)
    clock.now = START + HOUR
    new_due = START + 5 * HOUR
    real_deliver = dispatcher.deliver

    async def deliver_while_the_user_changes_it(chat_id: int, *, digest: bool) -> str:
        outcome = await real_deliver(chat_id, digest=digest)
        # Meanwhile: "/digest at 15:00" was handled and rescheduled the chat.
        await storage.update_chat(
            chat_id, lambda c: setattr(c, "delivery", Delivery("at", at="15:00"))
        )
        await storage.set_next_digest(chat_id, new_due)
        return outcome

    dispatcher.deliver = deliver_while_the_user_changes_it  # type: ignore[method-assign,assignment]
    assert await scheduler.run_due() == 1
    assert len(bot.sent) == 1
    assert persisted_due(storage, 1) == new_due  # the user's change stands
