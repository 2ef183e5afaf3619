"""Start-up: from whatever is in DATA_DIR to one fresh snapshot and the state it holds.

Everything here runs once, before the service owns the state, and none of it is needed to
commit a change afterwards — which is why it is apart from :mod:`bot.storage.commit`. In
order, :func:`load_state`

1. prepares DATA_DIR and BACKUP_DIR (0700, files tightened to 0600, temp files of an
   interrupted write removed);
2. hands a version-1 DATA_DIR to :mod:`bot.storage.migrate` (its files backed up first);
3. reads the snapshot — a corrupt one is moved aside and the newest valid backup restored,
   one from a newer version stops the start without touching it;
4. replays the journal segments the snapshot does not cover;
5. if that changed anything (records replayed, a torn or corrupt line dropped, a backup
   restored, no snapshot yet), writes the result as a fresh snapshot, and only then removes
   the replayed segments and the version-1 leftovers, so a crash at any step leaves
   something a restart can load. Otherwise the snapshot on disk already *is* the state:
   it is kept as it is (a start costs no whole-state write), empty segments are removed and
   appending starts again at the snapshot's segment.

The snapshot is read in chunks through aiofiles and decoded a line at a time in a worker
thread (:class:`bot.storage.snapshot.SnapshotReader`), and written the same way, so the
process never holds the file's bytes or its decoded document beside the state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import aiofiles.os

from bot.storage import journal, migrate
from bot.storage.backups import list_backups, stamp
from bot.storage.files import (
    SchemaVersionError,
    atomic_write_async,
    ensure_dir,
    read_bytes,
    read_chunks,
    remove_stale_temps,
    tighten_files,
)
from bot.storage.journal import SNAPSHOT_NAME, ReplayStats
from bot.storage.snapshot import CHUNK_BYTES, SnapshotReader, gc_paused, snapshot_chunks
from bot.storage.state import SCHEMA_VERSION, RecordError, State

logger = logging.getLogger(__name__)


@dataclass
class Loaded:
    """What :func:`load_state` hands to the service.

    Attributes:
        state: the state as of the fresh snapshot.
        segment: the journal segment to append to next (the snapshot covers all before it).
        stats: what replaying the journal found (records, bad lines, a torn tail).
        snapshot_size: bytes of the snapshot (compaction compares the journal to it).
        snapshot_written: whether start-up wrote the snapshot (False: the one on disk was
            already the whole state).
    """

    state: State
    segment: int
    stats: ReplayStats
    snapshot_size: int
    snapshot_written: bool


async def load_state(data_dir: Path, backup_dir: Path, default_feeds: Iterable[str]) -> Loaded:
    """Load snapshot + journal (migrating or restoring if needed); write a snapshot if needed.

    Args:
        data_dir: DATA_DIR (snapshot and journal).
        backup_dir: BACKUP_DIR (snapshot backups, version-1 file copies).
        default_feeds: ``DEFAULT_FEEDS``, only used by the version-1 migration.

    Raises:
        SchemaVersionError: the snapshot is from a newer version; nothing is changed.
    """
    await asyncio.to_thread(_prepare_dirs, data_dir, backup_dir)
    snapshot = data_dir / SNAPSHOT_NAME
    segments = await asyncio.to_thread(journal.list_segments, data_dir)
    old_files = await asyncio.to_thread(migrate.v1_files, data_dir)
    if not snapshot.exists() and not segments and old_files:
        await _migrate_v1(data_dir, backup_dir, old_files, tuple(default_feeds))
    state, start, intact = await _read_snapshot(snapshot, backup_dir)
    stats = ReplayStats()
    live = [n for n in segments if n >= start]
    for n in live:
        path = journal.segment_path(data_dir, n)
        await asyncio.to_thread(
            journal.replay_segment, state, path, last=n == live[-1], stats=stats
        )
    changed = stats.records > 0 or stats.bad_lines > 0 or stats.torn_tail
    if intact and not changed:
        # The snapshot is the whole state: the live segments hold nothing (a start and a
        # stop without changes), the older ones were folded in already.
        next_segment = start
        size = (await aiofiles.os.stat(snapshot)).st_size
    else:
        next_segment = max([start, *segments]) + 1
        size = await _write_snapshot(data_dir, state, next_segment)
    for n in segments:
        await aiofiles.os.remove(journal.segment_path(data_dir, n))
    for path in old_files:  # version-1 leftovers: they were backed up before migrating
        with contextlib.suppress(FileNotFoundError):
            await aiofiles.os.remove(path)
    return Loaded(state, next_segment, stats, size, snapshot_written=not (intact and not changed))


def _prepare_dirs(data_dir: Path, backup_dir: Path) -> None:
    for directory in (data_dir, backup_dir):
        ensure_dir(directory)
        tighten_files(directory)
        remove_stale_temps(directory)


async def _migrate_v1(
    data_dir: Path, backup_dir: Path, old_files: list[Path], default_feeds: tuple[str, ...]
) -> None:
    when = stamp()
    for path in old_files:  # back the old files up first, byte for byte
        data = await read_bytes(path)
        await atomic_write_async(backup_dir / f"v1-{path.stem}-{when}.json", data)
    state = await asyncio.to_thread(migrate.build_state, data_dir, backup_dir, default_feeds)
    await atomic_write_async(data_dir / SNAPSHOT_NAME, snapshot_chunks(state.to_snapshot(1)))
    logger.warning(
        "migrated a version-1 data directory",
        extra={
            "event": "storage_migrated",
            "chats": len(state.chats),
            "feeds": len(state.feeds),
            "backup": f"{backup_dir}/v1-*-{when}.json",
        },
    )


async def _decode(path: Path, reader: SnapshotReader) -> tuple[State, int]:
    """Read ``path`` in chunks through aiofiles; decode each in a worker thread.

    Raises:
        RecordError: not a valid snapshot (``reader.head`` holds its first bytes).
        OSError: it cannot be read.
    """
    loop = asyncio.get_running_loop()
    # One thread decodes every chunk: objects made in several threads land in several malloc
    # arenas, and the fragmentation cost ~15 MB of RSS at 100,000 chats (bench_storage).
    # The collector pause spans the awaits below: nothing else runs before the load is done.
    with ThreadPoolExecutor(1, thread_name_prefix="snapshot-decode") as decoder, gc_paused():
        async for chunk in read_chunks(path, CHUNK_BYTES):
            await loop.run_in_executor(decoder, reader.feed, chunk)
        return reader.finish()


async def _read_snapshot(path: Path, backup_dir: Path) -> tuple[State, int, bool]:
    """The snapshot's state and segment, and whether the file holds exactly that state.

    Missing: an empty state. Corrupt: moved aside and the newest valid backup restored (the
    file then no longer holds the state, so the caller writes a fresh one).
    """
    if not await aiofiles.os.path.exists(path):
        return State(), 0, False
    reader = SnapshotReader()
    try:
        state, segment = await _decode(path, reader)
    except RecordError as exc:
        version = _version_of(reader.head)
        if version is not None and version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{path}: schema_version {version} is newer than this bot understands "
                f"({SCHEMA_VERSION}); refusing to start so the file is not overwritten. "
                "Run a newer bot version, or restore an older backup by hand."
            ) from exc
        aside = path.with_name(f"{path.name}.corrupt-{stamp()}")
        await aiofiles.os.replace(path, aside)
        state, segment = await _restore_from_backup(path, aside, backup_dir, exc)
        return state, segment, False
    return state, segment, True


async def _restore_from_backup(
    path: Path, aside: Path, backup_dir: Path, why: Exception
) -> tuple[State, int]:
    for backup in sorted(await list_backups(backup_dir), reverse=True):
        try:
            state, segment = await _decode(backup, SnapshotReader())
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


async def _write_snapshot(data_dir: Path, state: State, segment: int) -> int:
    """Write ``state`` as the snapshot covering segments before ``segment``; O(state).

    Encoded a chunk at a time in a worker thread, written through aiofiles.
    """
    return await atomic_write_async(
        data_dir / SNAPSHOT_NAME, snapshot_chunks(state.to_snapshot(segment))
    )


def _version_of(head: bytes) -> int | None:
    match = re.search(rb'"schema_version"\s*:\s*(\d+)', head)
    return int(match.group(1)) if match else None
