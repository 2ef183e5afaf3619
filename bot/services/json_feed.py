"""JSON Feed 1.0 and 1.1 (https://jsonfeed.org/version/1.1), read on purpose.

Why a reader of its own: feedparser reads XML only, and a JSON Feed is a small, strict
format — ``json.loads`` and a mapping are the whole job. The result has the shape of the part
of ``feedparser.parse``'s result that :mod:`bot.services.feed_parser` reads (``version``,
``feed``, ``entries`` with ``title``/``title_detail``, ``link``, ``id``, ``*_parsed`` dates,
``content`` and ``image``), so titles, links, ids, dates, order, summaries and images go
through the one normalisation that RSS and Atom use, with the same limits (item count, title
and id lengths, the summary bound). The body is at most the fetcher's ``FEED_MAX_BYTES``
(5 MiB by default) like any feed.

Mapping (item → entry): ``id`` (a string, or a number as 1.0 feeds sometimes give) → ``id``;
``url``, else ``external_url`` → ``link``; ``title`` → plain-text title, else a title made
of the first words of the item's text; ``content_html`` (HTML), else ``content_text``, else
``summary`` (plain text) → ``content``; ``image``, else ``banner_image``, else the first
attachment with an ``image/*`` MIME type → ``image``; ``date_published`` and
``date_modified`` (RFC 3339) → ``published_parsed`` / ``updated_parsed``.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Final

from feedparser.datetimes import _parse_date

from bot.i18n import N_
from bot.richtext import clean_text, html_to_text
from bot.services.feed_errors import NotAFeedError, UndecodableError

logger = logging.getLogger(__name__)

VERSIONS: Final = {
    "https://jsonfeed.org/version/1": "json10",
    "https://jsonfeed.org/version/1.1": "json11",
}
JSON_MEDIA_TYPES: Final = frozenset({"application/feed+json", "application/json"})
FALLBACK_TITLE_CHARS: Final = 80  # an item without a title is named by its first words
# Why a JSON document is not a feed (msgids: translated where shown, see feed_errors).
REASON_INVALID: Final = N_("the JSON feed is not valid JSON")
REASON_NOT_JSON_FEED: Final = N_("this JSON is not a JSON Feed (no jsonfeed.org version)")
REASON_NO_ITEMS: Final = N_("the JSON feed has no list of items")
_BOM: Final = b"\xef\xbb\xbf"
_SPACE_RE: Final = re.compile(r"\s+")


def looks_like_json(body: bytes, content_type: str | None) -> bool:
    """Whether a fetched document should be read as JSON rather than XML or HTML.

    The body decides when it can: a document whose first non-space character is ``{`` is
    JSON whatever the header says (feeds are often served as ``text/plain``); a JSON media
    type counts only for a body that is not markup (servers mislabel XML feeds too).
    """
    head = bytes(body[:64]).removeprefix(_BOM).lstrip()
    if head.startswith(b"{"):
        return True
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media in JSON_MEDIA_TYPES and not head.startswith(b"<")


def extract(body: bytes) -> dict[str, Any]:
    """Read a JSON Feed into the feedparser-shaped dict that ``feed_parser`` normalises.

    Raises:
        UndecodableError: the bytes are not UTF-8 (or UTF-16/32, which ``json`` detects).
        NotAFeedError: not JSON, or JSON that is not a JSON Feed; the reason says which.
    """
    try:
        document = json.loads(body)
    except UnicodeDecodeError as exc:
        raise UndecodableError from exc
    except (ValueError, RecursionError) as exc:
        raise NotAFeedError(REASON_INVALID) from exc
    version = document.get("version") if isinstance(document, dict) else None
    if not isinstance(version, str) or version.rstrip("/") not in VERSIONS:
        raise NotAFeedError(REASON_NOT_JSON_FEED)
    items = document.get("items")
    if not isinstance(items, list):
        raise NotAFeedError(REASON_NO_ITEMS)
    title = _text(document.get("title"))
    return {
        "version": VERSIONS[version.rstrip("/")],
        "feed": {"title": title, "title_detail": {"type": "text/plain"}} if title else {},
        "entries": [_entry(item) for item in items if isinstance(item, dict)],
        "bozo": 0,
    }


def _text(value: Any) -> str:
    """A JSON string as text the bot can store and send (see :func:`~bot.richtext.clean_text`)."""
    return clean_text(value) if isinstance(value, str) else ""


def _entry(item: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    ident = item.get("id")
    if isinstance(ident, str):
        entry["id"] = ident
    elif isinstance(ident, int | float) and not isinstance(ident, bool):
        entry["id"] = str(ident)
    link = _text(item.get("url")) or _text(item.get("external_url"))
    if link:
        entry["link"] = link
    for key, target in (("date_published", "published"), ("date_modified", "updated")):
        stamp = _text(item.get(key))
        if stamp:
            entry[target] = stamp
            entry[f"{target}_parsed"] = _parse_date(stamp)
    content = _content(item)
    if content:
        entry["content"] = [content]
    title = _text(item.get("title")).strip()
    if not title and content:
        title = _fallback_title(content)
    entry["title"], entry["title_detail"] = title, {"type": "text/plain"}
    image = _image(item)
    if image:
        entry["image"] = {"href": image}
    return entry


def _content(item: dict[str, Any]) -> dict[str, str] | None:
    for key, kind in (
        ("content_html", "text/html"),
        ("content_text", "text/plain"),
        ("summary", "text/plain"),
    ):
        value = _text(item.get(key))
        if value.strip():
            return {"type": kind, "value": value}
    return None


def _fallback_title(content: dict[str, str]) -> str:
    """The first words of the item's text (JSON Feed makes ``title`` optional)."""
    value = content["value"]
    text = html_to_text(value) if content["type"] == "text/html" else value
    text = _SPACE_RE.sub(" ", text).strip()
    if len(text) <= FALLBACK_TITLE_CHARS:
        return text
    cut = text[: FALLBACK_TITLE_CHARS - 1]  # one character is left for "…"
    space = cut.rfind(" ")
    if text[len(cut)] != " " and space > FALLBACK_TITLE_CHARS // 2:
        cut = cut[:space]  # do not end in the middle of a word
    return cut.rstrip() + "…"


def _image(item: dict[str, Any]) -> str | None:
    for key in ("image", "banner_image"):
        url = _text(item.get(key)).strip()
        if url:
            return url
    attachments = item.get("attachments")
    for attachment in attachments if isinstance(attachments, list) else ():
        if not isinstance(attachment, dict):
            continue
        mime = _text(attachment.get("mime_type")).strip().lower()
        url = _text(attachment.get("url")).strip()
        if mime.startswith("image/") and url:
            return url
    return None
