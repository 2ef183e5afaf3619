"""Small steps shared by the end-to-end delivery tests (instant, digest, migration, kill -9).

They drive the real ``Application`` from the outside (commands through the fake Bot API) and
reach inside only where a test must not wait for a timer: :func:`poll_now` makes one feed due,
runs a poll cycle and waits until the feed server saw the fetch. ``say`` and ``settle`` are
the handler tests' (:mod:`tests.helpers.conversation`), re-exported here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from bot.context import services_of
from bot.storage import get_storage_service
from tests.helpers.bot_runner import AnyApp, eventually
from tests.helpers.conversation import say, settle
from tests.helpers.fake_bot_api import FakeBotAPI
from tests.helpers.feed_server import FeedServer
from tests.helpers.feeds import rss

logger = logging.getLogger(__name__)

__all__ = [
    "assert_exactly_once",
    "force_digest",
    "occurrences",
    "poll_now",
    "say",
    "serve_feed",
    "settle",
    "story",
    "title_of",
]


def story(n: int, tag: str = "s", *, pad: int = 0) -> dict[str, Any]:
    """Item ``n`` of a test feed; its title starts "Story <tag><n> end", unique in a test.

    ``pad`` appends that many filler words, to make messages long enough to be split.
    """
    title = f"Story {tag}{n} end" + " filler" * pad
    return {"title": title, "link": f"https://news.example/{tag}/{n}", "guid": f"{tag}-{n}"}


def title_of(item: dict[str, Any]) -> str:
    """The unique start of the title a chat reads for ``item`` (without any filler)."""
    return str(item["title"]).split(" filler", 1)[0]


def serve_feed(server: FeedServer, path: str, items: list[dict[str, Any]], title: str) -> str:
    """Serve ``items`` (newest first, as feeds list them) at ``path``; return its URL."""
    server.serve(path, rss(list(reversed(items)), title=title))
    return server.url(path)


async def poll_now(app: AnyApp, server: FeedServer, path: str, url: str) -> None:
    """Make ``url`` due, run a poll cycle and wait until the feed server saw the fetch.

    The bot's own poll job may take the due feed first; either way the fetch happens, and
    the wait on the feed server's request count makes that visible.
    """
    feeds = services_of(app).feeds
    before = server.request_count(path)
    feeds.poll_soon(url)
    await feeds.poll_due()

    async def fetched() -> bool:
        return server.request_count(path) > before

    await eventually(fetched, timeout=10, what=f"a fetch of {path}")
    await settle(app)


async def force_digest(app: AnyApp, chat_id: int) -> float:
    """Make the chat's digest due now and run the due digests; return the due time used."""
    storage, digests = get_storage_service(), services_of(app).digests
    when = time.time() - 1
    await storage.set_next_digest(chat_id, when)
    chat = storage.chat(chat_id)
    assert chat is not None
    await digests.update(chat)
    assert await digests.run_due() == 1
    await settle(app)
    return when


def occurrences(fake: FakeBotAPI, chat_id: int, needle: str) -> int:
    """How many messages to ``chat_id`` contain ``needle``."""
    return sum(1 for m in fake.sent_messages(chat_id) if needle in m["plain"])


def assert_exactly_once(fake: FakeBotAPI, chats: Iterable[int], titles: Iterable[str]) -> None:
    """Every title reached every chat in exactly one message."""
    wanted = list(titles)
    counts = {(c, t): occurrences(fake, c, t) for c in chats for t in wanted}
    wrong = {key: n for key, n in counts.items() if n != 1}
    assert not wrong, f"(chat, title) → messages, expected 1 each: {wrong}\n{fake.describe()}"
