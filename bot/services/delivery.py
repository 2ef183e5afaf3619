"""Getting items and replies to chats, and what to do when Telegram says a chat changed.

Two paths share the rules below:

* :func:`send_html` — replies to commands. Interactive priority in the rate limiter; 5xx and
  network errors are retried there (bounded); never raises for a chat-level problem.
* :class:`Dispatcher` — items from feeds. ``deliver(chat)`` sends what the chat's cursors
  have not covered yet, one message at a time, and advances the cursors only after Telegram
  accepted each message (durable, group-committed). Instant chats are queued the moment a
  poll logs new items; digest chats are delivered by the digest scheduler. Items of muted
  subscriptions and items the keyword filters reject are not sent, and their cursors move
  exactly as if they had been (:func:`bot.services.filters.screen`).

Instant posts follow the chat's ``/format`` (or the subscription's): ``title`` packs several
items of a feed into one message; ``summary`` and ``full`` send one message per item. A
``full`` post with an image goes as ``sendPhoto`` with the text as its caption when the text
fits 1,024 units; a longer one is a single text message with the image as a large link
preview above it (one message, so "Telegram accepted it" still means the whole item went out
and one cursor advance covers it; a photo followed by a text message could be cut in two by a
failure between them). Any 400 to ``sendPhoto`` (a broken URL, not an image, no right to
send photos in the chat, ...) falls back to the same post as text, except those the text
would meet too (the chat vanished, the topic is closed or deleted): the item is neither lost
nor skipped unless the text post itself is refused. An image Telegram refused is remembered
for an hour (:mod:`bot.services.image_verdicts`), so the rest of a fan-out goes straight to
text: one ``sendPhoto`` per broken image, not one per chat. Link previews of the article
follow the chat's ``/previews``. Digests, backlogs after ``/resume`` (``request(chat,
compact=True)``) and ``/news`` keep compact title lists.

Telegram's answers: 403 (blocked, kicked) or "chat not found" deactivate the chat; "group
upgraded to a supergroup" moves its settings and sends to the new id; 400 for one message is
logged with the feed and items and skipped (its cursor advances: retrying cannot help);
429/5xx/timeouts that outlast the limiter's retries leave the cursor where it is, and the
chat is tried again later.

Forum topics (:mod:`bot.services.topics`): each subscription's items go to its topic, one
message stream (and one digest) per topic. A closed topic holds its items (cursor kept, one
note to the chat — or to its managers privately when General is closed — retried later); a
deleted topic's subscriptions move to General and their items are delivered there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from telegram import Bot, ForceReply, InlineKeyboardMarkup, LinkPreviewOptions, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, TelegramError
from telegram.ext import ExtBot

from bot.formatting import OutMessage, format_backlogs, format_instant
from bot.i18n import Translator, chat_translator
from bot.models import NO_FILTERS, Backlog, Chat, Filters, LogEntry
from bot.services.filters import TextCache, screen
from bot.services.image_verdicts import ImageVerdicts
from bot.services.metrics import Metrics
from bot.services.telegram_limits import BULK
from bot.services.topics import (
    NoteOutcome,
    TopicKeeper,
    TopicTrouble,
    group_by_topic,
    topic_trouble,
)
from bot.storage import StorageService, get_storage_service

logger = logging.getLogger(__name__)

NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
# What Telegram answers (lower-cased) to sendPhoto when the chat, not the image, forbids
# photos: the post goes out as text, but the image is not remembered as refused.
_CHAT_PHOTO_REFUSALS = ("not enough rights to send photos", "chat_send_photos_forbidden")
DELIVERY_WORKERS = 16  # chats delivered concurrently; the rate limiter paces the sends
RETRY_LATER_S = 60.0  # a chat whose send failed after all retries is tried again this late
STOP_GRACE_S = 5.0  # at shutdown, how long sends already in flight may take to finish
# Called after a chat id changed (migration) or a chat went away (new_id None), so the digest
# scheduler can move or forget the chat.
ChatMoved = Callable[[int, int | None], Awaitable[None]]
Outcome = Literal["done", "nothing", "skipped", "gone", "retry"]


def _is_chat_gone(exc: BadRequest) -> bool:
    return "chat not found" in exc.message.lower()


def _photo_fallback(exc: BadRequest) -> Literal["image", "chat"] | None:
    """Whether a sendPhoto 400 falls back to text: for the image, for the chat, or not at all.

    Every 400 does except those the text post would meet too: the chat vanished, or its
    topic is closed or deleted. Telegram words its image refusals in many ways (unreachable
    URL, not an image, unprocessable, too large, ...), and a refusal of the caption alone
    shows up when the text post is refused in turn.
    """
    if _is_chat_gone(exc) or topic_trouble(exc) is not None:
        return None
    message = exc.message.lower()
    return "chat" if any(r in message for r in _CHAT_PHOTO_REFUSALS) else "image"


def _preview_options(message: OutMessage) -> LinkPreviewOptions | None:
    """Link preview options of a text post (None: Telegram's default, the first link)."""
    if message.preview_image is not None:
        return LinkPreviewOptions(
            url=message.preview_image, prefer_large_media=True, show_above_text=True
        )
    return None if message.link_preview else NO_PREVIEW


def _messages(
    chat: Chat | None, backlogs: list[Backlog], t: Translator, *, digest: bool, compact: bool
) -> list[OutMessage]:
    """What to send: title lists for digests and backlogs, else posts in their format."""
    if digest or compact or chat is None:
        return format_backlogs(backlogs, digest=digest, t=t)
    return format_instant(backlogs, chat_format=chat.format, previews=chat.previews, t=t)


class TopicUnavailable(Exception):
    """A send was refused because its forum topic is closed or deleted (cursor untouched)."""

    def __init__(self, trouble: TopicTrouble) -> None:
        super().__init__(trouble)
        self.trouble = trouble


async def send_html(
    bot: Bot,
    chat_id: int,
    texts: Sequence[str],
    *,
    reply_to: int | None = None,
    on_chat_moved: ChatMoved | None = None,
    bulk: bool = False,
    thread_id: int | None = None,
    reply_markup: InlineKeyboardMarkup | ForceReply | None = None,
) -> int:
    """Send each text as an HTML reply (or a bulk notice); return how many were delivered.

    ``thread_id`` is the forum topic to answer in: every part goes there, not only the one
    quoting the command (and not General when the command was deleted meanwhile).
    ``reply_markup`` (buttons, or a reply prompt) goes on the last message.

    Never raises for a chat-level problem (gone, moved, bad request): those are handled and
    logged here, because a user's chat going away must not crash a handler.
    """
    sent = 0
    target = chat_id
    for n, text in enumerate(texts):
        # Bulk notices queue behind replies in the rate limiter (a plain Bot has no limiter).
        extra: dict[str, Any] = {"rate_limit_args": BULK} if bulk else {}
        if reply_markup is not None and n == len(texts) - 1:
            extra["reply_markup"] = reply_markup
        reply = (
            ReplyParameters(reply_to, allow_sending_without_reply=True)
            if reply_to is not None and n == 0
            else None
        )
        try:
            try:
                await bot.send_message(
                    target, text, parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW,
                    reply_parameters=reply, message_thread_id=thread_id, **extra,
                )  # fmt: skip
            except ChatMigrated as moved:
                new_id = int(moved.new_chat_id)
                await migrate_chat(target, new_id, on_chat_moved)
                target = new_id
                await bot.send_message(
                    target, text, parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW,
                    **extra,
                )  # fmt: skip
            sent += 1
        except Forbidden as exc:
            await deactivate_chat(target, str(exc), on_chat_moved)
            break
        except BadRequest as exc:
            if _is_chat_gone(exc):
                await deactivate_chat(target, str(exc), on_chat_moved)
                break
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
    """Mark a chat inactive (bot blocked or removed) so deliveries stop; feeds are kept."""
    if await get_storage_service().deactivate_chat(chat_id):
        logger.info(
            "chat deactivated", extra={"event": "chat_inactive", "chat_id": chat_id, "reason": why}
        )
    if on_chat_moved is not None:
        await on_chat_moved(chat_id, None)


async def migrate_chat(old_id: int, new_id: int, on_chat_moved: ChatMoved | None) -> None:
    """Move a group's subscriptions and settings to its new supergroup id."""
    moved = await get_storage_service().migrate_chat(old_id, new_id)
    logger.info(
        "chat migrated",
        extra={"event": "chat_migrated", "chat_id": old_id, "new_chat_id": new_id,
               "had_settings": moved},
    )  # fmt: skip
    if on_chat_moved is not None:
        await on_chat_moved(old_id, new_id)


class Dispatcher:
    """Delivers logged items to chats: a queue of instant chats and a pool of workers."""

    def __init__(
        self,
        bot: ExtBot[Any],
        storage: StorageService,
        metrics: Metrics,
        *,
        on_chat_moved: ChatMoved | None = None,
        workers: int = DELIVERY_WORKERS,
        retry_later_s: float = RETRY_LATER_S,
    ) -> None:
        self._bot = bot
        self._storage = storage
        self._metrics = metrics
        self._on_chat_moved = on_chat_moved
        self._workers = workers
        self._retry_later_s = retry_later_s
        self._queue: asyncio.Queue[int] = asyncio.Queue()
        self._queued: set[int] = set()
        self._compact: set[int] = set()  # queued chats whose next delivery lists titles only
        self._tasks: list[asyncio.Task[None]] = []
        self._retry_handles: dict[int, asyncio.TimerHandle] = {}
        self._stopping = False
        self._topics = TopicKeeper(storage, metrics, self._note, self._private_note)
        # One delivery per chat at a time (instant and digest alike), so a cursor is never
        # read by one delivery while another is sending from the same position. The lock
        # object lives only while someone holds or waits for it.
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()
        # Items normalised for keyword filters once per fan-out, not once per chat.
        self._texts = TextCache()
        # Images Telegram accepted or refused lately: one sendPhoto per fan-out of a broken one.
        self._images = ImageVerdicts()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the workers (from post_init, inside the running loop)."""
        for n in range(self._workers):
            self._tasks.append(asyncio.create_task(self._work(), name=f"delivery-{n}"))

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop the workers, letting a send in flight finish and record its cursor.

        Deliveries stop between messages; a send still unanswered after ``grace_s`` is
        cancelled (it may then be repeated after the restart, like a crash at that moment).
        """
        self._stopping = True
        for handle in self._retry_handles.values():
            handle.cancel()
        self._retry_handles.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._deliveries_finished(), grace_s)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _deliveries_finished(self) -> None:
        """Return once every delivery holding a chat lock now has let go of it."""
        for lock in list(self._locks.values()):
            async with lock:  # FIFO: we get it after the current holder and earlier waiters
                pass

    def idle(self) -> bool:
        """Whether nothing is queued or being delivered (tests and benchmarks wait on it)."""
        return (
            not self._queued
            and self._queue.empty()
            and not any(lock.locked() for lock in self._locks.values())
        )

    # ------------------------------------------------------------------ instant
    def feed_updated(self, url: str, entries: list[LogEntry]) -> None:
        """A poll logged new items of ``url``: queue every instant follower (O(followers))."""
        del entries  # the chat's cursors say what to send
        for chat_id in self._storage.instant_recipients(url):
            self.request(chat_id)

    def topic_reopened(self, chat_id: int, thread_id: int | None) -> None:
        """Telegram reported a topic reopened: what waited for it goes out now (instant)."""
        if self._topics.open(chat_id, thread_id):
            self.request(chat_id)

    def request(self, chat_id: int, *, compact: bool = False) -> None:
        """Queue an instant delivery for the chat (a no-op if it is already queued).

        ``compact``: send what is pending as title lists whatever the chat's format (a backlog
        after ``/resume`` may be hundreds of items: one post each would flood the chat).
        """
        if compact:
            self._compact.add(chat_id)
        if chat_id not in self._queued:
            self._queued.add(chat_id)
            self._queue.put_nowait(chat_id)
            self._metrics.delivery_queue.set(len(self._queued))

    async def _work(self) -> None:
        while True:
            chat_id = await self._queue.get()
            self._queued.discard(chat_id)
            compact = chat_id in self._compact
            self._compact.discard(chat_id)
            self._metrics.delivery_queue.set(len(self._queued))
            try:
                await self.deliver(chat_id, digest=False, compact=compact)
            except Exception:
                logger.exception("instant delivery to %s failed unexpectedly", chat_id)
                self._retry_later(chat_id, compact)  # cursors are where they were

    def _retry_later(self, chat_id: int, compact: bool = False) -> None:
        if chat_id in self._retry_handles:
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._retry_handles.pop(chat_id, None)
            self.request(chat_id, compact=compact)

        self._retry_handles[chat_id] = loop.call_later(self._retry_later_s, fire)

    # ------------------------------------------------------------------ delivering
    async def deliver(self, chat_id: int, *, digest: bool, compact: bool = False) -> Outcome:
        """Send the chat everything its cursors have not covered; see the module docstring.

        Args:
            chat_id: the chat.
            digest: a scheduled digest (everything, grouped) rather than an instant push.
            compact: an instant push as title lists whatever the format (a backlog).
        """
        lock = self._locks.get(chat_id)
        if lock is None:
            lock = self._locks[chat_id] = asyncio.Lock()
        async with lock:  # covers: reading the cursors, sending, advancing them
            chat = self._storage.chat(chat_id)
            if chat is None or not chat.active or chat.paused:
                return "skipped"
            if chat.delivery.is_digest != digest:
                return "skipped"
            backlogs = await self._screened(chat_id, chat.filters, self._storage.pending(chat_id))
            return await self._deliver_topics(chat_id, backlogs, digest, compact=compact)

    async def _screened(
        self, chat_id: int, chat_filters: Filters, backlogs: list[Backlog]
    ) -> list[Backlog]:
        """Drop muted and filtered-out items, moving their cursors as if they were sent.

        Held-back items are never sent later: not after an unmute or a filter change.
        """
        screened = screen(backlogs, chat_filters, self._texts)
        if screened.advances:
            await self._storage.advance(chat_id, screened.advances)
        if screened.dropped:
            self._storage.count("items_filtered", chat_id, screened.dropped)
        return screened.backlogs

    async def _deliver_topics(
        self, chat_id: int, backlogs: list[Backlog], digest: bool, *, compact: bool = False
    ) -> Outcome:
        """Send each forum topic's share of the backlogs there: one stream (digest) per topic.

        A closed topic's items wait (the others still go out); a deleted topic's
        subscriptions move to General and their items follow there in the same delivery.
        """
        mode = "digest" if digest else "instant"
        chat = self._storage.chat(chat_id)
        t = chat_translator(chat.language if chat else None)  # posts have no sender
        outcome: Outcome = "nothing"
        held = False
        posted = False  # some topic's digest went out: the chat's digest counts once
        todo = group_by_topic(backlogs)
        while todo:
            thread_id, group = todo.pop(0)
            messages = _messages(chat, group, t, digest=digest, compact=compact)
            if not messages:
                continue
            try:
                result = await self._send_all(chat_id, messages, mode, thread_id, compact=compact)
            except TopicUnavailable as refused:
                if refused.trouble == "closed" or thread_id is None:
                    held = True
                    await self._topics.closed(chat_id, thread_id)
                    continue
                moved = await self._topics.deleted(chat_id, thread_id)
                again = await self._screened(
                    chat_id,
                    chat.filters if chat else NO_FILTERS,
                    [b for b in self._storage.pending(chat_id) if b.url in moved],
                )
                todo += group_by_topic(again)
                continue
            if result in ("gone", "retry"):
                self._count_digest(chat_id, posted)
                return result
            outcome = result
            posted = posted or digest
        self._count_digest(chat_id, posted)
        if held and not digest:
            self._retry_later(chat_id, compact)  # until the topic is reopened (or reported so)
            return "retry"
        # A digest leaves a closed topic's items for its next digest: retrying every few
        # minutes would turn the other topics' digests into a stream of small ones.
        return "done" if held else outcome

    def _count_digest(self, chat_id: int, posted: bool) -> None:
        """Count one digest per chat digest, however many topics and messages it took."""
        if posted:
            self._metrics.digests_sent.inc()
            self._storage.count("digests_posted", chat_id)  # follows a migration

    async def _note(self, chat_id: int, text: str) -> NoteOutcome:
        """Post a note in the chat itself (General in a forum); see :meth:`_send_note`."""
        return await self._send_note(chat_id, text, private=False)

    async def _private_note(self, user_id: int, text: str) -> NoteOutcome:
        """A note to a user's private chat about a chat they manage; see :meth:`_send_note`."""
        return await self._send_note(user_id, text, private=True)

    async def _send_note(self, chat_id: int, text: str, *, private: bool) -> NoteOutcome:
        """Send a note; failures are logged, never raised.

        A chat the note was about that went away is deactivated as for any send, and a
        migrated one is followed. A user who never started the bot or blocked it cannot be
        written to privately (403): that is expected of some managers, so it changes nothing
        stored.
        """
        message = OutMessage(text, {}, ())
        try:
            if private:
                await self._post(chat_id, message)
            else:
                await self._send_one(chat_id, message)
        except Forbidden as exc:
            if not private:
                await self._gone(chat_id, str(exc))
            return "refused"
        except BadRequest as exc:
            if not _is_chat_gone(exc):
                logger.warning(
                    "Telegram refused a note",
                    extra={"event": "note_refused", "chat_id": chat_id, "error": str(exc)},
                )
            elif not private:
                await self._gone(chat_id, str(exc))
            return "refused"
        except TelegramError as exc:
            logger.warning(
                "a note failed; it is tried again with the next delivery",
                extra={"event": "note_failed", "chat_id": chat_id, "error": str(exc)},
            )
            return "failed"
        return "sent"

    async def _send_all(
        self,
        chat_id: int,
        messages: list[OutMessage],
        mode: str,
        thread_id: int | None = None,
        *,
        compact: bool = False,
    ) -> Outcome:
        """Send ``messages`` to the chat's topic ``thread_id``; cursors advance as each goes.

        Raises:
            TopicUnavailable: Telegram refused the topic; the cursors of what was not sent stay.
        """
        target = chat_id
        for message in messages:
            if self._stopping:
                return "retry"  # shutting down: the rest goes out after the restart
            try:
                target = await self._send_one(target, message, thread_id)
            except Forbidden as exc:
                return await self._gone(target, str(exc))
            except BadRequest as exc:
                if _is_chat_gone(exc):
                    return await self._gone(target, str(exc))
                trouble = topic_trouble(exc)
                if trouble == "closed" or (trouble == "deleted" and thread_id is not None):
                    raise TopicUnavailable(trouble) from exc
                self._metrics.delivery_failures.labels(reason="rejected").inc()
                logger.error(
                    "Telegram rejected a delivery; skipping it",
                    extra={"event": "delivery_rejected", "chat_id": target, "error": str(exc),
                           "feeds": sorted(message.advances), "items": list(message.item_ids)},
                )  # fmt: skip
            except TelegramError as exc:
                self._metrics.delivery_failures.labels(reason="retry_later").inc()
                logger.warning(
                    "delivery failed after retries; will try again",
                    extra={"event": "delivery_retry_later", "chat_id": target,
                           "error": str(exc), "retry_in_s": self._retry_later_s},
                )  # fmt: skip
                if mode == "instant":
                    self._retry_later(target, compact)
                return "retry"
            else:
                self._topics.open(target, thread_id)
                self._metrics.messages_delivered.labels(mode=mode).inc()
                self._metrics.items_sent.inc(len(message.item_ids))
                self._storage.count("items_sent", target, len(message.item_ids))
            # After Telegram's answer: the only window for a duplicate is a crash right here.
            await self._storage.advance(target, message.advances)
        return "done"

    async def _send_one(
        self, chat_id: int, message: OutMessage, thread_id: int | None = None
    ) -> int:
        """Send one message; returns the chat id it went to (changed by a migration)."""
        try:
            await self._post(chat_id, message, thread_id)
            return chat_id
        except ChatMigrated as moved:
            new_id = int(moved.new_chat_id)
            await migrate_chat(chat_id, new_id, self._on_chat_moved)
            await self._post(new_id, message)
            return new_id

    async def _post(self, chat_id: int, message: OutMessage, thread_id: int | None = None) -> None:
        """Send ``message`` as a photo with a caption or as text (see the module docstring).

        An image Telegram refused lately goes straight to text (:mod:`image_verdicts`).
        """
        photo = message.photo
        turn = "text" if photo is None else await self._images.turn(photo)
        accepted: bool | None = None  # what Telegram's answers say about the image
        try:
            refused = False
            if photo is not None and turn != "text":
                try:
                    await self._bot.send_photo(
                        chat_id, photo, caption=message.text, parse_mode=ParseMode.HTML,
                        message_thread_id=thread_id, rate_limit_args=BULK,
                    )  # fmt: skip
                    accepted = True
                    return
                except BadRequest as exc:
                    why = _photo_fallback(exc)
                    if why is None:
                        raise
                    refused = why == "image"
                    logger.warning(
                        "Telegram refused an item's image; posting its text alone",
                        extra={"event": "photo_fallback", "chat_id": chat_id,
                               "error": str(exc), "image": photo,
                               "items": list(message.item_ids)},
                    )  # fmt: skip
            await self._bot.send_message(
                chat_id, message.text, parse_mode=ParseMode.HTML,
                link_preview_options=_preview_options(message), message_thread_id=thread_id,
                rate_limit_args=BULK,
            )  # fmt: skip
            if refused:
                accepted = False  # the text went through: the image, not the caption, was bad
        finally:
            if photo is not None and (turn == "ask" or accepted is False):
                self._images.settle(photo, accepted)  # the asker, or news of a known image

    async def _gone(self, chat_id: int, why: str) -> Outcome:
        self._metrics.delivery_failures.labels(reason="gone").inc()
        self._topics.forget_chat(chat_id)
        with contextlib.suppress(Exception):
            await deactivate_chat(chat_id, why, self._on_chat_moved)
        return "gone"
