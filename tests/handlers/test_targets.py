"""Managing a channel or group from a private chat: ``/add @channel <url>`` and friends.

End to end through the real Application and the fake Bot API, which answers getChat and
getChatMember as Telegram does. Each test asserts the exact text the user reads in their
private chat, that nothing was posted in the target chat, and what storage holds.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.config import Settings
from bot.storage import get_storage_service
from tests.helpers.bot_runner import running_bot
from tests.helpers.conversation import say
from tests.helpers.fake_bot_api import FakeBotAPI
from tests.helpers.feed_server import FeedServer
from tests.helpers.feeds import rss

SettingsFactory = Callable[..., Settings]
USER = 501
CHANNEL = -1001234567890
GROUP = -1009876543210
INSTANT = "New items will be posted here as soon as they appear."
PAUSED = (
    "⏸ Paused. I'll keep collecting new items (the latest 200 per feed) and post them "
    "when you say /resume. /news still works."
)


def stories(tag: str) -> bytes:
    """A one-item feed titled "<Tag> Times"."""
    item = {"title": f"{tag} story", "link": f"https://{tag}.example/1", "guid": f"{tag}-1"}
    return rss([item], title=f"{tag.title()} Times")


def a_channel(
    fake: FakeBotAPI,
    *,
    bot: str = "administrator",
    user: str = "creator",
    bot_rights: dict[str, bool] | None = None,
    user_rights: dict[str, bool] | None = None,
) -> None:
    """@mychannel ("My Channel"), the bot and USER in it with the given statuses."""
    fake.set_chat(CHANNEL, "channel", title="My Channel", username="mychannel")
    fake.set_admin(CHANNEL, fake.bot_id, bot, **(bot_rights or {}))
    fake.set_admin(CHANNEL, USER, user, **(user_rights or {}))


def a_group(
    fake: FakeBotAPI, *, bot: str = "member", user: str = "administrator", **bot_rights: bool
) -> None:
    """A private supergroup "Readers" (no username), the bot and USER in it."""
    fake.set_chat(GROUP, "supergroup", title="Readers")
    fake.set_admin(GROUP, fake.bot_id, bot, **bot_rights)
    fake.set_admin(GROUP, USER, user)


async def test_a_channel_is_managed_from_a_private_chat(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/one.xml", stories("one"))
    url = feed_server.url("/one.xml")
    a_channel(fake_api)
    async with running_bot(bot_settings()):
        added = await say(fake_api, f"/add @mychannel {url}", USER)
        listing = await say(fake_api, "/list @MyChannel", USER)
        by_id = await say(fake_api, f"/list {CHANNEL}", USER)
        own_list = await say(fake_api, "/list", USER)
        storage = get_storage_service()
        followed, own = storage.feed_urls(CHANNEL), storage.feed_urls(USER)
        chat = storage.chat(CHANNEL)
        managed = storage.managed_chats(USER)
        removed = await say(fake_api, f"/remove @mychannel {url}", USER)
        after = storage.feed_urls(CHANNEL)
    assert added == f"✅ Now following One Times.\n{INSTANT}"
    assert listing == (
        f"@mychannel\nYour feeds\n1. One Times\n   {url}\n\n"
        "Buttons: 🔇 mute · 🔔 unmute · 🔎 filters · 📝 post format · ✏️ rename · 🗑 remove"
    )
    assert by_id == listing
    assert own_list == "No feeds yet. Add one with /add <url>."
    assert followed == [url]
    assert own == []
    assert chat is not None
    assert (chat.type, chat.title, chat.managers, chat.active) == (
        "channel",
        "My Channel",
        (USER,),
        True,
    )
    assert managed == [CHANNEL]
    assert removed == f"@mychannel\n🗑 Removed {url}."
    assert after == []
    assert fake_api.sent_messages(CHANNEL) == []  # nothing was said in the channel


async def test_a_group_is_managed_by_id_with_delivery_commands(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    a_group(fake_api)
    async with running_bot(bot_settings()):
        shown = await say(fake_api, f"/digest {GROUP}", USER)
        changed = await say(fake_api, f"/digest {GROUP} every 2h", USER)
        paused = await say(fake_api, f"/pause {GROUP}", USER)
        storage = get_storage_service()
        paused_chat = storage.chat(GROUP)
        resumed = await say(fake_api, f"/resume {GROUP}", USER)
        zone = await say(fake_api, f"/timezone {GROUP} Europe/Berlin", USER)
        zone_shown = await say(fake_api, f"/timezone {GROUP}", USER)
        group, own = storage.chat(GROUP), storage.chat(USER)
    assert shown.startswith("Readers\nDelivery: instant (each new item as soon as it is found)")
    assert changed.startswith("Readers\n✅ Delivery: a digest every 2h\n")
    assert paused == f"Readers\n{PAUSED}"
    assert resumed == "Readers\n▶️ Resumed. Items found while paused come in the next digest."
    assert zone.startswith("Readers\n✅ Time zone: Europe/Berlin (it is ")
    assert zone_shown.startswith("Readers\nTime zone: Europe/Berlin\n")
    assert paused_chat is not None and paused_chat.paused
    assert group is not None
    assert (group.type, group.title, group.managers) == ("supergroup", "Readers", (USER,))
    assert group.delivery.is_digest and not group.paused and group.tz == "Europe/Berlin"
    assert own is None  # the commands acted on the group only: the private chat is untouched
    assert fake_api.sent_messages(GROUP) == []


@pytest.mark.parametrize(
    "rights",
    [{"can_post_messages": False}, {"can_change_info": False}],
    ids=["may-change-info", "may-post"],
)
async def test_a_channel_admin_who_may_post_or_change_info_manages_it(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, rights: dict[str, bool]
) -> None:
    a_channel(fake_api, user="administrator", user_rights=rights)
    async with running_bot(bot_settings()):
        paused = await say(fake_api, "/pause @mychannel", USER)
        chat = get_storage_service().chat(CHANNEL)
    assert paused == f"@mychannel\n{PAUSED}"
    assert chat is not None and chat.paused
    assert chat.managers == (USER,)


@pytest.mark.parametrize(
    ("setup", "answer"),
    [
        (
            lambda f: a_channel(f, bot="left"),
            "I'm not an administrator of @mychannel with permission to post; "
            "add me as an admin first.",
        ),
        (
            lambda f: a_channel(f, bot="member"),
            "I'm not an administrator of @mychannel with permission to post; "
            "add me as an admin first.",
        ),
        (
            lambda f: a_channel(f, bot_rights={"can_post_messages": False}),
            "I'm an administrator of @mychannel but may not post messages; turn on "
            "“Post messages” for me in its administrator settings.",
        ),
        (
            lambda f: a_channel(f, user="member"),
            "You are not an administrator of @mychannel.",
        ),
        (
            lambda f: a_channel(f, user="left"),
            "You are not an administrator of @mychannel.",
        ),
        (
            lambda f: a_channel(
                f,
                user="administrator",
                user_rights={"can_post_messages": False, "can_change_info": False},
            ),
            "You are an administrator of @mychannel but may neither post messages nor change "
            "its info, so you can't choose what I post in it.",
        ),
        (
            lambda f: a_channel(f, bot="kicked"),
            "I'm not a member of @mychannel; add me to it first.",  # getChat answers 403
        ),
        (lambda f: None, "I can't find @mychannel — is it public, and am I a member?"),
    ],
    ids=[
        "bot-not-in-channel",
        "bot-not-admin",
        "bot-admin-cannot-post",
        "user-member",
        "user-left",
        "user-admin-cannot-post",
        "bot-kicked",
        "unknown-channel",
    ],
)
async def test_channel_refusals_say_what_is_missing_and_change_nothing(
    fake_api: FakeBotAPI,
    bot_settings: SettingsFactory,
    feed_server: FeedServer,
    setup: Callable[[FakeBotAPI], None],
    answer: str,
) -> None:
    feed_server.serve("/one.xml", stories("one"))
    setup(fake_api)
    async with running_bot(bot_settings()):
        refused = await say(fake_api, f"/add @mychannel {feed_server.url('/one.xml')}", USER)
        storage = get_storage_service()
        chat, managed = storage.chat(CHANNEL), storage.managed_chats(USER)
    assert refused == answer
    assert chat is None  # not registered
    assert managed == []
    assert feed_server.request_count("/one.xml") == 0  # nothing fetched for a refusal
    assert fake_api.sent_messages(CHANNEL) == []


@pytest.mark.parametrize(
    ("setup", "answer"),
    [
        (
            lambda f: a_group(f, bot="kicked"),
            f"I'm not a member of {GROUP}; add me to it first.",
        ),
        (
            lambda f: a_group(f, bot="left"),
            f"I can't find {GROUP} — is it public, and am I a member?",
        ),
        (
            lambda f: a_group(f, bot="restricted"),
            "I'm not allowed to send messages in Readers; lift my restrictions first.",
        ),
        (lambda f: a_group(f, user="member"), "You are not an administrator of Readers."),
        (lambda f: a_group(f, user="restricted"), "You are not an administrator of Readers."),
    ],
    ids=["bot-kicked", "bot-left", "bot-restricted", "user-member", "user-restricted"],
)
async def test_group_refusals(
    fake_api: FakeBotAPI,
    bot_settings: SettingsFactory,
    setup: Callable[[FakeBotAPI], None],
    answer: str,
) -> None:
    setup(fake_api)
    async with running_bot(bot_settings()):
        refused = await say(fake_api, f"/pause {GROUP}", USER)
        chat = get_storage_service().chat(GROUP)
    assert refused == answer
    assert chat is None


async def test_group_admins_manage_and_restricted_bots_that_may_send_are_fine(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    a_group(fake_api, bot="restricted", can_send_messages=True)
    fake_api.set_admin(GROUP, USER + 1, "creator")
    async with running_bot(bot_settings()):
        by_admin = await say(fake_api, f"/pause {GROUP}", USER)
        by_creator = await say(fake_api, f"/resume {GROUP}", USER + 1)
        chat = get_storage_service().chat(GROUP)
    assert by_admin == f"Readers\n{PAUSED}"
    assert by_creator == "Readers\n▶️ Resumed. Items found while paused follow now."
    assert chat is not None
    assert chat.managers == (USER, USER + 1)


async def test_people_groups_and_telegram_trouble_get_clear_answers(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    fake_api.set_chat(777, "private", title="Someone", username="someone")
    a_channel(fake_api)
    async with running_bot(bot_settings()):
        person = await say(fake_api, "/list @someone", USER)
        from_group = await say(
            fake_api, "/list @mychannel", -2001, USER, chat_type="supergroup", chat_title="G"
        )
        fake_api.fail_next("getChatMember", 502, times=3)  # every retry fails too
        timeout = await say(fake_api, "/list @mychannel", USER)
        fake_api.fail_next("getChat", 403, description="Forbidden: bot was kicked")
        forbidden = await say(fake_api, "/list @mychannel", USER)
        fake_api.fail_next("getChat", 400, description="Bad Request: something new")
        odd = await say(fake_api, "/list @mychannel", USER)
        storage = get_storage_service()
        channel, group = storage.chat(CHANNEL), storage.chat(-2001)
    assert person == "@someone is a person, not a group or channel."
    assert from_group == (
        "To manage another chat, send the command to me in a private chat; "
        "here, commands act on this chat."
    )
    assert timeout == (
        "Telegram did not answer while I checked @mychannel; please try again in a minute."
    )
    assert forbidden == (
        "I'm not a member of @mychannel; add me to it first."
    )  # the type is unknown when getChat itself fails
    assert odd == "Telegram would not let me check @mychannel (Something new)."
    assert channel is None
    assert group is None  # the refusal in the group registered nothing either


async def test_a_demoted_admin_loses_control_and_leaves_channels(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    a_channel(fake_api, user="administrator")
    async with running_bot(bot_settings()):
        first = await say(fake_api, "/list @mychannel", USER)
        storage = get_storage_service()
        managed_before = storage.managed_chats(USER)
        fake_api.set_admin(CHANNEL, USER, "member")
        refused = await say(fake_api, "/pause @mychannel", USER)
        managed_after = storage.managed_chats(USER)
        chat = storage.chat(CHANNEL)
    assert first == "@mychannel\nNo feeds yet. Add one with /add <url>."
    assert managed_before == [CHANNEL]
    assert refused == "You are not an administrator of @mychannel."
    assert managed_after == []
    assert chat is not None and not chat.paused


async def test_operators_manage_any_chat_but_the_bot_must_still_post(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    a_channel(fake_api, user="member")
    operator = 99
    async with running_bot(bot_settings(admin_ids=frozenset({operator}))):
        allowed = await say(fake_api, "/pause @mychannel", operator)
        fake_api.set_admin(CHANNEL, fake_api.bot_id, "administrator", can_post_messages=False)
        refused = await say(fake_api, "/resume @mychannel", operator)
        chat = get_storage_service().chat(CHANNEL)
    assert allowed == f"@mychannel\n{PAUSED}"
    assert refused.startswith("I'm an administrator of @mychannel but may not post messages")
    assert chat is not None and chat.paused


async def test_ordinary_arguments_are_not_targets(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/one.xml", stories("one"))
    async with running_bot(bot_settings()):
        await say(fake_api, f"/add {feed_server.url('/one.xml')}", USER)
        removed = await say(fake_api, "/remove 1", USER)
        zone = await say(fake_api, "/timezone -05:00", USER)
    assert removed.startswith("🗑 Removed ")
    assert zone.startswith("I don't know that time zone.")  # an ordinary (bad) argument
    assert fake_api.calls_to("getChat") == []


async def test_channels_lists_what_the_user_manages(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/one.xml", stories("one"))
    feed_server.serve("/two.xml", stories("two"))
    a_channel(fake_api)
    a_group(fake_api)
    async with running_bot(bot_settings()):
        empty = await say(fake_api, "/channels", USER)
        await say(fake_api, f"/add @mychannel {feed_server.url('/one.xml')}", USER)
        await say(fake_api, f"/add @mychannel {feed_server.url('/two.xml')}", USER)
        await say(fake_api, f"/pause {GROUP}", USER)
        listing = await say(fake_api, "/channels", USER)
        in_group = await say(
            fake_api, "/channels", -2002, USER, chat_type="supergroup", chat_title="G"
        )
    hint = (
        "To manage a channel or group from here, name it before the rest of a command: "
        "/add @mychannel https://example.com/feed.xml, /list @mychannel, "
        "/digest -1001234567890 every 2h. I must be an admin of a channel who may post "
        "messages, or a member of a group; you must be its creator or an admin."
    )
    assert empty == f"You don't manage any group or channel through me yet.\n\n{hint}"
    assert listing == (
        "Chats you manage through me\n"
        f"1. My Channel {CHANNEL}\n   2 feeds\n"
        f"2. Readers {GROUP}\n   0 feeds · paused\n\n"
        f"{hint}"
    )
    assert in_group == "Send /channels to me in a private chat: the list is yours alone."


async def test_the_feed_limit_comes_from_the_setting(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    for tag in ("one", "two", "three"):
        feed_server.serve(f"/{tag}.xml", stories(tag))
    a_channel(fake_api)
    async with running_bot(bot_settings(max_feeds_per_chat=2)):
        for tag in ("one", "two"):
            await say(fake_api, f"/add @mychannel {feed_server.url(f'/{tag}.xml')}", USER)
        refused = await say(fake_api, f"/add @mychannel {feed_server.url('/three.xml')}", USER)
        followed = get_storage_service().feed_urls(CHANNEL)
    assert refused == "This chat already follows 2 feeds; /remove one first."
    assert len(followed) == 2
