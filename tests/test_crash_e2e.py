"""kill -9 of a real ``python -m bot`` during heavy use loses nothing acknowledged.

Subscriptions and chat settings are durable before the user is told, so every "✅ Now
following" and every "✅ Delivery: a digest..." the fake Bot API accepted must be there after
a SIGKILL at a random moment, when the data directory is loaded again exactly as a restarted
bot loads it. Counters are deferred (flushed within a second), so they may lag but never
exceed what really happened.
"""

from __future__ import annotations

import random
import re
import signal
from pathlib import Path

import pytest

from bot.storage import configure_storage, reset_storage_service
from bot.storage.journal import decode_snapshot
from tests.helpers.bot_runner import eventually, start_bot_process, subprocess_env
from tests.helpers.fake_bot_api import FakeBotAPI
from tests.helpers.feed_server import FeedServer
from tests.helpers.feeds import rss

FEEDS = 40
NEWS = 120
DIGESTS = 10
# Many chats, because Telegram (and the bot's pacing) allow about one message a second each.
ADD_CHATS = 20
NEWS_CHATS = 40
ADDED_RE = re.compile(r"Now following Feed (\d+)\.")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_sigkill_during_heavy_use_keeps_every_acknowledged_change(
    fake_api: FakeBotAPI, feed_server: FeedServer, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    for n in range(FEEDS):
        feed_server.serve(
            f"/f{n}.xml", rss([{"title": f"S{n}", "guid": f"g{n}"}], title=f"Feed {n}")
        )
    env = subprocess_env(
        tmp_path,
        TELEGRAM_BOT_TOKEN=fake_api.token,
        TELEGRAM_API_BASE_URL=fake_api.base_url,
        DEFAULT_FEEDS=feed_server.url("/f0.xml"),
        ALLOW_PRIVATE_FEEDS="1",
        NEWS_RATE_LIMIT="1000/60",
        PARSER_PROCESSES="0",  # no worker processes to orphan when the bot is killed
    )
    proc = await start_bot_process(env, tmp_path, capture=False)
    try:
        fake_api.send_command("/start", chat_id=1, user_id=1)
        await fake_api.wait_for_messages(1, chat_id=1, timeout=30)
        for n in range(max(FEEDS, NEWS)):
            if n < FEEDS:
                chat = 100 + n % ADD_CHATS
                fake_api.send_command(
                    f"/add {feed_server.url(f'/f{n}.xml')}", chat_id=chat, user_id=chat
                )
            if n < NEWS:
                fake_api.send_command("/news", chat_id=200 + n % NEWS_CHATS, user_id=300 + n)
            if n < DIGESTS:
                fake_api.send_command("/digest every 2h", chat_id=400 + n, user_id=400 + n)
        # Kill at a random moment while /add answers (the slowest: each fetches a feed) are
        # still streaming out, so some subscriptions are acknowledged and others in flight.
        target = rng.randint(3, FEEDS // 2)

        async def enough_added() -> bool:
            return sum(bool(ADDED_RE.search(m["plain"])) for m in fake_api.sent) >= target

        await eventually(enough_added, timeout=30, what=f"{target} acknowledged /add")
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()

    acknowledged = fake_api.sent_messages()
    added = {
        (m["chat_id"], int(found.group(1)))
        for m in acknowledged
        if (found := ADDED_RE.search(m["plain"]))
    }
    digest_chats = {
        m["chat_id"]
        for m in acknowledged
        if m["plain"].startswith("✅ Delivery: a digest every 2h")
    }
    news_answered = sum(1 for m in acknowledged if m["plain"].startswith("📰 Latest"))
    assert len(added) >= target

    # Reload exactly as the bot would on restart.
    reset_storage_service()
    storage = configure_storage(tmp_path / "data", tmp_path / "backups", 10)
    try:
        await storage.load()
        followed = {chat_id: storage.feed_urls(chat_id) for chat_id, _ in added}
        settings = {chat_id: storage.chat(chat_id) for chat_id in digest_chats}
        counters = storage.counters()
        stats = storage.replay_stats
    finally:
        await storage.close()
        reset_storage_service()
    for chat_id, n in added:
        assert feed_server.url(f"/f{n}.xml") in followed[chat_id], (chat_id, n)
    for digest_chat, stored in settings.items():
        assert stored is not None, digest_chat
        assert (stored.delivery.mode, stored.delivery.interval_s) == ("every", 7200)
        assert stored.next_digest_at is not None, digest_chat
    # Deferred counters may lag behind the replies, but replaying never invents requests.
    assert news_answered <= NEWS
    assert counters["global"].get("news_requests", 0) <= NEWS
    assert counters["global"].get("feeds_added", 0) <= FEEDS
    assert stats.bad_lines == 0  # only a torn last line may be dropped
    data_dir = tmp_path / "data"
    assert not [p for p in data_dir.iterdir() if ".tmp" in p.name]
    decode_snapshot((data_dir / "snapshot.json").read_bytes())  # a complete, valid snapshot
