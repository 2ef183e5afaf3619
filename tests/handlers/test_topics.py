"""Forum topics end to end: the real Application, the fake Bot API as a forum, a feed server.

Each test asserts what the chat's members read, and in which topic: subscriptions post to
the topic ``/add`` was sent in; replies stay in the topic; a closed topic holds its items
with one note; a deleted topic's feeds move to General. "Exactly once" is checked per item.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from bot.config import Settings
from bot.context import AnyApp, services_of
from bot.handlers.basic import help_text
from bot.i18n import translator
from bot.storage import get_storage_service
from tests.helpers.bot_runner import running_bot
from tests.helpers.conversation import say
from tests.helpers.delivery_e2e import (
    force_digest,
    occurrences,
    poll_now,
    serve_feed,
    settle,
    story,
    title_of,
)
from tests.helpers.fake_bot_api import FakeBotAPI, telegram_html_to_plain
from tests.helpers.feed_server import FeedServer

SettingsFactory = Callable[..., Settings]
FORUM = -1001234500001
FORUM_LINK = "https://t.me/c/1234500001"
ADMIN = 501
QUIET = {"feed_poll_interval_s": 3600}
INSTANT = "New items will be posted here as soon as they appear."
CLOSED_NOTE = (
    "🔒 The topic for Tech Wire is closed, so its new items wait until it is reopened (or "
    "send /add with the feed's URL in another topic or here in General to post it there)."
)
CLOSED_GENERAL_NOTE = (
    "🔒 The General topic of Readers is closed, so new items of Town Crier wait until it "
    "is reopened (or send /add with the feed's URL inside a topic there to post it in "
    "that topic)."
)
DELETED_NOTE = (
    "🗂 The topic for Tech Wire was deleted, so its items are posted here in General now. "
    "To post a feed in a topic again, send /add with its URL inside that topic; /remove "
    "stops it."
)


def forum(fake: FakeBotAPI, *topics: str) -> list[int]:
    """Make FORUM a forum with ADMIN as an administrator; return the new topics' ids."""
    fake.make_forum(FORUM, title="Readers")
    fake.set_admin(FORUM, ADMIN)
    return [fake.create_topic(FORUM, name) for name in topics]


async def ask(fake: FakeBotAPI, text: str, thread_id: int | None = None) -> dict[str, Any]:
    """ADMIN sends ``text`` in a topic of FORUM (None: General); return the bot's answer."""
    before = len(fake.sent_messages(FORUM))
    fake.send_command(
        text, chat_id=FORUM, user_id=ADMIN, chat_type="supergroup", thread_id=thread_id
    )
    return (await fake.wait_for_messages(before + 1, chat_id=FORUM, timeout=20))[before]


def posts(fake: FakeBotAPI, thread_id: int | None) -> list[str]:
    """What members read in one topic of FORUM (None: General), oldest first."""
    return [str(m["plain"]) for m in fake.topic_messages(FORUM, thread_id)]


def post(item: dict[str, Any], feed: str) -> str:
    """An instant post of one item as members read it."""
    return f"{item['title']}\n{feed}"


async def new_item_while_general_is_closed(
    app: AnyApp, fake_api: FakeBotAPI, feed_server: FeedServer, old: list[dict[str, Any]], url: str
) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Close General, publish and poll one new item, then reopen General and let it through.

    Returns the held item, what ``ADMIN`` was told meanwhile, and General's posts while closed.
    """
    before = len(fake_api.sent_messages(ADMIN))
    fake_api.close_topic(FORUM, None)
    held = [story(1, "g")]
    serve_feed(feed_server, "/gen.xml", old + held, "Town Crier")
    await poll_now(app, feed_server, "/gen.xml", url)
    told = [m["plain"] for m in fake_api.sent_messages(ADMIN)[before:]]
    while_closed = posts(fake_api, None)
    # General reopens; the dispatcher's retry (here: at once) delivers what waited.
    fake_api.reopen_topic(FORUM, None)
    services_of(app).dispatcher.request(FORUM)
    await settle(app)
    return held, told, while_closed


async def test_add_in_a_topic_posts_there_and_add_in_general_posts_to_general(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    [tech] = forum(fake_api, "Tech")
    tech_old, gen_old = [story(0, "t")], [story(0, "g")]
    tech_url = serve_feed(feed_server, "/tech.xml", tech_old, "Tech Wire")
    gen_url = serve_feed(feed_server, "/gen.xml", gen_old, "Town Crier")
    async with running_bot(bot_settings(**QUIET), rate_limit_outgoing=False) as app:
        added_in_topic = await ask(fake_api, f"/add {tech_url}", tech)
        # A reply in General carries its reply thread's id but is no topic message.
        added_in_general = await ask(
            fake_api, f"/add {gen_url}", thread_id=added_in_topic["message_id"]
        )
        storage = get_storage_service()
        tech_sub = storage.subscription(FORUM, tech_url)
        gen_sub = storage.subscription(FORUM, gen_url)

        tech_new, gen_new = [story(1, "t"), story(2, "t")], [story(1, "g")]
        serve_feed(feed_server, "/tech.xml", tech_old + tech_new, "Tech Wire")
        serve_feed(feed_server, "/gen.xml", gen_old + gen_new, "Town Crier")
        await poll_now(app, feed_server, "/tech.xml", tech_url)
        await poll_now(app, feed_server, "/gen.xml", gen_url)
    assert added_in_topic["plain"] == f"✅ Now following Tech Wire.\n{INSTANT}"
    assert added_in_topic["thread_id"] == tech
    assert added_in_general["plain"] == f"✅ Now following Town Crier.\n{INSTANT}"
    assert added_in_general["thread_id"] is None
    assert tech_sub is not None and tech_sub.thread_id == tech
    assert gen_sub is not None and gen_sub.thread_id is None
    # One post per item: the default "summary" format.
    assert posts(fake_api, tech)[1:] == [post(i, "Tech Wire") for i in tech_new]
    assert posts(fake_api, None)[1:] == [post(gen_new[0], "Town Crier")]


async def test_every_part_of_a_reply_stays_in_the_topic_even_when_the_command_is_deleted(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    [tech] = forum(fake_api, "Tech")
    async with running_bot(bot_settings(**QUIET), rate_limit_outgoing=False):
        fake_api.send_command(
            "/help", chat_id=FORUM, user_id=ADMIN, chat_type="supergroup", thread_id=tech
        )
        # Deleted before the bot reads it: the quote finds nothing, the thread id still counts.
        command = fake_api.pending_updates[-1]["message"]
        fake_api.delete_message(FORUM, command["message_id"])
        [answer] = await fake_api.wait_for_messages(1, chat_id=FORUM)
    assert answer["plain"] == telegram_html_to_plain(help_text(translator("en")))
    assert answer["thread_id"] == tech


async def test_add_in_another_topic_moves_the_feed_there(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    tech, sport = forum(fake_api, "Tech", "Sport")
    old = [story(0, "t")]
    url = serve_feed(feed_server, "/tech.xml", old, "Tech Wire")
    async with running_bot(bot_settings(**QUIET), rate_limit_outgoing=False) as app:
        await ask(fake_api, f"/add {url}", tech)
        to_sport = await ask(fake_api, f"/add {url}", sport)
        moved_sub = get_storage_service().subscription(FORUM, url)
        new = [story(1, "t")]
        serve_feed(feed_server, "/tech.xml", old + new, "Tech Wire")
        await poll_now(app, feed_server, "/tech.xml", url)
        to_general = await ask(fake_api, f"/add {url}", None)
        again_in_general = await ask(fake_api, f"/add {url}", None)
        newer = [story(2, "t")]
        serve_feed(feed_server, "/tech.xml", old + new + newer, "Tech Wire")
        await poll_now(app, feed_server, "/tech.xml", url)
    assert to_sport["plain"] == "➡️ Moved Tech Wire to this topic from its previous topic."
    assert f'<a href="{FORUM_LINK}/{tech}">its previous topic</a>' in to_sport["text"]
    assert to_sport["thread_id"] == sport
    assert moved_sub is not None and moved_sub.thread_id == sport
    assert to_general["plain"] == "➡️ Moved Tech Wire here to General from its previous topic."
    assert f'<a href="{FORUM_LINK}/{sport}">' in to_general["text"]
    assert again_in_general["plain"] == f"Already following {url}."
    # The cursor moved with the subscription: each item once, where the feed posted then.
    assert posts(fake_api, sport)[1:] == [post(new[0], "Tech Wire")]
    assert posts(fake_api, None)[-1] == post(newer[0], "Tech Wire")
    assert occurrences(fake_api, FORUM, title_of(new[0])) == 1
    assert occurrences(fake_api, FORUM, title_of(newer[0])) == 1
    assert posts(fake_api, tech) == [f"✅ Now following Tech Wire.\n{INSTANT}"]


async def test_closed_topic_holds_items_with_one_note_until_reopened(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    tech, sport = forum(fake_api, "Tech", "Sport")
    tech_old, sport_old = [story(0, "t")], [story(0, "s")]
    tech_url = serve_feed(feed_server, "/tech.xml", tech_old, "Tech Wire")
    sport_url = serve_feed(feed_server, "/sport.xml", sport_old, "Sport Daily")
    async with running_bot(bot_settings(**QUIET), rate_limit_outgoing=False) as app:
        await ask(fake_api, f"/add {tech_url}", tech)
        await ask(fake_api, f"/add {sport_url}", sport)
        storage = get_storage_service()
        fake_api.close_topic(FORUM, tech)
        cursor = storage.subscription(FORUM, tech_url)
        assert cursor is not None

        # Closed: the item waits and the chat is told in General; other topics carry on.
        held = [story(1, "t")]
        sport_new = [story(1, "s")]
        serve_feed(feed_server, "/tech.xml", tech_old + held, "Tech Wire")
        serve_feed(feed_server, "/sport.xml", sport_old + sport_new, "Sport Daily")
        await poll_now(app, feed_server, "/tech.xml", tech_url)
        await poll_now(app, feed_server, "/sport.xml", sport_url)
        first_note = posts(fake_api, None)
        still = storage.subscription(FORUM, tech_url)

        # More items while closed: still waiting, no second note.
        more = [story(2, "t")]
        serve_feed(feed_server, "/tech.xml", tech_old + held + more, "Tech Wire")
        await poll_now(app, feed_server, "/tech.xml", tech_url)
        notes_while_closed = posts(fake_api, None)
        in_topic_while_closed = posts(fake_api, tech)[1:]

        # Reopened (Telegram tells the bot): everything that waited goes out, once.
        fake_api.reopen_topic(FORUM, tech)
        await fake_api.wait_for_messages(len(fake_api.sent_messages(FORUM)) + 1, chat_id=FORUM)
        await settle(app)
        await poll_now(app, feed_server, "/tech.xml", tech_url)
        after_reopen = posts(fake_api, tech)[1:]

        # Closed again: a new closing, a new note.
        fake_api.close_topic(FORUM, tech)
        last = [story(3, "t")]
        serve_feed(feed_server, "/tech.xml", tech_old + held + more + last, "Tech Wire")
        await poll_now(app, feed_server, "/tech.xml", tech_url)
        notes_at_the_end = posts(fake_api, None)
    link = f'<a href="{FORUM_LINK}/{tech}">topic</a>'
    assert first_note == [CLOSED_NOTE]
    assert link in fake_api.topic_messages(FORUM, None)[0]["text"]
    assert still is not None and still.cursor == cursor.cursor  # nothing was skipped
    assert posts(fake_api, sport)[1:] == [post(sport_new[0], "Sport Daily")]
    assert notes_while_closed == [CLOSED_NOTE]
    assert in_topic_while_closed == []
    assert after_reopen == [post(i, "Tech Wire") for i in held + more]
    assert notes_at_the_end == [CLOSED_NOTE, CLOSED_NOTE]
    assert posts(fake_api, tech)[1:] == after_reopen  # the last item waits again


async def test_a_closed_general_tells_the_managers_privately_and_holds_its_items(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    forum(fake_api)
    blocked_admin = ADMIN + 1  # manages the forum too, but has blocked the bot since
    fake_api.set_admin(FORUM, blocked_admin)
    old = [story(0, "g")]
    url = serve_feed(feed_server, "/gen.xml", old, "Town Crier")
    async with running_bot(bot_settings(**QUIET), rate_limit_outgoing=False) as app:
        added = await say(fake_api, f"/add {FORUM} {url}", ADMIN)  # from a private chat
        await say(fake_api, f"/list {FORUM}", blocked_admin)
        fake_api.blocked_chats.add(blocked_admin)
        to_blocked = len(fake_api.sent_messages(blocked_admin))
        held, told, in_general_while_closed = await new_item_while_general_is_closed(
            app, fake_api, feed_server, old, url
        )
    assert added == f"✅ Now following Town Crier.\n{INSTANT}"
    assert told == [CLOSED_GENERAL_NOTE]
    assert len(fake_api.sent_messages(blocked_admin)) == to_blocked  # 403: skipped
    assert in_general_while_closed == []
    assert posts(fake_api, None) == [post(held[0], "Town Crier")]


async def test_a_manager_who_never_started_the_bot_is_skipped_and_nothing_stored_changes(
    fake_api: FakeBotAPI,
    bot_settings: SettingsFactory,
    feed_server: FeedServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Telegram refuses to write first to a user who never started the bot (403).

    ``stranger`` manages the forum, and follows a feed in a private chat, on record only:
    the data came from another bot the operator ran before, and they never started this one.
    """
    forum(fake_api)
    stranger = ADMIN + 2
    fake_api.set_admin(FORUM, stranger)
    old = [story(0, "g")]
    url = serve_feed(feed_server, "/gen.xml", old, "Town Crier")
    own_url = serve_feed(feed_server, "/own.xml", [story(0, "o")], "Own Feed")
    caplog.set_level(logging.INFO)
    async with running_bot(bot_settings(**QUIET), rate_limit_outgoing=False) as app:
        storage = get_storage_service()
        await storage.ensure_chat(stranger, "private", "Stranger")
        await storage.subscribe(stranger, own_url, limit=10)
        await say(fake_api, f"/add {FORUM} {url}", ADMIN)  # from a private chat
        await storage.update_chat(FORUM, lambda c: setattr(c, "managers", (*c.managers, stranger)))
        held, told, _in_general = await new_item_while_general_is_closed(
            app, fake_api, feed_server, old, url
        )
        forum_chat, stranger_chat = storage.chat(FORUM), storage.chat(stranger)
        stranger_feeds = storage.feed_urls(stranger)
    assert told == [CLOSED_GENERAL_NOTE]
    to_stranger = [c for c in fake_api.calls_to("sendMessage") if c.params["chat_id"] == stranger]
    assert [c.status for c in to_stranger] == [403]  # tried once, refused, not retried
    assert forum_chat is not None and forum_chat.active
    assert forum_chat.managers == (ADMIN, stranger)
    assert stranger_chat is not None and stranger_chat.active  # the 403 deactivated nothing
    assert list(stranger_feeds) == [own_url]
    [note] = [r for r in caplog.records if getattr(r, "event", "") == "topic_closed_private_note"]
    reached = {key: getattr(note, key) for key in ("told", "unreachable", "failed")}
    assert reached == {"told": [ADMIN], "unreachable": [stranger], "failed": []}
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert posts(fake_api, None) == [post(held[0], "Town Crier")]


async def test_closed_topic_reopened_silently_gets_its_items_with_the_next_delivery(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    [tech] = forum(fake_api, "Tech")
    old = [story(0, "t")]
    url = serve_feed(feed_server, "/tech.xml", old, "Tech Wire")
    async with running_bot(bot_settings(**QUIET), rate_limit_outgoing=False) as app:
        await ask(fake_api, f"/add {url}", tech)
        fake_api.close_topic(FORUM, tech, announce=False)
        held = [story(1, "t")]
        serve_feed(feed_server, "/tech.xml", old + held, "Tech Wire")
        await poll_now(app, feed_server, "/tech.xml", url)
        # Reopened while the bot missed the service message (e.g. it was down).
        fake_api.reopen_topic(FORUM, tech, announce=False)
        new = [story(2, "t")]
        serve_feed(feed_server, "/tech.xml", old + held + new, "Tech Wire")
        await poll_now(app, feed_server, "/tech.xml", url)
    assert posts(fake_api, None) == [CLOSED_NOTE]
    assert posts(fake_api, tech)[1:] == [post(i, "Tech Wire") for i in held + new]


@pytest.mark.parametrize(
    "refusal", ["Bad Request: message thread not found", "Bad Request: TOPIC_DELETED"]
)
async def test_deleted_topic_moves_its_feeds_to_general_with_a_note(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer, refusal: str
) -> None:
    [tech] = forum(fake_api, "Tech")
    fake_api.deleted_topic_error = refusal
    old = [story(0, "t")]
    url = serve_feed(feed_server, "/tech.xml", old, "Tech Wire")
    async with running_bot(bot_settings(**QUIET), rate_limit_outgoing=False) as app:
        await ask(fake_api, f"/add {url}", tech)
        fake_api.delete_topic(FORUM, tech)
        new = [story(1, "t")]
        serve_feed(feed_server, "/tech.xml", old + new, "Tech Wire")
        await poll_now(app, feed_server, "/tech.xml", url)
        sub = get_storage_service().subscription(FORUM, url)
        later = [story(2, "t")]
        serve_feed(feed_server, "/tech.xml", old + new + later, "Tech Wire")
        await poll_now(app, feed_server, "/tech.xml", url)
    assert sub is not None and sub.thread_id is None
    assert posts(fake_api, None) == [
        DELETED_NOTE,
        post(new[0], "Tech Wire"),
        post(later[0], "Tech Wire"),
    ]
    refused = [c for c in fake_api.calls_to("sendMessage") if c.status == 400]
    assert len(refused) == 1  # one refusal, then never the dead topic again


async def test_digest_goes_out_once_per_topic(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    [tech] = forum(fake_api, "Tech")
    tech_old, gen_old = [story(0, "t")], [story(0, "g")]
    tech_url = serve_feed(feed_server, "/tech.xml", tech_old, "Tech Wire")
    gen_url = serve_feed(feed_server, "/gen.xml", gen_old, "Town Crier")
    async with running_bot(bot_settings(**QUIET), rate_limit_outgoing=False) as app:
        await ask(fake_api, "/digest every 1h", None)
        await ask(fake_api, f"/add {tech_url}", tech)
        await ask(fake_api, f"/add {gen_url}", None)
        mark = {t: len(posts(fake_api, t)) for t in (tech, None)}
        tech_new, gen_new = [story(1, "t")], [story(1, "g")]
        serve_feed(feed_server, "/tech.xml", tech_old + tech_new, "Tech Wire")
        serve_feed(feed_server, "/gen.xml", gen_old + gen_new, "Town Crier")
        await poll_now(app, feed_server, "/tech.xml", tech_url)
        await poll_now(app, feed_server, "/gen.xml", gen_url)
        quiet = {t: len(posts(fake_api, t)) for t in (tech, None)}
        await force_digest(app, FORUM)
    assert quiet == mark
    assert posts(fake_api, tech)[mark[tech] :] == [
        f"📰 Digest\n\nTech Wire\n\n{tech_new[0]['title']}"
    ]
    assert posts(fake_api, None)[mark[None] :] == [
        f"📰 Digest\n\nTown Crier\n\n{gen_new[0]['title']}"
    ]


async def test_closed_topic_waits_for_the_next_digest(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    [tech] = forum(fake_api, "Tech")
    old = [story(0, "t")]
    url = serve_feed(feed_server, "/tech.xml", old, "Tech Wire")
    async with running_bot(bot_settings(**QUIET), rate_limit_outgoing=False) as app:
        await ask(fake_api, "/digest every 1h", None)
        await ask(fake_api, f"/add {url}", tech)
        fake_api.close_topic(FORUM, tech)
        held = [story(1, "t")]
        serve_feed(feed_server, "/tech.xml", old + held, "Tech Wire")
        await poll_now(app, feed_server, "/tech.xml", url)
        first_due = await force_digest(app, FORUM)
        storage = get_storage_service()
        chat = storage.chat(FORUM)
        waiting = [b.url for b in storage.pending(FORUM)]
        fake_api.reopen_topic(FORUM, tech)
        await settle(app)
        await force_digest(app, FORUM)
    # The closed topic did not hold the schedule back: the next digest is an hour on.
    assert chat is not None and chat.next_digest_at == pytest.approx(first_due + 3600, abs=5)
    assert waiting == [url]
    assert posts(fake_api, None)[-1] == CLOSED_NOTE
    assert posts(fake_api, tech)[-1] == f"📰 Digest\n\nTech Wire\n\n{held[0]['title']}"
