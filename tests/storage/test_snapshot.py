"""The snapshot as JSON lines: streamed decoding, corruption detection, shared values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.models import Delivery, LogEntry
from bot.storage import snapshot
from bot.storage.snapshot import (
    SnapshotReader,
    decode_snapshot,
    encode_snapshot,
    read_snapshot,
    snapshot_chunks,
)
from bot.storage.state import KNOWN_MAX, KnownIds, RecordError, State, id_key
from tests.helpers.storage_data import chat_record, feed_state, item

URLS = [f"https://example.com/feed-{n}.xml" for n in range(4)]


def built(chats: int) -> State:
    """A state made by applying records (the live path), spanning several snapshot batches."""
    state = State()
    for url in URLS[:3]:
        entries = [LogEntry(n, item(f"{url}-{n}", url)) for n in range(1, 6)]
        state.apply(
            {
                "op": "items",
                "url": url,
                "state": feed_state(url, title=f"T {url}", etag='"e"').to_dict(),
                "items": [e.to_row() for e in entries],
                "baseline": True,
            }
        )
    for chat_id in range(1, chats + 1):
        delivery = Delivery("every", interval_s=3600) if chat_id % 3 == 0 else Delivery()
        kind = "group" if chat_id % 2 else "private"
        state.apply(chat_record(chat_id, type=kind, title=f"chat {chat_id}", delivery=delivery))
        for url in (URLS[chat_id % 4], URLS[(chat_id + 1) % 4]):
            state.apply(
                {"op": "sub", "chat_id": chat_id, "url": url, "cursor": chat_id % 5,
                 "added_at": 1_700_000_000.5}
            )  # fmt: skip
    state.apply(
        {
            "op": "counters",
            "global": {"news": 7},
            "chats": {str(c): {"news": c} for c in range(1, chats + 1, 2)},
        }
    )
    return state


def observable(state: State) -> dict[str, Any]:
    """Everything a state holds, as plain JSON values (order of each collection kept)."""
    return {
        "chats": [c.to_dict() for c in state.chats.values()],
        "subs": {
            chat_id: [[s.url, s.cursor, s.added_at] for s in subs.values()]
            for chat_id, subs in state.subs.items()
        },
        "followers": {u: sorted(c) for u, c in state.followers.items()},
        "feeds": {
            url: [f.state.to_dict(), f.head, [e.to_row() for e in f.log], list(f.known)]
            for url, f in state.feeds.items()
        },
        "counters": [state.counters, state.chat_counters],
    }


def lines_of(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines()]


# ============================================================================ format
def test_snapshot_is_one_json_object_per_line_with_header_batches_and_trailer() -> None:
    data = encode_snapshot(built(2500).to_snapshot(9))
    lines = lines_of(data)
    assert data.endswith(b"\n")
    assert lines[0] == {"schema_version": 2, "segment": 9}
    kinds = [next(iter(line)) for line in lines[1:]]
    assert kinds == ["chats"] * 3 + ["feed"] * 4 + ["subs"] * 5 + ["counters"] * 3 + ["end"]
    assert [len(line["chats"]) for line in lines[1:4]] == [1000, 1000, 500]
    assert lines[-1] == {"end": {"lines": len(lines) - 1}}


@pytest.mark.parametrize("piece", [1, 7, 4096, 10**9])
def test_streamed_decoding_in_any_chunking_restores_exactly_the_applied_state(piece: int) -> None:
    state = built(2500)
    data = encode_snapshot(state.to_snapshot(4))
    reader = SnapshotReader()
    for at in range(0, len(data), piece):
        reader.feed(data[at : at + piece])
    restored, segment = reader.finish()
    assert segment == 4
    assert observable(restored) == observable(state)
    assert restored.feeds[URLS[0]].entries_after(2) == state.feeds[URLS[0]].entries_after(2)


def test_read_snapshot_reads_the_file_in_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = built(30)
    path = tmp_path / "snapshot.json"
    path.write_bytes(b"".join(snapshot_chunks(state.to_snapshot(2), size=100)))
    monkeypatch.setattr(snapshot, "CHUNK_BYTES", 64)
    restored, segment = read_snapshot(path)
    assert (segment, observable(restored)) == (2, observable(state))


def test_an_empty_state_round_trips() -> None:
    restored, segment = decode_snapshot(encode_snapshot(State().to_snapshot(0)))
    assert (segment, observable(restored)) == (0, observable(State()))


# ============================================================================ corruption
def _valid() -> bytes:
    return encode_snapshot(built(5).to_snapshot(3))


def _replace_line(data: bytes, index: int, line: bytes) -> bytes:
    lines = data.splitlines()
    lines[index] = line
    return b"\n".join(lines) + b"\n"


@pytest.mark.parametrize(
    ("mangle", "why"),
    [
        (lambda d: d[:-1], "torn"),  # the trailer lost its newline
        (lambda d: d[: d.rindex(b'{"end"')], "incomplete"),  # cut at a line boundary: no trailer
        (lambda d: d[: len(d) // 2], "."),  # torn in the middle of a line
        (lambda d: _replace_line(d, 2, b'{"feed": {"state": '), "not valid JSON"),
        (lambda d: _replace_line(d, 2, b"[1, 2]"), "not a JSON object"),
        (lambda d: _replace_line(d, 1, b'{"chats": [{"title": "no id"}]}'), "malformed"),
        (lambda d: _replace_line(d, 1, b'{"gossip": 1}'), "unknown snapshot line"),
        (lambda d: _replace_line(d, -1, b'{"end": {"lines": 99}}'), "ends after 99"),
        (lambda d: d + b'{"chats": []}\n', "after its end"),
        (lambda d: d.replace(b'"schema_version":2', b'"schema_version":3', 1), "version-2"),
        (lambda d: b"", "incomplete"),
    ],
)
def test_any_damaged_line_makes_the_whole_snapshot_invalid(mangle: Any, why: str) -> None:
    with pytest.raises(RecordError, match=why):
        decode_snapshot(mangle(_valid()))


def test_reader_keeps_the_first_bytes_to_recognise_a_newer_version() -> None:
    reader = SnapshotReader()
    with pytest.raises(RecordError):
        reader.feed(b'{"schema_version": 3, "segment": 1, "layout": "future"}\n')
    assert reader.head.startswith(b'{"schema_version": 3')


def test_from_snapshot_refuses_a_document_that_is_not_a_sequence_of_lines() -> None:
    with pytest.raises(RecordError, match="sequence of lines"):
        State.from_snapshot({"schema_version": 2, "segment": 0})


# ============================================================================ shared values
def test_loaded_state_shares_repeated_values() -> None:
    restored, _ = decode_snapshot(encode_snapshot(built(12).to_snapshot(1)))
    feed_urls = {url: record.state.url for url, record in restored.feeds.items()}
    for chat_id, subs in restored.subs.items():
        chat = restored.chats[chat_id]
        for url, sub in subs.items():
            assert sub.url is feed_urls[url]  # one string per feed URL
            assert sub.chat_id is chat.chat_id  # one int per chat
    groups = [c for c in restored.chats.values() if c.type == "group"]
    assert all(c.type is groups[0].type for c in groups)
    instant = [c for c in restored.chats.values() if c.delivery == Delivery()]
    assert len(instant) > 1 and all(c.delivery is instant[0].delivery for c in instant)


def test_an_item_whose_link_equals_its_id_keeps_one_string() -> None:
    row = json.loads('[1, "https://example.com/a", "t", "https://example.com/a", null]')
    assert row[1] is not row[3]  # two strings as decoded
    entry = LogEntry.from_row(row, "T", URLS[0])
    assert entry.item.link == entry.item.id == "https://example.com/a"
    assert entry.item.link is entry.item.id
    other = LogEntry.from_row([2, "urn:b", "t", "https://example.com/b", None], "T", URLS[0])
    assert (other.item.id, other.item.link) == ("urn:b", "https://example.com/b")


# ============================================================================ known ids
def test_known_ids_match_whole_keys_only() -> None:
    first, second = 0x1111_1111_2222_2222, 0x3333_3333_4444_4444
    known = KnownIds([first, second])
    straddling = int.from_bytes(
        first.to_bytes(8, "little")[4:] + second.to_bytes(8, "little")[:4], "little"
    )
    assert first in known and second in known
    assert straddling not in known
    assert "x" not in known and -1 not in known
    assert list(known) == [first, second]


def test_known_ids_keep_the_newest_known_max_once_each() -> None:
    known = KnownIds()
    for n in range(KNOWN_MAX + 3):
        known.add(id_key(f"id{n}"))
    known.add(id_key(f"id{KNOWN_MAX + 2}"))  # already known: no second slot
    assert len(known) == KNOWN_MAX
    assert id_key("id2") not in known and id_key("id3") in known
    assert list(known)[-1] == id_key(f"id{KNOWN_MAX + 2}")
    assert KnownIds(known) == known and KnownIds() != known
