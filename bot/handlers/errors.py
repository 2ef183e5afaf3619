"""The last line of defence: any exception a handler or job raised ends up here.

The bot must never crash on a user's input, so this logs (token-redacted by the formatter),
counts, and — when it was a command — tells the user something went wrong instead of
leaving them waiting.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import Application

from bot.handlers.common import Context, reply, tr

logger = logging.getLogger(__name__)


async def on_error(update: object, context: Context) -> None:
    """Log the failure and apologise to the user when there is one to answer."""
    error = context.error
    logger.error(
        "unhandled error",
        exc_info=error,
        extra={"event": "handler_error", "error_type": type(error).__name__},
    )
    if isinstance(update, Update) and update.effective_chat and update.effective_message:
        if isinstance(error, TelegramError):
            return  # the problem *is* talking to Telegram; don't make it worse
        try:
            _ = tr(update, context).gettext
            await reply(
                update,
                context,
                _("😵 Something went wrong on my side. Please try again in a minute."),
            )
        except Exception:
            logger.debug("could not apologise", exc_info=True)


def register(app: Application) -> None:
    """Install the error handler."""
    app.add_error_handler(on_error)
