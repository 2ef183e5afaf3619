"""Digest and poll jobs, and the chat lifecycle, through the real Application."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from telegram.ext import Application, JobQueue

from bot.config import Settings
from bot.context import services_of
from bot.jobs import digest_job_name
from bot.services.news import MAX_FAILURES
from bot.services.storage import get_storage_service
from tests.helpers.bot_runner import eventually, running_bot
from tests.helpers.fake_bot_api import FakeBotAPI
from tests.helpers.feed_server import FeedServer
from tests.helpers.feeds import rss

SettingsFactory = Callable[..., Settings]
NOW = datetime.now(UTC).replace(microsecond=0)
AnyApp = Application[Any, Any, Any, Any, Any, Any]


def feed(ids: range) -> bytes:
    return rss(
        [
            {
                "title": f"Story {i}",
                "link": f"https://s.example/{i}",
                "guid": f"s{i}",
                "pubdate": NOW - timedelta(minutes=100 - i),
            }
            for i in ids
        ],
        title="Stories",
    )


async def say(fake: FakeBotAPI, text: str, chat_id: int, **kw: Any) -> str:
    before = len(fake.sent_messages(chat_id))
    fake.send_command(text, chat_id=chat_id, user_id=kw.pop("user_id", abs(chat_id)), **kw)
    messages = await fake.wait_for_messages(before + 1, chat_id=chat_id, timeout=15)
    return str(messages[before]["plain"])


def jq(app: AnyApp) -> JobQueue[Any]:
    queue = app.job_queue
    assert queue is not None
    return queue


async def run_digest_now(app: AnyApp, chat_id: int) -> None:
    [job] = jq(app).get_jobs_by_name(digest_job_name(chat_id))
    await job.run(app)


async def test_digest_command_schedules_and_survives_restart(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/s.xml", feed(range(3)))
    settings = bot_settings(default_feeds=(feed_server.url("/s.xml"),))
    async with running_bot(settings) as app:
        assert "Digest: off" in await say(fake_api, "/digest", 50)
        assert "every 2h" in await say(fake_api, "/digest every 2h", 50)
        assert "between 15 minutes" in await say(fake_api, "/digest every 1m", 50)
        [job] = jq(app).get_jobs_by_name(digest_job_name(50))
        assert job.job.trigger.interval == timedelta(hours=2)
        assert "daily at 07:30 UTC" in await say(fake_api, "/digest at 7:30", 51)
    async with running_bot(settings) as app:
        names = {j.name for j in jq(app).jobs()}
        assert digest_job_name(50) in names
        assert digest_job_name(51) in names
        assert "Digest turned off" in await say(fake_api, "/digest off", 50)
        assert not jq(app).get_jobs_by_name(digest_job_name(50))
    async with running_bot(settings) as app:
        assert not jq(app).get_jobs_by_name(digest_job_name(50))


async def test_digest_posts_only_new_items_never_twice_across_restarts(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/s.xml", feed(range(3)))
    settings = bot_settings(default_feeds=(feed_server.url("/s.xml"),))
    async with running_bot(settings) as app:
        await say(fake_api, "/digest every 30m", 60)
        await run_digest_now(app, 60)
        first = fake_api.sent_messages(60)[-1]["plain"]
        await run_digest_now(app, 60)  # nothing new: nothing posted
        assert len(fake_api.sent_messages(60)) == 2
    assert all(f"Story {i}" in first for i in range(3))
    feed_server.serve("/s.xml", feed(range(5)))  # two new stories appear
    async with running_bot(settings) as app:
        await run_digest_now(app, 60)
        second = fake_api.sent_messages(60)[-1]["plain"]
        await run_digest_now(app, 60)
        counters = await get_storage_service().get_counters()
    assert len(fake_api.sent_messages(60)) == 3
    assert "Story 3" in second
    assert "Story 4" in second
    assert "Story 0" not in second
    assert counters["chats"]["60"]["digests_posted"] == 2
    assert counters["chats"]["60"]["items_sent"] == 5


async def test_blocked_chat_is_deactivated_and_digest_stops(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/s.xml", feed(range(3)))
    async with running_bot(bot_settings(default_feeds=(feed_server.url("/s.xml"),))) as app:
        await say(fake_api, "/digest every 30m", 70)
        fake_api.blocked_chats.add(70)
        await run_digest_now(app, 70)
        channel = await get_storage_service().get_channel(70)
        assert not jq(app).get_jobs_by_name(digest_job_name(70))
    assert channel is not None
    assert channel.active is False
    assert channel.digest.mode == "every"  # kept, in case the user comes back


async def test_bot_removed_then_readded(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/s.xml", feed(range(3)))
    group = -7100
    fake_api.set_admin(group, 1)
    async with running_bot(bot_settings(default_feeds=(feed_server.url("/s.xml"),))) as app:
        await say(fake_api, "/digest every 1h", group, user_id=1, chat_type="group", chat_title="G")
        storage = get_storage_service()

        async def digest_scheduled() -> bool:
            return bool(jq(app).get_jobs_by_name(digest_job_name(group)))

        async def digest_cancelled() -> bool:
            return not await digest_scheduled()

        fake_api.my_chat_member(group, "group", "member", "left", user_id=1)
        await eventually(digest_cancelled, what="digest cancelled after the bot left")
        gone = await storage.get_channel(group)
        fake_api.my_chat_member(group, "group", "left", "member", user_id=1)
        await eventually(digest_scheduled, what="digest rescheduled after the bot came back")
        back = await storage.get_channel(group)
    assert gone is not None
    assert gone.active is False
    assert back is not None
    assert back.active is True


async def test_group_migration_keeps_feeds_and_schedule(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/s.xml", feed(range(3)))
    old, new = -8100, -1008100
    fake_api.set_admin(old, 1)
    async with running_bot(bot_settings()) as app:
        await say(
            fake_api,
            f"/add {feed_server.url('/s.xml')}",
            old,
            user_id=1,
            chat_type="group",
            chat_title="G",
        )
        await say(fake_api, "/digest every 1h", old, user_id=1, chat_type="group", chat_title="G")
        fake_api.migrate(old, new)
        storage = get_storage_service()

        async def rescheduled_under_new_id() -> bool:
            return bool(jq(app).get_jobs_by_name(digest_job_name(new)))

        await eventually(rescheduled_under_new_id, what="digest moved to the supergroup id")
        moved = await storage.get_channel(new)
        assert await storage.get_channel(old) is None
        assert jq(app).get_jobs_by_name(digest_job_name(new))
        assert not jq(app).get_jobs_by_name(digest_job_name(old))
        await run_digest_now(app, new)
    assert moved is not None
    assert moved.feeds == [feed_server.url("/s.xml")]
    assert moved.digest.mode == "every"
    assert "Story 1" in fake_api.sent_messages(new)[-1]["plain"]


async def test_send_to_migrated_chat_follows_the_new_id(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    """Telegram may tell us about a migration only when we send (ChatMigrated)."""
    feed_server.serve("/s.xml", feed(range(3)))
    old, new = -8200, -1008200
    fake_api.set_admin(old, 1)
    async with running_bot(bot_settings(default_feeds=(feed_server.url("/s.xml"),))) as app:
        await say(fake_api, "/digest every 1h", old, user_id=1, chat_type="group", chat_title="G")
        fake_api.migrated_chats[old] = new
        await run_digest_now(app, old)
        moved = await get_storage_service().get_channel(new)
    assert moved is not None
    assert moved.digest.mode == "every"
    assert "Story 0" in fake_api.sent_messages(new)[-1]["plain"]


async def test_failing_feed_backs_off_pauses_and_tells_followers_once(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/s.xml", feed(range(3)))
    url = feed_server.url("/s.xml")
    async with running_bot(bot_settings()) as app:
        await say(fake_api, f"/add {url}", 90)
        feed_server.set_status("/s.xml", 500)
        news = services_of(app).news
        for _ in range(MAX_FAILURES + 2):
            news._next_due.clear()  # make the feed due now instead of waiting out the backoff
            [poll] = jq(app).get_jobs_by_name("poll")
            await poll.run(app)
        state = await get_storage_service().get_feed_state(url)
        notices = [m for m in fake_api.sent_messages(90) if "paused" in m["plain"]]
        listing = await say(fake_api, "/list", 90)
        feed_server.serve("/s.xml", feed(range(4)))
        resumed = await say(fake_api, f"/add {url}", 90)
        after = await get_storage_service().get_feed_state(url)
    assert state is not None
    assert state.paused is True
    assert state.failures >= MAX_FAILURES
    assert len(notices) == 1
    assert "500" in notices[0]["plain"]
    assert "paused" in listing
    assert "resumed" in resumed
    assert after is not None
    assert after.paused is False
