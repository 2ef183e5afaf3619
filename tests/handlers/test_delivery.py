"""/digest, /pause, /resume and /timezone through the real Application, end to end.

What the user reads for each command, what storage keeps, and what is (not) pushed to the
chat when a poll finds a new item while the chat is paused or on a digest schedule.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from bot.config import Settings
from bot.handlers.delivery import TIMEZONE_USAGE
from bot.models import Chat
from bot.services.schedule import USAGE
from bot.storage import get_storage_service
from tests.helpers.bot_runner import AnyApp, eventually, running_bot
from tests.helpers.conversation import poll_now, say, settle
from tests.helpers.fake_bot_api import FakeBotAPI
from tests.helpers.feed_server import FeedServer
from tests.helpers.feeds import rss

SettingsFactory = Callable[..., Settings]
INSTANT = "Delivery: instant (each new item as soon as it is found)"
ADMINS_ONLY = "Only this chat's administrators can change its feeds and delivery."
WAITS = "Items found until then wait for it; nothing is posted in between."
PAUSED = (
    "⏸ Paused. I'll keep collecting new items (the latest 200 per feed) and post them "
    "when you say /resume. /news still works."
)


def stored(chat_id: int) -> Chat:
    chat = get_storage_service().chat(chat_id)
    assert chat is not None
    return chat


def next_digest_line(chat_id: int) -> str:
    """The "Next digest" line the bot shows, from the due time storage holds."""
    chat = stored(chat_id)
    assert chat.next_digest_at is not None
    local = datetime.fromtimestamp(chat.next_digest_at, ZoneInfo(chat.tz))
    # English: CLDR's medium date and a 24-hour clock ("Nov 24, 2026, 08:00").
    return f"Next digest: {local:%b} {local.day}, {local.year}, {local:%H:%M} ({chat.tz})"


class Feed:
    """One feed on the local server whose items a test can add to, newest first."""

    def __init__(self, server: FeedServer, path: str = "/news.xml") -> None:
        self.server, self.path = server, path
        self.titles: list[str] = ["old story"]
        self._publish()

    @property
    def url(self) -> str:
        return self.server.url(self.path)

    def add_item(self, title: str) -> None:
        self.titles.insert(0, title)
        self._publish()

    def _publish(self) -> None:
        items = [{"title": t, "guid": t} for t in self.titles]
        self.server.serve(self.path, rss(items, title="Daily Planet"))


async def follow(fake: FakeBotAPI, chat_id: int, feed: Feed) -> None:
    assert (await say(fake, f"/add {feed.url}", chat_id)).startswith("✅ Now following")


def pushed_items(fake: FakeBotAPI, chat_id: int) -> list[str]:
    """Messages in the chat that carry feed items (not command answers)."""
    messages = fake.sent_messages(chat_id)
    return [m["plain"] for m in messages if "Daily Planet" in m["plain"].splitlines()]


# --------------------------------------------------------------------------- /digest


async def test_digest_shows_instant_by_default(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings()):
        shown = await say(fake_api, "/digest", 60)
        chat = stored(60)
    assert shown == f"{INSTANT}\n\n{USAGE}"
    assert not chat.delivery.is_digest


async def test_digest_every_then_show_then_off(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings()):
        every = await say(fake_api, "/digest every 2h", 61)
        every_line = next_digest_line(61)
        every_chat = stored(61)
        shown = await say(fake_api, "/digest", 61)
        off = await say(fake_api, "/digest off", 61)
        off_chat = stored(61)
    assert every == f"✅ Delivery: a digest every 2h\n{every_line}\n{WAITS}"
    assert (every_chat.delivery.mode, every_chat.delivery.interval_s) == ("every", 7200)
    assert shown == f"Delivery: a digest every 2h\n{every_line}\n\n{USAGE}"
    assert off == f"✅ {INSTANT}\nEach new item is posted as soon as it is found."
    assert not off_chat.delivery.is_digest
    assert off_chat.next_digest_at is None


async def test_repeating_a_schedule_or_changing_the_zone_keeps_an_every_digests_phase(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings()):
        await say(fake_api, "/digest every 2h", 66)
        due = stored(66).next_digest_at
        await asyncio.sleep(1.1)  # a reset would now land at least a second later
        await say(fake_api, "/digest every 2h", 66)
        await say(fake_api, "/timezone Asia/Tokyo", 66)
        after = stored(66)
    assert due is not None
    assert after.next_digest_at == due
    assert after.tz == "Asia/Tokyo"


async def test_digest_at_a_time_of_day_in_the_chats_time_zone(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings()):
        await say(fake_api, "/timezone Europe/Berlin", 62)
        at = await say(fake_api, "/digest at 08:00", 62)
        line = next_digest_line(62)
        chat = stored(62)
        # Changing the zone re-times an "at" digest: 08:00 is now Tokyo's 08:00.
        await say(fake_api, "/timezone Asia/Tokyo", 62)
        tokyo = stored(62)
    assert at == f"✅ Delivery: a daily digest at 08:00 (Europe/Berlin)\n{line}\n{WAITS}"
    assert line.endswith(" 08:00 (Europe/Berlin)")
    assert (chat.delivery.mode, chat.delivery.at) == ("at", "08:00")
    assert chat.next_digest_at is not None
    assert tokyo.next_digest_at is not None
    due_in_tokyo = datetime.fromtimestamp(tokyo.next_digest_at, ZoneInfo("Asia/Tokyo"))
    assert (due_in_tokyo.hour, due_in_tokyo.minute) == (8, 0)
    assert tokyo.next_digest_at != chat.next_digest_at


@pytest.mark.parametrize(
    ("args", "answer"),
    [
        ("every 5m", "The interval must be between 15m and 7 days."),
        ("every 14 minutes", "The interval must be between 15m and 7 days."),
        ("every 8d", "The interval must be between 15m and 7 days."),
        ("every often", f"I understand intervals like 30m, 2h or 1d.\n\n{USAGE}"),
        ("at 25:00", "Give the time as HH:MM, e.g. /digest at 08:00."),
        ("sometimes", USAGE),
    ],
)
async def test_digest_refuses_bad_schedules_and_changes_nothing(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, args: str, answer: str
) -> None:
    async with running_bot(bot_settings()):
        got = await say(fake_api, f"/digest {args}", 63)
        chat = get_storage_service().chat(63)
    assert got == answer
    assert chat is None or not chat.delivery.is_digest


async def test_digest_min_interval_is_the_operators_setting(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings(digest_min_interval_s=120)):
        refused = await say(fake_api, "/digest every 1m", 64)
        accepted = await say(fake_api, "/digest every 2m", 64)
        line = next_digest_line(64)
    assert refused == "The interval must be between 2m and 7 days."
    assert accepted == f"✅ Delivery: a digest every 2m\n{line}\n{WAITS}"


async def test_group_members_may_look_but_not_change_delivery(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    group = -4001
    fake_api.set_admin(group, 71)
    in_group = {"chat_type": "supergroup", "chat_title": "Readers"}
    async with running_bot(bot_settings()):
        shown = await say(fake_api, "/digest", group, 70, **in_group)
        denied = [
            await say(fake_api, text, group, 70, **in_group)
            for text in ("/digest every 2h", "/digest off", "/pause", "/resume", "/timezone UTC")
        ]
        zone_shown = await say(fake_api, "/timezone", group, 70, **in_group)
        unchanged = stored(group)
        allowed = await say(fake_api, "/digest every 2h", group, 71, **in_group)
        changed = stored(group)
    assert shown == f"{INSTANT}\n\n{USAGE}"
    assert denied == [ADMINS_ONLY] * 5
    assert zone_shown == f"Time zone: UTC\n{TIMEZONE_USAGE}"
    assert not unchanged.delivery.is_digest
    assert not unchanged.paused
    assert allowed.startswith("✅ Delivery: a digest every 2h\n")
    assert changed.delivery.is_digest


# --------------------------------------------------------------------------- /timezone


async def test_timezone_show_set_and_refuse(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings()):
        shown = await say(fake_api, "/timezone", 65)
        set_lower = await say(fake_api, "/timezone europe/berlin", 65)
        canonical = stored(65).tz
        unknown = await say(fake_api, "/timezone Mars/Olympus_Mons", 65)
        too_many = await say(fake_api, "/timezone Europe Berlin", 65)
        after = stored(65).tz
    assert shown == f"Time zone: UTC\n{TIMEZONE_USAGE}"
    assert re.fullmatch(r"✅ Time zone: Europe/Berlin \(it is \d\d:\d\d there now\)\.", set_lower)
    assert canonical == "Europe/Berlin"
    assert unknown == (
        "I don't know that time zone. Use an IANA name such as Europe/Berlin, "
        "America/New_York or Asia/Tokyo."
    )
    assert too_many == TIMEZONE_USAGE
    assert after == "Europe/Berlin"


# --------------------------------------------------------------------------- what is pushed


async def test_pause_holds_new_items_and_resume_sends_them_once(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed = Feed(feed_server)
    async with running_bot(bot_settings()) as app:
        await follow(fake_api, 66, feed)
        paused = await say(fake_api, "/pause", 66)
        shown = await say(fake_api, "/digest", 66)
        feed.add_item("while paused")
        await poll_now(app, feed.url)
        held = pushed_items(fake_api, 66)
        resumed = await say(fake_api, "/resume", 66)
        await wait_pushed(fake_api, app, 66, 1)
        await poll_now(app, feed.url)  # nothing new: nothing repeated
        after_resume = pushed_items(fake_api, 66)
        feed.add_item("after resume")
        await poll_now(app, feed.url)
        live = pushed_items(fake_api, 66)
    assert paused == PAUSED
    assert shown == f"{INSTANT}\n⏸ Paused: nothing is posted until /resume.\n\n{USAGE}"
    assert held == []
    assert resumed == "▶️ Resumed. Items found while paused follow now."
    assert after_resume == ["while paused\nDaily Planet"]
    assert live == ["while paused\nDaily Planet", "after resume\nDaily Planet"]


async def test_digest_holds_new_items_and_digest_off_sends_what_waited(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed = Feed(feed_server)
    async with running_bot(bot_settings()) as app:
        await follow(fake_api, 67, feed)
        await say(fake_api, "/digest every 2h", 67)
        feed.add_item("first waiting")
        await poll_now(app, feed.url)
        feed.add_item("second waiting")
        await poll_now(app, feed.url)
        held = pushed_items(fake_api, 67)
        await say(fake_api, "/digest off", 67)
        await wait_pushed(fake_api, app, 67, 1)
        await poll_now(app, feed.url)
        after = pushed_items(fake_api, 67)
    assert held == []
    # Both waiting items, oldest first, in one message, once.
    assert after == ["first waiting\nDaily Planet\n\nsecond waiting\nDaily Planet"]


async def test_resume_in_a_digest_chat_waits_for_the_digest(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed = Feed(feed_server)
    async with running_bot(bot_settings()) as app:
        await follow(fake_api, 68, feed)
        await say(fake_api, "/digest every 2h", 68)
        await say(fake_api, "/pause", 68)
        feed.add_item("held for the digest")
        await poll_now(app, feed.url)
        resumed = await say(fake_api, "/resume", 68)
        await poll_now(app, feed.url)
        pushed = pushed_items(fake_api, 68)
        chat = stored(68)
        waiting = [b.entries[0].item.title for b in get_storage_service().pending(68)]
    assert resumed == "▶️ Resumed. Items found while paused come in the next digest."
    assert pushed == []
    assert not chat.paused
    assert waiting == ["held for the digest"]


async def wait_pushed(fake: FakeBotAPI, app: AnyApp, chat_id: int, count: int) -> None:
    """Wait until ``count`` item messages reached the chat (a resume or /digest off sends)."""

    async def arrived() -> bool:
        return len(pushed_items(fake, chat_id)) >= count

    await eventually(arrived, timeout=20, what=f"{count} pushed message(s) to {chat_id}")
    await settle(app)
