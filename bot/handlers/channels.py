"""/channels: the groups and channels a user manages through the bot from a private chat.

The list is the ``managers`` index storage keeps (a user joins it when a command naming the
chat passes the rights check, and leaves it when a check finds they no longer manage it).
It is not re-checked here: that would cost a ``getChatMember`` per chat on every
``/channels``, and every command acting on a chat checks the rights again anyway.
"""

from __future__ import annotations

from telegram import Chat, Update
from telegram.ext import Application, CommandHandler

from bot.formatting import esc, pack_blocks
from bot.handlers.common import COMMAND_UPDATES, Context, reply, tr
from bot.i18n import Translator


def how_to_add(t: Translator) -> str:
    """How to start managing a chat from here (Telegram HTML)."""
    return esc(
        t.gettext(
            "To manage a channel or group from here, name it before the rest of a command: "
            "/add @mychannel https://example.com/feed.xml, /list @mychannel, "
            "/digest -1001234567890 every 2h. I must be an admin of a channel who may post "
            "messages, or a member of a group; you must be its creator or an admin."
        )
    )


async def channels(update: Update, context: Context) -> None:
    """List the chats the sender manages, with their feed counts and ids to copy."""
    chat, user = update.effective_chat, update.effective_user
    t = tr(update, context)
    if chat is None:
        return
    if chat.type != Chat.PRIVATE or user is None:
        text = t.gettext("Send /channels to me in a private chat: the list is yours alone.")
        await reply(update, context, esc(text))
        return
    storage = context.storage
    managed = [c for c in map(storage.chat, storage.managed_chats(user.id)) if c is not None]
    managed.sort(key=lambda c: (c.title.casefold(), c.chat_id))
    blocks = []
    for n, stored in enumerate(managed, 1):
        chat_id = stored.chat_id
        feeds = len(storage.feed_urls(chat_id))
        line = f"{n}. <b>{esc(stored.title or str(chat_id))}</b> <code>{chat_id}</code>\n   "
        line += t.ngettext("%(n)d feed", "%(n)d feeds", feeds) % {"n": feeds}
        if not stored.active:
            line += " · " + esc(t.gettext("I was removed from it"))
        elif stored.paused:
            line += " · " + esc(t.gettext("paused"))
        blocks.append(line)
    if not blocks:
        empty = esc(t.gettext("You don't manage any group or channel through me yet."))
        await reply(update, context, f"{empty}\n\n{how_to_add(t)}")
        return
    header = "<b>" + esc(t.gettext("Chats you manage through me")) + "</b>"
    texts = pack_blocks(header, [*blocks, "\n" + how_to_add(t)], separator="\n", t=t)
    await reply(update, context, texts)


def register(app: Application) -> None:
    """Add this module's handlers."""
    app.add_handler(CommandHandler("channels", channels, filters=COMMAND_UPDATES))
