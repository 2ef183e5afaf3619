"""/import and /export: a chat's feeds in and out as OPML files, the feed readers' format.

``/import`` is the caption of an ``.opml``/``.xml`` document, or a reply to one. Before the
file is downloaded: rights (as ``/add``), its name or type, its size from the message
(:data:`bot.services.opml.MAX_OPML_BYTES`), one import per chat at a time, and the sender's
``/add`` budget. Then ``getFile`` + download through PTB, parsing in a parser worker (never
on the event loop), :func:`bot.services.subscriptions.import_feeds`, and one summary.

``/export`` sends the chat's subscriptions as an OPML 2.0 document (``sendDocument``).

Both take a target like ``/add`` (``/import @channel`` as the caption, ``/export @channel``,
from a private chat; :func:`bot.handlers.common.resolve_target`), and answer in the forum
topic they were sent in; an import sent in a topic places its new feeds there.
"""

from __future__ import annotations

import asyncio
import logging
import re
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime

from telegram import Chat, Document, Message, MessageEntity, ReplyParameters, Update
from telegram.error import TelegramError
from telegram.ext import Application, CommandHandler, MessageHandler, filters

from bot.formatting import esc
from bot.handlers.budget import charge_add
from bot.handlers.common import (
    COMMAND_UPDATES,
    Context,
    Target,
    args_of,
    deny,
    heading,
    may_change,
    register_target,
    reply,
    reply_about,
    resolve_target,
    thread_of,
    tr,
)
from bot.handlers.feeds import feed_limit
from bot.handlers.topics import options_for
from bot.models import chosen_title
from bot.services.add_report import import_reply
from bot.services.opml import (
    MAX_OPML_BYTES,
    OpmlError,
    OpmlFeed,
    OpmlTooLargeError,
    export_opml,
    is_opml_document,
    parse_opml,
)
from bot.services.subscriptions import import_feeds

logger = logging.getLogger(__name__)

IMPORTING_KEY = "opml_imports_running"  # bot_data: chat ids with an import in progress
_FILE_STEM_CHARS = re.compile(r"[^a-z0-9]+")


class _CaptionCommand(filters.MessageFilter):
    """A message whose caption starts with ``/<command>`` (or ``/<command>@<this bot>``).

    PTB's CommandHandler reads only ``text``; a document's command is in its ``caption``.
    """

    def __init__(self, command: str) -> None:
        super().__init__(name=f"caption /{command}")
        self.command = command

    def filter(self, message: Message) -> bool:
        """Match the caption's leading bot_command entity like CommandHandler does."""
        caption, entities = message.caption, message.caption_entities
        if not caption or not entities:
            return False
        first = entities[0]
        if first.type != MessageEntity.BOT_COMMAND or first.offset != 0:
            return False
        name, _, addressee = caption[1 : first.length].partition("@")
        if name.lower() != self.command:
            return False
        return not addressee or addressee.lower() == (message.get_bot().username or "").lower()


async def import_command(update: Update, context: Context) -> None:
    """``/import [@chat]`` typed as a reply to a document."""
    message = update.effective_message
    replied = message.reply_to_message if message is not None else None
    document = replied.document if replied is not None else None
    await _import(update, context, document, args_of(context))


async def import_caption(update: Update, context: Context) -> None:
    """A document sent with the caption ``/import [@chat]``."""
    message = update.effective_message
    if message is None:
        return
    await _import(update, context, message.document, (message.caption or "").split()[1:])


async def _import(
    update: Update, context: Context, document: Document | None, args: list[str]
) -> None:
    _ = tr(update, context).gettext
    if document is None:
        await reply(update, context, _usage(update, context))
        return
    target = await resolve_target(update, context, args)  # /import @channel, from a private chat
    if target is None:
        return
    if target.args:
        await reply(update, context, _usage(update, context))
        return
    name = document.file_name or "file"
    if not is_opml_document(document.file_name, document.mime_type):
        text = _(
            "That file (%(name)s) doesn't look like OPML: send the .opml or .xml file your "
            "feed reader exports."
        ) % {"name": esc(name)}
        await reply(update, context, text)
        return
    if not await may_change(update, context, target):
        await deny(update, context)
        return
    if document.file_size is not None and document.file_size > MAX_OPML_BYTES:
        await _refuse(update, context, name, OpmlTooLargeError(document.file_size))
        return
    chat_id = target.chat_id
    running: set[int] = context.bot_data.setdefault(IMPORTING_KEY, set())
    if chat_id in running:
        text = _("An import into this chat is still running; its summary comes when it is done.")
        await reply(update, context, text)
        return
    running.add(chat_id)  # no await since the check above: no lock needed
    try:
        await register_target(update, context, target)
        if await charge_add(update, context, "import"):
            await _run_import(update, context, target, document, name)
    finally:
        running.discard(chat_id)


async def _run_import(
    update: Update, context: Context, target: Target, document: Document, name: str
) -> None:
    """Download, parse, follow, answer."""
    _ = tr(update, context).gettext
    chat_id = target.chat_id
    try:
        telegram_file = await context.bot.get_file(document.file_id)
        data = bytes(await telegram_file.download_as_bytearray())
    except TelegramError as exc:
        logger.warning(
            "opml download failed",
            extra={"event": "opml_download_failed", "chat_id": chat_id, "error": exc.message},
        )
        text = _("❌ Couldn't download %(name)s from Telegram; please send it again.") % {
            "name": esc(name)
        }
        await reply(update, context, text)
        return
    try:
        entries = await _parse_off_loop(context, data)
    except OpmlError as exc:
        await _refuse(update, context, name, exc)
        return
    limit = feed_limit(context)
    # New feeds post in the forum topic the import was sent in. Feeds the chat already
    # follows stay where they are: moving many at once is not what an import asks for.
    options = options_for(update, chat_id)
    outcomes, skipped = await import_feeds(
        context.services.feeds, context.storage, chat_id, entries, limit=limit, options=options
    )
    chat = context.storage.chat(chat_id)
    digest = bool(chat and chat.delivery.is_digest)
    texts = import_reply(
        outcomes,
        tr(update, context),
        limit=limit,
        digest=digest,
        skipped=skipped,
        file_name=name,
        header=heading(target),  # packed with the summary: every part fits with it
    )
    await reply(update, context, texts)


async def _parse_off_loop(context: Context, data: bytes) -> list[OpmlFeed]:
    """Parse in a parser worker process (or a thread): 1 MiB of OPML is ~0.2 s of CPU."""
    loop = asyncio.get_running_loop()
    feeds = context.services.feeds_service
    executor = feeds.parse_executor if feeds is not None else None  # the live pool
    if executor is not None:
        try:
            return await loop.run_in_executor(executor, parse_opml, data)
        except (BrokenProcessPool, RuntimeError):
            logger.warning("parser pool unavailable; parsing OPML in a thread")
    return await asyncio.to_thread(parse_opml, data)


async def _refuse(update: Update, context: Context, name: str, exc: OpmlError) -> None:
    t = tr(update, context)
    text = t.gettext("❌ Couldn't import %(name)s: %(reason)s.") % {
        "name": esc(name),
        "reason": esc(exc.describe(t)),
    }
    await reply(update, context, text)


def _usage(update: Update, context: Context) -> str:
    _ = tr(update, context).gettext
    return _(
        "To import feeds, send an OPML file (.opml or .xml, as your feed reader exports it) "
        "with the caption /import, or reply /import to such a file. /export makes one of "
        "this chat's feeds. From a private chat, /import @channel and /export @channel act "
        "on a chat you manage."
    )


async def export(update: Update, context: Context) -> None:
    """Send the chat's subscriptions (or a managed chat's: ``/export @chat``) as OPML 2.0."""
    _ = tr(update, context).gettext
    target = await resolve_target(update, context, args_of(context))
    if target is None:
        return
    if target.args:
        await reply(update, context, _usage(update, context))
        return
    if not await may_change(update, context, target):
        await deny(update, context)
        return
    stored = await register_target(update, context, target)
    chat_id = target.chat_id
    storage = context.storage
    entries = []
    for sub in storage.subscriptions(chat_id):
        state = storage.feed_state(sub.url)
        entries.append(OpmlFeed(sub.url, chosen_title(sub.title, state.title if state else "")))
    if not entries:
        text = _("This chat follows no feeds yet: nothing to export. Add some with /add.")
        await reply_about(update, context, target, text)
        return
    chat_title = stored.title if stored is not None and stored.title else target.label
    head_title = _("newsbot feeds of %(chat)s") % {"chat": chat_title}
    data = await asyncio.to_thread(
        export_opml, entries, title=head_title, created=datetime.now(UTC)
    )
    caption = tr(update, context).ngettext(
        "%(n)d feed of this chat. Import it into any feed reader, or into another chat with "
        "/import.",
        "%(n)d feeds of this chat. Import them into any feed reader, or into another chat "
        "with /import.",
        len(entries),
    ) % {"n": len(entries)}
    if target.remote:  # sent to the private chat: say which chat the file is of
        caption = f"{target.label}\n{caption}"
    await _send_document(update, context, data, f"newsbot-{_file_stem(target)}.opml", caption)


async def _send_document(
    update: Update, context: Context, data: bytes, filename: str, caption: str
) -> None:
    chat, message = update.effective_chat, update.effective_message
    if chat is None:
        return
    quote = message.message_id if message and chat.type in (Chat.GROUP, Chat.SUPERGROUP) else None
    try:
        await context.bot.send_document(
            chat.id,
            document=data,
            filename=filename,
            caption=caption,
            reply_parameters=(
                ReplyParameters(quote, allow_sending_without_reply=True) if quote else None
            ),
            message_thread_id=thread_of(update),  # the topic /export was sent in
        )
    except TelegramError as exc:  # the chat went away or refused: nothing more to do here
        logger.warning(
            "export not sent",
            extra={"event": "opml_export_failed", "chat_id": chat.id, "error": exc.message},
        )


def _file_stem(target: Target) -> str:
    """``mychannel`` from the chat's username, else its title; its id when neither gives one.

    A private chat's "title" is the user's name: it is left out of the file name.
    """
    names = [target.username] if target.type == Chat.PRIVATE else [target.username, target.title]
    for name in names:
        stem = _FILE_STEM_CHARS.sub("-", (name or "").lower()).strip("-")[:40]
        if stem:
            return stem
    return str(abs(target.chat_id))


def register(app: Application) -> None:
    """Add this module's handlers."""
    app.add_handler(CommandHandler("import", import_command, filters=COMMAND_UPDATES))
    app.add_handler(
        MessageHandler(
            COMMAND_UPDATES & filters.Document.ALL & _CaptionCommand("import"), import_caption
        )
    )
    app.add_handler(CommandHandler("export", export, filters=COMMAND_UPDATES))
