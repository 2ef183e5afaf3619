"""``StorageService``: the one lock-guarded, crash-safe store every handler and job shares.

Reads are synchronous: the state lives in memory and a read never waits for the disk.
Changes are records (see :mod:`bot.storage.state`) applied in memory and appended to the
journal, in one of three durability classes:

* **now** — subscriptions and chat settings: the call returns once the record is fsynced, so
  the user is only told after the change is on disk.
* **group** — cursors after a send: the same, but many concurrent callers share one fsync
  (group commit), so a fan-out to thousands of chats costs a handful of fsyncs a second.
* **deferred** — counters and feed HTTP state: applied at once, written by a background
  flush at most :data:`DEFER_S` seconds later and at shutdown. ``/news`` never waits for a
  disk.

("now" and "group" share the same mechanism: a caller waits for the flush covering its
record; what differs is only whether anyone else is writing at the same moment.)

Locks: the in-memory state is only changed inside :meth:`_stage`, which applies a record and
appends its line to the write buffer without an ``await`` in between. On one event loop that
makes every change atomic and keeps the journal in exactly the order the changes were made —
the loop itself is the state lock. ``_io_lock`` (an ``asyncio.Lock``) serialises everything
that touches the journal file: flushes, segment rotation and the hand-over to compaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import aiofiles.os

from bot.models import Backlog, Chat, Delivery, FeedItem, FeedState, LogEntry, Subscription
from bot.storage import journal, migrate
from bot.storage.files import (
    SchemaVersionError,
    StorageError,
    atomic_write_async,
    ensure_dir,
    fsync_dir,
    read_bytes,
    remove_stale_temps,
    tighten_files,
)
from bot.storage.journal import SNAPSHOT_NAME, JournalWriter, ReplayStats
from bot.storage.state import SCHEMA_VERSION, FeedRecord, Record, RecordError, State, id_key
from bot.workers import process_pool

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFER_S = 1.0  # the longest a deferred record (counters, feed HTTP state) waits in memory
COMPACT_MIN_BYTES = 4 << 20  # never compact a journal smaller than this
_STAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"
_BACKUP_RE = re.compile(r"^snapshot-(\d{8}T\d{12}Z)\.json$")

SubscribeOutcome = Literal["added", "already", "full"]


def _stamp() -> str:
    return datetime.now(UTC).strftime(_STAMP_FORMAT)


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
        self.write_count = 0
        self.write_observer: Callable[[float], None] | None = None
        self._state = State()
        self._writer = JournalWriter(self.data_dir)
        self._io_lock = asyncio.Lock()  # covers: journal writes, rotation, compaction hand-over
        self._buffer: list[bytes] = []
        self._staged = 0  # records staged so far (a generation number)
        self._synced = 0  # records known to be on disk
        self._flush_task: asyncio.Task[None] | None = None
        self._defer_task: asyncio.Task[None] | None = None
        self._compact_task: asyncio.Task[None] | None = None
        # One compaction at a time: two overlapping folds could finish in the wrong order,
        # leaving the older snapshot in place after the newer one deleted its segments.
        self._compact_lock = asyncio.Lock()  # covers: rotate → fold → snapshot → segment removal
        self._deferred_feeds: set[str] = set()
        self._dirty_counters: set[str] = set()
        self._dirty_chat_counters: dict[int, set[str]] = {}
        self._snapshot_size = 0
        self._journal_bytes = 0  # bytes in segments not yet folded into the snapshot
        self._compact_retry_at = 0.0  # after a failed compaction, wait before the next
        self._compact_min_bytes = compact_min_bytes
        self._compact_in_process = compact_in_process
        self._executor: Executor | None = None
        self._loaded = False
        self.closed = False
        self.replay_stats = ReplayStats()

    # ================================================================== lifecycle
    async def load(self, *, default_feeds: Iterable[str] = ()) -> None:
        """Prepare the directories, load snapshot + journal, and open a fresh segment.

        Creates DATA_DIR/BACKUP_DIR as 0700 (tightening looser modes, files to 0600, logged),
        removes temp files of an interrupted write, migrates a version-1 ``DATA_DIR`` (after
        backing its files up), restores a corrupt snapshot from the newest valid backup, then
        writes a fresh snapshot and takes a "startup" backup. Calling it again is a no-op.

        Args:
            default_feeds: ``DEFAULT_FEEDS``, only used by the version-1 migration.

        Raises:
            SchemaVersionError: the snapshot is from a newer version; nothing is changed.
        """
        if self._loaded:
            return
        await asyncio.to_thread(self._prepare_dirs)
        snapshot = self.data_dir / SNAPSHOT_NAME
        segments = await asyncio.to_thread(journal.list_segments, self.data_dir)
        old_files = await asyncio.to_thread(migrate.v1_files, self.data_dir)
        if not snapshot.exists() and not segments and old_files:
            await self._migrate_v1(old_files, tuple(default_feeds))
        state, start = await self._read_snapshot(snapshot)
        stats = ReplayStats()
        live = [n for n in segments if n >= start]
        for n in live:
            path = journal.segment_path(self.data_dir, n)
            await asyncio.to_thread(
                journal.replay_segment, state, path, last=n == live[-1], stats=stats
            )
        self.replay_stats = stats
        self._state = state
        next_segment = max([start, *segments]) + 1
        await self._write_snapshot(next_segment)
        for n in segments:
            await aiofiles.os.remove(journal.segment_path(self.data_dir, n))
        for path in old_files:  # version-1 leftovers: they were backed up before migrating
            with contextlib.suppress(FileNotFoundError):
                await aiofiles.os.remove(path)
        await self._writer.open(next_segment)
        self._loaded = True
        logger.info(
            "storage loaded",
            extra={
                "event": "storage_loaded",
                "chats": len(state.chats),
                "subscriptions": sum(len(s) for s in state.subs.values()),
                "feeds": len(state.feeds),
                "journal_records": stats.records,
                "bad_records": stats.bad_lines,
            },
        )
        await self.backup("startup")

    def _prepare_dirs(self) -> None:
        for directory in (self.data_dir, self.backup_dir):
            ensure_dir(directory)
            tighten_files(directory)
            remove_stale_temps(directory)

    async def _migrate_v1(self, old_files: list[Path], default_feeds: tuple[str, ...]) -> None:
        stamp = _stamp()
        for path in old_files:  # back the old files up first, byte for byte
            data = await read_bytes(path)
            await atomic_write_async(self.backup_dir / f"v1-{path.stem}-{stamp}.json", data)
        state = await asyncio.to_thread(
            migrate.build_state, self.data_dir, self.backup_dir, default_feeds
        )
        data = await asyncio.to_thread(lambda: journal.encode_snapshot(state.to_snapshot(1)))
        await atomic_write_async(self.data_dir / SNAPSHOT_NAME, data)
        logger.warning(
            "migrated a version-1 data directory",
            extra={
                "event": "storage_migrated",
                "chats": len(state.chats),
                "feeds": len(state.feeds),
                "backup": f"{self.backup_dir}/v1-*-{stamp}.json",
            },
        )

    async def _read_snapshot(self, path: Path) -> tuple[State, int]:
        if not await aiofiles.os.path.exists(path):
            return State(), 0
        data = await read_bytes(path)
        try:
            return await asyncio.to_thread(journal.decode_snapshot, data)
        except RecordError as exc:
            version = _version_of(data)
            if version is not None and version > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"{path}: schema_version {version} is newer than this bot understands "
                    f"({SCHEMA_VERSION}); refusing to start so the file is not overwritten. "
                    "Run a newer bot version, or restore an older backup by hand."
                ) from exc
            aside = path.with_name(f"{path.name}.corrupt-{_stamp()}")
            await aiofiles.os.replace(path, aside)
            return await self._restore_from_backup(path, aside, exc)

    async def _restore_from_backup(
        self, path: Path, aside: Path, why: Exception
    ) -> tuple[State, int]:
        for backup in sorted(await self._backups(), reverse=True):
            try:
                state, segment = await asyncio.to_thread(
                    journal.decode_snapshot, await read_bytes(backup)
                )
            except (RecordError, OSError):
                continue
            logger.error(
                "snapshot %s was corrupt (%s); moved it to %s and restored backup %s",
                path,
                why,
                aside,
                backup,
            )
            return state, segment
        logger.critical(
            "snapshot %s was corrupt (%s) and no valid backup exists; moved it to %s and "
            "starting from the journal alone",
            path,
            why,
            aside,
        )
        return State(), 0

    async def flush(self) -> None:
        """Return once every change made so far (deferred ones included) is on disk.

        Raises:
            OSError: the write failed (the changes stay in memory and are retried).
        """
        self._check_open()
        await self._flush_now()

    async def close(self) -> None:
        """Flush everything, wait for compaction, and refuse further changes. Idempotent."""
        if self.closed:
            return
        try:
            if self._loaded:
                if self._defer_task is not None:
                    self._defer_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._defer_task
                try:
                    await self._flush_now()
                finally:
                    if self._compact_task is not None:
                        with contextlib.suppress(Exception):
                            await self._compact_task
                    await self._writer.close()
        finally:
            # Closed even when the last flush failed (the error propagates): nothing may
            # write after close, and the worker process must not outlive the service.
            self.closed = True
            if self._executor is not None:
                self._executor.shutdown(wait=True, cancel_futures=True)

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
                title = record.state.title or sub.url
                out.append(Backlog(sub.url, title, entries, skipped, record.head))
        return out

    def counters(self) -> dict[str, Any]:
        """``{"global": {name: n}, "chats": {"<chat id>": {name: n}}}`` (a copy)."""
        return {
            "global": dict(self._state.counters),
            "chats": {str(k): dict(v) for k, v in self._state.chat_counters.items()},
        }

    # ================================================================== chats
    async def ensure_chat(
        self, chat_id: int, type: str, title: str, *, delivery: Delivery | None = None
    ) -> Chat:
        """Create the chat if missing, else refresh type/title and re-activate it; durable.

        A chat coming back after the bot was blocked or removed starts again at its feeds'
        heads: what was found while the bot could not reach it is not replayed.
        """
        current = self._state.chats.get(chat_id)
        if current is None:
            chat = Chat(chat_id=chat_id, type=type, title=title, delivery=delivery or Delivery())
            await self._durable({"op": "chat", "chat": chat.to_dict()})
            return copy.copy(chat)
        new_title = title or current.title
        if current.active and current.type == type and current.title == new_title:
            return copy.copy(current)
        if not current.active:
            heads = {
                s.url: self.feed_head(s.url) for s in self._state.subs.get(chat_id, {}).values()
            }
            if heads:
                self._stage({"op": "cursor", "chat_id": chat_id, "cursors": heads})
        chat = copy.copy(current)
        chat.active, chat.type, chat.title = True, type, new_title
        await self._durable({"op": "chat", "chat": chat.to_dict()})
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
            await self._durable({"op": "chat", "chat": working.to_dict()})
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
        """Move a chat to its new id (group → supergroup) with subscriptions and counters."""
        if old_id == new_id or old_id not in self._state.chats:
            return False
        await self._durable({"op": "migrate", "old": old_id, "new": new_id})
        return True

    # ================================================================== subscriptions
    async def subscribe(self, chat_id: int, url: str, *, limit: int) -> SubscribeOutcome:
        """Follow ``url`` from its current head (no backlog); durable.

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
        await self._durable(record)
        return "added"

    async def unsubscribe(self, chat_id: int, url: str) -> bool:
        """Stop following ``url``; the last follower leaving drops the feed's state and log."""
        if url not in self._state.subs.get(chat_id, {}):
            return False
        await self._durable({"op": "unsub", "chat_id": chat_id, "url": url})
        return True

    async def advance(self, chat_id: int, cursors: dict[str, int]) -> None:
        """Record that the chat has been sent everything up to these sequence numbers.

        Called after Telegram accepted a message; group-committed with every concurrent call.
        """
        if cursors:
            chat_id = self._state.moved.get(chat_id, chat_id)  # migrated meanwhile
            await self._durable({"op": "cursor", "chat_id": chat_id, "cursors": dict(cursors)})

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
        known = {} if record is None else record.known
        fresh: list[FeedItem] = []
        keys: set[str] = set()
        for item in items:
            key = id_key(item.id)
            if key not in known and key not in keys:
                keys.add(key)
                fresh.append(item)
        if not fresh:
            if state.fetched_once and (record is None or not record.state.fetched_once):
                # The first success of an empty feed is its baseline: it must survive a
                # crash, or its first items would be taken for history after a restart.
                await self._durable({"op": "feed", "state": state.to_dict()})
                self._deferred_feeds.discard(url)
            else:
                self.set_feed_state(state)
            return []
        fresh.reverse()  # oldest first: sequence numbers follow publication order
        entries = [LogEntry(head + n, item) for n, item in enumerate(fresh, 1)]
        # The first *successful* fetch is the baseline. A feed that was fetched before but
        # logged nothing was empty then: its first items are news for its followers.
        baseline = head == 0 and not (record is not None and record.state.fetched_once)
        await self._durable(
            {
                "op": "items",
                "url": url,
                "state": state.to_dict(),
                "items": [e.to_row() for e in entries],
                "baseline": baseline,
            }
        )
        self._deferred_feeds.discard(url)
        return [] if baseline else entries

    def set_feed_state(self, state: FeedState) -> None:
        """Update a feed's HTTP/health state; deferred (written within DEFER_S)."""
        if state.url not in self._state.feeds:
            self._state.apply({"op": "feed", "state": state.to_dict()})
        else:
            self._state.feeds[state.url].state = copy.copy(state)
        self._deferred_feeds.add(state.url)
        self._schedule_deferred()

    async def drop_feed(self, url: str) -> None:
        """Forget a feed nobody follows (e.g. a default feed removed from the settings)."""
        if url in self._state.feeds and not self._state.followers.get(url):
            await self._durable({"op": "feed_del", "url": url})

    # ================================================================== counters
    def count(self, name: str, chat_id: int | None = None, by: int = 1) -> None:
        """Add to a global counter and, if given, the chat's; deferred, never waits."""
        if not name:
            raise ValueError("counter name must not be empty")
        self._state.counters[name] = self._state.counters.get(name, 0) + by
        self._dirty_counters.add(name)
        if chat_id is not None:
            chat = self._state.chat_counters.setdefault(chat_id, {})
            chat[name] = chat.get(name, 0) + by
            self._dirty_chat_counters.setdefault(chat_id, set()).add(name)
        self._schedule_deferred()

    # ================================================================== backups
    async def backup(self, reason: str) -> Path | None:
        """Fold the journal into the snapshot and copy it to BACKUP_DIR; keep BACKUP_KEEP.

        Returns:
            The backup written, or None if there was nothing to back up.
        """
        self._check_open()
        await self.compact()
        snapshot = self.data_dir / SNAPSHOT_NAME
        if not snapshot.exists():
            return None
        target = self.backup_dir / f"snapshot-{_stamp()}.json"
        await atomic_write_async(target, await read_bytes(snapshot))
        self.write_count += 1
        old = sorted(await self._backups(), reverse=True)[self.backup_keep :]
        for path in old:
            await aiofiles.os.remove(path)
        logger.info(
            "backup written",
            extra={"event": "backup", "reason": reason, "path": str(target), "rotated": len(old)},
        )
        return target

    async def _backups(self) -> list[Path]:
        names = await aiofiles.os.listdir(self.backup_dir)
        return [self.backup_dir / n for n in names if _BACKUP_RE.match(n)]

    # ================================================================== commit machinery
    def _check_open(self) -> None:
        if self.closed:
            raise StorageError("storage is closed")
        if not self._loaded:
            raise StorageError("storage used before load()")

    def _stage(self, record: Record) -> int:
        """Apply ``record`` and queue its line; no await inside (this is the state lock)."""
        self._check_open()
        self._state.apply(record)  # RecordError: nothing changed, nothing queued
        self._buffer.append(journal.encode_record(record))
        self._staged += 1
        return self._staged

    async def _durable(self, record: Record) -> None:
        """Stage a record and return once it is on disk (sharing the fsync with others)."""
        await self._wait_synced(self._stage(record))

    async def _flush_now(self) -> None:
        self._materialise_deferred()
        await self._wait_synced(self._staged)

    async def _wait_synced(self, generation: int) -> None:
        """Return once records up to ``generation`` are on disk.

        Joins the flush in progress or starts the next one (group commit).
        """
        while self._synced < generation:
            task = self._flush_task
            if task is None or task.done():
                task = self._flush_task = asyncio.create_task(self._flush_once())
            await asyncio.shield(task)  # a cancelled waiter must not cancel everyone's write

    def _materialise_deferred(self) -> None:
        """Turn pending deferred changes into journal records (latest values win)."""
        if self._dirty_counters or self._dirty_chat_counters:
            state = self._state
            self._buffer.append(
                journal.encode_record(
                    {
                        "op": "counters",
                        "global": {n: state.counters[n] for n in self._dirty_counters},
                        "chats": {
                            str(c): {n: state.chat_counters[c][n] for n in names}
                            for c, names in self._dirty_chat_counters.items()
                            if c in state.chat_counters
                        },
                    }
                )
            )
            self._staged += 1
            self._dirty_counters = set()
            self._dirty_chat_counters = {}
        for url in self._deferred_feeds:
            feed = self._state.feeds.get(url)
            if feed is not None:
                record = {"op": "feed", "state": feed.state.to_dict()}
                self._buffer.append(journal.encode_record(record))
                self._staged += 1
        self._deferred_feeds = set()

    async def _flush_once(self) -> None:
        async with self._io_lock:  # one writer at a time; also excludes rotation
            self._materialise_deferred()
            lines, self._buffer = self._buffer, []
            generation = self._staged
            if lines:
                started = time.perf_counter()
                try:
                    await self._writer.write(b"".join(lines))
                except BaseException:
                    self._buffer[:0] = lines  # kept in order; retried by the next flush
                    raise
                self.write_count += 1
                self._journal_bytes += sum(map(len, lines))
                self._observe(time.perf_counter() - started)
            self._synced = max(self._synced, generation)
        if self._needs_compaction():
            self._compact_task = asyncio.create_task(self._compact_logged())

    def _observe(self, seconds: float) -> None:
        if self.write_observer is not None:
            try:
                self.write_observer(seconds)
            except Exception:
                logger.exception("storage write observer failed")

    def _schedule_deferred(self) -> None:
        if self._defer_task is None or self._defer_task.done():
            self._defer_task = asyncio.get_running_loop().create_task(self._deferred_flush())

    async def _deferred_flush(self) -> None:
        await asyncio.sleep(DEFER_S)
        try:
            await self._flush_now()
        except Exception:
            logger.exception("deferred storage flush failed; retrying with the next write")

    # ================================================================== compaction
    def _needs_compaction(self) -> bool:
        limit = max(self._compact_min_bytes, self._snapshot_size)
        busy = self._compact_lock.locked() or (
            self._compact_task is not None and not self._compact_task.done()
        )
        waiting = time.monotonic() < self._compact_retry_at
        return not busy and not waiting and not self.closed and self._journal_bytes > limit

    async def _compact_logged(self) -> None:
        try:
            await self.compact()
        except Exception:
            self._compact_retry_at = time.monotonic() + 60
            logger.exception("journal compaction failed; the journal is kept and retried later")

    async def compact(self) -> None:
        """Seal the live segment and fold it into a new snapshot (in a worker process)."""
        if self._compact_task is not None and asyncio.current_task() is not self._compact_task:
            with contextlib.suppress(Exception):
                await self._compact_task
        async with self._compact_lock:  # see __init__: overlapping folds would lose segments
            await self._compact_serialised()

    async def _compact_serialised(self) -> None:
        await self._flush_now()
        async with self._io_lock:  # rotation must not interleave with a write
            if self._writer.size == 0:
                return
            upto = await self._writer.rotate()
            sealed = self._journal_bytes
        loop = asyncio.get_running_loop()
        if self._compact_in_process:
            if self._executor is None:
                self._executor = process_pool(1)
            try:
                size = await loop.run_in_executor(
                    self._executor, journal.compact, str(self.data_dir), upto, os.getpid()
                )
            except BrokenProcessPool:
                # The worker died (OOM, killed): the pool is unusable; the next compaction
                # starts a new one. The sealed segments stay and are folded then.
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None
                raise
        else:
            size = await asyncio.to_thread(journal.compact, str(self.data_dir), upto)
        self._snapshot_size = size
        self._journal_bytes -= sealed
        self.write_count += 1
        for n in await asyncio.to_thread(journal.list_segments, self.data_dir):
            if n < upto:
                await aiofiles.os.remove(journal.segment_path(self.data_dir, n))
        await aiofiles.os.wrap(fsync_dir)(self.data_dir)

    async def _write_snapshot(self, segment: int) -> None:
        """Write the in-memory state as the snapshot (start-up only: O(state))."""
        state = self._state
        data = await asyncio.to_thread(lambda: journal.encode_snapshot(state.to_snapshot(segment)))
        await atomic_write_async(self.data_dir / SNAPSHOT_NAME, data)
        self._snapshot_size = len(data)
        self.write_count += 1


def _version_of(data: bytes) -> int | None:
    match = re.search(rb'"schema_version"\s*:\s*(\d+)', data[:200])
    return int(match.group(1)) if match else None


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
