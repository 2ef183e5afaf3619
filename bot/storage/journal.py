"""The append-only journal and the snapshot it is compacted into.

Layout of ``DATA_DIR`` (see docs/architecture.md, "Storage"):

* ``snapshot.json`` — the whole state as of the start of journal segment ``segment``, as JSON
  lines (format in :mod:`bot.storage.snapshot`).
* ``journal-00000042.jsonl`` — one JSON record per line, appended and fsynced in groups.

A durable change costs one appended line and a share of one fsync, whatever the size of
the state (this is how Redis' AOF and etcd's WAL work). When the journal has grown as large
as the snapshot, the live segment is sealed and a worker *process* folds the snapshot and the
sealed segments into a new snapshot (:func:`compact`), so the amortised cost of a change
stays constant and the event loop never serialises the whole state.

Crash rules: a line cut short by a crash is the last line of the last segment; it was never
acknowledged, so replay drops it (and logs it). A malformed line elsewhere is disk
corruption: it is logged as an ERROR and skipped, and replay goes on.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import aiofiles
import aiofiles.os
from aiofiles.threadpool.binary import AsyncBufferedIOBase

from bot.storage.files import append_opener, atomic_write, fsync_async, fsync_dir
from bot.storage.snapshot import (
    decode_snapshot,
    encode_line,
    encode_snapshot,
    read_snapshot,
    snapshot_chunks,
)
from bot.storage.state import Record, RecordError, State

__all__ = [  # decode_snapshot/encode_snapshot live in bot.storage.snapshot; kept here for callers
    "SNAPSHOT_NAME",
    "CompactionAbandonedError",
    "JournalWriter",
    "ReplayStats",
    "compact",
    "decode_snapshot",
    "encode_record",
    "encode_snapshot",
    "list_segments",
    "replay_segment",
    "segment_path",
]

logger = logging.getLogger(__name__)

SNAPSHOT_NAME = "snapshot.json"
_SEGMENT_RE = re.compile(r"^journal-(\d{8})\.jsonl$")


def segment_path(directory: Path, number: int) -> Path:
    """Where journal segment ``number`` lives."""
    return directory / f"journal-{number:08d}.jsonl"


def list_segments(directory: Path) -> list[int]:
    """The numbers of the journal segments present, ascending."""
    found = (_SEGMENT_RE.match(p.name) for p in directory.iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def encode_record(record: Record) -> bytes:
    """One journal line (compact JSON, UTF-8, newline-terminated)."""
    return encode_line(record)


@dataclass(slots=True)
class ReplayStats:
    """What replaying the journal found (logged at start-up; asserted by tests)."""

    records: int = 0
    bad_lines: int = 0
    torn_tail: bool = False


def replay_segment(state: State, path: Path, *, last: bool, stats: ReplayStats) -> None:
    """Apply every record of one segment to ``state`` (blocking).

    Args:
        state: what to apply to.
        path: the segment file.
        last: whether this is the newest segment (only there may a torn line be expected).
        stats: updated in place.
    """
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    if tail:
        stats.torn_tail = True
        logger.warning(
            "dropped an incomplete last record of %s (%d bytes; a write cut short by a crash)",
            path.name,
            len(tail),
        )
        if not last:
            stats.bad_lines += 1
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise RecordError("a record is not a JSON object")
            state.apply(record)
        except (ValueError, RecordError) as exc:
            stats.bad_lines += 1
            logger.error(
                "skipped a corrupt journal record at %s line %d: %s", path.name, number, exc
            )
            continue
        stats.records += 1


class CompactionAbandonedError(RuntimeError):
    """The bot that asked for this compaction is gone, or a newer snapshot exists."""


def _snapshot_segment(path: Path) -> int | None:
    """The ``segment`` of the snapshot at ``path`` (read from its first bytes), if any."""
    try:
        with path.open("rb") as handle:
            head = handle.read(200)
    except FileNotFoundError:
        return None
    match = re.search(rb'"segment":(\d+)', head)
    return int(match.group(1)) if match else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def compact(data_dir: str, upto: int, owner_pid: int | None = None) -> int:
    """Fold the snapshot and every segment below ``upto`` into a new snapshot (blocking).

    Runs in a worker process (see :mod:`bot.storage.commit`): it reads only files, never the live
    state, so the event loop is not involved. Segments are not deleted here; the caller does
    that once this returns.

    The snapshot is read and written a chunk at a time (:mod:`bot.storage.snapshot`), so the
    worker holds the state and little more.

    A worker can outlive a bot killed with SIGKILL. Once the new snapshot is written (to its
    temp file) and before it replaces the old one, it checks that ``owner_pid`` (the bot) is
    still alive and that no newer snapshot was written meanwhile (a restarted bot may write
    one at start); otherwise its work is dropped, so an orphan can never put an older
    snapshot over a newer one.

    Returns:
        The size in bytes of the new snapshot.

    Raises:
        CompactionAbandonedError: the owner is gone or a newer snapshot exists.
    """
    directory = Path(data_dir)
    snapshot = directory / SNAPSHOT_NAME
    if snapshot.exists():
        state, start = read_snapshot(snapshot)
    else:
        state, start = State(), 0
    stats = ReplayStats()
    for number in list_segments(directory):
        if start <= number < upto:
            replay_segment(state, segment_path(directory, number), last=False, stats=stats)

    def still_wanted() -> None:  # after the new snapshot is on disk, before it replaces the old
        current = _snapshot_segment(snapshot)
        if owner_pid is not None and not _pid_alive(owner_pid):
            raise CompactionAbandonedError(f"the bot (pid {owner_pid}) that asked for it is gone")
        if current is not None and current > start:
            raise CompactionAbandonedError(f"a newer snapshot (segment {current}) exists")

    return atomic_write(
        snapshot, snapshot_chunks(state.to_snapshot(upto)), before_replace=still_wanted
    )


class JournalWriter:
    """Appends to the live segment through aiofiles.

    One caller at a time: the committer's ``_io_lock`` guarantees it.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._file: AsyncBufferedIOBase | None = None
        self.segment = 0
        self.size = 0
        # After a failed write the segment may end in a partial line: start the next write on
        # a fresh line so that the partial one is the only thing replay skips.
        self._needs_newline = False

    async def open(self, segment: int) -> None:
        """Start appending to ``segment`` (created 0600 if missing)."""
        await self.close()
        path = segment_path(self._directory, segment)
        self._file = await aiofiles.open(path, "ab", opener=append_opener)
        self.segment = segment
        self.size = os.fstat(self._file.fileno()).st_size
        await aiofiles.os.wrap(fsync_dir)(self._directory)

    async def write(self, data: bytes) -> None:
        """Append ``data`` and make it durable (flush + fsync)."""
        if self._file is None:
            raise RuntimeError("journal is not open")
        if self._needs_newline:
            data = b"\n" + data
        self._needs_newline = True
        await self._file.write(data)
        await self._file.flush()
        await fsync_async(self._file.fileno())
        self._needs_newline = False
        self.size += len(data)

    async def rotate(self) -> int:
        """Seal the live segment and open the next; returns the first segment still live."""
        await self.open(self.segment + 1)
        return self.segment

    async def close(self) -> None:
        """Close the live segment (idempotent)."""
        if self._file is not None:
            handle, self._file = self._file, None
            await handle.close()
