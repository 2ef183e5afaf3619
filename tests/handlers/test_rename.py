"""/rename and the rename conversation started by the ✏️ button — end to end.

The prompt store itself (expiry, bound, which message answers) is unit-tested in
``tests/services/test_prompts.py``; here the real Application and the fake Bot API show
what users read and what storage keeps.
"""

from __future__ import annotations

from typing import Any

from telegram.ext import CallbackQueryHandler, CommandHandler, MessageHandler

from bot.app import build_application
from bot.handlers.rename import RENAME_HANDLER_GROUP, on_text
from bot.services.prompts import RENAME_WINDOW_S
from bot.storage import get_storage_service, reset_storage_service
from tests.helpers.bot_runner import running_bot
from tests.helpers.conversation import press, say
from tests.helpers.fake_bot_api import FakeBotAPI
from tests.helpers.subscriptions_flow import (
    GROUP,
    NO_SUCH_FEED,
    SettingsFactory,
    feed_url,
    follow_many,
    show_list,
)


async def ask_rename(
    fake: FakeBotAPI, chat_id: int, user_id: int | None = None, label: str = "1 ✏️", **kw: Any
) -> int:
    """Send /list and press a rename button; return the id of the bot's prompt."""
    message_id, _ = await show_list(fake, chat_id, user_id, **kw)
    await press(fake, chat_id, message_id, label, user_id=user_id)
    return int(fake.sent_messages(chat_id)[-1]["message_id"])


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
        prompt_id = await ask_rename(fake_api, group, 61, **GROUP)
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


async def test_conversation_mistakes_and_lost_rights_get_clear_answers(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    group = -6101
    fake_api.set_admin(group, 63)
    async with running_bot(bot_settings()):
        await follow_many(46, 2)
        await ask_rename(fake_api, 46)
        removed = await say(fake_api, "/remove 1", 46)  # a command leaves the prompt open
        gone = await say(fake_api, "New title", 46)
        await ask_rename(fake_api, 46)
        empty = await say(fake_api, "\u200b\u2060", 46)  # nothing printable
        after_empty = await say(fake_api, "/rename 1 Kept", 46)
        await follow_many(group, 1, "supergroup")
        prompt_id = await ask_rename(fake_api, group, 63, **GROUP)
        fake_api.set_admin(group, 63, "member")  # demoted while the prompt is open
        demoted = await say(fake_api, "Mine now", group, 63, reply_to=prompt_id, **GROUP)
        storage = get_storage_service()
        titles = [s.title for s in storage.subscriptions(46)]
        group_sub = storage.subscription(group, feed_url(1))
    assert removed == f"🗑 Removed {feed_url(1)}."
    assert gone == NO_SUCH_FEED
    assert empty == "That title is empty; send some text, or “-” for the feed's own title."
    assert after_empty == "✏️ Renamed: Kept."
    assert titles == ["Kept"]
    assert demoted == "You are not an administrator of G."
    assert group_sub is not None
    assert group_sub.title == ""


def test_prompt_answers_have_a_handler_group_of_their_own(
    bot_settings: SettingsFactory,
) -> None:
    reset_storage_service()  # build_application configures the storage singleton
    try:
        app = build_application(bot_settings())
    finally:
        reset_storage_service()
    groups = {group: list(handlers) for group, handlers in app.handlers.items()}
    commands = {
        command: group
        for group, handlers in groups.items()
        for handler in handlers
        if isinstance(handler, CommandHandler)
        for command in handler.commands
    }
    buttons = [g for g, hs in groups.items() for h in hs if isinstance(h, CallbackQueryHandler)]
    # The catch-all for answers sits alone in a later group than every command, so it can
    # neither hide a command nor be hidden by one (PTB runs the first match of each group).
    assert [(type(h), h.callback) for h in groups[RENAME_HANDLER_GROUP]] == [
        (MessageHandler, on_text)
    ]
    assert commands["list"] == commands["rename"] == commands["filter"] == 0
    assert max(commands.values()) < RENAME_HANDLER_GROUP
    assert buttons == [0]
