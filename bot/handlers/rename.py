"""/rename and the rename conversation: a chat's own title for one of its feeds.

``/rename <n> <title>`` sets it in one step and works everywhere, channels included; like
the other commands it acts on another chat when a private chat names it first
(``/rename @channel 2 Daily``). ``/rename <n> -`` goes back to the feed's own title.

The ✏️ button of ``/list`` (:mod:`bot.handlers.manage`) starts a short conversation instead
(:func:`ask_title`): the bot asks for the title with a reply prompt, and the next text from
that user in that chat within :data:`~bot.services.prompts.RENAME_WINDOW_S` is the title —
in a group it must be a reply to the prompt (with privacy mode on, replies are what a bot
sees; the conversation must not swallow other talk). Open prompts live in
:class:`~bot.services.prompts.RenamePrompts`. The rights are asked again when the answer
comes, as for every change.
"""

from __future__ import annotations

import logging
import unicodedata

from telegram import CallbackQuery, ForceReply, Message, Update
from telegram import Chat as TgChat
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import Application, CommandHandler, MessageHandler
from telegram.ext import filters as tg_filters
from telegram.helpers import mention_html

from bot.formatting import esc
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
    tr,
)
from bot.handlers.rights import may_manage
from bot.i18n import Translator
from bot.listing import NO_SUCH_FEED, Entry, entries_of, numbered, shorten_title
from bot.models import Chat, Subscription, display_title
from bot.richtext import clean_text
from bot.services.delivery import NO_PREVIEW
from bot.services.prompts import RenamePrompts

logger = logging.getLogger(__name__)

MAX_CUSTOM_TITLE = 100  # characters of a title a chat gives a feed
# The rename conversation reads plain text; its own handler group keeps it from shadowing
# (or being shadowed by) any other message handler.
RENAME_HANDLER_GROUP = 1
_PROMPTS_KEY = "rename_prompts"  # in bot_data


def _prompts(context: Context) -> RenamePrompts:
    """The application's open rename prompts (made on first use)."""
    prompts = context.application.bot_data.get(_PROMPTS_KEY)
    if not isinstance(prompts, RenamePrompts):
        prompts = RenamePrompts()
        context.application.bot_data[_PROMPTS_KEY] = prompts
    return prompts


async def ask_title(
    query: CallbackQuery, context: Context, t: Translator, chat: Chat, entry: Entry
) -> tuple[str, bool]:
    """Start the rename conversation with a reply prompt in the chat the button is in.

    Returns:
        The answer to the button press and whether it is an alert (the command to use
        instead, where no prompt can be sent).
    """
    message = query.message
    if not isinstance(message, Message) or message.chat.type == TgChat.CHANNEL:
        # A prompt in a channel would be a post every subscriber reads.
        return t.gettext("Send /rename %(n)d followed by the new title.") % {"n": entry.n}, True
    user = query.from_user
    text = t.gettext(
        "✏️ %(user)s, reply to this message with the new title for %(n)d. <b>%(title)s</b> "
        "within 5 minutes (“-” goes back to the feed's own title). "
        "Or send /rename %(n)d followed by the new title."
    ) % {
        "user": mention_html(user.id, user.first_name),
        "n": entry.n,
        "title": esc(shorten_title(entry.title)),
    }
    try:
        prompt = await context.bot.send_message(
            message.chat.id, text, parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW,
            message_thread_id=message.message_thread_id if message.is_topic_message else None,
            reply_markup=ForceReply(selective=True, input_field_placeholder=entry.title[:64]),
        )  # fmt: skip
    except TelegramError as exc:
        logger.warning("could not send a rename prompt", extra={"error": str(exc)})
        return t.gettext("Send /rename %(n)d followed by the new title.") % {"n": entry.n}, True
    _prompts(context).start(message.chat.id, user.id, chat.chat_id, entry.url, prompt.id)
    return t.gettext("✏️ Reply to my message with the new title."), False


async def rename(update: Update, context: Context) -> None:
    """``/rename <n> <title>``: the chat's own title for feed ``n`` ("-" for the feed's)."""
    t = tr(update, context)
    target = await resolve_target(update, context, args_of(context))
    if target is None:
        return
    args = list(target.args)
    if len(args) < 2 or not args[0].isdigit():
        await reply(update, context, t.gettext(
            "Usage: /rename &lt;number from /list&gt; &lt;new title&gt;, e.g. /rename 2 Morning "
            "news (/rename 2 - goes back to the feed's own title)"
        ))  # fmt: skip
        return
    if not await may_change(update, context, target):
        await deny(update, context)
        return
    await register_target(update, context, target)
    entry = numbered(entries_of(context.storage, target.chat_id), int(args[0]))
    if entry is None:
        await reply_about(update, context, target, t.gettext(NO_SUCH_FEED))
        return
    answer = await _rename(context, t, target.chat_id, entry.url, args[1:])
    await reply_about(update, context, target, answer)


async def on_text(update: Update, context: Context) -> None:
    """A text message: the answer to a rename prompt, if this user has one open here."""
    message, user, chat = update.message, update.effective_user, update.effective_chat
    if message is None or user is None or chat is None or not message.text:
        return
    replied = message.reply_to_message
    pending = _prompts(context).take(
        chat.id, user.id, reply_to=replied.message_id if replied else None,
        private=chat.type == TgChat.PRIVATE,
    )  # fmt: skip
    if pending is None:
        return
    t = tr(update, context)
    reason = await may_manage(context, user.id, pending.target, t)
    if reason is not None:
        await reply(update, context, esc(reason))
        return
    await reply(update, context, await _rename(context, t, pending.target, pending.url,
                                               message.text.split()))  # fmt: skip


async def _rename(context: Context, t: Translator, chat_id: int, url: str, words: list[str]) -> str:
    """Set (or with "-" clear) the title; returns the answer for the user."""
    # Words are kept whole: zero-width joiners (👨‍👩‍👧) and direction marks are part of a
    # title; only control characters go.
    title = clean_text(" ".join(words)).strip()
    if not any(unicodedata.category(char)[0] not in "CZ" for char in title):
        title = ""  # only spaces, joiners or marks: nothing anyone could read
    if title == "-":
        title = ""
    if len(title) > MAX_CUSTOM_TITLE:
        return t.gettext("That title is too long: at most %(limit)d characters.") % {
            "limit": MAX_CUSTOM_TITLE
        }
    if not title and words != ["-"]:
        return t.gettext("That title is empty; send some text, or “-” for the feed's own title.")

    def apply(sub: Subscription) -> None:
        sub.title = title

    try:
        await context.storage.update_subscription(chat_id, url, apply)
    except KeyError:  # removed while the prompt was open
        return t.gettext(NO_SUCH_FEED)
    if title:
        return t.gettext("✏️ Renamed: <b>%(title)s</b>.") % {"title": esc(title)}
    state = context.storage.feed_state(url)
    shown = display_title("", state.title if state else "", url)
    return t.gettext("✏️ Back to the feed's own title: <b>%(title)s</b>.") % {"title": esc(shown)}


def register(app: Application) -> None:
    """Add /rename, and the prompt answers in their own group after every command handler."""
    app.add_handler(CommandHandler("rename", rename, filters=COMMAND_UPDATES))
    app.add_handler(
        MessageHandler(
            tg_filters.UpdateType.MESSAGE & tg_filters.TEXT & ~tg_filters.COMMAND, on_text
        ),
        group=RENAME_HANDLER_GROUP,
    )
