"""Crash-test writer: mutates storage in a tight loop until it is SIGKILLed.

Run as ``python -m tests.helpers.storage_writer DATA_DIR BACKUP_DIR`` from the repository
root. It prints ``ready <ticks>`` once loaded, then for each iteration ``n`` it rewrites chat
``CHAT_ID`` with exactly ``n`` feeds, increments the ``ticks`` counter (global and per chat) to
``n`` and, only after both awaits returned (the data is durable), prints ``ack <n>``. Every
``BACKUP_EVERY`` iterations it also takes a backup, so kills land in backup writes too.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bot.models import Channel
from bot.services.storage import configure_storage

CHAT_ID = -100123
COUNTER = "ticks"
BACKUP_EVERY = 15


def feeds_for(n: int) -> list[str]:
    """Return the feed list of iteration ``n``; any state is recognisable by its length."""
    return [f"https://example.com/feed/{i}.xml" for i in range(n)]


async def run(data_dir: Path, backup_dir: Path) -> None:
    """Load, then write forever (until killed)."""
    storage = configure_storage(data_dir, backup_dir, backup_keep=3)
    await storage.load()
    n = (await storage.get_counters())["global"].get(COUNTER, 0)
    await storage.ensure_channel(CHAT_ID, "supergroup", "crash test")
    print(f"ready {n}", flush=True)
    while True:
        n += 1

        def rewrite(channel: Channel, count: int = n) -> None:
            channel.feeds = feeds_for(count)

        await storage.update_channel(CHAT_ID, rewrite)
        await storage.increment(COUNTER, chat_id=CHAT_ID)
        print(f"ack {n}", flush=True)
        if n % BACKUP_EVERY == 0:
            await storage.backup("crash-test")


if __name__ == "__main__":
    asyncio.run(run(Path(sys.argv[1]), Path(sys.argv[2])))
