"""``StorageService``: the one lock-guarded, crash-safe store every handler and job shares.

This module is the storage's public face: what a chat, subscription, feed log or counter
change *means*, and the reads the rest of the bot makes. Two neighbours do the rest —
:mod:`bot.storage.loading` turns DATA_DIR into the start-up state, and
:mod:`bot.storage.commit` decides when a change is on disk (durability classes, group commit,
deferred records, compaction; its docstring explains the locking). Reads are synchronous:
the state lives in memory and a read never waits for the disk.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from bot import heap
from bot.models import (
    Backlog,
    Chat,
    Delivery,
    FeedItem,
    FeedState,
    LogEntry,
    Subscription,
    display_title,
)
from bot.storage.backups import save_backup
from bot.storage.commit import COMPACT_MIN_BYTES, Committer
from bot.storage.files import SchemaVersionError, StorageError
from bot.storage.journal import SNAPSHOT_NAME, ReplayStats
from bot.storage.loading import load_state
from bot.storage.state import FeedRecord, State, id_key

logger = logging.getLogger(__name__)

T = TypeVar("T")

SubscribeOutcome = Literal["added", "already", "full"]


class StorageService:
    """Chats, subscriptions with cursors, feed logs and counters; see the module docstring.

    Obtain it with :func:`get_storage_service`.
    """

    def __init__(
        self,
        data_dir: Path,
        backup_dir: Path,
        backup_keep: int = 10,
        *,
        compact_in_process: bool = True,
        compact_min_bytes: int = COMPACT_MIN_BYTES,
    ) -> None:
        if backup_keep < 1:
            raise ValueError("backup_keep must be at least 1")
        if Path(data_dir).resolve() == Path(backup_dir).resolve():
            raise ValueError("data_dir and backup_dir must differ")
        self.data_dir = Path(data_dir)
        self.backup_dir = Path(backup_dir)
        self.backup_keep = backup_keep
        self._commit = Committer(
            self.data_dir,
            compact_in_process=compact_in_process,
            compact_min_bytes=compact_min_bytes,
        )
        self.replay_stats = ReplayStats()

    @property
    def _state(self) -> State:
        """The live state; the committer owns it, the reads below only look."""
        return self._commit.state

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run: nothing more may be written."""
        return self._commit.closed

    @closed.setter
    def closed(self, value: bool) -> None:
        self._commit.closed = value

    @property
    def write_count(self) -> int:
        """Durable writes so far: journal flushes, snapshots, backups (for benchmarks)."""
        return self._commit.write_count

    @property
    def write_observer(self) -> Callable[[float], None] | None:
        """Called with the seconds each journal write took (the metrics histogram)."""
        return self._commit.write_observer

    @write_observer.setter
    def write_observer(self, observer: Callable[[float], None] | None) -> None:
        self._commit.write_observer = observer

    # ================================================================== lifecycle
    async def load(self, *, default_feeds: Iterable[str] = ()) -> None:
        """Prepare the directories, load snapshot + journal, and open a fresh segment.

        Creates DATA_DIR/BACKUP_DIR as 0700 (tightening looser modes, files to 0600, logged),
        removes temp files of an interrupted write, migrates a version-1 ``DATA_DIR`` (after
        backing its files up), restores a corrupt snapshot from the newest valid backup, then
        writes a fresh snapshot if the journal or a restore changed anything (not otherwise)
        and takes a "startup" backup. Calling it again is a no-op.

        Args:
            default_feeds: ``DEFAULT_FEEDS``, only used by the version-1 migration.

        Raises:
            SchemaVersionError: the snapshot is from a newer version; nothing is changed.
        """
        if self._commit.started:
            return
        loaded = await load_state(self.data_dir, self.backup_dir, default_feeds)
        self.replay_stats = loaded.stats
        await self._commit.start(
            loaded.state,
            loaded.segment,
            loaded.snapshot_size,
            snapshot_written=loaded.snapshot_written,
        )
        state = loaded.state
        logger.info(
            "storage loaded",
            extra={
                "event": "storage_loaded",
                "chats": len(state.chats),
                "subscriptions": sum(len(s) for s in state.subs.values()),
                "feeds": len(state.feeds),
                "journal_records": loaded.stats.records,
                "bad_records": loaded.stats.bad_lines,
            },
        )
        await self.backup("startup")
        # The loaded state is millions of long-lived objects: without this, every full
        # collection of the cyclic GC walks all of them on the event loop (0.4–0.5 s at
        # 100,000 chats; benchmarks/bench_storage.py). See bot/heap.py.
        heap.settle()

    async def flush(self) -> None:
        """Return once every change made so far (deferred ones included) is on disk.

        Raises:
            OSError: the write failed (the changes stay in memory and are retried).
        """
        self._commit.check_open()
        await self._commit.flush()

    async def close(self) -> None:
        """Flush everything, wait for compaction, and refuse further changes. Idempotent."""
        try:
            await self._commit.close()
        finally:
            heap.release()  # what load() froze is collectable again (tests, benchmarks)

    async def compact(self) -> None:
        """Seal the live segment and fold it into a new snapshot (in a worker process)."""
        await self._commit.compact()

    # ================================================================== reads (in memory)
    def chat(self, chat_id: int) -> Chat | None:
        """A copy of the chat, or None if the bot does not know it."""
        chat = self._state.chats.get(chat_id)
        return None if chat is None else copy.copy(chat)

    def chats(self, *, active_only: bool = False) -> list[Chat]:
        """Copies of every chat (start-up scheduling and operator views only: O(chats))."""
        return [copy.copy(c) for c in self._state.chats.values() if c.active or not active_only]

    def subscriptions(self, chat_id: int) -> list[Subscription]:
        """The chat's subscriptions, in the order they were added (copies)."""
        return [copy.copy(s) for s in self._state.subs.get(chat_id, {}).values()]

    def feed_urls(self, chat_id: int) -> list[str]:
        """The URLs the chat follows, in the order they were added."""
        return list(self._state.subs.get(chat_id, {}))

    def followers(self, url: str) -> frozenset[int]:
        """The chats following ``url``."""
        return frozenset(self._state.followers.get(url, ()))

    def instant_recipients(self, url: str) -> list[int]:
        """Followers of ``url`` that take items at once: active, not paused, not digest."""
        chats = self._state.chats
        out = []
        for chat_id in self._state.followers.get(url, ()):
            chat = chats.get(chat_id)
            if chat is not None and chat.active and not chat.paused and not chat.delivery.is_digest:
                out.append(chat_id)
        return out

    def followed_urls(self) -> list[str]:
        """Every feed at least one chat follows."""
        return list(self._state.followers)

    def feed_state(self, url: str) -> FeedState | None:
        """A copy of the feed's HTTP/health state, or None."""
        record = self._state.feeds.get(url)
        return None if record is None else copy.copy(record.state)

    def feed_head(self, url: str) -> int:
        """The feed's newest sequence number (0 when it was never fetched)."""
        record = self._state.feeds.get(url)
        return 0 if record is None else record.head

    def feed_log(self, url: str) -> list[LogEntry]:
        """The feed's logged items, oldest first (entries are immutable)."""
        record = self._state.feeds.get(url)
        return [] if record is None else list(record.log)

    def pending(self, chat_id: int) -> list[Backlog]:
        """What each of the chat's subscriptions has not been sent; O(its subscriptions)."""
        out: list[Backlog] = []
        for sub in self._state.subs.get(chat_id, {}).values():
            record = self._state.feeds.get(sub.url)
            if record is None:
                continue
            entries, skipped = record.entries_after(sub.cursor)
            if entries or skipped:
                title = display_title(sub.title, record.state.title, sub.url)
                out.append(Backlog(sub.url, title, entries, skipped, record.head, copy.copy(sub)))
        return out

    def subscription(self, chat_id: int, url: str) -> Subscription | None:
        """A copy of one subscription, or None."""
        sub = self._state.subs.get(chat_id, {}).get(url)
        return None if sub is None else copy.copy(sub)

    def managed_chats(self, user_id: int) -> list[int]:
        """The chats ``user_id`` manages through the bot from a private chat (``/channels``)."""
        return sorted(self._state.managed.get(user_id, ()))

    def counters(self) -> dict[str, Any]:
        """``{"global": {name: n}, "chats": {"<chat id>": {name: n}}}`` (a copy)."""
        return {
            "global": dict(self._state.counters),
            "chats": {str(k): dict(v) for k, v in self._state.chat_counters.items()},
        }

    # ================================================================== chats
    async def ensure_chat(
        self,
        chat_id: int,
        type: str,
        title: str,
        *,
        delivery: Delivery | None = None,
        language: str | None = None,
    ) -> Chat:
        """Create the chat if missing, else refresh type/title and re-activate it; durable.

        A chat coming back after the bot was blocked or removed starts again at its feeds'
        heads: what was found while the bot could not reach it is not replayed. ``language``
        is recorded only when the chat has none yet: it never overrides a ``/language`` choice.
        """
        current = self._state.chats.get(chat_id)
        if current is None:
            chat = Chat(chat_id=chat_id, type=type, title=title, delivery=delivery or Delivery(),
                        language=language)  # fmt: skip
            await self._commit.durable({"op": "chat", "chat": chat.to_dict()})
            return copy.copy(chat)
        new_title = title or current.title
        new_language = current.language or language
        if (
            current.active
            and current.type == type
            and current.title == new_title
            and current.language == new_language
        ):
            return copy.copy(current)
        if not current.active:
            heads = {
                s.url: self.feed_head(s.url) for s in self._state.subs.get(chat_id, {}).values()
            }
            if heads:
                self._commit.stage({"op": "cursor", "chat_id": chat_id, "cursors": heads})
        chat = copy.copy(current)
        chat.active, chat.type, chat.title = True, type, new_title
        chat.language = new_language
        await self._commit.durable({"op": "chat", "chat": chat.to_dict()})
        return copy.copy(chat)

    async def update_chat(self, chat_id: int, fn: Callable[[Chat], T]) -> T:
        """Run ``fn`` on a copy of the chat and store the copy durably if it changed.

        Raises:
            KeyError: the chat is unknown.
            ValueError: ``fn`` changed ``chat_id`` (use :meth:`migrate_chat`).
        """
        current = self._state.chats.get(chat_id)
        if current is None:
            raise KeyError(chat_id)
        working = copy.copy(current)
        result = fn(working)
        if working.chat_id != chat_id:
            raise ValueError("update_chat must not change chat_id; use migrate_chat")
        if working != current:
            await self._commit.durable({"op": "chat", "chat": working.to_dict()})
        return result

    async def set_next_digest(self, chat_id: int, when: float | None) -> None:
        """Persist when the chat's next digest is due (group-committed)."""
        await self.update_chat(chat_id, lambda c: setattr(c, "next_digest_at", when))

    async def deactivate_chat(self, chat_id: int) -> bool:
        """Mark a chat inactive (bot blocked or removed); its subscriptions are kept."""
        current = self._state.chats.get(chat_id)
        if current is None or not current.active:
            return False
        await self.update_chat(chat_id, lambda c: setattr(c, "active", False))
        return True

    async def migrate_chat(self, old_id: int, new_id: int) -> bool:
        """Move a chat to its new id (group → supergroup) with subscriptions and counters.

        A target registered meanwhile takes the old chat's settings wherever it still has
        the defaults (see ``State._migrate``).
        """
        if old_id == new_id or old_id not in self._state.chats:
            return False
        await self._commit.durable({"op": "migrate", "old": old_id, "new": new_id})
        return True

    # ================================================================== subscriptions
    async def subscribe(
        self, chat_id: int, url: str, *, limit: int, options: dict[str, Any] | None = None
    ) -> SubscribeOutcome:
        """Follow ``url`` from its current head (no backlog); durable.

        ``options`` are the subscription's initial options in :meth:`Subscription.options`
        form (e.g. the forum topic ``/add`` was sent in).

        Raises:
            KeyError: the chat is unknown (register it first).
        """
        if chat_id not in self._state.chats:
            raise KeyError(chat_id)
        chat_subs = self._state.subs.get(chat_id, {})
        if url in chat_subs:
            return "already"
        if len(chat_subs) >= limit:
            return "full"
        record = {
            "op": "sub",
            "chat_id": chat_id,
            "url": url,
            "cursor": self.feed_head(url),
            "added_at": time.time(),
        }
        if options:
            Subscription(chat_id, url).set_options(options)  # validate before journaling
            record["opts"] = dict(options)
        await self._commit.durable(record)
        return "added"

    async def update_subscription(
        self, chat_id: int, url: str, fn: Callable[[Subscription], T]
    ) -> T:
        """Run ``fn`` on a copy of the subscription and store its options durably if changed.

        Only the options (topic, mute, title, filters, format) are stored; a cursor changed by
        ``fn`` is ignored (cursors move through :meth:`advance` only).

        Raises:
            KeyError: the chat does not follow ``url``.
        """
        current = self._state.subs.get(chat_id, {}).get(url)
        if current is None:
            raise KeyError((chat_id, url))
        working = copy.copy(current)
        result = fn(working)
        options = working.options()
        if options != current.options():
            Subscription(chat_id, url).set_options(options)  # validate before journaling
            await self._commit.durable(
                {"op": "sub_opts", "chat_id": chat_id, "url": url, "opts": options}
            )
        return result

    async def unsubscribe(self, chat_id: int, url: str) -> bool:
        """Stop following ``url``; the last follower leaving drops the feed's state and log."""
        if url not in self._state.subs.get(chat_id, {}):
            return False
        await self._commit.durable({"op": "unsub", "chat_id": chat_id, "url": url})
        return True

    async def advance(self, chat_id: int, cursors: dict[str, int]) -> None:
        """Record that the chat has been sent everything up to these sequence numbers.

        Called after Telegram accepted a message; group-committed with every concurrent call.
        """
        if cursors:
            chat_id = self._state.moved.get(chat_id, chat_id)  # migrated meanwhile
            await self._commit.durable(
                {"op": "cursor", "chat_id": chat_id, "cursors": dict(cursors)}
            )

    # ================================================================== feeds
    async def record_fetch(
        self, url: str, items: Iterable[FeedItem], state: FeedState
    ) -> list[LogEntry]:
        """Log the items of a successful fetch that the feed has not shown before.

        ``items`` are newest first (as parsed); new ones get sequence numbers oldest first.
        When there are new items, they and ``state`` are written in one durable record
        *before* this returns, so a cursor can never point at an item that is not on disk and
        the ETag that hides them is never saved without them. Otherwise ``state`` is
        deferred. The first successful fetch of a feed is its baseline: its items are logged
        as history and every current follower's cursor moves past them (an empty first fetch
        leaves nothing to pass, so the items that appear later are news).

        Returns:
            The new log entries, ascending seq (empty for the baseline).
        """
        record = self._state.feeds.get(url)
        head = 0 if record is None else record.head
        known = set() if record is None else record.known.as_set()  # one pass, not one per item
        fresh: list[FeedItem] = []
        for item in items:
            key = id_key(item.id)
            if key not in known:
                known.add(key)  # a duplicate id further down is not new either
                fresh.append(item)
        if not fresh:
            if state.fetched_once and (record is None or not record.state.fetched_once):
                # The first success of an empty feed is its baseline: it must survive a
                # crash, or its first items would be taken for history after a restart.
                await self._commit.durable({"op": "feed", "state": state.to_dict()})
                self._commit.feed_state_written(url)
            else:
                self.set_feed_state(state)
            return []
        fresh.reverse()  # oldest first: sequence numbers follow publication order
        entries = [LogEntry(head + n, item) for n, item in enumerate(fresh, 1)]
        # The first *successful* fetch is the baseline. A feed that was fetched before but
        # logged nothing was empty then: its first items are news for its followers.
        baseline = head == 0 and not (record is not None and record.state.fetched_once)
        await self._commit.durable(
            {
                "op": "items",
                "url": url,
                "state": state.to_dict(),
                "items": [e.to_row() for e in entries],
                "baseline": baseline,
            }
        )
        self._commit.feed_state_written(url)
        return [] if baseline else entries

    def set_feed_state(self, state: FeedState) -> None:
        """Update a feed's HTTP/health state; deferred (written within ``commit.DEFER_S``)."""
        self._commit.set_feed_state(state)

    async def drop_feed(self, url: str) -> None:
        """Forget a feed nobody follows (e.g. a default feed removed from the settings)."""
        if url in self._state.feeds and not self._state.followers.get(url):
            await self._commit.durable({"op": "feed_del", "url": url})

    # ================================================================== counters
    def count(self, name: str, chat_id: int | None = None, by: int = 1) -> None:
        """Add to a global counter and, if given, the chat's; deferred, never waits.

        A chat migrated meanwhile counts under its new id, as :meth:`advance` does.
        """
        if not name:
            raise ValueError("counter name must not be empty")
        if chat_id is not None:
            chat_id = self._state.moved.get(chat_id, chat_id)
        self._commit.count(name, chat_id, by)

    # ================================================================== backups
    async def backup(self, reason: str) -> Path | None:
        """Fold the journal into the snapshot and copy it to BACKUP_DIR; keep BACKUP_KEEP.

        Returns:
            The backup written, or None if there was nothing to back up.
        """
        self._commit.check_open()
        await self.compact()
        snapshot = self.data_dir / SNAPSHOT_NAME
        if not snapshot.exists():
            return None
        target, rotated = await save_backup(snapshot, self.backup_dir, self.backup_keep)
        self._commit.write_count += 1
        logger.info(
            "backup written",
            extra={"event": "backup", "reason": reason, "path": str(target), "rotated": rotated},
        )
        return target


# ---------------------------------------------------------------------- the singleton
class _Registry:
    """Holds the process-wide instance; nothing is created until configure_storage()."""

    instance: ClassVar[StorageService | None] = None


def configure_storage(
    data_dir: Path, backup_dir: Path, backup_keep: int = 10, **options: Any
) -> StorageService:
    """Create the process-wide StorageService (once, from ``build_application``).

    Calling it again with the same directories returns the same open instance.

    Raises:
        RuntimeError: already configured (and open) for other directories.
        ValueError: ``backup_keep`` < 1 or both directories are the same.
    """
    existing = _Registry.instance
    if existing is not None and not existing.closed:
        same = (
            existing.data_dir.resolve() == Path(data_dir).resolve()
            and existing.backup_dir.resolve() == Path(backup_dir).resolve()
        )
        if not same:
            raise RuntimeError(
                f"storage is already configured for {existing.data_dir} / "
                f"{existing.backup_dir}; refusing to reconfigure it for {data_dir} / "
                f"{backup_dir} (two services on different files would diverge)"
            )
        return existing
    service = StorageService(Path(data_dir), Path(backup_dir), backup_keep, **options)
    _Registry.instance = service
    return service


def get_storage_service() -> StorageService:
    """Return the process-wide StorageService.

    Raises:
        RuntimeError: configure_storage() has not been called.
    """
    service = _Registry.instance
    if service is None:
        raise RuntimeError(
            "StorageService is not configured: call configure_storage(data_dir, backup_dir, "
            "backup_keep) at startup (build_application does this) before get_storage_service()"
        )
    return service


def reset_storage_service() -> None:
    """Forget the singleton (tests only). Close it first: pending writes are not awaited."""
    _Registry.instance = None


__all__ = [
    "Backlog",
    "FeedRecord",
    "SchemaVersionError",
    "StorageError",
    "StorageService",
    "configure_storage",
    "get_storage_service",
    "reset_storage_service",
]
