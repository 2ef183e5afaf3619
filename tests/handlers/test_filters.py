"""/filter and keyword filters in delivery — end to end.

The command's syntax is unit-tested in ``tests/services/test_filter_command.py`` and the
matching rules in ``tests/services/test_filters.py``; here the real Application, the fake
Bot API and a feed server show what users read and what gets posted.
"""

from __future__ import annotations

from bot.services.filters import MAX_TERMS
from bot.storage import get_storage_service
from tests.helpers.bot_runner import running_bot
from tests.helpers.conversation import poll_now, say
from tests.helpers.fake_bot_api import FakeBotAPI
from tests.helpers.feed_server import FeedServer
from tests.helpers.feeds import rss
from tests.helpers.subscriptions_flow import (
    ADMINS_ONLY,
    GROUP,
    USAGE,
    SettingsFactory,
    add_feed,
    follow_many,
    items,
)


async def test_filters_deliver_only_matching_items_and_never_the_rest_later(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    async with running_bot(bot_settings()) as app:
        url = await add_feed(fake_api, feed_server, 42, "old news")
        saved = await say(fake_api, '/filter include python, "machine learning"', 42)
        before = len(fake_api.sent_messages(42))
        feed_server.serve(
            "/tech.xml",
            items("Python 3.14 released", "Go 1.30 released", "Advances in Machine Learning",
                  "old news"),
        )  # fmt: skip
        await poll_now(app, url)
        filtered = [m["plain"] for m in fake_api.sent_messages(42)[before:]]
        storage = get_storage_service()
        sub = storage.subscription(42, url)
        head = storage.feed_head(url)
        cleared = await say(fake_api, "/filter clear", 42)
        before = len(fake_api.sent_messages(42))
        await poll_now(app, url)
        after_clear = fake_api.sent_messages(42)[before:]
        own = await say(fake_api, "/filter 1 exclude released", 42)
        before = len(fake_api.sent_messages(42))
        feed_server.serve(
            "/tech.xml",
            items("Rust 2.0 released", "Rust news", "Python 3.14 released", "Go 1.30 released",
                  "Advances in Machine Learning", "old news"),
        )  # fmt: skip
        await poll_now(app, url)
        by_feed = [m["plain"] for m in fake_api.sent_messages(42)[before:]]
        chat_view = await say(fake_api, "/filter", 42)
    assert saved == (
        "✅ Saved. Filters of this chat (every feed):\n"
        "Only items that mention: python, machine learning"
    )
    assert filtered == [  # oldest first, one post each (the default "summary" format)
        "Advances in Machine Learning\nTech Times",
        "Python 3.14 released\nTech Times",
    ]
    assert sub is not None
    assert sub.cursor == head  # past "Go 1.30 released" too
    assert cleared == ("✅ Saved. Filters of this chat (every feed):\nNone: every item is posted.")
    assert after_clear == []  # the filtered-out item is not sent once the filter is gone
    assert own == "✅ Saved. Filters of 1. Tech Times:\nNever items that mention: released"
    assert by_feed == ["Rust news\nTech Times"]
    assert chat_view == (
        "🔎 Filters of this chat (every feed):\n"
        "None: every item is posted.\n"
        "Feeds with filters of their own: 1 (see /filter 1).\n\n"
        f"{USAGE}\n\n"
        "Words match whole words in any case, a phrase its words in a row; Chinese, Japanese, "
        "Korean and Thai match anywhere in the text. Titles and summaries are searched."
    )


async def test_filter_command_mistakes_get_clear_answers(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    group = -4801
    fake_api.set_admin(group, 481)
    async with running_bot(bot_settings()):
        await follow_many(48, 2)
        unknown = await say(fake_api, "/filter sometimes python", 48)
        empty = await say(fake_api, "/filter include  , ,", 48)
        many = await say(
            fake_api, "/filter include " + ", ".join(f"w{n}" for n in range(MAX_TERMS + 1)), 48
        )
        long_term = await say(fake_api, "/filter exclude " + "x" * 60, 48)
        no_feed = await say(fake_api, "/filter 3 include python", 48)
        bad_clear = await say(fake_api, "/filter clear everything", 48)
        member_shows = await say(fake_api, "/filter", group, 482, **GROUP)
        member_sets = await say(fake_api, "/filter include python", group, 482, **GROUP)
        admin_sets = await say(fake_api, "/filter exclude ads", group, 481, **GROUP)
        admin_clears = await say(fake_api, "/filter clear exclude", group, 481, **GROUP)
        storage = get_storage_service()
        chat_48, group_chat = storage.chat(48), storage.chat(group)
    assert unknown == USAGE
    assert empty == "Give at least one word or phrase, e.g. /filter include python, rust"
    assert many == f"Too many words: at most {MAX_TERMS} per list (you gave {MAX_TERMS + 1})."
    assert long_term == (
        "“xxxxxxxxxxxxxxxxxxxx…” is too long: at most 50 characters per word or phrase."
    )
    assert no_feed == "No such feed here. See /list for the numbers."
    assert bad_clear == USAGE
    assert member_shows.startswith("🔎 Filters of this chat (every feed):\nNone")
    assert member_sets == ADMINS_ONLY
    assert admin_sets == (
        "✅ Saved. Filters of this chat (every feed):\nNever items that mention: ads"
    )
    assert admin_clears == (
        "✅ Saved. Filters of this chat (every feed):\nNone: every item is posted."
    )
    assert chat_48 is not None
    assert not chat_48.filters  # nothing was stored by the refused commands
    assert group_chat is not None
    assert not group_chat.filters


async def test_filters_search_the_item_summary_too(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    def feed(*entries: tuple[str, str]) -> bytes:
        return rss(
            [{"title": title, "link": f"https://n.example/{n}", "guid": title,
              "description": description} for n, (title, description) in enumerate(entries)],
            title="Tech Times",
        )  # fmt: skip

    old = ("Old notes", "<p>history</p>")
    async with running_bot(bot_settings()) as app:
        feed_server.serve("/tech.xml", feed(old))
        url = feed_server.url("/tech.xml")
        await say(fake_api, f"/add {url}", 49)
        await say(fake_api, "/filter include python", 49)
        before = len(fake_api.sent_messages(49))
        feed_server.serve(
            "/tech.xml",
            feed(
                ("Weekly notes", "<p>All about <b>Py</b>thon &amp; more</p>"),
                ("Weekly digest", "<p>Nothing for <i>snakes</i> here</p>"),
                old,
            ),
        )
        await poll_now(app, url)
        delivered = [m["plain"].split("\n")[0] for m in fake_api.sent_messages(49)[before:]]
    assert delivered == ["Weekly notes"]
