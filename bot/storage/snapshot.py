"""``snapshot.json``: the whole state as JSON lines, written and read one line at a time.

The snapshot is the largest thing storage handles (~100 MB at 100,000 chats). Decoding it as
one JSON document held the whole decoded document beside the state it became, tripling the
start-up peak; as lines, loading holds the state plus one line, and writing holds the state
plus one chunk of encoded lines. Layout, one compact JSON object per line:

* ``{"schema_version": 2, "segment": n}`` — the header (first line, so that a newer version is
  recognised from the first bytes); ``segment`` is the first journal segment *not* folded in;
* ``{"chats": [chat, …]}`` — up to :data:`BATCH` chats per line (``Chat.to_dict``);
* ``{"feed": {"state": …, "head": n, "log": [row, …], "known": [key, …]}}`` — one feed per line;
* ``{"subs": [[chat_id, url, cursor, added_at], …]}`` — up to :data:`BATCH` per line, after the
  feeds so that a subscription shares its feed's URL string;
* ``{"counters": {"global": {…}}}`` then ``{"counters": {"chats": {"<id>": {…}, …}}}`` batches;
* ``{"end": {"lines": n}}`` — the trailer: the number of lines before it.

Crash-safety is unchanged: the file is replaced atomically. Corruption detection is stricter
than before: a line that is torn, not JSON or of the wrong shape, a missing trailer or a wrong
line count makes the whole snapshot invalid (:class:`RecordError`), and loading restores the
newest valid backup. Nothing here does I/O on an event loop: :class:`SnapshotReader` is fed
chunks (by a thread at start-up, directly in the compaction worker process).
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from bot.models import FeedState, LogEntry, Subscription
from bot.storage.state import (
    SCHEMA_VERSION,
    FeedRecord,
    KnownIds,
    Record,
    RecordError,
    State,
    chat_from,
    compact_chat,
)

logger = logging.getLogger(__name__)

BATCH = 1000  # chats, subscriptions or chat counters per line
CHUNK_BYTES = 1 << 20  # encoded lines are written, and the file read, in pieces of about this
HEAD_BYTES = 200  # the header is found within this many first bytes


def _batches(items: Iterable[Any], size: int = BATCH) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def snapshot_lines(state: State, segment: int) -> Iterator[Record]:
    """The state as snapshot lines (see the module docstring), produced lazily.

    The state must not change while this is consumed (start-up and the compaction worker
    own theirs).
    """
    yield {"schema_version": SCHEMA_VERSION, "segment": segment}
    lines = 1
    for chats in _batches(state.chats.values()):
        yield {"chats": [chat.to_dict() for chat in chats]}
        lines += 1
    for feed in state.feeds.values():
        yield {
            "feed": {
                "state": feed.state.to_dict(),
                "head": feed.head,
                "log": [entry.to_row() for entry in feed.log],
                "known": list(feed.known),
            }
        }
        lines += 1
    subs = (sub for chat_subs in state.subs.values() for sub in chat_subs.values())
    for batch in _batches(subs):
        yield {"subs": [_sub_row(s) for s in batch]}
        lines += 1
    yield {"counters": {"global": dict(state.counters)}}
    lines += 1
    for counts in _batches(state.chat_counters.items()):
        yield {"counters": {"chats": {str(chat_id): dict(values) for chat_id, values in counts}}}
        lines += 1
    yield {"end": {"lines": lines}}


def _sub_row(sub: Subscription) -> list[Any]:
    """``[chat_id, url, cursor, added_at]``, plus the options only when some are set."""
    row: list[Any] = [sub.chat_id, sub.url, sub.cursor, sub.added_at]
    options = sub.options()
    if options:
        row.append(options)
    return row


class SnapshotLoader:
    """Builds a :class:`State` from snapshot lines, one at a time.

    Memory is what the state needs and little more: repeated values are shared as they are
    read (chat types and time zones interned, one :class:`Delivery` per distinct schedule,
    a subscription's URL and chat id are its feed's and its chat's objects).
    """

    def __init__(self) -> None:
        self.state = State()
        self.segment: int | None = None
        self._lines = 0
        self._ended = False

    def add(self, line: object) -> None:
        """Apply one decoded line. Raises :class:`RecordError` if it does not belong here."""
        if not isinstance(line, dict):
            raise RecordError(f"snapshot line {self._lines + 1} is not a JSON object")
        if self._ended:
            raise RecordError("snapshot has lines after its end")
        try:
            if self.segment is None:
                if line.get("schema_version") != SCHEMA_VERSION:
                    raise RecordError("not a version-2 snapshot")
                self.segment = int(line["segment"])
            elif len(line) != 1:
                raise RecordError(f"snapshot line {self._lines + 1} has keys {sorted(line)}")
            elif "chats" in line:
                self._chats(line["chats"])
            elif "feed" in line:
                self._feed(line["feed"])
            elif "subs" in line:
                self._subs(line["subs"])
            elif "counters" in line:
                self.state.apply({"op": "counters", **dict(line["counters"])})
            elif "end" in line:
                if int(line["end"]["lines"]) != self._lines:
                    raise RecordError(
                        f"snapshot ends after {line['end']['lines']} lines but has {self._lines}"
                    )
                self._ended = True
            else:
                raise RecordError(f"unknown snapshot line {sorted(line)}")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RecordError(f"malformed snapshot line {self._lines + 1}: {exc!r}") from exc
        self._lines += 1

    def finish(self) -> tuple[State, int]:
        """The state and its segment. Raises :class:`RecordError` if the snapshot is cut short."""
        if self.segment is None or not self._ended:
            raise RecordError("snapshot is incomplete (no end line)")
        followers = self.state.followers
        for url, chats in followers.items():
            # A set grown one add at a time keeps up to twice the table a copy needs
            # (20 followers: 128 slots instead of 64); at 10,000 feeds that is ~10 MB.
            followers[url] = set(chats)
        return self.state, self.segment

    def _chats(self, rows: list[dict[str, Any]]) -> None:
        state = self.state
        for raw in rows:
            state.put_chat(compact_chat(chat_from(raw)))

    def _feed(self, raw: dict[str, Any]) -> None:
        feed_state = FeedState.from_dict(raw["state"])
        record = FeedRecord(feed_state, head=int(raw["head"]))
        url = feed_state.url
        title = feed_state.title or url
        record.log = [LogEntry.from_row(row, title, url) for row in raw["log"]]
        record.known = KnownIds(int(key) for key in raw["known"])
        self.state.feeds[url] = record

    def _subs(self, rows: list[list[Any]]) -> None:
        state = self.state
        for row in rows:
            raw_chat_id, raw_url, cursor, added_at = row[:4]
            chat_id, url = int(raw_chat_id), str(raw_url)
            chat = state.chats.get(chat_id)
            feed = state.feeds.get(url)
            if feed is None:
                feed = state.feeds[url] = FeedRecord(FeedState(url=url))
            sub = Subscription(
                # One int per chat and one string per feed URL, not one per subscription.
                chat_id if chat is None else chat.chat_id,
                feed.state.url,
                int(cursor),
                float(added_at),
            )
            if len(row) > 4:
                sub.set_options(dict(row[4]))
            state.put_sub(sub)


# ---------------------------------------------------------------------- bytes


def encode_line(line: Record) -> bytes:
    """One line (compact JSON, UTF-8, newline-terminated); the journal's encoding too."""
    return json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def snapshot_chunks(lines: Iterable[Record], size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Encoded lines joined into pieces of about ``size`` bytes (what a writer writes)."""
    pending: list[bytes] = []
    held = 0
    for line in lines:
        data = encode_line(line)
        pending.append(data)
        held += len(data)
        if held >= size:
            yield b"".join(pending)
            pending, held = [], 0
    if pending:
        yield b"".join(pending)


def encode_snapshot(lines: Iterable[Record]) -> bytes:
    """A whole snapshot as bytes (tests, benchmarks, small states; the service streams)."""
    return b"".join(snapshot_chunks(lines))


class SnapshotReader:
    """Decodes snapshot bytes fed in arbitrary chunks; see :class:`SnapshotLoader`.

    Attributes:
        head: the first bytes of the file (to tell a newer version from a corrupt file).
    """

    def __init__(self) -> None:
        self.head = b""
        self._loader = SnapshotLoader()
        self._partial = b""

    def feed(self, chunk: bytes) -> None:
        """Decode every complete line in ``chunk`` (blocking: call it off the event loop).

        Raises:
            RecordError: a line is not valid JSON or not a valid snapshot line.
        """
        if len(self.head) < HEAD_BYTES:
            self.head += chunk[: HEAD_BYTES - len(self.head)]
        data = self._partial + chunk if self._partial else chunk
        start = 0
        end = data.find(b"\n")
        while end >= 0:
            try:
                line = json.loads(data[start:end])
            except (ValueError, UnicodeDecodeError) as exc:
                raise RecordError(f"snapshot line is not valid JSON ({exc})") from exc
            self._loader.add(line)
            start = end + 1
            end = data.find(b"\n", start)
        self._partial = data[start:]

    def finish(self) -> tuple[State, int]:
        """The decoded state and segment. Raises :class:`RecordError` if it is incomplete."""
        if self._partial:
            raise RecordError(f"snapshot ends in a torn line ({len(self._partial)} bytes)")
        return self._loader.finish()


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a snapshot is decoded.

    Decoding allocates millions of objects and none of them is garbage, yet each allocation
    burst triggers a collection that walks everything built so far (at 100,000 chats that
    doubled the decode; benchmarks/bench_storage.py). The pause is process-wide, but only
    lasts while a snapshot is decoded.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def decode_snapshot(data: bytes) -> tuple[State, int]:
    """Parse a whole snapshot held in memory. Raises :class:`RecordError` if it is invalid."""
    reader = SnapshotReader()
    with gc_paused():
        reader.feed(data)
        return reader.finish()


def read_snapshot(path: Path) -> tuple[State, int]:
    """Read and decode the snapshot at ``path`` in chunks (blocking; worker process/thread).

    Raises:
        RecordError: not a valid snapshot.
        OSError: it cannot be read.
    """
    reader = SnapshotReader()
    with gc_paused(), path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            reader.feed(chunk)
        return reader.finish()
