"""StorageService: durability classes, group commit, failures, compaction, backups, files.

"Crash" here means: copy the directories as they are while the service is still open (nothing
flushed, nothing closed) and load a second service from the copy (``load_copy``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

import bot.storage.commit as commit_module
from bot.models import Chat, Delivery, FeedState
from bot.storage import (
    SchemaVersionError,
    StorageError,
    StorageService,
    configure_storage,
    get_storage_service,
    journal,
    reset_storage_service,
)
from bot.storage.journal import SNAPSHOT_NAME, decode_snapshot, list_segments, segment_path
from bot.storage.state import KNOWN_MAX, LOG_MAX
from tests.helpers.bot_runner import eventually
from tests.helpers.storage_data import feed_state, items, load_copy, observable

U = "https://example.com/u.xml"
V = "https://example.com/v.xml"
W = "https://example.com/w.xml"
Factory = Callable[..., Awaitable[StorageService]]


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Factory]:
    """Build loaded services on tmp_path/<name> (default: thread compaction); closed after."""
    made: list[StorageService] = []

    async def factory(name: str = "s", *, load: bool = True, **options: Any) -> StorageService:
        options.setdefault("compact_in_process", False)
        keep = options.pop("backup_keep", 3)
        service = StorageService(
            tmp_path / name / "data", tmp_path / name / "backups", keep, **options
        )
        made.append(service)
        if load:
            await service.load()
        return service

    yield factory
    for service in made:
        with contextlib.suppress(Exception):
            await service.close()


@pytest.fixture
def copies(tmp_path: Path) -> Iterator[Callable[[StorageService], Awaitable[StorageService]]]:
    """``await crash(service)``: a service loaded from a copy of what is on disk right now."""
    opened: list[StorageService] = []

    async def crash(service: StorageService) -> StorageService:
        other = await load_copy(service, tmp_path / f"copy{len(opened)}")
        opened.append(other)
        return other

    yield crash
    for other in opened:
        other.closed = True  # read-only use; nothing to flush


def fs(service: StorageService, url: str) -> FeedState:
    state = service.feed_state(url)
    assert state is not None
    return state


def chat_of(service: StorageService, chat_id: int) -> Chat:
    chat = service.chat(chat_id)
    assert chat is not None
    return chat


def journal_bytes(service: StorageService) -> int:
    return sum(
        segment_path(service.data_dir, n).stat().st_size for n in list_segments(service.data_dir)
    )


def snapshot_segment(service: StorageService) -> int:
    return decode_snapshot((service.data_dir / SNAPSHOT_NAME).read_bytes())[1]


async def followed(storage: StorageService, *chat_ids: int, url: str = U) -> None:
    """Chats following ``url``, whose feed has logged i1..i3 as its baseline."""
    for chat_id in chat_ids:
        await storage.ensure_chat(chat_id, "private", f"chat {chat_id}")
        await storage.subscribe(chat_id, url, limit=50)
    await storage.record_fetch(url, items("i3", "i2", "i1", url=url), feed_state(url, title="F"))


# ============================================================================ singleton
def test_get_before_configure_raises_a_clear_error() -> None:
    reset_storage_service()
    with pytest.raises(RuntimeError, match="configure_storage"):
        get_storage_service()


async def test_configure_returns_one_instance_and_refuses_other_dirs(tmp_path: Path) -> None:
    reset_storage_service()
    try:
        first = configure_storage(tmp_path / "d", tmp_path / "b")
        assert configure_storage(tmp_path / "d", tmp_path / "b") is first
        assert get_storage_service() is first
        with pytest.raises(RuntimeError, match="already configured"):
            configure_storage(tmp_path / "other", tmp_path / "b")
        await first.close()
        second = configure_storage(tmp_path / "other", tmp_path / "b")  # a closed one is replaced
        assert second is not first
        assert get_storage_service() is second
    finally:
        reset_storage_service()


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="backup_keep"):
        StorageService(tmp_path / "d", tmp_path / "b", 0)
    with pytest.raises(ValueError, match="differ"):
        StorageService(tmp_path / "d", tmp_path / "d")


async def test_use_before_load_and_after_close_is_refused(make: Factory) -> None:
    service = await make(load=False)
    with pytest.raises(StorageError, match="before load"):
        await service.ensure_chat(1, "private", "x")
    await service.load()
    await service.load()  # a second load is a no-op
    await service.ensure_chat(1, "private", "x")
    await service.close()
    await service.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        await service.ensure_chat(2, "private", "y")
    with pytest.raises(StorageError, match="closed"):
        await service.flush()


# ============================================================================ durability
async def _op_ensure(s: StorageService) -> None:
    await s.ensure_chat(9, "group", "new")


async def _op_update(s: StorageService) -> None:
    await s.update_chat(1, lambda c: setattr(c, "delivery", Delivery("every", interval_s=60)))


async def _op_next_digest(s: StorageService) -> None:
    await s.set_next_digest(1, 1.8e9)


async def _op_subscribe(s: StorageService) -> None:
    assert await s.subscribe(1, V, limit=50) == "added"


async def _op_unsubscribe(s: StorageService) -> None:
    assert await s.unsubscribe(2, U)


async def _op_advance(s: StorageService) -> None:
    await s.record_fetch(U, items("i5", "i4", "i3", "i2", "i1"), feed_state(U))
    await s.advance(1, {U: 4})


async def _op_deactivate(s: StorageService) -> None:
    assert await s.deactivate_chat(2)


async def _op_empty_first_fetch(s: StorageService) -> None:
    assert await s.record_fetch(W, [], feed_state(W, fetched_once=True)) == []


async def _op_migrate(s: StorageService) -> None:
    assert await s.migrate_chat(2, -1002)


DURABLE: dict[str, tuple[Callable[[StorageService], Awaitable[None]], Callable[..., bool]]] = {
    "ensure_chat": (_op_ensure, lambda s: s.chat(9) is not None),
    "update_chat": (_op_update, lambda s: s.chat(1).delivery.mode == "every"),
    "set_next_digest": (_op_next_digest, lambda s: s.chat(1).next_digest_at == 1.8e9),
    "subscribe": (_op_subscribe, lambda s: s.feed_urls(1) == [U, V]),
    "unsubscribe": (_op_unsubscribe, lambda s: s.feed_urls(2) == []),
    "record_fetch+advance": (
        _op_advance,
        lambda s: [b.entries[0].seq for b in s.pending(1)] == [5] and s.feed_head(U) == 5,
    ),
    "deactivate_chat": (_op_deactivate, lambda s: not s.chat(2).active),
    "record_fetch of an empty feed's first success": (
        _op_empty_first_fetch,
        lambda s: s.feed_state(W) is not None and s.feed_state(W).fetched_once,
    ),
    "migrate_chat": (_op_migrate, lambda s: s.feed_urls(-1002) == [U] and s.chat(2) is None),
}


@pytest.mark.parametrize("name", sorted(DURABLE))
async def test_durable_change_is_on_disk_when_the_call_returns(
    storage: StorageService, copies: Callable[..., Awaitable[StorageService]], name: str
) -> None:
    await followed(storage, 1, 2)
    op, effect = DURABLE[name]
    before = await copies(storage)
    assert not effect(before)
    await op(storage)
    assert effect(storage)
    after = await copies(storage)  # no flush, no close: what a crash right now leaves
    assert effect(after)
    assert observable(after) == observable(storage)


async def test_deferred_changes_apply_at_once_and_reach_disk_within_defer_s(
    storage: StorageService,
    copies: Callable[..., Awaitable[StorageService]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await followed(storage, 1)
    monkeypatch.setattr(commit_module, "DEFER_S", 0.2)
    writes = storage.write_count
    storage.count("news_requests", chat_id=1)
    storage.count("news_requests", chat_id=1, by=2)
    storage.set_feed_state(feed_state(U, title="F", etag='"v2"', failures=1))
    # Visible at once, nothing written yet: the caller never waited for a disk.
    assert storage.counters()["global"]["news_requests"] == 3
    assert storage.counters()["chats"]["1"]["news_requests"] == 3
    assert fs(storage, U).etag == '"v2"'
    assert storage.write_count == writes
    early = await copies(storage)
    assert "news_requests" not in early.counters()["global"]
    assert fs(early, U).etag is None

    async def written() -> bool:
        return storage.write_count > writes

    await eventually(written, timeout=5, what="the deferred flush")
    assert storage.write_count == writes + 1  # counters and feed state share one write
    late = await copies(storage)
    assert late.counters() == storage.counters()
    assert late.feed_state(U) == storage.feed_state(U)


async def test_deferred_changes_are_flushed_by_close(make: Factory) -> None:
    service = await make()
    await service.ensure_chat(1, "private", "x")
    await service.subscribe(1, U, limit=5)
    service.count("news_requests", chat_id=1)
    service.set_feed_state(feed_state(U, etag='"e"'))
    await service.close()
    again = await make()
    assert again.counters() == {
        "global": {"news_requests": 1},
        "chats": {"1": {"news_requests": 1}},
    }
    assert fs(again, U).etag == '"e"'


async def test_counting_never_waits_for_the_disk(
    storage: StorageService, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not inspect.iscoroutinefunction(StorageService.count)
    await followed(storage, 1)
    gate = asyncio.Event()
    real_write = storage._commit.writer.write

    async def stuck_write(data: bytes) -> None:
        await gate.wait()
        await real_write(data)

    monkeypatch.setattr(storage._commit.writer, "write", stuck_write)
    writes = storage.write_count
    advancing = asyncio.create_task(storage.advance(1, {U: 3}))
    await asyncio.sleep(0.05)
    assert not advancing.done()  # the disk is "stuck"
    for _ in range(100):
        storage.count("news_requests", chat_id=1)  # returns while the disk is stuck
    assert storage.counters()["global"]["news_requests"] == 100
    assert storage.write_count == writes
    gate.set()
    await advancing
    await storage.flush()
    assert storage.write_count > writes


async def test_count_rejects_an_empty_name(storage: StorageService) -> None:
    with pytest.raises(ValueError, match="empty"):
        storage.count("")


# ============================================================================ group commit
async def test_concurrent_advances_share_fsyncs(
    storage: StorageService, copies: Callable[..., Awaitable[StorageService]]
) -> None:
    chats = list(range(1, 61))
    await asyncio.gather(*(storage.ensure_chat(c, "private", "x") for c in chats))
    await asyncio.gather(*(storage.subscribe(c, U, limit=5) for c in chats))
    await storage.record_fetch(U, items("i2", "i1"), feed_state(U))
    await storage.record_fetch(U, items("i4", "i3", "i2", "i1"), feed_state(U))
    writes = storage.write_count
    await asyncio.gather(*(storage.advance(c, {U: 3 + c % 2}) for c in chats))
    assert storage.write_count - writes <= 2  # not one fsync per caller
    crash = await copies(storage)
    assert {c: crash.subscriptions(c)[0].cursor for c in chats} == {c: 3 + c % 2 for c in chats}


async def test_advance_with_nothing_writes_nothing(storage: StorageService) -> None:
    await followed(storage, 1)
    writes = storage.write_count
    await storage.advance(1, {})
    assert storage.write_count == writes


async def test_write_observer_gets_durations_and_its_errors_are_logged(
    storage: StorageService, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[float] = []
    storage.write_observer = seen.append
    await storage.ensure_chat(1, "private", "x")
    assert len(seen) == 1 and seen[0] >= 0

    def broken(_: float) -> None:
        raise RuntimeError("observer bug")

    storage.write_observer = broken
    with caplog.at_level(logging.ERROR, logger="bot.storage.commit"):
        await storage.ensure_chat(2, "private", "y")  # still succeeds
    assert "write observer failed" in caplog.text
    assert storage.chat(2) is not None


# ============================================================================ failed writes
async def test_failed_write_raises_to_every_covered_caller_and_is_retried(
    storage: StorageService,
    copies: Callable[..., Awaitable[StorageService]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chats = [1, 2, 3, 4, 5]
    for c in chats:
        await storage.ensure_chat(c, "private", "x")
        await storage.subscribe(c, U, limit=5)
    await storage.record_fetch(U, items("i1"), feed_state(U))
    await storage.record_fetch(U, items("i3", "i2", "i1"), feed_state(U))
    real_write = storage._commit.writer.write
    calls = 0

    async def fail_once(data: bytes) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError(28, "No space left on device")
        await real_write(data)

    monkeypatch.setattr(storage._commit.writer, "write", fail_once)
    results = await asyncio.gather(
        *(storage.advance(c, {U: 3}) for c in chats), return_exceptions=True
    )
    assert all(isinstance(r, OSError) for r in results), results
    assert calls == 1  # one shared write failed for all of them
    assert [storage.subscriptions(c)[0].cursor for c in chats] == [3] * 5  # kept in memory
    assert [s.subscriptions(1)[0].cursor for s in [await copies(storage)]] == [1]
    await storage.subscribe(1, V, limit=5)  # the next durable write carries them along
    crash = await copies(storage)
    assert [crash.subscriptions(c)[0].cursor for c in chats] == [3] * 5
    assert crash.feed_urls(1) == [U, V]
    assert observable(crash) == observable(storage)


async def test_write_cut_short_loses_nothing_acknowledged(
    storage: StorageService,
    copies: Callable[..., Awaitable[StorageService]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await storage.ensure_chat(1, "private", "x")
    handle = storage._commit.writer._file
    assert handle is not None
    real_write = handle.write

    async def half_then_fail(data: bytes) -> int:
        await real_write(data[: len(data) // 2])
        raise OSError(5, "I/O error")

    monkeypatch.setattr(handle, "write", half_then_fail)
    with pytest.raises(OSError, match="I/O error"):
        await storage.ensure_chat(2, "group", "cut short")
    monkeypatch.setattr(handle, "write", real_write)
    await storage.flush()
    crash = await copies(storage)
    assert [c.chat_id for c in crash.chats()] == [1, 2]
    assert crash.replay_stats.bad_lines == 1  # the half line, nothing else


async def test_failed_deferred_flush_is_logged_and_retried(
    storage: StorageService,
    copies: Callable[..., Awaitable[StorageService]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(commit_module, "DEFER_S", 0.05)
    failing = True
    real_write = storage._commit.writer.write

    async def maybe_fail(data: bytes) -> None:
        if failing:
            raise OSError(5, "I/O error")
        await real_write(data)

    monkeypatch.setattr(storage._commit.writer, "write", maybe_fail)
    with caplog.at_level(logging.ERROR, logger="bot.storage.commit"):
        storage.count("ticks")

        async def logged() -> bool:
            return "deferred storage flush failed" in caplog.text

        await eventually(logged, timeout=5, what="the failed deferred flush")
    failing = False
    await storage.flush()
    assert (await copies(storage)).counters()["global"] == {"ticks": 1}


async def test_a_cancelled_caller_does_not_cancel_the_shared_write(
    storage: StorageService, copies: Callable[..., Awaitable[StorageService]]
) -> None:
    task = asyncio.create_task(storage.ensure_chat(1, "private", "x"))
    await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await storage.ensure_chat(2, "private", "y")
    assert sorted(c.chat_id for c in (await copies(storage)).chats()) == [1, 2]


# ============================================================================ behaviour
async def test_ensure_chat_creates_refreshes_and_skips_needless_writes(
    storage: StorageService,
) -> None:
    created = await storage.ensure_chat(1, "group", "Old", delivery=Delivery("at", at="08:00"))
    assert created.delivery == Delivery("at", at="08:00")
    writes = storage.write_count
    await storage.ensure_chat(1, "group", "Old")
    await storage.ensure_chat(1, "group", "")  # an empty title keeps the known one
    assert storage.write_count == writes
    renamed = await storage.ensure_chat(1, "supergroup", "New")
    assert (renamed.type, renamed.title) == ("supergroup", "New")
    assert renamed.delivery == Delivery("at", at="08:00")  # settings are kept
    assert storage.write_count == writes + 1


async def test_reactivated_chat_starts_at_its_feeds_heads(storage: StorageService) -> None:
    await followed(storage, 1)
    assert await storage.deactivate_chat(1)
    assert not await storage.deactivate_chat(1)
    new = await storage.record_fetch(U, items("i5", "i4", "i3", "i2", "i1"), feed_state(U))
    assert [e.seq for e in new] == [4, 5]
    assert storage.instant_recipients(U) == []
    await storage.ensure_chat(1, "private", "back")
    assert chat_of(storage, 1).active
    assert storage.pending(1) == []  # not replayed: found while the bot could not reach it
    assert storage.instant_recipients(U) == [1]


async def test_subscribe_outcomes_and_no_backlog(storage: StorageService) -> None:
    with pytest.raises(KeyError):
        await storage.subscribe(1, U, limit=2)
    await followed(storage, 2)  # the feed already has a log with head 3
    await storage.ensure_chat(1, "private", "x")
    assert await storage.subscribe(1, U, limit=2) == "added"
    assert storage.subscriptions(1)[0].cursor == 3
    assert storage.pending(1) == []
    assert await storage.subscribe(1, U, limit=2) == "already"
    assert await storage.subscribe(1, V, limit=2) == "added"
    assert await storage.subscribe(1, "https://example.com/w.xml", limit=2) == "full"
    assert storage.feed_urls(1) == [U, V]
    assert not await storage.unsubscribe(1, "https://example.com/w.xml")


async def test_record_fetch_baseline_then_new_items_in_order(storage: StorageService) -> None:
    await storage.ensure_chat(1, "private", "x")
    await storage.subscribe(1, U, limit=5)
    assert await storage.record_fetch(U, items("c", "b", "a"), feed_state(U, title="T")) == []
    assert storage.feed_head(U) == 3
    assert [e.item.id for e in storage.feed_log(U)] == ["urn:a", "urn:b", "urn:c"]
    assert storage.pending(1) == []
    new = await storage.record_fetch(U, items("e", "d", "c", "b"), feed_state(U, title="T"))
    assert [(e.seq, e.item.id) for e in new] == [(4, "urn:d"), (5, "urn:e")]
    [backlog] = storage.pending(1)
    assert (backlog.url, backlog.title, backlog.skipped, backlog.head) == (U, "T", 0, 5)
    assert [e.seq for e in backlog.entries] == [4, 5]
    await storage.advance(1, {U: 5})
    assert storage.pending(1) == []
    # A duplicate within one fetch is logged once.
    again = await storage.record_fetch(U, items("f", "f", "e"), feed_state(U))
    assert [e.item.id for e in again] == ["urn:f"]


async def test_advance_for_a_chat_migrated_meanwhile_moves_the_new_chats_cursor(
    storage: StorageService,
) -> None:
    # A delivery was sending to the group when it became a supergroup: its cursor write,
    # still addressed to the old id, must land on the new chat or the items repeat there.
    await storage.ensure_chat(-5, "group", "g")
    await storage.subscribe(-5, U, limit=5)
    await storage.record_fetch(U, items("a"), feed_state(U, title="T"))
    await storage.record_fetch(U, items("c", "b", "a"), feed_state(U, title="T"))
    assert await storage.migrate_chat(-5, -1005)
    await storage.advance(-5, {U: 3})
    assert storage.pending(-1005) == []
    assert storage.subscriptions(-1005)[0].cursor == 3


async def test_migrating_onto_a_known_supergroup_keeps_the_groups_settings_after_replay(
    storage: StorageService, copies: Callable[[StorageService], Awaitable[StorageService]]
) -> None:
    await storage.ensure_chat(-5, "group", "g")

    def choose(chat: Chat) -> None:
        chat.format, chat.previews, chat.language, chat.tz = "full", False, "ru", "Asia/Tokyo"
        chat.delivery, chat.paused = Delivery("at", at="07:30"), True

    await storage.update_chat(-5, choose)
    await storage.ensure_chat(-1005, "supergroup", "g")  # a command seen there first
    assert await storage.migrate_chat(-5, -1005)
    replayed = await copies(storage)
    for service in (storage, replayed):
        chat = chat_of(service, -1005)
        assert (chat.format, chat.previews, chat.language, chat.tz, chat.paused) == (
            "full", False, "ru", "Asia/Tokyo", True
        )  # fmt: skip
        assert chat.delivery == Delivery("at", at="07:30")
        assert service.chat(-5) is None


async def test_a_count_for_a_chat_migrated_meanwhile_lands_on_the_new_chat(
    storage: StorageService,
) -> None:
    # A digest was going out to the group when it became a supergroup: counted under the old
    # id after the move, it would sit on a chat that no longer exists.
    await storage.ensure_chat(-5, "group", "g")
    storage.count("digests_posted", chat_id=-5)
    assert await storage.migrate_chat(-5, -1005)
    storage.count("digests_posted", chat_id=-5)
    await storage.flush()
    assert storage.counters()["chats"] == {"-1005": {"digests_posted": 2}}


async def test_reappearing_item_is_not_logged_again(storage: StorageService) -> None:
    await followed(storage, 1)  # i1..i3
    await storage.record_fetch(U, items("i4"), feed_state(U))  # i1..i3 dropped out of the feed
    writes = storage.write_count
    assert await storage.record_fetch(U, items("i4", "i2"), feed_state(U)) == []
    assert storage.write_count == writes  # nothing new: only deferred feed state
    assert storage.feed_head(U) == 4


async def test_known_window_forgets_beyond_known_max(storage: StorageService) -> None:
    await followed(storage, 1)  # i1..i3 known
    flood = items(*(f"n{k}" for k in range(KNOWN_MAX, 0, -1)))
    assert len(await storage.record_fetch(U, flood, feed_state(U))) == KNOWN_MAX
    assert len(storage.feed_log(U)) == LOG_MAX
    again = await storage.record_fetch(U, items("i1", "n1"), feed_state(U))
    assert [e.item.id for e in again] == ["urn:i1"]  # evicted, so new again; n1 still known


async def test_pending_reports_what_the_log_no_longer_holds(storage: StorageService) -> None:
    await followed(storage, 1)
    flood = items(*(f"n{k}" for k in range(LOG_MAX + 30, 0, -1)))
    await storage.record_fetch(U, flood, feed_state(U))
    [backlog] = storage.pending(1)
    assert backlog.skipped == 30
    assert len(backlog.entries) == LOG_MAX
    assert backlog.entries[0].seq == 3 + 31


async def test_last_unsubscribe_drops_the_feed_durably(
    storage: StorageService, copies: Callable[..., Awaitable[StorageService]]
) -> None:
    await followed(storage, 1, 2)
    await storage.unsubscribe(1, U)
    assert storage.feed_head(U) == 3
    await storage.unsubscribe(2, U)
    assert storage.feed_state(U) is None
    assert storage.feed_log(U) == []
    assert storage.followed_urls() == []
    crash = await copies(storage)
    assert crash.feed_state(U) is None and crash.feed_head(U) == 0


async def test_drop_feed_forgets_only_unfollowed_feeds(storage: StorageService) -> None:
    await followed(storage, 1)
    storage.set_feed_state(feed_state(V, title="default feed"))
    await storage.drop_feed(U)
    await storage.drop_feed(V)
    assert storage.feed_state(U) is not None
    assert storage.feed_state(V) is None


async def test_update_chat_errors_leave_state_untouched(storage: StorageService) -> None:
    await storage.ensure_chat(1, "private", "x")
    with pytest.raises(KeyError):
        await storage.update_chat(2, lambda c: None)

    def boom(chat: Chat) -> None:
        chat.paused = True
        raise LookupError("handler bug")

    with pytest.raises(LookupError):
        await storage.update_chat(1, boom)
    with pytest.raises(ValueError, match="migrate_chat"):
        await storage.update_chat(1, lambda c: setattr(c, "chat_id", 5))
    assert storage.chat(1) == Chat(chat_id=1, title="x")
    writes = storage.write_count
    assert await storage.update_chat(1, lambda c: c.title) == "x"
    assert storage.write_count == writes  # unchanged: nothing written


async def test_reads_return_copies(storage: StorageService) -> None:
    await followed(storage, 1)
    chat_of(storage, 1).paused = True
    storage.subscriptions(1)[0].cursor = 99
    fs(storage, U).failures = 9
    storage.counters()["global"]["x"] = 1
    assert not chat_of(storage, 1).paused
    assert storage.subscriptions(1)[0].cursor == 3
    assert fs(storage, U).failures == 0
    assert storage.counters()["global"] == {}


async def test_chats_and_recipients_filter(storage: StorageService) -> None:
    await followed(storage, 1, 2, 3, 4)
    await storage.deactivate_chat(2)
    await storage.update_chat(3, lambda c: setattr(c, "paused", True))
    await storage.update_chat(4, lambda c: setattr(c, "delivery", Delivery("every", interval_s=60)))
    assert sorted(c.chat_id for c in storage.chats()) == [1, 2, 3, 4]
    assert sorted(c.chat_id for c in storage.chats(active_only=True)) == [1, 3, 4]
    assert storage.instant_recipients(U) == [1]
    assert storage.followers(U) == frozenset({1, 2, 3, 4})


# ============================================================================ cost
async def _appended_by_one_update(make: Factory, name: str, chats: int) -> tuple[int, int, int]:
    service = await make(name)
    await asyncio.gather(*(service.ensure_chat(c, "group", f"chat {c}") for c in range(chats)))
    await service.close()
    service = await make(name)  # the state now lives in the snapshot
    snapshot = (service.data_dir / SNAPSHOT_NAME).read_bytes()
    before, writes = journal_bytes(service), service.write_count
    await service.update_chat(7, lambda c: setattr(c, "title", "renamed"))
    assert (service.data_dir / SNAPSHOT_NAME).read_bytes() == snapshot  # no whole-state rewrite
    return journal_bytes(service) - before, service.write_count - writes, len(snapshot)


async def test_a_durable_change_costs_the_same_bytes_at_10_and_5000_chats(make: Factory) -> None:
    small, small_writes, small_snapshot = await _appended_by_one_update(make, "small", 10)
    large, large_writes, large_snapshot = await _appended_by_one_update(make, "large", 5000)
    assert large_snapshot > 100 * small_snapshot  # the state really is much larger
    assert small == large > 0
    assert small < 300  # one record, not a chat list
    assert small_writes == large_writes == 1


# ============================================================================ start-up
async def test_a_start_with_nothing_to_replay_keeps_the_snapshot_file(make: Factory) -> None:
    first = await make()
    await first.ensure_chat(1, "private", "one")
    await first.close()
    second = await make()  # replays chat 1's record: a fresh snapshot is written
    path = second.data_dir / SNAPSHOT_NAME
    written, content = path.stat(), path.read_bytes()
    assert second.write_count == 2  # that snapshot and the start-up backup
    await second.close()  # no change: its segment stays empty

    third = await make()
    kept = path.stat()
    assert (kept.st_ino, kept.st_mtime_ns) == (written.st_ino, written.st_mtime_ns)
    assert path.read_bytes() == content
    assert third.write_count == 1  # the start-up backup only
    assert list_segments(third.data_dir) == [snapshot_segment(third)]  # appends after it
    await third.ensure_chat(2, "private", "two")
    await third.close()

    fourth = await make()  # chat 2's record is replayed: the snapshot is rewritten
    assert sorted(c.chat_id for c in fourth.chats()) == [1, 2]
    assert path.stat().st_ino != written.st_ino
    assert sorted(decode_snapshot(path.read_bytes())[0].chats) == [1, 2]
    assert list_segments(fourth.data_dir) == [snapshot_segment(fourth)]


async def test_the_first_start_writes_an_empty_snapshot(make: Factory) -> None:
    service = await make()
    state, segment = decode_snapshot((service.data_dir / SNAPSHOT_NAME).read_bytes())
    assert (state.chats, segment) == ({}, 1)
    assert service.write_count == 2  # the snapshot and the start-up backup


# ============================================================================ compaction
async def _churn(service: StorageService, rounds: int) -> None:
    for n in range(rounds):
        await service.ensure_chat(n % 7, "group", f"title {n}")
        await service.subscribe(n % 7, f"https://example.com/{n % 5}.xml", limit=50)
        service.count("ticks", chat_id=n % 7)


async def _compacted(service: StorageService, start: int) -> None:
    async def done() -> bool:
        segment = snapshot_segment(service)
        return segment > start and min(list_segments(service.data_dir)) >= segment

    await eventually(done, timeout=30, what="compaction")


async def test_compaction_triggers_when_the_journal_outgrows_the_snapshot(
    make: Factory, tmp_path: Path
) -> None:
    service = await make(compact_min_bytes=2000)
    start = snapshot_segment(service)
    await _churn(service, 60)
    await _compacted(service, start)
    assert journal_bytes(service) < 60 * 100  # folded segments are gone
    await service.flush()  # the last counts are deferred
    crash = await load_copy(service, tmp_path / "crash")
    assert observable(crash) == observable(service)
    await crash.close()
    await service.close()
    again = await make()
    assert observable(again) == observable(service)
    assert again.replay_stats.bad_lines == 0


async def test_compaction_and_backup_in_the_real_worker_process(make: Factory) -> None:
    service = await make(compact_min_bytes=2000, compact_in_process=True)
    start = snapshot_segment(service)
    await _churn(service, 40)
    await _compacted(service, start)
    await _churn(service, 5)
    backup = await service.backup("test")
    assert backup is not None
    state, segment = decode_snapshot(backup.read_bytes())
    assert segment == snapshot_segment(service)
    assert sorted(state.chats) == sorted(c.chat_id for c in service.chats())
    await service.close()
    again = await make()
    assert observable(again) == observable(service)


async def test_explicit_compact_folds_everything_and_keeps_state(
    storage: StorageService, copies: Callable[..., Awaitable[StorageService]]
) -> None:
    await followed(storage, 1, 2)
    storage.count("ticks", chat_id=1)
    start = snapshot_segment(storage)
    await storage.compact()
    assert snapshot_segment(storage) > start
    assert journal_bytes(storage) == 0
    assert observable(await copies(storage)) == observable(storage)
    writes = storage.write_count
    await storage.compact()  # nothing new: no rotation, no write
    assert storage.write_count == writes


async def test_overlapping_compactions_lose_nothing(
    make: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first fold is slow to write its snapshot; a second compaction (the backup job, or
    # an automatic one) starts meanwhile. Both must not run at once: were the slow one to land
    # last, its older snapshot would point at segments the fast one already deleted.
    real_write = journal.atomic_write
    writes: list[str] = []

    def slow_first_write(path: Path, data: Iterable[bytes], **options: Any) -> int:
        writes.append(path.name)
        if len(writes) == 1:
            time.sleep(0.3)
        return real_write(path, data, **options)

    monkeypatch.setattr(journal, "atomic_write", slow_first_write)
    service = await make()
    await service.ensure_chat(1, "private", "one")
    first = asyncio.create_task(service.compact())
    await asyncio.sleep(0.05)
    await service.ensure_chat(2, "private", "two")
    await service.backup("overlapping")
    await first
    await service.ensure_chat(3, "private", "three")
    await service.close()
    assert writes == ["snapshot.json", "snapshot.json"]
    again = await make()
    assert sorted(c.chat_id for c in again.chats()) == [1, 2, 3]


# ============================================================================ backups
async def test_backups_rotate_to_backup_keep(storage: StorageService) -> None:
    paths = []
    for n in range(5):
        await storage.ensure_chat(n, "private", f"chat {n}")
        path = await storage.backup("test")
        assert path is not None
        paths.append(path)
    names = sorted(p.name for p in storage.backup_dir.iterdir())
    assert names == sorted(p.name for p in paths[-3:])
    assert all(n.startswith("snapshot-") and n.endswith(".json") for n in names)
    newest, _ = decode_snapshot(paths[-1].read_bytes())
    assert sorted(newest.chats) == [0, 1, 2, 3, 4]
    oldest_kept, _ = decode_snapshot(paths[-3].read_bytes())
    assert sorted(oldest_kept.chats) == [0, 1, 2]


async def _history_with_backups(make: Factory) -> StorageService:
    """Chat 1 in backup A, chats 1+2 in backup B, chat 3 only in the journal; closed."""
    service = await make()
    await service.ensure_chat(1, "private", "one")
    await service.backup("a")
    await service.ensure_chat(2, "private", "two")
    await service.backup("b")
    await service.ensure_chat(3, "private", "three")
    await service.close()
    return service


@pytest.mark.parametrize(("newest_valid", "expected"), [(True, [1, 2, 3]), (False, [1, 3])])
async def test_corrupt_snapshot_is_moved_aside_and_newest_valid_backup_restored(
    make: Factory, caplog: pytest.LogCaptureFixture, newest_valid: bool, expected: list[int]
) -> None:
    old = await _history_with_backups(make)
    snapshot = old.data_dir / SNAPSHOT_NAME
    snapshot.write_bytes(b'{"schema_version": 2, "chats": [')
    backups = sorted(old.backup_dir.iterdir())
    if not newest_valid:
        backups[-1].write_bytes(b"garbage")
    restored_from = backups[-1] if newest_valid else backups[-2]
    with caplog.at_level(logging.ERROR, logger="bot.storage.loading"):
        service = await make()
    assert sorted(c.chat_id for c in service.chats()) == expected
    [aside] = list(old.data_dir.glob("snapshot.json.corrupt-*"))
    assert aside.read_bytes() == b'{"schema_version": 2, "chats": ['
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert str(aside) in error.getMessage()
    assert str(restored_from) in error.getMessage()
    assert decode_snapshot(snapshot.read_bytes())[0].chats.keys() == set(expected)


@pytest.mark.parametrize("cut", ["torn last line", "no end line"])
async def test_a_snapshot_cut_short_is_corrupt_and_the_newest_backup_restored(
    make: Factory, caplog: pytest.LogCaptureFixture, cut: str
) -> None:
    old = await _history_with_backups(make)
    snapshot = old.data_dir / SNAPSHOT_NAME
    data = snapshot.read_bytes()
    damaged = data[:-1] if cut == "torn last line" else data[: data.rindex(b'{"end"')]
    snapshot.write_bytes(damaged)  # every line but the trailer intact: still corrupt
    with caplog.at_level(logging.ERROR, logger="bot.storage.loading"):
        service = await make()
    assert sorted(c.chat_id for c in service.chats()) == [1, 2, 3]
    [aside] = list(old.data_dir.glob("snapshot.json.corrupt-*"))
    assert aside.read_bytes() == damaged
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert str(sorted(old.backup_dir.glob("snapshot-*.json"))[-2]) in error.getMessage()
    assert decode_snapshot(snapshot.read_bytes())[0].chats.keys() == {1, 2, 3}


async def test_corrupt_snapshot_without_valid_backup_starts_from_the_journal_with_critical(
    make: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    old = await _history_with_backups(make)
    (old.data_dir / SNAPSHOT_NAME).write_bytes(b"\x00\x01 not json")
    for backup in old.backup_dir.iterdir():
        backup.unlink()
    with caplog.at_level(logging.CRITICAL, logger="bot.storage.loading"):
        service = await make()
    assert [c.chat_id for c in service.chats()] == [3]  # what the journal alone holds
    [critical] = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    [aside] = list(old.data_dir.glob("snapshot.json.corrupt-*"))
    assert str(aside) in critical.getMessage()
    await service.ensure_chat(4, "private", "works")


@pytest.mark.parametrize("version", [3, 99])
async def test_newer_schema_version_refuses_to_start_and_changes_nothing(
    make: Factory, tmp_path: Path, version: int
) -> None:
    data = tmp_path / "s" / "data"
    data.mkdir(parents=True, mode=0o700)
    doc = {"schema_version": version, "segment": 0, "chats": "a future layout"}
    content = json.dumps(doc).encode()
    (data / SNAPSHOT_NAME).write_bytes(content)
    segment = segment_path(data, 4)
    segment.write_bytes(b'{"op":"future"}\n')
    with pytest.raises(SchemaVersionError, match=f"schema_version {version}"):
        await make()
    assert (data / SNAPSHOT_NAME).read_bytes() == content
    assert segment.read_bytes() == b'{"op":"future"}\n'
    assert sorted(p.name for p in data.iterdir()) == ["journal-00000004.jsonl", SNAPSHOT_NAME]


# ============================================================================ files
def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_modes_are_strict_even_under_a_permissive_umask(make: Factory) -> None:
    old_umask = os.umask(0)
    try:
        service = await make()
        await service.ensure_chat(1, "private", "x")
        await service.backup("test")
    finally:
        os.umask(old_umask)
    for directory in (service.data_dir, service.backup_dir):
        assert _mode(directory) == 0o700
        files = list(directory.iterdir())
        assert files
        assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}


async def test_loose_existing_modes_are_tightened_with_a_warning(
    make: Factory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data, backups = tmp_path / "s" / "data", tmp_path / "s" / "backups"
    for directory in (data, backups):
        directory.mkdir(parents=True)
        directory.chmod(0o755)
    loose = data / "notes.txt"
    loose.write_text("operator notes")
    loose.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="bot.storage.files"):
        await make()
    assert _mode(data) == _mode(backups) == 0o700
    assert _mode(loose) == 0o600
    assert caplog.text.count("tightened permissions") == 3


async def test_stale_temp_files_are_removed_at_load(
    make: Factory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = await make("s")
    await old.ensure_chat(1, "private", "x")
    await old.close()
    stale = [
        old.data_dir / ".snapshot.json.tmp-0123456789abcdef",
        old.backup_dir / ".snapshot-20260101T000000000000Z.json.tmp-fedcba9876543210",
    ]
    for path in stale:
        path.write_bytes(b'{"half a')
    with caplog.at_level(logging.WARNING, logger="bot.storage.files"):
        service = await make("s")
    assert not any(p.exists() for p in stale)
    assert caplog.text.count("removed stale temp file") == 2
    assert [c.chat_id for c in service.chats()] == [1]
