"""``State.apply``: every op, idempotence, malformed records, logs, cursors and snapshots."""

from __future__ import annotations

import copy
import json
import logging
import random
from typing import Any

import pytest

from bot.models import Chat, Delivery, Filters, LogEntry
from bot.storage.state import (
    KNOWN_MAX,
    LOG_MAX,
    FeedRecord,
    KnownIds,
    RecordError,
    State,
    id_key,
)
from tests.helpers.storage_data import chat_record, feed_state, item

U = "https://example.com/u.xml"
V = "https://example.com/v.xml"


def rows(first: int, last: int, url: str = U) -> list[list[Any]]:
    """Log rows with seq first..last."""
    return [LogEntry(n, item(f"i{n}", url)).to_row() for n in range(first, last + 1)]


def sub(chat_id: int, url: str, cursor: int = 0) -> dict[str, Any]:
    return {"op": "sub", "chat_id": chat_id, "url": url, "cursor": cursor, "added_at": 1.5}


def items_record(url: str, first: int, last: int, *, baseline: bool = False) -> dict[str, Any]:
    return {
        "op": "items",
        "url": url,
        "state": feed_state(url, title="Feed", etag='"e"').to_dict(),
        "items": rows(first, last, url),
        "baseline": baseline,
    }


def dump(state: State) -> dict[str, Any]:
    """The state as its snapshot lines, plus the follower index snapshots do not store."""
    return {
        "lines": json.loads(json.dumps(list(state.to_snapshot(0)))),
        "followers": {u: sorted(c) for u, c in state.followers.items()},
    }


def populated() -> State:
    """Two chats following two feeds, a logged feed and counters."""
    state = State()
    for record in (
        chat_record(1, title="one"),
        chat_record(2, type="group", title="two"),
        sub(1, U),
        sub(1, V),
        sub(2, U),
        items_record(U, 1, 5),
        {"op": "cursor", "chat_id": 1, "cursors": {U: 2}},
        {"op": "counters", "global": {"news": 3}, "chats": {"1": {"news": 2}, "2": {"news": 1}}},
    ):
        state.apply(record)
    return state


RECORDS: dict[str, dict[str, Any]] = {
    "chat": chat_record(3, title="three", delivery=Delivery("every", interval_s=3600)),
    "chat-update": chat_record(1, title="renamed", paused=True),
    "migrate": {"op": "migrate", "old": 1, "new": -1001},
    "migrate-merge": {"op": "migrate", "old": 1, "new": 2},
    "sub": sub(2, V, 0),
    "unsub": {"op": "unsub", "chat_id": 1, "url": V},
    "unsub-last": {"op": "unsub", "chat_id": 1, "url": V},
    "cursor": {"op": "cursor", "chat_id": 2, "cursors": {U: 4, "https://not.followed/": 9}},
    "feed": {"op": "feed", "state": feed_state(V, title="Vee", failures=2).to_dict()},
    "items": items_record(U, 6, 8),
    "items-baseline": items_record(V, 1, 3, baseline=True),
    "feed_del": {"op": "feed_del", "url": "https://example.com/unfollowed.xml"},
    "counters": {"op": "counters", "global": {"news": 4, "adds": 1}, "chats": {"2": {"news": 7}}},
}


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_every_op_changes_state_and_applying_it_twice_equals_once(name: str) -> None:
    record = RECORDS[name]
    state = populated()
    before = dump(state)
    state.apply(copy.deepcopy(record))
    once = dump(state)
    state.apply(copy.deepcopy(record))
    assert dump(state) == once
    if name != "feed_del":  # deleting a feed nobody follows and that does not exist: no-op
        assert once != before, f"{name} changed nothing"


def test_feed_del_drops_only_an_unfollowed_feed() -> None:
    state = populated()
    state.apply({"op": "feed", "state": feed_state("https://example.com/d.xml").to_dict()})
    state.apply({"op": "feed_del", "url": "https://example.com/d.xml"})
    state.apply({"op": "feed_del", "url": U})  # still followed: kept
    assert set(state.feeds) == {U, V}
    assert state.feeds[U].head == 5


MALFORMED: list[dict[str, Any]] = [
    {},
    {"op": "nope"},
    {"op": 7},
    {"op": "chat"},
    {"op": "chat", "chat": {"title": "no id"}},
    {"op": "chat_del", "chat_id": 2},  # no such op (any more)
    {"op": "migrate", "old": 1},
    {"op": "sub", "chat_id": 1, "url": "https://example.com/new.xml"},  # no cursor
    {"op": "sub", "chat_id": 1, "url": "https://example.com/new.xml", "cursor": "x"},
    {"op": "unsub", "chat_id": "one", "url": U},
    {"op": "cursor", "chat_id": 1},
    {"op": "cursor", "chat_id": 1, "cursors": {U: 4, V: "x"}},
    {"op": "feed", "state": {"title": "no url"}},
    {"op": "items", "url": U, "items": [[6, "a", "t", None, None], [7, "b"]]},
    {"op": "items", "url": "https://example.com/new.xml", "items": [["x"]]},
    {"op": "items", "url": U, "state": {"no": "url"}, "items": rows(6, 6)},
    {"op": "counters", "global": {"news": 9, "bad": "x"}},
    {"op": "counters", "chats": {"1": {"news": 9}, "x": {"news": 1}}},
]


@pytest.mark.parametrize("record", MALFORMED, ids=[json.dumps(r)[:60] for r in MALFORMED])
def test_malformed_record_raises_and_leaves_state_untouched(record: dict[str, Any]) -> None:
    state = populated()
    before = dump(state)
    with pytest.raises(RecordError):
        state.apply(record)
    assert dump(state) == before


def test_items_extend_the_log_in_order_and_do_not_move_cursors() -> None:
    state = populated()
    state.apply(items_record(U, 6, 7))
    record = state.feeds[U]
    assert [e.seq for e in record.log] == [1, 2, 3, 4, 5, 6, 7]
    assert record.head == 7
    assert record.log[-1].item.id == "urn:i7"
    assert record.log[-1].item.source_title == "Feed"
    assert state.subs[1][U].cursor == 2
    assert state.subs[2][U].cursor == 0
    entries, skipped = record.entries_after(2)
    assert [e.seq for e in entries] == [3, 4, 5, 6, 7]
    assert skipped == 0


def test_baseline_moves_every_followers_cursor_to_the_head() -> None:
    state = populated()
    state.apply(sub(2, V, 0))
    state.apply(items_record(V, 1, 4, baseline=True))
    assert state.subs[1][V].cursor == 4
    assert state.subs[2][V].cursor == 4
    assert state.subs[1][U].cursor == 2  # other feeds untouched
    assert state.feeds[V].entries_after(4) == ([], 0)


def test_log_is_trimmed_at_log_max_and_entries_after_reports_skipped() -> None:
    state = State()
    state.apply(chat_record(1))
    state.apply(sub(1, U))
    state.apply(items_record(U, 1, LOG_MAX + 50))
    record = state.feeds[U]
    assert len(record.log) == LOG_MAX
    assert record.log[0].seq == 51
    assert record.head == LOG_MAX + 50
    entries, skipped = record.entries_after(0)
    assert skipped == 50
    assert [e.seq for e in entries] == list(range(51, LOG_MAX + 51))
    entries, skipped = record.entries_after(60)
    assert skipped == 0
    assert entries[0].seq == 61
    assert record.entries_after(record.head) == ([], 0)


def test_known_window_keeps_the_newest_known_max_ids() -> None:
    record = FeedRecord(feed_state(U))
    for n in range(KNOWN_MAX + 5):
        record.known.add(id_key(f"id{n}"))
    assert len(record.known) == KNOWN_MAX
    assert id_key("id0") not in record.known
    assert id_key("id4") not in record.known
    assert id_key("id5") in record.known
    assert id_key(f"id{KNOWN_MAX + 4}") in record.known


@pytest.mark.parametrize("seed", range(5))
def test_known_window_extend_is_add_one_by_one(seed: int) -> None:
    """The batch path (one unpacked set) must leave exactly what single adds leave."""
    rng = random.Random(seed)
    pool = [id_key(f"id{n}") for n in range(KNOWN_MAX // 2)]
    one_by_one, batched = KnownIds(), KnownIds()
    for _ in range(12):
        keys = [rng.choice(pool) if rng.random() < 0.5 else rng.getrandbits(60)
                for _ in range(rng.randint(0, 300))]  # fmt: skip
        for key in keys:
            one_by_one.add(key)
        batched.extend(keys)
        assert list(batched) == list(one_by_one)
        assert batched.as_set() == set(one_by_one)
    assert len(batched) == KNOWN_MAX  # the window filled and was trimmed, oldest first


def test_logged_items_are_remembered_as_known() -> None:
    state = populated()
    assert id_key("urn:i3") in state.feeds[U].known
    assert id_key("urn:i9") not in state.feeds[U].known


def test_last_unsubscribe_drops_the_feed_state_and_log() -> None:
    state = populated()
    state.apply({"op": "unsub", "chat_id": 1, "url": U})
    assert U in state.feeds  # chat 2 still follows it
    assert state.followers[U] == {2}
    state.apply({"op": "unsub", "chat_id": 2, "url": U})
    assert U not in state.feeds
    assert U not in state.followers
    assert 2 not in state.subs  # no empty per-chat map left behind


def test_migrate_to_a_new_id_moves_chat_subscriptions_and_counters() -> None:
    state = populated()
    state.apply({"op": "migrate", "old": 1, "new": -1001})
    assert 1 not in state.chats
    assert state.chats[-1001].chat_id == -1001
    assert state.chats[-1001].title == "one"
    assert {u: s.cursor for u, s in state.subs[-1001].items()} == {U: 2, V: 0}
    assert all(s.chat_id == -1001 for s in state.subs[-1001].values())
    assert state.followers[U] == {2, -1001}
    assert state.followers[V] == {-1001}
    assert V in state.feeds  # the feed survives the move (keep_feed)
    assert state.chat_counters[-1001] == {"news": 2}


def test_migrate_into_an_existing_chat_merges_cursors_and_counters() -> None:
    state = populated()
    state.apply({"op": "cursor", "chat_id": 2, "cursors": {U: 4}})
    state.apply({"op": "cursor", "chat_id": 1, "cursors": {U: 3}})
    state.apply(chat_record(2, type="group", title="two", active=False))
    state.apply({"op": "migrate", "old": 1, "new": 2})
    assert 1 not in state.chats
    assert state.chats[2].title == "two"  # the target keeps its own settings
    assert state.chats[2].active  # but is active if either was
    assert {u: s.cursor for u, s in state.subs[2].items()} == {U: 4, V: 0}  # max cursor
    assert state.chat_counters == {2: {"news": 3}}


CHOICES: dict[str, Any] = {
    "format": "full",
    "previews": False,
    "language": "ru",
    "filters": Filters(include=("python",), exclude=("ads",)),
    "tz": "Europe/Berlin",
    "delivery": Delivery("every", interval_s=7200),
    "next_digest_at": 1_800_000_000.0,
    "paused": True,
}


def test_migrate_into_a_chat_registered_meanwhile_keeps_the_old_chats_choices() -> None:
    """A command in the new supergroup registered it (defaults) before the migrate message."""
    state = populated()
    state.apply(chat_record(1, title="one", **CHOICES))
    state.apply(chat_record(-1001, type="supergroup", title="one, upgraded"))
    state.apply({"op": "migrate", "old": 1, "new": -1001})
    target = state.chats[-1001]
    assert {name: getattr(target, name) for name in CHOICES} == CHOICES
    assert (target.type, target.title) == ("supergroup", "one, upgraded")  # the new chat's


def test_migrate_keeps_what_the_target_chose_itself() -> None:
    state = populated()
    state.apply(chat_record(1, title="one", **CHOICES))
    own = {"language": "en", "format": "title", "delivery": Delivery("at", at="08:00")}
    state.apply(chat_record(-1001, type="supergroup", title="one", **own))
    state.apply({"op": "migrate", "old": 1, "new": -1001})
    target = state.chats[-1001]
    assert {name: getattr(target, name) for name in own} == own
    assert target.next_digest_at is None  # goes with the target's own schedule
    carried = {n: v for n, v in CHOICES.items() if n not in own and n != "next_digest_at"}
    assert {name: getattr(target, name) for name in carried} == carried


def test_cursor_never_moves_backwards() -> None:
    state = populated()
    state.apply({"op": "cursor", "chat_id": 1, "cursors": {U: 1}})
    assert state.subs[1][U].cursor == 2


def test_snapshot_round_trip_restores_everything() -> None:
    state = populated()
    state.apply(items_record(V, 1, 3, baseline=True))
    state.apply(
        chat_record(
            3,
            active=False,
            tz="Europe/Berlin",
            next_digest_at=1.0e9,
            delivery=Delivery("at", at="08:30"),
        )
    )
    lines = json.loads(json.dumps(list(state.to_snapshot(7))))
    restored, segment = State.from_snapshot(lines)
    assert segment == 7
    assert dump(restored) == dump(state)
    assert restored.feeds[U].known == state.feeds[U].known
    assert restored.feeds[U].entries_after(2) == state.feeds[U].entries_after(2)
    assert restored.chats[3] == state.chats[3]


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"schema_version": 1, "segment": 0},
        {"schema_version": 3, "segment": 0, "chats": [], "subs": [], "feeds": [], "counters": {}},
        {
            "schema_version": 2,
            "segment": 0,
            "chats": [{"title": "x"}],
            "subs": [],
            "feeds": [],
            "counters": {},
        },
        {
            "schema_version": 2,
            "segment": 0,
            "chats": [],
            "subs": [[1, U]],
            "feeds": [],
            "counters": {},
        },
        {"schema_version": 2, "chats": [], "subs": [], "feeds": [], "counters": {}},
    ],
)
def test_invalid_snapshot_document_raises_record_error(doc: Any) -> None:
    with pytest.raises(RecordError):
        State.from_snapshot(doc)


def test_invalid_persisted_delivery_is_logged_and_falls_back_to_instant(
    caplog: pytest.LogCaptureFixture,
) -> None:
    raw = Chat(chat_id=5, title="bad", delivery=Delivery("at", at="08:00")).to_dict()
    raw["delivery"]["at"] = "25:00"
    lines = list(State().to_snapshot(0))
    lines.insert(1, {"chats": [raw]})
    lines[-1] = {"end": {"lines": len(lines) - 1}}
    with caplog.at_level(logging.WARNING, logger="bot.storage.state"):
        restored, _ = State.from_snapshot(lines)
        State().apply({"op": "chat", "chat": raw})
    assert restored.chats[5].delivery == Delivery()
    assert restored.chats[5].title == "bad"
    warnings = [r for r in caplog.records if getattr(r, "event", None) == "invalid_schedule"]
    assert len(warnings) == 2
    assert getattr(warnings[0], "chat_id", None) == 5
    assert "25:00" in getattr(warnings[0], "error", "")


def test_entries_after_finds_entries_by_sequence_number_across_a_gap() -> None:
    # Sequence numbers can have gaps (a corrupt journal line skipped, a backup restored):
    # nothing after a gap may be hidden, and the missing items are reported, not silent.
    record = FeedRecord(feed_state(U))
    record.log = [LogEntry(n, item(f"i{n}", U)) for n in [*range(1, 101), *range(151, 161)]]
    record.head = 160
    entries, skipped = record.entries_after(100)
    assert [e.seq for e in entries] == list(range(151, 161))
    assert skipped == 50
    entries, skipped = record.entries_after(120)
    assert ([e.seq for e in entries], skipped) == (list(range(151, 161)), 30)
    entries, skipped = record.entries_after(155)
    assert ([e.seq for e in entries], skipped) == (list(range(156, 161)), 0)
    entries, skipped = record.entries_after(50)
    assert (entries[0].seq, len(entries), skipped) == (51, 60, 0)
