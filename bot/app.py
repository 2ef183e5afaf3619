"""``build_application(settings)``: the one place the running bot is assembled.

Building is cheap and does no I/O (tests build many). Everything that opens something —
storage files, the shared HTTP client, the health server, background tasks — happens in
``post_init`` and is closed in reverse order: the delivery machinery in ``post_stop`` (while
the Bot API client and the rate limiter still work, so a send in flight can finish and record
its cursor), the rest in ``post_shutdown``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from concurrent.futures import Executor
from typing import Any

from telegram import BotCommand
from telegram.ext import ApplicationBuilder, ContextTypes
from telegram.request import BaseRequest

from bot.config import Settings
from bot.context import SERVICES_KEY, AnyApp, BotContext, Services, services_of
from bot.handlers import (
    access,
    admin,
    basic,
    channels,
    chats,
    conflict,
    delivery,
    errors,
    feeds,
    filters,
    language,
    manage,
    news,
    opml,
    posts,
    rename,
    topics,
)
from bot.i18n import DEFAULT_LANGUAGE, LANGUAGES, N_, translator
from bot.jobs import on_chat_moved, report_poll, schedule_background_jobs
from bot.services.delivery import Dispatcher
from bot.services.digests import DigestScheduler
from bot.services.feeds import FeedService
from bot.services.fetcher import Fetcher
from bot.services.health import HealthServer, HealthState
from bot.services.metrics import Metrics
from bot.services.netguard import create_http_client
from bot.services.ratelimit import NewsRateLimiter
from bot.services.telegram_limits import TelegramRateLimiter
from bot.services.telegram_request import InstrumentedRequest
from bot.storage import configure_storage, get_storage_service
from bot.workers import process_pool

logger = logging.getLogger(__name__)

# Enough parallel updates that a slow feed never holds up other chats, few enough to stay
# kind to a 2-core machine.
CONCURRENT_UPDATES = 256
# Bot API connections. Sends are paced to ~30/s, so few are in flight at once; httpcore scans
# the whole pool on every request, so a pool sized for 256 updates cost more CPU than the
# sends themselves. A caller waits up to POOL_TIMEOUT_S for a free connection.
BOT_API_CONNECTIONS = 32
POOL_TIMEOUT_S = 10.0
# Descriptions are msgids: the menu is set once per language (Telegram shows each user the
# one for their language_code, English otherwise).
COMMANDS = [
    BotCommand("news", N_("Latest items from this chat's feeds")),
    BotCommand("add", N_("Follow a feed: /add <url>")),
    BotCommand("list", N_("This chat's feeds")),
    BotCommand("remove", N_("Stop following a feed: /remove <number>")),
    BotCommand("rename", N_("Your own title for a feed: /rename <number> <title>")),
    BotCommand("filter", N_("Keyword filters: /filter include python, rust")),
    BotCommand("import", N_("Follow the feeds of an OPML file (reply to it)")),
    BotCommand("export", N_("This chat's feeds as an OPML file")),
    BotCommand("digest", N_("Instant delivery or a digest: every 2h, at 08:00, off")),
    BotCommand("pause", N_("Stop posting new items for now")),
    BotCommand("resume", N_("Post new items again")),
    BotCommand("timezone", N_("Time zone for daily digests")),
    BotCommand("format", N_("How posts look: title, summary or full")),
    BotCommand("previews", N_("Link previews under posts: on or off")),
    BotCommand("language", N_("The bot's language in this chat")),
    BotCommand("channels", N_("Groups and channels you manage from here")),
    BotCommand("help", N_("All commands")),
]


def build_application(
    settings: Settings,
    *,
    rate_limit_outgoing: bool = True,
    request: BaseRequest | None = None,
) -> AnyApp:
    """Assemble the bot: handlers, jobs, shared services and their lifecycle hooks.

    Args:
        settings: the typed configuration.
        rate_limit_outgoing: pace sends to Telegram's flood limits (30/s, 20/min per group,
            about 1/s per chat; replies before fan-out). Retries of 429/5xx/network errors
            stay on either way. Only benchmarks turn pacing off, to measure the bot rather
            than Telegram's 30-messages-a-second cap.
        request: the Bot API transport for everything but getUpdates; benchmarks pass an
            in-memory one. Default: HTTPX, instrumented for health and metrics.
    """
    metrics = Metrics()
    health = HealthState(max_api_silence_s=settings.health_max_api_silence_s)
    services = Services(
        settings=settings,
        metrics=metrics,
        health=health,
        rate_limiter=NewsRateLimiter(settings.news_rate_count, settings.news_rate_window_s),
        add_rate_limiter=NewsRateLimiter(settings.add_rate_count, settings.add_rate_window_s),
    )
    storage = configure_storage(settings.data_dir, settings.backup_dir, settings.backup_keep)
    storage.write_observer = metrics.storage_write_seconds.observe

    builder: ApplicationBuilder[Any, Any, Any, Any, Any, Any] = (
        ApplicationBuilder()
        .token(settings.token)
        .base_url(settings.bot_base_url)
        .base_file_url(f"{settings.api_base_url}/file/bot")
        .request(
            request
            or InstrumentedRequest(
                health,
                metrics,
                connection_pool_size=BOT_API_CONNECTIONS,
                pool_timeout=POOL_TIMEOUT_S,
                proxy=settings.telegram_proxy_url,
            )
        )
        .get_updates_request(
            InstrumentedRequest(health, metrics, proxy=settings.telegram_proxy_url)
        )
        .concurrent_updates(CONCURRENT_UPDATES)
        .post_init(_post_init)
        .post_stop(_post_stop)
        .post_shutdown(_post_shutdown)
        .context_types(ContextTypes(context=BotContext))
        .rate_limiter(_rate_limiter(metrics, paced=rate_limit_outgoing))
    )
    app: AnyApp = builder.build()
    app.bot_data[SERVICES_KEY] = services
    # conflict before errors: its error handler stops 409s reaching the generic one.
    # access first: its gate (handler group -1) stops refused updates before any handler.
    # rename adds the prompt-answer catch-all in a group of its own (RENAME_HANDLER_GROUP).
    for module in (
        access, basic, news, feeds, manage, rename, filters, opml, delivery, posts, language,
        channels, admin, chats, topics, conflict, errors,
    ):  # fmt: skip
        module.register(app)
    return app


def _rate_limiter(metrics: Metrics, *, paced: bool) -> TelegramRateLimiter:
    def count_retry(kind: str) -> None:
        metrics.telegram_retries.labels(kind=kind).inc()

    if paced:
        return TelegramRateLimiter(on_retry=count_retry)
    return TelegramRateLimiter(
        overall_rate=math.inf, group_max_per_minute=math.inf, chat_rate=math.inf,
        on_retry=count_retry,
    )  # fmt: skip


def _parse_executor(processes: int) -> Executor | None:
    """Worker processes for feedparser (it holds the GIL for milliseconds per feed)."""
    if processes == 0:
        return None  # parse in the default thread pool (tests, tiny deployments)
    return process_pool(processes)


async def _post_init(app: AnyApp) -> None:
    services = services_of(app)
    settings = services.settings
    storage = get_storage_service()
    await storage.load(default_feeds=settings.default_feeds)
    services.http = create_http_client(allow_private=settings.allow_private_feeds)
    fetcher = Fetcher(
        services.http,
        allow_private=settings.allow_private_feeds,
        max_bytes=settings.feed_max_bytes,
        total_timeout=settings.feed_timeout_s,
    )
    feeds_service = FeedService(
        fetcher,
        storage,
        services.metrics,
        poll_interval_s=settings.feed_poll_interval_s,
        poll_concurrency=settings.feed_poll_concurrency,
        parse_executor=_parse_executor(settings.parser_processes),
        parse_executor_factory=(
            functools.partial(process_pool, settings.parser_processes)
            if settings.parser_processes
            else None
        ),
    )
    dispatcher = Dispatcher(app.bot, storage, services.metrics, on_chat_moved=on_chat_moved(app))
    feeds_service.on_new_items = dispatcher.feed_updated
    defaults = frozenset(settings.default_feeds)
    feeds_service.set_wanted(lambda url: url in defaults or bool(storage.followers(url)))

    async def report(poll_report: Any) -> None:
        await report_poll(app, poll_report)

    feeds_service.on_report = report
    for url in [*storage.followed_urls(), *settings.default_feeds]:
        feeds_service.track(url, spread=True)
    services.feeds_service = feeds_service
    services.dispatcher_service = dispatcher
    services.digests_service = DigestScheduler(storage, dispatcher)
    dispatcher.start()
    for chat in storage.chats(active_only=True):  # anything left undelivered before a stop
        if not chat.delivery.is_digest and not chat.paused and storage.pending(chat.chat_id):
            dispatcher.request(chat.chat_id)
    services.tasks.append(
        asyncio.create_task(services.health.run_loop_monitor(), name="loop-monitor")
    )
    if settings.health_port:
        services.health_server = HealthServer(
            settings.health_host, settings.health_port, services.health, services.metrics
        )
        await services.health_server.start()
    schedule_background_jobs(app)
    await services.digests.restore()
    await _set_command_menus(app)
    logger.info(
        "newsbot started",
        extra={
            "event": "started",
            "bot_username": app.bot.username,
            "default_feeds": len(settings.default_feeds),
        },
    )


async def _set_command_menus(app: AnyApp) -> None:
    """The command menu in every language: English as the default, the others by code."""
    for code in LANGUAGES:
        t = translator(code)
        commands = [BotCommand(c.command, t.gettext(c.description)) for c in COMMANDS]
        language_code = None if code == DEFAULT_LANGUAGE else code
        try:
            await app.bot.set_my_commands(commands, language_code=language_code)
        except Exception as exc:
            logger.warning("could not set the %s command menu: %s", code, type(exc).__name__)


async def _post_stop(app: AnyApp) -> None:
    # PTB calls this after Application.stop() and before shutdown() closes the Bot API client
    # and the rate limiter: deliveries stop between messages and the one in flight finishes.
    services = services_of(app)
    if services.dispatcher_service is not None:
        await services.dispatcher_service.stop()
    if services.digests_service is not None:
        await services.digests_service.stop()
    if services.feeds_service is not None:
        await services.feeds_service.stop()


async def _post_shutdown(app: AnyApp) -> None:
    services = services_of(app)
    await _post_stop(app)  # idempotent: a no-op when post_stop already ran
    for task in services.tasks:
        task.cancel()
    await asyncio.gather(*services.tasks, return_exceptions=True)
    services.tasks.clear()
    if services.health_server is not None:
        await services.health_server.stop()
    if services.http is not None:
        await services.http.close()
    executor = services.feeds_service.parse_executor if services.feeds_service else None
    if executor is not None:
        executor.shutdown(wait=True, cancel_futures=True)
    await get_storage_service().close()
    logger.info("newsbot stopped", extra={"event": "stopped"})
