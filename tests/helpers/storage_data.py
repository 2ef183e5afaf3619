"""Builders and probes for storage tests: feed items, records, crash copies, observable state.

``observable()`` reads a service only through its public API, so two services (the live one
and one reloaded from disk) can be compared for exact agreement.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.models import Chat, FeedItem, FeedState
from bot.storage import StorageService


def item(ident: str, url: str = "https://example.com/feed.xml") -> FeedItem:
    """A feed item whose id, title and link derive from ``ident``."""
    return FeedItem(
        id=f"urn:{ident}",
        title=f"Story {ident}",
        link=f"https://example.com/{ident}",
        published=datetime(2026, 1, 1, tzinfo=UTC),
        source_title="Example",
        feed_url=url,
    )


def items(*idents: str, url: str = "https://example.com/feed.xml") -> list[FeedItem]:
    """Items newest first, the order a parser returns them in."""
    return [item(i, url) for i in idents]


def feed_state(url: str, **fields: Any) -> FeedState:
    """A FeedState for ``url`` with the given fields."""
    return FeedState(url=url, **fields)


def chat_record(chat_id: int, **fields: Any) -> dict[str, Any]:
    """A ``chat`` record for a chat with the given fields."""
    return {"op": "chat", "chat": Chat(chat_id=chat_id, **fields).to_dict()}


def crash_copy(service: StorageService, target: Path) -> tuple[Path, Path]:
    """Copy the service's directories as they are on disk now (what a crash would leave).

    Nothing is flushed or closed: the copy holds exactly what has reached the files.
    """
    data, backups = target / "data", target / "backups"
    shutil.copytree(service.data_dir, data)
    shutil.copytree(service.backup_dir, backups)
    return data, backups


async def load_copy(service: StorageService, target: Path, **options: Any) -> StorageService:
    """Load a second StorageService from a crash copy of ``service``'s files (caller closes)."""
    data, backups = crash_copy(service, target)
    options.setdefault("compact_in_process", False)
    other = StorageService(data, backups, service.backup_keep, **options)
    await other.load()
    return other


def observable(service: StorageService) -> dict[str, Any]:
    """Everything the service exposes through its read API, as plain comparable data."""
    chats = sorted(service.chats(), key=lambda c: c.chat_id)
    urls = sorted({s.url for c in chats for s in service.subscriptions(c.chat_id)})
    urls = sorted(set(urls) | set(service.followed_urls()))
    return {
        "chats": [c.to_dict() for c in chats],
        "subs": {
            c.chat_id: [
                (s.url, s.cursor, s.added_at, s.options()) for s in service.subscriptions(c.chat_id)
            ]
            for c in chats
        },
        "followers": {u: sorted(service.followers(u)) for u in urls},
        "feeds": {
            u: (
                state.to_dict() if (state := service.feed_state(u)) else None,
                service.feed_head(u),
                [e.to_row() for e in service.feed_log(u)],
            )
            for u in urls
        },
        "pending": {
            c.chat_id: [
                (b.url, [e.seq for e in b.entries], b.skipped) for b in service.pending(c.chat_id)
            ]
            for c in chats
        },
        "counters": service.counters(),
    }
