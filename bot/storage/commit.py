"""``Committer``: how a change reaches the journal — staging, group commit, deferral, compaction.

The service (:mod:`bot.storage.service`) decides *what* a change is; this module decides *when*
it is on disk. Changes are records (see :mod:`bot.storage.state`) applied in memory and
appended to the journal, in one of three durability classes:

* **now** — subscriptions and chat settings: the call returns once the record is fsynced, so
  the user is only told after the change is on disk.
* **group** — cursors after a send: the same, but many concurrent callers share one fsync
  (group commit), so a fan-out to thousands of chats costs a handful of fsyncs a second.
* **deferred** — counters and feed HTTP state: applied at once, written by a background
  flush at most :data:`DEFER_S` seconds later and at shutdown. ``/news`` never waits for a
  disk.

("now" and "group" share the same mechanism: a caller waits for the flush covering its
record; what differs is only whether anyone else is writing at the same moment.)

When the journal outgrows the snapshot, the live segment is sealed and folded into a new
snapshot in a worker process (:func:`bot.storage.journal.compact`).

Locks: the in-memory state is only changed inside :meth:`Committer.stage`, which applies a
record and appends its line to the write buffer without an ``await`` in between. On one event
loop that makes every change atomic and keeps the journal in exactly the order the changes
were made — the loop itself is the state lock. ``_io_lock`` (an ``asyncio.Lock``) serialises
everything that touches the journal file: flushes, segment rotation and the hand-over to
compaction. ``_compact_lock`` lets one compaction run at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import aiofiles.os

from bot.models import FeedState
from bot.storage import journal
from bot.storage.files import StorageError, fsync_dir
from bot.storage.journal import JournalWriter
from bot.storage.state import Record, State
from bot.workers import process_pool

logger = logging.getLogger(__name__)

DEFER_S = 1.0  # the longest a deferred record (counters, feed HTTP state) waits in memory
COMPACT_MIN_BYTES = 4 << 20  # never compact a journal smaller than this
COMPACT_RETRY_S = 60.0  # after a failed compaction, wait this long before the next


class Committer:
    """Owns the in-memory state and the journal; see the module docstring.

    The service creates one, hands it the loaded state with :meth:`start`, and routes every
    change through :meth:`stage`/:meth:`durable` or the deferred :meth:`count` and
    :meth:`set_feed_state`.

    Attributes:
        state: the live state (read it freely; change it only through this class).
        writer: the journal's live segment.
        write_count: durable writes so far (journal flushes, snapshots, backups).
        write_observer: called with the seconds each journal write took (metrics).
        started: :meth:`start` has run.
        closed: :meth:`close` has run; nothing more may be written.
    """

    def __init__(self, data_dir: Path, *, compact_in_process: bool, compact_min_bytes: int) -> None:
        self.data_dir = data_dir
        self.state = State()
        self.writer = JournalWriter(data_dir)
        self.write_count = 0
        self.write_observer: Callable[[float], None] | None = None
        self.started = False
        self.closed = False
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

    # ================================================================== lifecycle
    async def start(
        self, state: State, segment: int, snapshot_size: int, *, snapshot_written: bool
    ) -> None:
        """Adopt the loaded ``state`` and append to ``segment`` from now on.

        ``snapshot_size`` is the snapshot's size; ``snapshot_written`` says whether start-up
        wrote it (then counted as one write).
        """
        self.state = state
        self._snapshot_size = snapshot_size
        self.write_count += int(snapshot_written)
        await self.writer.open(segment)
        self.started = True

    def check_open(self) -> None:
        """Raise unless changes may be written now.

        Raises:
            StorageError: closed, or not started (``load()`` has not run).
        """
        if self.closed:
            raise StorageError("storage is closed")
        if not self.started:
            raise StorageError("storage used before load()")

    async def close(self) -> None:
        """Flush everything, wait for compaction, and refuse further changes. Idempotent."""
        if self.closed:
            return
        try:
            if self.started:
                if self._defer_task is not None:
                    self._defer_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._defer_task
                try:
                    await self.flush()
                finally:
                    if self._compact_task is not None:
                        with contextlib.suppress(Exception):
                            await self._compact_task
                    await self.writer.close()
        finally:
            # Closed even when the last flush failed (the error propagates): nothing may
            # write after close, and the worker process must not outlive the service.
            self.closed = True
            if self._executor is not None:
                self._executor.shutdown(wait=True, cancel_futures=True)

    # ================================================================== durable records
    def stage(self, record: Record) -> int:
        """Apply ``record`` and queue its line; no await inside (this is the state lock).

        Returns:
            Its generation: pass it to the flush that must cover it (see :meth:`durable`).
        """
        self.check_open()
        self.state.apply(record)  # RecordError: nothing changed, nothing queued
        self._buffer.append(journal.encode_record(record))
        self._staged += 1
        return self._staged

    async def durable(self, record: Record) -> None:
        """Stage a record and return once it is on disk (sharing the fsync with others)."""
        await self._wait_synced(self.stage(record))

    async def flush(self) -> None:
        """Return once every change staged or deferred so far is on disk."""
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

    async def _flush_once(self) -> None:
        async with self._io_lock:  # one writer at a time; also excludes rotation
            self._materialise_deferred()
            lines, self._buffer = self._buffer, []
            generation = self._staged
            if lines:
                started = time.perf_counter()
                try:
                    await self.writer.write(b"".join(lines))
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

    # ================================================================== deferred records
    def count(self, name: str, chat_id: int | None, by: int) -> None:
        """Add to a global counter and, if given, the chat's; written within DEFER_S."""
        state = self.state
        state.counters[name] = state.counters.get(name, 0) + by
        self._dirty_counters.add(name)
        if chat_id is not None:
            chat = state.chat_counters.setdefault(chat_id, {})
            chat[name] = chat.get(name, 0) + by
            self._dirty_chat_counters.setdefault(chat_id, set()).add(name)
        self._schedule_deferred()

    def set_feed_state(self, feed_state: FeedState) -> None:
        """Update a feed's HTTP/health state; written within DEFER_S."""
        if feed_state.url not in self.state.feeds:
            self.state.apply({"op": "feed", "state": feed_state.to_dict()})
        else:
            self.state.feeds[feed_state.url].state = copy.copy(feed_state)
        self._deferred_feeds.add(feed_state.url)
        self._schedule_deferred()

    def feed_state_written(self, url: str) -> None:
        """A durable record just carried the feed's current state: no deferred copy needed."""
        self._deferred_feeds.discard(url)

    def _materialise_deferred(self) -> None:
        """Turn pending deferred changes into journal records (latest values win)."""
        if self._dirty_counters or self._dirty_chat_counters:
            state = self.state
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
            feed = self.state.feeds.get(url)
            if feed is not None:
                record = {"op": "feed", "state": feed.state.to_dict()}
                self._buffer.append(journal.encode_record(record))
                self._staged += 1
        self._deferred_feeds = set()

    def _schedule_deferred(self) -> None:
        if self._defer_task is None or self._defer_task.done():
            self._defer_task = asyncio.get_running_loop().create_task(self._deferred_flush())

    async def _deferred_flush(self) -> None:
        await asyncio.sleep(DEFER_S)
        try:
            await self.flush()
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
            self._compact_retry_at = time.monotonic() + COMPACT_RETRY_S
            logger.exception("journal compaction failed; the journal is kept and retried later")

    async def compact(self) -> None:
        """Seal the live segment and fold it into a new snapshot (in a worker process)."""
        if self._compact_task is not None and asyncio.current_task() is not self._compact_task:
            with contextlib.suppress(Exception):
                await self._compact_task
        async with self._compact_lock:  # see __init__: overlapping folds would lose segments
            await self._compact_serialised()

    async def _compact_serialised(self) -> None:
        await self.flush()
        async with self._io_lock:  # rotation must not interleave with a write
            if self.writer.size == 0:
                return
            upto = await self.writer.rotate()
            sealed = self._journal_bytes
        loop = asyncio.get_running_loop()
        if self._compact_in_process:
            if self._executor is None:
                self._executor = process_pool(1)
            try:
                # Our pid lets an orphaned worker (bot killed) see it must not replace the
                # snapshot; see journal.compact.
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
