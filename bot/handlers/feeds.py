"""/add, /remove and /list: which feeds a chat follows."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import Application, CommandHandler

from bot.formatting import esc, format_feed_list
from bot.handlers.budget import charge_add
from bot.handlers.common import (
    COMMAND_UPDATES,
    Context,
    args_of,
    can_manage,
    chat_id_of,
    deny,
    register_chat,
    reply,
    tr,
)
from bot.handlers.topics import move_here, options_for
from bot.services.add_report import add_reply
from bot.services.subscriptions import (
    MAX_ADD_URLS,
    MAX_URL_LEN,
    TooManyUrlsError,
    add_feeds,
    check_url_count,
)

logger = logging.getLogger(__name__)

MAX_FEEDS_PER_CHAT = 50
ADD_USAGE = "Usage: /add &lt;feed or page URL&gt;, e.g. /add https://example.com/feed.xml"
REMOVE_USAGE = "Usage: /remove &lt;number from /list, or the feed URL&gt;, e.g. /remove 2"


async def add(update: Update, context: Context) -> None:
    """Follow one or more feeds after checking that each really is one.

    New items are sent from now on; one answer says what became of every address.
    """
    args = args_of(context)
    if not args or any(len(arg) > MAX_URL_LEN for arg in args):
        await reply(update, context, ADD_USAGE)
        return
    if not await can_manage(update, context):
        await deny(update, context)
        return
    chat_id = chat_id_of(update)
    await register_chat(update, context)
    await add_urls(update, context, chat_id, args)


def feed_limit(context: Context) -> int:
    """The most feeds one chat may follow (one place to read it: /add and /import)."""
    return MAX_FEEDS_PER_CHAT


async def add_urls(update: Update, context: Context, chat_id: int, urls: list[str]) -> None:
    """The body of /add once the arguments and rights are checked: check, follow, answer once.

    Charged to the sender's /add budget (:mod:`bot.handlers.budget`) before any fetch; more
    than :data:`MAX_ADD_URLS` addresses are refused whole, costing nothing.
    """
    t = tr(update, context)
    _ = t.gettext
    limit = feed_limit(context)
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
    args = args_of(context)
    if len(args) != 1:
        await reply(update, context, REMOVE_USAGE)
        return
    if not await can_manage(update, context):
        await deny(update, context)
        return
    target = args[0].strip("<>")
    storage = context.storage
    chat_id = chat_id_of(update)
    await register_chat(update, context)
    urls = storage.feed_urls(chat_id)
    url: str | None = None
    if target.isdigit() and 0 < int(target) <= len(urls):
        url = urls[int(target) - 1]
    elif target in urls:
        url = target
    if url is None or not await storage.unsubscribe(chat_id, url):
        await reply(update, context, "No such feed here. See /list for the numbers.")
        return
    await reply(update, context, f"🗑 Removed <code>{esc(url)}</code>.")


async def list_feeds(update: Update, context: Context) -> None:
    """Show the chat's feeds, numbered as /remove expects."""
    services, storage = context.services, context.storage
    await register_chat(update, context)
    feeds = storage.feed_urls(chat_id_of(update))
    titles: dict[str, str] = {}
    paused: set[str] = set()
    for url in feeds:
        state = storage.feed_state(url)
        if state is not None:
            titles[url] = state.title
            if state.paused:
                paused.add(url)
    texts = format_feed_list(feeds, titles, paused)
    if not feeds and services.settings.default_feeds:
        texts[-1] += "\n(/news shows the bot's default feeds until you add your own.)"
    await reply(update, context, texts)


def register(app: Application) -> None:
    """Add this module's handlers."""
    app.add_handler(CommandHandler("add", add, filters=COMMAND_UPDATES))
    app.add_handler(CommandHandler("remove", remove, filters=COMMAND_UPDATES))
    app.add_handler(CommandHandler("list", list_feeds, filters=COMMAND_UPDATES))
