"""Small helpers every handler module shares: replying, registering chats, checking rights."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from telegram import Chat, Update
from telegram.constants import ChatMemberStatus
from telegram.error import TelegramError
from telegram.ext import filters

from bot.context import BotContext
from bot.i18n import Translator, pick_language, translator
from bot.jobs import on_chat_moved
from bot.models import Chat as StoredChat
from bot.services.delivery import send_html

logger = logging.getLogger(__name__)

Context = BotContext
# Commands arrive as messages in private chats and groups, and as channel posts in channels.
COMMAND_UPDATES = filters.UpdateType.MESSAGE | filters.UpdateType.CHANNEL_POST
_ADMIN_STATUSES = {ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR}


async def reply(update: Update, context: Context, texts: str | Sequence[str]) -> int:
    """Answer in the chat (and forum topic) the command came from, quoting it in groups."""
    chat, message = update.effective_chat, update.effective_message
    if chat is None:
        return 0
    quote = message.message_id if message and chat.type in (Chat.GROUP, Chat.SUPERGROUP) else None
    return await send_html(
        context.bot,
        chat.id,
        [texts] if isinstance(texts, str) else texts,
        reply_to=quote,
        on_chat_moved=on_chat_moved(context.application),
        thread_id=thread_of(update),
    )


def thread_of(update: Update) -> int | None:
    """The forum topic the update's message was sent in (None: General, or no topics).

    Only ``is_topic_message`` counts: in General, and in chats without topics, a reply
    carries the ``message_thread_id`` of its reply thread, which is no topic, and Telegram
    refuses it as a ``message_thread_id`` ("message thread not found").
    """
    message = update.effective_message
    if message is None or not message.is_topic_message:
        return None
    return message.message_thread_id


async def register_chat(update: Update, context: Context) -> StoredChat | None:
    """Make sure the chat is known (and active) before acting for it.

    Most updates come from chats already stored as they are: those take a plain in-memory
    read, which never waits for the disk, keeping ``/news`` off its critical path. A new chat
    starts with the operator's ``DEFAULT_DELIVERY``.
    """
    chat = update.effective_chat
    if chat is None:
        return None
    title = chat.title or chat.full_name or chat.username or ""
    storage = context.storage
    known = storage.chat(chat.id)
    if known and known.active and known.type == chat.type and title in ("", known.title):
        return known
    services = context.services
    stored = await storage.ensure_chat(
        chat.id, chat.type, title, delivery=services.settings.default_delivery
    )
    if stored.delivery.is_digest and services.digests_service is not None:
        await services.digests.update(stored)
    return stored


def tr(update: Update, context: Context) -> Translator:
    """The translator for answering this update: the chat's /language, else the user's."""
    chat, user = update.effective_chat, update.effective_user
    stored = context.storage.chat(chat.id) if chat is not None else None
    chosen = stored.language if stored is not None else None
    return translator(pick_language(chosen, user.language_code if user else None))


def requester_id(update: Update) -> int:
    """Who to charge a request to: the user, or the chat itself for anonymous/channel posts."""
    if update.effective_user is not None:
        return update.effective_user.id
    chat = update.effective_chat
    return chat.id if chat else 0


def is_operator(update: Update, context: Context) -> bool:
    """Whether the sender is one of ``BOT_ADMIN_IDS``."""
    user = update.effective_user
    return user is not None and user.id in context.services.settings.admin_ids


async def can_manage(update: Update, context: Context) -> bool:
    """Whether the sender may change this chat's feeds and digest.

    Private chat: yes. Channel: yes (only its admins can post). Group: chat administrators,
    anonymous admins posting as the group, and operators.
    """
    chat, message = update.effective_chat, update.effective_message
    if chat is None:
        return False
    if chat.type in (Chat.PRIVATE, Chat.CHANNEL) or is_operator(update, context):
        return True
    if message is not None and message.sender_chat is not None:
        return message.sender_chat.id == chat.id  # anonymous group admin
    user = update.effective_user
    if user is None:
        return False
    try:
        member = await context.bot.get_chat_member(chat.id, user.id)
    except TelegramError as exc:
        logger.warning(
            "could not check admin rights", extra={"chat_id": chat.id, "error": str(exc)}
        )
        return False
    return member.status in _ADMIN_STATUSES


async def deny(update: Update, context: Context) -> None:
    """The polite no for non-admins in groups."""
    await reply(
        update, context, "Only this chat's administrators can change its feeds and delivery."
    )


def args_of(context: Context) -> list[str]:
    """Command arguments (PTB gives ``None`` for non-command handlers)."""
    args: list[str] | None = context.args
    return list(args or [])


def chat_id_of(update: Update) -> int:
    """The chat id; handlers are only registered for updates that have a chat."""
    chat = update.effective_chat
    if chat is None:
        raise RuntimeError("update without a chat")
    return chat.id
