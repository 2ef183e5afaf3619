"""A fast reader for plain RSS 2.0 and Atom 1.0 that reproduces feedparser's result exactly.

Why: feedparser is pure Python and spends ~5-19 ms of CPU (holding the GIL) on a 20-item
feed; the bot polls 10,000 feeds per cycle. Expat through ElementTree reads the same
document over 10x faster (``benchmarks/bench_parse.py``). But
:func:`bot.services.feed_parser.parse_feed` must give the same
:class:`~bot.models.ParsedFeed` whichever reader ran, so this module is a *partial*
re-implementation: for the few values the bot uses (feed title; each entry's title, its
type, link, id and dates; its body — RSS ``description``/``content:encoded``, Atom
``summary``/``content`` of type text or html — and the images it declares — ``enclosure``,
``media:content``, ``media:thumbnail``, Atom ``rel="enclosure"`` links) it applies
feedparser 6's own rules, step by step, and it returns ``None`` — "let feedparser do it" —
for every document it is not sure about.

What it accepts (anything else gives ``None``):

- a document with nothing but an XML declaration and whitespace/PIs before the root
  element (no DOCTYPE, no comment: feedparser rewrites the prolog), read by expat through
  ElementTree's C parser. With no DOCTYPE there is no DTD, so no entity can be declared
  and none fetched: an entity reference other than the five predefined ones is a parse
  error (and ``None``). The prolog is checked before parsing, since a DOCTYPE is only
  legal there; this is what lets the C parser stand in for defusedxml's Python-level one,
  which costs ~3x as much on a plain feed;
- ``<rss version="2.0">`` holding one ``<channel>`` (no namespace), or an Atom 1.0
  ``<feed>``; every element on the path to a title, link, id or date is on a whitelist
  below, with at most one title/id/date element each, no ``xml:base``/``base`` attribute
  anywhere, no attributes that feedparser would read as a link (``href``/``url``/``uri``
  on an item), no Atom title of ``type="html"``/``"xhtml"``, no Atom body of another
  type (``xhtml``, ``src``, base64), at most one body element of each kind per entry, no
  namespaced attribute on an image element, no ``media:thumbnail`` with text, and leaf
  elements only
  (markup inside a description means a child element: feedparser's content handling
  takes over).

The mirrored rules, in feedparser's own order (``feedparser/mixin.py`` ``pop``): strip the
text; resolve ``link`` and a permalink ``guid``/Atom ``id`` with feedparser's ``_urljoin``
against an empty base; for RSS titles, guess ``text/html`` with feedparser's
``looks_like_html``; undo UTF-8-read-as-Latin-1; map the cp1252 range; RSS ``<link>``'s
``&amp;`` fix-up. A permalink ``guid``/Atom ``id`` becomes the link unless the entry
already has one; an RSS ``<link>`` always overwrites; the *last* Atom
``rel="alternate"`` HTML link wins. Dates go through feedparser's ``_parse_date`` (via
:mod:`bot.services.feed_dates`, which reads the common RFC 822 shape itself, identically).
These are feedparser internals (``_urljoin``, ``_parse_date``, ``_cp1252``): reusing
them keeps the two readers identical, and ``tests/services/test_fast_feed.py`` compares
both readers on hundreds of generated documents, so a feedparser upgrade that changes a
rule fails there rather than in production.

The result is shaped like the part of ``feedparser.parse``'s result that
:mod:`bot.services.feed_parser` reads (``version``, ``feed``, ``entries``), so the
normalisation after it is one code path for both readers.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any, Final
from xml.etree.ElementTree import Element, ParseError, XMLParser  # nosec B405 - see extract()

from feedparser.html import _cp1252
from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urljoin

from bot.services.feed_dates import parse_date

logger = logging.getLogger(__name__)

_ATOM: Final = "{http://www.w3.org/2005/Atom}"
_CONTENT: Final = "{http://purl.org/rss/1.0/modules/content/}"
_DC: Final = "{http://purl.org/dc/elements/1.1/}"
_MEDIA: Final = "{http://search.yahoo.com/mrss/}"
_SY: Final = "{http://purl.org/rss/1.0/modules/syndication/}"
_XML_LANG: Final = "{http://www.w3.org/XML/1998/namespace}lang"
_HTML_TYPES: Final = frozenset({"application/xhtml+xml", "text/html"})
# What may precede the root element: white space, the XML declaration and other processing
# instructions (each ends at its first "?>"), then the root's "<name". No "<!": no DOCTYPE,
# no comment. Matched from the start of the document.
_PROLOG_RE: Final = re.compile(rb"(?:[ \t\r\n]++|<\?(?:[^?]++|\?(?!>))*+\?>)*+<[A-Za-z_]")
_LINK_ENTITY_RE: Final = re.compile("&([A-Za-z0-9_]+);")
# The code points feedparser's _cp1252 table maps (C1 controls read as Windows-1252).
_CP1252_RANGE_RE: Final = re.compile("[\x80-\x9f]")

# Elements whose values the bot never reads and whose feedparser handlers touch none of the
# values it does read (checked in feedparser 6.0 ``namespaces/_base.py``, ``dc.py``,
# ``mediarss.py``). Must be leaves.
_RSS_CHANNEL_INERT: Final = frozenset(
    {
        "link", "description", "language", "copyright", "managingEditor", "webMaster",
        "pubDate", "lastBuildDate", "category", "generator", "docs", "ttl", "rating",
        f"{_SY}updatePeriod", f"{_SY}updateFrequency", f"{_SY}updateBase",
    }
)  # fmt: skip
_RSS_IMAGE_CHILDREN: Final = frozenset({"url", "title", "link", "width", "height", "description"})
_RSS_ITEM_INERT: Final = frozenset({"author", "category", "comments", f"{_DC}creator"})
_ATOM_INERT: Final = frozenset(
    f"{_ATOM}{name}" for name in ("subtitle", "summary", "content", "category", "rights",
                                  "generator", "icon", "logo")
)  # fmt: skip
_ATOM_ENTRY_INERT: Final = _ATOM_INERT - {f"{_ATOM}summary", f"{_ATOM}content"}
# Atom text constructs the fast reader takes: feedparser's ``map_content_type`` of ``type``.
_ATOM_TEXT_TYPES: Final = {None: "text/plain", "text": "text/plain", "html": "text/html"}
# What feedparser's ``_start_*`` handlers keep of an item's image elements: the attribute
# dict (names lower-cased, ``rel``/``type`` values too) under these entry keys.
_RSS_MEDIA: Final = {f"{_MEDIA}content": "media_content", f"{_MEDIA}thumbnail": "media_thumbnail"}
_ATOM_PEOPLE: Final = frozenset({f"{_ATOM}author", f"{_ATOM}contributor"})
_ATOM_PERSON_PARTS: Final = frozenset(f"{_ATOM}{name}" for name in ("name", "email", "uri"))
_ATOM_LINK_ATTRS: Final = frozenset({"href", "rel", "type", "hreflang", "title", "length"})


class _Unsure(Exception):  # a control-flow signal: this document is for feedparser
    """Raised anywhere in the walk when the document leaves what this reader mirrors."""


def extract(utf8: bytes) -> dict[str, Any] | None:
    """Read a plain RSS 2.0 / Atom 1.0 document the way feedparser would, or give up.

    Args:
        utf8: the document as UTF-8 (``feed_parser._to_utf8``'s output; entity
            declarations already refused).

    Returns:
        ``{"version", "feed", "entries", "bozo"}`` with the keys feedparser would set for
        the values the bot reads, or None when feedparser must read the document.
    """
    if _PROLOG_RE.match(utf8) is None:
        return None  # a DOCTYPE or a comment before the root: feedparser's (defused) path
    try:
        # Expat in C. Safe without defusedxml because the prolog was checked just above: no
        # DOCTYPE, so no DTD, so no entity can be declared (billion laughs) or fetched (XXE).
        parser = XMLParser()  # noqa: S314  # nosec B314
        parser.feed(utf8)
        root = parser.close()
        if root.tag == "rss":
            return _rss(root)
        if root.tag == f"{_ATOM}feed":
            return _atom(root)
    except (_Unsure, ParseError):
        return None
    except (ValueError, LookupError, RecursionError) as exc:  # expat/codec limits: be safe
        logger.debug("fast feed reader gave up: %s", type(exc).__name__)
        return None
    return None


# --------------------------------------------------------------------------- mirrored rules


def _leaf(element: Element, allowed_attrs: frozenset[str] = frozenset()) -> str:
    """The element's text; _Unsure if it has child elements or unexpected attributes."""
    if len(element):
        raise _Unsure
    for name in element.attrib:
        if name != _XML_LANG and name not in allowed_attrs:
            raise _Unsure
    return element.text or ""


def _inert(element: Element) -> None:
    """Accept an element whose value is unused: a leaf with no ``base``/``xml:base``."""
    if len(element):
        raise _Unsure
    for name in element.attrib:
        if name.rsplit("}", 1)[-1].lower() == "base":
            raise _Unsure


def _pop(raw: str, *, resolve: bool = False, guess_html: bool = False) -> tuple[str, str]:
    """The value and content type that feedparser's ``pop`` gives a text element."""
    output = raw.strip()
    if resolve and output:
        output = _resolve(output)
    kind = "text/plain"
    # looks_like_html needs a "</" or an "&" (its first test); most titles have neither.
    if guess_html and ("<" in output or "&" in output) and _FeedParserMixin.looks_like_html(output):
        kind = "text/html"
    if output.isascii():  # both steps below are the identity on ASCII
        return output, kind
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        output = output.encode("iso-8859-1").decode("utf-8")
    if _CP1252_RANGE_RE.search(output):
        output = output.translate(_cp1252)
    return output, kind


def _resolve(uri: str) -> str:
    """What feedparser's ``_urljoin`` gives ``uri`` against its empty base, cheaply.

    With no base only its fix-up of extra slashes after ``scheme://`` can change the URI,
    and a URI without ``:///`` has none to fix.
    """
    return _urljoin("", uri) if ":///" in uri else uri


def _title(element: Element, *, atom: bool) -> tuple[str, dict[str, str]]:
    if atom:
        kind = element.get("type")
        if kind is not None and kind != "text":
            raise _Unsure
        value, content_type = _pop(_leaf(element, frozenset({"type"})))
    else:
        value, content_type = _pop(_leaf(element), guess_html=True)
    return value, {"type": content_type}


def _once(seen: set[str], tag: str) -> None:
    if tag in seen:
        raise _Unsure
    seen.add(tag)


# --------------------------------------------------------------------------- RSS 2.0


def _rss(root: Element) -> dict[str, Any]:
    if dict(root.attrib) != {"version": "2.0"} or len(root) != 1 or root[0].tag != "channel":
        raise _Unsure
    channel = root[0]
    _leaf_attrs_only(channel)
    feed: dict[str, Any] = {}
    entries: list[dict[str, Any]] = []
    for child in channel:
        tag = child.tag
        if tag == "item":
            entries.append(_rss_item(child))
        elif tag == "title":
            if "title" in feed:
                raise _Unsure
            feed["title"], feed["title_detail"] = _title(child, atom=False)
        elif tag == "image":
            _leaf_attrs_only(child)
            for part in child:
                if part.tag not in _RSS_IMAGE_CHILDREN:
                    raise _Unsure
                _inert(part)
        elif tag in _RSS_CHANNEL_INERT or tag in (f"{_ATOM}link", "cloud"):
            _inert(child)
        else:
            raise _Unsure
    return {"version": "rss20", "feed": feed, "entries": entries, "bozo": 0}


def _leaf_attrs_only(element: Element) -> None:
    """A container (channel, item, image) may carry ``xml:lang`` and nothing else."""
    if any(name != _XML_LANG for name in element.attrib):
        raise _Unsure


def _rss_item(item: Element) -> dict[str, Any]:
    _leaf_attrs_only(item)
    entry: dict[str, Any] = {}
    seen: set[str] = set()
    for child in item:
        tag = child.tag
        if tag == "title":
            _once(seen, tag)
            entry["title"], entry["title_detail"] = _title(child, atom=False)
        elif tag == "link":
            _once(seen, tag)
            link, _kind = _pop(_leaf(child), resolve=True)
            if "&" in link:  # both fix-ups are the identity without one
                link = _LINK_ENTITY_RE.sub(r"&\g<1>", link.replace("&amp;", "&"))
            entry["link"] = link
        elif tag == "guid":
            _once(seen, tag)
            flags = [value for name, value in child.attrib.items() if name.lower() == "ispermalink"]
            if len(flags) > 1:
                raise _Unsure
            permalink = (flags[0] if flags else "true") == "true"
            names = {name for name in child.attrib if name.lower() == "ispermalink"}
            _guid(entry, _leaf(child, frozenset(names)), permalink=permalink)
        elif tag == "pubDate":
            _once(seen, tag)
            entry["published"], _kind = _pop(_leaf(child))
            entry["published_parsed"] = parse_date(entry["published"])
        elif tag == "description":
            _once(seen, tag)
            entry["summary"], _kind = _pop(_leaf(child))
            entry["summary_detail"] = {"type": "text/html"}
        elif tag == f"{_CONTENT}encoded":
            _once(seen, tag)
            value, _kind = _pop(_leaf(child))
            entry.setdefault("content", []).append({"type": "text/html", "value": value})
        elif tag == "enclosure":
            _inert(child)
            attrs = _FeedParserMixin._enforce_href(_attributes(child))
            attrs["rel"] = "enclosure"
            entry.setdefault("links", []).append(attrs)
        elif tag in _RSS_MEDIA:
            _inert(child)
            if tag == f"{_MEDIA}thumbnail" and (child.text or "").strip():
                raise _Unsure  # feedparser would read the text as the URL
            entry.setdefault(_RSS_MEDIA[tag], []).append(_attributes(child))
        elif tag in _RSS_ITEM_INERT:
            _inert(child)
        else:
            raise _Unsure
    return entry


def _attributes(element: Element) -> dict[str, str]:
    """An element's attributes as feedparser's strict reader hands them to its handlers.

    Names lower-cased, and the values of ``rel`` and ``type`` too; a namespaced attribute
    (feedparser prefixes it by its own namespace table) or two names that lower-case alike
    are left to feedparser.
    """
    attrs: dict[str, str] = {}
    for name, value in element.attrib.items():
        key = name.lower()
        if "}" in key or key in attrs:
            raise _Unsure
        attrs[key] = value.lower() if key in ("rel", "type") else value
    return attrs


def _guid(entry: dict[str, Any], raw: str, *, permalink: bool) -> None:
    """What feedparser's ``_end_guid`` stores (for an Atom ``id`` too: always a permalink)."""
    value, _kind = _pop(raw, resolve=permalink)
    entry["id"] = value
    entry.setdefault("guidislink", permalink and "link" not in entry)
    if permalink:
        entry.setdefault("link", value)


# --------------------------------------------------------------------------- Atom 1.0


def _atom(root: Element) -> dict[str, Any]:
    _leaf_attrs_only(root)
    feed: dict[str, Any] = {}
    entries: list[dict[str, Any]] = []
    for child in root:
        tag = child.tag
        if tag == f"{_ATOM}entry":
            entries.append(_atom_entry(child))
        elif tag == f"{_ATOM}title":
            if "title" in feed:
                raise _Unsure
            feed["title"], feed["title_detail"] = _title(child, atom=True)
        elif tag in _ATOM_PEOPLE:
            _atom_person(child)
        elif tag in _ATOM_INERT or tag in (f"{_ATOM}id", f"{_ATOM}updated", f"{_ATOM}link"):
            _inert(child)
        else:
            raise _Unsure
    return {"version": "atom10", "feed": feed, "entries": entries, "bozo": 0}


def _atom_person(element: Element) -> None:
    _leaf_attrs_only(element)
    for part in element:
        if part.tag not in _ATOM_PERSON_PARTS:
            raise _Unsure
        _leaf(part)


def _atom_entry(element: Element) -> dict[str, Any]:
    _leaf_attrs_only(element)
    entry: dict[str, Any] = {}
    seen: set[str] = set()
    for child in element:
        tag = child.tag
        if tag == f"{_ATOM}title":
            _once(seen, tag)
            entry["title"], entry["title_detail"] = _title(child, atom=True)
        elif tag == f"{_ATOM}link":
            _atom_link(entry, child)
        elif tag == f"{_ATOM}id":
            _once(seen, tag)
            _guid(entry, _leaf(child), permalink=True)
        elif tag == f"{_ATOM}published":
            _once(seen, tag)
            entry["published"], _kind = _pop(_leaf(child))
            entry["published_parsed"] = parse_date(entry["published"])
        elif tag == f"{_ATOM}updated":
            _once(seen, tag)
            entry["updated"], _kind = _pop(_leaf(child))
            entry["updated_parsed"] = parse_date(entry["updated"])
        elif tag in _ATOM_PEOPLE:
            _atom_person(child)
        elif tag == f"{_ATOM}summary":
            _once(seen, tag)
            entry["summary"], kind = _atom_text(child)
            entry["summary_detail"] = {"type": kind}
        elif tag == f"{_ATOM}content":
            _once(seen, tag)
            value, kind = _atom_text(child)
            entry["content"] = [{"type": kind, "value": value}]
        elif tag in _ATOM_ENTRY_INERT:
            _inert(child)
        else:
            raise _Unsure
    return entry


def _atom_text(element: Element) -> tuple[str, str]:
    """An Atom ``summary``/``content`` of type text or html, as feedparser's ``pop`` gives it.

    ``xhtml`` (child elements, escaped on the way), ``src`` (out-of-line content), base64
    and any other type are left to feedparser.
    """
    kind = _ATOM_TEXT_TYPES.get(element.get("type"))
    if kind is None:
        raise _Unsure
    value, _kind = _pop(_leaf(element, frozenset({"type"})))
    return value, kind


def _atom_link(entry: dict[str, Any], element: Element) -> None:
    """What feedparser's ``_start_link`` stores for an Atom link with an ``href``."""
    _leaf(element, _ATOM_LINK_ATTRS)
    if (element.text or "").strip():
        raise _Unsure
    href = element.get("href")
    if not href:
        raise _Unsure
    rel = (element.get("rel") or "").lower() if "rel" in element.attrib else "alternate"
    default_type = "application/atom+xml" if rel == "self" else "text/html"
    kind = (element.get("type") or "").lower() if "type" in element.attrib else default_type
    if rel == "alternate" and _FeedParserMixin.map_content_type(kind) in _HTML_TYPES:
        entry["link"] = _resolve(href)
    elif rel == "enclosure":  # feedparser keeps every link; only enclosures are read
        entry.setdefault("links", []).append({"rel": rel, "type": kind, "href": _resolve(href)})
