"""Forum topics in commands: ``/add`` places a feed in the topic it was sent in.

The rules themselves (what a closed or deleted topic means for delivery) live in
:mod:`bot.services.topics`; this module turns an update into a topic and answers.
"""

from __future__ import annotations

import logging
from typing import Any

from telegram import Update
from telegram.ext import Application, MessageHandler, filters

from bot.formatting import esc
from bot.handlers.common import Context, thread_of, tr
from bot.models import display_title
from bot.services.topics import place, topic_link, topic_options

logger = logging.getLogger(__name__)


def options_for(update: Update, chat_id: int) -> dict[str, Any]:
    """The options of a subscription this update makes for ``chat_id``: its topic, if any.

    Only a command sent inside a topic of ``chat_id`` itself places the subscription there;
    a command about another chat (sent from a private chat) posts to that chat's General.
    """
    chat = update.effective_chat
    if chat is None or chat.id != chat_id:
        return {}
    return topic_options(thread_of(update))


async def move_here(update: Update, context: Context, chat_id: int, url: str) -> str | None:
    """``/add`` of a feed the chat already follows elsewhere: move it to where ``/add`` was sent.

    A chat follows a feed once, so the topic an admin last asked for wins (nothing is sent
    twice, and the cursor keeps its place). Returns the answer when it moved, None when
    the feed already posts here (or the command came from another chat).
    """
    chat = update.effective_chat
    if chat is None or chat.id != chat_id:
        return None
    here = thread_of(update)
    try:
        placement = await place(context.storage, chat_id, url, here)
    except KeyError:
        return None  # removed meanwhile
    if not placement.moved:
        return None
    _ = tr(update, context).gettext
    sub = context.storage.subscription(chat_id, url)
    state = context.storage.feed_state(url)
    title = display_title(sub.title if sub else "", state.title if state else "", url)
    link = topic_link(chat_id, placement.previous) if placement.previous is not None else None
    if placement.previous is None:
        before = _("General")
    elif link is not None:
        before = f'<a href="{esc(link)}">{esc(_("its previous topic"))}</a>'
    else:
        before = _("its previous topic")
    values = {"feed": f"<b>{esc(title)}</b>", "before": before}
    if here is None:
        return _("➡️ Moved %(feed)s here to General from %(before)s.") % values
    return _("➡️ Moved %(feed)s to this topic from %(before)s.") % values


async def topic_reopened(update: Update, context: Context) -> None:
    """A topic was reopened: what waited for it is delivered now, not at the next retry."""
    message = update.effective_message
    if message is None:
        return
    context.services.dispatcher.topic_reopened(message.chat.id, thread_of(update))


def register(app: Application) -> None:
    """Add this module's handlers."""
    app.add_handler(MessageHandler(filters.StatusUpdate.FORUM_TOPIC_REOPENED, topic_reopened))
