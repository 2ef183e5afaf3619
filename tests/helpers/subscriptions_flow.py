"""Shared moves and texts of the /list, /rename and /filter end-to-end tests.

``tests/handlers/test_manage.py``, ``test_rename.py`` and ``test_filters.py`` drive the
same chats: a chat following numbered feeds ("Feed 01"…), its /list message and buttons,
one served feed "Tech Times" with items titled as given. The texts users read that several
of those files assert on are defined here once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bot.config import Settings
from bot.models import FeedState
from bot.storage import get_storage_service
from tests.helpers.conversation import say
from tests.helpers.fake_bot_api import FakeBotAPI
from tests.helpers.feed_server import FeedServer
from tests.helpers.feeds import rss

logger = logging.getLogger(__name__)

SettingsFactory = Callable[..., Settings]
LEGEND = "Buttons: 🔇 mute · 🔔 unmute · 🔎 filters · 📝 post format · ✏️ rename · 🗑 remove"
ADMINS_ONLY = "Only this chat's administrators can change its feeds and delivery."
NOT_VALID = "This button is not valid any more. Send /list for a fresh list."
NO_SUCH_FEED = "No such feed here. See /list for the numbers."
USAGE = (
    "Change them:\n"
    "/filter include python, rust — only items that mention one of these\n"
    "/filter exclude ads, sponsored post — never items that mention these\n"
    "/filter clear — no filters"
)
GROUP: dict[str, Any] = {"chat_type": "supergroup", "chat_title": "G"}


def feed_url(n: int) -> str:
    """The URL of numbered feed ``n`` (never fetched: :func:`follow_many` stores its state)."""
    return f"https://feeds.example/{n:02d}.xml"


async def follow_many(chat_id: int, count: int, chat_type: str = "private") -> None:
    """The chat follows ``count`` feeds titled "Feed 01"… (straight into storage: fast)."""
    storage = get_storage_service()
    await storage.ensure_chat(chat_id, chat_type, f"Chat {chat_id}")
    for n in range(1, count + 1):
        storage.set_feed_state(FeedState(url=feed_url(n), title=f"Feed {n:02d}"))
        assert await storage.subscribe(chat_id, feed_url(n), limit=1000) == "added"


def listed(numbers: range) -> str:
    """The lines /list shows for these numbered feeds."""
    return "\n".join(f"{n}. Feed {n:02d}\n   {feed_url(n)}" for n in numbers)


def row(n: int, muted: bool = False) -> list[str]:
    """The button labels of feed ``n``'s row."""
    return [f"{n} {'🔔' if muted else '🔇'}", f"{n} 🔎", f"{n} 📝", f"{n} ✏️", f"{n} 🗑"]


async def show_list(
    fake: FakeBotAPI, chat_id: int, user_id: int | None = None, text: str = "/list", **kw: Any
) -> tuple[int, str]:
    """Send /list; return the id of the list message and its text."""
    plain = await say(fake, text, chat_id, user_id, **kw)
    return fake.sent_messages(chat_id)[-1]["message_id"], plain


def shown(fake: FakeBotAPI, chat_id: int, message_id: int) -> str:
    """What a (possibly edited) bot message reads now."""
    return str(fake.buttons.record(chat_id, message_id)["plain"])


def items(*titles: str) -> bytes:
    """The feed "Tech Times" with these items, newest first; an item's id is its title."""
    return rss(
        [{"title": t, "link": f"https://n.example/{t.replace(' ', '-')}", "guid": t}
         for t in titles],
        title="Tech Times",
    )  # fmt: skip


async def add_feed(fake: FakeBotAPI, server: FeedServer, chat_id: int, *titles: str) -> str:
    """Serve a feed with ``titles`` (history once added) and follow it; return its URL."""
    server.serve("/tech.xml", items(*titles))
    url = server.url("/tech.xml")
    answer = await say(fake, f"/add {url}", chat_id)
    assert answer.startswith("✅ Now following Tech Times."), answer
    return url
