"""Who may manage a chat through the bot, and whether the bot can post there: one rule each.

The rule (checked with ``getChatMember`` on every action, never cached, so a demoted admin
loses control at once):

- a private chat is managed by its user;
- a **channel** by its creator and by administrators who may post messages
  (``can_post_messages``) or change the channel's info (``can_change_info``), as issue 9
  asks: managing the bot decides what is posted in the channel's name, which is for those
  who may post, or who may change what the channel is; an admin who may only edit or
  delete others' posts, or only invite people, may not;
- a **group or supergroup** by its creator and its administrators (every administrator
  has ``can_manage_chat``; anyone not restricted may post in a group anyway);
- operators (``BOT_ADMIN_IDS``) manage every chat.

The bot itself must be able to post: in a channel as an administrator with
``can_post_messages`` (``can_change_info`` alone does not let it post); in a group as a
member or administrator not restricted from sending.

Refusals are plain text (callers escape them for HTML replies; ``answerCallbackQuery``
takes plain text) and say exactly what is missing. Telegram's errors map onto the same
answers: a 400 "chat not found" means the bot cannot see the chat, a 403 that it was
removed, "member list is inaccessible" that it is not a channel administrator, and timeouts
ask to try again — never a bare "something went wrong".
"""

from __future__ import annotations

import logging

from telegram import Chat, ChatMember, ChatMemberAdministrator, ChatMemberRestricted
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from bot.context import BotContext
from bot.i18n import Translator, translator

logger = logging.getLogger(__name__)


def chat_label(chat_id: int, title: str = "", username: str | None = None) -> str:
    """How answers name a chat: ``@username`` when public, else its title, else its id."""
    if username:
        return f"@{username}"
    return title or str(chat_id)


def user_refusal(member: ChatMember, chat_type: str, label: str, t: Translator) -> str | None:
    """Why ``member`` may not manage a chat of ``chat_type`` (None: they may)."""
    if member.status == ChatMember.OWNER:
        return None
    if isinstance(member, ChatMemberAdministrator):
        if chat_type != Chat.CHANNEL or member.can_post_messages or member.can_change_info:
            return None
        return t.gettext(
            "You are an administrator of %(chat)s but may neither post messages nor change "
            "its info, so you can't choose what I post in it."
        ) % {"chat": label}
    return t.gettext("You are not an administrator of %(chat)s.") % {"chat": label}


def bot_refusal(member: ChatMember, chat_type: str, label: str, t: Translator) -> str | None:
    """Why the bot (as ``member``) cannot post in a chat of ``chat_type`` (None: it can)."""
    if chat_type == Chat.CHANNEL:
        if isinstance(member, ChatMemberAdministrator):
            if member.can_post_messages:
                return None
            return t.gettext(
                "I'm an administrator of %(chat)s but may not post messages; turn on "
                "“Post messages” for me in its administrator settings."
            ) % {"chat": label}
        return not_channel_admin(label, t)
    if isinstance(member, ChatMemberRestricted):
        if member.is_member and member.can_send_messages:
            return None
        if member.is_member:
            return t.gettext(
                "I'm not allowed to send messages in %(chat)s; lift my restrictions first."
            ) % {"chat": label}
        return not_member(label, t)
    if member.status in (ChatMember.LEFT, ChatMember.BANNED):
        return not_member(label, t)
    return None


def not_channel_admin(label: str, t: Translator) -> str:
    """The bot is not an administrator of a channel with the right to post."""
    return t.gettext(
        "I'm not an administrator of %(chat)s with permission to post; add me as an admin first."
    ) % {"chat": label}


def not_member(label: str, t: Translator) -> str:
    """The bot is not in a group (never added, removed, or banned)."""
    return t.gettext("I'm not a member of %(chat)s; add me to it first.") % {"chat": label}


def not_found(label: str, t: Translator) -> str:
    """Telegram does not show the bot this chat."""
    return t.gettext("I can't find %(chat)s — is it public, and am I a member?") % {"chat": label}


def error_refusal(exc: TelegramError, label: str, chat_type: str | None, t: Translator) -> str:
    """The answer for a Telegram error met while checking ``label`` (never "went wrong").

    Args:
        exc: what ``getChat``/``getChatMember`` raised.
        label: how to name the chat.
        chat_type: the chat's type when known (a 403 means "add me as an admin" for a
            channel, "add me" for a group).
        t: the translator of the person asking.
    """
    text = str(exc).lower()
    if isinstance(exc, Forbidden):
        return not_channel_admin(label, t) if chat_type == Chat.CHANNEL else not_member(label, t)
    if isinstance(exc, BadRequest):
        if "member list is inaccessible" in text:
            return not_channel_admin(label, t)
        if "chat not found" in text or "chat_id" in text or "username" in text:
            return not_found(label, t)
        if "user not found" in text or "participant" in text:
            return t.gettext("You are not an administrator of %(chat)s.") % {"chat": label}
        return t.gettext("Telegram would not let me check %(chat)s (%(reason)s).") % {
            "chat": label,
            "reason": str(exc),
        }
    if isinstance(exc, NetworkError | RetryAfter):  # TimedOut is a NetworkError
        return t.gettext(
            "Telegram did not answer while I checked %(chat)s; please try again in a minute."
        ) % {"chat": label}
    return t.gettext("Telegram would not let me check %(chat)s (%(reason)s).") % {
        "chat": label,
        "reason": str(exc),
    }


async def may_manage(
    context: BotContext,
    user_id: int,
    chat_id: int,
    t: Translator | None = None,
    *,
    chat_type: str | None = None,
    label: str | None = None,
) -> str | None:
    """Whether ``user_id`` may manage ``chat_id`` now: None if so, else why not (plain text).

    The one definition of the rule (see the module docstring): commands, the ``/add @chat``
    resolver and inline-button callbacks all ask here. Costs one ``getChatMember`` call for
    groups and channels (plus a ``getChat`` when the chat is unknown and no type is given);
    nothing for operators and private chats.

    Args:
        context: the handler's context (bot, settings, storage).
        user_id: who asks.
        chat_id: the chat to be changed.
        t: the asker's translator (English when None).
        chat_type: the chat's type when the caller knows it (saves a lookup).
        label: how to name the chat in the answer (default: from storage or Telegram).
    """
    t = t or translator("en")
    if user_id in context.services.settings.admin_ids:
        return None
    stored = context.storage.chat(chat_id)
    chat_type = chat_type or (stored.type if stored is not None else None)
    if label is None and stored is not None:
        label = chat_label(chat_id, stored.title)
    if chat_type is None and chat_id > 0:
        chat_type = Chat.PRIVATE
    if chat_type is None:
        try:
            info = await context.bot.get_chat(chat_id)
        except TelegramError as exc:
            return error_refusal(exc, label or str(chat_id), None, t)
        chat_type, label = info.type, label or chat_label(chat_id, info.title or "", info.username)
    label = label or str(chat_id)
    if chat_type == Chat.PRIVATE:
        return None if chat_id == user_id else t.gettext("That is someone else's private chat.")
    try:
        member = await context.bot.get_chat_member(chat_id, user_id)
    except TelegramError as exc:
        logger.info(
            "admin check failed",
            extra={"event": "rights_check_failed", "chat_id": chat_id, "error": str(exc)},
        )
        return error_refusal(exc, label, chat_type, t)
    return user_refusal(member, chat_type, label, t)


async def bot_can_post(
    context: BotContext, chat_id: int, chat_type: str, label: str, t: Translator
) -> str | None:
    """Whether the bot can post in ``chat_id``: None if so, else what to fix (plain text)."""
    if chat_type == Chat.PRIVATE:
        return None
    try:
        member = await context.bot.get_chat_member(chat_id, context.bot.id)
    except TelegramError as exc:
        return error_refusal(exc, label, chat_type, t)
    return bot_refusal(member, chat_type, label, t)
