"""/digest, /pause, /resume and /timezone: how and when new items reach this chat."""

from __future__ import annotations

import time
from datetime import datetime

from telegram import Update
from telegram.ext import Application, CommandHandler

from bot.formatting import esc
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
from bot.models import Chat, Delivery
from bot.services.schedule import (
    USAGE,
    ScheduleError,
    describe,
    next_digest_at,
    parse_delivery,
    parse_timezone,
    zone,
)
from bot.storage.state import LOG_MAX

TIMEZONE_USAGE = (
    "Usage: /timezone Europe/Berlin — the time zone for /digest at HH:MM "
    "(an IANA name; /timezone alone shows the current one)"
)


def _status(chat: Chat, due: float | None) -> str:
    text = f"Delivery: <b>{esc(describe(chat.delivery, chat.tz))}</b>"
    if chat.paused:
        text += "\n⏸ Paused: nothing is posted until /resume."
    if due is not None and chat.delivery.is_digest:
        local = datetime.fromtimestamp(due, zone(chat.tz))
        text += f"\nNext digest: {local:%Y-%m-%d %H:%M} ({esc(chat.tz)})"
    return text


async def digest(update: Update, context: Context) -> None:
    """``/digest`` shows the mode; ``/digest every 2h|at 08:00|off`` changes it."""
    settings = context.services.settings
    try:
        wanted = parse_delivery(args_of(context), settings.digest_min_interval_s)
    except ScheduleError as exc:
        await reply(update, context, str(exc))
        return
    chat = await register_chat(update, context)
    if chat is None:
        return
    if wanted is None:
        due = context.services.digests.due_time(chat.chat_id)
        await reply(update, context, f"{_status(chat, due)}\n\n{USAGE}")
        return
    if not await can_manage(update, context):
        await deny(update, context)
        return
    await _set_delivery(context, chat.chat_id, wanted)
    updated = context.storage.chat(chat.chat_id) or chat
    due = context.services.digests.due_time(chat.chat_id)
    if wanted.is_digest:
        tail = " Items found until then wait for it; nothing is posted in between."
    else:
        tail = " Each new item is posted as soon as it is found."
    await reply(update, context, f"✅ {_status(updated, due)}\n{tail.strip()}")


async def _set_delivery(context: Context, chat_id: int, delivery: Delivery) -> None:
    storage, digests = context.storage, context.services.digests
    previous = storage.chat(chat_id)
    switching_to_instant = previous is not None and previous.delivery.is_digest
    # The same "every" schedule again (or a new time zone, which "every" ignores) keeps its
    # phase; anything else starts from now.
    keep_phase = (
        previous is not None
        and previous.delivery == delivery
        and delivery.mode == "every"
        and previous.next_digest_at is not None
    )
    if keep_phase:
        return

    def apply(chat: Chat) -> None:
        chat.delivery = delivery
        chat.next_digest_at = None  # recomputed below from the new schedule

    await storage.update_chat(chat_id, apply)
    chat = storage.chat(chat_id)
    if chat is not None:
        if delivery.is_digest:
            await storage.set_next_digest(chat_id, next_digest_at(delivery, chat.tz, time.time()))
            chat = storage.chat(chat_id)
        if chat is not None:
            await digests.update(chat)
    if switching_to_instant and not delivery.is_digest:
        # What waited for the digest goes out now rather than never (as a list: a backlog).
        context.services.dispatcher.request(chat_id, compact=True)


async def pause(update: Update, context: Context) -> None:
    """Stop posting new items here; they are kept and sent on /resume."""
    if not await can_manage(update, context):
        await deny(update, context)
        return
    await register_chat(update, context)
    await context.storage.update_chat(chat_id_of(update), lambda c: setattr(c, "paused", True))
    await reply(
        update,
        context,
        f"⏸ Paused. I'll keep collecting new items (the latest {LOG_MAX} per feed) and post them "
        "when you say /resume. /news still works.",
    )


async def resume(update: Update, context: Context) -> None:
    """Post again, starting with what was collected while paused."""
    if not await can_manage(update, context):
        await deny(update, context)
        return
    chat = await register_chat(update, context)
    chat_id = chat_id_of(update)
    await context.storage.update_chat(chat_id, lambda c: setattr(c, "paused", False))
    if chat is not None and chat.delivery.is_digest:
        text = "▶️ Resumed. Items found while paused come in the next digest."
    else:
        context.services.dispatcher.request(chat_id, compact=True)  # a backlog: titles only
        text = "▶️ Resumed. Items found while paused follow now."
    await reply(update, context, text)


async def timezone(update: Update, context: Context) -> None:
    """Show or set the chat's time zone (for ``/digest at HH:MM``)."""
    args = args_of(context)
    chat = await register_chat(update, context)
    if chat is None:
        return
    if not args:
        await reply(update, context, f"Time zone: <b>{esc(chat.tz)}</b>\n{TIMEZONE_USAGE}")
        return
    if len(args) != 1:
        await reply(update, context, TIMEZONE_USAGE)
        return
    if not await can_manage(update, context):
        await deny(update, context)
        return
    try:
        tz = parse_timezone(args[0])
    except ScheduleError as exc:
        await reply(update, context, str(exc))
        return
    await context.storage.update_chat(chat.chat_id, lambda c: setattr(c, "tz", tz))
    if chat.delivery.is_digest:
        await _set_delivery(context, chat.chat_id, chat.delivery)  # re-time "at" digests
    now = datetime.now(zone(tz))
    await reply(update, context, f"✅ Time zone: <b>{esc(tz)}</b> (it is {now:%H:%M} there now).")


def register(app: Application) -> None:
    """Add this module's handlers."""
    app.add_handler(CommandHandler("digest", digest, filters=COMMAND_UPDATES))
    app.add_handler(CommandHandler("pause", pause, filters=COMMAND_UPDATES))
    app.add_handler(CommandHandler("resume", resume, filters=COMMAND_UPDATES))
    app.add_handler(CommandHandler("timezone", timezone, filters=COMMAND_UPDATES))
