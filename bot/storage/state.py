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

Record = dict[str, Any]


class RecordError(ValueError):
    """A record or snapshot does not have the expected shape."""


def id_key(item_id: str) -> str:
    """The compact key under which an item id is remembered (16 hex chars, 64 bits)."""
    return hashlib.blake2b(item_id.encode("utf-8", "replace"), digest_size=8).hexdigest()


@dataclass(slots=True)
class FeedRecord:
    """A followed feed: HTTP state, the bounded item log, and the known-id window."""

    state: FeedState
    head: int = 0  # sequence number of the newest logged item (0: never fetched)
    log: list[LogEntry] = field(default_factory=list)  # ascending seq, at most LOG_MAX
    known: dict[str, None] = field(default_factory=dict)  # ordered set of id_key()s

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

    def remember(self, key: str) -> None:
        """Add an id key to the known window, evicting the oldest beyond KNOWN_MAX."""
        self.known[key] = None
        while len(self.known) > KNOWN_MAX:
            del self.known[next(iter(self.known))]


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
        chat = _chat_from(r["chat"])
        self.chats[chat.chat_id] = chat

    def _migrate(self, r: Record) -> None:
        old, new = int(r["old"]), int(r["new"])
        if old == new or old not in self.chats:
            return
        moved = self.chats.pop(old)
        self.moved[old] = new
        if new not in self.chats:
            moved.chat_id = new
            self.chats[new] = moved
        else:
            target = self.chats[new]
            target.active = target.active or moved.active
        for url, sub in list(self.subs.get(old, {}).items()):
            existing = self.subs.get(new, {}).get(url)
            cursor = max(sub.cursor, existing.cursor) if existing else sub.cursor
            self._drop_sub(old, url, keep_feed=True)
            self._put_sub(Subscription(new, url, cursor, sub.added_at))
        self.subs.pop(old, None)
        old_counts = self.chat_counters.pop(old, None)
        if old_counts:
            target_counts = self.chat_counters.setdefault(new, {})
            for name, value in old_counts.items():
                target_counts[name] = target_counts.get(name, 0) + value

    def _sub(self, r: Record) -> None:
        chat_id, url = int(r["chat_id"]), str(r["url"])
        sub = Subscription(chat_id, url, int(r["cursor"]), float(r.get("added_at", 0)))
        if url not in self.feeds:
            self.feeds[url] = FeedRecord(FeedState(url=url))
        self._put_sub(sub)

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
            record.state = state

    def _items(self, r: Record) -> None:
        url = str(r["url"])
        record = self.feeds.get(url)
        # Parse everything before changing anything: a malformed record leaves no trace.
        state = FeedState.from_dict(r["state"]) if r.get("state") is not None else None
        if state is None:
            state = record.state if record is not None else FeedState(url=url)
        title = state.title or url
        rows = [LogEntry.from_row(row, title, url) for row in r["items"]]
        if record is None:
            record = self.feeds[url] = FeedRecord(state)
        record.state = state
        for entry in rows:
            if entry.seq <= record.head:
                continue  # already applied (idempotent replay)
            record.log.append(entry)
            record.head = entry.seq
            record.remember(id_key(entry.item.id))
        if len(record.log) > LOG_MAX:
            del record.log[: len(record.log) - LOG_MAX]
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
            self.chat_counters.setdefault(chat_id, {}).update(values)

    # ------------------------------------------------------------------ helpers
    def _put_sub(self, sub: Subscription) -> None:
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
    def to_snapshot(self, segment: int) -> dict[str, Any]:
        """The whole state as one JSON-ready document.

        ``segment`` is the first journal segment *not* folded into it.
        """
        return {
            "schema_version": SCHEMA_VERSION,
            "segment": segment,
            "chats": [c.to_dict() for c in self.chats.values()],
            "subs": [
                [s.chat_id, s.url, s.cursor, s.added_at]
                for chat_subs in self.subs.values()
                for s in chat_subs.values()
            ],
            "feeds": [
                {
                    "state": f.state.to_dict(),
                    "head": f.head,
                    "log": [e.to_row() for e in f.log],
                    "known": list(f.known),
                }
                for f in self.feeds.values()
            ],
            "counters": {
                "global": dict(self.counters),
                "chats": {str(k): dict(v) for k, v in self.chat_counters.items()},
            },
        }

    @classmethod
    def from_snapshot(cls, doc: dict[str, Any]) -> tuple[State, int]:
        """Rebuild a state from :meth:`to_snapshot` output; returns it and its segment.

        Raises:
            RecordError: the document is not a valid snapshot.
        """
        if not isinstance(doc, dict) or doc.get("schema_version") != SCHEMA_VERSION:
            raise RecordError("not a version-2 snapshot")
        state = cls()
        try:
            segment = int(doc["segment"])
            for raw in doc["chats"]:
                chat = _chat_from(raw)
                state.chats[chat.chat_id] = chat
            for raw in doc["feeds"]:
                feed_state = FeedState.from_dict(raw["state"])
                record = FeedRecord(feed_state, head=int(raw["head"]))
                title = feed_state.title or feed_state.url
                record.log = [LogEntry.from_row(r, title, feed_state.url) for r in raw["log"]]
                record.known = dict.fromkeys(str(k) for k in raw["known"])
                state.feeds[feed_state.url] = record
            for chat_id, url, cursor, added_at in doc["subs"]:
                state._put_sub(Subscription(int(chat_id), str(url), int(cursor), float(added_at)))
                if url not in state.feeds:
                    state.feeds[url] = FeedRecord(FeedState(url=str(url)))
            state._counters(doc["counters"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RecordError(f"malformed snapshot: {exc!r}") from exc
        return state, segment


def _chat_from(raw: dict[str, Any]) -> Chat:
    """``Chat.from_dict``, logging (not failing on) a schedule this version cannot use."""
    try:
        Delivery.from_dict(raw.get("delivery") or {})
    except ValueError as exc:
        logger.warning(
            "ignored an invalid digest schedule; the chat gets instant delivery",
            extra={"event": "invalid_schedule", "chat_id": raw.get("chat_id"), "error": str(exc)},
        )
    return Chat.from_dict(raw)


_HANDLERS = {
    "chat": State._chat,
    "migrate": State._migrate,
    "sub": State._sub,
    "unsub": State._unsub,
    "cursor": State._cursor,
    "feed": State._feed,
    "items": State._items,
    "feed_del": State._feed_del,
    "counters": State._counters,
}
