"""Chat lifecycle: the bot added or removed, and groups upgraded to supergroups."""

from __future__ import annotations

import logging

from telegram import ChatMember, Update
from telegram.ext import Application, ChatMemberHandler, MessageHandler, filters

from bot.handlers.common import Context, register_chat
from bot.jobs import on_chat_moved
from bot.services.delivery import deactivate_chat, migrate_chat

logger = logging.getLogger(__name__)
_GONE = {ChatMember.LEFT, ChatMember.BANNED}


async def my_membership(update: Update, context: Context) -> None:
    """Deactivate a chat that removed the bot; reactivate it (and its delivery) on return."""
    change = update.my_chat_member
    if change is None:
        return
    chat = change.chat
    if change.new_chat_member.status in _GONE:
        await deactivate_chat(
            chat.id,
            f"bot status {change.new_chat_member.status}",
            on_chat_moved(context.application),
        )
        return
    if change.old_chat_member.status in _GONE:
        # Registered as any chat is: DEFAULT_DELIVERY, a private chat its user's language.
        await register_chat(update, context)
        logger.info("chat active", extra={"event": "chat_active", "chat_id": chat.id})


async def migrated(update: Update, context: Context) -> None:
    """Move a group's settings to its new supergroup id."""
    message = update.effective_message
    if message is None or message.migrate_to_chat_id is None:
        return
    await migrate_chat(
        message.chat.id, message.migrate_to_chat_id, on_chat_moved(context.application)
    )


def register(app: Application) -> None:
    """Add this module's handlers."""
    app.add_handler(ChatMemberHandler(my_membership, ChatMemberHandler.MY_CHAT_MEMBER))
    app.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, migrated))
