"""Persistence: one lock-guarded, crash-safe store for chats, subscriptions, feeds and counters.

``files`` holds the file primitives, ``state`` the event-sourced in-memory model, ``journal``
the append-only journal and its snapshot, ``migrate`` the version-1 upgrade, ``backups`` the
snapshot copies in BACKUP_DIR, ``loading`` the start-up (files → state), ``commit`` when a
change is on disk (group commit, deferred records, compaction), and ``service`` the
:class:`StorageService` everything else talks to through :func:`get_storage_service`.
"""

from bot.storage.files import SchemaVersionError, StorageError
from bot.storage.service import (
    Backlog,
    StorageService,
    configure_storage,
    get_storage_service,
    reset_storage_service,
)

__all__ = [
    "Backlog",
    "SchemaVersionError",
    "StorageError",
    "StorageService",
    "configure_storage",
    "get_storage_service",
    "reset_storage_service",
]
