"""The wire half of the fake Bot API: how requests arrive and answers leave, as at Telegram.

* method names are matched case-insensitively and reported in their canonical spelling
  (:func:`bot_api_methods`, derived from PTB's camelCase aliases);
* parameters come as a query string, a JSON object or a form (multipart with uploads);
  form fields PTB JSON-encodes are decoded, plain strings are kept (:func:`read_params`);
* errors are Telegram's error object (:func:`error_body`); 502/503/504 come from the nginx
  front end as an HTML page (:func:`front_end_error`, :data:`FRONT_END_STATUSES`).

Pure functions, no state.
"""

from __future__ import annotations

import functools
import json
from http import HTTPStatus
from typing import Any

from aiohttp import web

from tests.helpers.fake_text import ApiError

# Form fields that are plain strings even when they look like JSON (e.g. text "123").
_STRING_FIELDS = frozenset(
    [
        "text",
        "caption",
        "parse_mode",
        "callback_query_id",
        "title",
        "description",
        "short_description",
        "name",
        "url",
        "language_code",
        "query",
        "username",
        "custom_title",
        "first_name",
        "last_name",
        "business_connection_id",
        "inline_message_id",
        "message_effect_id",
        "emoji",
        "photo",
    ]
)
# Statuses answered by Telegram's nginx front end (an HTML page) rather than the Bot API server.
FRONT_END_STATUSES = frozenset({502, 503, 504})
_NGINX_PAGE = (
    "<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@functools.cache
def bot_api_methods() -> dict[str, str]:
    """Map lower-cased Bot API method names to their canonical spelling.

    Derived from python-telegram-bot's camelCase aliases so the list tracks the installed PTB
    without a hand-kept copy.
    """
    import telegram  # noqa: PLC0415 - only needed once a request arrives

    names = {
        name
        for name in dir(telegram.Bot)
        if name[:1].islower() and name != name.lower() and "_" not in name
    }
    names.add("close")
    return {name.lower(): name for name in names}


def _decode_field(name: str, value: str) -> Any:
    """Decode one form field the way PTB encoded it (non-strings are JSON-dumped)."""
    if name in _STRING_FIELDS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def error_body(status: int, description: str, parameters: dict[str, Any] | None) -> web.Response:
    """Telegram's error object: ``ok`` false, ``error_code``, ``description``, ``parameters``."""
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)


def front_end_error(status: int) -> web.Response:
    """What Telegram's nginx answers when the Bot API server behind it is unreachable."""
    phrase = HTTPStatus(status).phrase
    page = _NGINX_PAGE.format(status=status, phrase=phrase)
    return web.Response(text=page, status=status, content_type="text/html")


def not_found() -> web.Response:
    """What Telegram answers for a wrong token or an unknown method."""
    return error_body(404, "Not Found", None)


async def read_params(request: web.Request) -> dict[str, Any]:
    """A request's parameters: query string, then a JSON body or a form (uploads as dicts).

    Raises:
        ApiError: for a JSON body that does not parse or is no object, as Telegram refuses it.
    """
    params: dict[str, Any] = {k: _decode_field(k, v) for k, v in request.query.items()}
    if not request.body_exists:
        return params
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError as exc:
            raise ApiError(400, "Bad Request: can't parse JSON object") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "Bad Request: parameters must be a JSON object")
        params.update(body)
        return params
    form = await request.post()
    for key, value in form.items():
        if isinstance(value, web.FileField):
            data = value.file.read()
            params[key] = {
                "filename": value.filename,
                "content_type": value.content_type,
                "size": len(data),
                "data": data,  # sendDocument keeps it (tests/helpers/fake_files.py)
            }
        elif isinstance(value, str):
            params[key] = _decode_field(key, value)
        else:  # bytes from a part without charset
            params[key] = _decode_field(key, bytes(value).decode("utf-8", "replace"))
    return params
