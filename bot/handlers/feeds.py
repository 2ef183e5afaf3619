"""/add, /remove and /list: which feeds a chat follows."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import Application, CommandHandler

from bot.formatting import esc, format_feed_list
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
)
from bot.handlers.topics import move_here, options_for
from bot.services.feed_errors import FeedError
from bot.services.feeds import FeedBackingOff

logger = logging.getLogger(__name__)

MAX_URL_LEN = 2048
ADD_USAGE = "Usage: /add &lt;feed or page URL&gt;, e.g. /add https://example.com/feed.xml"
REMOVE_USAGE = "Usage: /remove &lt;number from /list, or the feed URL&gt;, e.g. /remove 2"


async def add(update: Update, context: Context) -> None:
    """Follow a feed after checking that it really is one; new items are sent from now on."""
    target = await resolve_target(update, context, args_of(context))
    if target is None:
        return
    args = list(target.args)
    if len(args) != 1 or len(args[0]) > MAX_URL_LEN:
        await reply(update, context, ADD_USAGE)
        return
    if not await may_change(update, context, target):
        await deny(update, context)
        return
    url = args[0].strip("<>")
    if "://" not in url:
        url = "https://" + url
    services, storage = context.services, context.storage
    chat_id = target.chat_id
    await register_target(update, context, target)
    max_feeds = services.settings.max_feeds_per_chat
    state = services.feeds.state_of(url)
    if url in storage.feed_urls(chat_id) and not (state and state.paused):
        moved = await move_here(update, context, chat_id, url)  # /add in another topic
        await reply(update, context, moved or f"Already following <code>{esc(url)}</code>.")
        return
    try:
        feed_url, title = await services.feeds.validate(url)
    except FeedBackingOff as exc:
        await reply(
            update,
            context,
            f"❌ That feed failed a moment ago ({esc(exc.reason)}). Try again in a minute.",
        )
        return
    except FeedError as exc:
        await reply(update, context, f"❌ Couldn't add that feed: {esc(exc.reason)}.")
        return
    options = options_for(update, chat_id)  # the forum topic /add was sent in
    outcome = await storage.subscribe(chat_id, feed_url, limit=max_feeds, options=options)
    if outcome == "full":
        await storage.drop_feed(feed_url)  # validated but not followed: keep nothing
        services.feeds.forget(feed_url)
        await reply(
            update,
            context,
            f"This chat already follows {max_feeds} feeds; /remove one first.",
        )
        return
    services.feeds.track(feed_url)
    if outcome == "added":
        storage.count("feeds_added", chat_id)
    verb = "Now following" if outcome == "added" else "Already following (resumed)"
    found = "" if feed_url == url else f"\n(found the feed at <code>{esc(feed_url)}</code>)"
    chat = storage.chat(chat_id)
    when = (
        "New items will come in this chat's digest."
        if chat and chat.delivery.is_digest
        else "New items will be posted here as soon as they appear."
    )
    moved = await move_here(update, context, chat_id, feed_url) if outcome == "already" else None
    when += f"\n{moved}" if moved else ""
    await reply(update, context, f"✅ {verb} <b>{esc(title or feed_url)}</b>.{found}\n{when}")


async def remove(update: Update, context: Context) -> None:
    """Stop following a feed, by its number in /list or its URL."""
    target = await resolve_target(update, context, args_of(context))
    if target is None:
        return
    args = target.args
    if len(args) != 1:
        await reply(update, context, REMOVE_USAGE)
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
        await reply_about(update, context, target, "No such feed here. See /list for the numbers.")
        return
    await reply_about(update, context, target, f"🗑 Removed <code>{esc(url)}</code>.")


async def list_feeds(update: Update, context: Context) -> None:
    """Show the chat's feeds, numbered as /remove expects."""
    target = await resolve_target(update, context, args_of(context))
    if target is None:
        return
    services, storage = context.services, context.storage
    await register_target(update, context, target)
    feeds = storage.feed_urls(target.chat_id)
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
    await reply_about(update, context, target, texts)


def register(app: Application) -> None:
    """Add this module's handlers."""
    app.add_handler(CommandHandler("add", add, filters=COMMAND_UPDATES))
    app.add_handler(CommandHandler("remove", remove, filters=COMMAND_UPDATES))
    app.add_handler(CommandHandler("list", list_feeds, filters=COMMAND_UPDATES))
