"""A fake Telegram Bot API server for tests.

The real python-telegram-bot ``Application`` talks to it over real HTTP (aiohttp's server on
127.0.0.1), so tests exercise the same request/response/error paths the bot meets in
production: long polling, ``RetryAfter``, ``Forbidden``, ``ChatMigrated``, HTML rejection and
a Bot API that stops answering. Everything runs on the test's event loop; no locks are needed
because every piece of state is only touched from that one loop.

Run standalone (for container and load tests driven from another process)::

    python -m tests.helpers.fake_bot_api --port 0 --token 123:ABC

prints ``READY http://127.0.0.1:<port>`` and serves a small JSON control API under
``/_control/`` (see :mod:`tests.helpers.fake_control`). ``--enforce-limits`` turns on Telegram's
flood limits (see :class:`FloodLimits`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal

from aiohttp import web

from tests.helpers.fake_buttons import FakeButtons, check_reply_markup
from tests.helpers.fake_control import CONTROL_PREFIX, FakeControl, main
from tests.helpers.fake_files import FILE_URL_PREFIX, FakeFiles
from tests.helpers.fake_forums import (
    SUPERGROUP_ID_LIMIT,
    THREAD_NOT_FOUND,
    TOPIC_CLOSED,
    FakeForums,
    ForumTopic,
)
from tests.helpers.fake_limits import FloodGate, FloodLimits, is_message_method
from tests.helpers.fake_members import FakeMembers, chat_member, forbidden_description
from tests.helpers.fake_photos import (
    PHOTO_BAD_URL,
    PHOTO_NOT_IMAGE,
    PHOTO_UNREACHABLE,
    FakePhotos,
)
from tests.helpers.fake_text import (
    MAX_CAPTION_LENGTH,
    MAX_MESSAGE_LENGTH,
    ApiError,
    TelegramHTMLError,
    as_int,
    message_text,
    telegram_html_to_plain,
    utf16_len,
)
from tests.helpers.fake_webhook import GET_UPDATES_CONFLICT, FakeWebhook
from tests.helpers.fake_wire import (
    FRONT_END_STATUSES,
    bot_api_methods,
    error_body,
    front_end_error,
    not_found,
    read_params,
)
from tests.helpers.local_server import LocalServer

logger = logging.getLogger(__name__)

# What tests import from here; the text, photo and topic rules live in their own modules.
__all__ = [
    "BOT_USERNAME",
    "DEFAULT_TOKEN",
    "MAX_CAPTION_LENGTH",
    "MAX_MESSAGE_LENGTH",
    "PHOTO_BAD_URL",
    "PHOTO_NOT_IMAGE",
    "PHOTO_UNREACHABLE",
    "THREAD_NOT_FOUND",
    "TOPIC_CLOSED",
    "ApiCall",
    "FakeBotAPI",
    "FloodLimits",
    "ForumTopic",
    "TelegramHTMLError",
    "main",
    "telegram_html_to_plain",
]

DEFAULT_TOKEN = "123456789:" + "A" * 35
BOT_USERNAME = "newsbot_test_bot"
BOT_FIRST_NAME = "NewsBot Test"
_TOKEN_RE = re.compile(r"\d+:[A-Za-z0-9_-]+")
_PATH_RE = re.compile(r"/bot([^/]+)/([^/]+)")
# Update kinds Telegram leaves out unless asked for explicitly in allowed_updates.
_OPT_IN_UPDATE_KINDS = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


# --------------------------------------------------------------------------- recording types


@dataclass
class ApiCall:
    """One request the fake received (with a valid token).

    Attributes:
        method: canonical Bot API method name (e.g. ``sendMessage``) or the name as sent.
        params: decoded parameters (JSON-encoded form fields are decoded).
        time: ``time.monotonic()`` when the request arrived.
        status: HTTP status answered; 0 while the request is still pending (hung, delayed).
    """

    method: str
    params: dict[str, Any]
    time: float
    status: int = 0


@dataclass
class _Failure:
    status: int
    description: str
    parameters: dict[str, Any] | None
    remaining: int
    html: bool = False


def valid_token(token: str) -> bool:
    """Whether ``token`` looks like a bot token (``<digits>:<secret>``)."""
    return _TOKEN_RE.fullmatch(token) is not None


# --------------------------------------------------------------------------- the server


class FakeBotAPI(LocalServer):
    """An in-process Telegram Bot API good enough for python-telegram-bot.

    Configure the bot with ``base_url=f"{fake.base_url}/bot"``. Behaviours are set through
    public attributes (``blocked_chats``, ``migrated_chats``, ``unknown_chats``) and methods
    (:meth:`set_admin`, :meth:`fail_next`, :meth:`set_delay`, :meth:`hang`,
    :meth:`set_limits`). With ``enforce_limits=True`` it answers 429 like Telegram when the
    bot goes over the flood limits (:mod:`tests.helpers.fake_limits`, ``self.flood``);
    ``limit_hits`` counts those 429s. Chat members, and what getChat/getChatMember answer,
    live in :mod:`tests.helpers.fake_members` (``self.members``).

    Forum supergroups (:mod:`tests.helpers.fake_forums`, ``self.topics``): :meth:`make_forum`,
    :meth:`create_topic`, :meth:`close_topic`, :meth:`reopen_topic`, :meth:`delete_topic`;
    ``send_command(..., thread_id=)`` sends into a topic; every sent message is placed like
    Telegram places it (its topic, or a refusal) and records its ``thread_id`` (None: General
    or a chat without topics). Photos (:mod:`tests.helpers.fake_photos`, ``self.photos``):
    sendPhoto and :meth:`break_photo`. Texts and captions are checked by
    :mod:`tests.helpers.fake_text` (Telegram HTML, UTF-16 lengths). Buttons, files and webhooks
    live in their own halves too (``self.buttons``, ``self.files``, ``self.webhook``).
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        enforce_limits: bool = False,
        limits: FloodLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not valid_token(token):
            raise ValueError("malformed bot token (expected '<digits>:<secret>')")
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.bot_user: dict[str, Any] = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": BOT_FIRST_NAME,
            "username": BOT_USERNAME,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        super().__init__(host, port)
        self.calls: list[ApiCall] = []
        self.sent: list[dict[str, Any]] = []
        self.blocked_chats: set[int] = set()
        self.migrated_chats: dict[int, int] = {}
        self.unknown_chats: set[int] = set()
        self.left_chats: list[int] = []
        self.chats: dict[int, dict[str, Any]] = {}
        self._commands: dict[str, list[Any]] = {}
        self._updates: list[dict[str, Any]] = []
        self._next_update_id = 1
        self._message_ids: dict[int, int] = {}
        self._allowed_updates: frozenset[str] | None = None
        self._failures: dict[str, deque[_Failure]] = {}
        self._delays: dict[str, float] = {}
        # Flood limits on the fake's clock, injectable so tests need not race real time
        # (tests/helpers/fake_limits.py).
        self.flood = FloodGate(clock, enforce_limits, limits)
        # Chat members: statuses, rights, what getChat/getChatMember see (fake_members.py).
        self.members = FakeMembers(self)
        # Set while requests may proceed; cleared by hang(True).
        self._released = asyncio.Event()
        self._released.set()
        # Replaced after every state change so waiters wake up (see _pulse()).
        self._changed = asyncio.Event()
        # setWebhook/getWebhookInfo and pushing updates to the bot (tests/helpers/fake_webhook.py).
        self.webhook = FakeWebhook(self)
        # Inline keyboards: editing messages, answering and pressing buttons (fake_buttons.py).
        self.buttons = FakeButtons(self)
        # Documents, getFile, downloads and sendDocument (tests/helpers/fake_files.py).
        self.files = FakeFiles(self)
        # Forum topics and where each message goes (tests/helpers/fake_forums.py).
        self.topics = FakeForums(self)
        # sendPhoto and the photo URLs Telegram can't use (tests/helpers/fake_photos.py).
        self.photos = FakePhotos(self)
        # The /_control/ API for drivers in another process (tests/helpers/fake_control.py).
        self.control = FakeControl(self)
        # Messages users sent that a later message may reply to, by (chat_id, message_id).
        self.user_messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
            "getme": self._get_me,
            "getupdates": self._get_updates,
            "deletewebhook": self._delete_webhook,
            "setwebhook": self.webhook.set,
            "getwebhookinfo": self.webhook.info,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "deletemycommands": self._delete_my_commands,
            "logout": self._true,
            "close": self._true,
            "sendmessage": self._send_message,
            "sendphoto": self.photos.send_photo,
            "getchat": self._get_chat,
            "getchatmember": self.members.get_chat_member,
            "getchatadministrators": self.members.get_chat_administrators,
            "leavechat": self._leave_chat,
            "answercallbackquery": self.buttons.answer_callback_query,
            "editmessagetext": self.buttons.edit_message_text,
            "editmessagereplymarkup": self.buttons.edit_message_reply_markup,
            "getfile": self.files.get_file,
            "senddocument": self.files.send_document,
        }

    # ------------------------------------------------------------------ lifecycle

    def _on_stop(self) -> None:
        # Release hung requests and long polls so the server can shut down at once.
        self._released.set()
        self._pulse()

    async def stop(self) -> None:
        """Stop pushing to a webhook, then shut down as every fake does."""
        await self.webhook.stop()
        await super().stop()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        return await self._dispatch(request)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``; give PTB ``f"{base_url}/bot"``."""
        host = "127.0.0.1" if self._host in ("", "0.0.0.0") else self._host
        return f"http://{host}:{self.port}"

    # ------------------------------------------------------------------ behaviour knobs

    def set_admin(
        self, chat_id: int, user_id: int, status: str = "administrator", **rights: bool
    ) -> None:
        """Set what getChatMember answers for ``user_id`` in ``chat_id`` (default "member").

        ``rights`` override the flags of an "administrator" (every right is granted unless
        given here, e.g. ``can_post_messages=False``) or a "restricted" member (every
        permission is denied unless given, e.g. ``can_send_messages=True``). Use
        ``fake.bot_id`` as ``user_id`` to set the bot's own status.
        """
        self.members.set_status(chat_id, user_id, status, **rights)

    def start_private_chat(self, user_id: int) -> None:
        """``user_id`` started the bot: from now on it may message them privately.

        Telegram refuses a message to a user who never did (403 "bot can't initiate
        conversation with a user"); a message of theirs in their private chat
        (:meth:`send_command`) counts as starting it too.
        """
        self.members.start_private_chat(user_id)

    def set_chat(
        self,
        chat_id: int,
        chat_type: str,
        *,
        title: str | None = None,
        username: str | None = None,
    ) -> dict[str, Any]:
        """Register a chat's type/title (otherwise inferred from the id) and return it."""
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = title or f"User{chat_id}"
        else:
            chat["title"] = title or f"Chat {chat_id}"
        if username:
            chat["username"] = username
        if chat_id in self.forums and chat_type == "supergroup":
            chat["is_forum"] = True
        self.chats[chat_id] = chat
        return dict(chat)

    def make_forum(self, chat_id: int, *, title: str | None = None) -> dict[str, Any]:
        """Make ``chat_id`` a supergroup with topics enabled (``is_forum``); return the chat."""
        return self.topics.make_forum(chat_id, title=title)

    def create_topic(self, chat_id: int, name: str) -> int:
        """Create a topic in a forum (as ``createForumTopic`` does); return its thread id."""
        return self.topics.create_topic(chat_id, name)

    def close_topic(
        self, chat_id: int, thread_id: int | None, *, by: int = 1, announce: bool = True
    ) -> None:
        """Close a topic (None: General); ``announce`` queues the service message bots get."""
        self.topics.set_state(chat_id, thread_id, "closed", by, announce)

    def reopen_topic(
        self, chat_id: int, thread_id: int | None, *, by: int = 1, announce: bool = True
    ) -> None:
        """Reopen a closed topic (None: General), announcing it like Telegram."""
        self.topics.set_state(chat_id, thread_id, "open", by, announce)

    def delete_topic(self, chat_id: int, thread_id: int) -> None:
        """Delete a topic with its messages (Telegram sends bots no update for this)."""
        self.topics.delete_topic(chat_id, thread_id)

    def delete_message(self, chat_id: int, message_id: int) -> None:
        """A user deleted a message: replies to it no longer find its topic."""
        self.topics.delete_message(chat_id, message_id)

    def topic_messages(self, chat_id: int, thread_id: int | None) -> list[dict[str, Any]]:
        """Messages the bot posted in one topic of ``chat_id`` (None: General), oldest first."""
        return [m for m in self.sent_messages(chat_id) if m["thread_id"] == thread_id]

    @property
    def forums(self) -> dict[int, dict[int, ForumTopic]]:
        """Forum supergroups: chat id -> thread id -> topic (General is not in it)."""
        return self.topics.forums

    @property
    def closed_general(self) -> set[int]:
        """Forums whose General topic is closed."""
        return self.topics.closed_general

    @property
    def deleted_topic_error(self) -> str:
        """What sending into a deleted topic answers (default :data:`THREAD_NOT_FOUND`)."""
        return self.topics.deleted_topic_error

    @deleted_topic_error.setter
    def deleted_topic_error(self, description: str) -> None:
        self.topics.deleted_topic_error = description

    def break_photo(self, url: str, description: str = PHOTO_UNREACHABLE) -> None:
        """Make sendPhoto with ``url`` fail as Telegram does for an image it cannot use.

        ``description`` is one of :data:`PHOTO_UNREACHABLE` (the default),
        :data:`PHOTO_BAD_URL` or :data:`PHOTO_NOT_IMAGE` (see :class:`FakePhotos`).
        """
        self.photos.break_photo(url, description)

    @property
    def photo_errors(self) -> dict[str, str]:
        """Photo URL → the 400 description sendPhoto answers for it (see :meth:`break_photo`)."""
        return self.photos.errors

    def fail_next(
        self,
        method: str,
        status: int = 429,
        *,
        times: int = 1,
        retry_after: int = 1,
        description: str | None = None,
        parameters: dict[str, Any] | None = None,
        body: Literal["json", "html"] | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail with ``status``.

        429 answers "Too Many Requests: retry after N" with ``parameters.retry_after``; other
        statuses answer their HTTP phrase (e.g. 500 "Internal Server Error") unless
        ``description`` is given. 502, 503 and 504 come from Telegram's nginx front end, so by
        default they answer its HTML page (PTB then raises ``NetworkError`` "Bad Gateway
        (502). Parsing the server response ... failed"); ``body`` forces "json" or "html".
        Calls queue up: ``fail_next(m, 502, times=2)`` then ``fail_next(m, 500)`` fails the
        next three calls 502, 502, 500.
        """
        if times < 1:
            raise ValueError("times must be at least 1")
        html = status in FRONT_END_STATUSES if body is None else body == "html"
        if html and status < 500:
            raise ValueError("only 5xx answers come as an HTML page")
        if status == 429:
            description = description or f"Too Many Requests: retry after {retry_after}"
            parameters = {"retry_after": retry_after, **(parameters or {})}
        elif description is None:
            try:
                description = HTTPStatus(status).phrase
            except ValueError:
                description = "Error"
        failure = _Failure(status, description, parameters, times, html)
        self._failures.setdefault(method.lower(), deque()).append(failure)

    def set_delay(self, method: str, seconds: float) -> None:
        """Delay every answer to ``method`` by ``seconds`` (0 removes the delay)."""
        if seconds <= 0:
            self._delays.pop(method.lower(), None)
        else:
            self._delays[method.lower()] = seconds

    def hang(self, hung: bool = True) -> None:
        """Stall every Bot API request until ``hang(False)`` (or the client gives up)."""
        if hung:
            self._released.clear()
        else:
            self._released.set()

    def set_limits(self, enforce: bool = True, **overrides: float) -> FloodLimits:
        """Turn flood-limit enforcement on or off, optionally changing :class:`FloodLimits`.

        Keyword arguments are :class:`FloodLimits` fields (e.g. ``per_chat_burst=100``).
        Changing limits starts every bucket afresh (full). Returns the limits now in force.

        Raises:
            TypeError: for an unknown limit name. ValueError: for a non-positive value.
        """
        return self.flood.configure(enforce, **overrides)

    @property
    def limit_hits(self) -> int:
        """How many 429s the flood limits produced (injected ones not counted)."""
        return sum(self.flood.hits_by_scope.values())

    @property
    def limit_hits_by_scope(self) -> dict[str, int]:
        """The flood limits' 429s per limit: ``{"bot": n, "group": n, "chat": n}``."""
        return self.flood.hits_by_scope

    @property
    def enforce_limits(self) -> bool:
        """Whether the flood limits are enforced (see :meth:`set_limits`)."""
        return self.flood.enforce

    @enforce_limits.setter
    def enforce_limits(self, enforce: bool) -> None:
        self.flood.enforce = enforce

    @property
    def limits(self) -> FloodLimits:
        """The flood limits in force (see :class:`FloodLimits`)."""
        return self.flood.limits

    @limits.setter
    def limits(self, limits: FloodLimits) -> None:
        self.flood.limits = limits

    # ------------------------------------------------------------------ updates

    def add_update(self, update: dict[str, Any]) -> int:
        """Queue an update for getUpdates, assigning its ``update_id``; return the id."""
        update_id = self._next_update_id
        self._next_update_id += 1
        queued = {**update, "update_id": update_id}
        self._updates.append(queued)
        self.members.note_update(queued)
        self._pulse()
        return update_id

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates not yet confirmed by an offset (copies of the list, not the dicts)."""
        return list(self._updates)

    def send_command(
        self,
        text: str,
        *,
        chat_id: int,
        user_id: int,
        chat_type: str = "private",
        username: str | None = None,
        chat_title: str | None = None,
        thread_id: int | None = None,
        language_code: str | None = "en",
        reply_to: int | None = None,
    ) -> int:
        """Queue a user's text message; a leading ``/cmd[@bot]`` gets its bot_command entity.

        ``thread_id``: a forum topic of ``chat_id`` to send it in (:meth:`create_topic`), or
        any other id for a reply thread (a reply in General or in a chat without topics
        carries its thread's id, but is no topic message). ``language_code`` is the sender's
        Telegram language (an IETF tag); ``None`` leaves the field out, as Telegram does for
        some users. ``reply_to``: the id of a message in this chat (one the bot sent, or one
        in :attr:`user_messages`) that this one replies to.
        """
        chat = self._chat_for_update(chat_id, chat_type, chat_title, username, user_id)
        if thread_id is not None and self.topics.is_topic(chat_id, thread_id):
            message = self.topics.topic_message(chat_id, thread_id, user_id)
        else:
            message = {"message_id": self._next_message_id(chat_id)}
            if thread_id is not None:
                message["message_thread_id"] = thread_id
            self.topics.note(chat_id, message["message_id"], None)
        message |= {
            "date": int(time.time()),
            "chat": chat,
            "from": self._user(user_id, username, language_code),
            "text": text,
        }
        if reply_to is not None:
            replied = self.user_messages.get((chat_id, reply_to))
            message["reply_to_message"] = dict(replied or self.buttons.message(chat_id, reply_to))
        entities = self._command_entities(text)
        if entities:
            message["entities"] = entities
        return self.add_update({"message": message})

    def send_reply(
        self,
        text: str,
        *,
        reply_to: int,
        chat_id: int,
        user_id: int,
        chat_type: str = "private",
        chat_title: str | None = None,
    ) -> int:
        """Queue a user's text message replying to their earlier message ``reply_to``.

        Telegram puts the whole replied-to message in ``reply_to_message``; only messages
        recorded in :attr:`user_messages` (documents, see :class:`FakeFiles`) can be replied to.
        """
        if (chat_id, reply_to) not in self.user_messages:
            raise ValueError(f"no recorded message {reply_to} in chat {chat_id}")
        return self.send_command(
            text,
            chat_id=chat_id,
            user_id=user_id,
            chat_type=chat_type,
            chat_title=chat_title,
            reply_to=reply_to,
        )

    def channel_post(self, text: str, *, chat_id: int, chat_title: str = "News channel") -> int:
        """Queue a channel post: ``sender_chat`` is the channel and there is no ``from``."""
        chat = self._chat_for_update(chat_id, "channel", chat_title, None, None)
        post: dict[str, Any] = {
            "message_id": self._next_message_id(chat_id),
            "date": int(time.time()),
            "chat": chat,
            "sender_chat": dict(chat),
            "text": text,
        }
        entities = self._command_entities(text)
        if entities:
            post["entities"] = entities
        return self.add_update({"channel_post": post})

    def my_chat_member(
        self,
        chat_id: int,
        chat_type: str,
        old_status: str,
        new_status: str,
        *,
        user_id: int,
        chat_title: str | None = None,
    ) -> int:
        """Queue a ``my_chat_member`` update (the bot added/removed/promoted by ``user_id``).

        Also records the bot's new status so getChatMember for the bot agrees.
        """
        chat = self._chat_for_update(chat_id, chat_type, chat_title, None, user_id)
        self.members.bot_status_changed(chat_id, new_status)
        update = {
            "chat": chat,
            "from": self._user(user_id, None),
            "date": int(time.time()),
            "old_chat_member": chat_member(self.bot_user, old_status, chat_type),
            "new_chat_member": chat_member(self.bot_user, new_status, chat_type),
        }
        return self.add_update({"my_chat_member": update})

    def migrate(self, old_chat_id: int, new_chat_id: int, *, user_id: int = 1) -> int:
        """Queue the service message a group gets when upgraded to a supergroup.

        From then on sendMessage to ``old_chat_id`` answers the migration error.
        """
        chat = self._chat_for_update(old_chat_id, "group", None, None, None)
        self.migrated_chats[old_chat_id] = new_chat_id
        old_title = chat.get("title")
        self.set_chat(new_chat_id, "supergroup", title=old_title)
        message = {
            "message_id": self._next_message_id(old_chat_id),
            "date": int(time.time()),
            "chat": chat,
            "from": self._user(user_id, None),
            "migrate_to_chat_id": new_chat_id,
        }
        return self.add_update({"message": message})

    # ------------------------------------------------------------------ inspection / waiting

    def calls_to(self, method: str) -> list[ApiCall]:
        """Calls of ``method`` (case-insensitive), oldest first."""
        wanted = method.lower()
        return [call for call in self.calls if call.method.lower() == wanted]

    def sent_messages(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """Messages accepted by sendMessage and sendPhoto, oldest first, optionally for one chat.

        Each is a dict: ``method``, ``chat_id``, ``message_id``, ``text`` (as sent; a photo's
        caption), ``plain`` (what the user reads), ``parse_mode``, ``photo`` (sendPhoto's URL,
        else None), ``link_preview_options`` (decoded, or None), ``reply_markup``, ``params``,
        ``thread_id`` (the forum topic, None: General or not a forum).
        """

        return [m for m in self.sent if chat_id is None or m["chat_id"] == chat_id]

    async def wait_for_messages(
        self, count: int, *, chat_id: int | None = None, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Wait until at least ``count`` messages were sent (to ``chat_id``); return them all.

        Raises:
            AssertionError: on timeout, listing what was sent and the recent calls.
        """
        if await self._wait_until(lambda: len(self.sent_messages(chat_id)) >= count, timeout):
            return self.sent_messages(chat_id)
        where = "" if chat_id is None else f" to chat {chat_id}"
        raise AssertionError(
            f"expected {count} message(s){where} within {timeout}s, "
            f"got {len(self.sent_messages(chat_id))}.\n{self.describe()}"
        )

    async def wait_for_call(
        self, method: str, count: int = 1, timeout: float = 10.0
    ) -> list[ApiCall]:
        """Wait until ``method`` was called ``count`` times; return those calls.

        Raises:
            AssertionError: on timeout, listing the calls that were made.
        """
        if await self._wait_until(lambda: len(self.calls_to(method)) >= count, timeout):
            return self.calls_to(method)
        raise AssertionError(
            f"expected {count} call(s) of {method} within {timeout}s, "
            f"got {len(self.calls_to(method))}.\n{self.describe()}"
        )

    def describe(self) -> str:
        """A human summary of sent messages and recent calls, for assertion messages."""
        lines = [f"sent messages ({len(self.sent)}):"]
        lines += [
            f"  chat {m['chat_id']} #{m['message_id']}: "
            + (f"[photo {m['photo']}] " if m.get("photo") else "")
            + repr(m["plain"][:120])
            for m in self.sent
        ]
        recent = self.calls[-20:]
        lines.append(f"last {len(recent)} of {len(self.calls)} calls:")
        for call in recent:
            brief = {
                k: {**v, "data": "…"} if isinstance(v, dict) and "data" in v else v
                for k, v in call.params.items()
                if k != "text"
            }
            lines.append(f"  {call.method} -> {call.status or 'pending'} {brief}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ internals

    def _pulse(self) -> None:
        """Wake everything waiting in _wait_until (single loop: no lock needed)."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0 or self._stopping.is_set():
                return predicate()
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)
        return True

    async def _sleep(self, seconds: float) -> None:
        """Sleep that ends early when the server stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _next_message_id(self, chat_id: int) -> int:
        self._message_ids[chat_id] = self._message_ids.get(chat_id, 0) + 1
        return self._message_ids[chat_id]

    def _chat(self, chat_id: int) -> dict[str, Any]:
        """The registered chat, or one inferred from the id's shape."""
        if chat_id in self.chats:
            return dict(self.chats[chat_id])
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": f"User{chat_id}"}
        if chat_id <= SUPERGROUP_ID_LIMIT:
            return {"id": chat_id, "type": "supergroup", "title": f"Chat {chat_id}"}
        return {"id": chat_id, "type": "group", "title": f"Chat {chat_id}"}

    def _chat_for_update(
        self,
        chat_id: int,
        chat_type: str,
        title: str | None,
        username: str | None,
        user_id: int | None,
    ) -> dict[str, Any]:
        known = self.chats.get(chat_id)
        if known is not None and known["type"] == chat_type and title is None:
            return dict(known)
        if chat_type == "private":
            name = f"User{user_id or chat_id}"
            return self.set_chat(chat_id, "private", title=name, username=username)
        return self.set_chat(chat_id, chat_type, title=title)

    @staticmethod
    def _user(
        user_id: int, username: str | None, language_code: str | None = "en"
    ) -> dict[str, Any]:
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": f"User{user_id}"}
        if language_code is not None:
            user["language_code"] = language_code
        if username:
            user["username"] = username
        return user

    @staticmethod
    def _command_entities(text: str) -> list[dict[str, Any]]:
        if not text.startswith("/") or len(text) < 2 or text[1].isspace():
            return []
        command = text.split(maxsplit=1)[0]
        return [{"type": "bot_command", "offset": 0, "length": utf16_len(command)}]

    def _resolve_chat_id(self, params: dict[str, Any]) -> int:
        """Turn the ``chat_id`` parameter into a known chat id, like Telegram does."""
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise ApiError(400, "Bad Request: chat_id is empty")
        if isinstance(raw, str) and raw.startswith("@"):
            for chat in self.chats.values():
                if chat.get("username", "").lower() == raw[1:].lower():
                    return int(chat["id"])
            raise ApiError(400, "Bad Request: chat not found")
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ApiError(400, "Bad Request: chat not found")
        if raw in self.unknown_chats:
            raise ApiError(400, "Bad Request: chat not found")
        return raw

    # ------------------------------------------------------------------ HTTP plumbing

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return await self.control.handle(request)
        if request.path.startswith(FILE_URL_PREFIX) and request.method == "GET":
            return self.files.serve(request.path)
        match = _PATH_RE.fullmatch(request.path)
        if match is None or match.group(1) != self.token:
            return not_found()
        name = match.group(2)
        lowered = name.lower()
        canonical = bot_api_methods().get(lowered)
        early_error: ApiError | None = None
        try:
            params = await read_params(request)
        except ApiError as err:
            params, early_error = {}, err
        call = ApiCall(method=canonical or name, params=params, time=time.monotonic())
        self.calls.append(call)
        self._pulse()
        try:
            response = await self._answer(call, lowered, canonical is not None, early_error)
        except asyncio.CancelledError:
            call.status = 499  # the client went away (nginx's "client closed request")
            raise
        call.status = response.status
        self._pulse()
        return response

    async def _answer(
        self, call: ApiCall, lowered: str, known: bool, early_error: ApiError | None
    ) -> web.Response:
        # hang(): the request stays open until released, the client disconnects or we stop.
        await self._released.wait()
        delay = self._delays.get(lowered)
        if delay:
            await self._sleep(delay)
        if not known:
            return not_found()
        if early_error is not None:
            return error_body(early_error.status, early_error.description, None)
        failure = self._take_failure(lowered)
        if failure is not None:
            if failure.html:
                return front_end_error(failure.status)
            return error_body(failure.status, failure.description, failure.parameters)
        handler = self._handlers.get(lowered) or (
            self._other_send if is_message_method(lowered) else self._true
        )
        try:
            self.flood.check(lowered, call.params)
            result = await handler(call.params)
        except ApiError as err:
            return error_body(err.status, err.description, err.parameters)
        return web.json_response({"ok": True, "result": result})

    def _take_failure(self, lowered: str) -> _Failure | None:
        queue = self._failures.get(lowered)
        if not queue:
            return None
        failure = queue[0]
        failure.remaining -= 1
        if failure.remaining <= 0:
            queue.popleft()
        return failure

    # ------------------------------------------------------------------ Bot API methods

    async def _true(self, params: dict[str, Any]) -> bool:
        return True

    async def _other_send(self, params: dict[str, Any]) -> bool:
        """A message method not modelled here (copyMessage...): refused as any send is."""
        self._target_chat(params)
        return True

    async def _get_me(self, params: dict[str, Any]) -> dict[str, Any]:
        return dict(self.bot_user)

    async def _delete_webhook(self, params: dict[str, Any]) -> bool:
        if params.get("drop_pending_updates") is True:
            self._updates.clear()
        return await self.webhook.delete(params)

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook.url:
            raise ApiError(409, GET_UPDATES_CONFLICT)
        offset = as_int(params.get("offset"), 0)
        limit = min(max(as_int(params.get("limit"), 100), 1), 100)
        try:
            timeout = max(float(params.get("timeout") or 0), 0.0)
        except (TypeError, ValueError):
            timeout = 0.0
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            # Telegram remembers allowed_updates until the next call that sets it.
            self._allowed_updates = frozenset(allowed) if allowed else None
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        await self._wait_until(lambda: bool(self._deliverable()), timeout)
        return self._deliverable()[:limit]

    def _deliverable(self) -> list[dict[str, Any]]:
        allowed = self._allowed_updates
        out = []
        for update in self._updates:
            kinds = set(update) - {"update_id"}
            if allowed is None:
                if not kinds & _OPT_IN_UPDATE_KINDS:
                    out.append(update)
            elif kinds & allowed:
                out.append(update)
        return out

    @staticmethod
    def _commands_key(params: dict[str, Any]) -> str:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True) + "|" + str(params.get("language_code") or "")

    async def _set_my_commands(self, params: dict[str, Any]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise ApiError(400, "Bad Request: can't parse commands JSON object")
        self._commands[self._commands_key(params)] = commands
        return True

    async def _get_my_commands(self, params: dict[str, Any]) -> list[Any]:
        return list(self._commands.get(self._commands_key(params), []))

    async def _delete_my_commands(self, params: dict[str, Any]) -> bool:
        self._commands.pop(self._commands_key(params), None)
        return True

    def _target_chat(self, params: dict[str, Any]) -> dict[str, Any]:
        """The chat a message goes to, or Telegram's refusal (moved, blocked, not started)."""
        chat_id = self._resolve_chat_id(params)
        if chat_id in self.migrated_chats:
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": self.migrated_chats[chat_id]},
            )
        chat = self._chat(chat_id)
        if chat_id in self.blocked_chats:
            raise ApiError(403, forbidden_description(chat["type"]))
        self.members.check_may_write(chat)
        return chat

    def _record(
        self, method: str, chat: dict[str, Any], params: dict[str, Any], text: str, plain: str
    ) -> dict[str, Any]:
        """Store an accepted message (``sent``) and return Telegram's Message object."""
        chat_id = int(chat["id"])
        thread_id = self.topics.place(chat_id, params)
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat_id),
            "from": dict(self.bot_user),
            "date": int(time.time()),
            "chat": chat,
        }
        if method == "sendMessage":
            message["text"] = plain
        if thread_id is not None:
            message |= {"message_thread_id": thread_id, "is_topic_message": True}
        self.topics.note(chat_id, message["message_id"], thread_id)
        markup = params.get("reply_markup")
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            message["reply_markup"] = markup  # a Message only ever shows inline keyboards
        self.sent.append(
            {
                "method": method,
                "chat_id": chat_id,
                "message_id": message["message_id"],
                "text": text,
                "plain": plain,
                "parse_mode": params.get("parse_mode"),
                "date": message["date"],
                "reply_markup": params.get("reply_markup"),
                "photo": params.get("photo") if method == "sendPhoto" else None,
                "link_preview_options": params.get("link_preview_options"),
                "params": params,
                "thread_id": thread_id,
                "message": message,  # as Telegram holds it now (edits change it)
            }
        )
        return message

    async def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._target_chat(params)
        text, plain, _parse_mode = message_text(params)
        check_reply_markup(params.get("reply_markup"))
        return self._record("sendMessage", chat, params, text, plain)

    async def _get_chat(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self.members.other_chat(params)
        return chat | {
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    async def _leave_chat(self, params: dict[str, Any]) -> bool:
        self.left_chats.append(self._resolve_chat_id(params))
        return True


if __name__ == "__main__":
    sys.exit(main())
