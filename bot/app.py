"""``build_application(settings)``: the one place the running bot is assembled.

Building is cheap and does no I/O (tests build many). Everything that opens something —
storage files, the shared HTTP client, the health server, background tasks — happens in
``post_init`` and is closed in ``post_shutdown``, in reverse order.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from telegram import BotCommand
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder
from telegram.request import BaseRequest

from bot.config import Settings
from bot.context import SERVICES_KEY, Services, services_of
from bot.handlers import admin, basic, chats, conflict, digest, errors, feeds, news
from bot.jobs import restore_schedules, schedule_background_jobs
from bot.services.fetcher import Fetcher, create_http_client
from bot.services.health import HealthServer, HealthState
from bot.services.metrics import Metrics
from bot.services.news import NewsService
from bot.services.ratelimit import NewsRateLimiter
from bot.services.storage import configure_storage, get_storage_service
from bot.services.telegram_request import InstrumentedRequest

logger = logging.getLogger(__name__)

AnyApp = Application[Any, Any, Any, Any, Any, Any]
# Enough parallel updates that a slow feed never holds up other chats, few enough to stay
# kind to a 2-core machine.
CONCURRENT_UPDATES = 256
COMMANDS = [
    BotCommand("news", "Latest items from this chat's feeds"),
    BotCommand("add", "Follow a feed: /add <url>"),
    BotCommand("list", "This chat's feeds"),
    BotCommand("remove", "Stop following a feed: /remove <number>"),
    BotCommand("digest", "Automatic digest: every 2h, at 08:00, off"),
    BotCommand("help", "All commands"),
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
        rate_limit_outgoing: route sends through PTB's ``AIORateLimiter`` (429s retried,
            Telegram's flood limits respected). Only benchmarks turn it off, to measure the
            bot rather than Telegram's 30-messages-a-second cap.
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
                connection_pool_size=CONCURRENT_UPDATES,
                proxy=settings.telegram_proxy_url,
            )
        )
        .get_updates_request(
            InstrumentedRequest(health, metrics, proxy=settings.telegram_proxy_url)
        )
        .concurrent_updates(CONCURRENT_UPDATES)
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
    )
    if rate_limit_outgoing:
        builder = builder.rate_limiter(AIORateLimiter(max_retries=3))
    app: AnyApp = builder.build()
    app.bot_data[SERVICES_KEY] = services
    # conflict before errors: its error handler stops 409s reaching the generic one.
    for module in (basic, news, feeds, digest, admin, chats, conflict, errors):
        module.register(app)
    return app


async def _post_init(app: AnyApp) -> None:
    services = services_of(app)
    settings = services.settings
    await get_storage_service().load()
    services.http = create_http_client(allow_private=settings.allow_private_feeds)
    fetcher = Fetcher(
        services.http,
        allow_private=settings.allow_private_feeds,
        max_bytes=settings.feed_max_bytes,
        total_timeout=settings.feed_timeout_s,
    )
    services.news_service = NewsService(
        fetcher,
        get_storage_service(),
        services.metrics,
        poll_interval_s=settings.feed_poll_interval_s,
    )
    services.tasks.append(
        asyncio.create_task(services.health.run_loop_monitor(), name="loop-monitor")
    )
    if settings.health_port:
        services.health_server = HealthServer(
            settings.health_host, settings.health_port, services.health, services.metrics
        )
        await services.health_server.start()
    schedule_background_jobs(app)
    await restore_schedules(app)
    try:
        await app.bot.set_my_commands(COMMANDS)
    except Exception as exc:
        logger.warning("could not set the command menu: %s", type(exc).__name__)
    logger.info(
        "newsbot started",
        extra={
            "event": "started",
            "bot_username": app.bot.username,
            "default_feeds": len(settings.default_feeds),
        },
    )


async def _post_shutdown(app: AnyApp) -> None:
    services = services_of(app)
    for task in services.tasks:
        task.cancel()
    await asyncio.gather(*services.tasks, return_exceptions=True)
    services.tasks.clear()
    if services.health_server is not None:
        await services.health_server.stop()
    if services.http is not None:
        await services.http.aclose()
    await get_storage_service().close()
    logger.info("newsbot stopped", extra={"event": "stopped"})
