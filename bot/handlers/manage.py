"""/list with buttons, /rename and /filter: managing a chat's subscriptions one by one.

``/list`` shows a page of subscriptions (:mod:`bot.listing`) with four buttons each (mute or
unmute, filters, rename, remove) and page buttons. Every press is checked three times:
the data must carry the bot's signature (:mod:`bot.services.buttons`), the presser must be
allowed to manage the chat it names (:func:`bot.handlers.rights.may_manage`, asked on every
press), and the subscription must still be in that chat's list (looked up by key, wherever
it is now). Like the other commands, ``/list``, ``/rename`` and ``/filter`` act on another
chat when a private chat names it first (``/list @channel``): the buttons then live in the
private chat and act on that chat.
Whatever happens, the press is answered (``answerCallbackQuery``), and a stale button
shows the list as it is now.

Renaming from a button is a short conversation: the bot asks for the title with a reply
prompt, and the next text from that user in that chat within :data:`RENAME_WINDOW_S` is
the title — in a group it must be a reply to the prompt (with privacy mode on, replies
are what a bot sees; the conversation must not swallow other talk). ``/rename <n> <title>``
does the same in one step and works everywhere, channels included.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from telegram import CallbackQuery, ForceReply, InlineKeyboardMarkup, Message, Update
from telegram import Chat as TgChat
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, MessageHandler
from telegram.ext import filters as tg_filters
from telegram.helpers import mention_html

from bot.formatting import _shorten, esc
from bot.handlers.common import (
    COMMAND_UPDATES,
    TARGET_RE,
    Context,
    Target,
    args_of,
    deny,
    may_change,
    register_target,
    reply,
    reply_about,
    resolve_target,
    tr,
)
from bot.handlers.rights import chat_label, may_manage
from bot.i18n import N_, Translator
from bot.listing import (
    Entry,
    describe_filters,
    entries_of,
    filter_usage,
    find,
    page_count,
    page_of,
    render_confirm_remove,
    render_filters,
    render_page,
)
from bot.models import NO_FILTERS, Chat, Filters, Subscription
from bot.services.buttons import PATTERN, BadButton, ButtonData, ButtonSigner
from bot.services.delivery import NO_PREVIEW
from bot.services.filters import FilterError, parse_terms

logger = logging.getLogger(__name__)

RENAME_WINDOW_S = 300.0  # how long a rename prompt waits for its answer
MAX_PENDING_RENAMES = 10_000  # prompts remembered at once (oldest dropped first)
MAX_CUSTOM_TITLE = 100  # characters of a title a chat gives a feed
TOAST_TITLE_CHARS = 40  # titles in callback answers (Telegram shows 200 characters)
MAX_LISTED_NUMBERS = 30  # feed numbers named in one /filter answer
# The rename conversation reads plain text; its own handler group keeps it from shadowing
# (or being shadowed by) any other message handler.
RENAME_HANDLER_GROUP = 1
_STATE_KEY = "manage"
NO_SUCH_FEED = N_("No such feed here. See /list for the numbers.")
BUTTON_INVALID = N_("This button is not valid any more. Send /list for a fresh list.")
_FILTER_VERB_RE = re.compile(r"\s*(?:(\d+)\s*)?(\S*)\s*(.*)", re.DOTALL)


# --------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class PendingRename:
    """A rename prompt waiting for its answer."""

    target: int  # the chat whose subscription is renamed
    url: str
    prompt_id: int  # the prompt message; in groups the answer must reply to it
    expires: float


class RenamePrompts:
    """Open rename conversations, keyed by (chat asked in, user); bounded, expiring.

    All prompts live equally long, so insertion order is expiry order: expired ones are
    dropped from the front in O(1) amortised. Single event loop: no lock needed.
    """

    def __init__(
        self,
        window_s: float = RENAME_WINDOW_S,
        limit: int = MAX_PENDING_RENAMES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window_s = window_s
        self._limit = limit
        self._clock = clock
        self._open: dict[tuple[int, int], PendingRename] = {}

    def start(self, chat_id: int, user_id: int, target: int, url: str, prompt_id: int) -> None:
        """Wait for ``user_id``'s answer in ``chat_id`` (replacing an earlier prompt)."""
        self._expire()
        self._open.pop((chat_id, user_id), None)
        if len(self._open) >= self._limit:
            del self._open[next(iter(self._open))]
        expires = self._clock() + self._window_s
        self._open[(chat_id, user_id)] = PendingRename(target, url, prompt_id, expires)

    def take(
        self, chat_id: int, user_id: int, *, reply_to: int | None, private: bool
    ) -> PendingRename | None:
        """The prompt this message answers, removed; None if it answers none."""
        self._expire()
        pending = self._open.get((chat_id, user_id))
        if pending is None or not (private or reply_to == pending.prompt_id):
            return None
        del self._open[(chat_id, user_id)]
        return pending

    def _expire(self) -> None:
        now = self._clock()
        while self._open:
            key = next(iter(self._open))
            if self._open[key].expires > now:
                break
            del self._open[key]


@dataclass(slots=True)
class _ManageState:
    signer: ButtonSigner
    renames: RenamePrompts


def _state(context: Context) -> _ManageState:
    state = context.application.bot_data.get(_STATE_KEY)
    if not isinstance(state, _ManageState):
        state = _ManageState(ButtonSigner(context.bot.token), RenamePrompts())
        context.application.bot_data[_STATE_KEY] = state
    return state


# --------------------------------------------------------------------------- /list


async def list_feeds(update: Update, context: Context) -> None:
    """Show the chat's feeds a page at a time, with buttons; ``/list 3`` opens page 3."""
    t = tr(update, context)
    target = await resolve_target(update, context, args_of(context))
    if target is None:
        return
    chat = await register_target(update, context, target)
    if chat is None:
        return
    args = target.args
    page = int(args[0]) - 1 if len(args) == 1 and args[0].isdigit() else 0
    entries = entries_of(context.storage, chat.chat_id)
    text, markup = render_page(t, _state(context).signer, chat, entries, page)
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
            await query.answer(answer or None, show_alert=alert)
        except TelegramError as exc:  # too late (15 s), or answered elsewhere
            logger.info("could not answer a button press", extra={"error": str(exc)})


async def _press(query: CallbackQuery, context: Context, t: Translator) -> tuple[str, bool]:
    """Handle one press; returns the answer text and whether it is an alert."""
    state = _state(context)
    try:
        data = state.signer.decode(query.data or "")
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
    if data.action == "page":
        await _show_page(query, context, t, chat, data.page)
        if data.page >= page_count(len(storage.feed_urls(chat.chat_id))):
            return t.gettext("That page is gone: the list is shorter now."), False
        return "", False
    reason = await may_manage(context, query.from_user.id, chat.chat_id, t, chat_type=chat.type)
    if reason is not None:
        return reason, True  # plain text, as answers are
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
    storage, signer = context.storage, _state(context).signer
    title = _shorten(entry.title, TOAST_TITLE_CHARS)  # answers are plain text, not HTML
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
    if data.action == "remove":
        await _edit(query, chat, *render_confirm_remove(t, signer, chat, entry, data.page))
        return "", False
    if data.action == "confirm":
        await storage.unsubscribe(chat.chat_id, entry.url)
        await _show_page(query, context, t, chat, data.page)
        return t.gettext("🗑 Removed %(title)s.") % {"title": title}, False
    return await _ask_title(query, context, t, chat, entry)


async def _ask_title(
    query: CallbackQuery, context: Context, t: Translator, chat: Chat, entry: Entry
) -> tuple[str, bool]:
    """Start the rename conversation with a reply prompt in the chat the button is in."""
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
        "title": esc(_shorten(entry.title, 80)),
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
    _state(context).renames.start(message.chat.id, user.id, chat.chat_id, entry.url, prompt.id)
    return t.gettext("✏️ Reply to my message with the new title."), False


async def _show_page(
    query: CallbackQuery, context: Context, t: Translator, chat: Chat, page: int
) -> None:
    """Show the list as it is now on the message, at ``page`` (clamped)."""
    entries = entries_of(context.storage, chat.chat_id)
    await _edit(query, chat, *render_page(t, _state(context).signer, chat, entries, page))


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
        text = f"<b>{esc(chat_label(chat.chat_id, chat.title))}</b>\n{text}"
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
    field: Literal["muted", "title", "filters"], value: object
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


# --------------------------------------------------------------------------- renaming


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
    entries = entries_of(context.storage, target.chat_id)
    n = int(args[0])
    if not 0 < n <= len(entries):
        await reply_about(update, context, target, t.gettext(NO_SUCH_FEED))
        return
    answer = await _rename(context, t, target.chat_id, entries[n - 1].url, args[1:])
    await reply_about(update, context, target, answer)


async def on_text(update: Update, context: Context) -> None:
    """A text message: the answer to a rename prompt, if this user has one open here."""
    message, user, chat = update.message, update.effective_user, update.effective_chat
    if message is None or user is None or chat is None or not message.text:
        return
    replied = message.reply_to_message
    pending = _state(context).renames.take(
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
    title = " ".join(w for w in words if w.isprintable())
    if title == "-":
        title = ""
    if len(title) > MAX_CUSTOM_TITLE:
        return t.gettext("That title is too long: at most %(limit)d characters.") % {
            "limit": MAX_CUSTOM_TITLE
        }
    if not title and words != ["-"]:
        return t.gettext("That title is empty; send some text, or “-” for the feed's own title.")
    try:
        await context.storage.update_subscription(chat_id, url, _setter("title", title))
    except KeyError:
        return t.gettext(NO_SUCH_FEED)
    if title:
        return t.gettext("✏️ Renamed: <b>%(title)s</b>.") % {"title": esc(title)}
    state = context.storage.feed_state(url)
    shown = (state.title if state else "") or url
    return t.gettext("✏️ Back to the feed's own title: <b>%(title)s</b>.") % {"title": esc(shown)}


# --------------------------------------------------------------------------- /filter


@dataclass(frozen=True, slots=True)
class FilterCommand:
    """A parsed ``/filter``: which subscription (None: the chat) and what to do."""

    n: int | None
    verb: Literal["show", "include", "exclude", "clear"]
    terms: tuple[str, ...] = ()
    which: Literal["include", "exclude", "both"] = "both"


class FilterUsage(ValueError):
    """A /filter that is neither show, include, exclude nor clear."""


def parse_filter_command(raw: str) -> FilterCommand:
    """Read ``[n] [include|exclude <terms> | clear [include|exclude]]``.

    Raises:
        FilterUsage: an unknown verb or a bad ``clear`` argument.
        FilterError: the terms break a limit (see :func:`bot.services.filters.parse_terms`).
    """
    match = _FILTER_VERB_RE.fullmatch(raw)
    if match is None:  # pragma: no cover - the pattern matches any text
        raise FilterUsage(raw)
    number, verb, rest = match.group(1), match.group(2).lower(), match.group(3).strip()
    n = int(number) if number else None
    if not verb:
        return FilterCommand(n, "show")
    if verb == "include":
        return FilterCommand(n, "include", parse_terms(rest))
    if verb == "exclude":
        return FilterCommand(n, "exclude", parse_terms(rest))
    if verb == "clear":
        which = rest.lower()
        if which == "":
            return FilterCommand(n, "clear")
        if which == "include":
            return FilterCommand(n, "clear", which="include")
        if which == "exclude":
            return FilterCommand(n, "clear", which="exclude")
    raise FilterUsage(raw)


def _changed(filters: Filters, command: FilterCommand) -> Filters:
    include, exclude = filters.include, filters.exclude
    if command.verb == "include":
        include = command.terms
    elif command.verb == "exclude":
        exclude = command.terms
    else:
        include = () if command.which in ("include", "both") else include
        exclude = () if command.which in ("exclude", "both") else exclude
    return Filters(include, exclude) if include or exclude else NO_FILTERS


async def filter_command(update: Update, context: Context) -> None:
    """Show or change the keyword filters of the chat or of one subscription."""
    t = tr(update, context)
    target, raw = await _filter_target(update, context)
    if target is None:
        return
    try:
        command = parse_filter_command(raw)
    except FilterUsage:
        await reply(update, context, filter_usage(t))
        return
    except FilterError as exc:
        await reply(update, context, exc.explain(t))
        return
    chat = await register_target(update, context, target)
    if chat is None:
        return
    storage = context.storage
    entry: Entry | None = None
    if command.n is not None:
        entries = entries_of(storage, chat.chat_id)
        if not 0 < command.n <= len(entries):
            await reply_about(update, context, target, t.gettext(NO_SUCH_FEED))
            return
        entry = entries[command.n - 1]
    if command.verb == "show":
        await _show_filters(update, context, t, target=target, chat=chat, entry=entry)
        return
    if not await may_change(update, context, target):
        await deny(update, context)
        return
    if entry is None:
        new = await storage.update_chat(
            chat.chat_id, lambda c: _store(c, _changed(c.filters, command))
        )
        head = t.gettext("✅ Saved. Filters of this chat (every feed):")
    else:
        new = await storage.update_subscription(
            chat.chat_id, entry.url, lambda s: _store(s, _changed(s.filters, command))
        )
        head = t.gettext("✅ Saved. Filters of %(n)d. <b>%(title)s</b>:") % {
            "n": entry.n, "title": esc(_shorten(entry.title, 80)),
        }  # fmt: skip
    lines = describe_filters(t, new) or [t.gettext("None: every item is posted.")]
    await reply_about(update, context, target, "\n".join([head, *lines]))


async def _filter_target(update: Update, context: Context) -> tuple[Target | None, str]:
    """The chat /filter acts on and the raw text after it (commas and lines kept)."""
    message = update.effective_message
    text = (message.text or "") if message is not None else ""
    parts = text.split(maxsplit=2)
    if len(parts) > 1 and TARGET_RE.match(parts[1]):
        return await resolve_target(update, context, [parts[1]]), parts[2] if len(parts) > 2 else ""
    rest = text.split(maxsplit=1)
    return await resolve_target(update, context, []), rest[1] if len(rest) > 1 else ""


def _store(target: Chat | Subscription, filters: Filters) -> Filters:
    target.filters = filters
    return filters


async def _show_filters(
    update: Update,
    context: Context,
    t: Translator,
    *,
    target: Target,
    chat: Chat,
    entry: Entry | None,
) -> None:
    if entry is not None:
        page = page_of(entry.n)
        text, markup = render_filters(t, _state(context).signer, chat, entry, page)
        await reply_about(update, context, target, text, reply_markup=markup)
        return
    lines = [t.gettext("🔎 Filters of this chat (every feed):")]
    lines += describe_filters(t, chat.filters) or [t.gettext("None: every item is posted.")]
    own = [e.n for e in entries_of(context.storage, chat.chat_id) if e.filters]
    if own:
        numbers = ", ".join(map(str, own[:MAX_LISTED_NUMBERS]))
        if len(own) > MAX_LISTED_NUMBERS:
            numbers += ", …"
        lines.append(
            t.gettext("Feeds with filters of their own: %(numbers)s (see /filter %(first)d).")
            % {"numbers": numbers, "first": own[0]}
        )
    lines += ["", filter_usage(t), "", t.gettext(
        "Words match whole words in any case, a phrase its words in a row; Chinese, Japanese, "
        "Korean and Thai match anywhere in the text. Titles and summaries are searched."
    )]  # fmt: skip
    await reply_about(update, context, target, "\n".join(lines))


# --------------------------------------------------------------------------- wiring


def register(app: Application) -> None:
    """Add this module's handlers."""
    app.add_handler(CommandHandler("list", list_feeds, filters=COMMAND_UPDATES))
    app.add_handler(CommandHandler("rename", rename, filters=COMMAND_UPDATES))
    app.add_handler(CommandHandler("filter", filter_command, filters=COMMAND_UPDATES))
    app.add_handler(CallbackQueryHandler(on_button, pattern=PATTERN))
    app.add_handler(
        MessageHandler(
            tg_filters.UpdateType.MESSAGE & tg_filters.TEXT & ~tg_filters.COMMAND, on_text
        ),
        group=RENAME_HANDLER_GROUP,
    )
