"""/stats: the persisted counters, for the bot's operators only."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CommandHandler

from bot.formatting import format_counters
from bot.handlers.common import COMMAND_UPDATES, Context, is_operator, reply, tr


async def stats(update: Update, context: Context) -> None:
    """Show global and per-chat counters to ``BOT_ADMIN_IDS``; a clear no to anyone else."""
    if not is_operator(update, context):
        _ = tr(update, context).gettext
        await reply(update, context, _("/stats is for the bot's operators."))
        return
    await reply(update, context, format_counters(context.storage.counters()))


def register(app: Application) -> None:
    """Add this module's handlers."""
    app.add_handler(CommandHandler("stats", stats, filters=COMMAND_UPDATES))
