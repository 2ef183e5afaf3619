"""/add and /remove: which feeds a chat follows (/list is in :mod:`bot.handlers.manage`)."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import Application, CommandHandler

from bot.formatting import esc
from bot.handlers.budget import charge_add
from bot.handlers.common import (
    COMMAND_UPDATES,
    Context,
    Target,
    args_of,
    deny,
    may_change,
    register_target,
    reply,
    reply_about,
    resolve_target,
    tr,
)
from bot.handlers.topics import move_here, options_for
from bot.i18n import N_
from bot.services.add_report import add_reply
from bot.services.subscriptions import (
    MAX_ADD_URLS,
    MAX_URL_LEN,
    TooManyUrlsError,
    add_feeds,
    check_url_count,
)

logger = logging.getLogger(__name__)

ADD_USAGE = N_("Usage: /add &lt;feed or page URL&gt;, e.g. /add https://example.com/feed.xml")
REMOVE_USAGE = N_("Usage: /remove &lt;number from /list, or the feed URL&gt;, e.g. /remove 2")


async def add(update: Update, context: Context) -> None:
    """Follow one or more feeds after checking that each really is one.

    New items are sent from now on; one answer says what became of every address.
    """
    target = await resolve_target(update, context, args_of(context))
    if target is None:
        return
    args = list(target.args)
    if not args or any(len(arg) > MAX_URL_LEN for arg in args):
        await reply(update, context, tr(update, context).gettext(ADD_USAGE))
        return
    if not await may_change(update, context, target):
        await deny(update, context)
        return
    await register_target(update, context, target)
    await add_urls(update, context, target, args)


def feed_limit(context: Context) -> int:
    """The most feeds one chat may follow (``MAX_FEEDS_PER_CHAT``): /add and /import."""
    return context.services.settings.max_feeds_per_chat


async def add_urls(update: Update, context: Context, target: Target, urls: list[str]) -> None:
    """The body of /add once the arguments and rights are checked: check, follow, answer once.

    Charged to the sender's /add budget (:mod:`bot.handlers.budget`) before any fetch; more
    than :data:`MAX_ADD_URLS` addresses are refused whole, costing nothing.
    """
    t = tr(update, context)
    _ = t.gettext
    limit = feed_limit(context)
    chat_id = target.chat_id
    try:
        check_url_count(urls, MAX_ADD_URLS)
    except TooManyUrlsError as exc:
        await reply(
            update,
            context,
            _(
                "That's %(count)d addresses; one /add takes at most %(cap)d. "
                "Send them in several /add commands, or as an OPML file with /import."
            )
            % {"count": exc.count, "cap": exc.cap},
        )
        return
    if not await charge_add(update, context, "add"):
        return
    options = options_for(update, chat_id)  # the forum topic /add was sent in
    outcomes = await add_feeds(
        context.services.feeds, context.storage, chat_id, urls, limit=limit, options=options
    )
    moved: dict[str, str] = {}  # a feed followed elsewhere moves to where /add was sent
    for outcome in outcomes:
        if outcome.kind in ("already", "resumed"):
            note = await move_here(update, context, chat_id, outcome.feed_url or outcome.url)
            if note:
                moved[outcome.url] = note
    chat = context.storage.chat(chat_id)
    digest = bool(chat and chat.delivery.is_digest)
    await reply(update, context, add_reply(outcomes, t, limit=limit, digest=digest, moved=moved))


async def remove(update: Update, context: Context) -> None:
    """Stop following a feed, by its number in /list or its URL."""
    target = await resolve_target(update, context, args_of(context))
    if target is None:
        return
    _ = tr(update, context).gettext
    args = target.args
    if len(args) != 1:
        await reply(update, context, _(REMOVE_USAGE))
        return
    if not await may_change(update, context, target):
        await deny(update, context)
        return
    which = args[0].strip("<>")
    storage = context.storage
    chat_id = target.chat_id
    await register_target(update, context, target)
    urls = storage.feed_urls(chat_id)
    url: str | None = None
    if which.isdigit() and 0 < int(which) <= len(urls):
        url = urls[int(which) - 1]
    elif which in urls:
        url = which
    if url is None or not await storage.unsubscribe(chat_id, url):
        text = _("No such feed here. See /list for the numbers.")
        await reply_about(update, context, target, text)
        return
    text = _("🗑 Removed <code>%(url)s</code>.") % {"url": esc(url)}
    await reply_about(update, context, target, text)


def register(app: Application) -> None:
    """Add this module's handlers."""
    app.add_handler(CommandHandler("add", add, filters=COMMAND_UPDATES))
    app.add_handler(CommandHandler("remove", remove, filters=COMMAND_UPDATES))
