"""The whole persisted state, and the one function that changes it: :meth:`State.apply`.

Storage is event-sourced: every durable change is a small JSON *record* (``{"op": …}``)
that is appended to the journal and applied here. Replaying the snapshot plus the journal
after a crash runs exactly the same code as the live change did, so memory and disk cannot
drift apart. Every operation is idempotent (upserts, absolute values, sequence numbers), so
a record that reaches the journal twice (a write retried after an error) changes nothing
the second time.

Pure and synchronous: no I/O, no asyncio. The compaction worker process imports this module
to fold journal segments into a new snapshot.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import struct
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bot.models import Chat, Delivery, FeedState, LogEntry, Subscription

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
# A feed's log keeps this many items (first-seen order). A chat that missed more than this
# (a long pause, a daily digest of a very busy feed) is told how many it skipped.
LOG_MAX = 200
# Ids of this many recently discovered items are remembered per feed, so an item that drops
# out of a feed and reappears is not posted again.
KNOWN_MAX = 1000
# Only the newest this-many entries of a feed's log keep their summary and image: they are
# what instant posts render, and 200 summaries per feed at 10,000 feeds would cost gigabytes.
# Older entries (digests, /resume backlogs) are listed by title, which needs neither.
TEXT_KEEP = 20

Record = dict[str, Any]


class RecordError(ValueError):
    """A record or snapshot does not have the expected shape."""


def id_key(item_id: str) -> int:
    """The compact key under which an item id is remembered: 60 bits of its hash.

    An int below 2**60 is a 32-byte object, against 65 bytes for the 16-character hex string
    this used to be; a feed remembers up to KNOWN_MAX of them. Collisions within one feed's
    window are as unlikely as before (1000 keys in 2**60).
    """
    digest = hashlib.blake2b(item_id.encode("utf-8", "replace"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 4


class KnownIds:
    """The known-id window of a feed: up to KNOWN_MAX id keys, oldest first, as packed bytes.

    A dict of 1000 int keys costs ~69 KB per feed (10,000 feeds: ~690 MB once their windows
    have filled); packed as 8-byte words it is 8 KB. Membership is a ``bytearray.find`` over
    those 8 KB (a couple of microseconds, in C), checked for word alignment; many keys at
    once (a fetch's items, a snapshot's window) are checked against one unpacked set instead.
    """

    __slots__ = ("_data",)

    def __init__(self, keys: Iterable[int] = ()) -> None:
        self._data = bytearray()
        self.extend(keys)

    @staticmethod
    def _word(key: int) -> bytes:
        return key.to_bytes(8, "little")

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, int) or not 0 <= key < 1 << 64:
            return False
        word, data = self._word(key), self._data
        at = data.find(word)
        while at >= 0 and at % 8:  # a match straddling two keys is not this key
            at = data.find(word, at + 1)
        return at >= 0

    def __len__(self) -> int:
        return len(self._data) // 8

    def __iter__(self) -> Iterator[int]:
        data = self._data
        return (int.from_bytes(data[at : at + 8], "little") for at in range(0, len(data), 8))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KnownIds) and self._data == other._data

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"KnownIds({list(self)!r})"

    def as_set(self) -> set[int]:
        """Every remembered key: one pass over the window, for checking many keys at once."""
        data = self._data
        return set(struct.unpack(f"<{len(data) // 8}Q", data))

    def add(self, key: int) -> None:
        """Remember ``key`` (once) as the newest, forgetting the oldest beyond KNOWN_MAX."""
        if key not in self:
            self._data += self._word(key)
            self._trim()

    def extend(self, keys: Iterable[int]) -> None:
        """:meth:`add` each of ``keys`` in order, with one pass over the window for them all."""
        window, data = self.as_set(), self._data
        for key in keys:
            if key in window:
                continue
            window.add(key)
            data += self._word(key)  # in place: data is self._data
            if len(data) > 8 * KNOWN_MAX:  # the oldest goes now, as add() would drop it
                window.discard(int.from_bytes(data[:8], "little"))
                del data[:8]

    def _trim(self) -> None:
        excess = len(self._data) - 8 * KNOWN_MAX
        if excess > 0:
            del self._data[:excess]


@dataclass(slots=True)
class FeedRecord:
    """A followed feed: HTTP state, the bounded item log, and the known-id window."""

    state: FeedState
    head: int = 0  # sequence number of the newest logged item (0: never fetched)
    log: list[LogEntry] = field(default_factory=list)  # ascending seq, at most LOG_MAX
    known: KnownIds = field(default_factory=KnownIds)  # id_key()s of recent items

    def entries_after(self, cursor: int) -> tuple[list[LogEntry], int]:
        """Entries with ``seq > cursor``, and how many such items the log no longer holds.

        Found by sequence number, not by position: sequence numbers can have gaps (a corrupt
        journal line skipped at replay, a snapshot restored from a backup), and a gap must
        neither hide later entries nor pass silently.
        """
        if cursor >= self.head:
            return [], 0
        start = bisect.bisect_right(self.log, cursor, key=lambda entry: entry.seq)
        entries = self.log[start:]
        first = entries[0].seq if entries else self.head + 1
        return entries, max(0, first - cursor - 1)


@dataclass(slots=True)
class State:
    """Chats, subscriptions (with cursors), feeds (with logs) and counters."""

    chats: dict[int, Chat] = field(default_factory=dict)
    subs: dict[int, dict[str, Subscription]] = field(default_factory=dict)  # chat -> url -> sub
    followers: dict[str, set[int]] = field(default_factory=dict)  # url -> chats (an index)
    feeds: dict[str, FeedRecord] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    chat_counters: dict[int, dict[str, int]] = field(default_factory=dict)
    # old id -> new id of chats migrated since start (not persisted; tiny): a delivery that
    # was sending to the old id while the group became a supergroup advances the new one.
    moved: dict[int, int] = field(default_factory=dict)
    # user -> chats they manage from a private chat (an index of Chat.managers; /channels).
    managed: dict[int, set[int]] = field(default_factory=dict)

    # ------------------------------------------------------------------ applying records
    def apply(self, record: Record) -> None:
        """Apply one record. Raises :class:`RecordError` (state untouched) if it is malformed."""
        op = record.get("op")
        handler = _HANDLERS.get(op) if isinstance(op, str) else None
        if handler is None:
            raise RecordError(f"unknown record op {op!r}")
        try:
            handler(self, record)
        except RecordError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RecordError(f"malformed {op!r} record: {exc!r}") from exc

    def _chat(self, r: Record) -> None:
        chat = compact_chat(chat_from(r["chat"]))
        self.put_chat(chat)

    def _migrate(self, r: Record) -> None:
        old, new = int(r["old"]), int(r["new"])
        if old == new or old not in self.chats:
            return
        moved = self.chats.pop(old)
        self._index_managers(moved, add=False)
        self.moved[old] = new
        if new not in self.chats:
            moved.chat_id = new
            self.put_chat(moved)
        else:
            target = self.chats[new]
            target.active = target.active or moved.active
            _carry_options(target, moved)
            self._index_managers(target, add=False)
            target.managers = tuple(dict.fromkeys(target.managers + moved.managers))
            self._index_managers(target, add=True)
        for url, sub in list(self.subs.get(old, {}).items()):
            existing = self.subs.get(new, {}).get(url)
            cursor = max(sub.cursor, existing.cursor) if existing else sub.cursor
            self._drop_sub(old, url, keep_feed=True)
            moved_sub = Subscription(new, url, cursor, sub.added_at)
            moved_sub.set_options(sub.options())
            self.put_sub(moved_sub)
        self.subs.pop(old, None)
        old_counts = self.chat_counters.pop(old, None)
        if old_counts:
            target_counts = self.chat_counters.setdefault(new, {})
            for name, value in old_counts.items():
                target_counts[name] = target_counts.get(name, 0) + value

    def _sub(self, r: Record) -> None:
        chat_id, url = int(r["chat_id"]), str(r["url"])
        sub = Subscription(chat_id, url, int(r["cursor"]), float(r.get("added_at", 0)))
        sub.set_options(dict(r.get("opts") or {}))
        feed = self.feeds.get(url)
        if feed is None:
            self.feeds[url] = FeedRecord(FeedState(url=url))
        else:
            sub.url = feed.state.url  # one string per feed URL, not one per subscription
        self.put_sub(sub)

    def _sub_opts(self, r: Record) -> None:
        sub = self.subs.get(int(r["chat_id"]), {}).get(str(r["url"]))
        if sub is not None:
            sub.set_options(dict(r["opts"]))

    def _unsub(self, r: Record) -> None:
        self._drop_sub(int(r["chat_id"]), str(r["url"]))

    def _cursor(self, r: Record) -> None:
        chat_subs = self.subs.get(int(r["chat_id"]), {})
        cursors = {str(url): int(seq) for url, seq in dict(r["cursors"]).items()}
        for url, seq in cursors.items():
            sub = chat_subs.get(url)
            if sub is not None:
                sub.cursor = max(sub.cursor, seq)

    def _feed(self, r: Record) -> None:
        state = FeedState.from_dict(r["state"])
        record = self.feeds.get(state.url)
        if record is None:
            self.feeds[state.url] = FeedRecord(state)
        else:
            state.url = record.state.url  # one string per feed URL
            record.state = state

    def _items(self, r: Record) -> None:
        url = str(r["url"])
        record = self.feeds.get(url)
        if record is not None:
            url = record.state.url  # one string per feed URL, shared by its items
        # Parse everything before changing anything: a malformed record leaves no trace.
        state = FeedState.from_dict(r["state"]) if r.get("state") is not None else None
        if state is None:
            state = record.state if record is not None else FeedState(url=url)
        state.url = url
        title = state.title or url
        rows = [LogEntry.from_row(row, title, url) for row in r["items"]]
        if record is None:
            record = self.feeds[url] = FeedRecord(state)
        record.state = state
        log = record.log
        fresh: list[LogEntry] = []
        for entry in rows:
            if entry.seq <= record.head:
                continue  # already applied (idempotent replay)
            log.append(entry)
            record.head = entry.seq
            fresh.append(entry)
        added = len(fresh)
        if added == 1:
            record.known.add(id_key(fresh[0].item.id))
        elif added:
            record.known.extend(id_key(entry.item.id) for entry in fresh)
        if len(log) > LOG_MAX:
            del log[: len(log) - LOG_MAX]
        # Entries that just fell out of the newest TEXT_KEEP drop their text: O(new items).
        for at in range(max(0, len(log) - TEXT_KEEP - added), max(0, len(log) - TEXT_KEEP)):
            log[at] = log[at].without_text()
        if r.get("baseline"):
            # The feed's first successful fetch: what it holds now is history, not news, for
            # everyone already following it (e.g. subscriptions migrated from an older format).
            for chat_id in self.followers.get(url, ()):
                sub = self.subs[chat_id][url]
                sub.cursor = max(sub.cursor, record.head)

    def _feed_del(self, r: Record) -> None:
        url = str(r["url"])
        if not self.followers.get(url):
            self.feeds.pop(url, None)

    def _counters(self, r: Record) -> None:
        # Parse everything before changing anything: a malformed record leaves no trace.
        glob = {str(name): int(value) for name, value in dict(r.get("global") or {}).items()}
        chats = {
            int(chat_key): {str(name): int(value) for name, value in dict(values).items()}
            for chat_key, values in dict(r.get("chats") or {}).items()
        }
        self.counters.update(glob)
        for chat_id, values in chats.items():
            counts = self.chat_counters.get(chat_id)
            if counts is None:
                chat = self.chats.get(chat_id)
                # The chat's own int object as the key, not one more per chat.
                key = chat_id if chat is None else chat.chat_id
                counts = self.chat_counters[key] = {}
            counts.update(values)

    # ------------------------------------------------------------------ helpers
    def put_chat(self, chat: Chat) -> None:
        """Add or replace a chat and keep the managers index right (snapshot loading too)."""
        previous = self.chats.get(chat.chat_id)
        if previous is not None:
            self._index_managers(previous, add=False)
        self.chats[chat.chat_id] = chat
        self._index_managers(chat, add=True)

    def _index_managers(self, chat: Chat, *, add: bool) -> None:
        for user in chat.managers:
            if add:
                self.managed.setdefault(user, set()).add(chat.chat_id)
                continue
            chats = self.managed.get(user)
            if chats is not None:
                chats.discard(chat.chat_id)
                if not chats:
                    del self.managed[user]

    def put_sub(self, sub: Subscription) -> None:
        """Add or replace a subscription and index its follower (snapshot loading uses it)."""
        self.subs.setdefault(sub.chat_id, {})[sub.url] = sub
        self.followers.setdefault(sub.url, set()).add(sub.chat_id)

    def _drop_sub(self, chat_id: int, url: str, *, keep_feed: bool = False) -> None:
        chat_subs = self.subs.get(chat_id)
        if chat_subs is None or chat_subs.pop(url, None) is None:
            return
        if not chat_subs:
            del self.subs[chat_id]
        followers = self.followers.get(url)
        if followers is not None:
            followers.discard(chat_id)
            if not followers:
                del self.followers[url]
                if not keep_feed:
                    # The last follower left: the feed's state and log go too (bounded memory).
                    self.feeds.pop(url, None)

    # ------------------------------------------------------------------ snapshots
    def to_snapshot(self, segment: int) -> Iterator[Record]:
        """The whole state as snapshot lines (see :mod:`bot.storage.snapshot`), lazily.

        ``segment`` is the first journal segment *not* folded into it.
        """
        from bot.storage.snapshot import snapshot_lines  # noqa: PLC0415 - it imports us

        return snapshot_lines(self, segment)

    @classmethod
    def from_snapshot(cls, lines: Iterable[object]) -> tuple[State, int]:
        """Rebuild a state from :meth:`to_snapshot` lines; returns it and its segment.

        Raises:
            RecordError: the lines are not a valid, complete snapshot.
        """
        from bot.storage.snapshot import SnapshotLoader  # noqa: PLC0415 - it imports us

        if not isinstance(lines, list | tuple | Iterator):
            raise RecordError("a snapshot is a sequence of lines")
        loader = SnapshotLoader()
        for line in lines:
            loader.add(line)
        return loader.finish()


_DEFAULT_CHAT = Chat(chat_id=0)
# The choices a chat's admins make (``/format``, ``/previews``, ``/language``, ``/filter``,
# ``/timezone``, ``/pause``); the schedule (``/digest``) goes with its next due time.
_CHAT_OPTIONS = ("format", "previews", "language", "filters", "tz", "paused")


def _carry_options(target: Chat, old: Chat) -> None:
    """Give a migration's target the old chat's choices wherever it still has the defaults.

    The target exists already when a command in the new supergroup was seen before the
    migration message (it was registered then, with the defaults): dropping the old group's
    settings would reset everything its admins chose. An option the target set itself (a
    command sent there meanwhile) is kept. "Default" is the :class:`Chat` default: a target
    registered with a digest ``DEFAULT_DELIVERY`` keeps that schedule (records carry no
    settings, and the state cannot tell it from a ``/digest`` sent there).
    """
    for name in _CHAT_OPTIONS:
        if getattr(target, name) == getattr(_DEFAULT_CHAT, name):
            setattr(target, name, getattr(old, name))
    if target.delivery == _DEFAULT_CHAT.delivery and old.delivery != target.delivery:
        target.delivery = old.delivery
        target.next_digest_at = old.next_digest_at  # an "every" schedule keeps its phase


def chat_from(raw: dict[str, Any]) -> Chat:
    """``Chat.from_dict``, logging (not failing on) a schedule this version cannot use."""
    try:
        Delivery.from_dict(raw.get("delivery") or {})
    except ValueError as exc:
        logger.warning(
            "ignored an invalid digest schedule; the chat gets instant delivery",
            extra={"event": "invalid_schedule", "chat_id": raw.get("chat_id"), "error": str(exc)},
        )
    return Chat.from_dict(raw)


_DELIVERIES: dict[Delivery, Delivery] = {}
_DELIVERIES_MAX = 4096  # distinct schedules shared; more (unlikely) are simply not shared


def compact_chat(chat: Chat) -> Chat:
    """Share ``chat``'s repeated values with every other chat's (in place; returns it).

    100,000 chats hold a handful of distinct types, time zones and schedules: one object of
    each instead of one per chat saves ~20 MB at that size.
    """
    chat.type = sys.intern(chat.type)
    chat.tz = sys.intern(chat.tz)
    shared = _DELIVERIES.get(chat.delivery)
    if shared is None:
        if len(_DELIVERIES) < _DELIVERIES_MAX:
            _DELIVERIES[chat.delivery] = chat.delivery
    else:
        chat.delivery = shared
    return chat


_HANDLERS = {
    "chat": State._chat,
    "migrate": State._migrate,
    "sub": State._sub,
    "sub_opts": State._sub_opts,
    "unsub": State._unsub,
    "cursor": State._cursor,
    "feed": State._feed,
    "items": State._items,
    "feed_del": State._feed_del,
    "counters": State._counters,
}
