"""First start on a version-1 DATA_DIR: everything kept, old files backed up, cursors at head."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.models import Delivery
from bot.storage import StorageService
from tests.helpers.storage_data import feed_state, items

A = "https://a.example/rss.xml"
B = "https://b.example/atom.xml"
DEFAULTS = ("https://default.example/one.xml", "https://default.example/two.xml")
V1_BACKUP_RE = re.compile(r"^v1-(channels|counters|feeds)-\d{8}T\d{12}Z\.json$")


def off() -> dict[str, Any]:
    return {"mode": "off", "interval_s": None, "at": None}


def channel(chat_id: int, feeds: list[str], digest: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "chat_id": chat_id,
        "type": extra.pop("type", "private"),
        "title": extra.pop("title", f"chat {chat_id}"),
        "feeds": feeds,
        "digest": digest,
        "active": extra.pop("active", True),
        "seen": [f"https://a.example/post/{n}" for n in range(40)],
        **extra,
    }


CHANNELS: dict[str, Any] = {
    "schema_version": 1,
    "channels": [
        channel(1, [A, B], off()),
        channel(-1001, [A], {"mode": "every", "interval_s": 7200, "at": None}, type="supergroup"),
        channel(3, [B], {"mode": "at", "interval_s": None, "at": "08:30"}),
        channel(4, [], {"mode": "every", "interval_s": 3600, "at": None}),  # used the defaults
        channel(5, [], off()),
        channel(6, [A], off(), active=False, type="group", title="left"),
    ],
}
COUNTERS: dict[str, Any] = {
    "schema_version": 1,
    "global": {"news_requests": 42, "feeds_added": 5},
    "chats": {"1": {"news_requests": 30}, "-1001": {"news_requests": 12, "feeds_added": 1}},
}
FEEDS: dict[str, Any] = {
    "schema_version": 1,
    "feeds": [
        {
            "url": A,
            "title": "Feed A",
            "etag": '"a1"',
            "last_modified": None,
            "failures": 0,
            "paused": False,
            "last_error": None,
        },
        {
            "url": B,
            "title": "Feed B",
            "etag": None,
            "last_modified": "Mon, 01 Jan 2026",
            "failures": 2,
            "paused": False,
            "last_error": "timeout",
        },
    ],
}


def write_v1(data: Path, docs: dict[str, Any]) -> dict[str, bytes]:
    """Write version-1 primaries the way version 1 did (indented JSON); return their bytes."""
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    written = {}
    for name, doc in docs.items():
        content = json.dumps(doc, indent=2).encode()
        (data / f"{name}.json").write_bytes(content)
        written[name] = content
    return written


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    data, backups = tmp_path / "data", tmp_path / "backups"
    backups.mkdir(mode=0o700)
    # Version 1's own backups: kept as they are.
    for name, doc in (("channels", CHANNELS), ("counters", COUNTERS), ("feeds", FEEDS)):
        (backups / f"{name}-20251201T000000000000Z.json").write_text(json.dumps(doc))
    return data, backups


@pytest.fixture
async def opened() -> AsyncIterator[list[StorageService]]:
    services: list[StorageService] = []
    yield services
    for service in services:
        await service.close()


async def load(data: Path, backups: Path, opened: list[StorageService]) -> StorageService:
    service = StorageService(data, backups, 5, compact_in_process=False)
    opened.append(service)
    await service.load(default_feeds=DEFAULTS)
    return service


async def test_every_chat_subscription_schedule_and_counter_is_kept(
    dirs: tuple[Path, Path], opened: list[StorageService]
) -> None:
    data, backups = dirs
    write_v1(data, {"channels": CHANNELS, "counters": COUNTERS, "feeds": FEEDS})
    service = await load(data, backups, opened)

    chats = {c.chat_id: c for c in service.chats()}
    assert sorted(chats) == [-1001, 1, 3, 4, 5, 6]
    # digest off: instant delivery, paused (version 1 posted nothing by itself)
    assert (chats[1].delivery, chats[1].paused) == (Delivery(), True)
    assert (chats[5].delivery, chats[5].paused) == (Delivery(), True)
    # schedules kept with the same interval / time
    assert chats[-1001].delivery == Delivery("every", interval_s=7200)
    assert not chats[-1001].paused
    assert chats[-1001].next_digest_at is not None
    assert chats[3].delivery == Delivery("at", at="08:30")
    assert chats[4].delivery == Delivery("every", interval_s=3600)
    assert (chats[-1001].type, chats[-1001].title) == ("supergroup", "chat -1001")
    assert not chats[6].active
    assert (chats[6].type, chats[6].title) == ("group", "left")

    assert service.feed_urls(1) == [A, B]
    assert service.feed_urls(-1001) == [A]
    assert service.feed_urls(3) == [B]
    assert service.feed_urls(4) == list(DEFAULTS)  # a digest on the defaults keeps working
    assert service.feed_urls(5) == []  # no digest, no feeds: /news still uses the defaults
    assert service.feed_urls(6) == [A]
    assert service.feed_state(A).title == "Feed A"  # type: ignore[union-attr]
    assert service.feed_state(B).title == "Feed B"  # type: ignore[union-attr]

    assert service.counters() == {
        "global": {"news_requests": 42, "feeds_added": 5},
        "chats": {"1": {"news_requests": 30}, "-1001": {"news_requests": 12, "feeds_added": 1}},
    }


async def test_old_files_are_backed_up_byte_for_byte_then_removed(
    dirs: tuple[Path, Path], opened: list[StorageService], caplog: pytest.LogCaptureFixture
) -> None:
    data, backups = dirs
    original = write_v1(data, {"channels": CHANNELS, "counters": COUNTERS, "feeds": FEEDS})
    with caplog.at_level(logging.WARNING, logger="bot.storage.loading"):
        await load(data, backups, opened)
    assert not any((data / f"{name}.json").exists() for name in original)
    copies = {V1_BACKUP_RE.match(p.name): p for p in backups.iterdir()}
    by_name = {m.group(1): p for m, p in copies.items() if m}
    assert sorted(by_name) == ["channels", "counters", "feeds"]
    for name, content in original.items():
        assert by_name[name].read_bytes() == content
    stamps = {p.name.rsplit("-", 1)[1] for p in by_name.values()}
    assert len(stamps) == 1  # one migration, one stamp
    assert "migrated a version-1 data directory" in caplog.text
    # version 1's own backups are left alone
    assert (backups / "channels-20251201T000000000000Z.json").exists()


async def test_migration_happens_once_and_survives_a_restart(
    dirs: tuple[Path, Path], opened: list[StorageService]
) -> None:
    data, backups = dirs
    write_v1(data, {"channels": CHANNELS, "counters": COUNTERS, "feeds": FEEDS})
    first = await load(data, backups, opened)
    await first.update_chat(3, lambda c: setattr(c, "title", "renamed after the upgrade"))
    await first.close()
    second = await load(data, backups, opened)
    assert second.chat(3).title == "renamed after the upgrade"  # type: ignore[union-attr]
    assert second.feed_urls(4) == list(DEFAULTS)
    assert len([p for p in backups.iterdir() if V1_BACKUP_RE.match(p.name)]) == 3


async def test_partial_v1_directory_migrates_what_exists(
    dirs: tuple[Path, Path], opened: list[StorageService]
) -> None:
    data, backups = dirs
    for path in backups.iterdir():
        path.unlink()
    write_v1(data, {"channels": CHANNELS})
    service = await load(data, backups, opened)
    assert len(service.chats()) == 6
    assert service.counters() == {"global": {}, "chats": {}}
    assert service.feed_state(A).title == ""  # type: ignore[union-attr]


async def test_corrupt_v1_channels_migrate_from_the_newest_valid_v1_backup(
    dirs: tuple[Path, Path], opened: list[StorageService], caplog: pytest.LogCaptureFixture
) -> None:
    data, backups = dirs
    newer = {"schema_version": 1, "channels": [channel(77, [B], off(), title="from backup")]}
    (backups / "channels-20260102T000000000000Z.json").write_text(json.dumps(newer))
    (backups / "channels-20260103T000000000000Z.json").write_text('{"schema_version": 1, "ch')
    write_v1(data, {"counters": COUNTERS, "feeds": FEEDS})
    (data / "channels.json").write_bytes(b'{"schema_version": 1, "channels": [{"chat_')
    with caplog.at_level(logging.ERROR, logger="bot.storage.migrate"):
        service = await load(data, backups, opened)
    assert [c.chat_id for c in service.chats()] == [77]
    assert service.chat(77).title == "from backup"  # type: ignore[union-attr]
    assert service.counters()["global"]["news_requests"] == 42
    assert "channels-20260102T000000000000Z.json" in caplog.text
    # the corrupt primary was backed up as it was, too
    [copy] = [p for p in backups.iterdir() if p.name.startswith("v1-channels-")]
    assert copy.read_bytes() == b'{"schema_version": 1, "channels": [{"chat_'
    assert not (data / "counters.json").exists()


async def test_v1_with_no_valid_channels_anywhere_starts_empty_with_critical(
    dirs: tuple[Path, Path], opened: list[StorageService], caplog: pytest.LogCaptureFixture
) -> None:
    data, backups = dirs
    (backups / "channels-20251201T000000000000Z.json").unlink()
    write_v1(data, {"counters": COUNTERS})
    (data / "channels.json").write_bytes(b"not json")
    with caplog.at_level(logging.CRITICAL, logger="bot.storage.migrate"):
        service = await load(data, backups, opened)
    assert service.chats() == []
    assert service.counters()["global"]["news_requests"] == 42
    assert "no valid copy of channels.json" in caplog.text


@pytest.mark.parametrize(
    "digest",
    [
        {"mode": "every", "interval_s": "often", "at": None},
        {"mode": "every", "interval_s": 0, "at": None},
        {"mode": "at", "interval_s": None, "at": "25:00"},
        {"mode": "weekly"},
        "every day",
    ],
)
async def test_invalid_v1_schedule_becomes_paused_instant_with_a_warning(
    dirs: tuple[Path, Path],
    opened: list[StorageService],
    caplog: pytest.LogCaptureFixture,
    digest: Any,
) -> None:
    data, backups = dirs
    bad: dict[str, Any] = {
        "schema_version": 1,
        "channels": [channel(8, [A], off()), channel(9, [B], off())],
    }
    bad["channels"][0]["digest"] = digest
    write_v1(data, {"channels": bad})
    with caplog.at_level(logging.WARNING, logger="bot.storage.migrate"):
        service = await load(data, backups, opened)
    chat = service.chat(8)
    assert chat is not None
    assert (chat.delivery, chat.paused) == (Delivery(), True)
    assert service.feed_urls(8) == [A]
    assert service.chat(9) is not None
    if isinstance(digest, dict) and digest.get("mode") in ("every", "at"):
        assert "ignored an invalid version-1 digest schedule" in caplog.text


async def test_migrated_cursors_start_at_the_head(
    dirs: tuple[Path, Path], opened: list[StorageService]
) -> None:
    data, backups = dirs
    write_v1(data, {"channels": CHANNELS, "counters": COUNTERS, "feeds": FEEDS})
    service = await load(data, backups, opened)
    await service.update_chat(1, lambda c: setattr(c, "paused", False))
    # The first fetch after the upgrade is the baseline: history, not news.
    assert await service.record_fetch(A, items("a3", "a2", "a1", url=A), feed_state(A)) == []
    assert service.feed_head(A) == 3
    for chat_id in (1, -1001, 6):
        assert service.pending(chat_id) == [], chat_id
    assert sorted(service.instant_recipients(A)) == [1]
    # The next new item is pending exactly once for each follower.
    new = await service.record_fetch(A, items("a4", "a3", "a2", url=A), feed_state(A))
    assert [e.item.id for e in new] == ["urn:a4"]
    for chat_id in (1, -1001, 6):
        [backlog] = service.pending(chat_id)
        assert [e.item.id for e in backlog.entries] == ["urn:a4"]
        assert backlog.skipped == 0
    await service.advance(1, {A: service.feed_head(A)})
    assert service.pending(1) == []
    assert await service.record_fetch(A, items("a4", "a3", url=A), feed_state(A)) == []
    assert service.pending(1) == []
