"""Digest delivery end to end: nothing pushed in between, everything at the digest, grouped
by feed, split across messages; the schedule's phase survives a restart; time zones.

The digest is made due by moving the chat's persisted due time into the past and letting the
scheduler pick it up (``set_next_digest`` + ``update`` + ``run_due``), the same path the
digest job takes, so no test waits for a real hour.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from bot.config import Settings
from bot.context import services_of
from bot.storage import get_storage_service
from tests.helpers.bot_runner import eventually, running_bot
from tests.helpers.delivery_e2e import (
    assert_exactly_once,
    force_digest,
    occurrences,
    poll_now,
    say,
    serve_feed,
    settle,
    story,
    title_of,
)
from tests.helpers.fake_bot_api import FakeBotAPI
from tests.helpers.feed_server import FeedServer

SettingsFactory = Callable[..., Settings]
DIGEST_CHAT, INSTANT_CHAT = 201, 202
HOUR = 3600
QUIET = {"feed_poll_interval_s": 3600}


async def test_digest_gets_everything_grouped_and_keeps_its_phase_over_a_restart(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    a_old, b_old = [story(0, "a")], [story(0, "b")]
    url_a = serve_feed(feed_server, "/a.xml", a_old, "Alpha Wire")
    url_b = serve_feed(feed_server, "/b.xml", b_old, "Beta Post")
    settings = bot_settings(**QUIET)
    a_new = [story(n, "a", pad=40) for n in range(1, 13)]  # long titles: a digest > 4096
    b_new = [story(n, "b", pad=40) for n in range(1, 4)]
    async with running_bot(settings) as app:
        for url in (url_a, url_b):
            assert "Now following" in await say(fake_api, f"/add {url}", DIGEST_CHAT)
        assert "Now following" in await say(fake_api, f"/add {url_a}", INSTANT_CHAT)
        answer = await say(fake_api, "/digest every 1h", DIGEST_CHAT)
        assert "a digest every 1h" in answer
        assert "Next digest:" in answer
        chat = get_storage_service().chat(DIGEST_CHAT)
        assert chat is not None
        due = chat.next_digest_at
        assert due is not None
        assert services_of(app).digests.due_time(DIGEST_CHAT) == due
        quiet_mark = len(fake_api.sent_messages(DIGEST_CHAT))

        # New items: the instant chat gets them now, the digest chat nothing.
        serve_feed(feed_server, "/a.xml", a_old + a_new, "Alpha Wire")
        serve_feed(feed_server, "/b.xml", b_old + b_new, "Beta Post")
        await poll_now(app, feed_server, "/a.xml", url_a)
        await poll_now(app, feed_server, "/b.xml", url_b)
        assert_exactly_once(fake_api, [INSTANT_CHAT], map(title_of, a_new))
        assert len(fake_api.sent_messages(DIGEST_CHAT)) == quiet_mark

    async with running_bot(settings) as app:
        # The phase survived the restart: same persisted and scheduled due time.
        chat = get_storage_service().chat(DIGEST_CHAT)
        assert chat is not None
        assert chat.next_digest_at == due
        assert services_of(app).digests.due_time(DIGEST_CHAT) == due
        assert len(fake_api.sent_messages(DIGEST_CHAT)) == quiet_mark

        when = await force_digest(app, DIGEST_CHAT)
        digest = fake_api.sent_messages(DIGEST_CHAT)[quiet_mark:]
        # Every interval keeps its phase: the next digest is one interval after this one.
        chat = get_storage_service().chat(DIGEST_CHAT)
        assert chat is not None
        assert chat.next_digest_at == when + HOUR
        assert services_of(app).digests.due_time(DIGEST_CHAT) == when + HOUR

        # A second run finds nothing due and nothing new: no second digest.
        assert await services_of(app).digests.run_due() == 0
        await settle(app)
        assert len(fake_api.sent_messages(DIGEST_CHAT)) == quiet_mark + len(digest)

    assert len(digest) >= 2, "15 long items must be split over several messages"
    assert all(m["plain"].startswith("📰 Digest") for m in digest)
    assert_exactly_once(fake_api, [DIGEST_CHAT], map(title_of, a_new + b_new))
    assert occurrences(fake_api, DIGEST_CHAT, title_of(a_old[0])) == 0
    # Grouped by feed: Alpha's header, all of Alpha's items, Beta's header, Beta's items.
    text = "\n".join(m["plain"] for m in digest)
    a_at = [text.index(title_of(i)) for i in a_new]
    b_at = [text.index(title_of(i)) for i in b_new]
    # A header per feed (at most repeated on a continuation), not a source line per item.
    assert text.count("Alpha Wire") <= len(digest)
    assert text.count("Beta Post") <= len(digest)
    assert text.index("Alpha Wire") < min(a_at) <= max(a_at) < text.index("Beta Post")
    assert text.index("Beta Post") < min(b_at)
    assert a_at == sorted(a_at)  # first-seen order within the feed
    assert b_at == sorted(b_at)


async def test_daily_digest_time_is_in_the_chat_time_zone(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    async with running_bot(bot_settings(**QUIET)) as app:
        answer = await say(fake_api, "/timezone europe/berlin", DIGEST_CHAT)
        assert "Time zone: Europe/Berlin" in answer
        answer = await say(fake_api, "/digest at 08:00", DIGEST_CHAT)
        due = services_of(app).digests.due_time(DIGEST_CHAT)
    assert due is not None
    local = datetime.fromtimestamp(due, berlin)
    assert (local.hour, local.minute) == (8, 0)
    assert datetime.fromtimestamp(due, UTC).hour in (6, 7)  # CEST / CET, not 08:00 UTC
    assert 0 < due - time.time() <= 24 * HOUR
    assert "a daily digest at 08:00 (Europe/Berlin)" in answer
    assert f"Next digest: {local:%b} {local.day}, {local.year}, 08:00 (Europe/Berlin)" in answer


async def test_digest_due_while_the_bot_was_down_is_sent_at_start_in_phase(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    old = [story(0, "a")]
    url = serve_feed(feed_server, "/a.xml", old, "Alpha Wire")
    settings = bot_settings(**QUIET)
    new = [story(n, "a") for n in range(1, 4)]
    async with running_bot(settings) as app:
        assert "Now following" in await say(fake_api, f"/add {url}", DIGEST_CHAT)
        assert "a digest every 1h" in await say(fake_api, "/digest every 1h", DIGEST_CHAT)
        serve_feed(feed_server, "/a.xml", old + new, "Alpha Wire")
        await poll_now(app, feed_server, "/a.xml", url)
        quiet_mark = len(fake_api.sent_messages(DIGEST_CHAT))
        # The digest falls due while the bot is down (it stops well before the job's tick).
        missed = time.time() - 10
        await get_storage_service().set_next_digest(DIGEST_CHAT, missed)

    async with running_bot(settings):  # the digest job's first tick finds it due
        await fake_api.wait_for_messages(quiet_mark + 1, chat_id=DIGEST_CHAT, timeout=15)

        async def rescheduled() -> bool:
            chat = get_storage_service().chat(DIGEST_CHAT)
            return chat is not None and chat.next_digest_at != missed

        await eventually(rescheduled, what="the next digest being scheduled")
        chat = get_storage_service().chat(DIGEST_CHAT)
    assert_exactly_once(fake_api, [DIGEST_CHAT], map(title_of, new))
    assert len(fake_api.sent_messages(DIGEST_CHAT)) == quiet_mark + 1
    assert chat is not None
    assert chat.next_digest_at == missed + HOUR  # the phase, not "an hour after the start"
