"""The files half of the fake Bot API: user documents, getFile, downloads, sendDocument.

What Telegram does, and so what this fake does:

* a user's document arrives as a message with ``document`` {file_id, file_unique_id,
  file_name, mime_type, file_size} and an optional ``caption`` (a leading ``/command`` gets
  a ``bot_command`` caption entity). The MIME type is the sending app's guess from the name:
  ``application/octet-stream`` for names it does not know (``.opml`` among them);
* ``getFile`` answers {file_id, file_unique_id, file_size, file_path} (``file_path`` like
  ``documents/file_3.opml``); an unknown id is "Bad Request: invalid file_id", a file over
  20 MB "Bad Request: file is too big" (bots may only download up to 20 MB);
* the bytes are served at ``GET /file/bot<token>/<file_path>`` (a wrong token: 404);
* ``sendDocument`` takes a multipart upload (or the file_id of a known file); an empty file
  is "Bad Request: file must be non-empty", a caption over 1,024 UTF-16 units (after entity
  parsing, as sendPhoto counts) "Bad Request: message caption is too long". Uploads are
  recorded in :attr:`FakeFiles.sent_documents` with their bytes, so tests can read what the
  bot sent.
"""

from __future__ import annotations

import itertools
import mimetypes
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.helpers.fake_text import ApiError, caption_text

if TYPE_CHECKING:
    from tests.helpers.fake_bot_api import FakeBotAPI

MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # getFile refuses bigger files
FILE_URL_PREFIX = "/file/bot"


@dataclass
class StoredFile:
    """A file Telegram holds: its ids, where getFile says it lives, and its bytes."""

    file_id: str
    file_unique_id: str
    file_name: str
    mime_type: str
    data: bytes
    file_path: str


class FakeFiles:
    """File state of one :class:`FakeBotAPI`; all on the fake's event loop, no locks."""

    def __init__(self, api: FakeBotAPI) -> None:
        self._api = api
        self.files: dict[str, StoredFile] = {}
        self.by_path: dict[str, StoredFile] = {}
        self.downloads: list[str] = []  # file_path of every download served
        self.sent_documents: list[dict[str, Any]] = []
        self._serial = itertools.count(1)

    # ------------------------------------------------------------------ driving the bot

    def store(self, data: bytes, file_name: str, mime_type: str | None = None) -> StoredFile:
        """Keep a file as Telegram would after an upload; return it."""
        n = next(self._serial)
        suffix = file_name.rsplit(".", 1)[-1] if "." in file_name else "bin"
        guessed = mimetypes.guess_type(file_name)[0]
        stored = StoredFile(
            file_id=f"BQACAgIAAxkBAAIB{n:06d}AAFake",
            file_unique_id=f"AgADFake{n:04d}",
            file_name=file_name,
            mime_type=mime_type or guessed or "application/octet-stream",
            data=bytes(data),
            file_path=f"documents/file_{n}.{suffix}",
        )
        self.files[stored.file_id] = stored
        self.by_path[stored.file_path] = stored
        return stored

    def send_document_message(
        self,
        data: bytes,
        *,
        chat_id: int,
        user_id: int,
        file_name: str,
        mime_type: str | None = None,
        caption: str | None = None,
        chat_type: str = "private",
        chat_title: str | None = None,
        thread_id: int | None = None,
    ) -> int:
        """Queue a user's message carrying a document; return its ``message_id``.

        ``thread_id``: a forum topic of ``chat_id`` to send it in (see ``create_topic``).
        """
        api = self._api
        stored = self.store(data, file_name, mime_type)
        chat = api._chat_for_update(chat_id, chat_type, chat_title, None, user_id)
        if thread_id is not None:
            message: dict[str, Any] = api.topics.topic_message(chat_id, thread_id, user_id)
        else:
            message = {"message_id": api._next_message_id(chat_id)}
            api.topics.note(chat_id, message["message_id"], None)
        message |= {
            "date": int(time.time()),
            "chat": chat,
            "from": api._user(user_id, None),
            "document": self.document_of(stored),
        }
        if caption is not None:
            message["caption"] = caption
            entities = api._command_entities(caption)
            if entities:
                message["caption_entities"] = entities
        api.user_messages[(chat_id, message["message_id"])] = message
        api.add_update({"message": message})
        return int(message["message_id"])

    # ------------------------------------------------------------------ inspection

    async def wait_for_documents(
        self, count: int, *, chat_id: int | None = None, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` documents were sent (to ``chat_id``); return them all.

        Raises:
            AssertionError: on timeout.
        """

        def sent() -> list[dict[str, Any]]:
            return [d for d in self.sent_documents if chat_id is None or d["chat_id"] == chat_id]

        if await self._api._wait_until(lambda: len(sent()) >= count, timeout):
            return sent()
        raise AssertionError(
            f"expected {count} document(s) within {timeout}s, got {len(sent())}.\n"
            + self._api.describe()
        )

    @staticmethod
    def document_of(stored: StoredFile) -> dict[str, Any]:
        """The Bot API ``Document`` object of a stored file."""
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_name": stored.file_name,
            "mime_type": stored.mime_type,
            "file_size": len(stored.data),
        }

    # ------------------------------------------------------------------ Bot API methods

    async def get_file(self, params: dict[str, Any]) -> dict[str, Any]:
        """``getFile``: where to download a file from."""
        stored = self.files.get(str(params.get("file_id") or ""))
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        if len(stored.data) > MAX_DOWNLOAD_BYTES:
            raise ApiError(400, "Bad Request: file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }

    async def send_document(self, params: dict[str, Any]) -> dict[str, Any]:
        """``sendDocument``: an upload (multipart) or a known file_id, with a caption."""
        api = self._api
        chat = api._target_chat(params)  # refused as sendMessage refuses it (moved, blocked)
        chat_id = int(chat["id"])
        document = params.get("document")
        if isinstance(document, dict) and "data" in document:
            if not document["data"]:
                raise ApiError(400, "Bad Request: file must be non-empty")
            stored = self.store(
                document["data"], str(document.get("filename") or "document"),
                str(document.get("content_type") or "") or None,
            )  # fmt: skip
        elif isinstance(document, str) and document in self.files:
            stored = self.files[document]
        else:
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        thread_id = api.topics.place(chat_id, params)
        _, caption = caption_text(params)  # as sendPhoto checks it: entities, UTF-16 units
        message: dict[str, Any] = {
            "message_id": api._next_message_id(chat_id),
            "from": dict(api.bot_user),
            "date": int(time.time()),
            "chat": chat,
            "document": self.document_of(stored),
        }
        if caption:
            message["caption"] = caption
        if thread_id is not None:
            message |= {"message_thread_id": thread_id, "is_topic_message": True}
        api.topics.note(chat_id, message["message_id"], thread_id)
        self.sent_documents.append(
            {
                "chat_id": chat_id,
                "message_id": message["message_id"],
                "filename": stored.file_name,
                "mime_type": stored.mime_type,
                "data": stored.data,
                "caption": caption,
                "thread_id": thread_id,
                "params": params,
            }
        )
        return message

    # ------------------------------------------------------------------ downloads

    def serve(self, path: str) -> web.Response:
        """``GET /file/bot<token>/<file_path>``: the bytes, or 404 like Telegram."""
        token, _, file_path = path.removeprefix(FILE_URL_PREFIX).partition("/")
        stored = self.by_path.get(file_path)
        if token != self._api.token or stored is None:
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
            )
        self.downloads.append(file_path)
        self._api._pulse()
        return web.Response(body=stored.data, content_type="application/octet-stream")
