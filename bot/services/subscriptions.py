"""Following several feeds in one request: the logic behind ``/add`` and ``/import``.

:func:`add_feeds` takes the addresses a user gave, checks each one through
:meth:`FeedService.validate` (a fetch, so at most :data:`ADD_CONCURRENCY` at a time: one
user's OPML file must not open hundreds of connections, nor hog the fetcher the poll job
shares), subscribes the chat, has the feed polled, and returns one :class:`AddOutcome` per
address, in the order given.

Fetches are the cost, so none is spent on an address that could not be followed anyway:
one the chat already follows is answered from storage, and once the chat's room (``limit``
minus what it follows) is taken by feeds added or being checked, the remaining addresses
are reported as over the limit without a fetch. A check that fails frees its place for the
next address, so an import into a chat with room for 5 adds 5 good feeds even if some fail.

Requests are bounded: :data:`MAX_ADD_URLS` addresses per ``/add`` and
:data:`MAX_IMPORT_URLS` per OPML import (:class:`TooManyUrlsError` beyond ``max_urls``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from bot.i18n import N_
from bot.models import FeedState
from bot.services.feed_errors import FeedError
from bot.services.feeds import FeedBackingOff
from bot.services.opml import OpmlFeed
from bot.storage import StorageService

logger = logging.getLogger(__name__)

MAX_URL_LEN = 2048  # longer "addresses" are junk; one definition for /add and imports
MAX_ADD_URLS = 20  # addresses in one /add: a screenful, and a reply that fits one message
# Feeds one OPML import checks. Readers export a few hundred at most; a chat follows at most
# its limit, so beyond that each entry costs nothing but a line in the summary.
MAX_IMPORT_URLS = 300
ADD_CONCURRENCY = 4  # validation fetches one request runs at once

URL_TOO_LONG = N_("the address is too long")

OutcomeKind = Literal["added", "resumed", "already", "failed", "backoff", "full"]


class FeedChecker(Protocol):
    """What :func:`add_feeds` needs of :class:`bot.services.feeds.FeedService`."""

    def state_of(self, url: str) -> FeedState | None:
        """The feed's fetch state, if known."""
        ...

    async def validate(self, url: str) -> tuple[str, str]:
        """Check ``url`` and return ``(feed_url, title)``, or raise :class:`FeedError`."""
        ...

    def track(self, url: str, *, spread: bool = False) -> None:
        """Have the feed polled."""
        ...

    def forget(self, url: str) -> None:
        """Drop what is kept in memory for a feed nobody follows."""
        ...


@dataclass(frozen=True, slots=True)
class AddOutcome:
    """What became of one address.

    Attributes:
        url: the address as asked (``https://`` added when no scheme was given).
        kind: ``added``; ``resumed`` (already followed, checked again: a paused feed, or a
            page whose feed the chat follows); ``already`` (followed, no fetch); ``failed``
            (``reason`` says why); ``backoff`` (failed a moment ago, ``reason`` = that
            error); ``full`` (not added: the chat is at its limit).
        feed_url: the feed followed; differs from ``url`` when found on a web page.
        title: the feed's title ("" when unknown).
        reason: for ``failed`` and ``backoff``, one sentence safe to show the user.
    """

    url: str
    kind: OutcomeKind
    feed_url: str = ""
    title: str = ""
    reason: str = ""

    @property
    def discovered(self) -> bool:
        """Whether the feed was found on a page rather than given directly."""
        return bool(self.feed_url) and self.feed_url != self.url


class TooManyUrlsError(ValueError):
    """More addresses than one request may check."""

    def __init__(self, count: int, cap: int) -> None:
        super().__init__(count, cap)
        self.count = count
        self.cap = cap


def normalise_url(raw: str) -> str:
    """What a user typed → the address to check (``<…>`` stripped, ``https://`` by default)."""
    url = raw.strip().strip("<>")
    return url if "://" in url else "https://" + url


def check_url_count(urls: Sequence[str], cap: int) -> list[str]:
    """The distinct addresses in ``urls``, normalised, in order.

    Raises:
        TooManyUrlsError: more than ``cap`` of them.
    """
    asked = list(dict.fromkeys(normalise_url(u) for u in urls if u.strip()))
    if len(asked) > cap:
        raise TooManyUrlsError(len(asked), cap)
    return asked


async def add_feeds(
    feeds: FeedChecker,
    storage: StorageService,
    chat_id: int,
    urls: Sequence[str],
    *,
    limit: int,
    options: Mapping[str, Any] | None = None,
    titles: Mapping[str, str] | None = None,
    max_urls: int = MAX_ADD_URLS,
    concurrency: int = ADD_CONCURRENCY,
) -> list[AddOutcome]:
    """Follow every feed in ``urls`` that checks out; one outcome per distinct address.

    Args:
        feeds: the feed service (validation, polling).
        storage: where subscriptions live; the chat must be registered.
        chat_id: the chat that follows.
        urls: addresses as the user gave them (normalised here; repeats count once).
        limit: the most feeds the chat may follow.
        options: initial subscription options (:meth:`Subscription.options` form), e.g. the
            forum topic the command came from.
        titles: names from an OPML file by address; a name that differs from the feed's own
            title becomes the subscription's custom title (a rename made in another reader
            survives the move; an unchanged name does not freeze the feed's title).
        max_urls: the most addresses this request may hold.
        concurrency: validation fetches at once.

    Raises:
        TooManyUrlsError: more than ``max_urls`` distinct addresses (nothing was checked).
    """
    asked = check_url_count(urls, max_urls)
    followed = set(storage.feed_urls(chat_id))
    room = limit - len(followed)
    outcomes: dict[int, AddOutcome] = {}
    # (index, needs room): re-checks of followed (paused) feeds first, they take no room.
    queue: deque[tuple[int, bool]] = deque()
    fresh: list[tuple[int, bool]] = []
    for index, url in enumerate(asked):
        if len(url) > MAX_URL_LEN:
            outcomes[index] = AddOutcome(url, "failed", reason=URL_TOO_LONG)
        elif url not in followed:
            fresh.append((index, True))
        elif _paused(feeds.state_of(url)):
            queue.append((index, False))  # re-adding a paused feed retries it now
        else:
            outcomes[index] = AddOutcome(url, "already", feed_url=url)
    queue.extend(fresh)

    async def one(url: str) -> AddOutcome:
        return await _add_one(
            feeds, storage, chat_id, url, limit=limit, options=options, titles=titles
        )

    running: dict[asyncio.Task[AddOutcome], tuple[int, bool]] = {}
    added = 0
    try:
        while True:
            while queue and len(running) < concurrency:
                index, needs_room = queue[0]
                claimed = sum(1 for _, room_taken in running.values() if room_taken)
                if needs_room and added + claimed >= room:
                    break  # the chat is full unless a check in flight fails
                queue.popleft()
                running[asyncio.create_task(one(asked[index]))] = (index, needs_room)
            if not running:
                break
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                index, _needs_room = running.pop(task)
                outcomes[index] = task.result()
                added += outcomes[index].kind == "added"
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    for index, _needs_room in queue:
        outcomes[index] = AddOutcome(asked[index], "full")
    logger.info(
        "feeds added",
        extra={
            "event": "feeds_added",
            "chat_id": chat_id,
            "asked": len(asked),
            "added": added,
            "failed": sum(1 for o in outcomes.values() if o.kind in ("failed", "backoff")),
        },
    )
    return [outcomes[index] for index in range(len(asked))]


async def import_feeds(
    feeds: FeedChecker,
    storage: StorageService,
    chat_id: int,
    entries: Sequence[OpmlFeed],
    *,
    limit: int,
    options: Mapping[str, Any] | None = None,
    concurrency: int = ADD_CONCURRENCY,
) -> tuple[list[AddOutcome], int]:
    """Follow the feeds of an OPML file: the first :data:`MAX_IMPORT_URLS` are checked.

    Returns:
        The outcomes, and how many entries past the cap were not looked at.
    """
    taken = entries[:MAX_IMPORT_URLS]
    outcomes = await add_feeds(
        feeds,
        storage,
        chat_id,
        [entry.url for entry in taken],
        limit=limit,
        options=options,
        titles={normalise_url(e.url): e.title for e in taken if e.title},
        max_urls=MAX_IMPORT_URLS,
        concurrency=concurrency,
    )
    return outcomes, len(entries) - len(taken)


def _paused(state: FeedState | None) -> bool:
    return state is not None and state.paused


async def _add_one(
    feeds: FeedChecker,
    storage: StorageService,
    chat_id: int,
    url: str,
    *,
    limit: int,
    options: Mapping[str, Any] | None,
    titles: Mapping[str, str] | None,
) -> AddOutcome:
    """Check one address and follow its feed; the storage write is durable when it returns."""
    try:
        feed_url, title = await feeds.validate(url)
    except FeedBackingOff as exc:
        return AddOutcome(url, "backoff", reason=exc.reason)
    except FeedError as exc:
        return AddOutcome(url, "failed", reason=exc.reason)
    opts = dict(options or {})
    custom = (titles or {}).get(url, "")
    if custom and custom != title:
        opts["title"] = custom
    result = await storage.subscribe(chat_id, feed_url, limit=limit, options=opts or None)
    if result == "full":  # another command filled the chat meanwhile
        await storage.drop_feed(feed_url)  # validated but not followed: keep nothing
        feeds.forget(feed_url)
        return AddOutcome(url, "full", feed_url, title)
    feeds.track(feed_url)
    if result == "added":
        storage.count("feeds_added", chat_id)
        return AddOutcome(url, "added", feed_url, title)
    return AddOutcome(url, "resumed", feed_url, title)
