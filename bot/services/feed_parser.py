"""Turning feed bytes from untrusted servers into :class:`~bot.models.ParsedFeed`.

Synchronous and CPU-bound: callers run :func:`parse_feed` and :func:`discover_feed_links`
off the event loop. :func:`parse_feed` is a module-level function whose arguments, result
and exceptions all pickle, so it can run in a ``ProcessPoolExecutor`` (feedparser is pure
Python and holds the GIL: a thread would still stall the loop).

Every failure is a :class:`~bot.services.feed_errors.ParseError` subclass with a user-safe
``reason``: an exception from a codec, expat or feedparser itself never escapes as
``ValueError``/``LookupError``/...; it becomes a plain ``ParseError`` raised from it.

Characters. The document is decoded *once*, by feedparser's own
``feedparser.encodings.convert_to_utf8`` (BOM, XML declaration, HTTP charset, fallbacks), to
UTF-8 bytes whose declaration says UTF-8. The entity check and feedparser then both read
those same bytes, so expat never meets an encoding it lacks (Big5, EUC-KR, GB2312 and
Shift_JIS made it raise ``ValueError: multi-byte encodings are not supported``) and what is
checked is exactly what is parsed. The HTTP charset counts when the document does not
declare its own encoding, or declares one its bytes are not in; a document that declares an
encoding that decodes it wins over the header, because servers that stamp a default
``charset=ISO-8859-1`` on every response (Apache's ``AddDefaultCharset``) would otherwise turn
every UTF-8 feed into mojibake.

Readers. Plain RSS 2.0 and Atom 1.0 documents are read by :mod:`bot.services.fast_feed`
(ElementTree's C expat parser, used only once the prolog is known to hold no DOCTYPE; over
10x less CPU than feedparser, see ``benchmarks/bench_parse.py``), which mirrors feedparser's
rules for the values used here and hands anything it is not sure about to feedparser;
``tests/services/test_fast_feed.py`` checks both readers agree. Everything after the reading
(titles, links, ids, dates, order) is one code path.

XML safety, in three layers:

1. :func:`_refuse_entity_declarations` (ours): the document's prolog is parsed with
   defusedxml's expat parser, configured to raise on any ``<!ENTITY`` (internal, external,
   parameter or unparsed) or external reference, and to *stop at the root element*. Entity
   declarations can only live in the prolog, so this sees all of them, and it costs
   microseconds whatever the document size (measured on a 5.7 MB feed: ~9 µs, against
   ~45 ms to let defusedxml parse the whole document and ~800 ms for feedparser itself).
   It reads the UTF-8 form of the document (above). If expat cannot read the prolog
   (malformed) we fall back to refusing any ``<!ENTITY`` anywhere in the bytes, in every
   plausible encoding.
2. feedparser's own ``replace_doctype`` strips the DOCTYPE and re-declares only entities
   whose value is plain text or a single character reference (no nesting, no SYSTEM).
3. feedparser's strict parser is xml.sax/expat with ``feature_external_ges`` turned off
   (``feedparser/api.py``), so external entities are never fetched, and expat ≥ 2.4 has its
   own billion-laughs limits. The loose fallback parser (sgmllib) never expands custom
   entities.

feedparser is only ever handed an ``io.BytesIO``: given ``str`` it fetches URLs and opens
local paths, and given ``bytes`` it first tries ``open(body)`` — a feed body of
``/proc/self/environ`` would otherwise be read from *our* disk.
"""

from __future__ import annotations

import calendar
import codecs
import dataclasses
import hashlib
import html
import io
import logging
import re
import time
import xml.sax
from collections.abc import Collection, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

import defusedxml
import defusedxml.ElementTree
import feedparser
import feedparser.encodings

from bot.models import FeedItem, ParsedFeed
from bot.richtext import absolute_http_url, convert, html_to_text
from bot.services import fast_feed, json_feed
from bot.services.feed_discovery import looks_like_html
from bot.services.feed_errors import (
    EmptyDocumentError,
    EntitiesRefusedError,
    NotAFeedError,
    ParseError,
    UndecodableError,
)
from bot.storage.state import TEXT_KEEP

logger = logging.getLogger(__name__)

UNTITLED: Final = "(untitled)"
MAX_TITLE_CHARS: Final = 1000
# Ids are logged per feed (and hashed into its known-id window); a hostile feed must not
# make them huge.
MAX_ID_CHARS: Final = 512
# Dates outside this window are feed bugs (1970 epochs, year 2999); treated as "no date".
_MIN_DATE: Final = datetime(1990, 1, 1, tzinfo=UTC)
_MAX_FUTURE: Final = timedelta(days=2)
_PROLOG_CHUNK: Final = 64 * 1024
_WS_RE: Final = re.compile(r"\s+")
# The element that holds a feed's items: an RSS <channel> or an Atom <feed> (any prefix).
_FEED_CONTAINER_RE: Final = re.compile(rb"<(?:[\w.-]+:)?(?:channel|feed)[\s>/]")
# encoding="..." in an XML declaration at the very start (ASCII-compatible encodings).
_DECLARED_ENCODING_RE: Final = re.compile(
    rb"""^<\?xml[^>]{0,200}?\sencoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']"""
)
# Byte patterns by which a document identifies its encoding without naming it: BOMs, and
# "<?" in UTF-16/32 and EBCDIC (the markers feedparser's encoding sniffer recognises).
_SELF_IDENTIFYING_STARTS: Final = (
    codecs.BOM_UTF8,
    codecs.BOM_UTF16_LE,
    codecs.BOM_UTF16_BE,
    codecs.BOM_UTF32_LE,
    codecs.BOM_UTF32_BE,
    b"\x4c\x6f\xa7\x94",
    b"\x00\x3c\x00\x3f",
    b"\x3c\x00\x3f\x00",
    b"\x00\x00\x00\x3c",
    b"\x3c\x00\x00\x00",
)
_HTML_KINDS: Final = frozenset({"text/html", "application/xhtml+xml"})
_ENTITY_NEEDLES: Final = tuple(
    {
        "<!ENTITY".encode(enc)
        for enc in ("ascii", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be", "cp037")
    }
    | {"<!entity".encode(enc) for enc in ("cp037",)}
)

# User-facing reasons: the class defaults of bot/services/feed_errors.py, under the names
# callers and tests already import.
REASON_NOT_A_FEED: Final = NotAFeedError.reason
REASON_EMPTY: Final = EmptyDocumentError.reason
REASON_ENTITIES: Final = EntitiesRefusedError.reason
REASON_UNREADABLE: Final = ParseError.reason
REASON_UNDECODABLE: Final = UndecodableError.reason

FeedParseError = ParseError
"""The old name of :class:`~bot.services.feed_errors.ParseError`, kept for existing imports."""


# --------------------------------------------------------------------------- XML safety


class _RootReached(Exception):  # a control-flow signal, not an error
    """Raised by the prolog parser's target at the first element: the prolog is over."""


class _StopAtRoot:
    """ElementTree parser target that ends parsing at the root element's start tag."""

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        raise _RootReached

    def end(self, tag: str) -> None:
        """Unused (parsing never gets past the root's start tag)."""

    def data(self, data: str) -> None:
        """Unused."""

    def close(self) -> None:
        """Unused."""


def _refuse_entity_declarations(body: bytes) -> None:
    """Raise EntitiesRefusedError if the document's prolog declares any entity.

    Why only the prolog, and why expat rather than a byte scan: entity declarations are only
    legal in the DTD, which is in the prolog; expat (through defusedxml) sees the prolog
    exactly as the strict parser will, including comments that a naive scan for "the first
    ``<tag``" would be fooled by (feedparser's own regex is). A byte scan of the whole body
    would refuse legitimate feeds that quote ``<!ENTITY`` inside CDATA (security blogs).
    """
    parser = defusedxml.ElementTree.DefusedXMLParser(
        target=_StopAtRoot(), forbid_dtd=False, forbid_entities=True, forbid_external=True
    )
    try:
        for start in range(0, len(body), _PROLOG_CHUNK):
            parser.feed(body[start : start + _PROLOG_CHUNK])
        parser.close()
    except _RootReached:
        return
    except defusedxml.DefusedXmlException as exc:
        raise EntitiesRefusedError from exc
    except (defusedxml.ElementTree.ParseError, ValueError, LookupError):
        # Malformed or exotic prolog (ValueError/LookupError: an encoding expat lacks, only
        # if a caller skipped the UTF-8 conversion): expat cannot vouch for it; be blunt.
        pass
    lowered = body.lower()
    if any(needle in body or needle.lower() in lowered for needle in _ENTITY_NEEDLES):
        raise EntitiesRefusedError


# --------------------------------------------------------------------------- text helpers


def _clean_title(detail: Any, value: Any) -> str:
    """A one-line plain-text title; ``<``, ``&``, emoji and RTL text stay as they are.

    feedparser reports whether a title is ``text/plain`` (use as is) or HTML/XHTML (already
    sanitised by feedparser; take its text). Escaping for Telegram is the formatter's job.
    """
    if not isinstance(value, str):
        return ""
    kind = detail.get("type", "text/plain") if isinstance(detail, dict) else "text/plain"
    text = html_to_text(value, limit=MAX_TITLE_CHARS) if kind in _HTML_KINDS else value
    text = _WS_RE.sub(" ", text).strip()
    if len(text) > MAX_TITLE_CHARS:
        text = text[: MAX_TITLE_CHARS - 1].rstrip() + "…"
    return text


def _safe_link(raw: Any, base: str) -> str | None:
    """An absolute http(s) URL resolved against ``base``, or None (``javascript:`` etc.)."""
    return absolute_http_url(raw, base) if isinstance(raw, str) else None


def _published(entry: Any, now: datetime) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        # dict.get, not entry.get: FeedParserDict maps a missing updated_parsed to
        # published_parsed (with a DeprecationWarning); we want each key for what it is.
        stamp = dict.get(entry, key) if isinstance(entry, dict) else None
        if not isinstance(stamp, time.struct_time):
            continue
        try:
            when = datetime.fromtimestamp(calendar.timegm(stamp), tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
        if not _MIN_DATE <= when <= now + _MAX_FUTURE:
            return None
        return when
    return None


def _stable_id(entry: Any, link: str | None, title: str, published: datetime | None,
               feed_url: str) -> str:  # fmt: skip
    raw = entry.get("id")
    ident = raw.strip() if isinstance(raw, str) else ""
    if not ident:
        ident = link or ""
    if not ident:
        stamp = published.isoformat() if published else ""
        digest = hashlib.sha256(f"{title}\n{stamp}\n{feed_url}".encode()).hexdigest()
        return f"sha256:{digest}"
    if len(ident) > MAX_ID_CHARS:
        return "sha256:" + hashlib.sha256(ident.encode("utf-8", "replace")).hexdigest()
    return ident


# --------------------------------------------------------------------------- public API


def parse_feed(
    body: bytes,
    feed_url: str,
    *,
    content_type: str | None = None,
    max_items: int = 200,
    known_ids: Collection[str] = (),
    with_text: bool = True,
) -> ParsedFeed:
    """Parse an RSS/Atom document into normalised items, newest first.

    Module-level and free of shared state, so it can run in a ``ProcessPoolExecutor``: the
    arguments, the :class:`~bot.models.ParsedFeed` and every ``ParseError`` pickle.

    Args:
        body: the document's bytes, exactly as fetched (never a URL or a path).
        feed_url: the feed's address: base for relative links and fallback title.
        content_type: the response's ``Content-Type`` header; its ``charset`` decodes a
            document that does not declare its own encoding (or declares a wrong one).
        max_items: how many items to keep (the newest).
        known_ids: ids of items the caller has already logged: their bodies are not
            converted again (their summary and image stay empty here), which keeps a poll
            that finds one new item from converting all twenty.
        with_text: False converts no bodies at all: a feed's first fetch is its baseline
            (history no chat is ever sent), so its summaries would be work thrown away.

    Returns:
        The feed title (or the URL's host) and at most ``max_items`` items: dated ones newest
        first, then undated ones in document order; duplicate ids dropped (first wins). A
        well-formed feed with no items yet gives zero items.

    Raises:
        TypeError: ``body`` is not bytes (a ``str`` would make feedparser fetch or open it).
        ParseError: the document is not a usable feed (a subclass says why), declares XML
            entities, or a codec or parser failed on it.
    """
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError(f"parse_feed needs the document's bytes, not {type(body).__name__}")
    try:
        return _parse(bytes(body), feed_url, content_type, max_items,
                      known_ids, text_keep=TEXT_KEEP if with_text else 0)  # fmt: skip
    except ParseError:
        raise
    except Exception as exc:  # a bug or limit in a codec, expat or feedparser: per-feed error
        logger.warning(
            "feed %s: parser failed: %s", urlsplit(feed_url).hostname, type(exc).__name__
        )
        raise ParseError from exc


def _parse(
    data: bytes,
    feed_url: str,
    content_type: str | None,
    max_items: int,
    known_ids: Collection[str],
    *,
    text_keep: int,
) -> ParsedFeed:
    if not data.strip():
        raise EmptyDocumentError
    if json_feed.looks_like_json(data, content_type):
        return _finish(json_feed.extract(data), feed_url, max_items, known_ids,
                       text_keep=text_keep)  # fmt: skip
    utf8 = _to_utf8(data, content_type)
    _refuse_entity_declarations(utf8)
    if looks_like_html(utf8, None):
        raise NotAFeedError

    # Plain RSS 2.0 / Atom 1.0 first: fast_feed mirrors feedparser's rules for the values used
    # here, over 10x faster, and gives None for anything it is not sure to read identically.
    parsed = fast_feed.extract(utf8)
    if parsed is None:
        parsed = _feedparser_parse(utf8)
    return _finish(parsed, feed_url, max_items, known_ids, utf8, text_keep=text_keep)


def _finish(
    parsed: Any,
    feed_url: str,
    max_items: int,
    known_ids: Collection[str],
    utf8: bytes | None = None,
    *,
    text_keep: int = TEXT_KEEP,
) -> ParsedFeed:
    """Normalise a reader's result (feedparser's, fast_feed's or json_feed's) into items.

    ``utf8`` is the XML document (None for JSON, which json_feed has checked already): an
    XML document with no title and no items must be a well-formed, empty feed.

    Only the newest ``TEXT_KEEP`` items get a summary and an image: storage keeps the text
    of the newest ``TEXT_KEEP`` log entries only, and new items are logged oldest first, so
    an item further down this list can never be one of them — converting its body would be
    work thrown away (a 200-item feed would cost ten times as much).
    """
    feed = parsed.get("feed", {})
    entries = parsed.get("entries", [])
    title = _clean_title(feed.get("title_detail"), feed.get("title"))
    if not parsed.get("version") and not entries:
        raise NotAFeedError
    if not title and not entries and utf8 is not None and not _is_empty_feed(parsed, utf8):
        raise NotAFeedError
    if parsed.get("bozo"):
        logger.debug("feed %s is malformed but usable", urlsplit(feed_url).hostname)

    source_title = title or urlsplit(feed_url).hostname or feed_url
    pairs = _normalise(entries, feed_url, source_title, datetime.now(UTC))
    dated = sorted(
        (pair for pair in pairs if pair[0].published is not None),
        key=lambda pair: pair[0].published or _MIN_DATE,
        reverse=True,
    )
    undated = [pair for pair in pairs if pair[0].published is None]
    kept = (dated + undated)[: max(0, max_items)]
    items = [
        item if item.id in known_ids else _with_text(item, entry)
        for item, entry in kept[:text_keep]
    ]
    items += [item for item, _entry in kept[text_keep:]]
    return ParsedFeed(title=source_title, items=tuple(items))


def _feedparser_parse(utf8: bytes) -> Any:
    """The document as feedparser reads it: the reference the fast path must equal.

    utf8 declares UTF-8 and is UTF-8: feedparser's own conversion of it is the identity.
    sanitize_html=False: feedparser's sanitiser rewrites every description and content block
    (half of its CPU on typical feeds), yet only titles are used, and they are reduced to
    plain text by _clean_title (scripts and styles dropped) and escaped when formatted.
    """
    return feedparser.parse(io.BytesIO(utf8), sanitize_html=False, resolve_relative_uris=False)


def _codec(name: str) -> str | None:
    """The Python codec for an encoding label, or None; GB2312 read as its superset GB18030."""
    try:
        codec = codecs.lookup(name).name
    except (LookupError, ValueError):
        return None
    return "gb18030" if codec == "gb2312" else codec


def _declaration_holds(data: bytes) -> bool:
    """Whether the document settles its own encoding, so an HTTP ``charset`` must not override.

    It does with a BOM, a UTF-16/32 or EBCDIC start, or a declared encoding that really
    decodes its bytes.
    """
    if data.startswith(_SELF_IDENTIFYING_STARTS):
        return True
    match = _DECLARED_ENCODING_RE.match(data)
    codec = _codec(match.group(1).decode("ascii")) if match else None
    if codec is None:
        return False
    try:
        data.decode(codec)
    except (UnicodeDecodeError, ValueError, LookupError):
        return False
    return True


def _to_utf8(data: bytes, content_type: str | None) -> bytes:
    """The document as UTF-8 with a UTF-8 declaration, decoded the way feedparser decodes.

    The HTTP charset is handed to feedparser (as ``application/xml; charset=...``, so that
    only the charset, not a ``text/*`` media type's US-ASCII default, plays a part) when the
    document does not settle its encoding itself.

    Raises:
        UndecodableError: no encoding feedparser tried could decode the bytes.
    """
    headers: dict[str, str] = {}
    _media, charset = feedparser.encodings.parse_content_type(content_type or "")
    codec = _codec(charset) if charset else None
    if codec is not None and not _declaration_holds(data):
        headers["content-type"] = f"application/xml; charset={codec}"
    info: dict[str, Any] = {}
    converted = feedparser.encodings.convert_to_utf8(headers, data, info)
    if not info.get("encoding"):
        raise UndecodableError
    return bytes(converted)


def _is_empty_feed(parsed: Any, utf8: bytes) -> bool:
    """A well-formed RSS/Atom document with its channel/feed element but nothing in it yet.

    Well-formed matters: a truncated download (``<rss version="2.0"><channel>``) is refused.
    """
    failure = parsed.get("bozo_exception")
    return (
        bool(parsed.get("version"))
        and not isinstance(failure, xml.sax.SAXException)
        and _FEED_CONTAINER_RE.search(utf8) is not None
    )


def _normalise(
    entries: Iterable[Any], feed_url: str, source_title: str, now: datetime
) -> list[tuple[FeedItem, Any]]:
    """Items (without summary and image yet), each with the entry it came from."""
    items: list[tuple[FeedItem, Any]] = []
    seen: set[str] = set()
    for entry in entries:
        link = _safe_link(entry.get("link"), feed_url)
        title = _clean_title(entry.get("title_detail"), entry.get("title")) or UNTITLED
        published = _published(entry, now)
        ident = _stable_id(entry, link, title, published, feed_url)
        if ident in seen:
            continue
        seen.add(ident)
        # Positional, in field order (id, title, link, published, source_title, feed_url):
        # keywords cost ~40% more, for every item of every fetched feed.
        item = FeedItem(ident, title, link, published, source_title, feed_url)
        items.append((item, entry))
    return items


def _with_text(item: FeedItem, entry: Any) -> FeedItem:
    """The item with its summary (Telegram HTML) and first image, when the entry has them.

    The body is the first non-empty ``content`` block (``content:encoded``, Atom
    ``content``, JSON ``content_html``…), else the ``summary``/``description``. Relative
    links in it resolve against the item's link (where the text was published); images
    declared by the feed (enclosure, ``media:content``, ``media:thumbnail``,
    ``itunes:image``) against the feed's URL, the document they are written in, and win
    over the first ``<img>`` of the body. A body the converter trips on costs the item its
    summary, never the feed its update.
    """
    try:
        body, kind = _body(entry)
        if kind == "text/plain":
            body = html.escape(body, quote=False)  # text: "<" is a character, not a tag
        declared = _declared_image(entry, item.feed_url)
        base = item.link or item.feed_url
        rich = convert(body, base, find_image=declared is None) if body else None
        image = declared or (rich.image if rich else None)
    except Exception as exc:  # one odd body must not cost the feed its update
        logger.warning(
            "feed %s: item body skipped: %s", urlsplit(item.feed_url).hostname, type(exc).__name__
        )
        return item
    if not (rich and rich.html) and not image:
        return item
    return dataclasses.replace(item, summary=rich.html if rich else "", image=image)


def _body(entry: Any) -> tuple[str, str]:
    """The entry's body and its type (``text/plain`` or an HTML type); ("", "") if none."""
    blocks = entry.get("content")
    for block in blocks if isinstance(blocks, list) else ():
        value = block.get("value") if isinstance(block, dict) else None
        kind = _kind(block)
        if isinstance(value, str) and value.strip() and kind:
            return value, kind
    summary = entry.get("summary")
    kind = _kind(entry.get("summary_detail"))
    if isinstance(summary, str) and summary.strip() and kind:
        return summary, kind
    return "", ""


def _kind(detail: Any) -> str:
    """``text/plain``, an HTML type, or "" for what is neither (base64 blobs, images…)."""
    kind = detail.get("type", "text/html") if isinstance(detail, dict) else "text/html"
    return kind if kind == "text/plain" or kind in _HTML_KINDS else ""


def _declared_image(entry: Any, feed_url: str) -> str | None:
    """The image the feed declares for the entry, in order of how sure it is to be one."""
    candidates: list[Any] = []
    for link in _dicts(entry.get("links")):
        if link.get("rel") == "enclosure" and _is_image_type(link.get("type")):
            candidates.append(link.get("href"))
    for media in _dicts(entry.get("media_content")):
        medium = media.get("medium")
        if (isinstance(medium, str) and medium.lower() == "image") or _is_image_type(
            media.get("type")
        ):
            candidates.append(media.get("url"))
    candidates += [thumbnail.get("url") for thumbnail in _dicts(entry.get("media_thumbnail"))]
    image = entry.get("image")
    if isinstance(image, dict):
        candidates.append(image.get("href"))
    for candidate in candidates:
        url = _safe_link(candidate, feed_url)
        if url:
            return url
    return None


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _is_image_type(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower().startswith("image/")
