"""Plain data types shared by services, handlers and storage.

Kept free of I/O so that every layer can import them without cycles, and so that the
JSON shape on disk is defined in one place (``to_dict``/``from_dict``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

DigestMode = Literal["off", "every", "at"]
# How many item ids a chat remembers as already sent; old ids fall off the front.
SEEN_LIMIT = 2000


@dataclass(slots=True)
class DigestSchedule:
    """When a chat's digest runs: never, every ``interval_s`` seconds, or daily at ``at`` UTC."""

    mode: DigestMode = "off"
    interval_s: int | None = None
    at: str | None = None  # "HH:MM", UTC

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready form."""
        return {"mode": self.mode, "interval_s": self.interval_s, "at": self.at}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DigestSchedule:
        """Rebuild from :meth:`to_dict` output."""
        mode = data.get("mode", "off")
        if mode not in ("off", "every", "at"):
            mode = "off"
        return cls(mode=mode, interval_s=data.get("interval_s"), at=data.get("at"))


@dataclass(slots=True)
class Channel:
    """A chat the bot serves (private chat, group, supergroup or channel) and its choices."""

    chat_id: int
    type: str = "private"
    title: str = ""
    feeds: list[str] = field(default_factory=list)
    digest: DigestSchedule = field(default_factory=DigestSchedule)
    active: bool = True
    # Ids of items already posted by the digest, oldest first, at most SEEN_LIMIT.
    seen: list[str] = field(default_factory=list)

    def remember_sent(self, item_ids: list[str]) -> None:
        """Record ids as sent, keeping the bounded window of the newest SEEN_LIMIT."""
        known = set(self.seen)
        self.seen.extend(i for i in item_ids if i not in known)
        if len(self.seen) > SEEN_LIMIT:
            del self.seen[: len(self.seen) - SEEN_LIMIT]

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready form."""
        return {
            "chat_id": self.chat_id,
            "type": self.type,
            "title": self.title,
            "feeds": list(self.feeds),
            "digest": self.digest.to_dict(),
            "active": self.active,
            "seen": list(self.seen),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Channel:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            chat_id=int(data["chat_id"]),
            type=str(data.get("type", "private")),
            title=str(data.get("title", "")),
            feeds=[str(u) for u in data.get("feeds", [])],
            digest=DigestSchedule.from_dict(data.get("digest") or {}),
            active=bool(data.get("active", True)),
            seen=[str(s) for s in data.get("seen", [])],
        )


@dataclass(slots=True)
class FeedState:
    """What the bot remembers about one feed URL between fetches and restarts."""

    url: str
    title: str = ""
    etag: str | None = None
    last_modified: str | None = None
    failures: int = 0
    paused: bool = False
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready form."""
        return {
            "url": self.url,
            "title": self.title,
            "etag": self.etag,
            "last_modified": self.last_modified,
            "failures": self.failures,
            "paused": self.paused,
            "last_error": self.last_error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeedState:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            url=str(data["url"]),
            title=str(data.get("title", "")),
            etag=data.get("etag"),
            last_modified=data.get("last_modified"),
            failures=int(data.get("failures", 0)),
            paused=bool(data.get("paused", False)),
            last_error=data.get("last_error"),
        )


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One normalised news item."""

    id: str  # stable: guid, else link, else a hash of title+published
    title: str
    link: str | None
    published: datetime | None  # timezone-aware UTC, or None when the feed gives no date
    source_title: str
    feed_url: str


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A parsed feed document: its title and items, newest first (undated ones last)."""

    title: str
    items: tuple[FeedItem, ...]
