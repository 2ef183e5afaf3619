"""/digest, /pause, /resume and /timezone: how and when new items reach this chat."""

from __future__ import annotations

import time
from datetime import datetime

from telegram import Update
from telegram.ext import Application, CommandHandler

from bot.formatting import esc, format_when
from bot.handlers.common import (
    COMMAND_UPDATES,
    Context,
    args_of,
    deny,
    may_change,
    register_target,
    reply,
    reply_about,
    resolve_target,
    target_chat,
    tr,
)
from bot.i18n import N_, Translator
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

TIMEZONE_USAGE = N_(
    "Usage: /timezone Europe/Berlin — the time zone for /digest at HH:MM "
    "(an IANA name; /timezone alone shows the current one)"
)


def _status(chat: Chat, due: float | None, t: Translator) -> str:
    _ = t.gettext
    text = _("Delivery: <b>%(mode)s</b>") % {"mode": esc(describe(chat.delivery, chat.tz, t=t))}
    if chat.paused:
        text += "\n" + _("⏸ Paused: nothing is posted until /resume.")
    if due is not None and chat.delivery.is_digest:
        local = datetime.fromtimestamp(due, zone(chat.tz))
        text += "\n" + _("Next digest: %(when)s (%(tz)s)") % {
            "when": format_when(local, t=t),
            "tz": esc(chat.tz),
        }
    return text


async def digest(update: Update, context: Context) -> None:
    """``/digest`` shows the mode; ``/digest every 2h|at 08:00|off`` changes it."""
    settings = context.services.settings
    t = tr(update, context)
    target = await resolve_target(update, context, args_of(context))
    if target is None:
        return
    try:
        wanted = parse_delivery(list(target.args), settings.digest_min_interval_s)
    except ScheduleError as exc:
        await reply(update, context, exc.text(t))
        return
    chat = await register_target(update, context, target)
    if chat is None:
        return
    if wanted is None:
        due = context.services.digests.due_time(chat.chat_id)
        await reply_about(update, context, target, f"{_status(chat, due, t)}\n\n{t.gettext(USAGE)}")
        return
    if not await may_change(update, context, target):
        await deny(update, context)
        return
    await _set_delivery(context, chat.chat_id, wanted)
    updated = context.storage.chat(chat.chat_id) or chat
    due = context.services.digests.due_time(chat.chat_id)
    if wanted.is_digest:
        tail = t.gettext("Items found until then wait for it; nothing is posted in between.")
    else:
        tail = t.gettext("Each new item is posted as soon as it is found.")
    await reply_about(update, context, target, f"✅ {_status(updated, due, t)}\n{tail}")


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
    target = await resolve_target(update, context, args_of(context))
    if target is None:
        return
    if not await may_change(update, context, target):
        await deny(update, context)
        return
    await register_target(update, context, target)
    await context.storage.update_chat(target.chat_id, lambda c: setattr(c, "paused", True))
    text = tr(update, context).ngettext(
        "⏸ Paused. I'll keep collecting new items (the latest %(kept)d per feed) and post "
        "them when you say /resume. /news still works.",
        "⏸ Paused. I'll keep collecting new items (the latest %(kept)d per feed) and post "
        "them when you say /resume. /news still works.",
        LOG_MAX,
    )
    await reply_about(update, context, target, text % {"kept": LOG_MAX})


async def resume(update: Update, context: Context) -> None:
    """Post again, starting with what was collected while paused."""
    target = await resolve_target(update, context, args_of(context))
    if target is None:
        return
    if not await may_change(update, context, target):
        await deny(update, context)
        return
    chat = await register_target(update, context, target)
    chat_id = target.chat_id
    await context.storage.update_chat(chat_id, lambda c: setattr(c, "paused", False))
    _ = tr(update, context).gettext
    if chat is not None and chat.delivery.is_digest:
        text = _("▶️ Resumed. Items found while paused come in the next digest.")
    else:
        context.services.dispatcher.request(chat_id, compact=True)  # a backlog: titles only
        text = _("▶️ Resumed. Items found while paused follow now.")
    await reply_about(update, context, target, text)


async def timezone(update: Update, context: Context) -> None:
    """Show or set the chat's time zone (for ``/digest at HH:MM``)."""
    found = await target_chat(update, context)
    if found is None:
        return
    target, chat = found
    args = target.args
    t = tr(update, context)
    _ = t.gettext
    if not args:
        shown = _("Time zone: <b>%(tz)s</b>") % {"tz": esc(chat.tz)}
        await reply_about(update, context, target, f"{shown}\n{_(TIMEZONE_USAGE)}")
        return
    if len(args) != 1:
        await reply(update, context, _(TIMEZONE_USAGE))
        return
    if not await may_change(update, context, target):
        await deny(update, context)
        return
    try:
        tz = parse_timezone(args[0])
    except ScheduleError as exc:
        await reply(update, context, exc.text(t))
        return
    await context.storage.update_chat(chat.chat_id, lambda c: setattr(c, "tz", tz))
    if chat.delivery.is_digest:
        await _set_delivery(context, chat.chat_id, chat.delivery)  # re-time "at" digests
    now = datetime.now(zone(tz))
    await reply_about(
        update,
        context,
        target,
        _("✅ Time zone: <b>%(tz)s</b> (it is %(time)s there now).")
        % {"tz": esc(tz), "time": f"{now:%H:%M}"},
    )


def register(app: Application) -> None:
    """Add this module's handlers."""
    app.add_handler(CommandHandler("digest", digest, filters=COMMAND_UPDATES))
    app.add_handler(CommandHandler("pause", pause, filters=COMMAND_UPDATES))
    app.add_handler(CommandHandler("resume", resume, filters=COMMAND_UPDATES))
    app.add_handler(CommandHandler("timezone", timezone, filters=COMMAND_UPDATES))
