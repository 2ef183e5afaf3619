"""Plain data types shared by services, handlers and storage.

Kept free of I/O so that every layer can import them without cycles, and so that the JSON
shape on disk is defined in one place (``to_dict``/``from_dict``). ``from_dict`` raises
``ValueError`` (or ``KeyError``/``TypeError``) on malformed input; storage turns that into a
logged, skipped record rather than a crash.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal, TypeVar
from urllib.parse import urlsplit

_T = TypeVar("_T")
DeliveryMode = Literal["instant", "every", "at"]
PostFormat = Literal["title", "summary", "full"]
# How an instant post looks: the title only, the title and the item's text, or that plus
# its first image. The one definition of the formats (``/format`` and storage use it).
POST_FORMATS: tuple[PostFormat, ...] = ("title", "summary", "full")
DEFAULT_FORMAT: PostFormat = "summary"
DELIVERY_MODES: tuple[DeliveryMode, ...] = ("instant", "every", "at")
# "HH:MM", 00:00–23:59: the one definition of a digest time of day.
TIME_OF_DAY_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True, slots=True)
class Delivery:
    """How a chat receives new items: at once (``instant``) or in digests.

    ``every``: a digest every ``interval_s`` seconds (phase kept across restarts by the
    chat's persisted ``next_digest_at``); ``at``: daily at ``at`` ("HH:MM") in the chat's
    time zone.
    """

    mode: DeliveryMode = "instant"
    interval_s: int | None = None
    at: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in DELIVERY_MODES:
            raise ValueError(f"unknown delivery mode {self.mode!r}")
        if self.mode == "every" and (
            not isinstance(self.interval_s, int) or isinstance(self.interval_s, bool)
            or self.interval_s < 1
        ):  # fmt: skip
            raise ValueError(f"digest interval must be a positive integer, got {self.interval_s!r}")
        if self.mode == "at" and (
            not isinstance(self.at, str) or not TIME_OF_DAY_RE.match(self.at)
        ):
            raise ValueError(f"digest time must be HH:MM, got {self.at!r}")

    @property
    def is_digest(self) -> bool:
        """Whether items wait for a scheduled digest."""
        return self.mode != "instant"

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready form."""
        return {"mode": self.mode, "interval_s": self.interval_s, "at": self.at}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Delivery:
        """Rebuild from :meth:`to_dict` output; raises ``ValueError`` if it is invalid."""
        return cls(mode=data.get("mode", "instant"), interval_s=data.get("interval_s"),
                   at=data.get("at"))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Filters:
    """Keyword filters of a chat or a subscription: words or phrases, no regular expressions.

    ``include``: an item must mention at least one (when any are set); ``exclude``: an item
    mentioning any is dropped. Matching lives in :mod:`bot.services.filters`; this is the
    stored shape only.
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude)

    def to_dict(self) -> dict[str, list[str]]:
        """Return the JSON-ready form."""
        return {"include": list(self.include), "exclude": list(self.exclude)}

    @classmethod
    def from_dict(cls, data: object) -> Filters:
        """Rebuild from :meth:`to_dict` output (anything else gives no filters)."""
        if not isinstance(data, dict):
            return NO_FILTERS
        include = tuple(str(w) for w in data.get("include") or () if str(w))
        exclude = tuple(str(w) for w in data.get("exclude") or () if str(w))
        return cls(include, exclude) if include or exclude else NO_FILTERS


NO_FILTERS = Filters()


def _copied_by_constructor(cls: type[_T]) -> type[_T]:
    """Give a mutable slots dataclass a fast shallow ``__copy__`` (same result as the default).

    Storage hands out copies on every read (each poll of a feed, each ``/news``); the
    default ``copy.copy`` goes through ``__reduce_ex__`` and costs ~3x calling the
    constructor with the same field values.
    """
    values = operator.attrgetter(*(f.name for f in fields(cls)))  # type: ignore[arg-type]

    def __copy__(self: _T) -> _T:
        return cls(*values(self))

    cls.__copy__ = __copy__  # type: ignore[attr-defined]
    return cls


@_copied_by_constructor
@dataclass(slots=True)
class Chat:
    """A chat the bot serves (private chat, group, supergroup or channel) and its choices."""

    chat_id: int
    type: str = "private"
    title: str = ""
    active: bool = True
    delivery: Delivery = field(default_factory=Delivery)
    tz: str = "UTC"
    paused: bool = False
    # Unix time the next digest is due (digest modes only); persisted so that an "every"
    # schedule keeps its phase across restarts.
    next_digest_at: float | None = None
    format: PostFormat = DEFAULT_FORMAT
    previews: bool = True  # link previews under posts
    language: str | None = None  # None: the language of whoever talks to the bot
    filters: Filters = NO_FILTERS  # applied to every subscription of the chat
    # Users who manage this chat through the bot from their private chat (/channels).
    managers: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready form (options at their defaults are left out: smaller files)."""
        out: dict[str, Any] = {
            "chat_id": self.chat_id,
            "type": self.type,
            "title": self.title,
            "active": self.active,
            "delivery": self.delivery.to_dict(),
            "tz": self.tz,
            "paused": self.paused,
            "next_digest_at": self.next_digest_at,
        }
        if self.format != DEFAULT_FORMAT:
            out["format"] = self.format
        if not self.previews:
            out["previews"] = False
        if self.language is not None:
            out["language"] = self.language
        if self.filters:
            out["filters"] = self.filters.to_dict()
        if self.managers:
            out["managers"] = list(self.managers)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Chat:
        """Rebuild from :meth:`to_dict` output.

        An invalid delivery schedule (a hand-edited ``"at": "25:00"``) is not fatal: the chat
        falls back to instant delivery and the caller logs it (see ``storage.state``).
        """
        try:
            delivery = Delivery.from_dict(data.get("delivery") or {})
        except ValueError:
            delivery = Delivery()
        next_at = data.get("next_digest_at")
        fmt = data.get("format", DEFAULT_FORMAT)
        language = data.get("language")
        return cls(
            chat_id=int(data["chat_id"]),
            type=str(data.get("type", "private")),
            title=str(data.get("title", "")),
            active=bool(data.get("active", True)),
            delivery=delivery,
            tz=str(data.get("tz") or "UTC"),
            paused=bool(data.get("paused", False)),
            next_digest_at=float(next_at) if isinstance(next_at, int | float) else None,
            format=fmt if fmt in POST_FORMATS else DEFAULT_FORMAT,
            previews=bool(data.get("previews", True)),
            language=language if isinstance(language, str) and language else None,
            filters=Filters.from_dict(data.get("filters")),
            managers=tuple(int(u) for u in data.get("managers") or ()),
        )


@_copied_by_constructor
@dataclass(slots=True)
class Subscription:
    """A chat following a feed; ``cursor`` is the last feed sequence number delivered to it.

    The options after ``added_at`` are what ``SubOptions`` carries: stored only when they
    differ from the defaults, so 200,000 plain subscriptions cost nothing extra on disk.
    """

    chat_id: int
    url: str
    cursor: int = 0
    added_at: float = 0.0
    thread_id: int | None = None  # forum topic the posts go to (None: the chat itself)
    muted: bool = False  # items advance the cursor but are not sent
    title: str = ""  # a display title the chat chose ("" = the feed's own)
    filters: Filters = NO_FILTERS
    format: PostFormat | None = None  # None: the chat's format

    def options(self) -> dict[str, Any]:
        """The non-default options, JSON-ready (the ``sub_opts`` record and snapshot form)."""
        out: dict[str, Any] = {}
        if self.thread_id is not None:
            out["thread_id"] = self.thread_id
        if self.muted:
            out["muted"] = True
        if self.title:
            out["title"] = self.title
        if self.filters:
            out["filters"] = self.filters.to_dict()
        if self.format is not None:
            out["format"] = self.format
        return out

    def set_options(self, data: dict[str, Any]) -> None:
        """Replace every option with those in ``data`` (absent = default); validates first."""
        thread = data.get("thread_id")
        if thread is not None and (not isinstance(thread, int) or isinstance(thread, bool)):
            raise ValueError(f"thread_id must be an integer, got {thread!r}")
        fmt = data.get("format")
        if fmt is not None and fmt not in POST_FORMATS:
            raise ValueError(f"unknown post format {fmt!r}")
        self.thread_id = thread
        self.muted = bool(data.get("muted", False))
        self.title = str(data.get("title") or "")
        self.filters = Filters.from_dict(data.get("filters"))
        self.format = fmt


@_copied_by_constructor
@dataclass(slots=True)
class FeedState:
    """A feed's HTTP and health state, remembered between fetches and restarts."""

    url: str
    title: str = ""
    etag: str | None = None
    last_modified: str | None = None
    failures: int = 0
    paused: bool = False
    last_error: str | None = None
    # Unix time of the last fetch attempt (success or failure): the basis of backoff.
    last_attempt: float = 0.0
    # Whether any fetch ever succeeded: the first success is the log's baseline (history),
    # even when the feed was empty then, so later items are news.
    fetched_once: bool = False

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
            "last_attempt": self.last_attempt,
            "fetched_once": self.fetched_once,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeedState:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            url=str(data["url"]),
            title=str(data.get("title") or ""),
            etag=_opt_str(data.get("etag")),
            last_modified=_opt_str(data.get("last_modified")),
            failures=int(data.get("failures") or 0),
            paused=bool(data.get("paused", False)),
            last_error=_opt_str(data.get("last_error")),
            last_attempt=float(data.get("last_attempt") or 0.0),
            fetched_once=bool(data.get("fetched_once", False)),
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
    # The item's text, already converted to Telegram's HTML subset and bounded (see
    # ``bot.richtext``); "" when the feed gives none. Kept only for the newest log entries.
    summary: str = ""
    image: str | None = None  # the item's first image (absolute http(s) URL)

    def __reduce__(self) -> tuple[type[FeedItem], tuple[Any, ...]]:
        """Pickle as the constructor's arguments (parsed feeds come back from the parsers).

        The dataclass default, a dict of field names per item restored one
        ``object.__setattr__`` at a time, cost ~5x as much on both sides.
        """
        return FeedItem, _FEED_ITEM_VALUES(self)


_FEED_ITEM_VALUES: Final = operator.attrgetter(*(f.name for f in fields(FeedItem)))


@dataclass(frozen=True, slots=True)
class LogEntry:
    """An item in a feed's log: ``seq`` is its position (1, 2, 3 … in first-seen order)."""

    seq: int
    item: FeedItem

    def to_row(self) -> list[Any]:
        """The compact on-disk form: ``[seq, id, title, link, published unix time]``.

        ``summary`` and ``image`` follow only when set (``[…, summary, image]``), so rows of
        items without them stay as small as before and older rows still load.
        """
        item = self.item
        published = item.published
        row = [self.seq, item.id, item.title, item.link,
               published.timestamp() if published else None]  # fmt: skip
        if item.summary or item.image:
            row += [item.summary, item.image]
        return row

    @classmethod
    def from_row(cls, row: list[Any], source_title: str, feed_url: str) -> LogEntry:
        """Rebuild from :meth:`to_row` output (the feed's title and URL are shared)."""
        seq, ident, title, link, published = row[:5]
        summary, image = (row[5], row[6]) if len(row) >= 7 else ("", None)
        when = datetime.fromtimestamp(float(published), tz=UTC) if published is not None else None
        ident = str(ident)
        # Many feeds use the link as the id: one string for both (storage memory).
        link = None if link is None else ident if link == ident else str(link)
        # Positional, in field order: keywords cost ~40% more, and storage rebuilds every
        # logged item this way (at start-up and on every fetch that finds new ones).
        item = FeedItem(ident, str(title), link, when, source_title, feed_url,
                        str(summary or ""), _opt_str(image))  # fmt: skip
        return cls(int(seq), item)

    def without_text(self) -> LogEntry:
        """This entry without its summary and image (older log entries: bounded memory)."""
        if not self.item.summary and self.item.image is None:
            return self
        return LogEntry(self.seq, replace(self.item, summary="", image=None))


@dataclass(frozen=True, slots=True)
class Backlog:
    """What one subscription of a chat has not been sent yet."""

    url: str
    title: str
    entries: list[LogEntry]  # ascending seq
    skipped: int  # items the feed's log no longer holds (the chat missed them)
    head: int  # the feed's newest seq: the cursor value once everything is sent
    # The subscription (a copy) whose backlog this is: topic, mute, filters, format. ``title``
    # above is already its custom title when it has one.
    sub: Subscription | None = None


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A parsed feed document: its title and items, newest first (undated ones last)."""

    title: str
    items: tuple[FeedItem, ...]


def host_of(url: str) -> str:
    """The host part of a URL, for compact display (the URL itself when it has none)."""
    return urlsplit(url).hostname or url


def chosen_title(custom: str, feed_title: str) -> str:
    """The name a chat knows a feed by: its custom title, else the feed's own ("" if none).

    What an export writes: a made-up name there would become a custom title on import.
    """
    return custom or feed_title


def display_title(custom: str, feed_title: str, url: str) -> str:
    """How a subscription is named wherever the bot shows it: posts, lists, notes, answers.

    The chat's custom title, else the feed's own, else the feed's host (readable where a
    full URL is not, and what the parser names an untitled feed). The one definition of the
    rule; callers pass ``""`` for a title they do not have.
    """
    return chosen_title(custom, feed_title) or host_of(url)


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None
