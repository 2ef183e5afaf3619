"""The services one running bot shares, and the typed context handlers and jobs receive.

Following PTB's ``contexttypesbot.py``: :class:`BotContext` is the ``CallbackContext`` every
handler and job gets, and ``context.services`` is the one typed way to reach the settings,
metrics, feeds, dispatcher and digest scheduler. Storage is the process-wide singleton
(``get_storage_service()``); ``context.storage`` is a shortcut to it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from telegram.ext import Application, CallbackContext, ExtBot

from bot.config import Settings
from bot.services.health import HealthServer, HealthState
from bot.services.metrics import Metrics
from bot.services.ratelimit import NewsRateLimiter
from bot.storage import StorageService, get_storage_service

if TYPE_CHECKING:
    import aiohttp

    from bot.services.delivery import Dispatcher
    from bot.services.digests import DigestScheduler
    from bot.services.feeds import FeedService

SERVICES_KEY = "services"


class NotStartedError(RuntimeError):
    """A service that only exists between post_init and shutdown was used outside it."""


@dataclass
class Services:
    """Everything built once per process; the optional parts exist after post_init."""

    settings: Settings
    metrics: Metrics
    health: HealthState
    rate_limiter: NewsRateLimiter
    # /add and /import's per-user budget (ADD_RATE_LIMIT); set when the app is built.
    add_rate_limiter: NewsRateLimiter | None = None
    http: aiohttp.ClientSession | None = None  # feed fetching (the Bot API has its own)
    feeds_service: FeedService | None = None
    dispatcher_service: Dispatcher | None = None
    digests_service: DigestScheduler | None = None
    health_server: HealthServer | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @property
    def feeds(self) -> FeedService:
        """Fetching, parsing and the in-memory feed views."""
        if self.feeds_service is None:
            raise NotStartedError("FeedService used before post_init opened it")
        return self.feeds_service

    @property
    def add_limiter(self) -> NewsRateLimiter:
        """The per-user budget of ``/add`` and ``/import``."""
        if self.add_rate_limiter is None:
            raise NotStartedError("the /add rate limiter is set by build_application")
        return self.add_rate_limiter

    @property
    def dispatcher(self) -> Dispatcher:
        """Delivery of logged items to chats."""
        if self.dispatcher_service is None:
            raise NotStartedError("Dispatcher used before post_init opened it")
        return self.dispatcher_service

    @property
    def digests(self) -> DigestScheduler:
        """The digest schedule of every digest chat."""
        if self.digests_service is None:
            raise NotStartedError("DigestScheduler used before post_init opened it")
        return self.digests_service


AnyApp = Application[Any, Any, Any, Any, Any, Any]


def services_of(application: AnyApp) -> Services:
    """The services of a built application."""
    found = application.bot_data.get(SERVICES_KEY)
    if not isinstance(found, Services):
        raise RuntimeError("application was not built by build_application()")
    return found


class BotContext(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """The context every handler and job receives (``ContextTypes(context=BotContext)``)."""

    @property
    def services(self) -> Services:
        """The shared services of this bot."""
        return services_of(self.application)

    @property
    def storage(self) -> StorageService:
        """The process-wide storage singleton."""
        return get_storage_service()
