"""/import and /export through the real Application, the fake Bot API's files and a feed server.

Each test asserts the text the user reads, what storage holds, and what crossed the wire
(getFile, downloads, sendDocument) — a refused file must never be downloaded.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import pytest

from bot.config import Settings
from bot.models import Subscription
from bot.services.opml import MAX_OPML_BYTES, OpmlFeed, parse_opml
from bot.storage import get_storage_service
from tests.helpers.bot_runner import eventually, running_bot
from tests.helpers.conversation import say
from tests.helpers.fake_bot_api import FakeBotAPI
from tests.helpers.feed_server import FeedServer
from tests.helpers.feeds import rss
from tests.helpers.opml_samples import BILLION_LAUGHS, feedly, inoreader, opml

SettingsFactory = Callable[..., Settings]
INSTANT = "New items will be posted here as soon as they appear."
ADMINS_ONLY = "Only this chat's administrators can change its feeds and delivery."
USAGE = (
    "To import feeds, send an OPML file (.opml or .xml, as your feed reader exports it) with "
    "the caption /import, or reply /import to such a file. /export makes one of this chat's "
    "feeds. From a private chat, /import @channel and /export @channel act on a chat you manage."
)


def stories(tag: str) -> bytes:
    return rss(
        [{"title": f"{tag} story", "link": f"https://{tag}.example/1"}], title=f"{tag} Times"
    )


async def send_file(
    fake: FakeBotAPI,
    data: bytes,
    chat_id: int,
    *,
    name: str = "feeds.opml",
    caption: str | None = "/import",
    user_id: int | None = None,
    **kw: object,
) -> str:
    """Send a document as ``user_id`` (default: the chat) and return the first reply."""
    before = len(fake.sent_messages(chat_id))
    fake.files.send_document_message(
        data,
        chat_id=chat_id,
        user_id=chat_id if user_id is None else user_id,
        file_name=name,
        caption=caption,
        **kw,  # type: ignore[arg-type]
    )
    messages = await fake.wait_for_messages(before + 1, chat_id=chat_id, timeout=20)
    return str(messages[before]["plain"])


async def test_import_by_caption_follows_every_feed_and_answers_once(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/tech.xml", stories("tech"))
    feed_server.serve("/news.xml", stories("news"))
    tech, news = feed_server.url("/tech.xml"), feed_server.url("/news.xml")
    async with running_bot(bot_settings()):
        answer = await send_file(fake_api, feedly(tech, news), 40, name="feedly.opml")
        storage = get_storage_service()
        followed = sorted(storage.feed_urls(40))
        renamed = storage.subscription(40, tech)
        plain = storage.subscription(40, news)
        answers = len(fake_api.sent_messages(40))
    assert answer == f"📥 Import of feedly.opml\n✅ Added 2 feeds.\n{INSTANT}"
    assert answers == 1
    assert followed == sorted([tech, news])
    # The file named the feeds differently from the feeds themselves: those names are kept.
    assert renamed is not None and renamed.title == "Ars Technica & Friends"
    assert plain is not None and plain.title == "World News"
    assert [c.params["file_id"] for c in fake_api.calls_to("getFile")] == [
        next(iter(fake_api.files.files))
    ]
    assert len(fake_api.files.downloads) == 1


async def test_import_by_reply_reports_already_followed_and_failures_with_reasons(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/one.xml", stories("one"))
    feed_server.serve("/two.xml", stories("two"))
    feed_server.serve("/page", b"<html><body>no feed</body></html>", content_type="text/html")
    one, two = feed_server.url("/one.xml"), feed_server.url("/two.xml")
    missing, page = feed_server.url("/missing.xml"), feed_server.url("/page")
    document = opml([(one, "one Times"), (two, "two Times"), (missing, "Gone"), (page, "Page")])
    async with running_bot(bot_settings()):
        await say(fake_api, f"/add {one}", 41)
        message_id = fake_api.files.send_document_message(
            document, chat_id=41, user_id=41, file_name="subscriptions.xml"
        )
        before = len(fake_api.sent_messages(41))
        fake_api.send_reply("/import", reply_to=message_id, chat_id=41, user_id=41)
        replies = await fake_api.wait_for_messages(before + 1, chat_id=41, timeout=20)
        followed = sorted(get_storage_service().feed_urls(41))
    assert before == 1  # the document alone, without /import, got no answer
    assert replies[before]["plain"] == (
        "📥 Import of subscriptions.xml\n"
        "✅ Added 1 feed.\n"
        "☑️ 1 already followed.\n"
        "❌ 2 failed:\n"
        f"• {missing}: the server answered 404\n"
        f"• {page}: that page links to no RSS or Atom feed\n"
        f"{INSTANT}"
    )
    assert followed == sorted([one, two])


async def test_import_into_a_chat_near_its_limit_adds_what_fits(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    for n in range(4):
        feed_server.serve(f"/f{n}.xml", stories(f"f{n}"))
    urls = [feed_server.url(f"/f{n}.xml") for n in range(4)]
    async with running_bot(bot_settings()):
        storage = get_storage_service()
        await storage.ensure_chat(42, "private", "nearly full")
        for n in range(48):
            await storage.subscribe(42, f"https://filler{n}.example/feed", limit=50)
        answer = await send_file(fake_api, opml([(u, "") for u in urls]), 42)
        count = len(storage.feed_urls(42))
    assert answer == (
        "📥 Import of feeds.opml\n"
        "✅ Added 2 feeds.\n"
        "⛔ 2 not added: this chat may follow at most 50 feeds.\n"
        f"{INSTANT}"
    )
    assert count == 50
    assert sum(feed_server.request_count(f"/f{n}.xml") for n in range(4)) == 2


@pytest.mark.parametrize(
    ("data", "name", "answer"),
    [
        (
            BILLION_LAUGHS,
            "laughs.opml",
            "❌ Couldn't import laughs.opml: the file declares a DTD or entities, which OPML "
            "never needs; refused for safety.",
        ),
        (
            b'<?xml version="1.0"?><rss version="2.0"><channel/></rss>',
            "feed.xml",
            "❌ Couldn't import feed.xml: this is XML but not OPML (its root element is <rss>, "
            "not <opml>).",
        ),
        (
            b"<opml><body><outline",
            "broken.opml",
            "❌ Couldn't import broken.opml: the file is not well-formed XML (unclosed token: "
            "line 1, column 12).",
        ),
    ],
    ids=["billion-laughs", "not-opml", "malformed"],
)
async def test_a_bad_file_gets_a_clear_reason_and_changes_nothing(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, data: bytes, name: str, answer: str
) -> None:
    async with running_bot(bot_settings()):
        got = await send_file(fake_api, data, 43, name=name)
        followed = get_storage_service().feed_urls(43)
    assert got == answer
    assert followed == []


async def test_a_file_over_the_cap_is_refused_without_downloading_it(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    big = opml([("https://a.example/f", "A")]) + b"<!--" + b"x" * MAX_OPML_BYTES + b"-->"
    async with running_bot(bot_settings()):
        answer = await send_file(fake_api, big, 44, name="huge.opml")
    assert answer == (
        "❌ Couldn't import huge.opml: the file is 1.1 MiB; an OPML import takes at most 1 MiB."
    )
    assert fake_api.calls_to("getFile") == []
    assert fake_api.files.downloads == []


@pytest.mark.parametrize(
    ("send", "answer"),
    [
        ("text", USAGE),
        (
            "photo",
            "That file (cat.jpg) doesn't look like OPML: send the .opml or .xml file your "
            "feed reader exports.",
        ),
    ],
)
async def test_import_without_an_opml_document_teaches_how(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, send: str, answer: str
) -> None:
    async with running_bot(bot_settings()):
        if send == "text":
            got = await say(fake_api, "/import", 45)
        else:
            got = await send_file(fake_api, b"\xff\xd8\xff\xe0 jpeg", 45, name="cat.jpg")
    assert got == answer
    assert fake_api.calls_to("getFile") == []


async def test_a_caption_for_another_bot_or_command_is_ignored(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    data = opml([("https://a.example/f", "A")])
    async with running_bot(bot_settings()):
        for caption in ("/import@some_other_bot", "/importer", "please /import", None):
            fake_api.files.send_document_message(
                data, chat_id=46, user_id=46, file_name="f.opml", caption=caption
            )
        got = await say(fake_api, "/help", 46)  # answered after the documents were handled
    assert got.startswith("newsbot")
    assert len(fake_api.sent_messages(46)) == 1
    assert fake_api.calls_to("getFile") == []


async def test_group_members_cannot_import_or_export_but_admins_can(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/one.xml", stories("one"))
    one = feed_server.url("/one.xml")
    group = -2047
    fake_api.set_admin(group, 31)
    in_group: dict[str, Any] = {"chat_type": "supergroup", "chat_title": "Readers"}
    async with running_bot(bot_settings()):
        denied = await send_file(fake_api, opml([(one, "")]), group, user_id=30, **in_group)
        export_denied = await say(fake_api, "/export", group, 30, **in_group)
        downloads_when_denied = len(fake_api.files.downloads)
        allowed = await send_file(fake_api, opml([(one, "")]), group, user_id=31, **in_group)
        fake_api.send_command("/export", chat_id=group, user_id=31, **in_group)
        [document] = await fake_api.files.wait_for_documents(1, chat_id=group)
    assert denied == ADMINS_ONLY
    assert export_denied == ADMINS_ONLY
    assert downloads_when_denied == 0
    assert allowed == f"📥 Import of feeds.opml\n✅ Added 1 feed.\n{INSTANT}"
    assert document["filename"] == "newsbot-readers.opml"
    assert parse_opml(document["data"]) == [OpmlFeed(one, "one Times")]


async def test_export_sends_the_chats_feeds_with_titles_as_opml(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/one.xml", stories("one"))
    feed_server.serve("/two.xml", stories("two"))
    one, two = feed_server.url("/one.xml"), feed_server.url("/two.xml")
    async with running_bot(bot_settings()):
        empty = await say(fake_api, "/export", 47)
        await say(fake_api, f"/add {one} {two}", 47)
        storage = get_storage_service()

        def rename(sub: Subscription) -> None:
            sub.title = "My <own> & only"

        await storage.update_subscription(47, two, rename)
        fake_api.send_command("/export", chat_id=47, user_id=47)
        [document] = await fake_api.files.wait_for_documents(1, chat_id=47)
    assert empty == "This chat follows no feeds yet: nothing to export. Add some with /add."
    assert document["filename"] == "newsbot-47.opml"
    assert document["caption"] == (
        "2 feeds of this chat. Import them into any feed reader, or into another chat with /import."
    )
    assert document["data"].startswith(
        b'<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0">'
    )
    assert b"<title>newsbot feeds of User47</title>" in document["data"]
    assert parse_opml(document["data"]) == [
        OpmlFeed(one, "one Times"),
        OpmlFeed(two, "My <own> & only"),
    ]


async def test_export_then_import_into_another_chat_gives_the_same_feeds_and_titles(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/one.xml", stories("one"))
    feed_server.serve("/two.xml", stories("two"))
    one, two = feed_server.url("/one.xml"), feed_server.url("/two.xml")
    async with running_bot(bot_settings()):
        storage = get_storage_service()
        await send_file(fake_api, inoreader(one, two), 48)
        fake_api.send_command("/export", chat_id=48, user_id=48)
        [document] = await fake_api.files.wait_for_documents(1, chat_id=48)
        answer = await send_file(fake_api, document["data"], 49, name=document["filename"])
        first = {s.url: s.title for s in storage.subscriptions(48)}
        second = {s.url: s.title for s in storage.subscriptions(49)}
    assert answer == f"📥 Import of newsbot-48.opml\n✅ Added 2 feeds.\n{INSTANT}"
    assert first == {one: "Första bloggen", two: "Second"}
    assert second == first


async def test_import_and_add_share_one_rate_limit_with_a_logged_breach(
    fake_api: FakeBotAPI,
    bot_settings: SettingsFactory,
    feed_server: FeedServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    feed_server.serve("/one.xml", stories("one"))
    feed_server.serve("/two.xml", stories("two"))
    one, two = feed_server.url("/one.xml"), feed_server.url("/two.xml")
    caplog.set_level(logging.WARNING, logger="bot.handlers.budget")

    def breaches() -> list[logging.LogRecord]:
        return [r for r in caplog.records if getattr(r, "event", None) == "add_rate_limited"]

    async def two_breaches() -> bool:
        return len(breaches()) == 2

    async with running_bot(bot_settings(add_rate_count=1, add_rate_window_s=600)):
        first = await send_file(fake_api, opml([(one, "")]), 77)
        refused = await say(fake_api, f"/add {two}", 77)
        fake_api.files.send_document_message(
            opml([(two, "")]), chat_id=77, user_id=77, file_name="again.opml", caption="/import"
        )
        await eventually(two_breaches, what="the second refusal to be logged")
        other_user = await say(fake_api, f"/add {two}", 78)
        storage = get_storage_service()
        await storage.flush()
        counters = storage.counters()
        followed = storage.feed_urls(77)
        answers = len(fake_api.sent_messages(77))
    assert first == f"📥 Import of feeds.opml\n✅ Added 1 feed.\n{INSTANT}"
    assert re.fullmatch(
        r"⏳ That's a lot of feeds at once! You can /add or /import again in (600|599) s "
        r"\(several addresses fit in one /add\)\.",
        refused,
    )
    assert answers == 2  # the second refusal in the window is silent
    assert followed == [one]
    assert other_user == f"✅ Now following two Times.\n{INSTANT}"  # a budget of its own
    assert len(fake_api.files.downloads) == 1  # the refused import was never downloaded
    records = breaches()
    assert [(r.command, r.action) for r in records] == [  # type: ignore[attr-defined]
        ("add", "notified"),
        ("import", "dropped"),
    ]
    for record in records:
        assert (record.user_id, record.chat_id) == (77, 77)  # type: ignore[attr-defined]
        assert (record.limit, record.window_s) == (1, 600)  # type: ignore[attr-defined]
        assert record.retry_after_s in (599, 600)  # type: ignore[attr-defined]
    assert counters["chats"]["77"]["add_rate_limited"] == 2
    assert counters["global"]["add_rate_limited"] == 2


async def test_import_and_export_inside_a_forum_topic_stay_in_that_topic(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/one.xml", stories("one"))
    feed_server.serve("/two.xml", stories("two"))
    one, two = feed_server.url("/one.xml"), feed_server.url("/two.xml")
    forum, admin = -1001234500077, 501
    fake_api.make_forum(forum, title="Readers")
    fake_api.set_admin(forum, admin)
    tech = fake_api.create_topic(forum, "Tech")
    async with running_bot(bot_settings()):
        await say(fake_api, f"/add {one}", forum, admin, chat_type="supergroup")  # in General
        answer = await send_file(
            fake_api, opml([(one, ""), (two, "")]), forum, user_id=admin,
            chat_type="supergroup", thread_id=tech,
        )  # fmt: skip
        fake_api.send_command(
            "/export", chat_id=forum, user_id=admin, chat_type="supergroup", thread_id=tech
        )
        [document] = await fake_api.files.wait_for_documents(1, chat_id=forum)
        storage = get_storage_service()
        placed = {s.url: s.thread_id for s in storage.subscriptions(forum)}
    assert answer == f"📥 Import of feeds.opml\n✅ Added 1 feed.\n☑️ 1 already followed.\n{INSTANT}"
    assert [m["plain"] for m in fake_api.topic_messages(forum, tech)] == [answer]
    assert placed == {one: None, two: tech}  # new feeds in the topic; the followed one stays
    assert document["thread_id"] == tech


async def test_a_channel_imports_and_exports_from_its_admins_private_chat(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/one.xml", stories("one"))
    one = feed_server.url("/one.xml")
    user, channel = 501, -1001234567890
    fake_api.set_chat(channel, "channel", title="My Channel", username="mychannel")
    fake_api.set_admin(channel, fake_api.bot_id, "administrator")
    fake_api.set_admin(channel, user, "creator")
    async with running_bot(bot_settings()):
        imported = await send_file(fake_api, opml([(one, "")]), user, caption="/import @mychannel")
        wrong = await send_file(fake_api, opml([(one, "")]), user, caption="/import @mychannel x")
        fake_api.send_command("/export @mychannel", chat_id=user, user_id=user)
        [document] = await fake_api.files.wait_for_documents(1, chat_id=user)
        storage = get_storage_service()
        channel_feeds, own_feeds = storage.feed_urls(channel), storage.feed_urls(user)
    assert imported == f"@mychannel\n📥 Import of feeds.opml\n✅ Added 1 feed.\n{INSTANT}"
    assert wrong == USAGE
    assert (channel_feeds, own_feeds) == ([one], [])
    assert document["filename"] == "newsbot-mychannel.opml"
    assert document["caption"].startswith("@mychannel\n1 feed of this chat.")
    assert b"<title>newsbot feeds of My Channel</title>" in document["data"]
    assert parse_opml(document["data"]) == [OpmlFeed(one, "one Times")]
    assert (
        fake_api.sent_messages(channel) == []
        and fake_api.files.sent_documents[0]["chat_id"] == user
    )
