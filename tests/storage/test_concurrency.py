"""Many tasks change storage at once through the singleton; memory and disk agree exactly."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path

from bot.storage import StorageService, get_storage_service
from tests.helpers.storage_data import feed_state, items, load_copy, observable

CHATS = 40
FEEDS = [f"https://example.com/{n}.xml" for n in range(6)]


def follows(chat_id: int) -> list[str]:
    """The feeds chat ``chat_id`` follows (a deterministic, uneven spread)."""
    return [url for n, url in enumerate(FEEDS) if (chat_id + n) % 3 != 0]


async def chat_worker(
    chat_id: int, rng: random.Random, advanced: dict[tuple[int, str], int], advances: list[int]
) -> int:
    """Register, subscribe, count and advance, yielding between steps; returns /news counts."""
    storage = get_storage_service()  # every task goes through the singleton
    await storage.ensure_chat(chat_id, "group" if chat_id % 2 else "private", f"chat {chat_id}")
    news = 0
    for url in follows(chat_id):
        assert await storage.subscribe(chat_id, url, limit=10) == "added"
        storage.count("news_requests", chat_id=chat_id)
        news += 1
        await asyncio.sleep(rng.uniform(0, 0.003))
    for _ in range(5):
        url = rng.choice(follows(chat_id))
        head = storage.feed_head(url)
        if head:
            seq = rng.randint(1, head)
            await storage.advance(chat_id, {url: seq})
            advances.append(seq)
            key = (chat_id, url)
            advanced[key] = max(advanced.get(key, 0), seq)
        storage.count("news_requests", chat_id=chat_id)
        news += 1
        await asyncio.sleep(rng.uniform(0, 0.003))
    return news


async def feed_worker(url: str, rng: random.Random) -> None:
    """Fetch a feed repeatedly while the chats subscribe and advance."""
    storage = get_storage_service()
    seen: list[str] = []
    for round_no in range(8):
        seen.insert(0, f"{url}#{round_no}")
        await storage.record_fetch(url, items(*seen[:20], url=url), feed_state(url, title=url))
        await asyncio.sleep(rng.uniform(0, 0.005))


async def test_concurrent_changes_agree_in_memory_and_on_disk(
    storage: StorageService, tmp_path: Path
) -> None:
    assert get_storage_service() is storage
    rng = random.Random(8)
    advanced: dict[tuple[int, str], int] = {}
    advances: list[int] = []
    writes = storage.write_count
    results = await asyncio.gather(
        *(
            chat_worker(c, random.Random(rng.random()), advanced, advances)
            for c in range(1, CHATS + 1)
        ),
        *(feed_worker(url, random.Random(rng.random())) for url in FEEDS),
    )
    news = Counter({c: n for c, n in zip(range(1, CHATS + 1), results, strict=False)})

    # Memory holds exactly what was asked for.
    assert sorted(c.chat_id for c in storage.chats()) == list(range(1, CHATS + 1))
    for chat_id in range(1, CHATS + 1):
        subs = {s.url: s.cursor for s in storage.subscriptions(chat_id)}
        assert sorted(subs) == sorted(follows(chat_id))
        for url in follows(chat_id):
            # A cursor only moves forwards: to the largest value advanced, or to the head the
            # feed had when the chat subscribed / when its first fetch set the baseline.
            assert subs[url] >= advanced.get((chat_id, url), 0)
            assert subs[url] <= storage.feed_head(url)
    counters = storage.counters()
    assert counters["global"]["news_requests"] == sum(news.values())
    assert {int(k): v["news_requests"] for k, v in counters["chats"].items()} == dict(news)
    assert all(storage.feed_head(url) == 8 for url in FEEDS)
    durable_calls = CHATS + sum(len(follows(c)) for c in news) + len(advances) + 8 * len(FEEDS)
    assert storage.write_count - writes < durable_calls / 5  # group commit shared fsyncs

    # A crash copy now has every durable change (counters are deferred).
    crash = await load_copy(storage, tmp_path / "crash")
    durable, live = observable(crash), observable(storage)
    del durable["counters"], live["counters"]
    assert durable == live
    await crash.close()

    # After close, a reloaded copy agrees exactly, counters included.
    await storage.close()
    reloaded = StorageService(storage.data_dir, storage.backup_dir, 3, compact_in_process=False)
    await reloaded.load()
    assert observable(reloaded) == observable(storage)
    assert reloaded.replay_stats.bad_lines == 0
    await reloaded.close()
