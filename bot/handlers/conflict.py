"""Keep Telegram's 409 Conflict out of the generic error handler.

While another process polls with the same token, every ``getUpdates`` answers 409 and PTB
hands each one to the error handlers (``run_polling``'s ``error_callback``), which would log
a full traceback at every retry. The conflict is already reported where the answer arrives
(:class:`bot.services.telegram_request.InstrumentedRequest` → ``HealthState.record_conflict``:
one ERROR a minute, a metric, ``/healthz`` unhealthy), so this handler, registered before the
generic one, stops the error there.
"""

from __future__ import annotations

import logging
from typing import Any

from telegram.error import Conflict
from telegram.ext import Application, ApplicationHandlerStop

from bot.handlers.common import Context

logger = logging.getLogger(__name__)


async def on_conflict(update: object, context: Context) -> None:
    """Swallow :class:`telegram.error.Conflict`; let every other error through."""
    if isinstance(context.error, Conflict):
        raise ApplicationHandlerStop


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Install the handler; must run before the generic error handler is registered."""
    app.add_error_handler(on_conflict)
