"""File-system primitives for storage: modes, atomic replacement, fsync, stale temp files.

Two flavours of atomic write: :func:`atomic_write_async` (through ``aiofiles``, for the
service on the event loop's behalf) and :func:`atomic_write` (plain blocking I/O, for the
compaction worker process and start-up code already running in a thread). Both follow the
same sequence — temp file in the same directory (0600, ``O_EXCL|O_NOFOLLOW``) → write →
flush → fsync → ``os.replace`` → fsync of the directory — so a crash at any moment leaves
either the old or the new complete file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import stat
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path

import aiofiles
import aiofiles.os

logger = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600
TEMP_MARKER = ".tmp-"
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
_APPEND_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)

fsync_async = aiofiles.os.wrap(os.fsync)


class StorageError(RuntimeError):
    """Persistence cannot proceed safely (unusable directory, unreadable schema, closed)."""


class SchemaVersionError(StorageError):
    """A data file has a schema version this code cannot read; it is left untouched."""


def _create_opener(path: str, flags: int) -> int:
    """``open()`` opener: a brand-new 0600 file, never following a planted symlink."""
    del flags  # the mode string's flags are replaced by ours
    return os.open(path, _CREATE_FLAGS, FILE_MODE)


def append_opener(path: str, flags: int) -> int:
    """``open()`` opener for journal segments: append-only, 0600, no symlinks."""
    del flags
    fd = os.open(path, _APPEND_FLAGS, FILE_MODE)
    os.fchmod(fd, FILE_MODE)  # umask may have removed owner bits
    return fd


def temp_path(path: Path) -> Path:
    """A fresh temp-file name beside ``path`` (cleaned up at load if a crash leaves it)."""
    return path.with_name(f".{path.name}{TEMP_MARKER}{secrets.token_hex(8)}")


def fsync_dir(directory: Path) -> None:
    """Make a rename/unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(
    path: Path,
    data: bytes | Iterable[bytes],
    *,
    before_replace: Callable[[], None] | None = None,
) -> int:
    """Replace ``path`` with ``data`` (blocking; worker threads and processes only).

    Args:
        path: the file to replace.
        data: the content, or its pieces in order (written as they come: a snapshot is
            never held whole in memory).
        before_replace: called once the new content is durable in the temp file and before
            it replaces ``path``; if it raises, the temp file is removed and ``path`` is
            left as it was.

    Returns:
        The number of bytes written.
    """
    tmp = temp_path(path)
    size = 0
    try:
        with open(tmp, "wb", opener=_create_opener) as handle:
            os.fchmod(handle.fileno(), FILE_MODE)
            for chunk in [data] if isinstance(data, bytes) else data:
                handle.write(chunk)
                size += len(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return size


async def _pieces(data: bytes | Iterator[bytes] | AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``data`` as async pieces; a plain iterator is advanced in a thread (it may encode)."""
    if isinstance(data, bytes):
        yield data
    elif isinstance(data, AsyncIterator):
        async for chunk in data:
            yield chunk
    else:
        while (piece := await asyncio.to_thread(_next_piece, data)) is not None:
            yield piece


def _next_piece(pieces: Iterator[bytes]) -> bytes | None:
    return next(pieces, None)


async def atomic_write_async(
    path: Path, data: bytes | Iterator[bytes] | AsyncIterator[bytes]
) -> int:
    """Replace ``path`` with ``data`` through aiofiles, off the event loop.

    ``data`` may come in pieces: an async iterator (a file being copied), or a plain iterator
    that is advanced in a worker thread (pieces of a snapshot being encoded), so that neither
    the encoding nor the whole content is ever on, or held by, the event loop.

    Returns:
        The number of bytes written.
    """
    tmp = temp_path(path)
    size = 0
    try:
        async with aiofiles.open(tmp, "wb", opener=_create_opener) as handle:
            async for chunk in _pieces(data):
                await handle.write(chunk)
                size += len(chunk)
            await handle.flush()
            await fsync_async(handle.fileno())
        await aiofiles.os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            await aiofiles.os.remove(tmp)
        raise
    await aiofiles.os.wrap(fsync_dir)(path.parent)
    return size


async def read_chunks(path: Path, size: int) -> AsyncIterator[bytes]:
    """The bytes of ``path`` in pieces of ``size``, read through aiofiles."""
    async with aiofiles.open(path, "rb") as handle:
        while chunk := await handle.read(size):
            yield chunk


async def read_bytes(path: Path) -> bytes:
    """Read a whole file through aiofiles."""
    async with aiofiles.open(path, "rb") as handle:
        data: bytes = await handle.read()
    return data


def ensure_dir(path: Path) -> None:
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


def tighten_files(directory: Path) -> None:
    """Set every regular file in ``directory`` to 0600 (they all hold bot data)."""
    for entry in directory.iterdir():
        info = entry.lstat()
        if not stat.S_ISREG(info.st_mode):
            continue
        mode = stat.S_IMODE(info.st_mode)
        if mode != FILE_MODE:
            os.chmod(entry, FILE_MODE)
            logger.warning("tightened permissions of file %s from %o to %o", entry, mode, FILE_MODE)


def remove_stale_temps(directory: Path) -> None:
    """Delete temp files an interrupted write left behind (the target is intact)."""
    removed = False
    for entry in directory.iterdir():
        if entry.name.startswith(".") and TEMP_MARKER in entry.name and entry.is_file():
            entry.unlink()
            removed = True
            logger.warning("removed stale temp file %s left by an interrupted write", entry)
    if removed:
        fsync_dir(directory)
