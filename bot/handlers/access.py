"""Private mode: ``BOT_ALLOWED_USERS`` / ``BOT_ALLOWED_CHATS`` decide who the bot serves.

One :class:`~telegram.ext.TypeHandler` in handler group -1 sees every update before any
other handler. When private mode is on (either list non-empty) an update passes if its
user is an operator (``BOT_ADMIN_IDS``) or listed in ``BOT_ALLOWED_USERS``, or its chat is
listed in ``BOT_ALLOWED_CHATS``; anything else is stopped (``ApplicationHandlerStop``), so
no handler runs: no chat is registered, nothing is written. Both lists empty: everyone.

Someone refused gets one polite answer per :data:`REFUSAL_EVERY_S` per (chat, user) —
for commands, any message in a private chat, and button presses (those must be answered
anyway) — and silence otherwise, so a refused user cannot make the bot spam a group or
burn its send budget. What was refused is remembered in a bounded in-memory table
(:data:`REMEMBERED_MAX` entries, oldest dropped first); a restart forgets it, which at
worst costs one more refusal.

Let through regardless: the bot being removed from a chat (it only deactivates a known
chat) and a group's upgrade to a supergroup when the old group is already known (its
settings follow it). Deliveries are not gated here: the lists decide who may subscribe;
chats subscribed before the lists changed keep receiving until the bot leaves them.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any

from telegram import Chat, ChatMember, Update
from telegram.error import TelegramError
from telegram.ext import Application, ApplicationHandlerStop, TypeHandler

from bot.config import Settings
from bot.handlers.common import Context, reply, tr

logger = logging.getLogger(__name__)

ACCESS_GROUP = -1  # before every other handler (they use the default group 0)
REFUSAL_EVERY_S = 3600.0
REMEMBERED_MAX = 10_000
_GONE = {ChatMember.LEFT, ChatMember.BANNED}


def private_mode(settings: Settings) -> bool:
    """Whether the operator limited the bot to listed users and chats."""
    return bool(settings.allowed_users or settings.allowed_chats)


def is_allowed(settings: Settings, user_id: int | None, chat_id: int | None) -> bool:
    """The one rule: operators and listed users anywhere, anyone in a listed chat."""
    if not private_mode(settings):
        return True
    if user_id is not None and (user_id in settings.admin_ids or user_id in settings.allowed_users):
        return True
    return chat_id is not None and chat_id in settings.allowed_chats


class RefusalMemory:
    """Who was told "no" recently: at most one refusal per key per ``every_s`` seconds.

    Bounded: past ``max_size`` keys the oldest is forgotten. Only touched from the event
    loop (handlers run there), so no lock is needed.
    """

    def __init__(
        self,
        every_s: float = REFUSAL_EVERY_S,
        max_size: int = REMEMBERED_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._every_s = every_s
        self._max_size = max_size
        self._clock = clock
        self._told: OrderedDict[tuple[int, int], float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._told)

    def should_tell(self, key: tuple[int, int]) -> bool:
        """True (and remember it) when ``key`` was not refused in the last ``every_s``."""
        now = self._clock()
        last = self._told.get(key)
        if last is not None and now - last < self._every_s:
            return False
        self._told[key] = now
        self._told.move_to_end(key)
        while len(self._told) > self._max_size:
            self._told.popitem(last=False)
        return True


def _lets_through(update: Update, context: Context) -> bool:
    """Updates that only shrink or move what is already stored pass in any case."""
    change = update.my_chat_member
    if change is not None and change.new_chat_member.status in _GONE:
        return True
    message = update.message
    return (
        message is not None
        and message.migrate_to_chat_id is not None
        and context.storage.chat(message.chat.id) is not None
    )


def _wants_answer(update: Update) -> bool:
    """Whether a refused update deserves words: commands, private chats, button presses."""
    if update.callback_query is not None:
        return True
    message = update.message or update.channel_post
    if message is None:
        return False
    if message.chat.type == Chat.PRIVATE:
        return True
    return bool(message.text and message.text.startswith("/"))


def make_gate(memory: RefusalMemory) -> Callable[[Update, Context], Coroutine[Any, Any, None]]:
    """The group -1 callback: stop updates private mode refuses, answering once."""

    async def gate(update: Update, context: Context) -> None:
        settings = context.services.settings
        user, chat = update.effective_user, update.effective_chat
        user_id = user.id if user is not None else None
        chat_id = chat.id if chat is not None else None
        if is_allowed(settings, user_id, chat_id) or _lets_through(update, context):
            return
        logger.info(
            "update refused (private mode)",
            extra={"event": "access_refused", "chat_id": chat_id, "user_id": user_id},
        )
        if _wants_answer(update) and memory.should_tell((chat_id or 0, user_id or 0)):
            await _refuse(update, context)
        elif update.callback_query is not None:
            await _answer_callback(update, context, "")
        raise ApplicationHandlerStop

    return gate


async def _refuse(update: Update, context: Context) -> None:
    text = tr(update, context).gettext(
        "Sorry, this bot is private: its operator has not given you access."
    )
    if update.callback_query is not None:
        await _answer_callback(update, context, text)
        return
    await reply(update, context, text)


async def _answer_callback(update: Update, context: Context, text: str) -> None:
    query = update.callback_query
    if query is None:
        return
    try:
        await query.answer(text or None)
    except TelegramError as exc:  # a stale query: nothing to tell anyone
        logger.info("could not answer a refused button", extra={"error": str(exc)})


def register(app: Application) -> None:
    """Add the gate before every other handler (a no-op pass when private mode is off)."""
    memory = RefusalMemory()
    app.add_handler(TypeHandler(Update, make_gate(memory)), group=ACCESS_GROUP)
