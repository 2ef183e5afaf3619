"""Feeds: the one ``refresh()`` pipeline that the poll job, ``/news`` and ``/add`` all use.

``refresh(url)`` = backoff check → conditional fetch → parse (in a worker process) → log the
new items in storage (durably) → tell the dispatcher. Single flight: however many callers
ask for the same feed at once, they share one request and one parse. A failing feed backs
off exponentially *everywhere* (poll, ``/news``, digests): while it waits, callers get its
last error at once instead of a new fetch. After :data:`MAX_FAILURES` failures in a row it is
paused (retried quietly every :data:`PAUSED_RETRY_S`) and its followers are told once.

The poll job asks :meth:`FeedService.poll_due` for the feeds whose time has come; due times
live in a heap, so a poll tick costs O(due feeds), not O(all feeds).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import heapq
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from bot import heap
from bot.config import DEFAULT_POLL_CONCURRENCY
from bot.i18n import N_
from bot.models import FeedItem, FeedState, LogEntry, ParsedFeed
from bot.services.feed_discovery import discover_feed_links, looks_like_html
from bot.services.feed_errors import (
    RECENT_FAILURE_REASON,
    FeedError,
    NotAFeedError,
    ParseError,
)
from bot.services.feed_parser import parse_feed
from bot.services.fetcher import Fetcher, FetchResult
from bot.services.metrics import Metrics
from bot.storage import StorageService

logger = logging.getLogger(__name__)

MAX_FAILURES = 5  # consecutive failures before a feed is paused
MAX_BACKOFF_S = 6 * 3600
PAUSED_RETRY_S = 6 * 3600  # a paused feed is still tried this often, silently
MANUAL_RETRY_FLOOR_S = 60  # /add may retry a failing feed at once, but not more often
# A poll cycle leaves many long-lived objects (views, logged items); every this many feeds
# they are frozen out of the cyclic GC's reach (bot/heap.py), so its full passes stay short.
SETTLE_EVERY = 500
TRANSIENT_MAX = 1000  # failing feeds nobody follows whose backoff is remembered in memory
_EPOCH = datetime.min.replace(tzinfo=UTC)

T = TypeVar("T")
NewItemsHook = Callable[[str, list[LogEntry]], None]
ReportHook = Callable[["PollReport"], Awaitable[None]]


class FeedBackingOff(FeedError):
    """The feed failed recently and waits for its next attempt; ``reason`` is its last error."""

    kind: ClassVar[str] = "backoff"


@dataclass(slots=True)
class FeedView:
    """What ``/news`` reads: a feed's title and current items, newest first."""

    title: str
    items: tuple[FeedItem, ...]


@dataclass(slots=True)
class PollReport:
    """Outcome of one poll cycle, for logs and for telling chats about paused feeds."""

    refreshed: int = 0
    not_modified: int = 0
    failed: int = 0
    new_items: int = 0
    newly_paused: list[tuple[str, str]] = field(default_factory=list)  # (url, reason)


def _sort_key(item: FeedItem) -> datetime:
    return item.published or _EPOCH


def newest_first(items: Iterable[FeedItem]) -> tuple[FeedItem, ...]:
    """Sort items newest first; undated items go last, in their original order."""
    return tuple(sorted(items, key=_sort_key, reverse=True))


def retry_delay(state: FeedState, poll_interval_s: int) -> float:
    """Seconds from a feed's last attempt to its next one."""
    if state.paused:
        return PAUSED_RETRY_S
    if state.failures:
        return min(poll_interval_s * 2 ** (state.failures - 1), MAX_BACKOFF_S)
    return poll_interval_s


def safe_url(url: str) -> str:
    """Host and path only, for logs: query strings of private feeds may carry tokens."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


class FeedService:
    """Fetches, parses and logs feeds; serves ``/news`` from memory."""

    def __init__(
        self,
        fetcher: Fetcher,
        storage: StorageService,
        metrics: Metrics,
        *,
        poll_interval_s: int,
        poll_concurrency: int = DEFAULT_POLL_CONCURRENCY,
        parse_executor: Executor | None = None,
        parse_executor_factory: Callable[[], Executor] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fetcher = fetcher
        self._storage = storage
        self._metrics = metrics
        self._poll_interval_s = poll_interval_s
        self._poll_concurrency = poll_concurrency
        self._executor = parse_executor
        self._executor_factory = parse_executor_factory
        self._clock = clock
        self.on_new_items: NewItemsHook | None = None
        self.on_report: ReportHook | None = None
        self.discovered = 0  # new items found since start (a feed's baseline not included)
        self._views: dict[str, FeedView] = {}
        # url -> the refresh in flight. Only touched on the event loop without an await
        # between check and insert, so it needs no lock.
        self._inflight: dict[str, asyncio.Task[FeedView]] = {}
        self._due: list[tuple[float, str]] = []  # heap of (due time, url)
        self._due_at: dict[str, float] = {}  # the live entry per url (others are stale)
        self._wanted: Callable[[str], bool] = lambda url: True
        self._poll_task: asyncio.Task[PollReport] | None = None
        # Health of feeds nobody follows (yet): a failing /add must not leave state in
        # storage, but its backoff still has to hold. Bounded; oldest forgotten first.
        self._transient: OrderedDict[str, FeedState] = OrderedDict()

    # ------------------------------------------------------------------ feed state
    def state_of(self, url: str) -> FeedState | None:
        """The feed's HTTP/health state: stored for followed feeds, in memory otherwise."""
        return self._storage.feed_state(url) or copy.copy(self._transient.get(url))

    def _save_state(self, state: FeedState) -> None:
        if self._wanted(state.url) or self._storage.feed_state(state.url) is not None:
            self._transient.pop(state.url, None)
            self._storage.set_feed_state(state)
            return
        self._transient[state.url] = copy.copy(state)
        self._transient.move_to_end(state.url)
        while len(self._transient) > TRANSIENT_MAX:
            self._transient.popitem(last=False)

    # ------------------------------------------------------------------ reading
    def view(self, url: str) -> FeedView | None:
        """The feed's current items, from memory; rebuilt from its log after a restart."""
        view = self._views.get(url)
        if view is None:
            log = self._storage.feed_log(url)
            state = self.state_of(url)
            if not log or state is None:
                return None
            view = FeedView(state.title or url, newest_first(e.item for e in log))
            self._views[url] = view
        return view

    async def latest(
        self, urls: Sequence[str], limit: int
    ) -> tuple[list[FeedItem], list[tuple[str, FeedError]]]:
        """The ``limit`` newest items across ``urls``, and the feeds that could not be read.

        From memory; a feed with nothing in memory is refreshed now (shared with any other
        caller, and subject to its backoff). Each feed's items are newest first, so this
        merges lazily and stops at ``limit``: it runs on every ``/news``.
        """
        unique = list(dict.fromkeys(urls))
        errors: list[tuple[str, FeedError]] = []
        cold = [u for u in unique if self.view(u) is None]
        if cold:
            results = await asyncio.gather(*(self.refresh(u) for u in cold), return_exceptions=True)
            for url, result in zip(cold, results, strict=True):
                if isinstance(result, FeedError):
                    errors.append((url, result))
                elif isinstance(result, BaseException):
                    raise result
        lists = [view.items for u in unique if (view := self._views.get(u))]
        seen: set[str] = set()
        out: list[FeedItem] = []
        for item in heapq.merge(*lists, key=_sort_key, reverse=True):
            if item.id not in seen:
                seen.add(item.id)
                out.append(item)
                if len(out) >= limit:
                    break
        return out, errors

    # ------------------------------------------------------------------ refreshing
    async def refresh(
        self, url: str, *, manual: bool = False, fetched: FetchResult | None = None
    ) -> FeedView:
        """Fetch ``url`` now unless it is backing off, sharing the fetch with other callers.

        Args:
            url: the feed.
            manual: a user asked (``/add``): retry a failing feed if its last attempt is
                older than :data:`MANUAL_RETRY_FLOOR_S`.
            fetched: the feed's document, already downloaded (``/add`` looked at it to tell
                a page from a feed); used instead of fetching again.

        Raises:
            FeedError: the fetch or parse failed now, or earlier and the feed is backing off.
        """
        task = self._inflight.get(url)
        if task is None:
            task = asyncio.create_task(
                self._refresh(url, manual, fetched), name=f"refresh {safe_url(url)}"
            )
            self._inflight[url] = task
            task.add_done_callback(functools.partial(self._finished, url))
        # shield: one impatient caller being cancelled must not cancel everyone's fetch.
        return await asyncio.shield(task)

    def _finished(self, url: str, task: asyncio.Task[FeedView]) -> None:
        if self._inflight.get(url) is task:
            del self._inflight[url]
        if not task.cancelled():
            task.exception()  # mark retrieved: waiters may all have gone away

    def _check_backoff(self, state: FeedState | None, manual: bool) -> None:
        if state is None or not (state.failures or state.paused):
            return
        now = self._clock()
        wait = state.last_attempt + retry_delay(state, self._poll_interval_s) - now
        if manual:
            wait = min(wait, state.last_attempt + MANUAL_RETRY_FLOOR_S - now)
        if wait > 0:
            raise FeedBackingOff(state.last_error or RECENT_FAILURE_REASON)

    async def _refresh(self, url: str, manual: bool, fetched: FetchResult | None) -> FeedView:
        state = self.state_of(url)
        if fetched is None:
            self._check_backoff(state, manual)
        state = state or FeedState(url=url)
        has_log = self._storage.feed_head(url) > 0
        started = time.perf_counter()
        try:
            # Conditional GET only when we hold a log the 304 would save us from re-reading.
            result = fetched or await self._fetcher.fetch(
                url,
                etag=state.etag if has_log else None,
                last_modified=state.last_modified if has_log else None,
            )
            parsed = None if result.status == "not_modified" else await self._parse(url, result)
        except FeedError as exc:
            self._metrics.feed_fetches.labels(outcome=exc.kind).inc()
            self._metrics.feed_fetch_seconds.observe(time.perf_counter() - started)
            self._record_failure(state, exc)
            raise
        self._metrics.feed_fetch_seconds.observe(time.perf_counter() - started)
        self._storage.count("feed_fetches")
        state.failures, state.paused, state.last_error = 0, False, None
        state.last_attempt = self._clock()
        state.fetched_once = True
        state.etag, state.last_modified = result.etag, result.last_modified
        if parsed is None:
            self._metrics.feed_fetches.labels(outcome="not_modified").inc()
            self._save_state(state)
            return self.view(url) or FeedView(state.title or url, ())
        self._metrics.feed_fetches.labels(outcome="ok").inc()
        state.title = parsed.title or state.title
        view = FeedView(state.title or url, newest_first(parsed.items))
        self._views[url] = view
        if not manual and not self._wanted(url) and self._storage.feed_state(url) is None:
            # Its last follower left while this fetch was in flight: log nothing, so no
            # record of a feed nobody follows is created (memory stays bounded).
            self._views.pop(url, None)
            return view
        new = await self._storage.record_fetch(url, parsed.items, state)
        if new:
            self.discovered += len(new)
            self._metrics.items_discovered.inc(len(new))
            if self.on_new_items is not None:
                self.on_new_items(url, new)
        return view

    async def _parse(self, url: str, result: FetchResult) -> ParsedFeed:
        """Parse off the event loop (a worker process when configured).

        Items already in the feed's log are named to the parser, which then does not convert
        their bodies again (storage ignores them anyway): a poll that finds one new item pays
        for one summary, not twenty. A feed's first fetch converts none (its baseline).
        """
        known = frozenset(entry.item.id for entry in self._storage.feed_log(url))
        state = self._storage.feed_state(url)
        job = functools.partial(
            parse_feed,
            result.body or b"",
            result.url,
            content_type=result.content_type,
            known_ids=known,
            # A first fetch is the feed's baseline: history no chat is sent, so no summaries.
            with_text=state is not None and state.fetched_once,
        )
        return await self._off_loop(job)

    @property
    def parse_executor(self) -> Executor | None:
        """The parser pool in use now (a new one after a worker died); None: threads.

        Other CPU-bound work (``/import``'s OPML) runs here too, and shutdown stops it.
        """
        return self._executor

    async def _off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """Run CPU-bound ``fn`` in the parser pool (threads when there is none).

        A worker process that dies (out of memory on a hostile feed, killed) breaks the whole
        pool: it is replaced at once, and the document that was being parsed counts as
        unreadable, so that feed backs off instead of breaking every other feed.
        """
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(fn, *args))
        except BrokenProcessPool as exc:
            logger.error("a parser process died; starting a new pool", exc_info=False)
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = self._executor_factory() if self._executor_factory else None
            raise ParseError from exc

    def _record_failure(self, state: FeedState, exc: FeedError) -> None:
        state.failures += 1
        state.last_error = exc.reason
        state.last_attempt = self._clock()
        newly_paused = state.failures >= MAX_FAILURES and not state.paused
        state.paused = state.paused or newly_paused
        self._save_state(state)
        self._storage.count("feed_fetches")
        self._storage.count("feed_failures")
        logger.warning(
            "feed fetch failed",
            extra={
                "event": "feed_failed",
                "feed": safe_url(state.url),
                "kind": exc.kind,
                "failures": state.failures,
                "paused": state.paused,
            },
        )

    # ------------------------------------------------------------------ /add
    async def validate(self, url: str) -> tuple[str, str]:
        """Check that ``url`` is (or links to) a usable feed; return ``(feed_url, title)``.

        A web page is accepted too: its ``<link rel="alternate">`` feed is used instead. The
        feed is refreshed through the normal pipeline, so its first fetch becomes the
        baseline of its log and ``/news`` right after ``/add`` costs no second fetch.

        Raises:
            FeedError: with a reason for the user.
        """
        if self._storage.feed_head(url) > 0 or self.state_of(url) is not None:
            view = await self.refresh(url, manual=True)
            return url, view.title
        try:
            result = await self._fetcher.fetch(url)
        except FeedError as exc:
            self._metrics.feed_fetches.labels(outcome=exc.kind).inc()
            self._record_failure(FeedState(url=url), exc)  # its backoff holds for /add too
            raise
        if not looks_like_html(result.body or b"", result.content_type):
            view = await self.refresh(url, manual=True, fetched=result)  # one fetch, not two
            return url, view.title
        # A page can be megabytes of HTML: find its feed links off the event loop.
        links = await self._off_loop(discover_feed_links, result.body or b"", result.url)
        if not links:
            raise NotAFeedError(N_("that page links to no RSS or Atom feed"))
        view = await self.refresh(links[0], manual=True)
        return links[0], view.title

    # ------------------------------------------------------------------ polling
    def set_wanted(self, wanted: Callable[[str], bool]) -> None:
        """Tell the poller which feeds are still followed (others are dropped when due)."""
        self._wanted = wanted

    def track(self, url: str, *, spread: bool = False) -> None:
        """Make sure ``url`` is polled; ``spread`` staggers first polls after a start."""
        if url in self._due_at:
            return
        state = self.state_of(url)
        if state is not None and state.last_attempt:
            due = state.last_attempt + retry_delay(state, self._poll_interval_s)
        else:
            due = self._clock()
        if spread:
            due = max(due, self._clock() + random.uniform(0, min(60.0, self._poll_interval_s)))  # noqa: S311
        self._schedule(url, due)

    def forget(self, url: str) -> None:
        """Drop what is kept in memory for a feed nobody follows (e.g. /add refused it)."""
        self._views.pop(url, None)
        self._transient.pop(url, None)

    def poll_soon(self, url: str) -> None:
        """Make ``url`` due now (the next poll cycle fetches it); tests and operators."""
        self._schedule(url, self._clock())

    def _schedule(self, url: str, due: float) -> None:
        self._due_at[url] = due
        heapq.heappush(self._due, (due, url))

    def take_due(self) -> list[str]:
        """Pop the feeds whose time has come (stale heap entries are skipped)."""
        now = self._clock()
        out: list[str] = []
        while self._due and self._due[0][0] <= now:
            due, url = heapq.heappop(self._due)
            if self._due_at.get(url) != due:
                continue
            del self._due_at[url]
            if self._wanted(url):
                out.append(url)
            else:
                self._views.pop(url, None)  # unfollowed: forget it (bounded memory)
        return out

    def start_poll(self) -> bool:
        """Start a poll cycle in the background unless one is running (the poll job)."""
        if self._poll_task is not None and not self._poll_task.done():
            return False
        self._poll_task = asyncio.create_task(self._poll_and_report(), name="poll cycle")
        return True

    async def stop(self) -> None:
        """Cancel a poll cycle and refreshes in progress (shutdown)."""
        tasks = [t for t in [self._poll_task, *self._inflight.values()] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _poll_and_report(self) -> PollReport:
        report = await self.poll_due()
        if self.on_report is not None:
            try:
                await self.on_report(report)
            except Exception:
                logger.exception("reporting a poll cycle failed")
        return report

    async def poll_due(self, concurrency: int | None = None) -> PollReport:
        """Refresh every due feed, at most ``concurrency`` at once, and reschedule each."""
        report = PollReport()
        gate = asyncio.Semaphore(concurrency or self._poll_concurrency)

        async def one(url: str) -> None:
            async with gate:  # bounds concurrent fetches; covers nothing else
                before = self.state_of(url)
                was_paused = bool(before and before.paused)
                try:
                    await self.refresh(url)
                except FeedError as exc:
                    report.failed += 1
                    after = self.state_of(url)
                    if not was_paused and after is not None and after.paused:
                        report.newly_paused.append((url, exc.reason))
                except Exception:
                    report.failed += 1
                    logger.exception("refreshing %s failed unexpectedly", safe_url(url))
                else:
                    report.refreshed += 1
                finally:
                    done[0] += 1
                    if done[0] % SETTLE_EVERY == 0:
                        heap.settle()  # see bot/heap.py: keeps full GC passes short
                    state = self.state_of(url)
                    delay = retry_delay(state, self._poll_interval_s) if state else 0
                    base = state.last_attempt if state and state.last_attempt else self._clock()
                    if self._wanted(url):
                        self._schedule(url, max(base + delay, self._clock() + 1))

        discovered = self.discovered
        done = [0]
        await asyncio.gather(*(one(u) for u in self.take_due()))
        if done[0]:
            heap.settle()
        report.new_items = self.discovered - discovered
        return report
