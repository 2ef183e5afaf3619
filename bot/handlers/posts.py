"""/format and /previews: how this chat's instant posts look.

Thin: parse the argument, check rights, store the chat's choice. Like ``/digest``, both act
on the chat they are sent in, or — from a private chat — on a group or channel named first
(``/format @channel full``, see :func:`bot.handlers.common.resolve_target`). Rendering lives in
:mod:`bot.formatting`, sending in :mod:`bot.services.delivery`. A subscription's own format
is set from the subscription buttons with ``storage.update_subscription`` (``sub.format``,
``None`` = the chat's); ``/format`` only counts those here.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import Application, CommandHandler

from bot.formatting import esc
from bot.handlers.common import (
    COMMAND_UPDATES,
    Context,
    Target,
    deny,
    may_change,
    reply,
    reply_about,
    target_chat,
    tr,
)
from bot.i18n import N_, Translator
from bot.listing import NO_SUCH_FEED, entries_of, numbered, shorten_title
from bot.models import POST_FORMATS, Chat, PostFormat, Subscription

logger = logging.getLogger(__name__)

# What each format means, as /format lists it (translated where shown).
FORMAT_HELP: dict[PostFormat, str] = {
    "title": N_("just the headline (several new items of a feed share a post)"),
    "summary": N_("the headline, the source, then the item's text"),
    "full": N_("as summary, with the item's first image"),
}
_SWITCHES = {"on": True, "off": False}
CHAT_FORMAT = "chat"  # /format <n> chat: the feed follows the chat's format again


def _previews_state(t: Translator, on: bool) -> str:
    """How "Link previews: …" reads the chat's setting."""
    # TRANSLATORS: the state of link previews ("Link previews: on"), not the command word.
    return t.gettext("on") if on else t.gettext("off")


def _state(t: Translator, chat: Chat, own_formats: int) -> str:
    """The chat's format and previews, how to change them, and what they do not affect."""
    _ = t.gettext
    lines = [
        _("Post format: <b>%(format)s</b> — %(meaning)s")
        % {"format": chat.format, "meaning": _(FORMAT_HELP[chat.format])},
        _("Link previews: <b>%(state)s</b>") % {"state": _previews_state(t, chat.previews)},
    ]
    if own_formats:
        lines.append(
            t.ngettext(
                "%(n)d feed here has a format of its own.",
                "%(n)d feeds here have a format of their own.",
                own_formats,
            )
            % {"n": own_formats}
        )
    lines.append("")
    lines += [f"/format {name} — {_(FORMAT_HELP[name])}" for name in POST_FORMATS]
    lines.append(_("/format 2 title — feed 2 of /list in its own format (chat: the chat's again)"))
    lines.append(_("/previews on|off — a preview of the article under each post"))
    lines.append(_("Digests, /news and what /resume sends always list headlines only."))
    return "\n".join(lines)


async def format_command(update: Update, context: Context) -> None:
    """``/format`` shows the chat's post format; ``/format title|summary|full`` sets it."""
    t = tr(update, context)
    _ = t.gettext
    found = await target_chat(update, context)
    if found is None:
        return
    target, chat = found
    args = list(target.args)
    if not args:
        own = sum(1 for s in context.storage.subscriptions(chat.chat_id) if s.format is not None)
        await reply_about(update, context, target, _state(t, chat, own))
        return
    if len(args) == 2 and args[0].isdigit():
        await _subscription_format(update, context, t, target=target, chat=chat, args=args)
        return
    wanted = args[0].lower()
    if len(args) != 1 or wanted not in POST_FORMATS:
        text = _('Unknown format "%(given)s". Choose one: /format title, /format summary '
                 "or /format full.") % {"given": esc(" ".join(args)[:40])}  # fmt: skip
        await reply(update, context, text)
        return
    if not await may_change(update, context, target):
        await deny(update, context)
        return
    fmt: PostFormat = next(f for f in POST_FORMATS if f == wanted)

    def apply(stored: Chat) -> None:
        stored.format = fmt

    await context.storage.update_chat(chat.chat_id, apply)
    logger.info("post format changed", extra={"chat_id": chat.chat_id, "format": fmt})
    await reply_about(
        update,
        context,
        target,
        _("✅ Post format: <b>%(format)s</b> — %(meaning)s")
        % {"format": fmt, "meaning": _(FORMAT_HELP[fmt])},
    )


async def _subscription_format(
    update: Update,
    context: Context,
    t: Translator,
    *,
    target: Target,
    chat: Chat,
    args: list[str],
) -> None:
    """``/format <n> title|summary|full|chat``: one feed's own format (``chat``: the chat's)."""
    _ = t.gettext
    entry = numbered(entries_of(context.storage, chat.chat_id), int(args[0]))
    wanted = args[1].lower()
    if entry is None:
        await reply(update, context, _(NO_SUCH_FEED))
        return
    if wanted not in (*POST_FORMATS, CHAT_FORMAT):
        text = _('Unknown format "%(given)s". Choose one: title, summary, full, or chat '
                 "(the chat's format).") % {"given": esc(wanted[:40])}  # fmt: skip
        await reply(update, context, text)
        return
    if not await may_change(update, context, target):
        await deny(update, context)
        return
    fmt = next((f for f in POST_FORMATS if f == wanted), None)

    def apply(sub: Subscription) -> None:
        sub.format = fmt

    await context.storage.update_subscription(chat.chat_id, entry.url, apply)
    title = esc(shorten_title(entry.title))
    if fmt is None:
        text = _("✅ %(title)s follows the chat's post format (%(format)s).") % {
            "title": title, "format": chat.format
        }  # fmt: skip
    else:
        text = _("✅ %(title)s posts as <b>%(format)s</b> — %(meaning)s") % {
            "title": title, "format": fmt, "meaning": _(FORMAT_HELP[fmt])
        }  # fmt: skip
    await reply_about(update, context, target, text)


async def previews_command(update: Update, context: Context) -> None:
    """``/previews`` shows whether posts get link previews; ``/previews on|off`` sets it."""
    t = tr(update, context)
    _ = t.gettext
    found = await target_chat(update, context)
    if found is None:
        return
    target, chat = found
    args = list(target.args)
    usage = _("/previews on — a preview of the article under each post; /previews off — none")
    if not args:
        state = _previews_state(t, chat.previews)
        text = _("Link previews: <b>%(state)s</b>") % {"state": state}
        await reply_about(update, context, target, f"{text}\n{usage}")
        return
    wanted = args[0].lower()
    if len(args) != 1 or wanted not in _SWITCHES:
        await reply(update, context, usage)
        return
    if not await may_change(update, context, target):
        await deny(update, context)
        return
    enabled = _SWITCHES[wanted]

    def apply(stored: Chat) -> None:
        stored.previews = enabled

    await context.storage.update_chat(chat.chat_id, apply)
    if enabled:
        text = _("✅ Link previews: <b>on</b>. Posts show a preview of the article.")
    else:
        text = _("✅ Link previews: <b>off</b>. Posts show no preview of the article.")
    await reply_about(update, context, target, text)


def register(app: Application) -> None:
    """Add this module's handlers."""
    app.add_handler(CommandHandler("format", format_command, filters=COMMAND_UPDATES))
    app.add_handler(CommandHandler("previews", previews_command, filters=COMMAND_UPDATES))
