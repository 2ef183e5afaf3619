"""Small helpers every handler module shares: replying, registering chats, checking rights.

Commands act on the chat they are sent in, or — sent in a private chat with a first
argument such as ``@channel`` or ``-1001234567890`` — on that chat: :func:`resolve_target`
is the one place that decides which, and checks rights for the remote case (see
:mod:`bot.handlers.rights` for the rule). A command that changes a chat uses it like this::

    target = await resolve_target(update, context, args_of(context))
    if target is None:  # the sender was told what is missing
        return None
    if not await may_change(update, context, target):
        return await deny(update, context)
    chat = await register_target(update, context, target)
    ...  # act on target.chat_id with target.args
    await reply_about(update, context, target, text)  # names the chat when remote

A command that shows the chat's state first takes ``target, chat`` from :func:`target_chat`
(resolve, then register) and asks :func:`may_change` only before a change.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from telegram import Chat, ForceReply, InlineKeyboardMarkup, Update
from telegram.error import TelegramError
from telegram.ext import filters

from bot.context import BotContext
from bot.formatting import esc
from bot.handlers.rights import bot_can_post, chat_label, error_refusal, may_manage
from bot.i18n import Translator, pick_language, supported_language, translator
from bot.jobs import on_chat_moved
from bot.models import Chat as StoredChat
from bot.services.delivery import send_html

logger = logging.getLogger(__name__)

Context = BotContext
# Commands arrive as messages in private chats and groups, and as channel posts in channels.
COMMAND_UPDATES = filters.UpdateType.MESSAGE | filters.UpdateType.CHANNEL_POST
# A first argument naming another chat: a public @username or a numeric group/channel id
# (always negative). Anything else — "2", a URL, "every" — is an ordinary argument.
TARGET_RE = re.compile(r"^(?:@[A-Za-z0-9_]{1,32}|-\d{1,20})$")


@dataclass(frozen=True, slots=True)
class Target:
    """The chat a command acts on, and the arguments left after naming it.

    ``remote`` is True when a private chat named another chat: the rights were checked
    (user and bot) by :func:`resolve_target`, the chat is registered, and answers still go
    to the private chat.
    """

    chat_id: int
    type: str
    title: str
    remote: bool
    args: tuple[str, ...] = ()
    username: str | None = None

    @property
    def label(self) -> str:
        """How answers name the chat (``@username``, else its title)."""
        return chat_label(self.chat_id, self.title, self.username)


async def reply(
    update: Update,
    context: Context,
    texts: str | Sequence[str],
    *,
    reply_markup: InlineKeyboardMarkup | ForceReply | None = None,
) -> int:
    """Answer in the chat (and forum topic) the command came from, quoting it in groups.

    ``reply_markup`` (buttons, a reply prompt) goes on the last message.
    """
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
        reply_markup=reply_markup,
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
    starts with the operator's ``DEFAULT_DELIVERY``. A private chat *is* its user, so it
    records the user's Telegram language (when the bot speaks it) as the chat's language:
    posts and digests, which have no sender, come in it too. Groups and channels keep none
    (English posts, replies in each user's language) until ``/language``.
    """
    chat = update.effective_chat
    if chat is None:
        return None
    title = stored_title(chat)
    return await store_chat(context, chat.id, chat.type, title, language=_private_language(update))


def stored_title(chat: Chat) -> str:
    """The title a chat is stored under: a group's title, a person's name, else its @name."""
    return chat.title or chat.full_name or chat.username or ""


async def store_chat(
    context: Context, chat_id: int, chat_type: str, title: str, *, language: str | None = None
) -> StoredChat:
    """Register (or refresh and re-activate) a chat; no write when it is stored as it is.

    ``language`` is recorded when the chat has none yet (a private chat's user's language).
    """
    storage = context.storage
    known = storage.chat(chat_id)
    if (
        known
        and known.active
        and known.type == chat_type
        and title in ("", known.title)
        and (known.language is not None or language is None)
    ):
        return known
    services = context.services
    stored = await storage.ensure_chat(
        chat_id, chat_type, title, delivery=services.settings.default_delivery, language=language
    )
    if stored.delivery.is_digest and services.digests_service is not None:
        await services.digests.update(stored)
    return stored


def _private_language(update: Update) -> str | None:
    """The language a private chat records: its user's, if supported (None elsewhere)."""
    chat, user = update.effective_chat, update.effective_user
    if chat is None or chat.type != Chat.PRIVATE or user is None:
        return None
    return supported_language(user.language_code)


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
    """Whether the sender may change the chat the command was sent in.

    Private chat: yes. Channel: yes (a channel post comes from an admin who may post).
    Group: anonymous admins posting as the group, and whoever :func:`may_manage` allows
    (administrators, operators).
    """
    chat, message = update.effective_chat, update.effective_message
    if chat is None:
        return False
    if chat.type in (Chat.PRIVATE, Chat.CHANNEL):
        return True
    if message is not None and message.sender_chat is not None:
        return message.sender_chat.id == chat.id  # anonymous group admin
    user = update.effective_user
    if user is None:
        return False
    return await may_manage(context, user.id, chat.id, chat_type=chat.type) is None


async def may_change(update: Update, context: Context, target: Target) -> bool:
    """Whether the sender may change ``target`` (a remote target was checked already)."""
    return target.remote or await can_manage(update, context)


async def deny(update: Update, context: Context) -> None:
    """The polite no for non-admins in groups."""
    _ = tr(update, context).gettext
    await reply(
        update, context, _("Only this chat's administrators can change its feeds and delivery.")
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


async def resolve_target(update: Update, context: Context, args: Sequence[str]) -> Target | None:
    """The chat a command acts on, with the arguments after the target (if any).

    Without a target argument: the chat the command was sent in, all arguments left (the
    caller checks rights for changes with :func:`may_change`, as before). With one
    (``@name`` or a negative id, see :data:`TARGET_RE`): only from a private chat; the
    chat is looked up (``getChat``), the bot must be able to post there and the sender must
    manage it (:func:`may_manage`) — checked now, on every command. On success the chat is
    registered with its real type and title and the sender becomes one of its
    ``managers`` (``/channels``).

    Returns:
        The target, or None after answering the sender with what is missing.
    """
    chat = update.effective_chat
    if chat is None:
        return None
    words = tuple(args)
    if not words or not TARGET_RE.match(words[0]):
        return Target(chat.id, chat.type, stored_title(chat), False, words, chat.username)
    t = tr(update, context)
    if chat.type != Chat.PRIVATE or update.effective_user is None:
        await reply(
            update,
            context,
            esc(
                t.gettext(
                    "To manage another chat, send the command to me in a private chat; "
                    "here, commands act on this chat."
                )
            ),
        )
        return None
    user_id = update.effective_user.id
    token = words[0]
    refusal, target = await _check_remote(context, user_id, token, t)
    if target is None:
        await reply(update, context, esc(refusal or ""))
        return None
    await store_chat(context, target.chat_id, target.type, target.title)
    await _set_manager(context, target.chat_id, user_id, True)
    return Target(target.chat_id, target.type, target.title, True, words[1:], target.username)


async def _check_remote(
    context: Context, user_id: int, token: str, t: Translator
) -> tuple[str | None, Target | None]:
    """Look ``token`` up and check both rights: ``(None, target)`` or ``(refusal, None)``."""
    bot = context.bot
    try:
        info = await bot.get_chat(token if token.startswith("@") else int(token))
    except TelegramError as exc:
        logger.info("target lookup failed", extra={"event": "target_not_found", "error": str(exc)})
        return error_refusal(exc, token, None, t), None
    label = chat_label(info.id, info.title or "", info.username)
    if info.type == Chat.PRIVATE:
        return t.gettext("%(chat)s is a person, not a group or channel.") % {"chat": label}, None
    refusal = await bot_can_post(context, info.id, info.type, label, t)
    if refusal is None:
        refusal = await may_manage(context, user_id, info.id, t, chat_type=info.type, label=label)
        if refusal is not None:
            await _set_manager(context, info.id, user_id, False)  # /channels stays honest
    if refusal is not None:
        return refusal, None
    return None, Target(info.id, info.type, info.title or "", True, (), info.username)


async def _set_manager(context: Context, chat_id: int, user_id: int, manages: bool) -> None:
    """Add or drop ``user_id`` in the chat's managers (no write when already so)."""
    stored = context.storage.chat(chat_id)
    if stored is None or (user_id in stored.managers) == manages:
        return

    def apply(chat: StoredChat) -> None:
        others = tuple(u for u in chat.managers if u != user_id)
        chat.managers = (*others, user_id) if manages else others

    await context.storage.update_chat(chat_id, apply)


async def register_target(update: Update, context: Context, target: Target) -> StoredChat | None:
    """The stored chat a command acts on, registering the local chat like :func:`register_chat`.

    A remote target was registered by :func:`resolve_target`.
    """
    if target.remote:
        return context.storage.chat(target.chat_id)
    return await register_chat(update, context)


async def target_chat(update: Update, context: Context) -> tuple[Target, StoredChat] | None:
    """The chat a command acts on (:func:`resolve_target` on its arguments), registered.

    For commands that show a chat's state before any change (rights for a change are still
    the caller's: :func:`may_change`). None after the sender was told what is missing.
    """
    target = await resolve_target(update, context, args_of(context))
    if target is None:
        return None
    chat = await register_target(update, context, target)
    return None if chat is None else (target, chat)


async def reply_about(
    update: Update,
    context: Context,
    target: Target,
    text: str,
    *,
    reply_markup: InlineKeyboardMarkup | ForceReply | None = None,
) -> int:
    """:func:`reply` with one message, naming the chat first when the command acted on another.

    One message only: an answer long enough to need several is packed by its maker with
    :func:`heading` as the first message's header (see ``import_reply``), so the chat's name
    never pushes a packed part over Telegram's limit.
    """
    shown = headed(target.label, text) if target.remote else text
    return await reply(update, context, shown, reply_markup=reply_markup)


def heading(target: Target) -> str:
    """The header an answer about ``target`` starts with: its bold name when remote, else ""."""
    return label_line(target.label) if target.remote else ""


def label_line(label: str) -> str:
    """A chat's name as the bold first line of an answer about it."""
    return f"<b>{esc(label)}</b>"


def headed(label: str, text: str) -> str:
    """``text`` (HTML) under the bold name of the chat it is about.

    An answer about a chat other than the one it is read in starts with that chat's name
    (one rule for replies and for edited /list messages): a user managing several chats
    from a private chat always sees which one an answer concerns.
    """
    return f"{label_line(label)}\n{text}"
