"""bot/jobs.py: the poll, digest and backup jobs, the paused-feed notice, and chat moves.

Jobs are called the way the JobQueue calls them (with a context whose ``services`` and
``storage`` are real), against the real storage, a scripted fetcher and a recording bot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.app import build_application
from bot.context import SERVICES_KEY, Services
from bot.jobs import (
    POLL_TICK_S,
    backup_job,
    digest_job,
    on_chat_moved,
    poll_job,
    report_poll,
    schedule_background_jobs,
)
from bot.models import Delivery
from bot.services.delivery import Dispatcher
from bot.services.digests import DIGEST_TICK_S, DigestScheduler
from bot.services.feed_errors import HTTPStatusError
from bot.services.feeds import MAX_FAILURES, PAUSED_RETRY_S, FeedService, PollReport
from bot.services.health import HealthState
from bot.services.metrics import Metrics
from bot.services.ratelimit import NewsRateLimiter
from bot.services.telegram_limits import BULK
from bot.storage import StorageService, reset_storage_service
from tests.helpers.bot_runner import make_settings
from tests.helpers.scripted import FakeClock, RecordingBot, ScriptedFetcher, ok

URL = "https://feeds.example/rss?token=secret&x=<1>"
TOKEN = "123456789:" + "A" * 35
HOUR = 3600


@dataclass
class FakeApp:
    """What the jobs read from an Application: its bot, its bot_data, create_task."""

    bot: RecordingBot
    bot_data: dict[str, Any]
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def create_task(self, coroutine: Coroutine[Any, Any, Any], name: str | None = None) -> None:
        self.tasks.append(asyncio.create_task(coroutine, name=name))


@dataclass
class FakeContext:
    """What the jobs read from a BotContext."""

    services: Services
    storage: StorageService


@dataclass
class Parts:
    app: FakeApp
    context: FakeContext
    services: Services
    fetcher: ScriptedFetcher
    clock: FakeClock
    bot: RecordingBot


@pytest.fixture
async def parts(tmp_path: Path, storage: StorageService) -> AsyncIterator[Parts]:
    settings = make_settings(tmp_path, "http://127.0.0.1:9", TOKEN)
    metrics = Metrics(process_metrics=False)
    services = Services(
        settings=settings,
        metrics=metrics,
        health=HealthState(max_api_silence_s=120),
        rate_limiter=NewsRateLimiter(5, 60),
    )
    bot, fetcher, clock = RecordingBot(), ScriptedFetcher(), FakeClock()
    app = FakeApp(bot, {SERVICES_KEY: services})
    feeds = FeedService(
        fetcher,  # type: ignore[arg-type]  # duck-typed stand-in for Fetcher
        storage,
        metrics,
        poll_interval_s=600,
        clock=clock,
    )
    dispatcher = Dispatcher(
        bot,  # type: ignore[arg-type]  # duck-typed stand-in for ExtBot
        storage,
        metrics,
        on_chat_moved=on_chat_moved(app),  # type: ignore[arg-type]
    )
    feeds.on_new_items = dispatcher.feed_updated

    async def report(poll_report: PollReport) -> None:
        await report_poll(app, poll_report)  # type: ignore[arg-type]

    feeds.on_report = report
    services.feeds_service = feeds
    services.dispatcher_service = dispatcher
    services.digests_service = DigestScheduler(storage, dispatcher, clock=clock)
    dispatcher.start()
    yield Parts(app, FakeContext(services, storage), services, fetcher, clock, bot)
    await dispatcher.stop()


async def follow(storage: StorageService, chat_id: int, delivery: Delivery | None = None) -> None:
    await storage.ensure_chat(chat_id, "private", "c", delivery=delivery)
    await storage.subscribe(chat_id, URL, limit=50)


async def run_poll(parts: Parts) -> None:
    """What the poll job does, then wait for the cycle it started."""
    await poll_job(parts.context)  # type: ignore[arg-type]
    task = parts.services.feeds._poll_task
    assert task is not None
    await task
    await asyncio.gather(*parts.app.tasks)  # background work the cycle started (notices)


# ---------------------------------------------------------------------------- poll job


async def test_poll_job_runs_one_cycle_at_a_time(parts: Parts, storage: StorageService) -> None:
    await follow(storage, 1)
    parts.fetcher.serve(URL, ok(URL, range(2)))
    parts.fetcher.gate = asyncio.Event()
    parts.services.feeds.track(URL)
    await poll_job(parts.context)  # type: ignore[arg-type]
    first = parts.services.feeds._poll_task
    await parts.fetcher.started.wait()
    parts.services.feeds.poll_soon(URL)
    await poll_job(parts.context)  # type: ignore[arg-type]  # the cycle is still running
    assert parts.services.feeds._poll_task is first
    parts.fetcher.gate.set()
    assert first is not None
    report = await first
    assert report.refreshed == 1
    assert len(parts.fetcher.calls) == 1


async def test_new_items_found_by_the_poll_reach_instant_followers(
    parts: Parts, storage: StorageService
) -> None:
    await follow(storage, 1)
    await follow(storage, 2, Delivery("every", interval_s=HOUR))
    parts.fetcher.serve(URL, ok(URL, range(2)), ok(URL, range(4)))
    parts.services.feeds.track(URL)
    await run_poll(parts)  # baseline
    parts.clock.advance(600)
    await run_poll(parts)
    async with asyncio.timeout(5):
        while not parts.services.dispatcher.idle() or not parts.bot.sent:
            await asyncio.sleep(0.005)
    first, second = parts.bot.sent  # one post per item in the default "summary" format
    assert (first.chat_id, second.chat_id) == (1, 1)
    assert "Story s2" in first.text
    assert "Story s3" in second.text
    assert all("Story s1" not in m.text for m in parts.bot.sent)


async def test_a_paused_feed_is_announced_once_to_each_follower(
    parts: Parts, storage: StorageService
) -> None:
    await follow(storage, 1)
    await follow(storage, 2)
    await storage.ensure_chat(3, "private", "not a follower")
    await storage.update_chat(2, lambda c: setattr(c, "language", "ru"))
    parts.fetcher.serve(URL, HTTPStatusError(500))
    parts.services.feeds.track(URL)
    for _ in range(MAX_FAILURES + 2):
        await run_poll(parts)
        parts.clock.advance(PAUSED_RETRY_S)
    assert sorted(s.chat_id for s in parts.bot.sent) == [1, 2]
    assert all(s.kwargs.get("rate_limit_args") is BULK for s in parts.bot.sent)
    text = parts.bot.texts(1)[0]
    assert "paused the feed" in text
    assert "the server answered 500" in text
    assert "&lt;1&gt;" in text  # the URL is escaped
    assert "<1>" not in text
    russian = parts.bot.texts(2)[0]  # chat 2 chose Russian: the notice and its reason
    assert russian.startswith("⏸ Я приостановил ленту <code>")
    assert "после нескольких неудачных попыток: сервер ответил кодом 500." in russian


async def test_report_poll_logs_the_cycle_and_sends_nothing_without_pauses(
    parts: Parts, storage: StorageService, caplog: pytest.LogCaptureFixture
) -> None:
    await follow(storage, 1)
    with caplog.at_level(logging.INFO, logger="bot.jobs"):
        await report_poll(parts.app, PollReport(refreshed=3, failed=1, new_items=4))  # type: ignore[arg-type]
        await report_poll(parts.app, PollReport())  # type: ignore[arg-type]
    [record] = [r for r in caplog.records if getattr(r, "event", None) == "poll"]
    assert (record.refreshed, record.failed, record.new_items) == (3, 1, 4)  # type: ignore[attr-defined]
    assert parts.bot.sent == []


# ---------------------------------------------------------------------------- digest job


async def test_digest_job_sends_due_digests(parts: Parts, storage: StorageService) -> None:
    await follow(storage, 5, Delivery("every", interval_s=HOUR))
    parts.fetcher.serve(URL, ok(URL, range(1)), ok(URL, range(3)))
    parts.services.feeds.track(URL)
    await run_poll(parts)
    chat = storage.chat(5)
    assert chat is not None
    await parts.services.digests.update(chat)
    parts.clock.advance(600)
    await run_poll(parts)
    await digest_job(parts.context)  # type: ignore[arg-type]  # not due yet
    await asyncio.sleep(0)
    assert parts.bot.sent == []
    parts.clock.advance(HOUR)
    await digest_job(parts.context)  # type: ignore[arg-type]
    task = parts.services.digests._running
    assert task is not None
    assert await task == 1
    [digest] = parts.bot.sent
    assert digest.chat_id == 5
    assert "Story s1" in digest.text
    assert "Story s2" in digest.text


# ---------------------------------------------------------------------------- chat moves


async def test_a_migrated_chat_keeps_its_digest_under_the_new_id(
    parts: Parts, storage: StorageService
) -> None:
    old, new = -10, -1000010
    await follow(storage, old, Delivery("every", interval_s=HOUR))
    digests = parts.services.digests
    await digests.restore()
    assert digests.due_time(old) is not None
    await storage.migrate_chat(old, new)
    await on_chat_moved(parts.app)(old, new)  # type: ignore[arg-type]
    assert digests.due_time(old) is None
    assert digests.due_time(new) == parts.clock.now + HOUR


async def test_a_chat_that_went_away_loses_its_digest(
    parts: Parts, storage: StorageService
) -> None:
    await follow(storage, 4, Delivery("every", interval_s=HOUR))
    digests = parts.services.digests
    await digests.restore()
    await on_chat_moved(parts.app)(4, None)  # type: ignore[arg-type]
    assert digests.due_time(4) is None


async def test_chat_moves_before_start_up_are_ignored(parts: Parts) -> None:
    parts.services.digests_service = None
    await on_chat_moved(parts.app)(1, 2)  # type: ignore[arg-type]  # must not raise


# ---------------------------------------------------------------------------- backup job


async def test_backup_job_writes_a_snapshot_backup(parts: Parts, storage: StorageService) -> None:
    before = set(storage.backup_dir.glob("snapshot-*.json"))
    await follow(storage, 1)
    await backup_job(parts.context)  # type: ignore[arg-type]
    [backup] = set(storage.backup_dir.glob("snapshot-*.json")) - before
    assert '"chat_id":1' in backup.read_text().replace(" ", "")


# ---------------------------------------------------------------------------- registration


def test_schedule_background_jobs_registers_the_three_jobs(tmp_path: Path) -> None:
    reset_storage_service()
    try:
        settings = make_settings(tmp_path, "http://127.0.0.1:9", TOKEN, backup_interval_s=7200)
        app = build_application(settings)
        queue = app.job_queue
        assert queue is not None
        assert queue.jobs() == ()
        schedule_background_jobs(app)
        intervals = {job.name: job.job.trigger.interval for job in queue.jobs()}
    finally:
        reset_storage_service()
    assert intervals == {
        "poll": timedelta(seconds=POLL_TICK_S),
        "digests": timedelta(seconds=DIGEST_TICK_S),
        "backup": timedelta(seconds=7200),
    }
