"""The feed cache that ``/news``, digests and the poll job all read.

One fetch per feed at a time (single flight): however many chats ask for the same feed at
once, they share one request and one parse. Failing feeds back off exponentially and are
paused after :data:`MAX_FAILURES` consecutive failures, so a dead feed costs little and its
followers are told once (the ``paused`` flag is persisted, so "once" holds across restarts).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from bot.models import FeedItem, FeedState, ParsedFeed
from bot.services.feed_parser import (
    FeedParseError,
    discover_feed_links,
    looks_like_html,
    parse_feed,
)
from bot.services.fetcher import FeedFetchError, Fetcher
from bot.services.metrics import Metrics
from bot.services.storage import StorageService

logger = logging.getLogger(__name__)

MAX_FAILURES = 5  # consecutive failures before a feed is paused
MAX_BACKOFF_S = 6 * 3600
PAUSED_RETRY_S = 6 * 3600  # a paused feed is still tried this often, silently
_EPOCH = datetime.min.replace(tzinfo=UTC)


class FeedUnavailable(Exception):
    """A feed could not be used; ``reason`` is safe to show to the user."""

    def __init__(self, url: str, reason: str, kind: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.kind = kind


@dataclass(slots=True)
class CachedFeed:
    """What the last successful fetch of a feed gave us."""

    title: str
    items: tuple[FeedItem, ...]
    fetched_at: float


@dataclass(slots=True)
class PollReport:
    """Outcome of one poll cycle, for logs and for telling chats about paused feeds."""

    refreshed: int = 0
    not_modified: int = 0
    failed: int = 0
    newly_paused: list[FeedUnavailable] = field(default_factory=list)


def _sort_key(item: FeedItem) -> datetime:
    return item.published or _EPOCH


def newest_first(items: Iterable[FeedItem]) -> list[FeedItem]:
    """Sort items newest first; undated items go last, in their original order."""
    return sorted(items, key=_sort_key, reverse=True)


class NewsService:
    """Feed cache with single-flight refresh, backoff and pausing."""

    def __init__(
        self,
        fetcher: Fetcher,
        storage: StorageService,
        metrics: Metrics,
        *,
        poll_interval_s: int,
        parse: Callable[[bytes, str], ParsedFeed] = parse_feed,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetcher = fetcher
        self._storage = storage
        self._metrics = metrics
        self._poll_interval_s = poll_interval_s
        self._parse = parse
        self._clock = clock
        self._cache: dict[str, CachedFeed] = {}
        # url -> the fetch in flight. Only touched from the event loop between awaits, so no
        # lock is needed: check-and-insert below happens without an await in between.
        self._inflight: dict[str, asyncio.Task[CachedFeed]] = {}
        self._next_due: dict[str, float] = {}
        # Fetch counters are statistics, not user data: they are persisted once per poll
        # cycle (or cold fetch) instead of one durable write per fetch.
        self._unsaved: Counter[str] = Counter()

    # ----------------------------------------------------------------- reading
    def cached(self, url: str) -> CachedFeed | None:
        """The cached copy of a feed, if any (never fetches)."""
        return self._cache.get(url)

    async def latest(
        self, urls: Sequence[str], limit: int
    ) -> tuple[list[FeedItem], list[FeedUnavailable]]:
        """The ``limit`` newest items across ``urls``, plus the feeds that could not be read.

        Served from the cache; feeds never fetched yet are fetched now, concurrently and
        shared with any other request for them. Each feed's items are stored newest first,
        so this merges lazily and stops after ``limit`` instead of sorting everything: it
        runs on every ``/news``.
        """
        unique = list(dict.fromkeys(urls))
        errors = await self._warm(unique)
        lists = [entry.items for u in unique if (entry := self._cache.get(u))]
        seen: set[str] = set()
        out: list[FeedItem] = []
        for item in heapq.merge(*lists, key=_sort_key, reverse=True):
            if item.id not in seen:
                seen.add(item.id)
                out.append(item)
                if len(out) >= limit:
                    break
        return out, errors

    async def _warm(self, urls: Sequence[str]) -> list[FeedUnavailable]:
        """Fetch the feeds among ``urls`` that are not cached yet; return the failures."""
        cold = [u for u in urls if u not in self._cache]
        errors: list[FeedUnavailable] = []
        if cold:
            results = await asyncio.gather(*(self.refresh(u) for u in cold), return_exceptions=True)
            for result in results:
                if isinstance(result, FeedUnavailable):
                    errors.append(result)
                elif isinstance(result, BaseException):
                    raise result
            await self.save_counts()
        return errors

    # ----------------------------------------------------------------- refreshing
    async def refresh(self, url: str) -> CachedFeed:
        """Fetch ``url`` now, sharing the fetch with any concurrent caller.

        Raises:
            FeedUnavailable: the fetch or parse failed (the failure is already recorded).
        """
        task = self._inflight.get(url)
        if task is None:
            task = asyncio.create_task(self._refresh(url), name=f"refresh {urlsplit(url).netloc}")
            self._inflight[url] = task
            task.add_done_callback(lambda t: self._finished(url, t))
        # shield: one impatient caller being cancelled must not cancel everyone's fetch.
        return await asyncio.shield(task)

    def _finished(self, url: str, task: asyncio.Task[CachedFeed]) -> None:
        if self._inflight.get(url) is task:
            del self._inflight[url]
        if not task.cancelled():
            task.exception()  # mark retrieved: waiters may all have gone away

    async def _refresh(self, url: str) -> CachedFeed:
        state = await self._storage.get_feed_state(url)
        cached = self._cache.get(url)
        started = self._clock()
        try:
            # Conditional GET only when we hold the body it would save us from re-reading.
            result = await self._fetcher.fetch(
                url,
                etag=state.etag if cached and state else None,
                last_modified=state.last_modified if cached and state else None,
            )
            if result.status == "not_modified" and cached is not None:
                outcome = "not_modified"
                cached.fetched_at = self._clock()
                entry = cached
            else:
                outcome = "ok"
                # Relative item links resolve against where the feed really is (after redirects).
                parsed = await asyncio.to_thread(self._parse, result.body or b"", result.url)
                entry = CachedFeed(parsed.title, tuple(newest_first(parsed.items)), self._clock())
                self._cache[url] = entry
        except (FeedFetchError, FeedParseError) as exc:
            kind = getattr(exc, "kind", "parse_error")
            await self._record_failure(url, exc.reason, kind)
            self._metrics.feed_fetches.labels(outcome=kind).inc()
            self._metrics.feed_fetch_seconds.observe(self._clock() - started)
            raise FeedUnavailable(url, exc.reason, kind) from None
        self._metrics.feed_fetches.labels(outcome=outcome).inc()
        self._metrics.feed_fetch_seconds.observe(self._clock() - started)
        self._next_due[url] = self._clock() + self._poll_interval_s
        etag, modified = result.etag, result.last_modified
        if (
            state is None
            or state.failures
            or state.paused
            or state.title != entry.title
            or (outcome == "ok" and (state.etag, state.last_modified) != (etag, modified))
        ):
            await self._storage.update_feed_state(
                url, lambda s: _succeeded(s, entry.title, etag, modified)
            )
        self._unsaved["feed_fetches"] += 1
        return entry

    async def _record_failure(self, url: str, reason: str, kind: str) -> FeedState:
        def failed(s: FeedState) -> FeedState:
            s.failures += 1
            s.last_error = reason
            if s.failures >= MAX_FAILURES:
                s.paused = True
            return FeedState.from_dict(s.to_dict())

        state = await self._storage.update_feed_state(url, failed)
        self._unsaved["feed_fetches"] += 1
        self._unsaved["feed_failures"] += 1
        delay = (
            PAUSED_RETRY_S
            if state.paused
            else min(self._poll_interval_s * 2 ** (state.failures - 1), MAX_BACKOFF_S)
        )
        self._next_due[url] = self._clock() + delay
        logger.warning(
            "feed fetch failed",
            extra={
                "event": "feed_failed",
                "feed": _safe(url),
                "kind": kind,
                "failures": state.failures,
                "paused": state.paused,
            },
        )
        return state

    # ----------------------------------------------------------------- polling
    def due(self, urls: Iterable[str]) -> list[str]:
        """The feeds among ``urls`` whose next refresh time has come."""
        now = self._clock()
        return [u for u in dict.fromkeys(urls) if self._next_due.get(u, 0.0) <= now]

    async def poll(self, urls: Iterable[str], concurrency: int = 8) -> PollReport:
        """Refresh the due feeds among ``urls``, at most ``concurrency`` at once."""
        report = PollReport()
        gate = asyncio.Semaphore(concurrency)

        async def one(url: str) -> None:
            async with gate:  # bounds concurrent fetches; covers nothing else
                was_paused = await self.is_paused(url)
                before = self._cache.get(url)
                stamp = before.fetched_at if before else None
                try:
                    entry = await self.refresh(url)
                except FeedUnavailable as exc:
                    report.failed += 1
                    if not was_paused and await self.is_paused(url):
                        report.newly_paused.append(exc)
                    return
                if entry is before and stamp is not None:
                    report.not_modified += 1
                else:
                    report.refreshed += 1

        await asyncio.gather(*(one(u) for u in self.due(urls)))
        await self.save_counts()
        return report

    async def save_counts(self) -> None:
        """Persist the fetch counters gathered since the last save."""
        pending, self._unsaved = self._unsaved, Counter()
        for name, count in pending.items():
            await self._storage.increment(name, by=count)

    async def is_paused(self, url: str) -> bool:
        """Whether ``url`` is paused after repeated failures."""
        state = await self._storage.get_feed_state(url)
        return bool(state and state.paused)

    # ----------------------------------------------------------------- /add
    async def validate(self, url: str) -> tuple[str, str]:
        """Check that ``url`` is (or links to) a usable feed; return ``(feed_url, title)``.

        A web page is accepted too: its ``<link rel="alternate">`` feed is used instead.
        Success also unpauses the feed and warms the cache, so ``/news`` right after
        ``/add`` costs no second fetch.
        """
        try:
            result = await self._fetcher.fetch(url)
            body = result.body or b""
            feed_url = url
            if looks_like_html(body, result.content_type):
                links = discover_feed_links(body, result.url)
                if not links:
                    raise FeedUnavailable(
                        url, "that page links to no RSS or Atom feed", "not_a_feed"
                    )
                feed_url = links[0]
                result = await self._fetcher.fetch(feed_url)
                body = result.body or b""
            parsed = await asyncio.to_thread(self._parse, body, result.url)
        except (FeedFetchError, FeedParseError) as exc:
            self._metrics.feed_fetches.labels(outcome=getattr(exc, "kind", "parse_error")).inc()
            raise FeedUnavailable(url, exc.reason, getattr(exc, "kind", "parse_error")) from None
        self._metrics.feed_fetches.labels(outcome="ok").inc()
        self._unsaved["feed_fetches"] += 1
        self._cache[feed_url] = CachedFeed(
            parsed.title, tuple(newest_first(parsed.items)), self._clock()
        )
        self._next_due[feed_url] = self._clock() + self._poll_interval_s
        etag, modified = result.etag, result.last_modified
        await self._storage.update_feed_state(
            feed_url, lambda s: _succeeded(s, parsed.title, etag, modified)
        )
        await self.save_counts()
        return feed_url, parsed.title

    async def titles(self, urls: Iterable[str]) -> dict[str, str]:
        """Best known title per feed (cache first, then persisted state)."""
        out: dict[str, str] = {}
        for url in urls:
            entry = self._cache.get(url)
            if entry and entry.title:
                out[url] = entry.title
                continue
            state = await self._storage.get_feed_state(url)
            if state and state.title:
                out[url] = state.title
        return out


def _succeeded(state: FeedState, title: str, etag: str | None, modified: str | None) -> None:
    state.title = title or state.title
    state.etag = etag
    state.last_modified = modified
    state.failures = 0
    state.paused = False
    state.last_error = None


def _safe(url: str) -> str:
    """Host and path only: query strings of private feeds may carry access tokens."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
