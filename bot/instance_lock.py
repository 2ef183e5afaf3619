"""One bot process per data directory: an advisory ``flock`` held for the process lifetime.

Two copies of the bot on the same ``DATA_DIR`` would both poll, both post every digest twice,
and both rewrite the same state files. :func:`acquire_instance_lock` takes an exclusive,
non-blocking :func:`fcntl.flock` on ``DATA_DIR/newsbot.lock`` and keeps the descriptor open
until the process exits. The kernel releases the lock whenever the process ends, however it
ends (``kill -9``, OOM killer, power loss), so there is never a stale lock to clean up; the
pid written into the file is only there to name the other process in the error message.

``flock`` is advisory and local: it stops a second ``python -m bot`` on the same machine (or
in a second container sharing the volume on the same kernel), not a copy on another host
with the same token; :mod:`bot.services.health` reports that case (Telegram's 409 Conflict).
Network file systems may not honour ``flock``; keep ``DATA_DIR`` on a local disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

LOCK_FILE_NAME = "newsbot.lock"
# Same policy as the storage: the directory and everything in it belong to the bot alone.
_DIR_MODE = 0o700
_FILE_MODE = 0o600
# A pid is a few digits; anything longer in the file is not ours to print.
_MAX_PID_TEXT = 32


class InstanceLockError(Exception):
    """The instance lock could not be taken; ``str()`` is the one line to show the operator."""


class AlreadyRunningError(InstanceLockError):
    """Another process holds the lock on this data directory.

    Attributes:
        directory: the data directory.
        pid: the holder's pid as it wrote it, or ``None`` if it could not be read.

    """

    def __init__(self, directory: Path, pid: int | None) -> None:
        """Build the operator-facing message naming the directory and the other process."""
        self.directory = directory
        self.pid = pid
        holder = f"process {pid}" if pid is not None else "another process (pid unknown)"
        super().__init__(
            f"another newsbot is already running on data directory {directory} ({holder}); "
            "stop it first, or give this one its own DATA_DIR"
        )


class InstanceLock:
    """A held lock; keep the object alive for as long as the process should own the directory.

    Dropping the last reference closes the descriptor and so releases the lock, which is why
    :func:`acquire_instance_lock`'s caller must hold on to it (``python -m bot`` keeps it in a
    local of ``main()`` for the whole run).
    """

    def __init__(self, path: Path, fd: int) -> None:
        """Wrap an open, locked descriptor (made by :func:`acquire_instance_lock`)."""
        self.path = path
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        """Whether this object still owns the lock."""
        return self._fd is not None

    def release(self) -> None:
        """Unlock and close; safe to call twice. Exiting the process does the same."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __del__(self) -> None:
        """Release when garbage-collected, so a dropped lock never lingers in tests."""
        self.release()


def acquire_instance_lock(data_dir: Path) -> InstanceLock:
    """Create ``data_dir`` if needed (0700) and take its instance lock without waiting.

    Raises:
        AlreadyRunningError: another live process holds the lock.
        PermissionError: ``data_dir`` is not ours to write (unchanged, so that the caller's
            "give the directory to this uid" advice applies).
        InstanceLockError: the directory or lock file cannot be created or locked (the
            message names the path and the reason); chained from the ``OSError``.

    """
    path = data_dir / LOCK_FILE_NAME
    try:
        if not data_dir.exists():
            data_dir.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
            os.chmod(data_dir, _DIR_MODE)  # mkdir's mode is filtered by the umask
        # O_CLOEXEC is Python's default: a child process never inherits (and so never keeps
        # holding) the lock after this process dies.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, _FILE_MODE)
    except PermissionError:
        raise  # python -m bot explains it (the directory belongs to another user)
    except OSError as exc:
        raise InstanceLockError(
            f"cannot create the lock file {path}: {exc.strerror or exc}"
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        pid = _read_pid(fd)
        os.close(fd)
        raise AlreadyRunningError(data_dir, pid) from exc
    except OSError as exc:
        os.close(fd)
        raise InstanceLockError(f"cannot lock {path}: {exc.strerror or exc}") from exc
    # From here on the lock is ours: record the pid for the next process's error message.
    # A crash between truncate and write leaves an empty file, which only costs that message
    # its pid ("pid unknown"); the lock itself is the flock, not the file's contents.
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fchmod(fd, _FILE_MODE)
    except OSError as exc:
        os.close(fd)
        raise InstanceLockError(f"cannot write {path}: {exc.strerror or exc}") from exc
    logger.debug("instance lock taken: %s (pid %d)", path, os.getpid())
    return InstanceLock(path, fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, _MAX_PID_TEXT, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
