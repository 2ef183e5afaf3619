"""Sending messages, and what to do when Telegram says a chat is gone or has moved.

Handlers and jobs both send through here so that the rules live in one place:

* 403 (blocked, kicked, chat deleted): the chat is marked inactive and its digest stops.
* "group chat was upgraded to a supergroup": settings move to the new id and the message is
  sent there once.
* 429 is retried by PTB's ``AIORateLimiter`` before it ever reaches us; nothing else is
  retried, so a reply is never sent twice.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from telegram import Bot, LinkPreviewOptions, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, TelegramError

from bot.models import Channel
from bot.services.storage import get_storage_service

logger = logging.getLogger(__name__)

NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
# Called after a chat id changed (migration) or a chat went away (new_id None), so the
# scheduler can move or cancel the chat's digest job.
ChatMoved = Callable[[int, int | None], Awaitable[None]]


async def send_html(
    bot: Bot,
    chat_id: int,
    texts: Sequence[str],
    *,
    reply_to: int | None = None,
    on_chat_moved: ChatMoved | None = None,
) -> int:
    """Send each text as an HTML message; return how many were delivered.

    Never raises for a chat-level problem (gone, moved, bad request): those are handled and
    logged here, because a user's chat going away must not crash a job or a handler.
    """
    sent = 0
    target = chat_id
    for n, text in enumerate(texts):
        reply = (
            ReplyParameters(reply_to, allow_sending_without_reply=True)
            if reply_to is not None and n == 0
            else None
        )
        try:
            try:
                await bot.send_message(
                    target,
                    text,
                    parse_mode=ParseMode.HTML,
                    link_preview_options=NO_PREVIEW,
                    reply_parameters=reply,
                )
            except ChatMigrated as moved:
                new_id = int(moved.new_chat_id)
                await migrate_chat(target, new_id, on_chat_moved)
                target = new_id
                await bot.send_message(
                    target, text, parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW
                )
            sent += 1
        except Forbidden as exc:
            await deactivate_chat(target, str(exc), on_chat_moved)
            break
        except BadRequest as exc:
            logger.error(
                "Telegram refused a message",
                extra={"event": "send_rejected", "chat_id": target, "error": str(exc)},
            )
        except TelegramError as exc:
            logger.warning(
                "sending failed",
                extra={"event": "send_failed", "chat_id": target, "error": str(exc)},
            )
            break
    return sent


async def deactivate_chat(chat_id: int, why: str, on_chat_moved: ChatMoved | None) -> None:
    """Mark a chat inactive (bot blocked or removed) so digests stop; feeds are kept."""
    storage = get_storage_service()

    def off(channel: Channel) -> None:
        channel.active = False

    with contextlib.suppress(KeyError):  # a chat we never stored: nothing to turn off
        await storage.update_channel(chat_id, off)
    logger.info(
        "chat deactivated", extra={"event": "chat_inactive", "chat_id": chat_id, "reason": why}
    )
    if on_chat_moved is not None:
        await on_chat_moved(chat_id, None)


async def migrate_chat(old_id: int, new_id: int, on_chat_moved: ChatMoved | None) -> None:
    """Move a group's feeds and settings to its new supergroup id."""
    moved = await get_storage_service().migrate_channel(old_id, new_id)
    logger.info(
        "chat migrated",
        extra={
            "event": "chat_migrated",
            "chat_id": old_id,
            "new_chat_id": new_id,
            "had_settings": moved,
        },
    )
    if on_chat_moved is not None:
        await on_chat_moved(old_id, new_id)
