"""/start and /help: what the bot is and every command, with examples."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CommandHandler

from bot.handlers.common import COMMAND_UPDATES, Context, register_chat, reply, tr
from bot.i18n import N_, Translator

# One msgid per section: translators get a paragraph at a time, and editing one section
# leaves the translations of the others valid. Shown joined by blank lines.
HELP_SECTIONS: tuple[str, ...] = (
    N_("<b>newsbot</b> — news from the feeds you choose, posted here as it appears."),
    N_(
        "<b>Reading</b>\n"
        "/news — the 5 latest items across this chat's feeds\n"
        "/news 10 — the 10 latest (up to 20)"
    ),
    N_(
        "<b>Feeds</b> (in groups and channels: administrators only)\n"
        "/add https://example.com/feed.xml — follow a feed (a web page that links a feed works "
        "too)\n"
        "/add https://a.example/rss https://b.example/atom — several at once (spaces or new "
        "lines, up to 20)\n"
        "/import — as the caption of an OPML file from your feed reader (or in reply to one)\n"
        "/export — this chat's feeds as an OPML file, for any feed reader\n"
        "/list — this chat's feeds, 10 a page, with buttons: 🔇 mute, 🔎 filters, 📝 post "
        "format, ✏️ rename, 🗑 remove\n"
        "/list 2 — page 2 of the list\n"
        "/remove 2 — stop following feed number 2 (or give its URL)\n"
        "/rename 2 Morning news — your own title for feed 2 (/rename 2 - takes it back)\n"
        "Groups with topics: /add inside a topic posts the feed there (/add it elsewhere to "
        "move it)"
    ),
    N_(
        "<b>Keyword filters</b> — whole words in any case, or phrases; titles and summaries are "
        "searched\n"
        "/filter — this chat's filters\n"
        "/filter include python, rust — only items that mention python or rust\n"
        "/filter exclude ads, sponsored post — never items that mention these\n"
        "/filter clear — no filters\n"
        "/filter 2 exclude ads — the same for feed 2 only (the chat's filters apply too)"
    ),
    N_(
        "<b>Channels and groups</b> — manage them from this private chat, unseen by their "
        "readers\n"
        "/add @mychannel https://example.com/feed.xml — name the chat first: @username or "
        "-100… id\n"
        "/list @mychannel — the same for /remove, /rename, /filter, /digest, /pause, /resume,\n"
        "and /timezone, /format, /previews, /language, /import, /export\n"
        "/channels — the groups and channels you manage through me\n"
        "(I must be a channel admin who may post, or a group member; you: its creator or an "
        "admin.)"
    ),
    N_(
        "<b>Delivery</b> — new items are posted as soon as they are found, unless you choose a "
        "digest\n"
        "/digest — show how this chat gets new items\n"
        "/digest every 2h — a digest every 2 hours instead\n"
        "/digest at 08:00 — a daily digest at 08:00 (see /timezone)\n"
        "/digest off — back to instant delivery\n"
        "/timezone Europe/Berlin — the time zone for daily digests (default UTC)\n"
        "/pause — stop posting for now (items are kept)\n"
        "/resume — post again, starting with what was kept"
    ),
    N_(
        "<b>Posts</b> — how new items look here\n"
        "/format — show the post format\n"
        "/format summary — the headline, the source and the item's text (the default)\n"
        "/format full — as summary, with the item's first image\n"
        "/format title — just the headline\n"
        "/format 2 title — feed 2 in a format of its own (/format 2 chat: the chat's again)\n"
        "/previews off — no link previews under posts (/previews on to show them)"
    ),
    N_("/language — this chat's language: /language en, /language ru, /language auto"),
    N_(
        "/stats — counters (bot operators only)\n/start — the welcome message\n/help — this message"
    ),
)

START_TEXT = N_(
    "👋 Hi! I collect news from RSS, Atom and JSON feeds and post it here.\n"
    "Try /news now, or /add a feed of your own."
)


def help_text(t: Translator) -> str:
    """The whole /help in ``t``'s language: the sections, a blank line apart."""
    return "\n\n".join(t.gettext(section) for section in HELP_SECTIONS)


async def start(update: Update, context: Context) -> None:
    """Greet, register the chat, and show the commands."""
    await register_chat(update, context)
    t = tr(update, context)  # after registering: a new private chat has its language now
    await reply(update, context, t.gettext(START_TEXT) + "\n\n" + help_text(t))


async def help_command(update: Update, context: Context) -> None:
    """List every command with an example."""
    await reply(update, context, help_text(tr(update, context)))


def register(app: Application) -> None:
    """Add this module's handlers."""
    app.add_handler(CommandHandler("start", start, filters=COMMAND_UPDATES))
    app.add_handler(CommandHandler("help", help_command, filters=COMMAND_UPDATES))
