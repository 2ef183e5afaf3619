"""The services one running bot shares, reachable from every handler and job.

They live in ``application.bot_data["services"]`` (PTB's place for application-wide state) and
are fetched with :func:`get_services`, so handlers stay thin and tests can swap a part.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from telegram.ext import Application, CallbackContext

from bot.config import Settings
from bot.services.health import HealthServer, HealthState
from bot.services.metrics import Metrics
from bot.services.ratelimit import NewsRateLimiter

if TYPE_CHECKING:
    import httpx

    from bot.services.news import NewsService

SERVICES_KEY = "services"


@dataclass
class Services:
    """Everything built once per process. ``http``/``news`` exist between post_init and shutdown."""

    settings: Settings
    metrics: Metrics
    health: HealthState
    rate_limiter: NewsRateLimiter
    http: httpx.AsyncClient | None = None
    news_service: NewsService | None = None
    health_server: HealthServer | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @property
    def news(self) -> NewsService:
        """The feed cache; only valid once the application has started."""
        if self.news_service is None:
            raise RuntimeError("NewsService used before post_init opened it")
        return self.news_service


def services_of(application: Application[Any, Any, Any, Any, Any, Any]) -> Services:
    """The services of a built application."""
    found = application.bot_data.get(SERVICES_KEY)
    if not isinstance(found, Services):
        raise RuntimeError("application was not built by build_application()")
    return found


def get_services(context: CallbackContext[Any, Any, Any, Any]) -> Services:
    """The services, from inside a handler or job callback."""
    return services_of(context.application)
