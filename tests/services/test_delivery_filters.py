"""The Dispatcher with mutes and keyword filters: what is held back moves the cursor like
what is sent, so no later unmute or filter change sends it; items are normalised once per
fan-out, not once per chat."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.models import NO_FILTERS, Delivery, Filters, Subscription
from bot.services.delivery import Dispatcher
from bot.services.metrics import Metrics
from bot.storage import StorageService
from tests.helpers.scripted import RecordingBot
from tests.services.test_delivery import URL, baseline, cursor, follower, publish, sent_items

OTHER = "https://other.example/rss"


@pytest.fixture
def bot() -> RecordingBot:
    return RecordingBot()


@pytest.fixture
async def dispatcher(bot: RecordingBot, storage: StorageService) -> AsyncIterator[Dispatcher]:
    d = Dispatcher(bot, storage, Metrics(process_metrics=False), workers=4)  # type: ignore[arg-type]
    d.start()
    yield d
    await d.stop()


async def set_sub(storage: StorageService, chat_id: int, url: str = URL, **options: object) -> None:
    def apply(sub: Subscription) -> None:
        for name, value in options.items():
            setattr(sub, name, value)

    await storage.update_subscription(chat_id, url, apply)


async def set_chat_filters(storage: StorageService, chat_id: int, filters: Filters) -> None:
    await storage.update_chat(chat_id, lambda c: setattr(c, "filters", filters))


async def test_a_muted_feed_advances_without_sending_and_unmuting_sends_nothing_old(
    dispatcher: Dispatcher, bot: RecordingBot, storage: StorageService
) -> None:
    await follower(storage, 1, URL, OTHER)
    await baseline(storage)
    await baseline(storage, OTHER)
    await set_sub(storage, 1, muted=True)
    await publish(storage, range(1, 4))
    await publish(storage, range(1, 3), OTHER)
    assert await dispatcher.deliver(1, digest=False) == "done"
    assert sent_items(bot, 1, range(1, 4)) == [0, 0, 0]
    assert sent_items(bot, 1, range(1, 3), "Other") == [1, 1]
    assert cursor(storage, 1) == storage.feed_head(URL)
    await set_sub(storage, 1, muted=False)
    assert await dispatcher.deliver(1, digest=False) == "nothing"
    await publish(storage, range(4, 5))
    assert await dispatcher.deliver(1, digest=False) == "done"
    assert sent_items(bot, 1, range(1, 5)) == [0, 0, 0, 1]
    await storage.flush()
    assert storage.counters()["chats"]["1"]["items_filtered"] == 3


async def test_only_matching_items_are_sent_and_a_filter_change_sends_nothing_old(
    dispatcher: Dispatcher, bot: RecordingBot, storage: StorageService
) -> None:
    await follower(storage, 2)
    await baseline(storage)
    await set_chat_filters(storage, 2, Filters(include=("story 2", "story 4")))
    await publish(storage, range(1, 6))
    assert await dispatcher.deliver(2, digest=False) == "done"
    assert sent_items(bot, 2, range(1, 6)) == [0, 1, 0, 1, 0]
    assert cursor(storage, 2) == storage.feed_head(URL)  # past story 5 too
    await set_chat_filters(storage, 2, NO_FILTERS)
    assert await dispatcher.deliver(2, digest=False) == "nothing"
    assert len(bot.sent) == 1


async def test_a_wholly_filtered_out_feed_sends_nothing_and_still_advances(
    dispatcher: Dispatcher, bot: RecordingBot, storage: StorageService
) -> None:
    await follower(storage, 3)
    await baseline(storage)
    await set_sub(storage, 3, filters=Filters(exclude=("story",)))
    await publish(storage, range(1, 3))
    assert await dispatcher.deliver(3, digest=False) == "nothing"
    assert bot.sent == []
    assert cursor(storage, 3) == storage.feed_head(URL)


async def test_chat_and_subscription_filters_both_apply(
    dispatcher: Dispatcher, bot: RecordingBot, storage: StorageService
) -> None:
    await follower(storage, 4)
    await baseline(storage)
    await set_chat_filters(storage, 4, Filters(include=("story",)))
    await set_sub(storage, 4, filters=Filters(exclude=("3",)))
    await publish(storage, range(1, 5))
    assert await dispatcher.deliver(4, digest=False) == "done"
    assert sent_items(bot, 4, range(1, 5)) == [1, 1, 0, 1]


async def test_a_digest_leaves_muted_feeds_out(
    dispatcher: Dispatcher, bot: RecordingBot, storage: StorageService
) -> None:
    await follower(storage, 5, URL, OTHER, delivery=Delivery("every", interval_s=3600))
    await baseline(storage)
    await baseline(storage, OTHER)
    await set_sub(storage, 5, OTHER, muted=True)
    await publish(storage, range(1, 3))
    await publish(storage, range(1, 3), OTHER)
    assert await dispatcher.deliver(5, digest=True) == "done"
    [digest] = bot.texts(5)
    assert "Other" not in digest
    assert sent_items(bot, 5, range(1, 3)) == [1, 1]
    assert cursor(storage, 5, OTHER) == storage.feed_head(OTHER)


async def test_each_item_is_normalised_once_for_a_whole_fan_out(
    dispatcher: Dispatcher, bot: RecordingBot, storage: StorageService
) -> None:
    chats = range(10, 60)
    for chat_id in chats:
        await follower(storage, chat_id)
        own = Filters(include=("story",)) if chat_id % 2 else NO_FILTERS
        await set_sub(storage, chat_id, filters=own)
        if chat_id % 3 == 0:
            await set_chat_filters(storage, chat_id, Filters(exclude=(f"story {chat_id}",)))
    await baseline(storage)
    await publish(storage, range(1, 4))
    for chat_id in chats:
        assert await dispatcher.deliver(chat_id, digest=False) == "done"
    assert {len(bot.texts(c)) for c in chats} == {1}
    assert dispatcher._texts.computed == 3  # 3 items, 50 chats, 33 of them filtering
