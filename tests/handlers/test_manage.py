"""/list pages and their buttons (mute, filters, remove), refusals, another chat — end to end.

Everything goes through the real Application and the fake Bot API: commands are messages,
buttons are pressed as Telegram sends presses (``callback_query`` updates), and each test
asserts what the user reads — the message text, the buttons, the answer to a press — and
what storage holds afterwards. /rename and /filter have files of their own
(``test_rename.py``, ``test_filters.py``); the shared moves are in
``tests/helpers/subscriptions_flow.py``.
"""

from __future__ import annotations

from bot.storage import get_storage_service
from tests.helpers.bot_runner import running_bot
from tests.helpers.conversation import poll_now, press, say, settle
from tests.helpers.fake_bot_api import FakeBotAPI
from tests.helpers.feed_server import FeedServer
from tests.helpers.subscriptions_flow import (
    ADMINS_ONLY,
    GROUP,
    LEGEND,
    NO_SUCH_FEED,
    NOT_VALID,
    SettingsFactory,
    add_feed,
    feed_url,
    follow_many,
    items,
    listed,
    row,
    show_list,
    shown,
)


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


async def test_format_button_gives_a_feed_its_own_post_format(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    async with running_bot(bot_settings()) as app:
        url = await add_feed(fake_api, feed_server, 43, "old news")
        await poll_now(app, url)
        message_id, _ = await show_list(fake_api, 43)
        storage = get_storage_service()
        formats, answers = [], []
        for _n in range(4):  # chat's → title → summary → full → chat's
            answers.append((await press(fake_api, 43, message_id, "1 📝"))["text"])
            sub = storage.subscription(43, url)
            assert sub is not None
            formats.append(sub.format)
            if sub.format == "title":
                listed_line = shown(fake_api, 43, message_id).splitlines()[1]
        await press(fake_api, 43, message_id, "1 📝")  # back to title
        before = len(fake_api.sent_messages(43))
        feed_server.serve("/tech.xml", items("first new", "second new", "old news"))
        await poll_now(app, url)
        await settle(app)
        posts = [m["plain"] for m in fake_api.sent_messages(43)[before:]]
    assert formats == ["title", "summary", "full", None]
    assert answers == [
        "📝 Tech Times posts as title.",
        "📝 Tech Times posts as summary.",
        "📝 Tech Times posts as full.",
        "📝 Tech Times follows the chat's post format (summary).",
    ]
    assert listed_line == "1. Tech Times — 📝 title"
    # The title format shares one message between a feed's new items; summary would not.
    assert posts == ["second new\nTech Times\n\nfirst new\nTech Times"]  # oldest first


async def test_format_command_sets_one_feeds_format(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    group = -7101
    fake_api.set_admin(group, 71)
    async with running_bot(bot_settings()):
        await follow_many(group, 2, "supergroup")
        own = await say(fake_api, "/format 2 full", group, user_id=71, **GROUP)
        shown_state = await say(fake_api, "/format", group, user_id=72, **GROUP)
        back = await say(fake_api, "/format 2 chat", group, user_id=71, **GROUP)
        missing = await say(fake_api, "/format 9 title", group, user_id=71, **GROUP)
        unknown = await say(fake_api, "/format 1 poster", group, user_id=71, **GROUP)
        member = await say(fake_api, "/format 1 title", group, user_id=72, **GROUP)
        subs = [s.format for s in get_storage_service().subscriptions(group)]
    assert own == "✅ Feed 02 posts as full — as summary, with the item's first image"
    assert "1 feed here has a format of its own." in shown_state
    assert back == "✅ Feed 02 follows the chat's post format (summary)."
    assert missing == NO_SUCH_FEED
    assert unknown == (
        'Unknown format "poster". Choose one: title, summary, full, or chat (the chat\'s format).'
    )
    assert member == ADMINS_ONLY
    assert subs == [None, None]


async def test_page_buttons_recheck_the_pressers_rights(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    group = -7201
    fake_api.set_admin(group, 71)
    async with running_bot(bot_settings()):
        await follow_many(group, 12, "supergroup")
        message_id, _ = await show_list(fake_api, group, 71, **GROUP)
        member = await press(fake_api, group, message_id, "2 ▶", user_id=72)
        page_after_member = shown(fake_api, group, message_id).splitlines()[0]
        admin = await press(fake_api, group, message_id, "2 ▶", user_id=71)
        page_after_admin = shown(fake_api, group, message_id).splitlines()[0]
    assert member == {"text": "You are not an administrator of G.", "show_alert": True}
    assert page_after_member == "Your feeds · 1–10 of 12"
    assert admin == {"text": None, "show_alert": False}
    assert page_after_admin == "Your feeds · 11–12 of 12"
