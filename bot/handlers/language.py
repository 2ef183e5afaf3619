"""/language: which language the bot speaks in this chat.

``Chat.language`` holds the choice. Replies use it, else the Telegram language of whoever
asked (:func:`bot.handlers.common.tr`); posts and digests, which nobody asked for, use it,
else English (:func:`bot.i18n.chat_translator`). A private chat records its user's language
when it registers, so its posts match its replies; groups and channels have none until an
administrator chooses. Like ``/format``, it acts on the chat it is sent in, or — from a
private chat — on a group or channel named first (``/language @channel ru``, see
:func:`bot.handlers.common.resolve_target`).
"""

from __future__ import annotations

import logging

from telegram import Chat, Update
from telegram.ext import Application, CommandHandler

from bot.handlers.common import (
    COMMAND_UPDATES,
    Context,
    deny,
    may_change,
    reply,
    reply_about,
    target_chat,
    tr,
)
from bot.i18n import (
    LANGUAGES,
    Translator,
    language_name,
    pick_language,
    supported_language,
    translator,
)

logger = logging.getLogger(__name__)

AUTO = "auto"


def _choices(t: Translator) -> str:
    """The ``/language …`` commands, each language named in itself."""
    lines = [f"/language {code} — {language_name(code)}" for code in LANGUAGES]
    lines.append(t.gettext("/language auto — each person's own Telegram language"))
    return "\n".join(lines)


def _current(chosen: str | None, t: Translator) -> str:
    _ = t.gettext
    if chosen is not None:
        return _("Language: <b>%(name)s</b>, for replies and posts in this chat.") % {
            "name": language_name(chosen)
        }
    return _(
        "Language: <b>automatic</b>. Replies follow each person's Telegram language (English "
        "if I don't speak it); posts are in English."
    )


async def language(update: Update, context: Context) -> None:
    """``/language`` shows the choice; ``/language en|ru|auto`` changes it (admins in groups)."""
    found = await target_chat(update, context)
    if found is None:
        return
    target, chat = found
    args = [a.lower() for a in target.args]
    t = tr(update, context)
    if not args:
        await reply_about(update, context, target, f"{_current(chat.language, t)}\n\n{_choices(t)}")
        return
    wanted = supported_language(args[0]) if len(args) == 1 else None
    if wanted is None and args != [AUTO]:
        text = t.gettext("I don't speak that language. Choose one of these:")
        await reply(update, context, f"{text}\n{_choices(t)}")
        return
    if not await may_change(update, context, target):
        await deny(update, context)
        return
    if wanted is None:  # auto
        # A private chat is its user: "auto" takes their Telegram language again (posts need
        # it stored). Elsewhere it clears the choice.
        wanted = _user_language(update) if chat.type == Chat.PRIVATE else None
    await context.storage.update_chat(chat.chat_id, lambda c: setattr(c, "language", wanted))
    logger.info(
        "chat language set",
        extra={"event": "language_set", "chat_id": chat.chat_id, "language": wanted or AUTO},
    )
    if target.remote:
        # The answer is read in the private chat, whose language did not change.
        now = t
    else:  # the confirmation already speaks the chat's new language
        user = update.effective_user
        now = translator(pick_language(wanted, user.language_code if user else None))
    await reply_about(update, context, target, "✅ " + _current(wanted, now))


def _user_language(update: Update) -> str | None:
    user = update.effective_user
    return supported_language(user.language_code) if user else None


def register(app: Application) -> None:
    """Add this module's handlers."""
    app.add_handler(CommandHandler("language", language, filters=COMMAND_UPDATES))
