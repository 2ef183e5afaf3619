"""The forum-topic half of the fake Bot API: topics, where a message goes, what is refused.

What Telegram does, and so what this fake does:

* a forum is a supergroup with ``is_forum``; a topic's id (``message_thread_id``) is the id
  of its "topic created" service message, and General has none (id 1 is its own);
* a user's message in a topic carries ``message_thread_id`` and ``is_topic_message``, and
  replies to the topic's creation when it replies to nothing else; closing and reopening a
  topic sends bots a service message (``forum_topic_closed``/``forum_topic_reopened``);
  deleting one sends nothing;
* a new message goes to its ``message_thread_id``, else to the topic of the message it
  replies to, else to General; a closed topic (or a closed General) is refused with
  :data:`TOPIC_CLOSED`, a deleted or unknown one with :data:`THREAD_NOT_FOUND` (Telegram
  has also been seen answering "TOPIC_DELETED": set ``deleted_topic_error``), and so is
  any thread id in a chat without topics (Telegram accepts reply-thread ids in plain
  supergroups, which the bot never sends). The bot is treated as an admin without
  ``can_manage_topics`` (those may post into closed topics).

Everything runs on the fake's event loop; no locks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from tests.helpers.fake_text import ApiError, as_int

if TYPE_CHECKING:
    from tests.helpers.fake_bot_api import FakeBotAPI

TopicState = Literal["open", "closed", "deleted"]
# What supergroups answer for a deleted topic (tdlib/telegram-bot-api#854); Telegram has also
# been seen answering "Bad Request: TOPIC_DELETED" (set FakeForums.deleted_topic_error).
THREAD_NOT_FOUND = "Bad Request: message thread not found"
TOPIC_CLOSED = "Bad Request: TOPIC_CLOSED"
# Telegram ids at or below this are supergroups/channels ("-100…").
SUPERGROUP_ID_LIMIT = -1_000_000_000_000


@dataclass
class ForumTopic:
    """A topic of a forum supergroup; its id is that of its "topic created" service message."""

    thread_id: int
    name: str
    state: TopicState = "open"
    icon_color: int = 0x6FB9F0


class FakeForums:
    """Forum state of one :class:`FakeBotAPI`: topics, their states, each message's topic."""

    def __init__(self, api: FakeBotAPI) -> None:
        self._api = api
        # Forum supergroups: chat id -> thread id -> topic; General is not in it.
        self.forums: dict[int, dict[int, ForumTopic]] = {}
        self.closed_general: set[int] = set()
        self.deleted_topic_error = THREAD_NOT_FOUND
        # (forum chat, message id) -> its topic (None: General), for replies without a thread.
        self._message_topics: dict[tuple[int, int], int | None] = {}

    # ------------------------------------------------------------------ driving the bot

    def make_forum(self, chat_id: int, *, title: str | None = None) -> dict[str, Any]:
        """Make ``chat_id`` a supergroup with topics enabled (``is_forum``); return the chat."""
        if chat_id > SUPERGROUP_ID_LIMIT:
            raise ValueError("forums are supergroups: use a -100… id")
        api = self._api
        chat = api.set_chat(chat_id, "supergroup", title=title)
        api.chats[chat_id]["is_forum"] = True
        if chat_id not in self.forums:
            self.forums[chat_id] = {}
            api._next_message_id(chat_id)  # id 1 is General's; topics never get it
        return chat | {"is_forum": True}

    def create_topic(self, chat_id: int, name: str) -> int:
        """Create a topic in a forum (as ``createForumTopic`` does); return its thread id."""
        topics = self.forums.get(chat_id)
        if topics is None:
            raise ValueError(f"chat {chat_id} is not a forum (make_forum first)")
        thread_id = self._api._next_message_id(chat_id)
        topics[thread_id] = ForumTopic(thread_id, name)
        self._message_topics[(chat_id, thread_id)] = thread_id
        return thread_id

    def set_state(
        self, chat_id: int, thread_id: int | None, state: TopicState, by: int, announce: bool
    ) -> None:
        """Close or reopen a topic (None: General); ``announce`` queues the service message."""
        if thread_id is None:
            if chat_id not in self.forums:
                raise ValueError(f"chat {chat_id} is not a forum")
            if state == "closed":
                self.closed_general.add(chat_id)
            else:
                self.closed_general.discard(chat_id)
            return
        topic = self._topic(chat_id, thread_id)
        if topic.state == "deleted":
            raise ValueError(f"topic {thread_id} was deleted")
        topic.state = state
        if announce:
            event = "forum_topic_closed" if state == "closed" else "forum_topic_reopened"
            message = self.topic_message(chat_id, thread_id, by)
            message[event] = {}
            self._api.add_update({"message": message})

    def delete_topic(self, chat_id: int, thread_id: int) -> None:
        """Delete a topic with its messages (Telegram sends bots no update for this)."""
        self._topic(chat_id, thread_id).state = "deleted"

    def delete_message(self, chat_id: int, message_id: int) -> None:
        """A user deleted a message: replies to it no longer find its topic."""
        self._message_topics.pop((chat_id, message_id), None)

    def is_topic(self, chat_id: int, thread_id: int) -> bool:
        """Whether ``thread_id`` is a topic of the forum ``chat_id`` (not a reply thread)."""
        return thread_id in self.forums.get(chat_id, {})

    def topic_message(self, chat_id: int, thread_id: int, user_id: int) -> dict[str, Any]:
        """A new message in a topic, as Telegram shows it to bots (without its content)."""
        api = self._api
        topic = self._topic(chat_id, thread_id)
        message_id = api._next_message_id(chat_id)
        self._message_topics[(chat_id, message_id)] = thread_id
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": api._chat(chat_id),
            "from": api._user(user_id, None),
            "message_thread_id": thread_id,
            "is_topic_message": True,
            # Every topic message that replies to nothing replies to the topic's creation.
            "reply_to_message": {
                "message_id": thread_id,
                "date": int(time.time()),
                "chat": api._chat(chat_id),
                "message_thread_id": thread_id,
                "is_topic_message": True,
                "forum_topic_created": {"name": topic.name, "icon_color": topic.icon_color},
            },
        }

    # ------------------------------------------------------------------ placing messages

    def place(self, chat_id: int, params: dict[str, Any]) -> int | None:
        """The topic a new message goes to (None: General), or Telegram's refusal.

        ``message_thread_id`` wins; without it a reply goes to the topic of the message it
        answers (a missing one, with ``allow_sending_without_reply``, leaves it in General).
        """
        raw = params.get("message_thread_id")
        thread_id: int | None
        if raw is not None:
            if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
                raise ApiError(400, THREAD_NOT_FOUND)
            thread_id = raw
        else:
            reply = params.get("reply_parameters")
            replied = as_int(reply.get("message_id"), 0) if isinstance(reply, dict) else 0
            thread_id = self._message_topics.get((chat_id, replied))
        topics = self.forums.get(chat_id)
        if thread_id is None:
            if chat_id in self.closed_general:
                raise ApiError(400, TOPIC_CLOSED)
            return None
        topic = topics.get(thread_id) if topics is not None else None
        if topic is None:
            raise ApiError(400, THREAD_NOT_FOUND)
        if topic.state == "deleted":
            raise ApiError(400, self.deleted_topic_error)
        if topic.state == "closed":
            raise ApiError(400, TOPIC_CLOSED)
        return thread_id

    def note(self, chat_id: int, message_id: int, thread_id: int | None) -> None:
        """Remember the topic of a new message in a forum (replies to it go there too)."""
        if chat_id in self.forums:
            self._message_topics[(chat_id, message_id)] = thread_id

    def _topic(self, chat_id: int, thread_id: int) -> ForumTopic:
        topic = self.forums.get(chat_id, {}).get(thread_id)
        if topic is None:
            raise ValueError(f"no topic {thread_id} in chat {chat_id}")
        return topic
