"""In-process fakes for service-level tests: a clock, a scripted fetcher, a recording bot.

The real :class:`~bot.storage.StorageService` is used with these (the ``storage`` fixture);
only the network edges are faked. Each fake records what it was asked, so a test asserts
behaviour (what was fetched, what was sent) rather than internals.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from telegram.error import BadRequest, ChatMigrated

from bot.services.feed_errors import FeedError
from bot.services.fetcher import FetchResult
from bot.storage import StorageService, configure_storage, reset_storage_service
from tests.helpers.feeds import rss

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
Outcome = FetchResult | FeedError


class FakeClock:
    """A unix clock that only moves when the test says so."""

    def __init__(self, now: float = T0.timestamp()) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


@dataclass(frozen=True)
class FetchCall:
    """One request the fetcher received."""

    url: str
    etag: str | None
    last_modified: str | None


@dataclass
class ScriptedFetcher:
    """Answers each URL from its script (the last outcome repeats); records every call.

    ``gate``, when set, holds every fetch open until the test sets it; ``started`` is set
    as soon as a fetch is waiting at the gate.
    """

    script: dict[str, list[Outcome]] = field(default_factory=dict)
    calls: list[FetchCall] = field(default_factory=list)
    gate: asyncio.Event | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)

    def serve(self, url: str, *outcomes: Outcome) -> None:
        """Replace the script of ``url``."""
        self.script[url] = list(outcomes)

    def calls_to(self, url: str) -> list[FetchCall]:
        """The calls made for ``url``, in order."""
        return [c for c in self.calls if c.url == url]

    async def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult:
        """Answer like :meth:`bot.services.fetcher.Fetcher.fetch`."""
        self.calls.append(FetchCall(url, etag, last_modified))
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        outcomes = self.script.get(url)
        if not outcomes:
            raise AssertionError(f"unexpected fetch of {url}")
        outcome = outcomes.pop(0) if len(outcomes) > 1 else outcomes[0]
        if isinstance(outcome, FeedError):
            raise outcome
        return outcome


def story(n: int, *, feed: str = "s", minutes: int | None = None) -> dict[str, Any]:
    """Item ``n`` of a test feed: guid ``<feed><n>``, published ``n`` minutes after T0."""
    return {
        "title": f"Story {feed}{n}",
        "link": f"https://{feed}.example/{n}",
        "guid": f"{feed}{n}",
        "pubdate": T0 + timedelta(minutes=n if minutes is None else minutes),
    }


def ok(
    url: str,
    numbers: range | list[int],
    *,
    feed: str = "s",
    title: str = "Stories",
    etag: str | None = '"v1"',
    last_modified: str | None = "Sun, 01 Mar 2026 12:00:00 GMT",
) -> FetchResult:
    """A 200 answer carrying an RSS document with the given story numbers."""
    body = rss([story(n, feed=feed) for n in numbers], title=title)
    return FetchResult(
        url=url, status="ok", body=body, etag=etag, last_modified=last_modified,
        content_type="application/rss+xml",
    )  # fmt: skip


def page(url: str, html: str) -> FetchResult:
    """A 200 answer carrying a web page."""
    return FetchResult(
        url=url, status="ok", body=html.encode(), etag=None, last_modified=None,
        content_type="text/html; charset=utf-8",
    )  # fmt: skip


def not_modified(url: str) -> FetchResult:
    """A 304 answer."""
    return FetchResult(
        url=url, status="not_modified", body=None, etag='"v1"', last_modified=None,
        content_type=None,
    )  # fmt: skip


class CountingExecutor(ThreadPoolExecutor):
    """A thread pool that counts the jobs submitted to it (one per parse)."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.jobs = 0

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        """Count, then run as usual."""
        self.jobs += 1
        return super().submit(fn, *args, **kwargs)


@dataclass(frozen=True)
class Sent:
    """One message the fake bot accepted."""

    chat_id: int
    text: str
    kwargs: dict[str, Any]


class RecordingBot:
    """Stands in for PTB's ``ExtBot``: ``send_message`` records or raises what was scripted.

    ``fail_next(chat, *errors)`` makes the next sends to ``chat`` raise those errors in
    order (``None`` lets that send through); ``migrated[old] = new`` makes every send to
    ``old`` raise ``ChatMigrated``, like Telegram does for a group that became a supergroup.
    ``broken_photos[url] = description`` makes every ``send_photo`` of ``url`` answer that
    400, in any chat (what Telegram answers for an image it cannot use);
    ``photo_attempts`` lists the chats ``send_photo`` was tried for.
    """

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.attempts: list[int] = []
        self.photo_attempts: list[int] = []
        self.migrated: dict[int, int] = {}
        self.broken_photos: dict[str, str] = {}
        self._failures: dict[int, deque[BaseException | None]] = {}

    def fail_next(self, chat_id: int, *errors: BaseException | None) -> None:
        """Queue errors for the next sends to ``chat_id``."""
        self._failures.setdefault(chat_id, deque()).extend(errors)

    def texts(self, chat_id: int) -> list[str]:
        """The texts accepted for ``chat_id``, in order."""
        return [s.text for s in self.sent if s.chat_id == chat_id]

    async def send_photo(self, chat_id: int, photo: str, caption: str = "", **kwargs: Any) -> Sent:
        """As :meth:`send_message`; the caption is the text, ``kwargs["photo"]`` the photo."""
        self.photo_attempts.append(chat_id)
        if photo in self.broken_photos:
            await asyncio.sleep(0)
            self.attempts.append(chat_id)
            raise BadRequest(self.broken_photos[photo])
        return await self.send_message(chat_id, caption, photo=photo, **kwargs)

    async def send_message(self, chat_id: int, text: str, **kwargs: Any) -> Sent:
        """Record the message, or raise the scripted error; yields to the loop first."""
        await asyncio.sleep(0)  # a real send awaits I/O: let other tasks interleave here
        self.attempts.append(chat_id)
        pending = self._failures.get(chat_id)
        error = pending.popleft() if pending else None
        if error is not None:
            raise error
        if chat_id in self.migrated:
            raise ChatMigrated(self.migrated[chat_id])
        sent = Sent(chat_id, text, kwargs)
        self.sent.append(sent)
        return sent


@asynccontextmanager
async def reopened(storage: StorageService) -> AsyncIterator[StorageService]:
    """Close ``storage`` and load a new service from the same files: a bot restart."""
    await storage.close()
    reset_storage_service()
    service = configure_storage(storage.data_dir, storage.backup_dir, backup_keep=3)
    await service.load()
    try:
        yield service
    finally:
        await service.close()
        reset_storage_service()
