"""/list with buttons: a chat's subscriptions a page at a time, managed one by one.

``/list`` shows a page of subscriptions (:mod:`bot.listing`) with four buttons each (mute or
unmute, filters, rename, remove) and page buttons. Every press is checked three times:
the data must carry the bot's signature (:mod:`bot.services.buttons`), the presser must be
allowed to manage the chat it names (:func:`bot.handlers.rights.may_manage`, asked on every
press), and the subscription must still be in that chat's list (looked up by key, wherever
it is now). Like the other commands, ``/list`` acts on another chat when a private chat
names it first (``/list @channel``): the buttons then live in the private chat and act on
that chat. Whatever happens, the press is answered (``answerCallbackQuery``), and a stale
button shows the list as it is now.

The rename button starts the conversation of :mod:`bot.handlers.rename`; ``/filter`` is in
:mod:`bot.handlers.filters` and shares this module's button signer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from telegram import CallbackQuery, InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import Application, CallbackQueryHandler, CommandHandler

from bot.formatting import shorten
from bot.handlers.common import (
    COMMAND_UPDATES,
    Context,
    headed,
    reply_about,
    target_chat,
    tr,
)
from bot.handlers.rename import ask_title
from bot.handlers.rights import chat_label, may_manage
from bot.i18n import N_, Translator
from bot.listing import (
    Entry,
    entries_of,
    find,
    next_format,
    page_count,
    render_confirm_remove,
    render_filters,
    render_page,
)
from bot.models import NO_FILTERS, Chat, Subscription
from bot.services.buttons import PATTERN, BadButton, ButtonData, ButtonSigner
from bot.services.delivery import NO_PREVIEW

logger = logging.getLogger(__name__)

TOAST_TITLE_CHARS = 40  # titles in callback answers (Telegram shows 200 characters)
_SIGNER_KEY = "button_signer"  # in bot_data
BUTTON_INVALID = N_("This button is not valid any more. Send /list for a fresh list.")


ANSWER_CHARS = 180  # under Telegram's 200 for callback answers, whatever emoji they hold


def button_signer(context: Context) -> ButtonSigner:
    """The signer of every /list button, made from the bot token once per application."""
    signer = context.application.bot_data.get(_SIGNER_KEY)
    if not isinstance(signer, ButtonSigner):
        signer = ButtonSigner(context.bot.token)
        context.application.bot_data[_SIGNER_KEY] = signer
    return signer


# --------------------------------------------------------------------------- /list


async def list_feeds(update: Update, context: Context) -> None:
    """Show the chat's feeds a page at a time, with buttons; ``/list 3`` opens page 3."""
    t = tr(update, context)
    found = await target_chat(update, context)
    if found is None:
        return
    target, chat = found
    args = target.args
    page = int(args[0]) - 1 if len(args) == 1 and args[0].isdigit() else 0
    entries = entries_of(context.storage, chat.chat_id)
    text, markup = render_page(t, button_signer(context), chat, entries, page)
    if not entries and context.services.settings.default_feeds:
        text += "\n" + t.gettext("(/news shows the bot's default feeds until you add your own.)")
    await reply_about(update, context, target, text, reply_markup=markup)


# --------------------------------------------------------------------------- buttons


async def on_button(update: Update, context: Context) -> None:
    """A /list button was pressed: check it, act, answer (always), show the result."""
    query = update.callback_query
    if query is None:
        return
    answer, alert = "", False
    try:
        answer, alert = await _press(query, context, tr(update, context))
    finally:
        try:
            # Telegram refuses answers over 200 characters (a long chat title in a refusal).
            await query.answer(shorten(answer, ANSWER_CHARS) or None, show_alert=alert)
        except TelegramError as exc:  # too late (15 s), or answered elsewhere
            logger.info("could not answer a button press", extra={"error": str(exc)})


async def _press(query: CallbackQuery, context: Context, t: Translator) -> tuple[str, bool]:
    """Handle one press; returns the answer text and whether it is an alert."""
    try:
        data = button_signer(context).decode(query.data or "")
    except BadButton as exc:
        logger.warning(
            "button with bad data",
            extra={"event": "button_rejected", "user_id": query.from_user.id, "reason": str(exc)},
        )
        return t.gettext(BUTTON_INVALID), True
    storage = context.storage
    chat = storage.chat(data.chat_id)
    if chat is None:
        return t.gettext(BUTTON_INVALID), True
    reason = await may_manage(context, query.from_user.id, chat.chat_id, t, chat_type=chat.type)
    if reason is not None:
        return reason, True  # plain text, as answers are
    if data.action == "page":
        await _show_page(query, context, t, chat, data.page)
        if data.page >= page_count(len(storage.feed_urls(chat.chat_id))):
            return t.gettext("That page is gone: the list is shorter now."), False
        return "", False
    entry = find(entries_of(storage, chat.chat_id), data.key)
    if entry is None:
        await _show_page(query, context, t, chat, data.page)
        return t.gettext("That feed is no longer in this chat's list; here is the list now."), False
    return await _act(query, context, t, data=data, chat=chat, entry=entry)


async def _act(
    query: CallbackQuery,
    context: Context,
    t: Translator,
    *,
    data: ButtonData,
    chat: Chat,
    entry: Entry,
) -> tuple[str, bool]:
    storage, signer = context.storage, button_signer(context)
    title = shorten(entry.title, TOAST_TITLE_CHARS)  # answers are plain text, not HTML
    if data.action == "mute":
        muted = await _set_muted(context, chat.chat_id, entry.url, not entry.muted)
        await _show_page(query, context, t, chat, data.page)
        if muted:
            toast = t.gettext("🔇 Muted %(title)s: its items are not posted.")
        else:
            toast = t.gettext("🔔 %(title)s posts new items again.")
        return toast % {"title": title}, False
    if data.action == "filters":
        await _edit(query, chat, *render_filters(t, signer, chat, entry, data.page))
        return "", False
    if data.action == "clear":
        await storage.update_subscription(chat.chat_id, entry.url, _setter("filters", NO_FILTERS))
        cleared = find(entries_of(storage, chat.chat_id), data.key) or entry
        await _edit(query, chat, *render_filters(t, signer, chat, cleared, data.page))
        return t.gettext("🧹 Filters of %(title)s cleared.") % {"title": title}, False
    if data.action == "format":
        fmt = next_format(entry.format)
        await storage.update_subscription(chat.chat_id, entry.url, _setter("format", fmt))
        await _show_page(query, context, t, chat, data.page)
        if fmt is None:
            toast = t.gettext("📝 %(title)s follows the chat's post format (%(format)s).")
            return toast % {"title": title, "format": chat.format}, False
        return t.gettext("📝 %(title)s posts as %(format)s.") % {
            "title": title,
            "format": fmt,
        }, False
    if data.action == "remove":
        await _edit(query, chat, *render_confirm_remove(t, signer, chat, entry, data.page))
        return "", False
    if data.action == "confirm":
        await storage.unsubscribe(chat.chat_id, entry.url)
        await _show_page(query, context, t, chat, data.page)
        return t.gettext("🗑 Removed %(title)s.") % {"title": title}, False
    return await ask_title(query, context, t, chat, entry)


async def _show_page(
    query: CallbackQuery, context: Context, t: Translator, chat: Chat, page: int
) -> None:
    """Show the list as it is now on the message, at ``page`` (clamped)."""
    entries = entries_of(context.storage, chat.chat_id)
    await _edit(query, chat, *render_page(t, button_signer(context), chat, entries, page))


async def _edit(
    query: CallbackQuery, chat: Chat, text: str, markup: InlineKeyboardMarkup | None
) -> None:
    """Replace the list message; unchanged content and vanished messages are not errors.

    A list of another chat (shown in a private chat) keeps naming that chat first, as
    :func:`~bot.handlers.common.reply_about` did when it was sent.
    """
    message = query.message
    if not isinstance(message, Message):
        return  # too old to edit (Telegram no longer shows it to the bot)
    if message.chat.id != chat.chat_id:
        text = headed(chat_label(chat.chat_id, chat.title), text)
    try:
        await query.edit_message_text(
            text, parse_mode=ParseMode.HTML, reply_markup=markup, link_preview_options=NO_PREVIEW
        )
    except BadRequest as exc:
        if "not modified" not in exc.message.lower():
            logger.warning("could not update a list message", extra={"error": str(exc)})
    except TelegramError as exc:
        logger.warning("could not update a list message", extra={"error": str(exc)})


def _setter(
    field: Literal["muted", "filters", "format"], value: object
) -> Callable[[Subscription], None]:
    def apply(sub: Subscription) -> None:
        setattr(sub, field, value)

    return apply


async def _set_muted(context: Context, chat_id: int, url: str, muted: bool) -> bool:
    """Mute or unmute; unmuting skips what was logged meanwhile (never sent later)."""
    storage = context.storage
    await storage.update_subscription(chat_id, url, _setter("muted", muted))
    if not muted:
        # A digest chat may not have been delivered while the feed was muted: those items
        # were muted items, and stay unsent.
        await storage.advance(chat_id, {url: storage.feed_head(url)})
    return muted


# --------------------------------------------------------------------------- wiring


def register(app: Application) -> None:
    """Add this module's handlers: /list and the presses of its buttons."""
    app.add_handler(CommandHandler("list", list_feeds, filters=COMMAND_UPDATES))
    app.add_handler(CallbackQueryHandler(on_button, pattern=PATTERN))
