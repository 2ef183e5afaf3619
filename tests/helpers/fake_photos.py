"""The photo half of the fake Bot API: sendPhoto with a caption, and photos Telegram can't use.

What Telegram does, and so what this fake does:

* ``sendPhoto`` takes the photo as an HTTP(S) URL that Telegram fetches itself (or an
  upload, stored but not inspected); no photo is "there is no photo in the request", a
  value that is no ``http(s)://`` URL :data:`PHOTO_BAD_URL`;
* a URL Telegram cannot use answers one of :data:`PHOTO_BAD_URL`,
  :data:`PHOTO_UNREACHABLE` or :data:`PHOTO_NOT_IMAGE` (:meth:`FakePhotos.break_photo`
  chooses which, per URL);
* the caption is checked like message text (entities parsed, surrounding whitespace
  trimmed) and holds 1,024 UTF-16 units (:func:`tests.helpers.fake_text.caption_text`);
* the message is placed, recorded and numbered like a sendMessage one (forum topics,
  ``sent_messages``), with a ``photo`` size list and the visible ``caption``.

Everything runs on the fake's event loop; no locks.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from tests.helpers.fake_buttons import check_reply_markup
from tests.helpers.fake_text import ApiError, caption_text

if TYPE_CHECKING:
    from tests.helpers.fake_bot_api import FakeBotAPI

# What Telegram answers when it cannot use a photo given by URL (the URL is malformed or
# unreachable, or what it serves is not an image).
PHOTO_BAD_URL = "Bad Request: wrong file identifier/HTTP URL specified"
PHOTO_UNREACHABLE = "Bad Request: failed to get HTTP URL content"
PHOTO_NOT_IMAGE = "Bad Request: wrong type of the web page content"
_HTTP_URL_RE = re.compile(r"https?://[^\s/]+", re.IGNORECASE)


class FakePhotos:
    """Photo state of one :class:`FakeBotAPI`: which URLs Telegram would refuse, and why."""

    def __init__(self, api: FakeBotAPI) -> None:
        self._api = api
        # Photo URL → the 400 description sendPhoto answers for it (see break_photo()).
        self.errors: dict[str, str] = {}

    def break_photo(self, url: str, description: str = PHOTO_UNREACHABLE) -> None:
        """Make sendPhoto with ``url`` fail as Telegram does for an image it cannot use.

        ``description`` is one of :data:`PHOTO_UNREACHABLE` (the default),
        :data:`PHOTO_BAD_URL` or :data:`PHOTO_NOT_IMAGE`; sendMessage link previews of the URL
        are unaffected (Telegram then shows no preview, it does not refuse the message).
        """
        self.errors[url] = description

    async def send_photo(self, params: dict[str, Any]) -> dict[str, Any]:
        """sendPhoto with the photo as an HTTP URL (uploads are stored but not inspected).

        Telegram fetches the URL itself: a URL in :attr:`errors` gets the answer stored
        there, and anything but an ``http(s)://`` URL is refused as Telegram refuses it.
        """
        api = self._api
        chat = api._target_chat(params)
        photo = params.get("photo")
        if photo is None or photo == "":
            raise ApiError(400, "Bad Request: there is no photo in the request")
        if isinstance(photo, str):
            if photo in self.errors:
                raise ApiError(400, self.errors[photo])
            if not _HTTP_URL_RE.match(photo):
                raise ApiError(400, PHOTO_BAD_URL)
        caption, plain = caption_text(params)
        check_reply_markup(params.get("reply_markup"))
        message = api._record("sendPhoto", chat, params, caption, plain)
        message["photo"] = [
            {"file_id": f"photo-{message['message_id']}", "file_unique_id":
             f"u{message['message_id']}", "width": 800, "height": 600, "file_size": 1}
        ]  # fmt: skip
        if plain:
            message["caption"] = plain
        return message
