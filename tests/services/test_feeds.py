"""FeedService, the one refresh pipeline: scripted fetcher, real storage, fake clock."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import ParamSpec, TypeVar

import pytest

from bot.models import FeedState, LogEntry
from bot.services.feed_errors import HTTPStatusError, NotAFeedError, ParseError
from bot.services.feeds import (
    MANUAL_RETRY_FLOOR_S,
    MAX_FAILURES,
    PAUSED_RETRY_S,
    FeedBackingOff,
    FeedService,
)
from bot.services.fetcher import FetchResult
from bot.services.metrics import Metrics
from bot.storage import StorageService
from tests.helpers.feeds import html_page_with_feed_link, rss
from tests.helpers.scripted import (
    CountingExecutor,
    FakeClock,
    ScriptedFetcher,
    not_modified,
    ok,
    page,
    reopened,
    story,
)

URL = "https://feeds.example/rss"
OTHER = "https://other.example/rss"
POLL = 600
P = ParamSpec("P")
R = TypeVar("R")


class Hook:
    """Records ``on_new_items`` calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[LogEntry]]] = []

    def __call__(self, url: str, entries: list[LogEntry]) -> None:
        self.calls.append((url, entries))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fetcher() -> ScriptedFetcher:
    return ScriptedFetcher()


@pytest.fixture
def executor() -> Iterator[CountingExecutor]:
    pool = CountingExecutor()
    yield pool
    pool.shutdown(wait=True)


@pytest.fixture
def hook() -> Hook:
    return Hook()


def make_service(
    fetcher: ScriptedFetcher,
    storage: StorageService,
    clock: FakeClock,
    executor: Executor | None = None,
    hook: Hook | None = None,
    executor_factory: Callable[[], Executor] | None = None,
) -> FeedService:
    service = FeedService(
        fetcher,  # type: ignore[arg-type]  # duck-typed stand-in for Fetcher
        storage,
        Metrics(process_metrics=False),
        poll_interval_s=POLL,
        parse_executor=executor,
        parse_executor_factory=executor_factory,
        clock=clock,
    )
    service.on_new_items = hook
    return service


@pytest.fixture
def feeds(
    fetcher: ScriptedFetcher,
    storage: StorageService,
    clock: FakeClock,
    executor: CountingExecutor,
    hook: Hook,
) -> FeedService:
    return make_service(fetcher, storage, clock, executor, hook)


def server_error() -> HTTPStatusError:
    return HTTPStatusError(500)


# ---------------------------------------------------------------------------- single flight


async def test_concurrent_refreshes_share_one_fetch_and_one_parse(
    feeds: FeedService, fetcher: ScriptedFetcher, executor: CountingExecutor
) -> None:
    fetcher.serve(URL, ok(URL, range(3)))
    fetcher.gate = asyncio.Event()
    refreshes = [asyncio.create_task(feeds.refresh(URL)) for _ in range(20)]
    news = [asyncio.create_task(feeds.latest([URL], 5)) for _ in range(5)]
    await fetcher.started.wait()
    await asyncio.sleep(0)  # every caller has joined the flight by now
    fetcher.gate.set()
    views = await asyncio.gather(*refreshes)
    answers = await asyncio.gather(*news)
    assert len(fetcher.calls) == 1
    assert executor.jobs == 1
    assert all(v is views[0] for v in views)
    assert [i.id for i in views[0].items] == ["s2", "s1", "s0"]
    assert all([i.id for i in items] == ["s2", "s1", "s0"] for items, _ in answers)


async def test_a_cancelled_caller_does_not_cancel_the_shared_fetch(
    feeds: FeedService, fetcher: ScriptedFetcher
) -> None:
    fetcher.serve(URL, ok(URL, range(2)))
    fetcher.gate = asyncio.Event()
    impatient = asyncio.create_task(feeds.refresh(URL))
    patient = asyncio.create_task(feeds.refresh(URL))
    await fetcher.started.wait()
    impatient.cancel()
    fetcher.gate.set()
    view = await patient
    assert view.title == "Stories"
    assert len(fetcher.calls) == 1
    assert impatient.cancelled()


# ---------------------------------------------------------------------------- new items


async def test_first_fetch_is_a_baseline_then_only_new_items_are_announced(
    feeds: FeedService, fetcher: ScriptedFetcher, storage: StorageService, hook: Hook
) -> None:
    fetcher.serve(URL, ok(URL, range(3)), ok(URL, range(5)))
    view = await feeds.refresh(URL)
    assert len(view.items) == 3
    assert hook.calls == []  # what a feed holds when first seen is history, not news
    assert [e.item.id for e in storage.feed_log(URL)] == ["s0", "s1", "s2"]
    assert storage.feed_head(URL) == 3

    await feeds.refresh(URL)
    [(url, entries)] = hook.calls
    assert url == URL
    assert [(e.seq, e.item.id) for e in entries] == [(4, "s3"), (5, "s4")]  # oldest first
    assert storage.feed_head(URL) == 5


def with_bodies(numbers: range) -> FetchResult:
    """A 200 answer whose items carry HTML descriptions (so they get summaries)."""
    items = [{**story(n), "description": f"<p>Body <b>{n}</b></p>"} for n in numbers]
    return FetchResult(
        url=URL, status="ok", body=rss(items, title="Stories"), etag=None, last_modified=None,
        content_type="application/rss+xml",
    )  # fmt: skip


async def test_only_items_not_logged_yet_have_their_bodies_converted(
    feeds: FeedService, fetcher: ScriptedFetcher, hook: Hook
) -> None:
    fetcher.serve(URL, with_bodies(range(3)), with_bodies(range(5)))
    first = await feeds.refresh(URL)
    second = await feeds.refresh(URL)
    # The first fetch is the feed's baseline (history nobody is sent): no body converted.
    assert [(i.id, i.summary) for i in first.items] == [("s2", ""), ("s1", ""), ("s0", "")]
    # The second poll converted only the two new items: the logged ones were named to the
    # parser as known.
    assert [(i.id, i.summary) for i in second.items] == [
        ("s4", "Body <b>4</b>"), ("s3", "Body <b>3</b>"), ("s2", ""), ("s1", ""), ("s0", ""),
    ]  # fmt: skip
    [(_url, entries)] = hook.calls
    assert [(e.item.id, e.item.summary) for e in entries] == [
        ("s3", "Body <b>3</b>"), ("s4", "Body <b>4</b>"),
    ]  # fmt: skip


async def test_the_first_items_of_a_feed_that_was_empty_are_news(
    feeds: FeedService, fetcher: ScriptedFetcher, storage: StorageService, hook: Hook
) -> None:
    # A well-formed feed with no items yet can be followed; its first item must reach the
    # followers, not vanish into a "baseline".
    fetcher.serve(URL, ok(URL, []), ok(URL, [1, 2]))
    assert (await feeds.refresh(URL)).items == ()
    assert storage.feed_head(URL) == 0
    await feeds.refresh(URL)
    assert [[e.item.id for e in entries] for _, entries in hook.calls] == [["s1", "s2"]]


async def test_an_empty_feed_that_then_fails_still_announces_its_first_items(
    feeds: FeedService, fetcher: ScriptedFetcher, clock: FakeClock, hook: Hook
) -> None:
    # The baseline was taken by the first (empty) success; a failure in between must not
    # turn the first real items back into "history".
    fetcher.serve(URL, ok(URL, []), server_error(), ok(URL, [1]))
    await feeds.refresh(URL)
    clock.advance(POLL)
    with pytest.raises(HTTPStatusError):
        await feeds.refresh(URL)
    clock.advance(POLL)
    await feeds.refresh(URL)
    assert [[e.item.id for e in entries] for _, entries in hook.calls] == [["s1"]]


async def test_the_first_success_after_failures_is_still_a_baseline(
    feeds: FeedService, fetcher: ScriptedFetcher, clock: FakeClock, hook: Hook
) -> None:
    fetcher.serve(URL, server_error(), ok(URL, [1, 2]))
    with pytest.raises(HTTPStatusError):
        await feeds.refresh(URL)
    clock.advance(POLL)
    await feeds.refresh(URL)
    assert hook.calls == []


async def test_an_item_that_drops_out_and_reappears_is_not_new(
    feeds: FeedService, fetcher: ScriptedFetcher, storage: StorageService, hook: Hook
) -> None:
    fetcher.serve(URL, ok(URL, [0, 1, 2]), ok(URL, [1, 2, 3]), ok(URL, [0, 1, 2, 3]))
    for _ in range(3):
        await feeds.refresh(URL)
    assert [[e.item.id for e in entries] for _, entries in hook.calls] == [["s3"]]
    assert storage.feed_head(URL) == 4


async def test_not_modified_costs_no_parse_and_keeps_the_view(
    feeds: FeedService, fetcher: ScriptedFetcher, executor: CountingExecutor, hook: Hook
) -> None:
    fetcher.serve(URL, ok(URL, range(2)), not_modified(URL))
    first = await feeds.refresh(URL)
    second = await feeds.refresh(URL)
    assert executor.jobs == 1
    assert second.items == first.items
    assert feeds.view(URL) is not None
    assert hook.calls == []
    assert [(c.etag, c.last_modified) for c in fetcher.calls] == [
        (None, None),
        ('"v1"', "Sun, 01 Mar 2026 12:00:00 GMT"),
    ]


async def test_conditional_headers_only_when_the_feed_has_a_log(
    feeds: FeedService, fetcher: ScriptedFetcher, storage: StorageService
) -> None:
    # A remembered ETag without a log (e.g. the log was lost) must not get a 304 back:
    # there would be nothing to serve /news from.
    storage.set_feed_state(FeedState(url=URL, etag='"old"', last_modified="yesterday"))
    fetcher.serve(URL, ok(URL, range(2), etag='"v2"', last_modified=None), not_modified(URL))
    await feeds.refresh(URL)
    await feeds.refresh(URL)
    assert [(c.etag, c.last_modified) for c in fetcher.calls] == [(None, None), ('"v2"', None)]


# ---------------------------------------------------------------------------- failures


async def test_a_failing_feed_backs_off_everywhere_without_fetching(
    feeds: FeedService, fetcher: ScriptedFetcher, clock: FakeClock
) -> None:
    fetcher.serve(URL, server_error(), server_error(), ok(URL, range(2)))
    with pytest.raises(HTTPStatusError):
        await feeds.refresh(URL)
    assert len(fetcher.calls) == 1

    # /news while backing off: the last error at once, no new fetch (issue 8's dead-feed bug).
    for _ in range(3):
        items, errors = await feeds.latest([URL], 10)
        assert items == []
        [(url, error)] = errors
        assert url == URL
        assert isinstance(error, FeedBackingOff)
        assert error.kind == "backoff"
        assert error.reason == "the server answered 500"
    with pytest.raises(FeedBackingOff):
        await feeds.refresh(URL)  # the poll or a digest asking
    assert len(fetcher.calls) == 1

    clock.advance(POLL - 1)
    with pytest.raises(FeedBackingOff):
        await feeds.refresh(URL)
    assert len(fetcher.calls) == 1
    clock.advance(1)
    with pytest.raises(HTTPStatusError):
        await feeds.refresh(URL)  # first backoff over: tried again, fails again
    assert len(fetcher.calls) == 2

    clock.advance(2 * POLL - 1)  # the second backoff is twice as long
    with pytest.raises(FeedBackingOff):
        await feeds.refresh(URL)
    clock.advance(1)
    view = await feeds.refresh(URL)
    assert len(fetcher.calls) == 3
    assert len(view.items) == 2


async def test_manual_refresh_may_retry_after_the_floor(
    feeds: FeedService, fetcher: ScriptedFetcher, storage: StorageService, clock: FakeClock
) -> None:
    fetcher.serve(URL, server_error(), server_error(), server_error(), ok(URL, range(1)))
    for _ in range(3):  # backoff is now 4 × POLL
        with pytest.raises(HTTPStatusError):
            await feeds.refresh(URL)
        clock.advance(3600)
    assert len(fetcher.calls) == 3
    clock.advance(-3600 + MANUAL_RETRY_FLOOR_S - 1)
    with pytest.raises(FeedBackingOff):
        await feeds.refresh(URL, manual=True)
    with pytest.raises(FeedBackingOff):
        await feeds.refresh(URL)
    assert len(fetcher.calls) == 3
    clock.advance(1)
    with pytest.raises(FeedBackingOff):
        await feeds.refresh(URL)  # a poll still waits...
    await feeds.refresh(URL, manual=True)  # ...but /add may try now
    assert len(fetcher.calls) == 4
    state = storage.feed_state(URL)
    assert state is not None
    assert (state.failures, state.paused, state.last_error) == (0, False, None)


async def test_pause_after_max_failures_is_reported_once(
    feeds: FeedService, fetcher: ScriptedFetcher, storage: StorageService, clock: FakeClock
) -> None:
    fetcher.serve(URL, HTTPStatusError(503))
    feeds.track(URL)
    reports = []
    for _ in range(MAX_FAILURES + 3):
        reports.append(await feeds.poll_due())
        clock.advance(PAUSED_RETRY_S)  # longer than any backoff: the feed is due again
    assert [len(r.newly_paused) for r in reports].count(1) == 1
    assert reports[MAX_FAILURES - 1].newly_paused == [(URL, "the server answered 503")]
    assert all(r.failed == 1 for r in reports)
    assert len(fetcher.calls) == MAX_FAILURES + 3  # a paused feed is still retried, quietly
    state = storage.feed_state(URL)
    assert state is not None
    assert state.paused is True
    assert state.failures == MAX_FAILURES + 3
    assert state.last_error == "the server answered 503"

    fetcher.serve(URL, ok(URL, range(1)))
    report = await feeds.poll_due()
    assert (report.refreshed, report.failed, report.newly_paused) == (1, 0, [])
    state = storage.feed_state(URL)
    assert state is not None
    assert (state.paused, state.failures) == (False, 0)


# ---------------------------------------------------------------------------- /news


async def test_latest_merges_newest_first_dedupes_and_stops_at_the_limit(
    feeds: FeedService, fetcher: ScriptedFetcher
) -> None:
    fetcher.serve(URL, ok(URL, [0, 2, 4, 6], feed="a"))
    fetcher.serve(OTHER, ok(OTHER, [1, 3, 5], feed="b"))
    items, errors = await feeds.latest([URL, OTHER, URL], 5)
    assert errors == []
    assert [i.id for i in items] == ["a6", "b5", "a4", "b3", "a2"]
    everything, _ = await feeds.latest([URL, OTHER], 100)
    assert len(everything) == 7
    assert len({i.id for i in everything}) == 7


async def test_latest_drops_an_item_shared_by_two_feeds(
    feeds: FeedService, fetcher: ScriptedFetcher
) -> None:
    fetcher.serve(URL, ok(URL, [1, 2], feed="x"))
    fetcher.serve(OTHER, ok(OTHER, [2, 3], feed="x"))  # "x2" is in both
    items, _ = await feeds.latest([URL, OTHER], 10)
    assert [i.id for i in items] == ["x3", "x2", "x1"]


async def test_a_failing_feed_never_breaks_the_others(
    feeds: FeedService, fetcher: ScriptedFetcher
) -> None:
    broken = "https://broken.example/rss"
    fetcher.serve(URL, ok(URL, range(2)))
    fetcher.serve(broken, HTTPStatusError(404))
    items, errors = await feeds.latest([broken, URL], 10)
    assert [i.id for i in items] == ["s1", "s0"]
    [(url, error)] = errors
    assert url == broken
    assert isinstance(error, HTTPStatusError)
    assert error.reason == "the server answered 404"


async def test_view_is_rebuilt_from_the_log_after_a_restart_without_fetching(
    feeds: FeedService, fetcher: ScriptedFetcher, storage: StorageService, clock: FakeClock
) -> None:
    fetcher.serve(URL, ok(URL, range(3)), ok(URL, range(4)))
    await feeds.refresh(URL)
    await feeds.refresh(URL)
    async with reopened(storage) as restarted:
        fresh_fetcher = ScriptedFetcher()
        after = make_service(fresh_fetcher, restarted, clock)
        view = after.view(URL)
        assert view is not None
        assert view.title == "Stories"
        assert [i.id for i in view.items] == ["s3", "s2", "s1", "s0"]
        items, errors = await after.latest([URL], 2)
        assert [i.title for i in items] == ["Story s3", "Story s2"]
        assert errors == []
        assert fresh_fetcher.calls == []
        assert after.view("https://never.example/rss") is None


# ---------------------------------------------------------------------------- polling


async def test_take_due_returns_only_due_and_wanted_feeds(
    feeds: FeedService, storage: StorageService, clock: FakeClock
) -> None:
    later = "https://later.example/rss"
    unwanted = "https://unwanted.example/rss"
    storage.set_feed_state(FeedState(url=later, last_attempt=clock.now - POLL + 30))
    feeds.set_wanted(lambda url: url != unwanted)
    for url in (URL, later, unwanted):
        feeds.track(url)
    feeds.track(URL)  # tracking twice changes nothing
    assert feeds.take_due() == [URL]
    assert feeds.take_due() == []  # taken: not due again until rescheduled
    clock.advance(29)
    assert feeds.take_due() == []
    clock.advance(1)
    assert feeds.take_due() == [later]
    clock.advance(10 * POLL)
    assert feeds.take_due() == []  # the unwanted feed was dropped for good


async def test_poll_reschedules_after_success_and_after_failure(
    feeds: FeedService, fetcher: ScriptedFetcher, clock: FakeClock, hook: Hook
) -> None:
    fetcher.serve(URL, ok(URL, range(2)), ok(URL, range(3)), server_error(), server_error())
    feeds.track(URL)
    first = await feeds.poll_due()
    assert (first.refreshed, first.new_items) == (1, 0)  # a baseline is history, not news
    assert hook.calls == []
    clock.advance(POLL - 1)
    assert (await feeds.poll_due()).refreshed == 0
    clock.advance(1)
    report = await feeds.poll_due()
    assert (report.refreshed, report.new_items) == (1, 1)
    assert len(hook.calls) == 1
    clock.advance(POLL)
    assert (await feeds.poll_due()).failed == 1
    clock.advance(POLL - 1)  # after one failure: the normal interval
    assert (await feeds.poll_due()).failed == 0
    clock.advance(1)
    assert (await feeds.poll_due()).failed == 1
    clock.advance(2 * POLL - 1)  # after two: twice the interval
    assert len(fetcher.calls) == 4
    assert (await feeds.poll_due()).failed == 0
    clock.advance(1)
    assert (await feeds.poll_due()).failed == 1
    assert len(fetcher.calls) == 5


async def test_a_feed_unfollowed_meanwhile_is_not_rescheduled(
    feeds: FeedService, fetcher: ScriptedFetcher, clock: FakeClock
) -> None:
    wanted = {URL}
    feeds.set_wanted(lambda url: url in wanted)
    fetcher.serve(URL, ok(URL, range(1)))
    feeds.track(URL)
    await feeds.poll_due()
    wanted.clear()
    clock.advance(POLL)
    await feeds.poll_due()
    clock.advance(10 * POLL)
    await feeds.poll_due()
    assert len(fetcher.calls) == 1


# ---------------------------------------------------------------------------- worker process


@pytest.fixture
def process_pool() -> Iterator[ProcessPoolExecutor]:
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    pool = ProcessPoolExecutor(1, mp_context=context)
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


async def test_parsing_in_a_worker_process(
    fetcher: ScriptedFetcher,
    storage: StorageService,
    clock: FakeClock,
    hook: Hook,
    process_pool: ProcessPoolExecutor,
) -> None:
    service = make_service(fetcher, storage, clock, process_pool, hook)
    garbage = "https://garbage.example/feed"
    fetcher.serve(URL, ok(URL, range(2)), ok(URL, range(3)))
    fetcher.serve(
        garbage,
        FetchResult(garbage, "ok", b"\x00\x01 not xml at all", None, None, "text/plain"),
    )
    await service.refresh(URL)
    view = await service.refresh(URL)
    assert [i.id for i in view.items] == ["s2", "s1", "s0"]
    assert [[e.item.id for e in entries] for _, entries in hook.calls] == [["s2"]]
    with pytest.raises(NotAFeedError) as err:  # the worker's exception crossed back intact
        await service.refresh(garbage)
    assert err.value.reason == NotAFeedError.reason


class DyingExecutor(ThreadPoolExecutor):
    """A parser pool whose worker process has died: every job fails as a broken pool's does."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.stopped = False

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        """Fail the job the way ``ProcessPoolExecutor`` does after a worker died."""
        future: Future[R] = Future()
        future.set_exception(BrokenProcessPool("A child process terminated abruptly"))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Record the shutdown, then shut down."""
        self.stopped = True
        super().shutdown(wait=wait, cancel_futures=cancel_futures)


async def test_a_dead_parser_worker_fails_only_its_feed_and_the_pool_is_replaced(
    fetcher: ScriptedFetcher,
    storage: StorageService,
    clock: FakeClock,
    executor: CountingExecutor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = DyingExecutor()
    service = make_service(fetcher, storage, clock, dead, executor_factory=lambda: executor)
    fetcher.serve(URL, ok(URL, range(2)))
    fetcher.serve(OTHER, ok(OTHER, range(3)))
    with pytest.raises(ParseError) as err:
        await service.refresh(URL)
    assert isinstance(err.value.__cause__, BrokenProcessPool)
    assert err.value.reason == ParseError.reason  # "the feed could not be read"
    state = service.state_of(URL)
    assert state is not None and state.failures == 1  # this feed backs off
    assert dead.stopped and service.parse_executor is executor  # a new pool took over
    view = await service.refresh(OTHER)  # the next feed parses in the new pool
    assert [i.id for i in view.items] == ["s2", "s1", "s0"]
    assert executor.jobs == 1
    assert "a parser process died" in caplog.text


# ---------------------------------------------------------------------------- /add


async def test_validate_discovers_the_feed_of_a_web_page(
    feeds: FeedService, fetcher: ScriptedFetcher, storage: StorageService
) -> None:
    site = "https://site.example/blog"
    fetcher.serve(site, page(site, html_page_with_feed_link("/feed.xml")))
    feed_url = "https://site.example/feed.xml"
    fetcher.serve(feed_url, ok(feed_url, range(2), title="Site news"))
    assert await feeds.validate(site) == (feed_url, "Site news")
    assert storage.feed_head(feed_url) == 2  # the baseline is logged: /news costs no fetch
    items, _ = await feeds.latest([feed_url], 5)
    assert len(items) == 2
    assert [c.url for c in fetcher.calls] == [site, feed_url]


async def test_validate_refuses_a_page_without_a_feed(
    feeds: FeedService, fetcher: ScriptedFetcher
) -> None:
    site = "https://plain.example/"
    fetcher.serve(site, page(site, "<!DOCTYPE html><html><body><p>hi</p></body></html>"))
    with pytest.raises(NotAFeedError) as err:
        await feeds.validate(site)
    assert err.value.reason == "that page links to no RSS or Atom feed"


async def test_validate_of_a_failing_known_feed_respects_the_manual_floor(
    feeds: FeedService, fetcher: ScriptedFetcher, clock: FakeClock
) -> None:
    fetcher.serve(URL, server_error(), ok(URL, range(1)))
    with pytest.raises(HTTPStatusError):
        await feeds.refresh(URL)
    with pytest.raises(FeedBackingOff):
        await feeds.validate(URL)
    clock.advance(MANUAL_RETRY_FLOOR_S)
    assert await feeds.validate(URL) == (URL, "Stories")
    assert len(fetcher.calls) == 2


async def test_a_poll_fetches_at_most_the_configured_number_of_feeds_at_once(
    fetcher: ScriptedFetcher, storage: StorageService, clock: FakeClock
) -> None:
    feeds = FeedService(
        fetcher,  # type: ignore[arg-type]  # duck-typed stand-in for Fetcher
        storage,
        Metrics(process_metrics=False),
        poll_interval_s=POLL,
        poll_concurrency=3,
        clock=clock,
    )
    urls = [f"https://f{n}.example/rss" for n in range(7)]
    for url in urls:
        fetcher.serve(url, ok(url, range(1)))
        feeds.track(url)
    fetcher.gate = asyncio.Event()
    poll = asyncio.create_task(feeds.poll_due())
    await fetcher.started.wait()
    for _ in range(20):  # let every fetch the gate allows start
        await asyncio.sleep(0)
    in_flight = len(fetcher.calls)
    fetcher.gate.set()
    report = await poll
    assert in_flight == 3
    assert len(fetcher.calls) == 7
    assert report.failed == 0
