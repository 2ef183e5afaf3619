"""/digest: show or change when new items are posted automatically."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CommandHandler

from bot.formatting import describe_schedule
from bot.handlers.common import (
    COMMAND_UPDATES,
    Context,
    args_of,
    can_manage,
    chat_id_of,
    deny,
    register_chat,
    reply,
)
from bot.jobs import schedule_digest
from bot.models import Channel, DigestSchedule
from bot.services.digest import USAGE, ScheduleError, parse_schedule
from bot.services.storage import get_storage_service


async def digest(update: Update, context: Context) -> None:
    """``/digest`` shows the schedule; ``/digest every 2h|at 08:00|off`` changes it."""
    try:
        schedule = parse_schedule(args_of(context))
    except ScheduleError as exc:
        await reply(update, context, str(exc))
        return
    channel = await register_chat(update)
    if schedule is None:
        current = channel.digest if channel else DigestSchedule()
        await reply(update, context, f"Digest: <b>{describe_schedule(current)}</b>\n\n{USAGE}")
        return
    if not await can_manage(update, context):
        await deny(update, context)
        return

    def apply(live: Channel) -> None:
        live.digest = schedule

    chat_id = chat_id_of(update)
    await get_storage_service().update_channel(chat_id, apply)
    schedule_digest(context.application, chat_id, schedule)
    if schedule.mode == "off":
        await reply(update, context, "Digest turned off.")
    else:
        await reply(
            update,
            context,
            f"✅ Digest: <b>{describe_schedule(schedule)}</b>. "
            "I'll post only items this chat hasn't seen.",
        )


def register(app: Application) -> None:
    """Add this module's handlers."""
    app.add_handler(CommandHandler("digest", digest, filters=COMMAND_UPDATES))
