"""bot/services/subscriptions.py: outcomes per address, the chat's room, bounded concurrency.

Storage is the real one (the ``storage`` fixture); the feed service is a fake whose
``validate`` answers from a table, records calls and can be held at a gate, so the tests can
see which addresses were fetched and how many at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

import pytest

from bot.models import FeedItem, FeedState
from bot.services.feed_errors import FeedError, HTTPStatusError, NotAFeedError
from bot.services.feeds import FeedBackingOff
from bot.services.opml import OpmlFeed
from bot.services.subscriptions import (
    MAX_IMPORT_URLS,
    AddOutcome,
    TooManyUrlsError,
    add_feeds,
    check_url_count,
    import_feeds,
    normalise_url,
)
from bot.storage import StorageService
from tests.helpers.bot_runner import eventually

CHAT = 7
Result = tuple[str, str] | FeedError


class FakeFeeds:
    """A FeedService stand-in: ``validate`` answers from ``results`` (unknown: a 404)."""

    def __init__(self, storage: StorageService, results: Mapping[str, Result] | None = None):
        self.storage = storage
        self.results: dict[str, Result] = dict(results or {})
        self.states: dict[str, FeedState] = {}
        self.validated: list[str] = []
        self.tracked: list[str] = []
        self.forgotten: list[str] = []
        self.cancelled: list[str] = []
        self.gate: asyncio.Event | None = None
        self.in_flight = 0
        self.peak = 0
        self.on_validate: dict[str, Callable[[], Awaitable[None]]] = {}

    def state_of(self, url: str) -> FeedState | None:
        return self.states.get(url)

    async def validate(self, url: str) -> tuple[str, str]:
        self.validated.append(url)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            else:
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            self.cancelled.append(url)
            raise
        finally:
            self.in_flight -= 1
        hook = self.on_validate.get(url)
        if hook is not None:
            await hook()
        result = self.results.get(url, HTTPStatusError(404))
        if isinstance(result, FeedError):
            raise result
        feed_url, title = result
        # As the real service does: the first fetch records the feed's state (baseline).
        item = FeedItem("i", "t", "https://x.example/i", None, title, feed_url)
        await self.storage.record_fetch(feed_url, [item], FeedState(url=feed_url, title=title))
        return result

    def track(self, url: str, *, spread: bool = False) -> None:
        self.tracked.append(url)

    def forget(self, url: str) -> None:
        self.forgotten.append(url)


def good(*names: str) -> dict[str, Result]:
    return {f"https://{n}.example/feed": (f"https://{n}.example/feed", f"{n} Times") for n in names}


def url(name: str) -> str:
    return f"https://{name}.example/feed"


@pytest.fixture
async def chat(storage: StorageService) -> StorageService:
    await storage.ensure_chat(CHAT, "private", "tester")
    return storage


async def test_each_address_gets_its_outcome_in_the_order_given(chat: StorageService) -> None:
    await chat.subscribe(CHAT, url("old"), limit=50)
    results: dict[str, Result] = {
        **good("one", "two"),
        "https://blog.example/": ("https://blog.example/feed.xml", "Blog"),
        url("dead"): HTTPStatusError(410),
        url("slow"): FeedBackingOff("the connection timed out"),
        "https://page.example/": NotAFeedError("that page links to no RSS or Atom feed"),
    }
    feeds = FakeFeeds(chat, results)
    asked = [
        "one.example/feed",  # no scheme: https:// is assumed
        url("old"),
        "<https://blog.example/>",
        url("dead"),
        url("slow"),
        "https://page.example/",
        url("two"),
        url("one"),  # the same as the first: counted once
    ]
    outcomes = await add_feeds(feeds, chat, CHAT, asked, limit=50)
    await chat.flush()
    assert outcomes == [
        AddOutcome(url("one"), "added", url("one"), "one Times"),
        AddOutcome(url("old"), "already", url("old")),
        AddOutcome("https://blog.example/", "added", "https://blog.example/feed.xml", "Blog"),
        AddOutcome(url("dead"), "failed", reason="the server answered 410"),
        AddOutcome(url("slow"), "backoff", reason="the connection timed out"),
        AddOutcome(
            "https://page.example/", "failed", reason="that page links to no RSS or Atom feed"
        ),
        AddOutcome(url("two"), "added", url("two"), "two Times"),
    ]
    assert outcomes[2].discovered and not outcomes[0].discovered
    assert url("old") not in feeds.validated  # already followed: answered without a fetch
    # Checks run concurrently: the order they finish in is not the order asked.
    followed = [url("old"), url("one"), "https://blog.example/feed.xml", url("two")]
    assert sorted(chat.feed_urls(CHAT)) == sorted(followed)
    assert sorted(feeds.tracked) == sorted(
        [url("one"), "https://blog.example/feed.xml", url("two")]
    )
    assert chat.counters()["chats"][str(CHAT)]["feeds_added"] == 3


async def test_the_limit_is_reached_mid_list_and_the_rest_is_not_fetched(
    chat: StorageService,
) -> None:
    await chat.subscribe(CHAT, url("old"), limit=50)
    feeds = FakeFeeds(chat, good("a", "b", "c", "d", "e"))
    outcomes = await add_feeds(feeds, chat, CHAT, [url(n) for n in "abcde"], limit=3, concurrency=4)
    assert [o.kind for o in outcomes] == ["added", "added", "full", "full", "full"]
    assert outcomes[2] == AddOutcome(url("c"), "full")
    assert sorted(feeds.validated) == [url("a"), url("b")]  # c, d, e cost nothing
    assert len(chat.feed_urls(CHAT)) == 3


async def test_a_failed_check_frees_its_place_for_the_next_address(chat: StorageService) -> None:
    results = {**good("g1", "g2", "g3"), url("bad1"): NotAFeedError(), url("bad2"): NotAFeedError()}
    feeds = FakeFeeds(chat, results)
    asked = [url(n) for n in ("bad1", "g1", "bad2", "g2", "g3")]
    outcomes = await add_feeds(feeds, chat, CHAT, asked, limit=2, concurrency=4)
    assert [o.kind for o in outcomes] == ["failed", "added", "failed", "added", "full"]
    assert url("g3") not in feeds.validated
    assert sorted(chat.feed_urls(CHAT)) == [url("g1"), url("g2")]


async def test_checks_run_concurrently_but_never_more_than_the_bound(
    chat: StorageService,
) -> None:
    names = [f"f{n}" for n in range(10)]
    feeds = FakeFeeds(chat, good(*names))
    feeds.gate = asyncio.Event()
    task = asyncio.create_task(
        add_feeds(feeds, chat, CHAT, [url(n) for n in names], limit=50, concurrency=4)
    )

    async def four_waiting() -> bool:
        return feeds.in_flight == 4

    await eventually(four_waiting, what="four checks in flight at once")
    for _ in range(20):  # give a fifth every chance to start
        await asyncio.sleep(0)
    assert feeds.in_flight == 4
    assert len(feeds.validated) == 4
    feeds.gate.set()
    outcomes = await task
    assert [o.kind for o in outcomes] == ["added"] * 10
    assert feeds.peak == 4


async def test_a_paused_feed_is_checked_again_even_when_the_chat_is_full(
    chat: StorageService,
) -> None:
    await chat.subscribe(CHAT, url("p"), limit=50)
    feeds = FakeFeeds(chat, good("p", "new"))
    feeds.states[url("p")] = FeedState(url=url("p"), title="P", failures=5, paused=True)
    outcomes = await add_feeds(feeds, chat, CHAT, [url("new"), url("p")], limit=1)
    assert outcomes == [
        AddOutcome(url("new"), "full"),
        AddOutcome(url("p"), "resumed", url("p"), "p Times"),
    ]
    assert feeds.validated == [url("p")]
    assert feeds.tracked == [url("p")]


async def test_too_many_addresses_are_refused_before_any_fetch(chat: StorageService) -> None:
    feeds = FakeFeeds(chat, good(*[f"f{n}" for n in range(21)]))
    with pytest.raises(TooManyUrlsError) as caught:
        await add_feeds(feeds, chat, CHAT, [url(f"f{n}") for n in range(21)], limit=50)
    assert (caught.value.count, caught.value.cap) == (21, 20)
    assert feeds.validated == []
    # Repeats and blanks do not count towards the cap.
    assert len(check_url_count([url("a")] * 30 + ["", "  "], 1)) == 1


async def test_titles_from_a_file_become_custom_titles_only_when_they_differ(
    chat: StorageService,
) -> None:
    feeds = FakeFeeds(chat, good("same", "renamed"))
    titles = {url("same"): "same Times", url("renamed"): "My favourite"}
    await add_feeds(
        feeds, chat, CHAT, [url("same"), url("renamed")], limit=50, titles=titles,
        options={"thread_id": 42},
    )  # fmt: skip
    same, renamed = chat.subscription(CHAT, url("same")), chat.subscription(CHAT, url("renamed"))
    assert same is not None and renamed is not None
    assert (same.title, same.thread_id) == ("", 42)
    assert (renamed.title, renamed.thread_id) == ("My favourite", 42)


async def test_a_chat_filled_meanwhile_keeps_nothing_of_the_refused_feed(
    chat: StorageService,
) -> None:
    feeds = FakeFeeds(chat, good("x"))

    async def another_command_fills_the_chat() -> None:
        await chat.subscribe(CHAT, url("other"), limit=1)

    feeds.on_validate[url("x")] = another_command_fills_the_chat
    outcomes = await add_feeds(feeds, chat, CHAT, [url("x")], limit=1)
    assert outcomes == [AddOutcome(url("x"), "full", url("x"), "x Times")]
    assert chat.feed_urls(CHAT) == [url("other")]
    assert chat.feed_state(url("x")) is None
    assert feeds.forgotten == [url("x")]
    assert feeds.tracked == []


async def test_cancelling_the_request_cancels_the_checks_in_flight(
    chat: StorageService,
) -> None:
    feeds = FakeFeeds(chat, good("a", "b", "c"))
    feeds.gate = asyncio.Event()
    task = asyncio.create_task(add_feeds(feeds, chat, CHAT, [url(n) for n in "abc"], limit=50))

    async def three_waiting() -> bool:
        return feeds.in_flight == 3

    await eventually(three_waiting, what="three checks in flight")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(feeds.cancelled) == [url("a"), url("b"), url("c")]
    assert chat.feed_urls(CHAT) == []


async def test_an_address_too_long_fails_without_a_fetch(chat: StorageService) -> None:
    feeds = FakeFeeds(chat)
    long_url = "https://x.example/" + "a" * 2100
    outcomes = await add_feeds(feeds, chat, CHAT, [long_url], limit=50)
    assert outcomes == [AddOutcome(long_url, "failed", reason="the address is too long")]
    assert feeds.validated == []


async def test_import_checks_at_most_the_cap_and_says_how_many_were_left(
    chat: StorageService,
) -> None:
    entries = [OpmlFeed(url(f"f{n}"), "") for n in range(MAX_IMPORT_URLS + 7)]
    feeds = FakeFeeds(chat)  # every check fails: the worst case for fetches
    outcomes, skipped = await import_feeds(feeds, chat, CHAT, entries, limit=50)
    assert len(outcomes) == MAX_IMPORT_URLS
    assert skipped == 7
    assert len(feeds.validated) == MAX_IMPORT_URLS
    assert feeds.peak <= 4


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("example.com/feed", "https://example.com/feed"),
        ("<https://a.example/f>", "https://a.example/f"),
        ("http://a.example/f", "http://a.example/f"),
        ("  https://a.example/f\n", "https://a.example/f"),
    ],
)
def test_normalise_url(raw: str, expected: str) -> None:
    assert normalise_url(raw) == expected
