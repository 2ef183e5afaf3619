"""/add, /remove and /list through the real Application."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.config import Settings
from bot.services.storage import get_storage_service
from tests.helpers.bot_runner import running_bot
from tests.helpers.fake_bot_api import FakeBotAPI
from tests.helpers.feed_server import FeedServer
from tests.helpers.feeds import html_page_with_feed_link, rss

SettingsFactory = Callable[..., Settings]


def one_item(tag: str) -> bytes:
    return rss(
        [{"title": f"{tag} story", "link": f"https://{tag}.example/1", "guid": tag}],
        title=f"{tag.title()} Times",
    )


async def say(fake: FakeBotAPI, text: str, chat_id: int, user_id: int, **kw: str) -> str:
    before = len(fake.sent_messages(chat_id))
    fake.send_command(text, chat_id=chat_id, user_id=user_id, **kw)
    messages = await fake.wait_for_messages(before + 1, chat_id=chat_id, timeout=15)
    return str(messages[before]["plain"])


async def test_add_list_remove_roundtrip(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/one.xml", one_item("one"))
    feed_server.serve("/two.xml", one_item("two"))
    one, two = feed_server.url("/one.xml"), feed_server.url("/two.xml")
    async with running_bot(bot_settings()):
        assert "Now following One Times" in await say(fake_api, f"/add {one}", 20, 20)
        assert "Now following Two Times" in await say(fake_api, f"/add {two}", 20, 20)
        assert "Already following" in await say(fake_api, f"/add {one}", 20, 20)
        listing = await say(fake_api, "/list", 20, 20)
        news = await say(fake_api, "/news", 20, 20)
        assert "Removed" in await say(fake_api, "/remove 1", 20, 20)
        assert "Removed" in await say(fake_api, f"/remove {two}", 20, 20)
        assert "No such feed" in await say(fake_api, "/remove 1", 20, 20)
        channel = await get_storage_service().get_channel(20)
        counters = await get_storage_service().get_counters()
    assert "1. One Times" in listing
    assert "2. Two Times" in listing
    assert "one story" in news
    assert "two story" in news
    assert channel is not None
    assert channel.feeds == []
    assert counters["chats"]["20"]["feeds_added"] == 2
    # /add validated by fetching and warmed the cache: /news needed no second fetch.
    assert feed_server.request_count("/one.xml") == 1


async def test_add_discovers_feed_from_html_page(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/feeds/main.xml", one_item("disc"))
    feed_server.serve(
        "/blog",
        html_page_with_feed_link("/feeds/main.xml", "Blog"),
        content_type="text/html; charset=utf-8",
    )
    async with running_bot(bot_settings()):
        answer = await say(fake_api, f"/add {feed_server.url('/blog')}", 21, 21)
        channel = await get_storage_service().get_channel(21)
    assert "Now following Disc Times" in answer
    assert "found the feed at" in answer
    assert channel is not None
    assert channel.feeds == [feed_server.url("/feeds/main.xml")]


@pytest.mark.parametrize(
    ("path", "body", "content_type", "fragment"),
    [
        ("/page", b"<html><body>hello</body></html>", "text/html", "links to no RSS or Atom"),
        ("/junk", b"\x00\x01 definitely not xml", "application/octet-stream", "Couldn't add"),
    ],
)
async def test_add_refuses_non_feeds_with_reason(
    fake_api: FakeBotAPI,
    bot_settings: SettingsFactory,
    feed_server: FeedServer,
    path: str,
    body: bytes,
    content_type: str,
    fragment: str,
) -> None:
    feed_server.serve(path, body, content_type=content_type)
    async with running_bot(bot_settings()):
        answer = await say(fake_api, f"/add {feed_server.url(path)}", 22, 22)
        channel = await get_storage_service().get_channel(22)
    assert fragment in answer
    assert channel is not None
    assert channel.feeds == []


async def test_add_refuses_private_addresses_when_not_allowed(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/one.xml", one_item("one"))
    async with running_bot(bot_settings(allow_private_feeds=False)):
        answer = await say(fake_api, f"/add {feed_server.url('/one.xml')}", 23, 23)
        meta = await say(fake_api, "/add http://169.254.169.254/latest/meta-data/", 23, 23)
    assert "Couldn't add that feed" in answer
    assert "not allowed" in answer
    assert "not allowed" in meta
    assert feed_server.request_count("/one.xml") == 0


async def test_http_error_is_reported(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    async with running_bot(bot_settings()):
        answer = await say(fake_api, f"/add {feed_server.url('/missing.xml')}", 24, 24)
    assert "404" in answer


@pytest.mark.parametrize("text", ["/add", "/add a b", "/remove", "/remove 1 2"])
async def test_usage_on_wrong_arguments(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, text: str
) -> None:
    async with running_bot(bot_settings()):
        answer = await say(fake_api, text, 25, 25)
    assert answer.startswith("Usage: /" + text.split(maxsplit=1)[0][1:])


async def test_group_members_cannot_change_feeds_but_admins_can(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/one.xml", one_item("one"))
    url = feed_server.url("/one.xml")
    group = -2001
    fake_api.set_admin(group, 31)
    async with running_bot(bot_settings()):
        denied = await say(
            fake_api, f"/add {url}", group, 30, chat_type="supergroup", chat_title="G"
        )
        digest_denied = await say(
            fake_api, "/digest every 2h", group, 30, chat_type="supergroup", chat_title="G"
        )
        allowed = await say(
            fake_api, f"/add {url}", group, 31, chat_type="supergroup", chat_title="G"
        )
        listing = await say(fake_api, "/list", group, 30, chat_type="supergroup", chat_title="G")
        removal_denied = await say(
            fake_api, "/remove 1", group, 30, chat_type="supergroup", chat_title="G"
        )
        channel = await get_storage_service().get_channel(group)
    assert "Only this chat's administrators" in denied
    assert "Only this chat's administrators" in digest_denied
    assert "Now following" in allowed
    assert "One Times" in listing
    assert "Only this chat's administrators" in removal_denied
    assert channel is not None
    assert channel.feeds == [url]
    assert channel.digest.mode == "off"


async def test_operator_can_manage_any_group(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/one.xml", one_item("one"))
    async with running_bot(bot_settings(admin_ids=frozenset({99}))):
        answer = await say(
            fake_api,
            f"/add {feed_server.url('/one.xml')}",
            -2002,
            99,
            chat_type="group",
            chat_title="G",
        )
    assert "Now following" in answer


async def test_channel_posts_can_manage_feeds(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/one.xml", one_item("one"))
    async with running_bot(bot_settings()):
        fake_api.channel_post(f"/add {feed_server.url('/one.xml')}", chat_id=-1003)
        [reply] = await fake_api.wait_for_messages(1, chat_id=-1003, timeout=15)
        channel = await get_storage_service().get_channel(-1003)
    assert "Now following" in reply["plain"]
    assert channel is not None
    assert channel.type == "channel"


async def test_stats_is_for_operators_only(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings(admin_ids=frozenset({7}))):
        await say(fake_api, "/start", 40, 40)
        refused = await say(fake_api, "/stats", 40, 40)
        shown = await say(fake_api, "/stats", 41, 7)
    assert "operators" in refused
    assert "Counters" in shown
