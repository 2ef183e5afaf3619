"""/add, /remove and /list through the real Application, the fake Bot API and a feed server.

Each test asserts the text the user reads, and what storage holds afterwards.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.config import DEFAULT_MAX_FEEDS_PER_CHAT as MAX_FEEDS_PER_CHAT
from bot.config import Settings
from bot.storage import get_storage_service
from tests.helpers.bot_runner import running_bot
from tests.helpers.conversation import poll_now, say
from tests.helpers.fake_bot_api import FakeBotAPI
from tests.helpers.feed_server import FeedServer
from tests.helpers.feeds import html_page_with_feed_link, rss

SettingsFactory = Callable[..., Settings]
INSTANT = "New items will be posted here as soon as they appear."
DIGEST = "New items will come in this chat's digest."
ADMINS_ONLY = "Only this chat's administrators can change its feeds and delivery."


def stories(tag: str, n: int = 1) -> bytes:
    """A feed titled "<Tag> Times" with ``n`` items, "<tag> story <i>"."""
    items = [
        {"title": f"{tag} story {i}", "link": f"https://{tag}.example/{i}", "guid": f"{tag}-{i}"}
        for i in range(n)
    ]
    return rss(items, title=f"{tag.title()} Times")


async def test_add_list_remove_roundtrip(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/one.xml", stories("one"))
    feed_server.serve("/two.xml", stories("two"))
    one, two = feed_server.url("/one.xml"), feed_server.url("/two.xml")
    async with running_bot(bot_settings()):
        added_one = await say(fake_api, f"/add {one}", 20)
        added_two = await say(fake_api, f"/add {two}", 20)
        again = await say(fake_api, f"/add {one}", 20)
        listing = await say(fake_api, "/list", 20)
        fetched_by_add = feed_server.request_count("/one.xml")
        news = await say(fake_api, "/news", 20)
        fetched_by_news = feed_server.request_count("/one.xml") - fetched_by_add
        storage = get_storage_service()
        followed = storage.feed_urls(20)
        removed_by_number = await say(fake_api, "/remove 1", 20)
        removed_by_url = await say(fake_api, f"/remove {two}", 20)
        nothing_left = await say(fake_api, "/remove 1", 20)
        empty_listing = await say(fake_api, "/list", 20)
        await storage.flush()
        after = storage.feed_urls(20)
        counters = storage.counters()
        one_state_after = storage.feed_state(one)
    assert added_one == f"✅ Now following One Times.\n{INSTANT}"
    assert added_two == f"✅ Now following Two Times.\n{INSTANT}"
    assert again == f"Already following {one}."
    assert listing == (
        f"Your feeds\n1. One Times\n   {one}\n2. Two Times\n   {two}\n\n"
        "Buttons: 🔇 mute · 🔔 unmute · 🔎 filters · 📝 post format · ✏️ rename · 🗑 remove"
    )
    assert "one story 0" in news
    assert "two story 0" in news
    assert followed == [one, two]
    assert removed_by_number == f"🗑 Removed {one}."
    assert removed_by_url == f"🗑 Removed {two}."
    assert nothing_left == "No such feed here. See /list for the numbers."
    assert empty_listing == "No feeds yet. Add one with /add <url>."
    assert after == []
    assert one_state_after is None  # the last follower left: the feed's state went too
    assert counters["chats"]["20"]["feeds_added"] == 2
    # /add validated by fetching and kept the result: /news needed no fetch of its own.
    assert fetched_by_add >= 1
    assert fetched_by_news == 0


async def test_add_pushes_no_backlog_but_pushes_the_next_item_once(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/f.xml", stories("old", 3))
    url = feed_server.url("/f.xml")
    async with running_bot(bot_settings()) as app:
        await say(fake_api, f"/add {url}", 26)
        fetched_by_add = feed_server.request_count("/f.xml")
        await poll_now(app, url)  # a full poll cycle over the feed's existing items
        after_first_poll = len(fake_api.sent_messages(26))
        feed_server.serve(
            "/f.xml",
            rss(
                [
                    {"title": "fresh story", "link": "https://new.example/1", "guid": "new-1"},
                    *[{"title": f"old story {i}", "guid": f"old-{i}"} for i in range(3)],
                ],
                title="Old Times",
            ),
        )
        await poll_now(app, url)
        await poll_now(app, url)  # polling again finds nothing new: nothing is repeated
        pushed = fake_api.sent_messages(26)[after_first_poll:]
        fetched_by_polls = feed_server.request_count("/f.xml") - fetched_by_add
    assert after_first_poll == 1  # only the /add answer: the 3 existing items were not sent
    assert [m["plain"] for m in pushed] == ["fresh story\nOld Times"]
    assert fetched_by_polls == 3  # each poll really fetched the feed


async def test_add_in_a_digest_chat_says_the_digest_brings_items(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/d.xml", stories("dig"))
    async with running_bot(bot_settings()):
        await say(fake_api, "/digest every 2h", 27)
        answer = await say(fake_api, f"/add {feed_server.url('/d.xml')}", 27)
    assert answer == f"✅ Now following Dig Times.\n{DIGEST}"


async def test_add_discovers_feed_from_html_page(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/feeds/main.xml", stories("disc"))
    feed_server.serve(
        "/blog",
        html_page_with_feed_link("/feeds/main.xml", "Blog"),
        content_type="text/html; charset=utf-8",
    )
    feed_url = feed_server.url("/feeds/main.xml")
    async with running_bot(bot_settings()):
        answer = await say(fake_api, f"/add {feed_server.url('/blog')}", 21)
        followed = get_storage_service().feed_urls(21)
    assert answer == f"✅ Now following Disc Times.\n(found the feed at {feed_url})\n{INSTANT}"
    assert followed == [feed_url]


@pytest.mark.parametrize(
    ("path", "body", "content_type", "answer"),
    [
        (
            "/page",
            b"<html><body>hello</body></html>",
            "text/html",
            "❌ Couldn't add that feed: that page links to no RSS or Atom feed.",
        ),
        (
            "/junk",
            b"\x00\x01 definitely not xml",
            "application/octet-stream",
            "❌ Couldn't add that feed: this does not look like an RSS or Atom feed.",
        ),
    ],
)
async def test_add_refuses_non_feeds_with_reason(
    fake_api: FakeBotAPI,
    bot_settings: SettingsFactory,
    feed_server: FeedServer,
    path: str,
    body: bytes,
    content_type: str,
    answer: str,
) -> None:
    feed_server.serve(path, body, content_type=content_type)
    url = feed_server.url(path)
    async with running_bot(bot_settings()):
        got = await say(fake_api, f"/add {url}", 22)
        storage = get_storage_service()
        followed, state = storage.feed_urls(22), storage.feed_state(url)
    assert got == answer
    assert followed == []
    assert state is None  # a refused URL leaves nothing behind in storage


async def test_add_refuses_private_addresses_when_not_allowed(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/one.xml", stories("one"))
    refused = "❌ Couldn't add that feed: that address is not allowed (private network)."
    async with running_bot(bot_settings(allow_private_feeds=False)):
        answer = await say(fake_api, f"/add {feed_server.url('/one.xml')}", 23)
        meta = await say(fake_api, "/add http://169.254.169.254/latest/meta-data/", 23)
    assert answer == refused
    assert meta == refused
    assert feed_server.request_count("/one.xml") == 0


async def test_http_error_is_reported(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    async with running_bot(bot_settings()):
        answer = await say(fake_api, f"/add {feed_server.url('/missing.xml')}", 24)
    assert answer == "❌ Couldn't add that feed: the server answered 404."


@pytest.mark.parametrize(
    ("text", "usage"),
    [
        ("/add", "Usage: /add <feed or page URL>, e.g. /add https://example.com/feed.xml"),
        ("/add https://x.example/" + "a" * 2100, "Usage: /add <feed or page URL>"),
        ("/remove", "Usage: /remove <number from /list, or the feed URL>, e.g. /remove 2"),
        ("/remove 1 2", "Usage: /remove <number from /list, or the feed URL>, e.g. /remove 2"),
    ],
)
async def test_usage_on_wrong_arguments(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, text: str, usage: str
) -> None:
    async with running_bot(bot_settings()):
        answer = await say(fake_api, text, 25)
    assert answer.startswith(usage)


async def test_the_feed_limit_is_enforced_with_a_clear_answer(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/extra.xml", stories("extra"))
    extra = feed_server.url("/extra.xml")
    async with running_bot(bot_settings()):
        storage = get_storage_service()
        await storage.ensure_chat(28, "private", "full chat")
        for n in range(MAX_FEEDS_PER_CHAT):
            assert await storage.subscribe(28, f"https://f{n}.example/feed", limit=50) == "added"
        answer = await say(fake_api, f"/add {extra}", 28)
        followed = storage.feed_urls(28)
        extra_state = storage.feed_state(extra)
        removed = await say(fake_api, "/remove 1", 28)
        now_fits = await say(fake_api, f"/add {extra}", 28)
    assert answer == "This chat already follows 50 feeds; /remove one first."
    assert len(followed) == 50
    assert extra not in followed
    assert extra_state is None  # validated, refused: nothing kept
    assert removed == "🗑 Removed https://f0.example/feed."
    assert now_fits == f"✅ Now following Extra Times.\n{INSTANT}"


async def test_group_members_cannot_change_feeds_but_admins_can(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/one.xml", stories("one"))
    url = feed_server.url("/one.xml")
    group = -2001
    fake_api.set_admin(group, 31)
    in_group = {"chat_type": "supergroup", "chat_title": "G"}
    async with running_bot(bot_settings()):
        denied = await say(fake_api, f"/add {url}", group, 30, **in_group)
        digest_denied = await say(fake_api, "/digest every 2h", group, 30, **in_group)
        fetched_for_refused = feed_server.request_count("/one.xml")
        allowed = await say(fake_api, f"/add {url}", group, 31, **in_group)
        listing = await say(fake_api, "/list", group, 30, **in_group)
        removal_denied = await say(fake_api, "/remove 1", group, 30, **in_group)
        storage = get_storage_service()
        followed, chat = storage.feed_urls(group), storage.chat(group)
    assert denied == ADMINS_ONLY
    assert digest_denied == ADMINS_ONLY
    assert allowed == f"✅ Now following One Times.\n{INSTANT}"
    assert "1. One Times" in listing
    assert removal_denied == ADMINS_ONLY
    assert followed == [url]
    assert fetched_for_refused == 0  # the refused /add fetched nothing
    assert chat is not None
    assert not chat.delivery.is_digest


async def test_operator_can_manage_any_group(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/one.xml", stories("one"))
    async with running_bot(bot_settings(admin_ids=frozenset({99}))):
        answer = await say(
            fake_api,
            f"/add {feed_server.url('/one.xml')}",
            -2002,
            99,
            chat_type="group",
            chat_title="G",
        )
    assert answer == f"✅ Now following One Times.\n{INSTANT}"


async def test_channel_posts_can_manage_feeds(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/one.xml", stories("one"))
    async with running_bot(bot_settings()):
        fake_api.channel_post(f"/add {feed_server.url('/one.xml')}", chat_id=-1003)
        [reply] = await fake_api.wait_for_messages(1, chat_id=-1003, timeout=15)
        chat = get_storage_service().chat(-1003)
    assert reply["plain"] == f"✅ Now following One Times.\n{INSTANT}"
    assert chat is not None
    assert chat.type == "channel"


async def test_stats_is_for_operators_only(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings(admin_ids=frozenset({7}))):
        await say(fake_api, "/start", 40)
        refused = await say(fake_api, "/stats", 40)
        shown = await say(fake_api, "/stats", 7)  # the operator, in their private chat
    assert refused == "/stats is for the bot's operators."
    assert shown.startswith("Counters\n")


async def test_add_several_urls_answers_once_with_each_outcome(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/one.xml", stories("one"))
    feed_server.serve("/two.xml", stories("two"))
    feed_server.serve("/feeds/main.xml", stories("disc"))
    feed_server.serve(
        "/blog",
        html_page_with_feed_link("/feeds/main.xml", "Blog"),
        content_type="text/html; charset=utf-8",
    )
    one, two = feed_server.url("/one.xml"), feed_server.url("/two.xml")
    blog, found = feed_server.url("/blog"), feed_server.url("/feeds/main.xml")
    missing = feed_server.url("/missing.xml")
    async with running_bot(bot_settings()):
        await say(fake_api, f"/add {one}", 32)
        # Spaces and new lines both separate addresses; a repeated one counts once.
        answer = await say(fake_api, f"/add {two} {one}\n{blog}\n{missing} {two}", 32)
        answers = len(fake_api.sent_messages(32))
        followed = get_storage_service().feed_urls(32)
    assert answer == (
        "✅ Now following Two Times\n"
        f"☑️ Already following {one}\n"
        f"✅ Now following Disc Times (found the feed at {found})\n"
        f"❌ {missing}: the server answered 404\n"
        f"{INSTANT}"
    )
    assert answers == 2  # one answer per /add
    assert sorted(followed) == sorted([one, two, found])


async def test_add_with_more_urls_than_allowed_is_refused_before_any_fetch(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/one.xml", stories("one"))
    urls = " ".join(feed_server.url(f"/one.xml?n={n}") for n in range(21))
    async with running_bot(bot_settings(add_rate_count=1)):
        answer = await say(fake_api, f"/add {urls}", 33)
        after = await say(fake_api, f"/add {feed_server.url('/one.xml')}", 33)
    assert answer == (
        "That's 21 addresses; one /add takes at most 20. Send them in several /add commands, "
        "or as an OPML file with /import."
    )
    assert after == f"✅ Now following One Times.\n{INSTANT}"  # the refusal cost no budget
    assert len(feed_server.requests) == 1  # only the second /add fetched
