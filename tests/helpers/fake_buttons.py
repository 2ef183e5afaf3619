"""The inline-keyboard half of the fake Bot API: buttons on messages, presses, edits, answers.

What Telegram does and the fake copies:

* ``sendMessage`` with ``reply_markup.inline_keyboard``: every button needs a non-empty text
  and an action; ``callback_data`` must be 1–64 bytes ("BUTTON_DATA_INVALID" otherwise);
  at most 100 buttons.
* ``editMessageText`` / ``editMessageReplyMarkup`` change a message the bot sent; leaving
  ``reply_markup`` out removes the keyboard; an edit that changes nothing is refused with
  "message is not modified"; an unknown message with "message to edit not found".
* ``answerCallbackQuery`` once per press (a second answer, or an unknown id, is refused as
  "query is too old ... or query ID is invalid"); its text is at most 200 characters.

:meth:`FakeButtons.press` plays a user pressing a button: it queues the ``callback_query``
update Telegram would send, carrying the message as it looks now and the button's data
(or any data at all, to play a modified client forging it). Everything runs on the fake's
event loop; no locks.
"""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING, Any

from tests.helpers.fake_text import ApiError, message_text

if TYPE_CHECKING:
    from tests.helpers.fake_bot_api import FakeBotAPI

MAX_CALLBACK_DATA_BYTES = 64
MAX_BUTTONS = 100
MAX_ANSWER_CHARS = 200
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"
_BUTTON_ACTIONS = frozenset(
    {"url", "callback_data", "web_app", "login_url", "switch_inline_query",
     "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "copy_text",
     "callback_game", "pay"}
)  # fmt: skip


def _error(description: str) -> Exception:
    return ApiError(400, description)


def check_reply_markup(markup: Any) -> None:
    """Refuse an inline keyboard Telegram would refuse (other markups pass unchecked)."""
    if markup is None:
        return
    if not isinstance(markup, dict):
        raise _error("Bad Request: can't parse reply keyboard markup JSON object")
    rows = markup.get("inline_keyboard")
    if rows is None:
        return
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise _error("Bad Request: can't parse inline keyboard markup JSON object")
    buttons = [button for row in rows for button in row]
    if len(buttons) > MAX_BUTTONS:
        raise _error("Bad Request: reply markup is too long")
    for button in buttons:
        if not isinstance(button, dict) or not str(button.get("text") or "").strip():
            raise _error("Bad Request: text buttons are unallowed in the inline keyboard")
        if not _BUTTON_ACTIONS & set(button):
            raise _error("Bad Request: text buttons are unallowed in the inline keyboard")
        data = button.get("callback_data")
        if data is not None and not (
            isinstance(data, str) and 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES
        ):
            raise _error("Bad Request: BUTTON_DATA_INVALID")


class FakeButtons:
    """Inline keyboard state of one :class:`FakeBotAPI` (see the module docstring)."""

    def __init__(self, api: FakeBotAPI) -> None:
        self._api = api
        self._query_ids = itertools.count(1)
        # query id -> the press (chat, message, user, data); answered ones get "answer".
        self.queries: dict[str, dict[str, Any]] = {}
        self.edits: list[dict[str, Any]] = []  # every accepted edit, oldest first

    # ------------------------------------------------------------------ inspection

    def record(self, chat_id: int, message_id: int) -> dict[str, Any]:
        """The sent-message record (``FakeBotAPI.sent``) of a message the bot sent.

        Raises:
            KeyError: the bot sent no such message.
        """
        for sent in reversed(self._api.sent):
            if sent["chat_id"] == chat_id and sent["message_id"] == message_id:
                return sent
        raise KeyError((chat_id, message_id))

    def message(self, chat_id: int, message_id: int) -> dict[str, Any]:
        """The message as Telegram holds it now (a Message object's fields)."""
        return dict(self.record(chat_id, message_id)["message"])

    def keyboard(self, chat_id: int, message_id: int) -> list[list[dict[str, Any]]]:
        """The message's inline keyboard now (rows of buttons), [] when it has none."""
        markup = self.record(chat_id, message_id).get("reply_markup") or {}
        return list(markup.get("inline_keyboard") or [])

    def labels(self, chat_id: int, message_id: int) -> list[list[str]]:
        """The texts of the message's buttons, row by row."""
        return [[b["text"] for b in row] for row in self.keyboard(chat_id, message_id)]

    def answer(self, query_id: str) -> dict[str, Any] | None:
        """How the bot answered a press (``text``, ``show_alert``), or None so far."""
        answer: dict[str, Any] | None = self.queries[query_id].get("answer")
        return answer

    async def wait_for_answer(self, query_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until the bot answered the press; return the answer.

        Raises:
            AssertionError: on timeout.
        """
        if await self._api._wait_until(lambda: self.answer(query_id) is not None, timeout):
            found = self.answer(query_id)
            assert found is not None
            return found
        raise AssertionError(
            f"press {query_id} was not answered within {timeout}s\n{self._api.describe()}"
        )

    # ------------------------------------------------------------------ pressing

    def press(
        self,
        chat_id: int,
        message_id: int,
        *,
        user_id: int,
        text: str | None = None,
        data: str | None = None,
        username: str | None = None,
    ) -> str:
        """A user presses a button of a message the bot sent; returns the query id.

        Give the button's ``text`` (its ``callback_data`` is sent, as a real client does)
        or raw ``data`` (anything: what a modified client could send).

        Raises:
            KeyError: no such message, or no button with that text.
        """
        message = self.message(chat_id, message_id)
        if data is None:
            found = [b for row in self.keyboard(chat_id, message_id) for b in row
                     if b.get("text") == text and "callback_data" in b]  # fmt: skip
            if not found:
                raise KeyError(f"no button {text!r} on message {message_id}")
            data = str(found[0]["callback_data"])
        query_id = str(next(self._query_ids))
        self.queries[query_id] = {
            "chat_id": chat_id, "message_id": message_id, "user_id": user_id, "data": data,
        }  # fmt: skip
        self._api.add_update(
            {
                "callback_query": {
                    "id": query_id,
                    "from": self._api._user(user_id, username),
                    "message": message,
                    "chat_instance": str(chat_id * 7919),
                    "data": data,
                }
            }
        )
        return query_id

    # ------------------------------------------------------------------ Bot API methods

    async def answer_callback_query(self, params: dict[str, Any]) -> bool:
        """``answerCallbackQuery``: once per press, text up to 200 characters."""
        query = self.queries.get(str(params.get("callback_query_id") or ""))
        if query is None or "answer" in query:
            raise _error(QUERY_INVALID)
        text = params.get("text")
        if text is not None and len(str(text)) > MAX_ANSWER_CHARS:
            raise _error("Bad Request: MESSAGE_TOO_LONG")
        query["answer"] = {"text": text, "show_alert": bool(params.get("show_alert"))}
        return True

    async def edit_message_text(self, params: dict[str, Any]) -> dict[str, Any]:
        """``editMessageText``: new text; no ``reply_markup`` removes the keyboard."""
        record = self._editable(params)
        text, plain, parse_mode = message_text(params)
        markup = params.get("reply_markup")
        check_reply_markup(markup)
        if text == record["text"] and markup == record.get("reply_markup"):
            raise _error(NOT_MODIFIED)
        record.update(text=text, plain=plain, parse_mode=parse_mode)
        return self._edited(record, markup, "text")

    async def edit_message_reply_markup(self, params: dict[str, Any]) -> dict[str, Any]:
        """``editMessageReplyMarkup``: new buttons (none: the keyboard goes)."""
        record = self._editable(params)
        markup = params.get("reply_markup")
        check_reply_markup(markup)
        if markup == record.get("reply_markup"):
            raise _error(NOT_MODIFIED)
        return self._edited(record, markup, "reply_markup")

    def _editable(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("inline_message_id"):
            raise _error("Bad Request: MESSAGE_ID_INVALID")  # the bot posts no inline messages
        chat_id = self._api._resolve_chat_id(params)
        raw_id = params.get("message_id")
        if isinstance(raw_id, bool) or not isinstance(raw_id, int):
            raise _error("Bad Request: message identifier is not specified")
        try:
            return self.record(chat_id, raw_id)
        except KeyError:
            raise _error("Bad Request: message to edit not found") from None

    def _edited(self, record: dict[str, Any], markup: Any, kind: str) -> dict[str, Any]:
        record["reply_markup"] = markup
        message = dict(record["message"])
        message["text"] = record["plain"]
        message["edit_date"] = int(time.time())
        message.pop("reply_markup", None)
        if isinstance(markup, dict):
            message["reply_markup"] = markup
        record["message"] = message
        self.edits.append(
            {"chat_id": record["chat_id"], "message_id": record["message_id"], "kind": kind}
        )
        return message
