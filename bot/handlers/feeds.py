"""/add, /remove and /list: which feeds a chat follows."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import Application, CommandHandler

from bot.context import get_services
from bot.formatting import esc, format_feed_list
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
from bot.models import Channel
from bot.services.news import FeedUnavailable
from bot.services.storage import get_storage_service

logger = logging.getLogger(__name__)

MAX_FEEDS_PER_CHAT = 50
MAX_URL_LEN = 2048
ADD_USAGE = "Usage: /add &lt;feed or page URL&gt;, e.g. /add https://example.com/feed.xml"
REMOVE_USAGE = "Usage: /remove &lt;number from /list, or the feed URL&gt;, e.g. /remove 2"


async def add(update: Update, context: Context) -> None:
    """Follow a feed after checking that it really is one."""
    args = args_of(context)
    if len(args) != 1 or len(args[0]) > MAX_URL_LEN:
        await reply(update, context, ADD_USAGE)
        return
    if not await can_manage(update, context):
        await deny(update, context)
        return
    url = args[0].strip("<>")
    if "://" not in url:
        url = "https://" + url
    services = get_services(context)
    channel = await register_chat(update)
    if channel is not None and url in channel.feeds and not await services.news.is_paused(url):
        await reply(update, context, f"Already following <code>{esc(url)}</code>.")
        return
    try:
        feed_url, title = await services.news.validate(url)
    except FeedUnavailable as exc:
        await reply(update, context, f"❌ Couldn't add that feed: {esc(exc.reason)}.")
        return

    def subscribe(live: Channel) -> str:
        if feed_url in live.feeds:
            return "already"
        if len(live.feeds) >= MAX_FEEDS_PER_CHAT:
            return "full"
        live.feeds.append(feed_url)
        return "added"

    outcome = await get_storage_service().update_channel(chat_id_of(update), subscribe)
    if outcome == "full":
        await reply(
            update,
            context,
            f"This chat already follows {MAX_FEEDS_PER_CHAT} feeds; /remove one first.",
        )
        return
    if outcome == "added":
        await get_storage_service().increment("feeds_added", chat_id=chat_id_of(update))
    verb = "Now following" if outcome == "added" else "Already following (resumed)"
    found = "" if feed_url == url else f"\n(found the feed at <code>{esc(feed_url)}</code>)"
    await reply(update, context, f"✅ {verb} <b>{esc(title or feed_url)}</b>.{found}")


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

    def unsubscribe(live: Channel) -> str | None:
        if target.isdigit():
            index = int(target) - 1
            return live.feeds.pop(index) if 0 <= index < len(live.feeds) else None
        if target in live.feeds:
            live.feeds.remove(target)
            return target
        return None

    await register_chat(update)
    removed = await get_storage_service().update_channel(chat_id_of(update), unsubscribe)
    if removed is None:
        await reply(update, context, "No such feed here. See /list for the numbers.")
        return
    await reply(update, context, f"🗑 Removed <code>{esc(removed)}</code>.")


async def list_feeds(update: Update, context: Context) -> None:
    """Show the chat's feeds, numbered as /remove expects."""
    services = get_services(context)
    channel = await register_chat(update)
    feeds = channel.feeds if channel else []
    titles = await services.news.titles(feeds)
    paused = {u for u in feeds if await services.news.is_paused(u)}
    text = format_feed_list(feeds, titles, paused)
    if not feeds and services.settings.default_feeds:
        text += "\n(/news shows the bot's default feeds until you add your own.)"
    await reply(update, context, text)


def register(app: Application) -> None:
    """Add this module's handlers."""
    app.add_handler(CommandHandler("add", add, filters=COMMAND_UPDATES))
    app.add_handler(CommandHandler("remove", remove, filters=COMMAND_UPDATES))
    app.add_handler(CommandHandler("list", list_feeds, filters=COMMAND_UPDATES))
