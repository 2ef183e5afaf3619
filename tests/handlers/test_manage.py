"""/list pages and buttons, /rename, /filter, mute and filters in delivery — end to end.

Everything goes through the real Application and the fake Bot API: commands are messages,
buttons are pressed as Telegram sends presses (``callback_query`` updates), and each test
asserts what the user reads — the message text, the buttons, the answer to a press — and
what storage holds afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.config import Settings
from bot.handlers.manage import RENAME_WINDOW_S
from bot.models import FeedState
from bot.services.filters import MAX_TERMS
from bot.storage import get_storage_service
from tests.helpers.bot_runner import running_bot
from tests.helpers.conversation import poll_now, press, say, settle
from tests.helpers.fake_bot_api import FakeBotAPI
from tests.helpers.feed_server import FeedServer
from tests.helpers.feeds import rss

SettingsFactory = Callable[..., Settings]
LEGEND = "Buttons: 🔇 mute · 🔔 unmute · 🔎 filters · ✏️ rename · 🗑 remove"
ADMINS_ONLY = "Only this chat's administrators can change its feeds and delivery."
NOT_VALID = "This button is not valid any more. Send /list for a fresh list."
USAGE = (
    "Change them:\n"
    "/filter include python, rust — only items that mention one of these\n"
    "/filter exclude ads, sponsored post — never items that mention these\n"
    "/filter clear — no filters"
)
GROUP: dict[str, Any] = {"chat_type": "supergroup", "chat_title": "G"}


def feed_url(n: int) -> str:
    return f"https://feeds.example/{n:02d}.xml"


async def follow_many(chat_id: int, count: int, chat_type: str = "private") -> None:
    """The chat follows ``count`` feeds titled "Feed 01"… (straight into storage: fast)."""
    storage = get_storage_service()
    await storage.ensure_chat(chat_id, chat_type, f"Chat {chat_id}")
    for n in range(1, count + 1):
        storage.set_feed_state(FeedState(url=feed_url(n), title=f"Feed {n:02d}"))
        assert await storage.subscribe(chat_id, feed_url(n), limit=1000) == "added"


def listed(numbers: range) -> str:
    return "\n".join(f"{n}. Feed {n:02d}\n   {feed_url(n)}" for n in numbers)


def row(n: int, muted: bool = False) -> list[str]:
    return [f"{n} {'🔔' if muted else '🔇'}", f"{n} 🔎", f"{n} ✏️", f"{n} 🗑"]


async def show_list(
    fake: FakeBotAPI, chat_id: int, user_id: int | None = None, text: str = "/list", **kw: Any
) -> tuple[int, str]:
    """Send /list; return the id of the list message and its text."""
    plain = await say(fake, text, chat_id, user_id, **kw)
    return fake.sent_messages(chat_id)[-1]["message_id"], plain


def shown(fake: FakeBotAPI, chat_id: int, message_id: int) -> str:
    return str(fake.buttons.record(chat_id, message_id)["plain"])


def items(*titles: str) -> bytes:
    """The feed "Tech Times" with these items, newest first; an item's id is its title."""
    return rss(
        [{"title": t, "link": f"https://n.example/{t.replace(' ', '-')}", "guid": t}
         for t in titles],
        title="Tech Times",
    )  # fmt: skip


async def add_feed(fake: FakeBotAPI, server: FeedServer, chat_id: int, *titles: str) -> str:
    """Serve a feed with ``titles`` (history once added) and follow it; return its URL."""
    server.serve("/tech.xml", items(*titles))
    url = server.url("/tech.xml")
    answer = await say(fake, f"/add {url}", chat_id)
    assert answer.startswith("✅ Now following Tech Times."), answer
    return url


# --------------------------------------------------------------------------- /list pages


async def test_list_pages_through_45_feeds_with_buttons(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings()):
        await follow_many(40, 45)
        first, page_1 = await show_list(fake_api, 40)
        labels_1 = fake_api.buttons.labels(40, first)
        answer = await press(fake_api, 40, first, "2 ▶")
        page_2, labels_2 = shown(fake_api, 40, first), fake_api.buttons.labels(40, first)
        last, page_5 = await show_list(fake_api, 40, text="/list 5")
        labels_5 = fake_api.buttons.labels(40, last)
        removed = await say(fake_api, "/remove 12", 40)
        _, page_2_after = await show_list(fake_api, 40, text="/list 2")
    assert page_1 == (f"Your feeds · 1–10 of 45\n{listed(range(1, 11))}\n\nPage 1 of 5. {LEGEND}")
    assert labels_1 == [*(row(n) for n in range(1, 11)), ["2 ▶"]]
    assert answer == {"text": None, "show_alert": False}
    assert page_2 == (f"Your feeds · 11–20 of 45\n{listed(range(11, 21))}\n\nPage 2 of 5. {LEGEND}")
    assert labels_2 == [*(row(n) for n in range(11, 21)), ["◀ 1", "3 ▶"]]
    assert page_5 == (f"Your feeds · 41–45 of 45\n{listed(range(41, 46))}\n\nPage 5 of 5. {LEGEND}")
    assert labels_5 == [*(row(n) for n in range(41, 46)), ["◀ 4"]]
    # /remove takes the numbers /list shows, and the list renumbers after it.
    assert removed == f"🗑 Removed {feed_url(12)}."
    assert page_2_after.splitlines()[:5] == [
        "Your feeds · 11–20 of 44",
        "11. Feed 11",
        f"   {feed_url(11)}",
        "12. Feed 13",
        f"   {feed_url(13)}",
    ]


async def test_an_empty_list_has_no_buttons(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings()):
        message_id, text = await show_list(fake_api, 47)
        record = fake_api.buttons.record(47, message_id)
    assert text == "No feeds yet. Add one with /add <url>."
    assert record["reply_markup"] is None


# --------------------------------------------------------------------------- mute


async def test_mute_holds_items_back_and_unmute_does_not_send_them_later(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    async with running_bot(bot_settings()) as app:
        url = await add_feed(fake_api, feed_server, 41, "old news")
        await poll_now(app, url)
        message_id, _ = await show_list(fake_api, 41)
        muted = await press(fake_api, 41, message_id, "1 🔇")
        after_mute = shown(fake_api, 41, message_id)
        labels = fake_api.buttons.labels(41, message_id)
        before = len(fake_api.sent_messages(41))
        feed_server.serve("/tech.xml", items("held back story", "old news"))
        await poll_now(app, url)
        storage = get_storage_service()
        sent_while_muted = fake_api.sent_messages(41)[before:]
        cursor_while_muted = storage.subscription(41, url)
        head = storage.feed_head(url)
        unmuted = await press(fake_api, 41, message_id, "1 🔔")
        await poll_now(app, url)
        sent_after_unmute = fake_api.sent_messages(41)[before:]
        feed_server.serve("/tech.xml", items("fresh story", "held back story", "old news"))
        await poll_now(app, url)
        delivered = [m["plain"] for m in fake_api.sent_messages(41)[before:]]
        await storage.flush()
        counters = storage.counters()["chats"]["41"]
    assert muted == {"text": "🔇 Muted Tech Times: its items are not posted.", "show_alert": False}
    assert after_mute.splitlines()[1] == "1. Tech Times — 🔇 muted"
    assert labels == [row(1, muted=True)]
    assert sent_while_muted == []
    assert cursor_while_muted is not None
    assert cursor_while_muted.muted
    assert cursor_while_muted.cursor == head  # advanced as if delivered
    assert unmuted == {"text": "🔔 Tech Times posts new items again.", "show_alert": False}
    assert sent_after_unmute == []  # the held-back item is never sent
    assert delivered == ["fresh story\nTech Times"]
    assert counters["items_filtered"] == 1


# --------------------------------------------------------------------------- filters


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


async def test_filters_button_shows_them_and_clears_them(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings()):
        await follow_many(43, 3)
        await say(fake_api, "/filter 2 include rust, wasm", 43)
        message_id, listing = await show_list(fake_api, 43)
        view = await press(fake_api, 43, message_id, "2 🔎")
        filters_text = shown(fake_api, 43, message_id)
        labels = fake_api.buttons.labels(43, message_id)
        cleared = await press(fake_api, 43, message_id, "🧹 Clear filters")
        cleared_text = shown(fake_api, 43, message_id)
        cleared_labels = fake_api.buttons.labels(43, message_id)
        await press(fake_api, 43, message_id, "◀ Back to the list")
        back = shown(fake_api, 43, message_id)
        sub = get_storage_service().subscription(43, feed_url(2))
        by_command = await say(fake_api, "/filter 1", 43)
        command_labels = fake_api.buttons.labels(43, fake_api.sent_messages(43)[-1]["message_id"])
    assert listing.splitlines()[3] == "2. Feed 02 — 🔎 filtered"
    assert view == {"text": None, "show_alert": False}
    assert filters_text == (
        "🔎 Filters of 2. Feed 02\n"
        "Only items that mention: rust, wasm\n\n"
        "Change them:\n"
        "/filter 2 include python, rust — only items that mention one of these\n"
        "/filter 2 exclude ads, sponsored post — never items that mention these\n"
        "/filter 2 clear — no filters"
    )
    assert labels == [["🧹 Clear filters", "◀ Back to the list"]]
    assert cleared == {"text": "🧹 Filters of Feed 02 cleared.", "show_alert": False}
    assert cleared_text.splitlines()[1] == "None of its own: every item is posted."
    assert cleared_labels == [["◀ Back to the list"]]
    assert back == f"Your feeds\n{listed(range(1, 4))}\n\n{LEGEND}"
    assert sub is not None
    assert not sub.filters
    assert by_command.startswith("🔎 Filters of 1. Feed 01\nNone of its own")
    assert command_labels == [["◀ Back to the list"]]


# --------------------------------------------------------------------------- remove


async def test_remove_button_asks_first(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings()):
        await follow_many(44, 3)
        message_id, _ = await show_list(fake_api, 44)
        await press(fake_api, 44, message_id, "2 🗑")
        confirm, confirm_labels = (
            shown(fake_api, 44, message_id),
            fake_api.buttons.labels(44, message_id),
        )
        await press(fake_api, 44, message_id, "◀ Back")
        still = get_storage_service().feed_urls(44)
        await press(fake_api, 44, message_id, "2 🗑")
        removed = await press(fake_api, 44, message_id, "🗑 Yes, remove")
        after = shown(fake_api, 44, message_id)
        left = get_storage_service().feed_urls(44)
    assert confirm == f"🗑 Stop following 2. Feed 02?\n{feed_url(2)}"
    assert confirm_labels == [["🗑 Yes, remove", "◀ Back"]]
    assert still == [feed_url(1), feed_url(2), feed_url(3)]
    assert removed == {"text": "🗑 Removed Feed 02.", "show_alert": False}
    assert after == (
        f"Your feeds\n1. Feed 01\n   {feed_url(1)}\n2. Feed 03\n   {feed_url(3)}\n\n{LEGEND}"
    )
    assert left == [feed_url(1), feed_url(3)]


# --------------------------------------------------------------------------- rename


async def test_rename_by_button_in_a_private_chat_and_by_command(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings()):
        await follow_many(45, 2)
        message_id, _ = await show_list(fake_api, 45)
        asked = await press(fake_api, 45, message_id, "1 ✏️")
        prompt = fake_api.sent_messages(45)[-1]
        renamed = await say(fake_api, "Morning   news", 45)
        _, listing = await show_list(fake_api, 45)
        # The conversation is over: plain text is not taken as a title any more.
        fake_api.send_command("just chatting", chat_id=45, user_id=45)
        usage = await say(fake_api, "/rename", 45)
        back = await say(fake_api, "/rename 1 -", 45)
        by_command = await say(fake_api, "/rename 2 Evening <b>digest</b>", 45)
        too_long = await say(fake_api, "/rename 2 " + "t" * 101, 45)
        no_feed = await say(fake_api, "/rename 7 Something", 45)
        message_id, listing_2 = await show_list(fake_api, 45)
        toast = await press(fake_api, 45, message_id, "2 🔇")
        storage = get_storage_service()
        titles = [s.title for s in storage.subscriptions(45)]
        sent = len(fake_api.sent_messages(45))
    assert asked == {"text": "✏️ Reply to my message with the new title.", "show_alert": False}
    assert prompt["plain"] == (
        "✏️ User45, reply to this message with the new title for 1. Feed 01 within 5 minutes "
        "(“-” goes back to the feed's own title). Or send /rename 1 followed by the new title."
    )
    assert prompt["reply_markup"]["force_reply"] is True
    assert prompt["reply_markup"]["selective"] is True
    assert renamed == "✏️ Renamed: Morning news."
    assert listing.splitlines()[1] == "1. Morning news"
    assert usage == (
        "Usage: /rename <number from /list> <new title>, e.g. /rename 2 Morning news "
        "(/rename 2 - goes back to the feed's own title)"
    )
    assert back == "✏️ Back to the feed's own title: Feed 01."
    assert by_command == "✏️ Renamed: Evening <b>digest</b>."  # shown as typed, not as HTML
    assert too_long == "That title is too long: at most 100 characters."
    assert no_feed == "No such feed here. See /list for the numbers."
    assert titles == ["", "Evening <b>digest</b>"]
    assert listing_2.splitlines()[3] == "2. Evening <b>digest</b>"  # the title as text
    assert toast["text"] == "🔇 Muted Evening <b>digest</b>: its items are not posted."
    assert sent == 10  # three lists, the prompt and six answers: nothing for "just chatting"
    assert RENAME_WINDOW_S == 300  # "within 5 minutes" in the prompt


async def test_rename_in_a_group_takes_only_the_admins_reply_to_the_prompt(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    group = -6001
    fake_api.set_admin(group, 61)
    async with running_bot(bot_settings()):
        await follow_many(group, 1, "supergroup")
        message_id, _ = await show_list(fake_api, group, 61, **GROUP)
        await press(fake_api, group, message_id, "1 ✏️", user_id=61)
        prompt_id = fake_api.sent_messages(group)[-1]["message_id"]
        before = len(fake_api.sent_messages(group))
        fake_api.send_command("hello everyone", chat_id=group, user_id=61, **GROUP)
        fake_api.send_command("My title", chat_id=group, user_id=62, reply_to=prompt_id, **GROUP)
        answer = await say(fake_api, "Group news", group, 61, reply_to=prompt_id, **GROUP)
        replies = fake_api.sent_messages(group)[before:]
        sub = get_storage_service().subscription(group, feed_url(1))
    assert answer == "✏️ Renamed: Group news."
    assert len(replies) == 1  # nothing for the chatter or the other member's reply
    assert sub is not None
    assert sub.title == "Group news"


# --------------------------------------------------------------------------- refusals


async def test_buttons_refuse_non_admins_and_forged_data(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    group, other = -7001, -7002
    fake_api.set_admin(group, 71)
    fake_api.set_admin(other, 72)
    async with running_bot(bot_settings()):
        await follow_many(group, 2, "supergroup")
        await follow_many(other, 2, "supergroup")
        message_id, _ = await show_list(fake_api, group, 72, **GROUP)
        member = await press(fake_api, group, message_id, "1 🔇", user_id=72)
        data = next(b["callback_data"] for b in fake_api.buttons.keyboard(group, message_id)[0]
                    if b["text"] == "1 🗑")  # fmt: skip
        head, _chat, page, key, sig = data.split(":")
        # An admin of the other chat rewrites the chat id to act there: the signature breaks.
        moved = fake_api.buttons.press(
            group, message_id, user_id=72, data=f"{head}:{other}:{page}:{key}:{sig}"
        )
        moved_answer = await fake_api.buttons.wait_for_answer(moved)
        garbage = fake_api.buttons.press(group, message_id, user_id=71, data="lm:1:2:3:4")
        garbage_answer = await fake_api.buttons.wait_for_answer(garbage)
        admin = await press(fake_api, group, message_id, "1 🔇", user_id=71)
        storage = get_storage_service()
        muted = [s.muted for s in storage.subscriptions(group)]
        others = [(s.url, s.muted) for s in storage.subscriptions(other)]
    assert member == {"text": "You are not an administrator of G.", "show_alert": True}
    assert moved_answer == {"text": NOT_VALID, "show_alert": True}
    assert garbage_answer == {"text": NOT_VALID, "show_alert": True}
    assert admin["text"] == "🔇 Muted Feed 01: its items are not posted."
    assert muted == [True, False]
    assert others == [(feed_url(1), False), (feed_url(2), False)]


async def test_channel_subscribers_cannot_use_the_buttons(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    channel = -1_000_000_008_001
    fake_api.set_admin(channel, 81)
    fake_api.set_admin(channel, fake_api.bot_id)  # a bot posting in a channel is its admin
    async with running_bot(bot_settings()):
        await follow_many(channel, 1, "channel")
        fake_api.channel_post("/list", chat_id=channel)
        [listing] = await fake_api.wait_for_messages(1, chat_id=channel)
        message_id = listing["message_id"]
        subscriber = await press(fake_api, channel, message_id, "1 🗑", user_id=82)
        rename = await press(fake_api, channel, message_id, "1 ✏️", user_id=81)
        posts = len(fake_api.sent_messages(channel))
        admin = await press(fake_api, channel, message_id, "1 🔇", user_id=81)
        sub = get_storage_service().subscription(channel, feed_url(1))
    assert subscriber == {
        "text": "You are not an administrator of News channel.",
        "show_alert": True,
    }
    # No prompt is posted into a channel (every subscriber would read it).
    assert rename == {"text": "Send /rename 1 followed by the new title.", "show_alert": True}
    assert posts == 1
    assert admin["show_alert"] is False
    assert sub is not None
    assert sub.muted


async def test_stale_buttons_answer_politely_and_show_the_list_now(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings()) as app:
        await follow_many(46, 12)
        first, _ = await show_list(fake_api, 46)
        second, _ = await show_list(fake_api, 46, text="/list 2")
        next_data = fake_api.buttons.keyboard(46, first)[-1][0]["callback_data"]
        await say(fake_api, "/remove 12", 46)
        await say(fake_api, "/remove 11", 46)
        gone = await press(fake_api, 46, second, "11 🔇")
        second_now = shown(fake_api, 46, second)
        page_gone = await press(fake_api, 46, first, "2 ▶")
        first_now = shown(fake_api, 46, first)
        # The same stale press again: the list message already shows this; Telegram answers
        # "message is not modified", and the press is still answered.
        again = fake_api.buttons.press(46, first, user_id=46, data=next_data)
        again_answer = await fake_api.buttons.wait_for_answer(again)
        await settle(app)
        refused_edits = [c for c in fake_api.calls_to("editMessageText") if c.status == 400]
        storage = get_storage_service()
        muted = [s.muted for s in storage.subscriptions(46)]
    one_page = f"Your feeds\n{listed(range(1, 11))}\n\n{LEGEND}"
    assert gone == {
        "text": "That feed is no longer in this chat's list; here is the list now.",
        "show_alert": False,
    }
    assert second_now == one_page
    assert page_gone == {"text": "That page is gone: the list is shorter now.", "show_alert": False}
    assert first_now == one_page
    assert again_answer == page_gone
    assert len(refused_edits) == 1
    assert muted == [False] * 10


# --------------------------------------------------------------------------- another chat


async def test_a_channels_list_and_buttons_work_from_a_private_chat(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    channel, user = -1_001_230_000_001, 91
    fake_api.set_chat(channel, "channel", title="My Channel", username="mychan")
    fake_api.set_admin(channel, fake_api.bot_id)
    fake_api.set_admin(channel, user, "creator")
    async with running_bot(bot_settings()):
        await follow_many(channel, 2, "channel")
        message_id, listing = await show_list(fake_api, user, text="/list @mychan")
        muted = await press(fake_api, user, message_id, "1 🔇")
        after = shown(fake_api, user, message_id)
        await press(fake_api, user, message_id, "2 ✏️")
        renamed = await say(fake_api, "Rusty news", user)
        filtered = await say(fake_api, f"/filter {channel} 2 include rust", user)
        chat_filters = await say(fake_api, "/filter @mychan exclude ads", user)
        by_command = await say(fake_api, "/rename @mychan 1 Daily", user)
        posted_in_channel = fake_api.sent_messages(channel)
        storage = get_storage_service()
        subs = [(s.muted, s.title, s.filters.include) for s in storage.subscriptions(channel)]
        chat = storage.chat(channel)
    assert listing == f"@mychan\nYour feeds\n{listed(range(1, 3))}\n\n{LEGEND}"
    assert muted["text"] == "🔇 Muted Feed 01: its items are not posted."
    assert after.splitlines()[:3] == ["My Channel", "Your feeds", "1. Feed 01 — 🔇 muted"]
    assert renamed == "✏️ Renamed: Rusty news."
    assert filtered == (
        "@mychan\n✅ Saved. Filters of 2. Rusty news:\nOnly items that mention: rust"
    )
    assert chat_filters == (
        "@mychan\n✅ Saved. Filters of this chat (every feed):\nNever items that mention: ads"
    )
    assert by_command == "@mychan\n✏️ Renamed: Daily."
    assert posted_in_channel == []  # nothing of this reached the channel's readers
    assert subs == [(True, "Daily", ()), (False, "Rusty news", ("rust",))]
    assert chat is not None
    assert chat.filters.exclude == ("ads",)


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
