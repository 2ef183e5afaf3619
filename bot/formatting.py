"""Pure formatting: items and settings → Telegram HTML text.

No I/O here, so every rule about escaping and length can be tested directly. Every string
that came from a feed or a user goes through :func:`html.escape`; every message produced is at
most :data:`MAX_MESSAGE_LEN` characters of *visible* text *and* of raw HTML (Telegram counts
the former, but staying under both is simpler and always safe).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

from bot.models import DigestSchedule, FeedItem

MAX_MESSAGE_LEN = 4096
MAX_TITLE_LEN = 300  # a feed title longer than this is noise, not news
ELLIPSIS = "…"
TOO_LONG = "<i>(an item too long to show was skipped)</i>"


def esc(text: str) -> str:
    """Escape text for Telegram's HTML parse mode (``<``, ``>``, ``&`` and quotes)."""
    return html.escape(text, quote=True)


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: max(0, limit - 1)].rstrip() + ELLIPSIS


def host_of(url: str) -> str:
    """The host part of a URL, for compact display."""
    return urlsplit(url).hostname or url


def format_age(published: datetime | None, now: datetime | None = None) -> str:
    """Say how old an item is ("5m", "3h", "2d"); empty when the feed gave no date."""
    if published is None:
        return ""
    now = now or datetime.now(UTC)
    seconds = max(0, int((now - published).total_seconds()))
    if seconds < 3600:
        return f"{max(1, seconds // 60)}m"
    if seconds < 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def format_item(item: FeedItem, now: datetime | None = None) -> str:
    """One item as a short HTML block: bold linked title, then source and age."""
    title = esc(_shorten(item.title, MAX_TITLE_LEN))
    headline = f'<a href="{esc(item.link)}">{title}</a>' if item.link else title
    meta = esc(_shorten(item.source_title, 80))
    age = format_age(item.published, now)
    return f"<b>{headline}</b>\n{meta}" + (f" · {age}" if age else "")


def pack_blocks(header: str, blocks: Iterable[str], limit: int = MAX_MESSAGE_LEN) -> list[str]:
    """Pack HTML blocks into as few messages as fit, each at most ``limit`` characters.

    A block that alone exceeds the limit is replaced by a notice rather than cut mid-tag,
    because a cut tag would make Telegram reject the whole message.
    """
    messages: list[str] = []
    current = header
    for raw in blocks:
        block = raw if len(raw) + 2 <= limit - len(header) else TOO_LONG
        candidate = f"{current}\n\n{block}" if current else block
        if len(candidate) <= limit:
            current = candidate
            continue
        messages.append(current)
        current = block
    if current:
        messages.append(current)
    return messages


def format_news(items: Sequence[FeedItem], header: str, now: datetime | None = None) -> list[str]:
    """Format items as one or more messages under ``header`` (already HTML-safe)."""
    return pack_blocks(header, (format_item(i, now) for i in items))


def format_feed_list(feeds: Sequence[str], titles: Mapping[str, str], paused: set[str]) -> str:
    """Numbered list of a chat's feeds, as /remove understands the numbers."""
    if not feeds:
        return "No feeds yet. Add one with /add &lt;url&gt;."
    lines = ["<b>Your feeds</b>"]
    for n, url in enumerate(feeds, 1):
        title = titles.get(url) or host_of(url)
        flag = " ⏸ paused" if url in paused else ""
        shown = esc(_shorten(url, 200))
        lines.append(f"{n}. {esc(_shorten(title, 80))}{flag}\n   <code>{shown}</code>")
    return pack_blocks("", ["\n".join(lines)])[0]


def describe_schedule(schedule: DigestSchedule) -> str:
    """Human text for a digest schedule."""
    if schedule.mode == "every" and schedule.interval_s:
        minutes = schedule.interval_s // 60
        span = f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"
        return f"every {span}"
    if schedule.mode == "at" and schedule.at:
        return f"daily at {schedule.at} UTC"
    return "off"


def format_counters(counters: Mapping[str, Mapping[str, object]], top: int = 10) -> str:
    """Operator view of the persisted counters: global totals and the busiest chats."""
    glob = counters.get("global", {})
    lines = ["<b>Counters</b>"]
    lines += [f"{esc(k)}: {v}" for k, v in sorted(glob.items())] or ["(none yet)"]
    chats = counters.get("chats", {})
    busiest = sorted(
        chats.items(),
        key=lambda kv: -int(kv[1].get("news_requests", 0)) if isinstance(kv[1], Mapping) else 0,
    )[:top]
    if busiest:
        lines.append(f"\n<b>Busiest chats</b> (of {len(chats)})")
        for chat_id, values in busiest:
            if isinstance(values, Mapping):
                summary = ", ".join(f"{esc(k)}={v}" for k, v in sorted(values.items()))
                lines.append(f"{esc(str(chat_id))}: {summary}")
    return pack_blocks("", ["\n".join(lines)])[0]
