"""JobQueue jobs: the poll tick, the digest tick and scheduled backups.

The path of a new item: ``poll_job`` → ``FeedService.poll_due`` → ``refresh`` (fetch, parse in
a worker process, log new items durably) → ``Dispatcher.feed_updated`` queues every instant
follower → a delivery worker sends and advances the chat's cursor. Digest chats wait for
``digest_job`` → ``DigestScheduler.run_due`` → ``Dispatcher.deliver(chat, digest=True)``.
Both ticks start their work in the background and return, so a long cycle never makes the
JobQueue skip (and log) the next tick.
"""

from __future__ import annotations

import logging

from bot.context import AnyApp, BotContext, services_of
from bot.formatting import esc
from bot.i18n import Translator, chat_translator
from bot.models import host_of
from bot.services.delivery import ChatMoved, send_html
from bot.services.digests import DIGEST_TICK_S
from bot.services.feed_errors import localize_reason
from bot.services.feeds import PollReport
from bot.storage import get_storage_service

logger = logging.getLogger(__name__)

POLL_TICK_S = 10  # how often the poll job looks for due feeds (each feed has its own time)


def on_chat_moved(app: AnyApp) -> ChatMoved:
    """A callback for delivery: move (migration) or forget (bot removed) a chat's digest."""

    async def moved(old_id: int, new_id: int | None) -> None:
        services = services_of(app)
        if services.digests_service is None:
            return
        services.digests.forget(old_id)
        if new_id is not None:
            chat = get_storage_service().chat(new_id)
            if chat is not None:
                await services.digests.update(chat)

    return moved


async def poll_job(context: BotContext) -> None:
    """Start a poll cycle unless one is still running."""
    context.services.feeds.start_poll()


async def report_poll(app: AnyApp, report: PollReport) -> None:
    """Log a cycle and tell followers, once, that a feed was paused after failures."""
    if report.refreshed or report.failed:
        logger.info(
            "poll cycle",
            extra={"event": "poll", "refreshed": report.refreshed, "failed": report.failed,
                   "new_items": report.new_items},
        )  # fmt: skip
    if report.newly_paused:
        # In the background and as bulk sends: a feed with 10,000 followers must not hold
        # up the next poll cycle or the replies to commands.
        app.create_task(_notify_paused(app, report.newly_paused), name="paused-feed notices")


async def _notify_paused(app: AnyApp, paused: list[tuple[str, str]]) -> None:
    storage = get_storage_service()
    for url, reason in paused:
        texts: dict[str, str] = {}  # by language: built once, not once per follower
        for chat_id in storage.followers(url):
            chat = storage.chat(chat_id)
            if chat is None or not chat.active or chat.paused:
                continue  # gone, or asked for silence
            t = chat_translator(chat.language)  # no sender: the chat's own language
            if t.language not in texts:
                texts[t.language] = _paused_notice(url, reason, t)
            await send_html(
                app.bot, chat_id, [texts[t.language]], bulk=True, on_chat_moved=on_chat_moved(app)
            )


def _paused_notice(url: str, reason: str, t: Translator) -> str:
    return t.gettext(
        "⏸ I paused the feed <code>%(url)s</code> (%(host)s) after repeated failures: "
        "%(reason)s.\nI'll keep retrying quietly; /add it again to retry now, or /remove it."
    ) % {"url": esc(url), "host": esc(host_of(url)), "reason": esc(localize_reason(reason, t))}


async def digest_job(context: BotContext) -> None:
    """Start the due digests unless a run is still going on."""
    context.services.digests.start_tick()


async def backup_job(context: BotContext) -> None:
    """Take the scheduled backup (rotation keeps BACKUP_KEEP)."""
    await context.storage.backup("scheduled")


def schedule_background_jobs(app: AnyApp) -> None:
    """Register the poll, digest and backup jobs."""
    queue = app.job_queue
    if queue is None:
        raise RuntimeError("JobQueue missing: install python-telegram-bot[job-queue]")
    settings = services_of(app).settings
    queue.run_repeating(poll_job, interval=POLL_TICK_S, first=1, name="poll")
    queue.run_repeating(digest_job, interval=DIGEST_TICK_S, first=2, name="digests")
    queue.run_repeating(
        backup_job, interval=settings.backup_interval_s, first=settings.backup_interval_s,
        name="backup",
    )  # fmt: skip
