"""Forum topics: where a subscription posts, and what a closed or deleted topic means.

A subscription added inside a forum topic keeps that topic's ``thread_id`` in its options,
and its posts and digests go there (``message_thread_id``); one added in General — or in
any chat without topics — posts to the chat itself. A chat follows a feed once, so ``/add``
of a feed the chat already follows *moves* it to where the command was sent
(:func:`place`): the last place an admin asked for wins, nothing is sent twice, and moving
back is the same command.

Telegram refuses a send into a topic that cannot take it with a 400, and the ordinary rule
(log and skip a rejected message) would silently lose every item meant for that topic:

* ``Bad Request: TOPIC_CLOSED`` — an admin closed the topic (General included). Closing is
  undone by reopening, so the items wait: their cursors stay, the chat is told once (in
  General) per closing, and delivery is retried until the topic takes messages again. When
  General cannot take the note (it is the closed topic, or closed too), the chat's known
  managers (``Chat.managers``: users who manage it from their private chat) are told
  privately instead, in their own language; one who never started the bot (403) is skipped.
  A closing counts as told only once a note arrived (or nobody could ever be reached: that
  is logged), so a note lost to a network error is tried again with the next retry.
* ``Bad Request: message thread not found`` (what supergroups answer for a deleted topic,
  and for one bots can no longer reach) or ``Bad Request: TOPIC_DELETED`` — the topic will
  not come back, so waiting would wait forever. Its subscriptions move to General, where
  their waiting items are then delivered, with a note saying how to move them elsewhere or
  stop them. Moving (rather than pausing) means nothing is lost and no admin has to act for
  the news to keep coming; an admin who deleted the topic to get rid of the feed reads the
  note and sends ``/remove``.

:class:`TopicKeeper` remembers which topics were reported closed, so a closed topic yields
one note however many retries and new items meet it. The memory is per process (a topic
still closed after a restart is reported once more); it is forgotten as soon as a message
reaches the topic again or Telegram reports it reopened.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from telegram.error import BadRequest

from bot.formatting import esc
from bot.i18n import Translator, chat_translator
from bot.models import Backlog, Subscription, display_title
from bot.services.metrics import Metrics
from bot.storage import StorageService

logger = logging.getLogger(__name__)

TopicTrouble = Literal["closed", "deleted"]
# Telegram's descriptions (after "Bad Request: "), lower-cased: the one definition of each.
_CLOSED_ERRORS = ("topic_closed",)
_DELETED_ERRORS = ("message thread not found", "topic_deleted")
# Supergroup ids are -100<internal id>; t.me/c/<internal id>/<topic> opens the topic.
_SUPERGROUP_BASE = -1_000_000_000_000
NOTE_TITLES_MAX = 10  # feeds named in a note; the rest are counted
# What sending a note came to: "refused" (the chat or user cannot be written to — General
# closed, a user who never started the bot or blocked it, a chat gone — so trying again
# cannot help) or "failed" (a network error or the like: worth another try).
NoteOutcome = Literal["sent", "refused", "failed"]
# Sends a note to a chat (in a forum: General) or a user's private chat; never raises for
# chat-level problems.
SendNote = Callable[[int, str], Awaitable[NoteOutcome]]


def topic_trouble(exc: BadRequest) -> TopicTrouble | None:
    """Whether Telegram refused a send because of its topic: closed, deleted, or neither."""
    text = exc.message.lower()
    if any(marker in text for marker in _CLOSED_ERRORS):
        return "closed"
    if any(marker in text for marker in _DELETED_ERRORS):
        return "deleted"
    return None


def topic_options(thread_id: int | None) -> dict[str, Any]:
    """Subscription options placing a new subscription in ``thread_id`` (None: General)."""
    return {} if thread_id is None else {"thread_id": thread_id}


def topic_link(chat_id: int, thread_id: int) -> str | None:
    """A t.me link that opens the topic for the chat's members (supergroups only)."""
    if chat_id > _SUPERGROUP_BASE:
        return None
    return f"https://t.me/c/{_SUPERGROUP_BASE - chat_id}/{thread_id}"


def group_by_topic(backlogs: Sequence[Backlog]) -> list[tuple[int | None, list[Backlog]]]:
    """Split a chat's backlogs by the topic they post to, in order of first appearance.

    Each group becomes its own messages (and its own digest): a message goes to one topic.
    """
    groups: dict[int | None, list[Backlog]] = {}
    for backlog in backlogs:
        thread = backlog.sub.thread_id if backlog.sub is not None else None
        groups.setdefault(thread, []).append(backlog)
    return list(groups.items())


@dataclass(frozen=True, slots=True)
class Placement:
    """What :func:`place` did: ``moved`` from ``previous`` (a topic id, None = General)."""

    moved: bool
    previous: int | None = None


async def place(
    storage: StorageService, chat_id: int, url: str, thread_id: int | None
) -> Placement:
    """Make the chat's subscription to ``url`` post to ``thread_id``; durable when changed.

    Raises:
        KeyError: the chat does not follow ``url``.
    """
    current = storage.subscription(chat_id, url)
    if current is None:
        raise KeyError((chat_id, url))
    if current.thread_id == thread_id:
        return Placement(moved=False, previous=thread_id)

    def move(sub: Subscription) -> None:
        sub.thread_id = thread_id

    await storage.update_subscription(chat_id, url, move)
    logger.info(
        "subscription moved to another topic",
        extra={"event": "topic_moved", "chat_id": chat_id, "url": url,
               "thread_id": thread_id, "previous_thread_id": current.thread_id},
    )  # fmt: skip
    return Placement(moved=True, previous=current.thread_id)


async def move_topic_to_general(
    storage: StorageService, chat_id: int, thread_id: int
) -> list[Subscription]:
    """Move every subscription of a deleted topic to General; return them (before the move)."""
    subs = [s for s in storage.subscriptions(chat_id) if s.thread_id == thread_id]
    for sub in subs:
        await place(storage, chat_id, sub.url, None)
    return subs


def feed_titles(storage: StorageService, subs: Sequence[Subscription], t: Translator) -> str:
    """The subscriptions' display titles, bold and escaped, at most NOTE_TITLES_MAX named."""
    names = []
    for sub in subs[:NOTE_TITLES_MAX]:
        state = storage.feed_state(sub.url)
        title = display_title(sub.title, state.title if state is not None else "", sub.url)
        names.append(f"<b>{esc(title[:120])}</b>")
    text = ", ".join(names)
    rest = len(subs) - NOTE_TITLES_MAX
    if rest > 0:
        text += t.ngettext(" and %(n)d more feed", " and %(n)d more feeds", rest) % {"n": rest}
    return text


def closed_note(t: Translator, chat_id: int, thread_id: int, feeds: str) -> str:
    """The one note a chat gets (in General) when a topic its feeds post to is closed.

    A closed General itself is told to the managers instead (:func:`private_closed_note`).
    """
    link = topic_link(chat_id, thread_id)
    topic = f'<a href="{esc(link)}">{esc(t.gettext("topic"))}</a>' if link else t.gettext("topic")
    return t.gettext(
        "🔒 The %(topic)s for %(feeds)s is closed, so its new items wait until it is reopened "
        "(or send /add with the feed's URL in another topic or here in General to post it "
        "there)."
    ) % {"topic": topic, "feeds": feeds}


def private_closed_note(
    t: Translator, chat_id: int, chat_title: str, thread_id: int | None, feeds: str
) -> str:
    """The closed-topic note for a manager's private chat, when the chat's General refuses it."""
    chat = f"<b>{esc(chat_title[:120] or str(chat_id))}</b>"
    if thread_id is None:
        return t.gettext(
            "🔒 The General topic of %(chat)s is closed, so new items of %(feeds)s wait until it "
            "is reopened (or send /add with the feed's URL inside a topic there to post it in "
            "that topic)."
        ) % {"chat": chat, "feeds": feeds}
    link = topic_link(chat_id, thread_id)
    topic = f'<a href="{esc(link)}">{esc(t.gettext("topic"))}</a>' if link else t.gettext("topic")
    return t.gettext(
        "🔒 The %(topic)s of %(chat)s for %(feeds)s is closed, and so is its General topic, so "
        "its new items wait until the topic is reopened (or send /add with the feed's URL "
        "inside another topic there to post it in that topic)."
    ) % {"topic": topic, "chat": chat, "feeds": feeds}


def deleted_note(t: Translator, feeds: str) -> str:
    """The note a chat gets when a deleted topic's feeds were moved to General."""
    return t.gettext(
        "🗂 The topic for %(feeds)s was deleted, so its items are posted here in General now. "
        "To post a feed in a topic again, send /add with its URL inside that topic; /remove "
        "stops it."
    ) % {"feeds": feeds}


class TopicKeeper:
    """What the dispatcher does when Telegram refuses a topic (see the module docstring).

    Remembers which topics were reported closed, per process. Only the delivery path
    touches it, from the event loop: no lock needed.
    """

    def __init__(
        self,
        storage: StorageService,
        metrics: Metrics,
        send_note: SendNote,
        send_private: SendNote,
    ) -> None:
        self._storage = storage
        self._metrics = metrics
        self._send_note = send_note
        self._send_private = send_private
        self._closed: set[tuple[int, int | None]] = set()  # closings already told

    async def closed(self, chat_id: int, thread_id: int | None) -> None:
        """The topic refused a message as closed: tell the chat (or its managers), once."""
        self._metrics.delivery_failures.labels(reason="topic_closed").inc()
        logger.warning(
            "forum topic closed; its items wait",
            extra={"event": "topic_closed", "chat_id": chat_id, "thread_id": thread_id},
        )
        key = (chat_id, thread_id)
        if key in self._closed:
            return  # the chat was told when it closed
        subs = [s for s in self._storage.subscriptions(chat_id) if s.thread_id == thread_id]
        if thread_id is not None:
            t = self._translator(chat_id)
            note = closed_note(t, chat_id, thread_id, feed_titles(self._storage, subs, t))
            outcome = await self._send_note(chat_id, note)
            if outcome == "sent":
                self._closed.add(key)
            if outcome != "refused":
                return  # told, or to be tried again with the next retry of the delivery
        # General refused the note, or is the closed topic itself (no use trying it).
        if await self._tell_managers(chat_id, thread_id, subs):
            self._closed.add(key)

    async def _tell_managers(
        self, chat_id: int, thread_id: int | None, subs: Sequence[Subscription]
    ) -> bool:
        """Tell the chat's managers privately; return whether that is done (not to retry).

        Done when someone was told, or when nobody can be: no managers known, or all of
        them unreachable (retrying cannot help; the log says so). Not done when every try
        failed for a passing reason: the next retry of the delivery asks again.
        """
        chat = self._storage.chat(chat_id)
        if chat is None or not chat.active:
            return True  # the chat went away meanwhile: nobody to tell about it
        outcomes: dict[int, NoteOutcome] = {}
        for user_id in chat.managers:  # a handful: the admins who manage it from private chats
            t = self._translator(user_id)
            feeds = feed_titles(self._storage, subs, t)
            note = private_closed_note(t, chat_id, chat.title, thread_id, feeds)
            outcomes[user_id] = await self._send_private(user_id, note)
        told = [u for u, outcome in outcomes.items() if outcome == "sent"]
        unreachable = [u for u, outcome in outcomes.items() if outcome == "refused"]
        failed = [u for u, outcome in outcomes.items() if outcome == "failed"]
        logger.log(
            logging.INFO if told else logging.WARNING,
            "closed-topic note sent to the chat's managers privately"
            if told
            else "nobody could be told that a forum topic is closed",
            extra={"event": "topic_closed_private_note", "chat_id": chat_id,
                   "thread_id": thread_id, "told": told, "unreachable": unreachable,
                   "failed": failed},
        )  # fmt: skip
        return bool(told) or not failed

    async def deleted(self, chat_id: int, thread_id: int) -> set[str]:
        """The topic is gone: move its subscriptions to General, say so; return their URLs."""
        self._metrics.delivery_failures.labels(reason="topic_deleted").inc()
        moved = await move_topic_to_general(self._storage, chat_id, thread_id)
        logger.warning(
            "forum topic deleted; its subscriptions moved to General",
            extra={"event": "topic_deleted", "chat_id": chat_id, "thread_id": thread_id,
                   "feeds": [s.url for s in moved]},
        )  # fmt: skip
        self._closed.discard((chat_id, thread_id))
        if moved:
            t = self._translator(chat_id)
            await self._send_note(chat_id, deleted_note(t, feed_titles(self._storage, moved, t)))
        return {s.url for s in moved}

    def open(self, chat_id: int, thread_id: int | None) -> bool:
        """The topic takes messages again (a send succeeded, or it was reopened).

        Returns whether it had been reported closed.
        """
        key = (chat_id, thread_id)
        if key in self._closed:
            self._closed.discard(key)
            return True
        return False

    def forget_chat(self, chat_id: int) -> None:
        """Drop what is known about a chat that went away (O(closed topics): rare, few)."""
        self._closed = {key for key in self._closed if key[0] != chat_id}

    def _translator(self, chat_id: int) -> Translator:
        """Notes are in the chat's /language (English until it chooses one)."""
        chat = self._storage.chat(chat_id)
        return chat_translator(chat.language if chat else None)
