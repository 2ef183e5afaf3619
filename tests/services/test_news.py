"""NewsService with a scripted fetcher and a fake clock: single flight, backoff, 304, pause."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from bot.models import FeedItem, ParsedFeed
from bot.services.fetcher import FeedFetchError, FetchResult
from bot.services.metrics import Metrics
from bot.services.news import (
    MAX_FAILURES,
    PAUSED_RETRY_S,
    CachedFeed,
    FeedUnavailable,
    NewsService,
    newest_first,
)
from bot.services.storage import StorageService

URL = "https://feeds.example/rss"
T0 = datetime(2026, 11, 24, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class ScriptedFetcher:
    """Answers from a queue of outcomes; records calls; can hold a fetch open."""

    outcomes: list[FetchResult | FeedFetchError] = field(default_factory=list)
    calls: list[tuple[str, str | None]] = field(default_factory=list)
    gate: asyncio.Event | None = None

    async def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult:
        self.calls.append((url, etag))
        if self.gate is not None:
            await self.gate.wait()
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, FeedFetchError):
            raise outcome
        return outcome


def ok(body: bytes = b"feed", etag: str | None = '"v1"') -> FetchResult:
    return FetchResult(
        url=URL,
        status="ok",
        body=body,
        etag=etag,
        last_modified=None,
        content_type="application/rss+xml",
    )


NOT_MODIFIED = FetchResult(
    url=URL, status="not_modified", body=None, etag='"v1"', last_modified=None, content_type=None
)


def failure() -> FeedFetchError:
    return FeedFetchError("http_status", "the server answered 500")


class Parser:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, body: bytes, url: str) -> ParsedFeed:
        self.calls += 1
        item = FeedItem(
            id=body.decode(),
            title=body.decode(),
            link=None,
            published=T0 + timedelta(minutes=self.calls),
            source_title="S",
            feed_url=url,
        )
        return ParsedFeed(title="Feed title", items=(item,))


@pytest.fixture
async def parts(
    storage: StorageService,
) -> AsyncIterator[tuple[NewsService, ScriptedFetcher, Parser, Clock]]:
    fetcher, parser, clock = ScriptedFetcher(), Parser(), Clock()
    service = NewsService(
        fetcher,  # type: ignore[arg-type]  # duck-typed stand-in for Fetcher
        storage,
        Metrics(),
        poll_interval_s=600,
        parse=parser,
        clock=clock,
    )
    yield service, fetcher, parser, clock


async def test_concurrent_requests_share_one_fetch(
    parts: tuple[NewsService, ScriptedFetcher, Parser, Clock],
) -> None:
    service, fetcher, parser, _ = parts
    fetcher.outcomes = [ok()]
    fetcher.gate = asyncio.Event()
    waiters = [asyncio.create_task(service.latest([URL], 5)) for _ in range(50)]
    await asyncio.sleep(0.01)
    fetcher.gate.set()
    results = await asyncio.gather(*waiters)
    assert len(fetcher.calls) == 1
    assert parser.calls == 1
    assert all(r[0][0].title == "feed" for r in results)


async def test_latest_merges_feeds_newest_first_and_dedups(
    parts: tuple[NewsService, ScriptedFetcher, Parser, Clock],
) -> None:
    service, _, _, _ = parts
    a = [
        FeedItem(f"a{i}", f"a{i}", None, T0 - timedelta(minutes=2 * i), "A", "u1")
        for i in range(50)
    ]
    b = [
        FeedItem(f"b{i}", f"b{i}", None, T0 - timedelta(minutes=2 * i + 1), "B", "u2")
        for i in range(50)
    ]
    b.append(FeedItem("a0", "dup of a0", None, T0 + timedelta(days=1), "B", "u2"))
    undated = [FeedItem("n0", "undated", None, None, "C", "u3")]
    for url, items in (("u1", a), ("u2", b), ("u3", undated)):
        service._cache[url] = CachedFeed("t", tuple(newest_first(items)), 0.0)
    got, errors = await service.latest(["u1", "u2", "u3", "u1"], 6)
    assert errors == []
    assert [i.id for i in got] == ["a0", "b0", "a1", "b1", "a2", "b2"]
    assert got[0].title == "dup of a0"  # the newest copy wins; the older one is dropped
    everything, _ = await service.latest(["u1", "u2", "u3"], 1000)
    assert len(everything) == 101
    assert everything[-1].id == "n0"  # undated items come last


async def test_a_cancelled_waiter_does_not_cancel_the_shared_fetch(
    parts: tuple[NewsService, ScriptedFetcher, Parser, Clock],
) -> None:
    service, fetcher, _, _ = parts
    fetcher.outcomes = [ok()]
    fetcher.gate = asyncio.Event()
    impatient = asyncio.create_task(service.refresh(URL))
    patient = asyncio.create_task(service.refresh(URL))
    await asyncio.sleep(0.01)
    impatient.cancel()
    fetcher.gate.set()
    entry = await patient
    assert entry.title == "Feed title"
    assert len(fetcher.calls) == 1


async def test_not_modified_costs_no_parse_and_uses_etag_only_with_a_cached_body(
    parts: tuple[NewsService, ScriptedFetcher, Parser, Clock],
) -> None:
    service, fetcher, parser, _ = parts
    fetcher.outcomes = [ok(), NOT_MODIFIED]
    await service.refresh(URL)
    await service.refresh(URL)
    assert fetcher.calls == [(URL, None), (URL, '"v1"')]
    assert parser.calls == 1


async def test_backoff_doubles_then_pauses(
    parts: tuple[NewsService, ScriptedFetcher, Parser, Clock], storage: StorageService
) -> None:
    service, fetcher, _, clock = parts
    fetcher.outcomes = [failure()]
    gaps = []
    for _ in range(MAX_FAILURES):
        with pytest.raises(FeedUnavailable) as err:
            await service.refresh(URL)
        assert err.value.reason == "the server answered 500"
        due_in = service._next_due[URL] - clock.now
        gaps.append(due_in)
        assert service.due([URL]) == []
        clock.now += due_in
        assert service.due([URL]) == [URL]
    assert gaps[:4] == [600, 1200, 2400, 4800]
    assert gaps[4] == PAUSED_RETRY_S
    state = await storage.get_feed_state(URL)
    assert state is not None
    assert state.paused is True
    assert state.last_error == "the server answered 500"
    assert "feed_failures" not in (await storage.get_counters())["global"]  # batched...
    await service.save_counts()  # ...until the poll cycle (or cold fetch) saves them
    counters = await storage.get_counters()
    assert counters["global"]["feed_failures"] == MAX_FAILURES
    assert counters["global"]["feed_fetches"] == MAX_FAILURES


async def test_poll_reports_newly_paused_once(
    parts: tuple[NewsService, ScriptedFetcher, Parser, Clock], storage: StorageService
) -> None:
    service, fetcher, _, clock = parts
    fetcher.outcomes = [failure()]
    paused_reports = []
    for _ in range(MAX_FAILURES + 3):
        report = await service.poll([URL])
        paused_reports.append(len(report.newly_paused))
        clock.now += PAUSED_RETRY_S
    assert sum(paused_reports) == 1
    assert paused_reports[MAX_FAILURES - 1] == 1
    counters = await storage.get_counters()  # each cycle persisted its counts
    assert counters["global"]["feed_failures"] == MAX_FAILURES + 3


async def test_success_resets_failures(
    parts: tuple[NewsService, ScriptedFetcher, Parser, Clock], storage: StorageService
) -> None:
    service, fetcher, _, _ = parts
    fetcher.outcomes = [failure(), failure(), ok()]
    for _ in range(2):
        with pytest.raises(FeedUnavailable):
            await service.refresh(URL)
    await service.refresh(URL)
    state = await storage.get_feed_state(URL)
    assert state is not None
    assert (state.failures, state.paused, state.etag) == (0, False, '"v1"')
