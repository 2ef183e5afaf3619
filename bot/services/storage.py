"""Crash-safe, lock-guarded persistence for channels, counters and feed state.

This is the only module that touches ``DATA_DIR`` and ``BACKUP_DIR``. The bot runs one
module-scoped :class:`StorageService`, created by :func:`configure_storage` (once, from
``build_application``) and fetched everywhere else with :func:`get_storage_service`, so every
handler and job shares one in-memory state and one pair of locks.

Durability model:

* A mutating call changes the in-memory state under ``_state_lock``, marks the affected
  file(s) dirty, bumps a generation number and joins the *open batch*. It returns only after
  the write covering its generation is on disk.
* One flusher per batch takes ``_flush_lock`` (one writer at a time), takes a snapshot of
  every dirty file under ``_state_lock``, closes the batch and writes the snapshot. Changes
  arriving while that write is in flight join the next batch, so N concurrent mutations cost
  far fewer than N writes (group commit).
* Each file is written as temp file → flush → ``os.fsync`` → ``os.replace`` → directory
  fsync, so a crash at any moment leaves either the old or the new complete file.
* If a write fails, every caller covered by it gets the exception. The change stays in
  memory and its file stays dirty, so the next write (any later mutation, ``flush()`` or
  ``close()``) retries it.

Lock order: the only nesting allowed is ``_flush_lock`` → ``_state_lock`` (a writer taking its
snapshot). Nothing awaits I/O while holding ``_state_lock``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import json
import logging
import os
import re
import secrets
import stat
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from bot.models import SEEN_LIMIT, Channel, FeedState

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Version of the JSON documents this code writes. Bump it together with a _MIGRATIONS entry.
SCHEMA_VERSION = 1
FILE_NAMES: tuple[str, ...] = ("channels", "counters", "feeds")
DIR_MODE = 0o700
FILE_MODE = 0o600

_STAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"
_BACKUP_RE = re.compile(r"^(?P<name>channels|counters|feeds)-(?P<stamp>\d{8}T\d{12}Z)\.json$")
_TEMP_MARKER = ".tmp-"
_LEGACY_MESSAGE = (
    "Direct StorageService(...) construction is deprecated: call configure_storage() once at "
    "startup and get_storage_service() everywhere else"
)

# Migration hook: _MIGRATIONS[v] upgrades a document of schema_version v to v + 1. It receives
# the file name ("channels", "counters" or "feeds") and the decoded document and returns the
# new document (it may raise on malformed input: that file is then treated as corrupt). It must
# be pure (no I/O, no side effects): it also runs when a backup of an old file is validated.
# Primaries are backed up before migrated data replaces them.
Migration = Callable[[str, dict[str, Any]], dict[str, Any]]
_MIGRATIONS: dict[int, Migration] = {}


class StorageError(RuntimeError):
    """Persistence cannot proceed safely (bad schema, unusable service)."""


class SchemaVersionError(StorageError):
    """A data file has a schema version this code cannot read; it is left untouched."""


class _CorruptError(Exception):
    """A file's bytes are not a valid document of the expected shape."""


@dataclass(slots=True)
class _State:
    """The whole persisted state; lives in memory, guarded by ``_state_lock``."""

    channels: dict[int, Channel] = field(default_factory=dict)
    counters_global: dict[str, int] = field(default_factory=dict)
    counters_chats: dict[str, dict[str, int]] = field(default_factory=dict)
    feeds: dict[str, FeedState] = field(default_factory=dict)


@dataclass(slots=True)
class _Batch:
    """One group-commit write: everyone who joined it is released by its outcome."""

    future: asyncio.Future[None]
    generation: int = 0  # highest generation the write covers; set when the snapshot is taken


@dataclass(slots=True)
class _LoadResult:
    state: _State
    durations: list[float]


# --------------------------------------------------------------------------------------------
# Documents: encode / decode / validate. Pure functions, safe to call from worker threads.
# --------------------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _expect(condition: bool, reason: str) -> None:
    if not condition:
        raise _CorruptError(reason)


def _optional_str(data: dict[str, Any], key: str) -> bool:
    return data.get(key) is None or isinstance(data.get(key), str)


def _parse_channels(doc: dict[str, Any]) -> dict[int, Channel]:
    items = doc.get("channels")
    if not isinstance(items, list):
        raise _CorruptError("'channels' is not a list")
    result: dict[int, Channel] = {}
    for item in items:
        _expect(isinstance(item, dict), "a channel entry is not an object")
        _expect(_is_int(item.get("chat_id")), "a channel has no integer chat_id")
        for key in ("type", "title"):
            _expect(isinstance(item.get(key, ""), str), f"channel {key} is not a string")
        for key in ("feeds", "seen"):
            values = item.get(key, [])
            _expect(
                isinstance(values, list) and all(isinstance(v, str) for v in values),
                f"channel {key} is not a list of strings",
            )
        _expect(isinstance(item.get("active", True), bool), "channel active is not a boolean")
        digest = item.get("digest") or {}
        _expect(isinstance(digest, dict), "channel digest is not an object")
        _expect(
            digest.get("interval_s") is None or _is_int(digest.get("interval_s")),
            "digest interval_s is not an integer",
        )
        _expect(_optional_str(digest, "at"), "digest at is not a string")
        channel = Channel.from_dict(item)
        _expect(channel.chat_id not in result, f"duplicate chat_id {channel.chat_id}")
        result[channel.chat_id] = channel
    return result


def _parse_counter_map(value: object, what: str) -> dict[str, int]:
    if not isinstance(value, dict):
        raise _CorruptError(f"{what} is not an object")
    _expect(
        all(isinstance(k, str) and _is_int(v) for k, v in value.items()),
        f"{what} does not map names to integers",
    )
    return dict(value)


def _parse_counters(doc: dict[str, Any]) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    glob = _parse_counter_map(doc.get("global"), "counters 'global'")
    chats_raw = doc.get("chats")
    if not isinstance(chats_raw, dict):
        raise _CorruptError("counters 'chats' is not an object")
    chats: dict[str, dict[str, int]] = {}
    for key, value in chats_raw.items():
        _expect(re.fullmatch(r"-?\d+", key) is not None, f"chat key {key!r} is not a chat id")
        chats[key] = _parse_counter_map(value, f"counters of chat {key}")
    return glob, chats


def _parse_feeds(doc: dict[str, Any]) -> dict[str, FeedState]:
    items = doc.get("feeds")
    if not isinstance(items, list):
        raise _CorruptError("'feeds' is not a list")
    result: dict[str, FeedState] = {}
    for item in items:
        _expect(isinstance(item, dict), "a feed entry is not an object")
        _expect(isinstance(item.get("url"), str), "a feed has no url")
        _expect(isinstance(item.get("title", ""), str), "feed title is not a string")
        for key in ("etag", "last_modified", "last_error"):
            _expect(_optional_str(item, key), f"feed {key} is not a string")
        _expect(_is_int(item.get("failures", 0)), "feed failures is not an integer")
        _expect(isinstance(item.get("paused", False), bool), "feed paused is not a boolean")
        state = FeedState.from_dict(item)
        _expect(state.url not in result, f"duplicate feed url {state.url}")
        result[state.url] = state
    return result


def _apply_document(state: _State, name: str, doc: dict[str, Any]) -> None:
    """Validate ``doc`` (already at SCHEMA_VERSION) and install it into ``state``."""
    if name == "channels":
        state.channels = _parse_channels(doc)
    elif name == "counters":
        state.counters_global, state.counters_chats = _parse_counters(doc)
    else:
        state.feeds = _parse_feeds(doc)


def _document(state: _State, name: str) -> dict[str, Any]:
    """Build the JSON-ready document of one file; returns fresh objects (a snapshot)."""
    if name == "channels":
        return {
            "schema_version": SCHEMA_VERSION,
            "channels": [c.to_dict() for c in state.channels.values()],
        }
    if name == "counters":
        return {
            "schema_version": SCHEMA_VERSION,
            "global": dict(state.counters_global),
            "chats": {k: dict(v) for k, v in state.counters_chats.items()},
        }
    return {"schema_version": SCHEMA_VERSION, "feeds": [f.to_dict() for f in state.feeds.values()]}


def _encode(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _decode(name: str, data: bytes, path: Path) -> tuple[int, dict[str, Any]]:
    """Decode and check the version of a file; the document is migrated and validated later.

    Raises:
        _CorruptError: not JSON, not an object, or no integer ``schema_version``.
        SchemaVersionError: a version this code has no way to read.

    """
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise _CorruptError(f"not valid JSON ({exc})") from None
    _expect(isinstance(doc, dict), "top level is not an object")
    version = doc.get("schema_version")
    _expect(_is_int(version), "no integer schema_version")
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{path}: schema_version {version} is newer than this bot understands "
            f"({SCHEMA_VERSION}); refusing to start so the file is not overwritten. "
            "Run a newer bot version, or restore an older backup by hand."
        )
    missing = [v for v in range(version, SCHEMA_VERSION) if v not in _MIGRATIONS]
    if version < 1 or missing:
        raise SchemaVersionError(
            f"{path}: unknown schema_version {version} (no migration to {SCHEMA_VERSION}); "
            "refusing to start so the file is not overwritten."
        )
    return version, doc


def _migrate(name: str, version: int, doc: dict[str, Any]) -> dict[str, Any]:
    """Run the migration chain from ``version`` up to SCHEMA_VERSION."""
    for step in range(version, SCHEMA_VERSION):
        try:
            doc = _MIGRATIONS[step](name, doc)
        except Exception as exc:
            raise _CorruptError(f"migration from v{step} failed ({exc!r})") from None
        doc["schema_version"] = step + 1
    return doc


def _fully_decode(name: str, data: bytes, path: Path) -> tuple[int, dict[str, Any]]:
    """Decode, migrate (in memory) and validate; returns the original version and the doc."""
    version, doc = _decode(name, data, path)
    doc = _migrate(name, version, doc)
    _apply_document(_State(), name, doc)  # validation only
    return version, doc


def _utc_stamp(moment: datetime) -> str:
    return moment.strftime(_STAMP_FORMAT)


# --------------------------------------------------------------------------------------------
# File system primitives (blocking: run them in a worker thread).
# --------------------------------------------------------------------------------------------


def _fsync_dir(directory: Path) -> None:
    """Make a rename/unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> float:
    """Replace ``path`` with ``data`` so a crash leaves either the old or the new file.

    Sequence: temp file in the same directory (0600) → write → flush → fsync → os.replace →
    fsync of the directory. If anything before the replace fails, the target is untouched and
    the temp file is removed.

    Returns:
        The duration of the write in seconds (for the write observer).

    """
    started = time.perf_counter()
    tmp = path.with_name(f".{path.name}{_TEMP_MARKER}{secrets.token_hex(8)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), FILE_MODE)  # umask may have removed owner bits
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return time.perf_counter() - started


def _write_document(path: Path, doc: dict[str, Any]) -> float:
    """Encode ``doc`` and write it atomically; both off the event loop."""
    return _atomic_write(path, _encode(doc))


def _ensure_dir(path: Path) -> None:
    """Create ``path`` as 0700, or tighten an existing directory to 0700 (logged)."""
    if not path.exists():
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(path, DIR_MODE)  # mkdir's mode is filtered by the umask
        logger.info("created storage directory %s (mode %o)", path, DIR_MODE)
        return
    if not path.is_dir():
        raise StorageError(f"{path} exists and is not a directory")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode != DIR_MODE:
        os.chmod(path, DIR_MODE)
        logger.warning("tightened permissions of directory %s from %o to %o", path, mode, DIR_MODE)


def _tighten_files(directory: Path) -> None:
    """Set every regular file in ``directory`` to 0600 (they all hold bot data)."""
    for entry in directory.iterdir():
        info = entry.lstat()
        if not stat.S_ISREG(info.st_mode):
            continue
        mode = stat.S_IMODE(info.st_mode)
        if mode != FILE_MODE:
            os.chmod(entry, FILE_MODE)
            logger.warning("tightened permissions of file %s from %o to %o", entry, mode, FILE_MODE)


def _remove_stale_temps(directory: Path) -> None:
    """Delete temp files an interrupted write left behind (the target is intact)."""
    removed = False
    for entry in directory.iterdir():
        if entry.name.startswith(".") and _TEMP_MARKER in entry.name and entry.is_file():
            entry.unlink()
            removed = True
            logger.warning("removed stale temp file %s left by an interrupted write", entry)
    if removed:
        _fsync_dir(directory)


# --------------------------------------------------------------------------------------------
# The shared core.
# --------------------------------------------------------------------------------------------


class _StorageCore:
    """State, locks and I/O shared by every :class:`StorageService` facade."""

    def __init__(self, data_dir: Path, backup_dir: Path, backup_keep: int) -> None:
        if backup_keep < 1:
            raise ValueError(f"backup_keep must be at least 1, got {backup_keep}")
        if data_dir.resolve() == backup_dir.resolve():
            raise ValueError("backup_dir must differ from data_dir")
        self.data_dir = data_dir
        self.backup_dir = backup_dir
        self.backup_keep = backup_keep
        # Guards self._state, _dirty, _generation, _open_batch, _inflight, _loaded, _closing.
        # Held only for in-memory work: never across an await that does I/O.
        self._state_lock = asyncio.Lock()
        # Serialises everything that writes files (batch writers, backup, load).
        # May be held while taking _state_lock, never the other way round.
        self._flush_lock = asyncio.Lock()
        self._state = _State()
        self._dirty: set[str] = set()
        self._generation = 0
        self._durable_generation = 0
        self._open_batch: _Batch | None = None
        self._inflight: _Batch | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._loaded = False
        self._closing = False
        self._last_stamp: datetime | None = None
        self.write_count = 0
        self.write_observer: Callable[[float], None] | None = None

    def same_place(self, data_dir: Path, backup_dir: Path) -> bool:
        """Whether this core stores in ``data_dir``/``backup_dir``."""
        return (
            self.data_dir.resolve() == data_dir.resolve()
            and self.backup_dir.resolve() == backup_dir.resolve()
        )

    @property
    def closed(self) -> bool:
        """Whether close() has been called."""
        return self._closing

    # ---- bookkeeping -------------------------------------------------------------------

    def _record_writes(self, durations: list[float]) -> None:
        for duration in durations:
            self.write_count += 1
            observer = self.write_observer
            if observer is None:
                continue
            try:
                observer(duration)
            except Exception:
                logger.exception("storage write_observer raised; ignored")

    def _check_usable(self) -> None:
        """Raise unless loaded and open. Caller holds _state_lock."""
        if self._closing:
            raise StorageError("StorageService is closed")
        if not self._loaded:
            raise StorageError("StorageService.load() has not been awaited yet")

    # ---- group commit ------------------------------------------------------------------

    def _mark_dirty(self, names: tuple[str, ...]) -> _Batch:
        """Record a change to ``names`` and return the batch that will write it.

        Caller holds _state_lock.
        """
        self._dirty.update(names)
        self._generation += 1
        return self._join_open_batch()

    def _join_open_batch(self) -> _Batch:
        """Return the open batch, starting one (and its writer task) if there is none.

        Caller holds _state_lock.
        """
        if self._open_batch is None:
            loop = asyncio.get_running_loop()
            batch = _Batch(future=loop.create_future())
            self._open_batch = batch
            task = loop.create_task(self._write_batch(batch), name="storage-group-commit")
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._writer_done, batch))
        return self._open_batch

    def _writer_done(self, batch: _Batch, task: asyncio.Task[None]) -> None:
        """Make sure a batch's waiters are released however its writer task ended.

        A task cancelled before its first step never runs its body, so without this its
        waiters (and close()) would wait forever. No lock is taken: this runs on the event
        loop between steps, and _state_lock is never held across a suspension point.
        """
        self._tasks.discard(task)
        if self._open_batch is batch:  # ended before taking its snapshot
            self._open_batch = None  # its changes stay dirty: the next batch writes them
        if not batch.future.done():
            batch.future.cancel()

    def _pending_batch(self) -> _Batch | None:
        """Return the batch whose completion makes all in-memory changes durable, if any.

        Caller holds _state_lock.
        """
        if self._dirty or self._open_batch is not None:
            # Dirty files without an open batch are left over from a failed write: retry them.
            return self._join_open_batch()
        return self._inflight

    async def _write_batch(self, batch: _Batch) -> None:
        """Writer task of one batch: snapshot every dirty file, write it, release the waiters."""
        names: list[str] = []
        try:
            # _flush_lock: one writer at a time, so snapshots reach the disk in order.
            async with self._flush_lock:
                # _state_lock: consistent snapshot of the dirty files; closing the batch here
                # means later changes join the next batch (the next write).
                async with self._state_lock:
                    if self._open_batch is batch:
                        self._open_batch = None
                    names = sorted(self._dirty)
                    self._dirty.clear()
                    docs = {name: _document(self._state, name) for name in names}
                    batch.generation = self._generation
                    self._inflight = batch
                try:
                    for name in names:
                        path = self.data_dir / f"{name}.json"
                        duration = await asyncio.to_thread(_write_document, path, docs[name])
                        self._record_writes([duration])
                except BaseException:
                    # _state_lock: re-mark the files so the next write retries them; the
                    # changes themselves stay in memory.
                    async with self._state_lock:
                        self._dirty.update(names)
                    raise
                finally:
                    self._inflight = None
                self._durable_generation = max(self._durable_generation, batch.generation)
        except Exception as exc:  # CancelledError passes: _writer_done releases the waiters
            logger.error(
                "storage write of %s failed (%r); the change stays in memory and is retried "
                "by the next write",
                ", ".join(f"{n}.json" for n in names) or "state",
                exc,
            )
            batch.future.set_exception(exc)
            batch.future.exception()  # mark retrieved: waiters may all have been cancelled
        else:
            batch.future.set_result(None)

    async def _await(self, batch: _Batch | None) -> None:
        """Wait (cancellation-safe) until ``batch`` is on disk; re-raise its failure."""
        if batch is not None:
            await asyncio.shield(batch.future)

    async def mutate(self, names: tuple[str, ...], change: Callable[[_State], tuple[T, bool]]) -> T:
        """Apply ``change`` to the state and return once it is durable.

        ``change`` returns ``(result, changed)``; when nothing changed no write is queued, but
        the call still waits for any pending write so the state it saw is on disk.
        """
        # _state_lock: the in-memory change, the dirty marks and joining the batch are atomic.
        async with self._state_lock:
            self._check_usable()
            result, changed = change(self._state)
            batch = self._mark_dirty(names) if changed else self._pending_batch()
        await self._await(batch)
        return result

    async def read(self, reader: Callable[[_State], T]) -> T:
        """Run ``reader`` on the state; it must return copies."""
        # _state_lock: a consistent view of the in-memory state while copying it.
        async with self._state_lock:
            self._check_usable()
            return reader(self._state)

    async def flush(self) -> None:
        """Return once every change made so far is on disk (retrying failed writes)."""
        # _state_lock: find (or start) the batch that covers the current generation.
        async with self._state_lock:
            batch = self._pending_batch() if self._loaded else None
        await self._await(batch)

    async def close(self) -> None:
        """Refuse further changes, then flush what is pending."""
        # _state_lock: from here on mutations are refused.
        async with self._state_lock:
            if self._closing:
                return
            self._closing = True
        try:
            await self.flush()
        finally:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            logger.info("storage closed after %d file writes", self.write_count)

    # ---- load --------------------------------------------------------------------------

    async def load(self) -> None:
        """Prepare the directories and read the files; see :meth:`StorageService.load`."""
        # _flush_lock: no writer may touch the files while they are inspected and restored.
        async with self._flush_lock:
            # _state_lock: read the flags only.
            async with self._state_lock:
                if self._closing:
                    raise StorageError("StorageService is closed")
                if self._loaded:
                    logger.debug("storage already loaded; load() ignored")
                    return
            result = await asyncio.to_thread(self._load_sync)
            # _state_lock: install the loaded state in one step.
            async with self._state_lock:
                self._state = result.state
                self._loaded = True
        self._record_writes(result.durations)

    def _load_sync(self) -> _LoadResult:
        durations: list[float] = []
        for directory in (self.data_dir, self.backup_dir):
            _ensure_dir(directory)
            _remove_stale_temps(directory)
            _tighten_files(directory)

        # Classify every primary before changing anything, so a file from a newer bot stops
        # us (SchemaVersionError) with nothing moved or rewritten.
        found: dict[str, tuple[int, dict[str, Any]] | None] = {}
        corrupt: dict[str, str] = {}
        for name in FILE_NAMES:
            path = self.data_dir / f"{name}.json"
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                found[name] = None
                continue
            try:
                found[name] = _fully_decode(name, data, path)
            except _CorruptError as exc:
                corrupt[name] = str(exc)

        for name, reason in corrupt.items():
            found[name] = self._recover(name, reason, durations)

        state = _State()
        migrated = [n for n, f in found.items() if f is not None and f[0] < SCHEMA_VERSION]
        if migrated:
            # The old-version primaries are still on disk: copy them before replacing them.
            durations += self._backup_sync(f"pre-migration to v{SCHEMA_VERSION}")[1]
        for name, entry in found.items():
            if entry is not None:
                _apply_document(state, name, entry[1])
        for name in migrated:
            path = self.data_dir / f"{name}.json"
            durations.append(_atomic_write(path, _encode(_document(state, name))))
            logger.warning("migrated %s to schema_version %d", path, SCHEMA_VERSION)

        # Every primary on disk is valid now: keep a copy before the bot writes anything.
        durations += self._backup_sync("startup")[1]
        logger.info(
            "storage loaded from %s: %d channels, %d feeds",
            self.data_dir,
            len(state.channels),
            len(state.feeds),
        )
        return _LoadResult(state=state, durations=durations)

    def _recover(
        self, name: str, reason: str, durations: list[float]
    ) -> tuple[int, dict[str, Any]] | None:
        """Move a corrupt primary aside and restore the newest valid backup of it."""
        primary = self.data_dir / f"{name}.json"
        aside = self._unique(primary.with_name(f"{primary.name}.corrupt-{_utc_stamp(self._now())}"))
        os.replace(primary, aside)
        os.chmod(aside, FILE_MODE)
        _fsync_dir(self.data_dir)
        for backup in reversed(self._backups_of(name)):
            try:
                data = backup.read_bytes()
                decoded = _fully_decode(name, data, backup)
            except (_CorruptError, SchemaVersionError, OSError) as exc:
                logger.warning("skipping unusable backup %s: %s", backup, exc)
                continue
            durations.append(_atomic_write(primary, data))
            logger.error(
                "%s was corrupt (%s): moved it aside to %s and restored backup %s",
                primary,
                reason,
                aside,
                backup,
            )
            return decoded
        logger.critical(
            "%s was corrupt (%s) and no valid backup exists in %s: moved it aside to %s and "
            "starting %s EMPTY; inspect the moved file to recover its data",
            primary,
            reason,
            self.backup_dir,
            aside,
            name,
        )
        return None

    # ---- backups -----------------------------------------------------------------------

    async def backup(self, reason: str) -> list[Path]:
        """Copy each primary into the backup directory; see :meth:`StorageService.backup`."""
        # _state_lock: flags only.
        async with self._state_lock:
            self._check_usable()
        # _flush_lock: no writer replaces a primary while it is being copied.
        async with self._flush_lock:
            paths, durations = await asyncio.to_thread(self._backup_sync, reason)
        self._record_writes(durations)
        return paths

    def _now(self) -> datetime:
        """Return a UTC time strictly after the previous one used in a file name."""
        now = datetime.now(UTC)
        if self._last_stamp is not None and now <= self._last_stamp:
            now = self._last_stamp + timedelta(microseconds=1)
        self._last_stamp = now
        return now

    def _unique(self, path: Path) -> Path:
        while path.exists():
            path = path.with_name(f"{path.name}-{secrets.token_hex(2)}")
        return path

    def _backups_of(self, name: str) -> list[Path]:
        """Backups of one file, oldest first (the stamp sorts chronologically)."""
        found = [
            entry
            for entry in self.backup_dir.iterdir()
            if (m := _BACKUP_RE.match(entry.name)) and m.group("name") == name
        ]
        return sorted(found, key=lambda p: p.name)

    def _backup_sync(self, reason: str) -> tuple[list[Path], list[float]]:
        """Write timestamped copies of the valid primaries, then rotate. Holds _flush_lock."""
        while True:
            stamp = _utc_stamp(self._now())
            targets = {n: self.backup_dir / f"{n}-{stamp}.json" for n in FILE_NAMES}
            if not any(t.exists() for t in targets.values()):
                break
        paths: list[Path] = []
        durations: list[float] = []
        for name in FILE_NAMES:
            primary = self.data_dir / f"{name}.json"
            try:
                data = primary.read_bytes()
            except FileNotFoundError:
                continue
            try:
                _fully_decode(name, data, primary)
            except (_CorruptError, SchemaVersionError) as exc:
                logger.error("not backing up %s: it is not valid (%s)", primary, exc)
                continue
            durations.append(_atomic_write(targets[name], data))
            paths.append(targets[name])
        removed = 0
        for name in FILE_NAMES:
            backups = self._backups_of(name)
            for old in backups[: max(0, len(backups) - self.backup_keep)]:
                old.unlink()
                removed += 1
        if removed:
            _fsync_dir(self.backup_dir)
        logger.info(
            "storage backup (%s): wrote %d files to %s, rotated out %d",
            reason,
            len(paths),
            self.backup_dir,
            removed,
        )
        return paths, durations


# --------------------------------------------------------------------------------------------
# Public facade and the module-scoped singleton.
# --------------------------------------------------------------------------------------------


class _Registry:
    """Holds the module-scoped singleton; nothing is created until configure_storage()."""

    instance: ClassVar[StorageService | None] = None
    legacy_logged: ClassVar[bool] = False


def _copy_channel(channel: Channel) -> Channel:
    return copy.deepcopy(channel)


class StorageService:
    """Async, durable access to channels, counters and feed state.

    Obtain it with :func:`get_storage_service`. Every instance is a thin facade over the one
    shared core, so all instances see the same state and use the same locks. All methods are
    safe to call concurrently; getters return copies, and changes go through the methods so
    they happen under the lock and reach the disk before the call returns.
    """

    __slots__ = ("_core",)

    def __init__(self, data_dir: Path | str, backup_dir: Path | str, backup_keep: int = 10) -> None:
        # TODO(remove-direct-instantiation): legacy shim. Delete once no caller constructs
        # StorageService directly (tests/test_storage_singleton_usage.py keeps bot/ clean);
        # then make __init__ private to the factory.
        warnings.warn(_LEGACY_MESSAGE, DeprecationWarning, stacklevel=2)
        if not _Registry.legacy_logged:
            _Registry.legacy_logged = True
            logger.warning("%s (further direct constructions are not logged)", _LEGACY_MESSAGE)
        self._core: _StorageCore = _configure(Path(data_dir), Path(backup_dir), backup_keep)._core

    @classmethod
    def _from_core(cls, core: _StorageCore) -> StorageService:
        """Build a facade without the deprecation warning (the factory path)."""
        service = cls.__new__(cls)
        service._core = core
        return service

    # ---- properties --------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """Where the primary files live."""
        return self._core.data_dir

    @property
    def backup_dir(self) -> Path:
        """Where backups are written."""
        return self._core.backup_dir

    @property
    def write_count(self) -> int:
        """How many file writes (primaries and backups) this process has made."""
        return self._core.write_count

    @property
    def write_observer(self) -> Callable[[float], None] | None:
        """Called with each file write's duration in seconds; its exceptions are logged only."""
        return self._core.write_observer

    @write_observer.setter
    def write_observer(self, observer: Callable[[float], None] | None) -> None:
        self._core.write_observer = observer

    # ---- lifecycle ---------------------------------------------------------------------

    async def load(self) -> None:
        """Prepare the directories and load the files; call once before anything else.

        Creates DATA_DIR/BACKUP_DIR as 0700 and tightens looser modes (dirs 0700, files 0600,
        logged), removes temp files left by an interrupted write, loads each file, moves a
        corrupt one aside as ``<name>.corrupt-<UTC stamp>`` and restores the newest valid
        backup (or starts that file empty with a CRITICAL log), migrates old schema versions
        (after a backup), then takes a "startup" backup. Calling it again is a no-op.

        Raises:
            SchemaVersionError: a file has a newer/unknown ``schema_version``; nothing is
                changed on disk.

        """
        await self._core.load()

    async def flush(self) -> None:
        """Return once every change made so far is on disk; retries a previously failed write.

        Raises:
            OSError: the write failed (the changes stay in memory).

        """
        await self._core.flush()

    async def close(self) -> None:
        """Refuse further changes and flush pending ones. Idempotent."""
        await self._core.close()

    async def backup(self, reason: str) -> list[Path]:
        """Copy each primary into BACKUP_DIR as ``<name>-<UTC stamp>.json`` and rotate.

        Copies are written atomically with mode 0600; only the newest ``backup_keep`` per file
        are kept. Missing or invalid primaries are skipped (logged).

        Returns:
            The backup files written.

        """
        return await self._core.backup(reason)

    # ---- channels ----------------------------------------------------------------------

    async def get_channel(self, chat_id: int) -> Channel | None:
        """Return a copy of the chat's Channel, or None if the bot does not know it."""

        def reader(state: _State) -> Channel | None:
            channel = state.channels.get(chat_id)
            return None if channel is None else _copy_channel(channel)

        return await self._core.read(reader)

    async def list_channels(self, active_only: bool = False) -> list[Channel]:
        """Return copies of all channels (only active ones if asked), in insertion order."""

        def reader(state: _State) -> list[Channel]:
            return [
                _copy_channel(c) for c in state.channels.values() if c.active or not active_only
            ]

        return await self._core.read(reader)

    async def ensure_channel(self, chat_id: int, type: str, title: str) -> Channel:
        """Create the chat if missing, else re-activate it and refresh type/title; durable.

        An empty ``title`` keeps the stored one.
        """

        def change(state: _State) -> tuple[Channel, bool]:
            channel = state.channels.get(chat_id)
            if channel is None:
                channel = Channel(chat_id=chat_id, type=type, title=title)
                state.channels[chat_id] = channel
                return _copy_channel(channel), True
            new_title = title or channel.title
            changed = not channel.active or channel.type != type or channel.title != new_title
            channel.active, channel.type, channel.title = True, type, new_title
            return _copy_channel(channel), changed

        return await self._core.mutate(("channels",), change)

    async def update_channel(self, chat_id: int, fn: Callable[[Channel], T]) -> T:
        """Run ``fn(channel)`` atomically under the lock and persist the result.

        ``fn`` gets the chat's Channel (a working copy that replaces the stored one only if
        ``fn`` returns normally, so an exception leaves the state untouched). Its return value
        is returned (deep-copied, so no live state escapes). No write happens if ``fn``
        changed nothing.

        Raises:
            KeyError: the chat is unknown.
            ValueError: ``fn`` changed ``chat_id`` (use migrate_channel).

        """

        def change(state: _State) -> tuple[T, bool]:
            current = state.channels.get(chat_id)
            if current is None:
                raise KeyError(chat_id)
            working = _copy_channel(current)
            result = fn(working)
            if working.chat_id != chat_id:
                raise ValueError("update_channel must not change chat_id; use migrate_channel")
            if len(working.seen) > SEEN_LIMIT:
                del working.seen[: len(working.seen) - SEEN_LIMIT]
            changed = working.to_dict() != current.to_dict()
            if changed:
                state.channels[chat_id] = working
            return copy.deepcopy(result), changed

        return await self._core.mutate(("channels",), change)

    async def delete_channel(self, chat_id: int) -> bool:
        """Forget a chat and its per-chat counters (global totals stay); durable.

        Returns:
            False if the chat was unknown.

        """

        def change(state: _State) -> tuple[bool, bool]:
            if state.channels.pop(chat_id, None) is None:
                return False, False
            state.counters_chats.pop(str(chat_id), None)
            return True, True

        return await self._core.mutate(("channels", "counters"), change)

    async def migrate_channel(self, old_id: int, new_id: int) -> bool:
        """Move a chat to a new id (group → supergroup), with its counters; durable.

        If ``new_id`` already exists the two are merged: feeds and seen ids are united (new
        id's first), the old digest schedule is kept unless the new one is set, and per-chat
        counters are summed. The two files are written one after the other, not atomically
        together.

        Returns:
            False (and nothing changes) if ``old_id`` is unknown or equals ``new_id``.

        """

        def change(state: _State) -> tuple[bool, bool]:
            if old_id == new_id or old_id not in state.channels:
                return False, False
            old = state.channels.pop(old_id)
            target = state.channels.get(new_id)
            if target is None:
                old.chat_id = new_id
                state.channels[new_id] = old
            else:
                target.feeds.extend(f for f in old.feeds if f not in target.feeds)
                old_seen = set(old.seen)
                merged_seen = old.seen + [s for s in target.seen if s not in old_seen]
                target.seen = []
                target.remember_sent(merged_seen)
                if target.digest.mode == "off":
                    target.digest = old.digest
                target.active = target.active or old.active
            old_counts = state.counters_chats.pop(str(old_id), None)
            if old_counts:
                new_counts = state.counters_chats.setdefault(str(new_id), {})
                for counter, value in old_counts.items():
                    new_counts[counter] = new_counts.get(counter, 0) + value
            return True, True

        return await self._core.mutate(("channels", "counters"), change)

    # ---- counters ----------------------------------------------------------------------

    async def increment(self, name: str, chat_id: int | None = None, by: int = 1) -> int:
        """Add ``by`` to the global counter ``name`` and, if given, the chat's; one durable write.

        Returns:
            The new global value.

        """
        if not name:
            raise ValueError("counter name must not be empty")

        def change(state: _State) -> tuple[int, bool]:
            value = state.counters_global.get(name, 0) + by
            state.counters_global[name] = value
            if chat_id is not None:
                chat = state.counters_chats.setdefault(str(chat_id), {})
                chat[name] = chat.get(name, 0) + by
            return value, True

        return await self._core.mutate(("counters",), change)

    async def get_counters(self) -> dict[str, Any]:
        """Return a deep copy: ``{"global": {name: int}, "chats": {"<chat id>": {name: int}}}``."""

        def reader(state: _State) -> dict[str, Any]:
            return {
                "global": dict(state.counters_global),
                "chats": {k: dict(v) for k, v in state.counters_chats.items()},
            }

        return await self._core.read(reader)

    # ---- feeds -------------------------------------------------------------------------

    async def get_feed_state(self, url: str) -> FeedState | None:
        """Return a copy of what is remembered about ``url``, or None."""

        def reader(state: _State) -> FeedState | None:
            feed = state.feeds.get(url)
            return None if feed is None else copy.deepcopy(feed)

        return await self._core.read(reader)

    async def update_feed_state(self, url: str, fn: Callable[[FeedState], T]) -> T:
        """Run ``fn(state)`` atomically (creating ``FeedState(url)`` if missing); durable.

        Same copy-then-commit rules as :meth:`update_channel`.

        Raises:
            ValueError: ``fn`` changed the url.

        """

        def change(state: _State) -> tuple[T, bool]:
            current = state.feeds.get(url)
            working = FeedState(url=url) if current is None else copy.deepcopy(current)
            result = fn(working)
            if working.url != url:
                raise ValueError("update_feed_state must not change the url")
            changed = current is None or working.to_dict() != current.to_dict()
            if changed:
                state.feeds[url] = working
            return copy.deepcopy(result), changed

        return await self._core.mutate(("feeds",), change)


def _configure(data_dir: Path, backup_dir: Path, backup_keep: int) -> StorageService:
    existing = _Registry.instance
    if existing is not None and not existing._core.closed:
        if not existing._core.same_place(data_dir, backup_dir):
            raise RuntimeError(
                "storage is already configured for "
                f"{existing.data_dir} / {existing.backup_dir}; refusing to reconfigure it for "
                f"{data_dir} / {backup_dir} (two services on different files would diverge)"
            )
        if existing._core.backup_keep != backup_keep:
            logger.warning(
                "storage already configured with backup_keep=%d; ignoring backup_keep=%d",
                existing._core.backup_keep,
                backup_keep,
            )
        return existing
    service = StorageService._from_core(_StorageCore(data_dir, backup_dir, backup_keep))
    _Registry.instance = service
    return service


def configure_storage(data_dir: Path, backup_dir: Path, backup_keep: int = 10) -> StorageService:
    """Create the process-wide StorageService (call once at startup, then ``await load()``).

    Calling it again with the same directories returns the same instance (a closed instance
    is replaced by a fresh one).

    Raises:
        RuntimeError: already configured (and open) for different directories.
        ValueError: ``backup_keep`` < 1 or both directories are the same.

    """
    return _configure(Path(data_dir), Path(backup_dir), backup_keep)


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
