"""/filter: show or change the keyword filters of a chat or of one of its subscriptions.

The command's text is parsed by :func:`bot.services.filter_command.parse_filter_command`
(terms and their limits: :mod:`bot.services.filters`); this module finds the chat and the
subscription, checks rights and stores what :meth:`FilterCommand.apply` returns. Showing
is open to everyone in the chat; changing takes the rights of any change. Like the other
commands, ``/filter`` acts on another chat when a private chat names it first
(``/filter @channel 2 include rust``).
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import Application, CommandHandler

from bot.formatting import esc
from bot.handlers.common import (
    COMMAND_UPDATES,
    TARGET_RE,
    Context,
    Target,
    deny,
    may_change,
    register_target,
    reply,
    reply_about,
    resolve_target,
    tr,
)
from bot.handlers.manage import button_signer
from bot.i18n import Translator
from bot.listing import (
    NO_SUCH_FEED,
    Entry,
    describe_filters,
    entries_of,
    filter_usage,
    numbered,
    page_of,
    render_filters,
    shorten_title,
)
from bot.models import Chat, Filters, Subscription
from bot.services.filter_command import FilterCommand, FilterUsage, parse_filter_command
from bot.services.filters import FilterError

logger = logging.getLogger(__name__)

MAX_LISTED_NUMBERS = 30  # feed numbers named in one /filter answer


async def filter_command(update: Update, context: Context) -> None:
    """Show or change the keyword filters of the chat or of one subscription."""
    t = tr(update, context)
    target, raw = await _filter_target(update, context)
    if target is None:
        return
    try:
        command = parse_filter_command(raw)
    except FilterUsage:
        await reply(update, context, filter_usage(t))
        return
    except FilterError as exc:
        await reply(update, context, exc.explain(t))
        return
    chat = await register_target(update, context, target)
    if chat is None:
        return
    storage = context.storage
    entry: Entry | None = None
    if command.n is not None:
        entry = numbered(entries_of(storage, chat.chat_id), command.n)
        if entry is None:
            await reply_about(update, context, target, t.gettext(NO_SUCH_FEED))
            return
    if command.verb == "show":
        await _show_filters(update, context, t, target=target, chat=chat, entry=entry)
        return
    if not await may_change(update, context, target):
        await deny(update, context)
        return
    if entry is None:
        new = await storage.update_chat(chat.chat_id, lambda c: _store(c, command))
        head = t.gettext("✅ Saved. Filters of this chat (every feed):")
    else:
        new = await storage.update_subscription(
            chat.chat_id, entry.url, lambda s: _store(s, command)
        )
        head = t.gettext("✅ Saved. Filters of %(n)d. <b>%(title)s</b>:") % {
            "n": entry.n, "title": esc(shorten_title(entry.title)),
        }  # fmt: skip
    await reply_about(update, context, target, "\n".join([head, *_described(t, new)]))


async def _filter_target(update: Update, context: Context) -> tuple[Target | None, str]:
    """The chat /filter acts on and the raw text after it (commas and lines kept).

    ``context.args`` would lose the line breaks that separate terms, so the message text is
    split here; whether a first word names a chat is :data:`TARGET_RE`'s rule, as for every
    command.
    """
    message = update.effective_message
    text = (message.text or "") if message is not None else ""
    parts = text.split(maxsplit=2)
    if len(parts) > 1 and TARGET_RE.match(parts[1]):
        return await resolve_target(update, context, [parts[1]]), parts[2] if len(parts) > 2 else ""
    rest = text.split(maxsplit=1)
    return await resolve_target(update, context, []), rest[1] if len(rest) > 1 else ""


def _store(owner: Chat | Subscription, command: FilterCommand) -> Filters:
    """Apply ``command`` to the filters of a chat or subscription (a storage update fn)."""
    owner.filters = command.apply(owner.filters)
    return owner.filters


def _described(t: Translator, filters: Filters) -> list[str]:
    """The lines that list ``filters``, or say that every item is posted."""
    return describe_filters(t, filters) or [t.gettext("None: every item is posted.")]


async def _show_filters(
    update: Update,
    context: Context,
    t: Translator,
    *,
    target: Target,
    chat: Chat,
    entry: Entry | None,
) -> None:
    if entry is not None:
        page = page_of(entry.n)
        text, markup = render_filters(t, button_signer(context), chat, entry, page)
        await reply_about(update, context, target, text, reply_markup=markup)
        return
    lines = [t.gettext("🔎 Filters of this chat (every feed):"), *_described(t, chat.filters)]
    own = [e.n for e in entries_of(context.storage, chat.chat_id) if e.filters]
    if own:
        numbers = ", ".join(map(str, own[:MAX_LISTED_NUMBERS]))
        if len(own) > MAX_LISTED_NUMBERS:
            numbers += ", …"
        lines.append(
            t.gettext("Feeds with filters of their own: %(numbers)s (see /filter %(first)d).")
            % {"numbers": numbers, "first": own[0]}
        )
    lines += ["", filter_usage(t), "", t.gettext(
        "Words match whole words in any case, a phrase its words in a row; Chinese, Japanese, "
        "Korean and Thai match anywhere in the text. Titles and summaries are searched."
    )]  # fmt: skip
    await reply_about(update, context, target, "\n".join(lines))


def register(app: Application) -> None:
    """Add /filter."""
    app.add_handler(CommandHandler("filter", filter_command, filters=COMMAND_UPDATES))
