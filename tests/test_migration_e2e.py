"""Upgrading a version-1 ``DATA_DIR`` through the real Application: every chat, feed,
schedule and counter is kept, the old files are backed up, and no backlog is pushed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.context import services_of
from bot.storage import get_storage_service
from tests.helpers.bot_runner import running_bot
from tests.helpers.delivery_e2e import (
    assert_exactly_once,
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
PAUSED, EVERY, DAILY = 301, 302, 303  # v1 digest off / every 2h / at 07:30
OPERATOR = 999


def v1_files(urls: dict[str, str], old_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The three version-1 documents, as the old StorageService wrote them."""

    def channel(chat_id: int, feeds: list[str], digest: dict[str, Any]) -> dict[str, Any]:
        return {"chat_id": chat_id, "type": "private", "title": f"User{chat_id}",
                "feeds": feeds, "digest": digest, "active": True, "seen": old_ids}  # fmt: skip

    off = {"mode": "off", "interval_s": None, "at": None}
    return {
        "channels": {
            "schema_version": 1,
            "channels": [
                channel(PAUSED, [urls["a"], urls["b"]], off),
                channel(EVERY, [urls["a"]], {"mode": "every", "interval_s": 7200, "at": None}),
                channel(DAILY, [urls["b"]], {"mode": "at", "interval_s": None, "at": "07:30"}),
            ],
        },
        "counters": {
            "schema_version": 1,
            "global": {"news_requests": 42, "digests_posted": 7},
            "chats": {str(PAUSED): {"news_requests": 40}, str(EVERY): {"digests_posted": 7}},
        },
        "feeds": {
            "schema_version": 1,
            "feeds": [
                {
                    "url": urls["a"],
                    "title": "Alpha Wire",
                    "etag": '"v1-etag"',
                    "last_modified": None,
                    "failures": 0,
                },
                {
                    "url": urls["b"],
                    "title": "Beta Post",
                    "etag": None,
                    "last_modified": None,
                    "failures": 0,
                },
            ],
        },
    }


async def test_version_1_data_dir_is_migrated_without_loss_or_backlog(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer, tmp_path: Path
) -> None:
    a_old = [story(n, "a") for n in range(1, 4)]
    b_old = [story(n, "b") for n in range(1, 4)]
    urls = {
        "a": serve_feed(feed_server, "/a.xml", a_old, "Alpha Wire"),
        "b": serve_feed(feed_server, "/b.xml", b_old, "Beta Post"),
    }
    settings = bot_settings(feed_poll_interval_s=3600, admin_ids=frozenset({OPERATOR}))
    settings.data_dir.mkdir(parents=True)
    written: dict[str, bytes] = {}
    for name, doc in v1_files(urls, [i["guid"] for i in a_old[:1]]).items():
        written[name] = json.dumps(doc, indent=2).encode()
        (settings.data_dir / f"{name}.json").write_bytes(written[name])
    everyone = (PAUSED, EVERY, DAILY)

    async with running_bot(settings) as app:
        listing = await say(fake_api, "/list", PAUSED)
        paused = await say(fake_api, "/digest", PAUSED)
        every = await say(fake_api, "/digest", EVERY)
        daily = await say(fake_api, "/digest", DAILY)
        stats = await say(fake_api, "/stats", OPERATOR)
        replies = {c: len(fake_api.sent_messages(c)) for c in everyone}

        # The first poll after the upgrade is the feeds' baseline: no backlog anywhere.
        await poll_now(app, feed_server, "/a.xml", urls["a"])
        await poll_now(app, feed_server, "/b.xml", urls["b"])
        assert {c: len(fake_api.sent_messages(c)) for c in everyone} == replies

        # Items found after the upgrade do arrive: on /resume, and in the next digest.
        fresh = story(9, "a")
        serve_feed(feed_server, "/a.xml", [*a_old, fresh], "Alpha Wire")
        await poll_now(app, feed_server, "/a.xml", urls["a"])
        assert {c: len(fake_api.sent_messages(c)) for c in everyone} == replies
        assert "Resumed" in await say(fake_api, "/resume", PAUSED)
        await fake_api.wait_for_messages(replies[PAUSED] + 2, chat_id=PAUSED)
        storage = get_storage_service()
        await storage.set_next_digest(EVERY, time.time() - 1)
        chat = storage.chat(EVERY)
        assert chat is not None
        await services_of(app).digests.update(chat)
        await services_of(app).digests.run_due()
        await settle(app)

    assert "1. Alpha Wire" in listing
    assert "2. Beta Post" in listing
    assert listing.index(urls["a"]) < listing.index(urls["b"])
    assert "Delivery: instant" in paused
    assert "⏸ Paused" in paused
    assert "a digest every 2h" in every
    assert "Next digest:" in every
    assert "a daily digest at 07:30 (UTC)" in daily
    assert "news_requests: 42" in stats
    assert "digests_posted: 7" in stats
    assert f"{PAUSED}: news_requests=40" in stats

    assert_exactly_once(fake_api, [PAUSED, EVERY], [title_of(fresh)])
    assert occurrences(fake_api, DAILY, title_of(fresh)) == 0  # follows only Beta
    for item in a_old + b_old:
        assert all(occurrences(fake_api, c, title_of(item)) == 0 for c in everyone)

    # The old files were backed up byte for byte, then removed from DATA_DIR.
    for name, data in written.items():
        (backup,) = settings.backup_dir.glob(f"v1-{name}-*.json")
        assert backup.read_bytes() == data
        assert not (settings.data_dir / f"{name}.json").exists()
