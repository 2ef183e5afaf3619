"""Tests for bot/services/storage.py: singleton, legacy shim, group commit, failures, files."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.models import Channel, DigestSchedule, FeedState
from bot.services import storage as storage_mod
from bot.services.storage import (
    SchemaVersionError,
    StorageError,
    StorageService,
    configure_storage,
    get_storage_service,
    reset_storage_service,
)

ROOT = Path(__file__).resolve().parents[2]
LOGGER = "bot.services.storage"


@pytest.fixture(autouse=True)
def _fresh_singleton() -> Iterator[None]:
    reset_storage_service()
    yield
    reset_storage_service()


def read_json(path: Path) -> Any:
    return json.loads(path.read_bytes())


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def temp_files(*dirs: Path) -> list[Path]:
    return [p for d in dirs if d.exists() for p in d.iterdir() if ".tmp-" in p.name]


def channels_doc(*channels: Channel, version: int = 1) -> bytes:
    doc = {"schema_version": version, "channels": [c.to_dict() for c in channels]}
    return json.dumps(doc).encode()


def write_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)


# ---------------------------------------------------------------------------------------------
# Singleton factory
# ---------------------------------------------------------------------------------------------


def test_get_before_configure_raises_clear_error() -> None:
    with pytest.raises(RuntimeError, match=r"not configured.*configure_storage"):
        get_storage_service()


def test_configure_same_dirs_same_instance_different_dirs_raises(tmp_path: Path) -> None:
    first = configure_storage(tmp_path / "d", tmp_path / "b", 5)
    assert configure_storage(tmp_path / "d", tmp_path / "b", 5) is first
    assert get_storage_service() is first
    with pytest.raises(RuntimeError, match="already configured"):
        configure_storage(tmp_path / "other", tmp_path / "b", 5)
    with pytest.raises(RuntimeError, match="already configured"):
        configure_storage(tmp_path / "d", tmp_path / "other", 5)
    reset_storage_service()
    with pytest.raises(RuntimeError, match="not configured"):
        get_storage_service()
    assert configure_storage(tmp_path / "x", tmp_path / "y") is not first


async def test_configure_replaces_a_closed_instance(tmp_path: Path) -> None:
    first = configure_storage(tmp_path / "d", tmp_path / "b")
    await first.load()
    await first.close()
    second = configure_storage(tmp_path / "d2", tmp_path / "b2")
    assert second is not first
    await second.load()
    await second.increment("x")
    await second.close()


def test_configure_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="backup_keep"):
        configure_storage(tmp_path / "d", tmp_path / "b", 0)
    with pytest.raises(ValueError, match="differ"):
        configure_storage(tmp_path / "d", tmp_path / "d")
    with pytest.raises(RuntimeError, match="not configured"):
        get_storage_service()


def test_nothing_is_created_at_import(tmp_path: Path) -> None:
    code = (
        "import bot.services.storage as s, pathlib\n"
        "assert s._Registry.instance is None\n"
        "try:\n    s.get_storage_service()\nexcept RuntimeError:\n    pass\n"
        "else:\n    raise SystemExit('singleton exists after import')\n"
        "assert not any(pathlib.Path('.').iterdir()), 'files created at import'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()


# ---------------------------------------------------------------------------------------------
# Legacy shim
# ---------------------------------------------------------------------------------------------


async def test_legacy_shim_warns_logs_once_and_shares_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(storage_mod._Registry, "legacy_logged", False)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    service = configure_storage(tmp_path / "d", tmp_path / "b", 3)
    await service.load()
    with pytest.warns(DeprecationWarning, match=r"^Direct StorageService") as record:
        legacy_a = StorageService(tmp_path / "d", tmp_path / "b", 3)
        legacy_b = StorageService(str(tmp_path / "d"), str(tmp_path / "b"))
    assert sum(issubclass(w.category, DeprecationWarning) for w in record) == 2
    logged = [r for r in caplog.records if "Direct StorageService" in r.getMessage()]
    assert len(logged) == 1

    await legacy_a.ensure_channel(7, "group", "from legacy")
    await service.increment("hits", chat_id=7)
    await legacy_b.increment("hits", chat_id=7)
    got = await service.get_channel(7)
    assert got is not None and got.title == "from legacy"
    assert (await legacy_a.get_counters())["chats"] == {"7": {"hits": 2}}
    seen: list[float] = []
    legacy_b.write_observer = seen.append
    assert service.write_observer is legacy_b.write_observer
    await service.increment("hits")
    assert seen and legacy_a.write_count == service.write_count
    await legacy_a.close()  # closes the shared core
    with pytest.raises(StorageError, match="closed"):
        await service.increment("hits")


async def test_legacy_shim_configures_singleton_when_missing(tmp_path: Path) -> None:
    with pytest.warns(DeprecationWarning, match=r"^Direct StorageService"):
        legacy = StorageService(tmp_path / "d", tmp_path / "b", 4)
    await legacy.load()
    singleton = get_storage_service()
    await singleton.increment("n", by=5)
    assert (await legacy.get_counters())["global"] == {"n": 5}
    assert singleton.data_dir == legacy.data_dir == tmp_path / "d"
    await singleton.close()


def test_legacy_shim_with_other_dirs_raises(tmp_path: Path) -> None:
    configure_storage(tmp_path / "d", tmp_path / "b")
    with (
        pytest.raises(RuntimeError, match="already configured"),
        pytest.warns(DeprecationWarning, match=r"^Direct StorageService"),
    ):
        StorageService(tmp_path / "elsewhere", tmp_path / "b")


# ---------------------------------------------------------------------------------------------
# Concurrency and group commit
# ---------------------------------------------------------------------------------------------


async def test_concurrent_mutations_via_singleton_and_legacy_are_exact_and_grouped(
    storage: StorageService,
) -> None:
    with pytest.warns(DeprecationWarning, match=r"^Direct StorageService"):
        legacy = StorageService(storage.data_dir, storage.backup_dir, 3)
    writes_before = storage.write_count
    feed = "https://example.com/rss"

    def bump_failures(state: FeedState) -> int:
        state.failures += 1
        return state.failures

    coros: list[Any] = []
    for i in range(60):
        coros.append(storage.increment("hits", chat_id=1 + i % 2))
        coros.append(legacy.increment("hits", chat_id=3, by=2))
    for i in range(20):
        target = storage if i % 2 else legacy
        coros.append(target.update_feed_state(feed, bump_failures))
        coros.append(target.ensure_channel(100 + i, "group", f"chat {i}"))
    await asyncio.gather(*coros)
    mutations = len(coros)
    assert mutations >= 160

    expected = {
        "global": {"hits": 60 + 120},
        "chats": {"1": {"hits": 30}, "2": {"hits": 30}, "3": {"hits": 120}},
    }
    assert await storage.get_counters() == expected
    assert await legacy.get_counters() == expected
    state = await storage.get_feed_state(feed)
    assert state is not None and state.failures == 20
    assert sorted(c.chat_id for c in await legacy.list_channels()) == list(range(100, 120))

    counters = read_json(storage.data_dir / "counters.json")
    assert counters["schema_version"] == 1
    assert {"global": counters["global"], "chats": counters["chats"]} == expected
    feeds = read_json(storage.data_dir / "feeds.json")["feeds"]
    assert [(f["url"], f["failures"]) for f in feeds] == [(feed, 20)]
    channels = read_json(storage.data_dir / "channels.json")["channels"]
    assert sorted(c["chat_id"] for c in channels) == list(range(100, 120))

    writes = storage.write_count - writes_before
    assert 1 <= writes < mutations


async def test_concurrent_update_channel_appends_lose_nothing(storage: StorageService) -> None:
    await storage.ensure_channel(-100, "supergroup", "news")

    def appender(url: str) -> Any:
        def add(channel: Channel) -> int:
            channel.feeds.append(url)
            return len(channel.feeds)

        return add

    urls = [f"https://example.com/{i}.xml" for i in range(120)]
    lengths = await asyncio.gather(*(storage.update_channel(-100, appender(u)) for u in urls))
    assert sorted(lengths) == list(range(1, 121))
    channel = await storage.get_channel(-100)
    assert channel is not None and sorted(channel.feeds) == sorted(urls)
    on_disk = read_json(storage.data_dir / "channels.json")["channels"]
    assert sorted(on_disk[0]["feeds"]) == sorted(urls)


async def test_each_caller_is_released_only_when_its_change_is_on_disk(
    storage: StorageService,
) -> None:
    path = storage.data_dir / "counters.json"

    async def bump_and_check() -> tuple[int, int]:
        value = await storage.increment("n")
        return value, read_json(path)["global"]["n"]

    results = await asyncio.gather(*(bump_and_check() for _ in range(50)))
    assert sorted(v for v, _ in results) == list(range(1, 51))
    assert all(on_disk >= value for value, on_disk in results)


async def test_write_observer_gets_durations_and_its_errors_are_swallowed(
    storage: StorageService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger=LOGGER)
    durations: list[float] = []
    storage.write_observer = durations.append
    before = storage.write_count
    await storage.increment("a")
    await storage.ensure_channel(1, "private", "")
    assert len(durations) == storage.write_count - before == 2
    assert all(isinstance(d, float) and d >= 0 for d in durations)

    def broken(_: float) -> None:
        raise ZeroDivisionError("observer bug")

    storage.write_observer = broken
    assert await storage.increment("a") == 2
    assert any("write_observer" in r.getMessage() and r.exc_info for r in caplog.records)
    assert read_json(storage.data_dir / "counters.json")["global"]["a"] == 2


# ---------------------------------------------------------------------------------------------
# Write failures
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("failing", ["fsync", "replace"])
async def test_write_failure_reaches_every_covered_caller_and_leaves_primary_intact(
    storage: StorageService, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    await storage.increment("n", chat_id=5)
    primary = storage.data_dir / "counters.json"
    before = primary.read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EIO, f"injected {failing} failure")

    monkeypatch.setattr(storage_mod.os, failing, boom)
    results = await asyncio.gather(
        *(storage.increment("n", chat_id=5) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, OSError) and "injected" in str(r) for r in results), results
    assert primary.read_bytes() == before
    assert temp_files(storage.data_dir) == []
    # The changes stay in memory ...
    assert (await storage.get_counters())["global"]["n"] == 6
    with pytest.raises(OSError, match="injected"):
        await storage.flush()
    assert primary.read_bytes() == before

    # ... and the next write retries them.
    monkeypatch.undo()
    await storage.flush()
    assert read_json(primary)["global"]["n"] == 6
    assert read_json(primary)["chats"]["5"]["n"] == 6
    assert temp_files(storage.data_dir) == []


async def test_failed_write_is_retried_by_the_next_mutation(
    storage: StorageService, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object) -> None:
        raise OSError(errno.ENOSPC, "disk full")

    monkeypatch.setattr(storage_mod.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        await storage.ensure_channel(9, "group", "kept in memory")
    monkeypatch.undo()
    await storage.increment("other")  # touches counters.json only, but channels is still dirty
    channels = read_json(storage.data_dir / "channels.json")["channels"]
    assert [c["chat_id"] for c in channels] == [9]


async def test_cancelled_writer_task_does_not_wedge_later_writes(storage: StorageService) -> None:
    waiter = asyncio.ensure_future(storage.increment("n"))
    await asyncio.sleep(0)  # change in memory, writer task queued
    writers = [t for t in asyncio.all_tasks() if t.get_name() == "storage-group-commit"]
    assert len(writers) == 1
    writers[0].cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert await storage.increment("n") == 2  # a fresh batch writes both changes
    assert read_json(storage.data_dir / "counters.json")["global"] == {"n": 2}


# ---------------------------------------------------------------------------------------------
# API semantics
# ---------------------------------------------------------------------------------------------


async def test_use_before_load_and_after_close_is_refused(tmp_path: Path) -> None:
    service = configure_storage(tmp_path / "d", tmp_path / "b")
    with pytest.raises(StorageError, match="load"):
        await service.increment("x")
    with pytest.raises(StorageError, match="load"):
        await service.get_counters()
    with pytest.raises(StorageError, match="load"):
        await service.backup("early")
    assert not (tmp_path / "d").exists()
    await service.load()
    await service.load()  # idempotent
    await service.increment("x")
    await service.close()
    await service.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        await service.increment("x")
    with pytest.raises(StorageError, match="closed"):
        await service.load()
    assert read_json(tmp_path / "d" / "counters.json")["global"] == {"x": 1}


async def test_close_waits_for_pending_writes(storage: StorageService) -> None:
    task = asyncio.ensure_future(storage.increment("late"))
    await asyncio.sleep(0)  # the change is in memory, its write is pending
    await storage.close()
    assert task.done() and task.result() == 1
    assert read_json(storage.data_dir / "counters.json")["global"] == {"late": 1}


async def test_ensure_channel_creates_reactivates_and_skips_needless_writes(
    storage: StorageService,
) -> None:
    created = await storage.ensure_channel(1, "group", "Old")
    assert (created.chat_id, created.type, created.title, created.active) == (
        1,
        "group",
        "Old",
        True,
    )
    writes = storage.write_count
    assert (await storage.ensure_channel(1, "group", "")).title == "Old"
    assert storage.write_count == writes  # nothing changed: no write

    await storage.update_channel(1, lambda c: setattr(c, "active", False))
    again = await storage.ensure_channel(1, "supergroup", "New")
    assert (again.type, again.title, again.active) == ("supergroup", "New", True)
    on_disk = read_json(storage.data_dir / "channels.json")["channels"]
    assert on_disk == [again.to_dict()]


async def test_getters_return_copies(storage: StorageService) -> None:
    await storage.ensure_channel(1, "private", "me")
    await storage.increment("n", chat_id=1)
    await storage.update_feed_state("u", lambda s: setattr(s, "title", "T"))

    channel = await storage.get_channel(1)
    assert channel is not None
    channel.feeds.append("sneaky")
    channel.digest.mode = "every"
    (await storage.list_channels())[0].title = "sneaky"
    counters = await storage.get_counters()
    counters["global"]["n"] = 99
    counters["chats"]["1"]["n"] = 99
    feed = await storage.get_feed_state("u")
    assert feed is not None
    feed.title = "sneaky"
    leaked = await storage.update_channel(1, lambda c: c)
    leaked.feeds.append("sneaky")

    fresh = await storage.get_channel(1)
    assert fresh == Channel(chat_id=1, type="private", title="me")
    assert await storage.get_counters() == {"global": {"n": 1}, "chats": {"1": {"n": 1}}}
    assert await storage.get_feed_state("u") == FeedState(url="u", title="T")


async def test_update_channel_errors_leave_state_untouched(storage: StorageService) -> None:
    with pytest.raises(KeyError):
        await storage.update_channel(404, lambda c: None)

    await storage.ensure_channel(1, "group", "g")

    def half_done(channel: Channel) -> None:
        channel.feeds.append("https://half.example/")
        raise LookupError("fn failed midway")

    with pytest.raises(LookupError):
        await storage.update_channel(1, half_done)
    with pytest.raises(ValueError, match="chat_id"):
        await storage.update_channel(1, lambda c: setattr(c, "chat_id", 2))
    assert await storage.get_channel(1) == Channel(chat_id=1, type="group", title="g")

    def add_x(channel: Channel) -> str:
        channel.feeds.append("x")
        return "done"

    assert await storage.update_channel(1, add_x) == "done"
    assert read_json(storage.data_dir / "channels.json")["channels"][0]["feeds"] == ["x"]


async def test_list_channels_active_only(storage: StorageService) -> None:
    for chat_id in (1, 2, 3):
        await storage.ensure_channel(chat_id, "group", str(chat_id))
    await storage.update_channel(2, lambda c: setattr(c, "active", False))
    assert [c.chat_id for c in await storage.list_channels()] == [1, 2, 3]
    assert [c.chat_id for c in await storage.list_channels(active_only=True)] == [1, 3]


async def test_delete_channel(storage: StorageService) -> None:
    await storage.ensure_channel(1, "group", "g")
    await storage.increment("n", chat_id=1)
    assert await storage.delete_channel(1) is True
    assert await storage.delete_channel(1) is False
    assert await storage.get_channel(1) is None
    assert await storage.get_counters() == {"global": {"n": 1}, "chats": {}}
    assert read_json(storage.data_dir / "channels.json")["channels"] == []
    assert read_json(storage.data_dir / "counters.json")["chats"] == {}


async def test_migrate_channel_moves_channel_and_counters(storage: StorageService) -> None:
    await storage.ensure_channel(-1, "group", "g")
    await storage.update_channel(-1, lambda c: c.feeds.append("https://a/"))
    await storage.increment("news_requests", chat_id=-1, by=3)
    assert await storage.migrate_channel(-1, -1001) is True
    assert await storage.get_channel(-1) is None
    moved = await storage.get_channel(-1001)
    assert moved is not None and moved.chat_id == -1001 and moved.feeds == ["https://a/"]
    assert (await storage.get_counters())["chats"] == {"-1001": {"news_requests": 3}}
    assert [c["chat_id"] for c in read_json(storage.data_dir / "channels.json")["channels"]] == [
        -1001
    ]
    assert read_json(storage.data_dir / "counters.json")["chats"] == {"-1001": {"news_requests": 3}}
    assert await storage.migrate_channel(-1, -1002) is False
    assert await storage.migrate_channel(-1001, -1001) is False


async def test_migrate_channel_merges_into_existing(storage: StorageService) -> None:
    await storage.ensure_channel(-1, "group", "old")

    def setup_old(c: Channel) -> None:
        c.feeds[:] = ["https://a/", "https://b/"]
        c.digest = DigestSchedule(mode="every", interval_s=3600)
        c.seen[:] = ["i1", "i2"]

    await storage.update_channel(-1, setup_old)
    await storage.increment("n", chat_id=-1, by=2)
    await storage.ensure_channel(-1001, "supergroup", "new")
    await storage.update_channel(-1001, lambda c: c.feeds.append("https://b/"))
    await storage.increment("n", chat_id=-1001)
    assert await storage.migrate_channel(-1, -1001) is True
    merged = await storage.get_channel(-1001)
    assert merged is not None
    assert merged.feeds == ["https://b/", "https://a/"]
    assert merged.digest == DigestSchedule(mode="every", interval_s=3600)
    assert (merged.title, merged.type, merged.seen) == ("new", "supergroup", ["i1", "i2"])
    assert (await storage.get_counters())["chats"] == {"-1001": {"n": 3}}
    assert [c.chat_id for c in await storage.list_channels()] == [-1001]


async def test_increment_validates_and_returns_global_value(storage: StorageService) -> None:
    assert await storage.increment("a") == 1
    assert await storage.increment("a", chat_id=3, by=4) == 5
    with pytest.raises(ValueError, match="name"):
        await storage.increment("")


async def test_update_feed_state_creates_and_is_atomic(storage: StorageService) -> None:
    assert await storage.get_feed_state("https://f/") is None

    def fail(state: FeedState) -> None:
        state.failures = 9
        raise RuntimeError("nope")

    with pytest.raises(RuntimeError):
        await storage.update_feed_state("https://f/", fail)
    assert await storage.get_feed_state("https://f/") is None
    with pytest.raises(ValueError, match="url"):
        await storage.update_feed_state("https://f/", lambda s: setattr(s, "url", "x"))

    def set_etag(state: FeedState) -> str | None:
        state.etag = '"v1"'
        return state.etag

    assert await storage.update_feed_state("https://f/", set_etag) == '"v1"'
    assert await storage.get_feed_state("https://f/") == FeedState(url="https://f/", etag='"v1"')
    feeds = read_json(storage.data_dir / "feeds.json")["feeds"]
    assert feeds == [FeedState(url="https://f/", etag='"v1"').to_dict()]


async def test_state_survives_reload(tmp_path: Path) -> None:
    service = configure_storage(tmp_path / "d", tmp_path / "b")
    await service.load()
    await service.ensure_channel(5, "channel", "c")
    await service.update_channel(5, lambda c: c.remember_sent(["a", "b"]))
    await service.increment("n", chat_id=5)
    await service.update_feed_state("https://f/", lambda s: setattr(s, "paused", True))
    await service.close()
    reset_storage_service()

    again = configure_storage(tmp_path / "d", tmp_path / "b")
    await again.load()
    channel = await again.get_channel(5)
    assert channel is not None and channel.seen == ["a", "b"] and channel.type == "channel"
    assert await again.get_counters() == {"global": {"n": 1}, "chats": {"5": {"n": 1}}}
    feed = await again.get_feed_state("https://f/")
    assert feed is not None and feed.paused
    await again.close()


# ---------------------------------------------------------------------------------------------
# Corrupt files and backups
# ---------------------------------------------------------------------------------------------

VALID_OLD = channels_doc(Channel(chat_id=1, title="oldest"))
VALID_NEW = channels_doc(Channel(chat_id=2, title="newest valid"))


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(channels_doc(Channel(chat_id=3))[:25], id="truncated"),
        pytest.param(b"\x00\xff\xfe garbage \x80", id="garbage"),
        pytest.param(b'{"schema_version": 1, "channels": "nope"}', id="wrong-shape"),
        pytest.param(b'{"schema_version": 1, "channels": [{"title": "x"}]}', id="no-chat-id"),
        pytest.param(b"[1, 2, 3]", id="not-an-object"),
        pytest.param(b'{"channels": []}', id="no-version"),
    ],
)
async def test_corrupt_primary_is_moved_aside_and_newest_valid_backup_restored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, corrupt: bytes
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    data, backups = tmp_path / "d", tmp_path / "b"
    write_file(data / "channels.json", corrupt)
    write_file(data / "counters.json", b'{"schema_version": 1, "global": {"n": 4}, "chats": {}}')
    write_file(backups / "channels-20240101T000000000000Z.json", VALID_OLD)
    newest_valid = backups / "channels-20240102T000000000000Z.json"
    write_file(newest_valid, VALID_NEW)
    newer_corrupt = backups / "channels-20240103T000000000000Z.json"
    write_file(newer_corrupt, b'{"schema_version": 1, "chann')
    service = configure_storage(data, backups, 10)
    await service.load()

    assert [c.title for c in await service.list_channels()] == ["newest valid"]
    assert (await service.get_counters())["global"] == {"n": 4}  # other files unaffected
    assert (data / "channels.json").read_bytes() == VALID_NEW
    aside = list(data.glob("channels.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == corrupt
    assert mode_of(aside[0]) == 0o600
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(aside[0].name in m and newest_valid.name in m for m in errors), errors
    assert any(
        newer_corrupt.name in r.getMessage() and r.levelno == logging.WARNING
        for r in caplog.records
    )
    await service.close()


async def test_corrupt_primary_without_valid_backup_starts_empty_with_critical_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    data, backups = tmp_path / "d", tmp_path / "b"
    write_file(data / "feeds.json", b'{"schema_version": 1, "feeds": [')
    write_file(backups / "feeds-20240101T000000000000Z.json", b"not json")
    service = configure_storage(data, backups)
    await service.load()

    assert await service.get_feed_state("https://f/") is None
    aside = list(data.glob("feeds.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == b'{"schema_version": 1, "feeds": ['
    critical = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1 and aside[0].name in critical[0] and "EMPTY" in critical[0]
    assert not (data / "feeds.json").exists()

    await service.update_feed_state("https://f/", lambda s: None)
    assert aside[0].exists()  # never cleaned up automatically: the operator decides
    assert read_json(data / "feeds.json")["feeds"][0]["url"] == "https://f/"
    await service.close()


async def test_backup_rotation_keeps_newest_per_file(storage: StorageService) -> None:
    await storage.ensure_channel(1, "group", "g")
    await storage.update_feed_state("https://f/", lambda s: None)
    written: list[list[Path]] = []
    for _ in range(6):
        await storage.increment("n")
        written.append(await storage.backup("test"))
    assert all(len(paths) == 3 for paths in written)
    assert len({p for paths in written for p in paths}) == 18  # unique even within one second

    for name in ("channels", "counters", "feeds"):
        kept = sorted(storage.backup_dir.glob(f"{name}-*.json"))
        assert len(kept) == 3
        assert kept == sorted(p for paths in written[-3:] for p in paths if p.name.startswith(name))
        for path in kept:
            assert read_json(path)["schema_version"] == 1
            assert mode_of(path) == 0o600
    counter_values = [
        read_json(p)["global"]["n"] for p in sorted(storage.backup_dir.glob("counters-*.json"))
    ]
    assert counter_values == [4, 5, 6]
    assert temp_files(storage.backup_dir) == []


async def test_load_takes_startup_backup_of_valid_primaries(tmp_path: Path) -> None:
    data, backups = tmp_path / "d", tmp_path / "b"
    counters = b'{"schema_version": 1, "global": {"n": 7}, "chats": {}}'
    write_file(data / "counters.json", counters)
    service = configure_storage(data, backups)
    await service.load()
    copies = list(backups.glob("counters-*.json"))
    assert len(copies) == 1 and copies[0].read_bytes() == counters
    assert list(backups.glob("channels-*")) == []  # nothing to copy for missing files
    await service.close()


# ---------------------------------------------------------------------------------------------
# Permissions, temp files, schema versions
# ---------------------------------------------------------------------------------------------


async def test_modes_are_strict_even_under_permissive_umask(tmp_path: Path) -> None:
    old_umask = os.umask(0)
    try:
        service = configure_storage(tmp_path / "x" / "data", tmp_path / "x" / "backups")
        await service.load()
        await service.ensure_channel(1, "group", "g")
        await service.increment("n")
        await service.update_feed_state("https://f/", lambda s: None)
        paths = await service.backup("modes")
        await service.close()
    finally:
        os.umask(old_umask)
    assert mode_of(service.data_dir) == 0o700
    assert mode_of(service.backup_dir) == 0o700
    primaries = sorted(service.data_dir.iterdir())
    assert [p.name for p in primaries] == ["channels.json", "counters.json", "feeds.json"]
    assert len(paths) == 3
    for path in [*primaries, *service.backup_dir.iterdir()]:
        assert mode_of(path) == 0o600, path


async def test_loose_existing_modes_are_tightened_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    data, backups = tmp_path / "d", tmp_path / "b"
    write_file(data / "counters.json", b'{"schema_version": 1, "global": {}, "chats": {}}', 0o644)
    old_backup = backups / "counters-20240101T000000000000Z.json"
    write_file(old_backup, b'{"schema_version": 1, "global": {}, "chats": {}}', 0o644)
    os.chmod(data, 0o755)  # noqa: S103 - the loose mode under test
    os.chmod(backups, 0o755)  # noqa: S103 - the loose mode under test
    service = configure_storage(data, backups)
    await service.load()
    assert mode_of(data) == mode_of(backups) == 0o700
    assert mode_of(data / "counters.json") == mode_of(old_backup) == 0o600
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    for path in (data, backups, data / "counters.json", old_backup):
        assert f"{path} from" in warned, path
    await service.close()


async def test_stale_temp_files_are_removed_at_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    data, backups = tmp_path / "d", tmp_path / "b"
    write_file(data / ".channels.json.tmp-deadbeef", b'{"schema_version": 1, "chan')
    write_file(backups / ".feeds-20240101T000000000000Z.json.tmp-1234", b"")
    service = configure_storage(data, backups)
    await service.load()
    assert temp_files(data, backups) == []
    assert sum("stale temp file" in r.getMessage() for r in caplog.records) == 2
    await service.close()


@pytest.mark.parametrize("version", [2, 0])
async def test_unknown_schema_version_refuses_to_start_and_changes_nothing(
    tmp_path: Path, version: int
) -> None:
    data, backups = tmp_path / "d", tmp_path / "b"
    future = json.dumps({"schema_version": version, "chats_v2": {"1": {}}}).encode()
    write_file(data / "channels.json", future)
    write_file(data / "counters.json", b"{corrupt")  # must not be moved aside either
    service = configure_storage(data, backups)
    with pytest.raises(SchemaVersionError, match=f"schema_version {version}"):
        await service.load()
    assert (data / "channels.json").read_bytes() == future
    assert (data / "counters.json").read_bytes() == b"{corrupt"
    assert sorted(p.name for p in data.iterdir()) == ["channels.json", "counters.json"]
    assert list(backups.iterdir()) == []
    with pytest.raises(StorageError, match="load"):
        await service.increment("n")


async def test_migration_hook_backs_up_then_upgrades(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, backups = tmp_path / "d", tmp_path / "b"
    v1_counters = b'{"schema_version": 1, "global": {"n": 2}, "chats": {}}'
    write_file(data / "counters.json", v1_counters)
    write_file(data / "channels.json", channels_doc(Channel(chat_id=4, title="t")))
    calls: list[str] = []

    def v1_to_v2(name: str, doc: dict[str, Any]) -> dict[str, Any]:
        calls.append(name)
        if name == "counters":
            doc["global"] = {k: v * 10 for k, v in doc["global"].items()}
        return doc

    monkeypatch.setattr(storage_mod, "SCHEMA_VERSION", 2)
    monkeypatch.setattr(storage_mod, "_MIGRATIONS", {1: v1_to_v2})
    service = configure_storage(data, backups)
    await service.load()
    assert (await service.get_counters())["global"] == {"n": 20}
    assert read_json(data / "counters.json")["schema_version"] == 2
    assert read_json(data / "counters.json")["global"] == {"n": 20}
    assert set(calls) == {"channels", "counters"}  # migrations are pure: may run more than once
    backed_up = [p.read_bytes() for p in sorted(backups.glob("counters-*.json"))]
    assert backed_up[0] == v1_counters  # pre-migration copy, taken first
    assert (
        read_json(backups / sorted(p.name for p in backups.glob("counters-*"))[-1])[
            "schema_version"
        ]
        == 2
    )
    await service.close()
