"""kill -9 of a real ``python -m bot`` during heavy use loses nothing acknowledged."""

from __future__ import annotations

import json
import random
import signal
from pathlib import Path

import pytest

from bot.services.storage import configure_storage, reset_storage_service
from tests.helpers.bot_runner import start_bot_process, subprocess_env
from tests.helpers.fake_bot_api import FakeBotAPI
from tests.helpers.feed_server import FeedServer
from tests.helpers.feeds import rss

ROOT = Path(__file__).resolve().parent.parent
FEEDS = 40
NEWS = 120


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
    )
    proc = await start_bot_process(env, tmp_path, capture=False)
    try:
        fake_api.send_command("/start", chat_id=1, user_id=1)
        await fake_api.wait_for_messages(1, chat_id=1, timeout=30)
        for n in range(max(FEEDS, NEWS)):
            if n < FEEDS:
                fake_api.send_command(
                    f"/add {feed_server.url(f'/f{n}.xml')}",
                    chat_id=100 + n % 4,
                    user_id=100 + n % 4,
                )
            if n < NEWS:
                fake_api.send_command("/news", chat_id=200 + n % 7, user_id=300 + n)
        # Kill at a random moment while replies are still streaming out.
        target = rng.randint(10, (FEEDS + NEWS) // 2)
        await fake_api.wait_for_messages(1 + target, timeout=30)
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()

    acknowledged = fake_api.sent_messages()
    added = {
        (m["chat_id"], line.split("Now following Feed ")[1].split(".")[0])
        for m in acknowledged
        for line in [m["plain"]]
        if "Now following Feed " in line
    }
    news_answered = sum(1 for m in acknowledged if "Latest" in m["plain"])
    assert added or news_answered, "the kill came before anything was acknowledged"

    # Reload exactly as the bot would on restart.
    reset_storage_service()
    storage = configure_storage(tmp_path / "data", tmp_path / "backups", 10)
    try:
        await storage.load()
        channels = {c.chat_id: c for c in await storage.list_channels()}
        counters = await storage.get_counters()
    finally:
        await storage.close()
        reset_storage_service()
    for chat_id, n in added:
        assert feed_server.url(f"/f{n}.xml") in channels[chat_id].feeds
    # A /news reply is only sent after its counter write was durable.
    assert counters["global"].get("news_requests", 0) >= news_answered
    assert not [p for p in (tmp_path / "data").iterdir() if ".tmp" in p.name]
    for name in ("channels.json", "counters.json"):
        json.loads((tmp_path / "data" / name).read_text())
