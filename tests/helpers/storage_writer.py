"""Crash-test writer: makes acknowledged durable changes in a loop until it is SIGKILLed.

Run as ``python -m tests.helpers.storage_writer DATA_DIR BACKUP_DIR`` from the repository
root. It loads the storage, prints ``ready <n>`` where ``n`` is the number of feeds chat
``CHAT_ID`` already follows, then for each iteration ``n = n + 1``:

1. subscribes ``CHAT_ID`` to ``feed_url(n)`` (durable),
2. sets the chat's title to ``title_for(n)`` and advances its cursor on ``feed_url(n - 1)`` to
   ``n`` (durable, two callers sharing one group commit),
3. counts ``ticks`` (deferred: may be lost by a kill, never ahead of the acks by more than one),
4. prints ``ack <n>`` — only after every durable await returned.

A small ``compact_min_bytes`` makes compactions (in a thread: a SIGKILL must take all of the
writer's work with it) and every ``BACKUP_EVERY`` iterations a backup, so kills also land in
segment rotation, snapshot and backup writes.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bot.models import Chat
from bot.storage import configure_storage

CHAT_ID = -100123
COUNTER = "ticks"
BACKUP_EVERY = 25
COMPACT_MIN_BYTES = 16_000


def feed_url(n: int) -> str:
    """The feed subscribed in iteration ``n``."""
    return f"https://example.com/feed/{n}.xml"


def title_for(n: int) -> str:
    """The chat title written in iteration ``n``."""
    return f"crash test {n}"


async def run(data_dir: Path, backup_dir: Path) -> None:
    """Load, then write until killed."""
    storage = configure_storage(
        data_dir,
        backup_dir,
        backup_keep=3,
        compact_in_process=False,
        compact_min_bytes=COMPACT_MIN_BYTES,
    )
    await storage.load()
    await storage.ensure_chat(CHAT_ID, "supergroup", title_for(0))
    n = len(storage.feed_urls(CHAT_ID))
    print(f"ready {n}", flush=True)
    while True:
        n += 1
        await storage.subscribe(CHAT_ID, feed_url(n), limit=1_000_000)

        def retitle(chat: Chat, value: int = n) -> None:
            chat.title = title_for(value)

        await asyncio.gather(
            storage.update_chat(CHAT_ID, retitle),
            storage.advance(CHAT_ID, {feed_url(n - 1): n}),
        )
        storage.count(COUNTER, chat_id=CHAT_ID)
        print(f"ack {n}", flush=True)
        if n % BACKUP_EVERY == 0:
            await storage.backup("crash-test")


if __name__ == "__main__":
    asyncio.run(run(Path(sys.argv[1]), Path(sys.argv[2])))
