"""Per-chat and per-subscription options: durable, replayed, compacted, migrated, bounded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.models import Chat, Filters, LogEntry, Subscription
from bot.storage import StorageService
from bot.storage.state import LOG_MAX, TEXT_KEEP, State
from tests.helpers.storage_data import feed_state, item, load_copy, observable

U = "https://example.com/u.xml"


@pytest.fixture
async def svc(tmp_path: Path) -> AsyncIterator[StorageService]:
    service = StorageService(tmp_path / "data", tmp_path / "backups", 3, compact_in_process=False)
    await service.load()
    yield service
    await service.close()


def _mute_and_filter(sub: Subscription) -> None:
    sub.muted = True
    sub.title = "My title"
    sub.filters = Filters(include=("python",), exclude=("ads", "sponsored post"))
    sub.format = "title"


async def test_subscription_options_survive_a_crash_and_a_compaction(
    svc: StorageService, tmp_path: Path
) -> None:
    await svc.ensure_chat(1, "supergroup", "G")
    assert await svc.subscribe(1, U, limit=10, options={"thread_id": 42}) == "added"
    await svc.update_subscription(1, U, _mute_and_filter)
    sub = svc.subscription(1, U)
    assert sub is not None and sub.thread_id == 42 and sub.muted and sub.format == "title"

    crashed = await load_copy(svc, tmp_path / "crash")
    assert observable(crashed) == observable(svc)
    crashed.closed = True

    await svc.compact()
    compacted = await load_copy(svc, tmp_path / "compacted")
    assert compacted.subscription(1, U) == svc.subscription(1, U)
    compacted.closed = True


async def test_unchanged_options_write_nothing(svc: StorageService) -> None:
    await svc.ensure_chat(1, "private", "")
    await svc.subscribe(1, U, limit=10)
    before = svc.write_count
    await svc.update_subscription(1, U, lambda s: setattr(s, "cursor", 99))  # not an option
    assert svc.write_count == before
    assert svc.subscription(1, U).cursor == 0  # type: ignore[union-attr]


async def test_invalid_options_are_refused_before_the_journal(svc: StorageService) -> None:
    await svc.ensure_chat(1, "private", "")
    with pytest.raises(ValueError, match="thread_id"):
        await svc.subscribe(1, U, limit=10, options={"thread_id": "seven"})
    assert svc.subscriptions(1) == []
    await svc.subscribe(1, U, limit=10)
    with pytest.raises(ValueError, match="format"):
        await svc.update_subscription(1, U, lambda s: setattr(s, "format", "poster"))
    assert svc.subscription(1, U).format is None  # type: ignore[union-attr]
    with pytest.raises(KeyError):
        await svc.update_subscription(2, U, _mute_and_filter)


async def test_chat_options_round_trip_and_defaults_stay_off_disk() -> None:
    plain = Chat(chat_id=5)
    assert set(plain.to_dict()) == {
        "chat_id", "type", "title", "active", "delivery", "tz", "paused", "next_digest_at"
    }  # fmt: skip
    chosen = replace(
        plain, format="full", previews=False, language="ru",
        filters=Filters(exclude=("crypto",)), managers=(7, 8),
    )  # fmt: skip
    assert Chat.from_dict(chosen.to_dict()) == chosen
    # A hand-edited unknown format falls back to the default rather than failing the load.
    assert Chat.from_dict({**chosen.to_dict(), "format": "poster"}).format == "summary"


async def test_managers_index_follows_chat_changes_and_migration(
    svc: StorageService, tmp_path: Path
) -> None:
    await svc.ensure_chat(-100, "channel", "News")
    await svc.update_chat(-100, lambda c: setattr(c, "managers", (7,)))
    await svc.ensure_chat(-5, "group", "Old group")
    await svc.update_chat(-5, lambda c: setattr(c, "managers", (7, 8)))
    assert svc.managed_chats(7) == [-100, -5]
    await svc.update_chat(-100, lambda c: setattr(c, "managers", ()))
    assert svc.managed_chats(7) == [-5]
    await svc.migrate_chat(-5, -1005)
    assert svc.managed_chats(7) == [-1005] and svc.managed_chats(8) == [-1005]
    reloaded = await load_copy(svc, tmp_path / "copy")
    assert reloaded.managed_chats(8) == [-1005]
    reloaded.closed = True


async def test_migration_keeps_subscription_options(svc: StorageService) -> None:
    await svc.ensure_chat(-5, "group", "G")
    await svc.subscribe(-5, U, limit=10)
    await svc.update_subscription(-5, U, _mute_and_filter)
    await svc.migrate_chat(-5, -1005)
    moved = svc.subscription(-1005, U)
    assert moved is not None and moved.muted and moved.title == "My title"
    assert moved.filters.exclude == ("ads", "sponsored post")


def test_only_the_newest_entries_keep_their_text() -> None:
    state = State()
    rich = [
        replace(item(str(n), U), summary=f"<b>text {n}</b>", image=f"https://img/{n}.png")
        for n in range(1, LOG_MAX + 2)
    ]
    state.apply({"op": "sub", "chat_id": 1, "url": U, "cursor": 0})
    for n, it in enumerate(rich, 1):  # one item per record: the live pattern
        state.apply({"op": "items", "url": U, "state": feed_state(U).to_dict(),
                     "items": [LogEntry(n, it).to_row()]})  # fmt: skip
    log = state.feeds[U].log
    assert len(log) == LOG_MAX
    with_text = [e.seq for e in log if e.item.summary]
    assert with_text == list(range(LOG_MAX + 2 - TEXT_KEEP, LOG_MAX + 2))
    assert all(e.item.image is None for e in log[:-TEXT_KEEP])
    assert log[-1].item.image == f"https://img/{LOG_MAX + 1}.png"


def test_old_rows_without_text_still_load() -> None:
    entry = LogEntry.from_row([3, "urn:x", "T", "https://x", None], "Feed", U)
    assert entry.item.summary == "" and entry.item.image is None
    assert entry.to_row() == [3, "urn:x", "T", "https://x", None]


async def test_ensure_chat_records_a_language_only_where_there_is_none(
    svc: StorageService, tmp_path: Path
) -> None:
    created = await svc.ensure_chat(1, "private", "A", language="ru")
    assert created.language == "ru"
    await svc.ensure_chat(2, "private", "B")  # no supported language: none recorded
    before = svc.write_count
    await svc.ensure_chat(1, "private", "A", language="en")  # never overrides a language
    assert svc.write_count == before
    assert svc.chat(1).language == "ru"  # type: ignore[union-attr]
    await svc.ensure_chat(2, "private", "B", language="en")  # an older chat gets one, durably
    assert svc.chat(2).language == "en"  # type: ignore[union-attr]
    reloaded = await load_copy(svc, tmp_path / "reloaded")
    assert [reloaded.chat(i).language for i in (1, 2)] == ["ru", "en"]  # type: ignore[union-attr]
    reloaded.closed = True
