"""Phase 2 task 5: concurrent /news and /add through the real Application and one storage.

All updates are queued at once, so PTB hands them to handlers concurrently
(``concurrent_updates``), and every handler shares the one ``StorageService`` singleton.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable

from bot.config import Settings
from bot.services.storage import get_storage_service
from tests.helpers.bot_runner import running_bot
from tests.helpers.fake_bot_api import FakeBotAPI
from tests.helpers.feed_server import FeedServer
from tests.helpers.feeds import rss

NEWS_REQUESTS = 60
ADD_REQUESTS = 20
CHATS = 12


async def test_concurrent_news_and_add_agree_with_disk(
    fake_api: FakeBotAPI,
    bot_settings: Callable[..., Settings],
    feed_server: FeedServer,
) -> None:
    default = feed_server.url("/default.xml")
    feed_server.serve("/default.xml", rss([{"title": "Default story", "guid": "d1"}]))
    for n in range(ADD_REQUESTS):
        feed_server.serve(
            f"/f{n}.xml",
            rss([{"title": f"Story {n}", "guid": f"g{n}"}], title=f"Feed {n}"),
            delay=0.01 * (n % 5),
        )
    settings = bot_settings(default_feeds=(default,), news_rate_count=100)

    async with running_bot(settings):
        expected_feeds: dict[int, set[str]] = {}
        news_by_chat: Counter[int] = Counter()
        for n in range(NEWS_REQUESTS):
            chat = 1000 + n % CHATS
            news_by_chat[chat] += 1
            fake_api.send_command("/news", chat_id=chat, user_id=5000 + n)
            if n < ADD_REQUESTS:
                url = feed_server.url(f"/f{n}.xml")
                expected_feeds.setdefault(chat, set()).add(url)
                fake_api.send_command(f"/add {url}", chat_id=chat, user_id=chat)
        total = NEWS_REQUESTS + ADD_REQUESTS
        await fake_api.wait_for_messages(total, timeout=60)
        storage = get_storage_service()
        channels = {c.chat_id: c for c in await storage.list_channels()}
        counters = await storage.get_counters()
        data_dir = settings.data_dir

    # Exactly one answer per request, none lost, none duplicated.
    sent = fake_api.sent_messages()
    assert len(sent) == total
    per_chat = Counter(m["chat_id"] for m in sent)
    for chat in news_by_chat:
        assert per_chat[chat] == news_by_chat[chat] + len(expected_feeds.get(chat, ()))
    adds = [m for m in sent if "Now following" in m["plain"]]
    assert len(adds) == ADD_REQUESTS

    # Memory agrees with what was acknowledged.
    for chat, urls in expected_feeds.items():
        assert set(channels[chat].feeds) == urls
    assert counters["global"]["news_requests"] == NEWS_REQUESTS
    assert counters["global"]["feeds_added"] == ADD_REQUESTS
    for chat, count in news_by_chat.items():
        assert counters["chats"][str(chat)]["news_requests"] == count

    # And the files on disk agree with memory (the bot has shut down and flushed).
    on_disk = json.loads((data_dir / "channels.json").read_text())
    disk_channels = on_disk["channels"]
    disk_channels = disk_channels.values() if isinstance(disk_channels, dict) else disk_channels
    disk_feeds = {int(c["chat_id"]): set(c["feeds"]) for c in disk_channels}
    for chat, urls in expected_feeds.items():
        assert disk_feeds[chat] == urls
    disk_counters = json.loads((data_dir / "counters.json").read_text())
    assert disk_counters["global"]["news_requests"] == NEWS_REQUESTS
    assert disk_counters["global"]["feeds_added"] == ADD_REQUESTS
    assert {
        int(k): v["news_requests"]
        for k, v in disk_counters["chats"].items()
        if "news_requests" in v
    } == dict(news_by_chat)
