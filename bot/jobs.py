"""JobQueue jobs: the feed poll cycle, each chat's digest, and scheduled backups.

Digest jobs are named ``digest:<chat_id>`` so that changing a schedule replaces the old job and
a chat that leaves or migrates can have its job found and moved or cancelled.
"""

from __future__ import annotations

import logging
from datetime import UTC
from datetime import time as dtime
from typing import Any

from telegram.ext import Application, ContextTypes

from bot.context import get_services, services_of
from bot.formatting import esc, format_news, host_of
from bot.models import Channel, DigestSchedule
from bot.services.delivery import ChatMoved, send_html
from bot.services.digest import pick_new
from bot.services.storage import get_storage_service

logger = logging.getLogger(__name__)

AnyApp = Application[Any, Any, Any, Any, Any, Any]
POLL_TICK_S = 60  # how often the poll job looks for due feeds (each feed has its own due time)
DIGEST_LOOKBACK = 200  # how many of the newest items a digest considers


def digest_job_name(chat_id: int) -> str:
    """The JobQueue name of a chat's digest job."""
    return f"digest:{chat_id}"


def schedule_digest(app: AnyApp, chat_id: int, schedule: DigestSchedule) -> None:
    """(Re)schedule a chat's digest; ``off`` just removes it."""
    queue = app.job_queue
    if queue is None:
        raise RuntimeError("JobQueue missing: install python-telegram-bot[job-queue]")
    for job in queue.get_jobs_by_name(digest_job_name(chat_id)):
        job.schedule_removal()
    if schedule.mode == "every" and schedule.interval_s:
        queue.run_repeating(
            digest_job,
            interval=schedule.interval_s,
            first=schedule.interval_s,
            chat_id=chat_id,
            name=digest_job_name(chat_id),
        )
    elif schedule.mode == "at" and schedule.at:
        hour, minute = (int(p) for p in schedule.at.split(":"))
        queue.run_daily(
            digest_job,
            time=dtime(hour, minute, tzinfo=UTC),
            chat_id=chat_id,
            name=digest_job_name(chat_id),
        )


def on_chat_moved(app: AnyApp) -> ChatMoved:
    """A callback for delivery: move (migration) or cancel (bot removed) a chat's digest."""

    async def moved(old_id: int, new_id: int | None) -> None:
        schedule_digest(app, old_id, DigestSchedule("off"))
        if new_id is not None:
            channel = await get_storage_service().get_channel(new_id)
            if channel is not None and channel.active:
                schedule_digest(app, new_id, channel.digest)

    return moved


async def restore_schedules(app: AnyApp) -> int:
    """Re-create every active chat's digest job from storage (called at startup)."""
    count = 0
    for channel in await get_storage_service().list_channels(active_only=True):
        if channel.digest.mode != "off":
            schedule_digest(app, channel.chat_id, channel.digest)
            count += 1
    logger.info("digest schedules restored", extra={"event": "digests_restored", "count": count})
    return count


async def digest_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Post a chat's unsent items (see :mod:`bot.services.digest` for the delivery rule)."""
    job = context.job
    if job is None or job.chat_id is None:
        return
    chat_id = job.chat_id
    services = get_services(context)
    storage = get_storage_service()
    channel = await storage.get_channel(chat_id)
    if channel is None or not channel.active or channel.digest.mode == "off":
        schedule_digest(context.application, chat_id, DigestSchedule("off"))
        return
    urls = channel.feeds or list(services.settings.default_feeds)
    items, _errors = await services.news.latest(urls, DIGEST_LOOKBACK)

    def claim(live: Channel) -> list[str]:
        # Runs under the storage lock: decide and remember in one step, so two overlapping
        # digest runs for the same chat can never both send an item.
        to_send, remember = pick_new(live, items)
        live.remember_sent(remember)
        return [i.id for i in to_send]

    try:
        claimed = set(await storage.update_channel(chat_id, claim))
    except KeyError:
        return
    to_send = [i for i in items if i.id in claimed]
    if not to_send:
        return
    texts = format_news(to_send, "<b>📰 Digest</b>")
    sent = await send_html(
        context.bot, chat_id, texts, on_chat_moved=on_chat_moved(context.application)
    )
    if sent:
        services.metrics.digests_sent.inc()
        services.metrics.items_sent.inc(len(to_send))
        await storage.increment("digests_posted", chat_id=chat_id)
        await storage.increment("items_sent", chat_id=chat_id, by=len(to_send))


async def poll_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Refresh due feeds, and tell followers once when a feed gets paused."""
    services = get_services(context)
    storage = get_storage_service()
    channels = await storage.list_channels(active_only=True)
    urls = {u for c in channels for u in c.feeds} | set(services.settings.default_feeds)
    uses_defaults = [c for c in channels if not c.feeds]
    report = await services.news.poll(sorted(urls))
    if report.refreshed or report.failed:
        logger.info(
            "poll cycle",
            extra={
                "event": "poll",
                "refreshed": report.refreshed,
                "not_modified": report.not_modified,
                "failed": report.failed,
            },
        )
    for failure in report.newly_paused:
        followers = [c for c in channels if failure.url in c.feeds]
        if failure.url in services.settings.default_feeds:
            followers += uses_defaults
        text = (
            f"⏸ I paused the feed <code>{esc(failure.url)}</code> "
            f"({esc(host_of(failure.url))}) after repeated failures: {esc(failure.reason)}."
            "\nI'll keep retrying quietly; /add it again to retry now, or /remove it."
        )
        for channel in followers:
            await send_html(
                context.bot,
                channel.chat_id,
                [text],
                on_chat_moved=on_chat_moved(context.application),
            )


async def backup_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Take the scheduled backup (rotation keeps BACKUP_KEEP)."""
    await get_storage_service().backup("scheduled")


def schedule_background_jobs(app: AnyApp) -> None:
    """Register the poll and backup jobs (digests are per chat: see restore_schedules)."""
    queue = app.job_queue
    if queue is None:
        raise RuntimeError("JobQueue missing: install python-telegram-bot[job-queue]")
    settings = services_of(app).settings
    queue.run_repeating(
        poll_job, interval=min(POLL_TICK_S, settings.feed_poll_interval_s), first=5, name="poll"
    )
    queue.run_repeating(
        backup_job,
        interval=settings.backup_interval_s,
        first=settings.backup_interval_s,
        name="backup",
    )
