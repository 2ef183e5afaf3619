"""First start on a ``DATA_DIR`` of the version-1 format: build the version-2 state from it.

Version 1 kept three whole-state files (``channels.json`` with every chat's seen-list,
``counters.json``, ``feeds.json``). Everything a user chose is kept: chats, their feeds,
digest schedules and counters. Seen-lists are dropped: each subscription starts at its feed's
head (the feed's first fetch after the upgrade is taken as history, not news).

Version 1 posted nothing automatically unless a digest was set, so a chat whose digest was
``off`` becomes *paused* instant delivery: it keeps getting exactly what it got before
(``/news`` on demand) until someone says ``/resume``. A chat with a digest but no feeds of its
own used the bot's default feeds; it is subscribed to them so its digest keeps working.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

from bot.models import Chat, Delivery, FeedState
from bot.storage.state import State

logger = logging.getLogger(__name__)

V1_NAMES = ("channels", "counters", "feeds")
_V1_BACKUP_RE = re.compile(r"^(channels|counters|feeds)-\d{8}T\d{12}Z\.json$")


def v1_files(data_dir: Path) -> list[Path]:
    """The version-1 primaries present in ``data_dir``."""
    return [data_dir / f"{n}.json" for n in V1_NAMES if (data_dir / f"{n}.json").exists()]


def _load_doc(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or doc.get("schema_version") != 1:
        return None
    return doc


def _newest_valid(name: str, data_dir: Path, backup_dir: Path) -> dict[str, Any] | None:
    """The primary if it is valid, else the newest valid version-1 backup, else None."""
    primary = data_dir / f"{name}.json"
    if primary.exists():
        doc = _load_doc(primary)
        if doc is not None:
            return doc
        logger.error("version-1 file %s is corrupt; looking for a backup", primary)
    if backup_dir.is_dir():
        candidates = sorted(
            (p for p in backup_dir.iterdir() if _V1_BACKUP_RE.match(p.name) and
             p.name.startswith(name + "-")),
            reverse=True,
        )  # fmt: skip
        for candidate in candidates:
            doc = _load_doc(candidate)
            if doc is not None:
                logger.error("migrating %s from backup %s", name, candidate.name)
                return doc
    if primary.exists():
        logger.critical("no valid copy of %s.json: migrating without it", name)
    return None


def _delivery(raw: Any, now: float) -> tuple[Delivery, bool, float | None]:
    """Version-1 digest → (delivery, paused, next digest time)."""
    raw = raw if isinstance(raw, dict) else {}
    mode = raw.get("mode")
    try:
        if mode == "every":
            interval = int(raw.get("interval_s"))
            return Delivery("every", interval_s=interval), False, now + interval
        if mode == "at":
            return Delivery("at", at=str(raw.get("at"))), False, None
    except (TypeError, ValueError):
        logger.warning("ignored an invalid version-1 digest schedule %r", raw)
    return Delivery(), True, None


def build_state(data_dir: Path, backup_dir: Path, default_feeds: tuple[str, ...]) -> State:
    """Read the version-1 files (or their newest valid backups) into a version-2 state."""
    now = time.time()
    state = State()
    channels = _newest_valid("channels", data_dir, backup_dir) or {"channels": []}
    feeds = _newest_valid("feeds", data_dir, backup_dir) or {"feeds": []}
    counters = _newest_valid("counters", data_dir, backup_dir) or {}
    for raw in feeds.get("feeds") or []:
        if not isinstance(raw, dict) or not isinstance(raw.get("url"), str):
            continue
        # ETag/Last-Modified are dropped: the feed has no log yet, so its first fetch must
        # read the body to establish the head.
        feed = FeedState(url=raw["url"], title=str(raw.get("title") or ""))
        state.apply({"op": "feed", "state": feed.to_dict()})
    for raw in channels.get("channels") or []:
        if not isinstance(raw, dict) or not isinstance(raw.get("chat_id"), int):
            continue
        delivery, paused, next_at = _delivery(raw.get("digest"), now)
        chat = Chat(
            chat_id=raw["chat_id"],
            type=str(raw.get("type") or "private"),
            title=str(raw.get("title") or ""),
            active=bool(raw.get("active", True)),
            delivery=delivery,
            paused=paused,
            next_digest_at=next_at,
        )
        state.apply({"op": "chat", "chat": chat.to_dict()})
        urls = [u for u in raw.get("feeds") or [] if isinstance(u, str)]
        if not urls and delivery.is_digest:
            urls = list(default_feeds)
        for url in dict.fromkeys(urls):
            state.apply(
                {"op": "sub", "chat_id": chat.chat_id, "url": url, "cursor": 0, "added_at": now}
            )
    glob = counters.get("global")
    chats = counters.get("chats")
    state.apply(
        {
            "op": "counters",
            "global": {k: v for k, v in (glob or {}).items() if isinstance(v, int)},
            "chats": {
                k: {n: c for n, c in v.items() if isinstance(c, int)}
                for k, v in (chats or {}).items()
                if isinstance(v, dict) and re.fullmatch(r"-?\d+", str(k))
            },
        }
    )
    return state
