"""What the fake Bot API checks in a request's parameters, as Telegram checks them.

Shared by every part of the fake (:mod:`tests.helpers.fake_bot_api` and its halves for
buttons, files, photos and forum topics), so each rule has one definition:

* :class:`ApiError`, raised by a method to answer with a Telegram error object;
* :func:`telegram_html_to_plain`: Telegram's HTML subset (``parse_mode="HTML"``) validated
  and turned into the text a user reads — "can't parse entities" otherwise;
* :func:`utf16_len`: lengths as Telegram counts them, in UTF-16 code units of the visible
  text: a message holds :data:`MAX_MESSAGE_LENGTH`, a caption (photo or document)
  :data:`MAX_CAPTION_LENGTH`; :func:`message_text` and :func:`caption_text` apply them;
* ``link_preview_options`` must be a LinkPreviewOptions object.

Pure functions, no state: safe from any test.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

MAX_MESSAGE_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024  # both in UTF-16 code units of the text after entity parsing
# LinkPreviewOptions fields and their JSON types (Bot API 7.0).
_LINK_PREVIEW_FIELDS: dict[str, tuple[type, str]] = {
    "is_disabled": (bool, "Boolean"),
    "url": (str, "String"),
    "prefer_small_media": (bool, "Boolean"),
    "prefer_large_media": (bool, "Boolean"),
    "show_above_text": (bool, "Boolean"),
}


class ApiError(Exception):
    """Raised by method handlers to answer with a Telegram error object."""

    def __init__(
        self, status: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


def as_int(value: Any, default: int) -> int:
    """An integer parameter (JSON number or form string); ``default`` when absent or not one."""
    if value is None or isinstance(value, bool):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


# --------------------------------------------------------------------------- HTML validation


class TelegramHTMLError(ValueError):
    """Markup Telegram would refuse; ``str()`` is the text after "can't parse entities: "."""


_ALLOWED_TAGS = frozenset(
    [
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-emoji",
    ]
)
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY_AT_RE = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]+|#[xX][0-9a-fA-F]+);")


class _TelegramHTMLParser(HTMLParser):
    """Validates Telegram's HTML subset and collects the visible text.

    Stricter than Telegram in one way on purpose: a bare ``&`` that does not start one of the
    accepted entities is rejected (Telegram's docs require escaping it), so that the bot's
    formatter is caught when it forgets to escape.
    """

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=False)
        self._source = source
        self._line_starts = [0]
        for match in re.finditer("\n", source):
            self._line_starts.append(match.end())
        self.stack: list[str] = []
        self.parts: list[str] = []

    def _byte_offset(self, extra_chars: int = 0) -> int:
        line, col = self.getpos()
        char_offset = self._line_starts[line - 1] + col + extra_chars
        return len(self._source[:char_offset].encode("utf-8"))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Accept only Telegram's tags, with the attributes some of them require."""
        where = self._byte_offset()
        if tag not in _ALLOWED_TAGS:
            raise TelegramHTMLError(f'Unsupported start tag "{tag}" at byte offset {where}')
        attributes = dict(attrs)
        if tag == "span" and attributes.get("class") != "tg-spoiler":
            raise TelegramHTMLError('Tag "span" must have class "tg-spoiler"')
        if tag == "a" and not attributes.get("href"):
            raise TelegramHTMLError(f'Tag "a" must have attribute "href" at byte offset {where}')
        if tag == "tg-emoji" and not (attributes.get("emoji-id") or "").isdigit():
            raise TelegramHTMLError('Tag "tg-emoji" must have attribute "emoji-id"')
        self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Reject self-closing tags such as ``<br/>``: Telegram has none."""
        raise TelegramHTMLError(
            f'Unsupported start tag "{tag}" at byte offset {self._byte_offset()}'
        )

    def handle_endtag(self, tag: str) -> None:
        """Require every end tag to close the innermost open tag."""
        where = self._byte_offset()
        if not self.stack:
            raise TelegramHTMLError(f"Unexpected end tag at byte offset {where}")
        if self.stack[-1] != tag:
            raise TelegramHTMLError(
                f'Unmatched end tag at byte offset {where}, expected "</{self.stack[-1]}>", '
                f'found "</{tag}>"'
            )
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        """Collect visible text; a bare ``<`` (not starting a tag) is an error."""
        if "<" in data:
            where = self._byte_offset(data.index("<"))
            raise TelegramHTMLError(f'Unsupported start tag "" at byte offset {where}')
        if "&" in data:  # pre-scan should have caught it; keep the parser honest anyway
            where = self._byte_offset(data.index("&"))
            raise TelegramHTMLError(f"Character entity expected at byte offset {where}")
        self.parts.append(data)

    def handle_entityref(self, name: str) -> None:
        """Decode the four named entities Telegram supports."""
        if name not in _NAMED_ENTITIES:
            raise TelegramHTMLError(f'Unsupported HTML entity "&{name};"')
        self.parts.append(_NAMED_ENTITIES[name])

    def handle_charref(self, name: str) -> None:
        """Decode numeric entities, rejecting code points that are not characters."""
        code = int(name[1:], 16) if name[:1] in ("x", "X") else int(name)
        if code <= 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise TelegramHTMLError(f'Invalid numeric entity "&#{name};"')
        self.parts.append(chr(code))

    def handle_comment(self, data: str) -> None:
        """Comments are not part of Telegram's HTML."""
        raise TelegramHTMLError(f"Unsupported comment at byte offset {self._byte_offset()}")

    def handle_decl(self, decl: str) -> None:
        """Declarations are not part of Telegram's HTML."""
        raise TelegramHTMLError(f"Unsupported declaration at byte offset {self._byte_offset()}")

    def handle_pi(self, data: str) -> None:
        """Processing instructions are not part of Telegram's HTML."""
        raise TelegramHTMLError(f"Unsupported tag at byte offset {self._byte_offset()}")

    def unknown_decl(self, data: str) -> None:
        """CDATA and friends are not part of Telegram's HTML."""
        raise TelegramHTMLError(f"Unsupported declaration at byte offset {self._byte_offset()}")


def telegram_html_to_plain(text: str) -> str:
    """Validate ``text`` as Telegram HTML and return its visible text.

    Exposed so formatter tests can check their output offline against the same rules the fake
    server applies.

    Raises:
        TelegramHTMLError: for markup Telegram would answer with "can't parse entities".
    """
    for match in re.finditer("&", text):
        if not _ENTITY_AT_RE.match(text, match.start()):
            where = len(text[: match.start()].encode("utf-8"))
            raise TelegramHTMLError(f"Character entity expected at byte offset {where}")
    parser = _TelegramHTMLParser(text)
    parser.feed(text)
    parser.close()
    if parser.stack:
        raise TelegramHTMLError(
            f'Can\'t find end tag corresponding to start tag "{parser.stack[-1]}"'
        )
    return "".join(parser.parts)


# --------------------------------------------------------------------------- text and captions


def utf16_len(text: str) -> int:
    """Telegram's length of ``text``: UTF-16 code units (the fake's own count, an oracle)."""
    return len(text.encode("utf-16-le")) // 2


def visible_text(text: str, parse_mode: Any) -> str:
    """The text a user reads (entities parsed, surrounding whitespace trimmed)."""
    if parse_mode is not None and str(parse_mode).lower() == "html":
        try:
            plain = telegram_html_to_plain(text)
        except TelegramHTMLError as err:
            raise ApiError(400, f"Bad Request: can't parse entities: {err}") from err
    elif parse_mode in (None, "", "Markdown", "MarkdownV2"):
        plain = text  # Markdown is not validated by this fake
    else:
        raise ApiError(400, "Bad Request: unsupported parse_mode")
    return plain.strip()  # Telegram trims surrounding whitespace


def message_text(params: dict[str, Any]) -> tuple[str, str, Any]:
    """The text, its visible form and parse_mode, validated as Telegram does.

    Also the message's ``link_preview_options`` (sendMessage and editMessageText take them).
    """
    check_link_preview_options(params.get("link_preview_options"))
    raw_text = params.get("text")
    text = "" if raw_text is None else str(raw_text)
    parse_mode = params.get("parse_mode")
    plain = visible_text(text, parse_mode)
    if not plain:
        raise ApiError(400, "Bad Request: message text is empty")
    if utf16_len(plain) > MAX_MESSAGE_LENGTH:
        raise ApiError(400, "Bad Request: message is too long")
    return text, plain, parse_mode


def caption_text(params: dict[str, Any]) -> tuple[str, str]:
    """A media message's caption as sent and as read ("" for none), validated as Telegram does."""
    raw = params.get("caption")
    caption = "" if raw is None else str(raw)
    plain = visible_text(caption, params.get("parse_mode"))
    if utf16_len(plain) > MAX_CAPTION_LENGTH:
        raise ApiError(400, "Bad Request: message caption is too long")
    return caption, plain


def check_link_preview_options(value: Any) -> None:
    """Refuse ``link_preview_options`` that are not a LinkPreviewOptions JSON object.

    Telegram's wording for a non-JSON value, a non-object and a field of the wrong type.
    Stricter than Telegram in one way: an unknown field is refused (Telegram ignores it), so a
    misspelt option in the bot is caught rather than silently having no effect.
    """
    if value is None:
        return
    if isinstance(value, str):  # still a string: the form field was not valid JSON
        raise ApiError(400, "Bad Request: can't parse link preview options JSON object")
    if not isinstance(value, dict):
        raise ApiError(400, "Bad Request: object expected as link preview options")
    for name, field in value.items():
        if name not in _LINK_PREVIEW_FIELDS:
            raise ApiError(400, f'Bad Request: unknown field "{name}" in link preview options')
        kind, kind_name = _LINK_PREVIEW_FIELDS[name]
        if not isinstance(field, kind):
            raise ApiError(400, f'Bad Request: field "{name}" must be of type {kind_name}')
