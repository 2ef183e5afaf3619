"""Pure formatting: items and settings → Telegram HTML text.

No I/O here, so every rule about escaping and length can be tested directly. Every string
that came from a feed or a user goes through :func:`html.escape`; lengths are Telegram's
(UTF-16 code units, :func:`bot.telegram_html.utf16_len`). Lists of items (digests, ``/news``, the
``title`` format) are packed by the raw HTML's length, which is never below the visible
text's: simpler and always safe. Posts with an item's text (``summary``, ``full``) are
measured exactly (:func:`bot.telegram_html.visible_len`), because their budget is tight: a photo
caption holds 1,024 units. Ages and dates come out in the chat's language through the
:class:`~bot.i18n.Translator` passed in (Babel's CLDR data, no I/O).
"""

from __future__ import annotations

import functools
import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from babel.dates import format_skeleton, format_timedelta

from bot.i18n import DEFAULT_LANGUAGE, N_, Translator, translator
from bot.models import Backlog, FeedItem, PostFormat
from bot.telegram_html import truncate_html, utf16_len, visible_len

MAX_MESSAGE_LEN = 4096
MAX_CAPTION_LEN = 1024  # a photo's caption, in the same units
MAX_TITLE_LEN = 300  # a feed title longer than this is noise, not news
ELLIPSIS = "…"
TOO_LONG = N_("(an item too long to show was skipped)")
DIGEST_HEADER = N_("📰 Digest")


def esc(text: str) -> str:
    """Escape text for Telegram's HTML parse mode (``<``, ``>``, ``&`` and quotes)."""
    return html.escape(text, quote=True)


def too_long_note(t: Translator) -> str:
    """What stands in for a block too long for any message (italic, in the chat's language)."""
    return f"<i>{esc(t.gettext(TOO_LONG))}</i>"


def skipped_note(t: Translator, count: int, title: str) -> str:
    """Says that ``count`` items of the feed ``title`` were missed: never silently (italic)."""
    text = t.ngettext(
        "… %(n)d earlier item of %(title)s was skipped: the feed moved on before it could be sent.",
        "… %(n)d earlier items of %(title)s were skipped: the feed moved on before they could "
        "be sent.",
        count,
    ) % {"n": count, "title": esc(shorten(title, 80))}
    return f"<i>{text}</i>"


def shorten(text: str, limit: int) -> str:
    """``text`` on one line (whitespace runs folded), cut to ``limit`` characters with "…".

    For titles, URLs and toasts whose length is a layout choice, not Telegram's limit (that
    one is counted in UTF-16 units: :func:`bot.telegram_html.utf16_len`).
    """
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: max(0, limit - 1)].rstrip() + ELLIPSIS


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
    item: FeedItem,
    now: datetime | None = None,
    *,
    t: Translator,
    show_source: bool = True,
    source: str | None = None,
) -> str:
    """One item as a short HTML block: bold linked title, then source and age.

    ``source`` overrides the feed's title (a subscription's custom title).
    """
    title = esc(shorten(item.title, MAX_TITLE_LEN))
    headline = f'<a href="{esc(item.link)}">{title}</a>' if item.link else title
    age = format_age(item.published, now, t=t)
    meta = [esc(shorten(source or item.source_title, 80))] if show_source else []
    meta += [age] if age else []
    return f"<b>{headline}</b>" + ("\n" + " · ".join(meta) if meta else "")


def pack_blocks(
    header: str,
    blocks: Iterable[str],
    limit: int = MAX_MESSAGE_LEN,
    separator: str = "\n\n",
    *,
    t: Translator,
) -> list[str]:
    """Pack HTML blocks into as few messages as fit, each at most ``limit`` UTF-16 units.

    ``header`` opens the first message only. A block that alone exceeds the limit is
    replaced by a notice (:func:`too_long_note`, in ``t``'s language) rather than cut
    mid-tag, because a cut tag would make Telegram reject the whole message.
    """
    note = too_long_note(t)
    texts = [_fitting(raw, header, separator, limit, note) for raw in blocks]
    groups = _pack([utf16_len(text) for text in texts], utf16_len(header), utf16_len(separator),
                   limit, repeat_header=False)  # fmt: skip
    if not groups:
        return [header] if header else []
    return [
        _joined(header if n == 0 else "", [texts[i] for i in group], separator)
        for n, group in enumerate(groups)
    ]


def _fitting(block: str, header: str, separator: str, limit: int, note: str) -> str:
    """``block``, or ``note`` standing for it when it cannot fit a message under ``header``."""
    fits = utf16_len(block) + utf16_len(separator) <= limit - utf16_len(header)
    return block if fits else note


def _joined(header: str, texts: Sequence[str], separator: str) -> str:
    return separator.join([header, *texts] if header else texts)


def _pack(
    units: Sequence[int],
    header: int,
    separator: int,
    limit: int,
    *,
    repeat_header: bool,
    keep_with_next: Sequence[bool] = (),
) -> list[list[int]]:
    """The one packing rule: which blocks (by index, in order) share each message.

    Greedy: a block joins the current message while the message stays within ``limit``
    units, counting ``header`` units (and a separator after a non-empty header) on the
    first message, and on every message when ``repeat_header``. A block marked in
    ``keep_with_next`` (a feed's title, a skip note) that would end a full message moves to
    the next one with the block it introduces. O(1) per block: sizes are tracked, never
    re-measured.
    """
    groups: list[list[int]] = []
    current: list[int] = []
    head = size = header  # this message's header units, and its size so far
    for index, block_units in enumerate(units):
        if current and size + separator + block_units > limit:
            carried: list[int] = []
            while keep_with_next and len(current) > 1 and keep_with_next[current[-1]]:
                carried.insert(0, current.pop())
            groups.append(current)
            current = carried
            head = header if repeat_header else 0
            joins = len(carried) - (0 if head else 1)  # separators between head and blocks
            size = head + sum(units[i] for i in carried) + separator * max(0, joins)
        size += block_units + (separator if current or head else 0)
        current.append(index)
    if current:
        groups.append(current)
    return groups


def format_news(
    items: Sequence[FeedItem], header: str, now: datetime | None = None, *, t: Translator
) -> list[str]:
    """Format items as one or more messages under ``header`` (already HTML-safe)."""
    return pack_blocks(header, (format_item(i, now, t=t) for i in items), t=t)


@dataclass(frozen=True, slots=True)
class OutMessage:
    """One message of a delivery and the cursors it advances once Telegram accepts it."""

    text: str
    advances: dict[str, int]
    item_ids: tuple[str, ...]
    # How an instant post is sent (digests and lists keep the defaults: text, no preview).
    photo: str | None = None  # sendPhoto this image URL with ``text`` as its caption
    preview_image: str | None = None  # show this image as a large link preview above the text
    link_preview: bool = False  # let Telegram preview the first link (the chat's /previews)


def format_backlogs(
    backlogs: Sequence[Backlog], *, digest: bool, t: Translator, now: datetime | None = None
) -> list[OutMessage]:
    """Turn what a chat has not been sent into messages, each with the cursors it covers.

    Instant: items as they come (several of one feed share a message). Digest: everything,
    grouped by feed under a header. A feed whose log no longer holds all the chat missed
    says how many items were skipped — never silently. The last message covering a feed
    advances its cursor to the feed's head. Feeds are named by ``Backlog.title`` (the
    subscription's display title), never by the items' own source.
    """
    blocks: list[tuple[str, str, int, str | None]] = []  # (html, url, seq or 0, item id)
    for backlog in backlogs:
        if digest:
            blocks.append((f"<b>{esc(shorten(backlog.title, 120))}</b>", backlog.url, 0, None))
        if backlog.skipped:
            note = skipped_note(t, backlog.skipped, backlog.title)
            blocks.append((note, backlog.url, 0, None))
        for entry in backlog.entries:
            html = format_item(entry.item, now, t=t, show_source=not digest, source=backlog.title)
            blocks.append((html, backlog.url, entry.seq, entry.item.id))
    header = f"<b>{esc(t.gettext(DIGEST_HEADER))}</b>" if digest else ""
    too_long = too_long_note(t)
    # Sizes are UTF-16 units of the raw HTML: never less than Telegram's count of the visible
    # text, so titles full of emoji or astral characters cannot overflow a message.
    texts = [_fitting(block[0], header, "\n\n", MAX_MESSAGE_LEN, too_long) for block in blocks]
    groups = _pack([utf16_len(text) for text in texts], utf16_len(header), 2, MAX_MESSAGE_LEN,
                   repeat_header=True, keep_with_next=[b[3] is None for b in blocks])  # fmt: skip
    messages = [_out(header, [(texts[i], *blocks[i][1:]) for i in group]) for group in groups]
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
    text = _joined(header, [b[0] for b in blocks], "\n\n")
    return OutMessage(text, advances, tuple(b[3] for b in blocks if b[3] is not None))


@dataclass(frozen=True, slots=True)
class Post:
    """One item rendered in a post format: its HTML and how its image is shown.

    At most one of ``photo`` and ``preview_image`` is set: ``photo`` when the text fits a
    caption (sendPhoto), ``preview_image`` when it does not (the image as a link preview above
    the text, in one message — see :mod:`bot.services.delivery`).
    """

    text: str
    photo: str | None = None
    preview_image: str | None = None


def format_post(
    item: FeedItem,
    fmt: PostFormat,
    t: Translator,
    *,
    source: str | None = None,
    now: datetime | None = None,
) -> Post:
    """One item as an instant post in ``fmt``, within Telegram's limits.

    ``title``: the compact block of :func:`format_item`. ``summary``: that block, a blank line,
    the item's text (already Telegram HTML, see :attr:`FeedItem.summary`) and a "read more"
    link to the item; the text is cut at a word boundary with "…" when the post would pass
    4,096 units. ``full``: as ``summary``, plus the item's first image — as a photo with the
    text as its caption when the text fits 1,024 units, otherwise as a link preview.

    Args:
        item: the item.
        fmt: the post format.
        t: the chat's translator (for "read more").
        source: the source line's title (a subscription's custom title); default the feed's.
        now: the time ages are counted from.
    """
    head = format_item(item, now, t=t, source=source)
    if fmt == "title" or not item.summary:
        text = head
        length = _units(text) if fmt == "full" and _usable_image(item.image) else 0
    else:
        tail = ""
        if item.link:
            more = esc(t.gettext("Read more"))  # outside the f-string: extraction sees it
            tail = f'\n<a href="{esc(item.link)}">{more}</a>'
        fixed = _units(head) + 2 + _units(tail)
        units = _units(item.summary)
        if units <= MAX_MESSAGE_LEN - fixed:
            body = item.summary
        else:
            body = truncate_html(item.summary, MAX_MESSAGE_LEN - fixed)
            units = visible_len(body)
        text = f"{head}\n\n{body}{tail}"
        length = fixed + units
    if fmt != "full" or not _usable_image(item.image):
        return Post(text)
    if length <= MAX_CAPTION_LEN:
        return Post(text, photo=item.image)
    return Post(text, preview_image=item.image)


@functools.lru_cache(maxsize=1024)
def _units(telegram_html: str) -> int:
    """:func:`visible_len`, remembered for the pieces of recent posts.

    A fan-out posts one item to many chats with the same text, head line and "read more"
    link; parsing them again for each chat would be most of a post's CPU.
    """
    return visible_len(telegram_html)


def _usable_image(url: str | None) -> bool:
    """Whether ``url`` may be given to Telegram as a photo (an absolute http(s) URL)."""
    return bool(url) and urlsplit(url or "").scheme in ("http", "https")


def format_instant(
    backlogs: Sequence[Backlog],
    *,
    chat_format: PostFormat,
    previews: bool,
    t: Translator,
    now: datetime | None = None,
) -> list[OutMessage]:
    """Instant posts for what a chat has not been sent, each backlog in its own format.

    A subscription's format (``Backlog.sub.format``) wins over the chat's. ``title`` backlogs
    keep :func:`format_backlogs`' compact messages (several items of a feed share one);
    ``summary`` and ``full`` send one message per item, each advancing its feed's cursor to
    that item (the last one to the feed's head), so a post Telegram refuses is skipped alone.
    The source line is the subscription's display title (``Backlog.title``).
    """
    messages: list[OutMessage] = []
    compact: list[Backlog] = []  # consecutive title-format backlogs, packed together

    def flush() -> None:
        for message in format_backlogs(compact, digest=False, t=t, now=now):
            messages.append(replace(message, link_preview=previews))
        compact.clear()

    for backlog in backlogs:
        sub = backlog.sub
        fmt = sub.format if sub is not None and sub.format is not None else chat_format
        if fmt == "title":
            compact.append(backlog)
            continue
        flush()
        messages += _item_posts(backlog, fmt, t, previews=previews, now=now)
    flush()
    return messages


def _item_posts(
    backlog: Backlog,
    fmt: PostFormat,
    t: Translator,
    *,
    previews: bool,
    now: datetime | None,
) -> list[OutMessage]:
    """One message per item of ``backlog`` (after a skip note, when items were missed)."""
    out: list[OutMessage] = []
    if backlog.skipped:  # the compact form's note, alone in its message
        note = Backlog(backlog.url, backlog.title, [], backlog.skipped, backlog.head)
        [message] = format_backlogs([note], digest=False, t=t)
        # Once the note is out the missed items are accounted for; the items still wait.
        upto = backlog.entries[0].seq - 1 if backlog.entries else backlog.head
        out.append(replace(message, advances={backlog.url: upto}))
    for entry in backlog.entries:
        post = format_post(entry.item, fmt, t, source=backlog.title, now=now)
        out.append(
            OutMessage(
                post.text, {backlog.url: entry.seq}, (entry.item.id,), photo=post.photo,
                preview_image=post.preview_image, link_preview=previews,
            )
        )  # fmt: skip
    if out:
        out[-1].advances[backlog.url] = backlog.head
    return out


def format_counters(counters: Mapping[str, Mapping[str, object]], top: int = 10) -> str:
    """Operator view of the persisted counters: global totals and the busiest chats.

    In English whoever asks: it is for the bot's operators, like the logs and metrics.
    """
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
    return pack_blocks("", ["\n".join(lines)], t=translator(DEFAULT_LANGUAGE))[0]
