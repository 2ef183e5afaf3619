"""/news through the real Application, the fake Bot API and a local feed server."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import Settings
from bot.logging_setup import configure_logging
from bot.storage import get_storage_service
from tests.helpers.bot_runner import running_bot
from tests.helpers.conversation import say
from tests.helpers.fake_bot_api import FakeBotAPI
from tests.helpers.feed_server import FeedServer
from tests.helpers.feeds import rss

NOW = datetime.now(UTC).replace(microsecond=0)
SettingsFactory = Callable[..., Settings]


def items(
    prefix: str, n: int, *, step_min: int = 10, offset_min: int = 0
) -> list[dict[str, object]]:
    return [
        {
            "title": f"{prefix} {i}",
            "link": f"https://{prefix.lower()}.example/{i}",
            "guid": f"{prefix}-{i}",
            "pubdate": NOW - timedelta(minutes=offset_min + step_min * i),
        }
        for i in range(n)
    ]


@pytest.fixture
def two_feeds(feed_server: FeedServer) -> tuple[str, str]:
    feed_server.serve("/a.xml", rss(items("Alpha", 8, offset_min=0), title="Alpha News"))
    feed_server.serve("/b.xml", rss(items("Beta", 8, offset_min=5), title="Beta Daily"))
    return feed_server.url("/a.xml"), feed_server.url("/b.xml")


async def test_news_merges_feeds_newest_first(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, two_feeds: tuple[str, str]
) -> None:
    async with running_bot(bot_settings(default_feeds=two_feeds)):
        fake_api.send_command("/news", chat_id=10, user_id=10)
        [reply] = await fake_api.wait_for_messages(1, chat_id=10)
        fake_api.send_command("/news 3", chat_id=10, user_id=10)
        replies = await fake_api.wait_for_messages(2, chat_id=10)
        await get_storage_service().flush()
        counters = get_storage_service().counters()
    lines = reply["plain"]
    order = [t for t in ("Alpha 0", "Beta 0", "Alpha 1", "Beta 1", "Alpha 2") if t in lines]
    assert order == ["Alpha 0", "Beta 0", "Alpha 1", "Beta 1", "Alpha 2"]
    assert lines.index("Alpha 0") < lines.index("Beta 0") < lines.index("Alpha 1")
    assert "Beta 2" not in lines
    assert reply["parse_mode"] == "HTML"
    assert "Alpha News" in lines
    three = replies[1]["plain"]
    assert "Alpha 1" in three
    assert "Beta 1" not in three
    assert counters["global"]["news_requests"] == 2
    assert counters["chats"]["10"]["news_requests"] == 2


@pytest.mark.parametrize("arg", ["0", "21", "ten", "5 6", "-1"])
async def test_bad_count_gets_usage(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, two_feeds: tuple[str, str], arg: str
) -> None:
    async with running_bot(bot_settings(default_feeds=two_feeds)):
        fake_api.send_command(f"/news {arg}", chat_id=11, user_id=11)
        [reply] = await fake_api.wait_for_messages(1, chat_id=11)
    assert reply["plain"] == "Usage: /news or /news N (1–20), e.g. /news 10"


async def test_no_feeds_at_all_says_how_to_add(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings()):
        fake_api.send_command("/news", chat_id=12, user_id=12)
        [reply] = await fake_api.wait_for_messages(1, chat_id=12)
    assert reply["plain"] == "This chat follows no feeds yet. Add one with /add <url>."


async def test_broken_feed_is_reported_and_others_still_served(
    fake_api: FakeBotAPI,
    bot_settings: SettingsFactory,
    feed_server: FeedServer,
    two_feeds: tuple[str, str],
) -> None:
    feed_server.serve(
        "/broken.xml", b"<html><body>not a feed</body></html>", content_type="text/html"
    )
    feeds = (two_feeds[0], feed_server.url("/broken.xml"))
    async with running_bot(bot_settings(default_feeds=feeds)):
        fake_api.send_command("/news", chat_id=13, user_id=13)
        [reply] = await fake_api.wait_for_messages(1, chat_id=13)
        state = get_storage_service().feed_state(feeds[1])
    assert reply["plain"].startswith(
        "📰 Latest 5\n⚠️ 127.0.0.1: this does not look like an RSS or Atom feed\n\nAlpha 0"
    )
    assert state is not None
    assert state.failures == 1


async def test_hostile_titles_are_escaped_and_long_replies_split(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    hostile = [
        {
            "title": f"<b>bold</b> & <script>x</script> 🔥 שלום {i} " + "w" * 400,
            "link": f"https://h.example/{i}?a=1&b=2",
            "guid": f"h{i}",
            "pubdate": NOW - timedelta(minutes=i),
        }
        for i in range(20)
    ]
    feed_server.serve("/h.xml", rss(hostile, title="Hostile & <Co>"))
    async with running_bot(bot_settings(default_feeds=(feed_server.url("/h.xml"),))):
        fake_api.send_command("/news 20", chat_id=14, user_id=14)
        replies = await fake_api.wait_for_messages(2, chat_id=14)
        for _ in range(100):  # the reply is split; wait until every item has arrived
            replies = fake_api.sent_messages(14)
            if sum(m["plain"].count("שלום") for m in replies) >= 20:
                break
            await asyncio.sleep(0.05)
    # The fake rejects invalid HTML and texts over 4096 characters with 400, exactly like
    # Telegram; every message having been accepted is the assertion that matters.
    rejected = [c for c in fake_api.calls_to("sendMessage") if c.status != 200]
    assert rejected == []
    body = "\n".join(m["plain"] for m in replies)
    assert "<b>bold</b> & <script>x</script> 🔥 שלום 0" in body
    assert "Hostile & <Co>" in body
    assert all(len(m["plain"]) <= 4096 for m in replies)
    assert sum(body.count(f"שלום {i} ") for i in range(20)) == 20


@pytest.mark.parametrize(
    ("dead", "reason"),
    [("status", "the server answered 503"), ("drip", "the server did not answer in time")],
)
async def test_dead_default_feed_backs_off_for_news_and_never_blocks_the_others(
    fake_api: FakeBotAPI,
    bot_settings: SettingsFactory,
    feed_server: FeedServer,
    two_feeds: tuple[str, str],
    dead: str,
    reason: str,
) -> None:
    if dead == "status":
        feed_server.serve("/dead.xml", b"down", status=503)
    else:
        feed_server.slow_drip("/dead.xml", interval=0.2)
    feeds = (*two_feeds, feed_server.url("/dead.xml"))
    settings = bot_settings(default_feeds=feeds, feed_timeout_s=1, news_rate_count=100)
    async with running_bot(settings):
        first = await say(fake_api, "/news 2", 19)
        fetched = feed_server.request_count("/dead.xml")
        # While the dead feed backs off, /news answers from the others without fetching it.
        later = [await say(fake_api, "/news 2", 19 + n) for n in range(1, 4)]
        refetched = feed_server.request_count("/dead.xml") - fetched
        state = get_storage_service().feed_state(feeds[2])
    assert fetched == 1
    assert refetched == 0
    expected = f"📰 Latest 2\n⚠️ 127.0.0.1: {reason}\n\nAlpha 0\nAlpha News"
    for answer in [first, *later]:
        assert answer.startswith(expected)
        assert "Beta 0" in answer
    assert state is not None
    assert state.failures == 1
    assert state.last_error == reason


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    yield stream
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in saved[0]:
        root.addHandler(h)
    root.setLevel(saved[1])


async def test_rate_limit_one_polite_reply_then_silence_with_logs_and_counter(
    fake_api: FakeBotAPI,
    bot_settings: SettingsFactory,
    two_feeds: tuple[str, str],
    json_logs: io.StringIO,
) -> None:
    async with running_bot(
        bot_settings(default_feeds=two_feeds, news_rate_count=2, news_rate_window_s=60)
    ):
        for _ in range(5):  # user 77 in group -15 (a private chat's id is its user's)
            fake_api.send_command("/news", chat_id=-15, user_id=77, chat_type="group")
            await fake_api.wait_for_call("getUpdates", len(fake_api.calls_to("getUpdates")) + 1)
        await fake_api.wait_for_messages(3, chat_id=-15)
        # Someone else is unaffected.
        fake_api.send_command("/news", chat_id=-16, user_id=78, chat_type="group")
        await fake_api.wait_for_messages(1, chat_id=-16)
        replies = fake_api.sent_messages(-15)
        await get_storage_service().flush()
        counters = get_storage_service().counters()
    assert len(replies) == 3  # two answers and one notice; the other two were dropped
    notices = [r["plain"] for r in replies if "You can ask again in" in r["plain"]]
    assert len(notices) == 1
    assert re.fullmatch(r"⏳ That's a lot of news! You can ask again in \d+ s\.", notices[0])
    assert sum("Latest" in r["plain"] for r in replies) == 2
    records = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    limited = [r for r in records if r.get("event") == "news_rate_limited"]
    assert len(limited) == 3
    for record in limited:
        assert record["user_id"] == 77
        assert record["chat_id"] == -15
        assert record["limit"] == 2
        assert record["window_s"] == 60
        assert 0 < record["retry_after_s"] <= 60
    assert [r["action"] for r in limited] == ["notified", "dropped", "dropped"]
    assert counters["global"]["news_rate_limited"] == 3
    assert counters["chats"]["-15"]["news_rate_limited"] == 3
    assert counters["global"]["news_requests"] == 3


async def test_telegram_429_is_retried_once_and_not_duplicated(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, two_feeds: tuple[str, str]
) -> None:
    fake_api.fail_next("sendMessage", 429, retry_after=1)
    async with running_bot(bot_settings(default_feeds=two_feeds)):
        fake_api.send_command("/news", chat_id=17, user_id=17)
        [reply] = await fake_api.wait_for_messages(1, chat_id=17, timeout=15)
        statuses = [c.status for c in fake_api.calls_to("sendMessage")]
    assert "Alpha 0" in reply["plain"]
    assert statuses == [429, 200]
    assert len(fake_api.sent_messages(17)) == 1


async def test_telegram_5xx_does_not_crash_and_next_request_works(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, two_feeds: tuple[str, str]
) -> None:
    fake_api.fail_next("sendMessage", 502)
    async with running_bot(bot_settings(default_feeds=two_feeds)):
        fake_api.send_command("/news", chat_id=18, user_id=18)
        await fake_api.wait_for_call("sendMessage", 1)
        fake_api.send_command("/news 2", chat_id=18, user_id=18)
        [reply] = await fake_api.wait_for_messages(1, chat_id=18)
        statuses = [c.status for c in fake_api.calls_to("sendMessage")]
    assert statuses == [502, 200]  # the failed reply is not re-sent (no duplicates)
    assert "Latest 2" in reply["plain"]


async def test_news_in_a_channel_post(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, two_feeds: tuple[str, str]
) -> None:
    async with running_bot(bot_settings(default_feeds=two_feeds)):
        fake_api.channel_post("/news 1", chat_id=-100500)
        [reply] = await fake_api.wait_for_messages(1, chat_id=-100500)
    assert "Alpha 0" in reply["plain"]
