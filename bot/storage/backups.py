"""BACKUP_DIR: how snapshot backups are named, written, rotated and listed.

A module of its own because two sides share the naming rule: the service writes a backup
(at start and from the backup job) and loading looks for the newest valid one
when the snapshot is corrupt. Keeping the name format and its pattern side by side means a
backup written today is always one that a restore can find.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path

import aiofiles.os

from bot.storage.files import atomic_write_async, read_chunks

COPY_CHUNK = 1 << 20  # a backup is copied in pieces: never a whole snapshot in memory

logger = logging.getLogger(__name__)

_STAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"
_BACKUP_RE = re.compile(r"^snapshot-(\d{8}T\d{12}Z)\.json$")


def stamp() -> str:
    """A UTC timestamp for file names; sorts in time order (microseconds, so rarely equal)."""
    return datetime.now(UTC).strftime(_STAMP_FORMAT)


async def list_backups(backup_dir: Path) -> list[Path]:
    """The snapshot backups in ``backup_dir`` (unordered; their names sort oldest first)."""
    names = await aiofiles.os.listdir(backup_dir)
    return [backup_dir / n for n in names if _BACKUP_RE.match(n)]


async def save_backup(snapshot: Path, backup_dir: Path, keep: int) -> tuple[Path, int]:
    """Copy ``snapshot`` to ``backup_dir/snapshot-<stamp>.json`` and keep the newest ``keep``.

    Returns:
        The backup written and how many older backups were removed.
    """
    target = backup_dir / f"snapshot-{stamp()}.json"
    await atomic_write_async(target, read_chunks(snapshot, COPY_CHUNK))
    old = sorted(await list_backups(backup_dir), reverse=True)[keep:]
    for path in old:
        await aiofiles.os.remove(path)
    return target, len(old)
