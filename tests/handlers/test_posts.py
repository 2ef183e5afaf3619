"""/format and /previews through the real Application: what the user reads, what is stored."""

from __future__ import annotations

from collections.abc import Callable

from bot.config import Settings
from bot.models import Chat
from bot.storage import get_storage_service
from tests.helpers.bot_runner import running_bot
from tests.helpers.conversation import say
from tests.helpers.fake_bot_api import FakeBotAPI

SettingsFactory = Callable[..., Settings]
ADMINS_ONLY = "Only this chat's administrators can change its feeds and delivery."
CHOICES = (
    "/format title — just the headline (several new items of a feed share a post)\n"
    "/format summary — the headline, the source, then the item's text\n"
    "/format full — as summary, with the item's first image\n"
    "/format 2 title — feed 2 of /list in its own format (chat: the chat's again)\n"
    "/previews on|off — a preview of the article under each post\n"
    "Digests, /news and what /resume sends always list headlines only."
)
PREVIEWS_USAGE = "/previews on — a preview of the article under each post; /previews off — none"


def stored(chat_id: int) -> Chat:
    chat = get_storage_service().chat(chat_id)
    assert chat is not None
    return chat


async def test_format_shows_the_default_and_changes_for_the_chat(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings()):
        shown = await say(fake_api, "/format", 51)
        changed = await say(fake_api, "/format FULL", 51)
        after = stored(51)
        again = await say(fake_api, "/format", 51)
    assert shown == (
        "Post format: summary — the headline, the source, then the item's text\n"
        f"Link previews: on\n\n{CHOICES}"
    )
    assert changed == "✅ Post format: full — as summary, with the item's first image"
    assert after.format == "full"
    assert again.startswith("Post format: full — as summary, with the item's first image\n")


async def test_format_counts_feeds_with_a_format_of_their_own(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings()):
        await say(fake_api, "/start", 52)
        storage = get_storage_service()
        for url in ("https://a.example/rss", "https://b.example/rss", "https://c.example/rss"):
            assert await storage.subscribe(52, url, limit=10) == "added"
        await storage.update_subscription(
            52, "https://a.example/rss", lambda s: setattr(s, "format", "title")
        )
        one = await say(fake_api, "/format", 52)
        await storage.update_subscription(
            52, "https://c.example/rss", lambda s: setattr(s, "format", "full")
        )
        two = await say(fake_api, "/format", 52)
    assert "\nLink previews: on\n1 feed here has a format of its own.\n\n/format title" in one
    assert "\n2 feeds here have a format of their own.\n" in two


async def test_an_unknown_format_is_explained_and_changes_nothing(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings()):
        answers = [
            await say(fake_api, text, 53)
            for text in ("/format fancy", "/format full please", "/format <b>")
        ]
        chat = stored(53)
    assert answers == [
        'Unknown format "fancy". Choose one: /format title, /format summary or /format full.',
        'Unknown format "full please". Choose one: /format title, /format summary or /format full.',
        'Unknown format "<b>". Choose one: /format title, /format summary or /format full.',
    ]
    assert chat.format == "summary"


async def test_previews_show_and_switch(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings()):
        shown = await say(fake_api, "/previews", 54)
        off = await say(fake_api, "/previews off", 54)
        after_off = stored(54).previews
        shown_off = await say(fake_api, "/previews", 54)
        wrong = await say(fake_api, "/previews maybe", 54)
        on = await say(fake_api, "/previews ON", 54)
        after_on = stored(54).previews
    assert shown == f"Link previews: on\n{PREVIEWS_USAGE}"
    assert off == "✅ Link previews: off. Posts show no preview of the article."
    assert after_off is False
    assert shown_off == f"Link previews: off\n{PREVIEWS_USAGE}"
    assert wrong == PREVIEWS_USAGE
    assert on == "✅ Link previews: on. Posts show a preview of the article."
    assert after_on is True


async def test_group_members_may_look_but_only_admins_change_posts(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    group, member, admin = -4101, 80, 81
    fake_api.set_admin(group, admin)
    in_group = {"chat_type": "supergroup", "chat_title": "Readers"}
    async with running_bot(bot_settings()):
        shown = await say(fake_api, "/format", group, member, **in_group)
        denied = [
            await say(fake_api, text, group, member, **in_group)
            for text in ("/format title", "/previews off")
        ]
        unchanged = stored(group)
        allowed = [
            await say(fake_api, text, group, admin, **in_group)
            for text in ("/format title", "/previews off")
        ]
        changed = stored(group)
    assert shown.startswith("Post format: summary")
    assert denied == [ADMINS_ONLY, ADMINS_ONLY]
    assert (unchanged.format, unchanged.previews) == ("summary", True)
    assert allowed[0].startswith("✅ Post format: title")
    assert allowed[1].startswith("✅ Link previews: off")
    assert (changed.format, changed.previews) == ("title", False)


async def test_a_channel_format_is_set_from_a_private_chat(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    user, channel = 601, -1001234500001
    fake_api.set_chat(channel, "channel", title="My Channel", username="mychannel")
    fake_api.set_admin(channel, fake_api.bot_id, "administrator")
    fake_api.set_admin(channel, user, "creator")
    async with running_bot(bot_settings()):
        changed = await say(fake_api, "/format @mychannel full", user)
        previews = await say(fake_api, "/previews @mychannel off", user)
        shown = await say(fake_api, "/format @mychannel", user)
        remote, own = stored(channel), get_storage_service().chat(user)
        in_channel = fake_api.sent_messages(channel)
    assert changed == "@mychannel\n✅ Post format: full — as summary, with the item's first image"
    assert previews == "@mychannel\n✅ Link previews: off. Posts show no preview of the article."
    assert shown.startswith("@mychannel\nPost format: full")
    assert (remote.format, remote.previews) == ("full", False)
    assert own is None or (own.format, own.previews) == ("summary", True)  # untouched
    assert in_channel == []  # nothing is posted in the channel itself
