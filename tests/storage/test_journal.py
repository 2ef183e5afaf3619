"""Journal segments and the snapshot: replay, torn tails, corrupt lines, compaction."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from bot.models import LogEntry
from bot.storage import journal
from bot.storage.journal import (
    SNAPSHOT_NAME,
    JournalWriter,
    ReplayStats,
    encode_record,
    encode_snapshot,
    list_segments,
    replay_segment,
    segment_path,
)
from bot.storage.state import State
from tests.helpers.storage_data import chat_record, feed_state, item

U = "https://example.com/u.xml"


def records() -> list[dict[str, Any]]:
    """A small history: a chat follows a feed that logs items and the chat is advanced."""
    return [
        chat_record(1, title="one"),
        {"op": "sub", "chat_id": 1, "url": U, "cursor": 0, "added_at": 1.0},
        {
            "op": "items",
            "url": U,
            "state": feed_state(U, title="U").to_dict(),
            "items": [LogEntry(n, item(f"i{n}", U)).to_row() for n in (1, 2, 3)],
            "baseline": False,
        },
        {"op": "cursor", "chat_id": 1, "cursors": {U: 2}},
        {"op": "counters", "global": {"news": 4}, "chats": {"1": {"news": 4}}},
        chat_record(2, title="two"),
    ]


def applied(recs: list[dict[str, Any]]) -> State:
    state = State()
    for record in recs:
        state.apply(record)
    return state


def snapshot_of(state: State) -> list[dict[str, Any]]:
    return json.loads(json.dumps(list(state.to_snapshot(0))))


def write_segment(directory: Path, number: int, recs: list[dict[str, Any]]) -> Path:
    path = segment_path(directory, number)
    path.write_bytes(b"".join(encode_record(r) for r in recs))
    return path


def test_replay_applies_every_record(tmp_path: Path) -> None:
    path = write_segment(tmp_path, 1, records())
    state, stats = State(), ReplayStats()
    replay_segment(state, path, last=True, stats=stats)
    assert snapshot_of(state) == snapshot_of(applied(records()))
    assert (stats.records, stats.bad_lines, stats.torn_tail) == (len(records()), 0, False)


def test_replaying_a_segment_twice_changes_nothing(tmp_path: Path) -> None:
    path = write_segment(tmp_path, 1, records())
    state = State()
    replay_segment(state, path, last=True, stats=ReplayStats())
    once = snapshot_of(state)
    replay_segment(state, path, last=True, stats=ReplayStats())
    assert snapshot_of(state) == once


def test_torn_last_line_is_dropped_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recs = records()
    path = write_segment(tmp_path, 1, recs)
    torn = encode_record(chat_record(3, title="never acknowledged"))
    with path.open("ab") as handle:
        handle.write(torn[: len(torn) // 2])
    state, stats = State(), ReplayStats()
    with caplog.at_level(logging.WARNING, logger="bot.storage.journal"):
        replay_segment(state, path, last=True, stats=stats)
    assert 3 not in state.chats
    assert snapshot_of(state) == snapshot_of(applied(recs))
    assert stats.torn_tail
    assert stats.bad_lines == 0  # expected after a crash: not corruption
    assert stats.records == len(recs)
    [warning] = [r for r in caplog.records if "incomplete last record" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert path.name in warning.getMessage()


def test_torn_line_in_a_sealed_segment_counts_as_corruption(tmp_path: Path) -> None:
    path = write_segment(tmp_path, 1, records())
    with path.open("ab") as handle:
        handle.write(b'{"op":"chat","ch')
    stats = ReplayStats()
    replay_segment(State(), path, last=False, stats=stats)
    assert stats.torn_tail
    assert stats.bad_lines == 1


@pytest.mark.parametrize(
    "garbage",
    [b'{"op":"chat","chat":{"chat_id"', b"\x00\x00\xff\xfe", b"[1, 2]", b'{"op":"cursor"}'],
)
def test_corrupt_middle_line_is_skipped_with_an_error_and_replay_continues(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, garbage: bytes
) -> None:
    recs = records()
    lines = [encode_record(r) for r in recs]
    lines.insert(2, garbage + b"\n")
    path = segment_path(tmp_path, 4)
    path.write_bytes(b"".join(lines))
    state, stats = State(), ReplayStats()
    with caplog.at_level(logging.ERROR, logger="bot.storage.journal"):
        replay_segment(state, path, last=True, stats=stats)
    assert snapshot_of(state) == snapshot_of(applied(recs))  # everything after it applied
    assert stats.bad_lines == 1
    assert stats.records == len(recs)
    assert not stats.torn_tail
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert f"{path.name} line 3" in error.getMessage()


def test_blank_lines_are_ignored(tmp_path: Path) -> None:
    path = segment_path(tmp_path, 1)
    path.write_bytes(b"\n" + encode_record(chat_record(1)) + b"\n\n")
    stats = ReplayStats()
    state = State()
    replay_segment(state, path, last=True, stats=stats)
    assert set(state.chats) == {1}
    assert (stats.records, stats.bad_lines) == (1, 0)


def test_compact_folds_snapshot_and_segments_into_the_live_state(tmp_path: Path) -> None:
    recs = records()
    base = applied(recs[:2])
    (tmp_path / SNAPSHOT_NAME).write_bytes(encode_snapshot(base.to_snapshot(3)))
    # Segment 2 was folded into the snapshot already: were it replayed, chat 1 would move.
    write_segment(tmp_path, 2, [{"op": "migrate", "old": 1, "new": 77}])
    write_segment(tmp_path, 3, recs[2:4])
    write_segment(tmp_path, 4, recs[4:])
    write_segment(tmp_path, 5, [chat_record(9)])  # the live segment: not folded yet

    size = journal.compact(str(tmp_path), 5)

    data = (tmp_path / SNAPSHOT_NAME).read_bytes()
    assert size == len(data)
    state, segment = journal.decode_snapshot(data)
    assert segment == 5
    assert snapshot_of(state) == snapshot_of(applied(recs))
    assert list_segments(tmp_path) == [2, 3, 4, 5]  # the caller deletes folded segments
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_compact_without_a_snapshot_starts_from_empty(tmp_path: Path) -> None:
    write_segment(tmp_path, 0, records())
    journal.compact(str(tmp_path), 1)
    state, segment = journal.decode_snapshot((tmp_path / SNAPSHOT_NAME).read_bytes())
    assert segment == 1
    assert snapshot_of(state) == snapshot_of(applied(records()))


def test_an_orphaned_compaction_never_replaces_the_snapshot(tmp_path: Path) -> None:
    # A worker that outlived a SIGKILLed bot: its owner's pid no longer exists.
    recs = records()
    (tmp_path / SNAPSHOT_NAME).write_bytes(encode_snapshot(applied(recs[:2]).to_snapshot(3)))
    write_segment(tmp_path, 3, recs[2:])
    before = (tmp_path / SNAPSHOT_NAME).read_bytes()
    dead_pid = 2**22 + 12345  # above the kernel's pid_max default of 4194304
    with pytest.raises(journal.CompactionAbandonedError, match="is gone"):
        journal.compact(str(tmp_path), 4, owner_pid=dead_pid)
    assert (tmp_path / SNAPSHOT_NAME).read_bytes() == before


def test_a_compaction_overtaken_by_a_newer_snapshot_drops_its_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recs = records()
    (tmp_path / SNAPSHOT_NAME).write_bytes(encode_snapshot(applied(recs[:2]).to_snapshot(3)))
    write_segment(tmp_path, 3, recs[2:])
    newer = encode_snapshot(applied(recs).to_snapshot(7))
    real_replay = journal.replay_segment

    def replay_then_restart(*args: Any, **kwargs: Any) -> None:
        real_replay(*args, **kwargs)
        # Meanwhile a restarted bot loaded everything and wrote its start-up snapshot.
        (tmp_path / SNAPSHOT_NAME).write_bytes(newer)

    monkeypatch.setattr(journal, "replay_segment", replay_then_restart)
    with pytest.raises(journal.CompactionAbandonedError, match="newer snapshot"):
        journal.compact(str(tmp_path), 4)
    assert (tmp_path / SNAPSHOT_NAME).read_bytes() == newer


def test_list_segments_ignores_other_files(tmp_path: Path) -> None:
    for name in (
        "journal-00000003.jsonl",
        "journal-00000010.jsonl",
        "journal-1.jsonl",
        "snapshot.json",
        ".journal-00000004.jsonl.tmp-ab",
    ):
        (tmp_path / name).write_bytes(b"")
    assert list_segments(tmp_path) == [3, 10]


async def test_writer_appends_durably_and_starts_after_a_failed_write_on_a_fresh_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = JournalWriter(tmp_path)
    await writer.open(7)
    first, second = encode_record(chat_record(1)), encode_record(chat_record(2))
    await writer.write(first)
    assert writer.size == len(first)

    real_fsync = journal.fsync_async
    written: list[bytes] = []

    async def failing_fsync(fd: int) -> None:
        written.append(segment_path(tmp_path, 7).read_bytes())
        raise OSError(5, "I/O error")

    # A write whose fsync fails may or may not be on disk: the next one starts a fresh line.
    handle = writer._file
    assert handle is not None
    original_write = handle.write

    async def half_write(data: bytes) -> int:
        return await original_write(data[: len(data) // 2])

    monkeypatch.setattr(handle, "write", half_write)
    monkeypatch.setattr(journal, "fsync_async", failing_fsync)
    with pytest.raises(OSError, match="I/O error"):
        await writer.write(second)
    monkeypatch.setattr(handle, "write", original_write)
    monkeypatch.setattr(journal, "fsync_async", real_fsync)
    await writer.write(second)
    await writer.close()

    assert written and written[0] == first + second[: len(second) // 2]
    state, stats = State(), ReplayStats()
    replay_segment(state, segment_path(tmp_path, 7), last=True, stats=stats)
    assert set(state.chats) == {1, 2}
    assert stats.bad_lines == 1  # only the half line is lost, nothing acknowledged


async def test_writer_rotate_seals_and_opens_the_next_segment(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path)
    await writer.open(1)
    await writer.write(encode_record(chat_record(1)))
    assert await writer.rotate() == 2
    assert writer.size == 0
    await writer.write(encode_record(chat_record(2)))
    await writer.close()
    await writer.close()  # idempotent
    assert list_segments(tmp_path) == [1, 2]
    assert segment_path(tmp_path, 2).read_bytes() == encode_record(chat_record(2))
    with pytest.raises(RuntimeError):
        await writer.write(b"x\n")
