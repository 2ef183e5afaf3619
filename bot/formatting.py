"""Pure formatting: items and settings → Telegram HTML text.

No I/O here, so every rule about escaping and length can be tested directly. Every string
that came from a feed or a user goes through :func:`html.escape`; every message produced is at
most :data:`MAX_MESSAGE_LEN` characters of *visible* text *and* of raw HTML (Telegram counts
the former, but staying under both is simpler and always safe). Ages and dates come out in
the chat's language through the :class:`~bot.i18n.Translator` passed in (Babel's CLDR data,
no I/O).
"""

from __future__ import annotations

import functools
import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from babel.dates import format_skeleton, format_timedelta

from bot.i18n import Translator
from bot.models import Backlog, FeedItem

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


def format_age(published: datetime | None, now: datetime | None = None, *, t: Translator) -> str:
    """Say how old an item is ("5 min. ago", "3 hr. ago", "2 days ago"); "" without a date.

    In whole minutes under an hour, whole hours under a day, then days (CLDR's own weeks and
    months past those): the age is floored to that unit first, so Babel never rounds 59
    minutes up to "1 hr.". The words are the chat's language's (``t.locale``).
    """
    if published is None:
        return ""
    now = now or datetime.now(UTC)
    seconds = max(0, int((now - published).total_seconds()))
    unit = 60 if seconds < 3600 else 3600 if seconds < 86400 else 86400
    return _age_text(max(unit, seconds - seconds % unit), t)


@functools.lru_cache(maxsize=2048)
def _age_text(floored_s: int, t: Translator) -> str:
    # Babel takes ~20 µs per call; a fan-out formats the same few ages for thousands of
    # chats, and floored ages repeat (60 minutes, 24 hours, then days), so cache them.
    return format_timedelta(
        timedelta(seconds=-floored_s), threshold=1, add_direction=True, format="short",
        locale=t.locale,
    )  # fmt: skip


def format_when(when: datetime, *, t: Translator) -> str:
    """A date and time as the chat reads it ("Nov 24, 2026, 08:00", "24 нояб. 2026 г., 08:00").

    ``when`` must already be in the chat's time zone; the clock is 24-hour in every language
    (digest times are given as HH:MM).
    """
    date = format_skeleton("yMMMd", when, locale=t.locale)
    clock = format_skeleton("Hm", when, locale=t.locale)
    return str(t.locale.datetime_formats["medium"]).format(clock, date)


def format_item(
    item: FeedItem, now: datetime | None = None, *, t: Translator, show_source: bool = True
) -> str:
    """One item as a short HTML block: bold linked title, then source and age."""
    title = esc(_shorten(item.title, MAX_TITLE_LEN))
    headline = f'<a href="{esc(item.link)}">{title}</a>' if item.link else title
    age = format_age(item.published, now, t=t)
    meta = [esc(_shorten(item.source_title, 80))] if show_source else []
    meta += [age] if age else []
    return f"<b>{headline}</b>" + ("\n" + " · ".join(meta) if meta else "")


def pack_blocks(
    header: str, blocks: Iterable[str], limit: int = MAX_MESSAGE_LEN, separator: str = "\n\n"
) -> list[str]:
    """Pack HTML blocks into as few messages as fit, each at most ``limit`` characters.

    A block that alone exceeds the limit is replaced by a notice rather than cut mid-tag,
    because a cut tag would make Telegram reject the whole message.
    """
    messages: list[str] = []
    current = header
    for raw in blocks:
        block = raw if len(raw) + len(separator) <= limit - len(header) else TOO_LONG
        candidate = f"{current}{separator}{block}" if current else block
        if len(candidate) <= limit:
            current = candidate
            continue
        messages.append(current)
        current = block
    if current:
        messages.append(current)
    return messages


def format_news(
    items: Sequence[FeedItem], header: str, now: datetime | None = None, *, t: Translator
) -> list[str]:
    """Format items as one or more messages under ``header`` (already HTML-safe)."""
    return pack_blocks(header, (format_item(i, now, t=t) for i in items))


@dataclass(frozen=True, slots=True)
class OutMessage:
    """One message of a delivery and the cursors it advances once Telegram accepts it."""

    text: str
    advances: dict[str, int]
    item_ids: tuple[str, ...]


def format_backlogs(
    backlogs: Sequence[Backlog], *, digest: bool, t: Translator, now: datetime | None = None
) -> list[OutMessage]:
    """Turn what a chat has not been sent into messages, each with the cursors it covers.

    Instant: items as they come (several of one feed share a message). Digest: everything,
    grouped by feed under a header. A feed whose log no longer holds all the chat missed
    says how many items were skipped — never silently. The last message covering a feed
    advances its cursor to the feed's head.
    """
    blocks: list[tuple[str, str, int, str | None]] = []  # (html, url, seq or 0, item id)
    for backlog in backlogs:
        if digest:
            blocks.append((f"<b>{esc(_shorten(backlog.title, 120))}</b>", backlog.url, 0, None))
        if backlog.skipped:
            note = f"<i>… {backlog.skipped} earlier item(s) of {esc(_shorten(backlog.title, 80))}"
            note += " were skipped: the feed moved on before they could be sent.</i>"
            blocks.append((note, backlog.url, 0, None))
        for entry in backlog.entries:
            html = format_item(entry.item, now, t=t, show_source=not digest)
            blocks.append((html, backlog.url, entry.seq, entry.item.id))
    header = "<b>📰 Digest</b>" if digest else ""
    messages: list[OutMessage] = []
    current: list[tuple[str, str, int, str | None]] = []
    size = len(header)
    for block in blocks:
        text = block[0] if len(block[0]) + len(header) + 2 <= MAX_MESSAGE_LEN else TOO_LONG
        if current and size + 2 + len(text) > MAX_MESSAGE_LEN:
            # A feed header or skip note belongs with the items after it, not alone at the
            # bottom of a message: carry trailing ones over to the next message.
            carried: list[tuple[str, str, int, str | None]] = []
            while len(current) > 1 and current[-1][3] is None:
                carried.insert(0, current.pop())
            messages.append(_out(header, current))
            current = carried
            size = len(header) + sum(2 + len(b[0]) for b in carried)
        current.append((text, *block[1:]))
        size += 2 + len(text)
    if current:
        messages.append(_out(header, current))
    heads = {b.url: b.head for b in backlogs}
    last_of: dict[str, int] = {}
    for n, message in enumerate(messages):
        for url in message.advances:
            last_of[url] = n
    for url, n in last_of.items():
        messages[n].advances[url] = heads[url]
    return messages


def _out(header: str, blocks: Sequence[tuple[str, str, int, str | None]]) -> OutMessage:
    advances: dict[str, int] = {}
    for _, url, seq, _ident in blocks:
        advances[url] = max(advances.get(url, 0), seq)
    text = "\n\n".join(([header] if header else []) + [b[0] for b in blocks])
    return OutMessage(text, advances, tuple(b[3] for b in blocks if b[3] is not None))


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
