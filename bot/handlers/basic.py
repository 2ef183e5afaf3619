"""/start and /help: what the bot is and every command, with examples."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CommandHandler

from bot.handlers.common import COMMAND_UPDATES, Context, register_chat, reply

HELP_TEXT = """<b>newsbot</b> — news from the feeds you choose, posted here as it appears.

<b>Reading</b>
/news — the 5 latest items across this chat's feeds
/news 10 — the 10 latest (up to 20)

<b>Feeds</b> (in groups and channels: administrators only)
/add https://example.com/feed.xml — follow a feed (a web page that links a feed works too)
/add https://a.example/rss https://b.example/atom — several at once (spaces or new lines, up to 20)
/import — as the caption of an OPML file from your feed reader (or in reply to one)
/export — this chat's feeds as an OPML file, for any feed reader
/list — this chat's feeds, 10 a page, with buttons: 🔇 mute, 🔎 filters, ✏️ rename, 🗑 remove
/list 2 — page 2 of the list
/remove 2 — stop following feed number 2 (or give its URL)
/rename 2 Morning news — your own title for feed 2 (/rename 2 - takes it back)
Groups with topics: /add inside a topic posts the feed there (/add it elsewhere to move it)

<b>Keyword filters</b> — whole words in any case, or phrases; titles and summaries are searched
/filter — this chat's filters
/filter include python, rust — only items that mention python or rust
/filter exclude ads, sponsored post — never items that mention these
/filter clear — no filters
/filter 2 exclude ads — the same for feed 2 only (the chat's filters apply too)

<b>Channels and groups</b> — manage them from this private chat, unseen by their readers
/add @mychannel https://example.com/feed.xml — name the chat first: @username or -100… id
/list @mychannel — the same for /remove, /rename, /filter, /digest, /pause, /resume,
and /timezone, /format, /previews
/channels — the groups and channels you manage through me
(I must be a channel admin who may post, or a group member; you: its creator or an admin.)

<b>Delivery</b> — new items are posted as soon as they are found, unless you choose a digest
/digest — show how this chat gets new items
/digest every 2h — a digest every 2 hours instead
/digest at 08:00 — a daily digest at 08:00 (see /timezone)
/digest off — back to instant delivery
/timezone Europe/Berlin — the time zone for daily digests (default UTC)
/pause — stop posting for now (items are kept)
/resume — post again, starting with what was kept

<b>Posts</b> — how new items look here
/format — show the post format
/format summary — the headline, the source and the item's text (the default)
/format full — as summary, with the item's first image
/format title — just the headline
/previews off — no link previews under posts (/previews on to show them)

/language — this chat's language: /language en, /language ru, /language auto

/stats — counters (bot operators only)
/start — the welcome message
/help — this message"""

START_TEXT = (
    "👋 Hi! I collect news from RSS and Atom feeds and post it here.\n"
    "Try /news now, or /add a feed of your own.\n\n"
)


async def start(update: Update, context: Context) -> None:
    """Greet, register the chat, and show the commands."""
    await register_chat(update, context)
    await reply(update, context, START_TEXT + HELP_TEXT)


async def help_command(update: Update, context: Context) -> None:
    """List every command with an example."""
    await reply(update, context, HELP_TEXT)


def register(app: Application) -> None:
    """Add this module's handlers."""
    app.add_handler(CommandHandler("start", start, filters=COMMAND_UPDATES))
    app.add_handler(CommandHandler("help", help_command, filters=COMMAND_UPDATES))
