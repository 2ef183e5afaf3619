"""Builders for feed documents used in tests: well-formed RSS/Atom and hostile documents.

Documents are built with ElementTree so every title, link and description is escaped
correctly; hostile documents (entity expansion, external entities, gzip bombs) are written
by hand because no XML library would produce them.
"""

from __future__ import annotations

import json
import logging
import zlib
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from xml.etree import ElementTree as ET  # builds documents only; never parses

logger = logging.getLogger(__name__)

DEFAULT_LINK = "https://example.com/"
_ITEM_KEYS = frozenset({"title", "link", "guid", "pubdate", "description"})
# A fixed instant so generated feeds are reproducible.
_BASE_TIME = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _check_keys(item: dict[str, Any]) -> None:
    unknown = set(item) - _ITEM_KEYS
    if unknown:
        raise ValueError(f"unknown item keys {sorted(unknown)}; allowed: {sorted(_ITEM_KEYS)}")


def _text(parent: ET.Element, tag: str, value: object, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    element.text = str(value)
    return element


def rss(
    items: list[dict[str, Any]],
    title: str = "Test feed",
    link: str = DEFAULT_LINK,
    description: str = "A feed for tests",
) -> bytes:
    """An RSS 2.0 document.

    Item keys (all optional): ``title``, ``link``, ``guid``, ``pubdate`` (datetime; naive means
    UTC; None or absent leaves it out), ``description`` (HTML allowed, it is escaped as text).
    A ``guid`` is marked ``isPermaLink="false"`` unless it equals the link.
    """
    root = ET.Element("rss", {"version": "2.0"})
    channel = ET.SubElement(root, "channel")
    _text(channel, "title", title)
    _text(channel, "link", link)
    _text(channel, "description", description)
    for item in items:
        _check_keys(item)
        element = ET.SubElement(channel, "item")
        if item.get("title") is not None:
            _text(element, "title", item["title"])
        if item.get("link") is not None:
            _text(element, "link", item["link"])
        if item.get("guid") is not None:
            permalink = "true" if item["guid"] == item.get("link") else "false"
            _text(element, "guid", item["guid"], isPermaLink=permalink)
        if item.get("pubdate") is not None:
            _text(element, "pubDate", format_datetime(_aware(item["pubdate"])))
        if item.get("description") is not None:
            _text(element, "description", item["description"])
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def atom(
    entries: list[dict[str, Any]],
    title: str = "Test feed",
    link: str = DEFAULT_LINK,
    feed_id: str = "urn:newsbot-test:feed",
    updated: datetime | None = None,
) -> bytes:
    """An Atom 1.0 document; entries take the same keys as :func:`rss` items.

    ``guid`` becomes the entry ``id`` (falling back to the link; left out when neither is
    given), ``pubdate`` becomes ``published`` and ``updated``, ``description`` an HTML
    ``summary``.
    """
    ns = "http://www.w3.org/2005/Atom"
    ET.register_namespace("", ns)

    def q(tag: str) -> str:
        return f"{{{ns}}}{tag}"

    root = ET.Element(q("feed"))
    _text(root, q("title"), title)
    ET.SubElement(root, q("link"), {"href": link, "rel": "alternate"})
    _text(root, q("id"), feed_id)
    _text(root, q("updated"), _aware(updated or _BASE_TIME).isoformat())
    for entry in entries:
        _check_keys(entry)
        element = ET.SubElement(root, q("entry"))
        if entry.get("title") is not None:
            _text(element, q("title"), entry["title"])
        if entry.get("link") is not None:
            ET.SubElement(element, q("link"), {"href": entry["link"], "rel": "alternate"})
        entry_id = entry.get("guid") or entry.get("link")
        if entry_id is not None:
            _text(element, q("id"), entry_id)
        if entry.get("pubdate") is not None:
            stamp = _aware(entry["pubdate"]).isoformat()
            _text(element, q("published"), stamp)
            _text(element, q("updated"), stamp)
        if entry.get("description") is not None:
            _text(element, q("summary"), entry["description"], type="html")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def encoded_rss(encoding: str, title: str, headlines: list[str], *, declare: bool = True) -> bytes:
    """An RSS 2.0 document in ``encoding`` (Big5, KOI8-R, ...), one item per headline.

    ``declare=False`` leaves the XML declaration out, so only an HTTP ``charset`` can tell a
    reader the encoding. Text is put in as is (no escaping): pass plain words.
    """
    prolog = f'<?xml version="1.0" encoding="{encoding}"?>' if declare else ""
    items = "".join(
        f"<item><title>{headline}</title><guid>{i}</guid></item>"
        for i, headline in enumerate(headlines, 1)
    )
    text = f'{prolog}<rss version="2.0"><channel><title>{title}</title>{items}</channel></rss>'
    return text.encode(encoding)


def html_page_with_feed_link(
    feed_href: str, title: str = "Test site", *, feed_type: str = "application/rss+xml"
) -> str:
    """An HTML page whose ``<head>`` advertises a feed (for feed auto-discovery)."""
    root = ET.Element("html")
    head = ET.SubElement(root, "head")
    _text(head, "title", title)
    ET.SubElement(
        head, "link", {"rel": "alternate", "type": feed_type, "title": title, "href": feed_href}
    )
    body = ET.SubElement(root, "body")
    _text(body, "h1", title)
    _text(body, "p", "Not a feed, but it links to one.")
    return "<!DOCTYPE html>\n" + ET.tostring(root, encoding="unicode", method="html")


def billion_laughs(levels: int = 10) -> bytes:
    """An RSS document whose title expands to 10**levels "lol"s if entities are expanded."""
    lines = ['<?xml version="1.0"?>', "<!DOCTYPE rss [", '  <!ENTITY lol0 "lol">']
    for level in range(1, levels):
        previous = f"&lol{level - 1};" * 10
        lines.append(f'  <!ENTITY lol{level} "{previous}">')
    lines.append("]>")
    lines.append(
        '<rss version="2.0"><channel><title>Laughs</title><link>https://example.com/</link>'
        f"<description>x</description><item><title>&lol{levels - 1};</title>"
        "<link>https://example.com/1</link></item></channel></rss>"
    )
    return "\n".join(lines).encode("utf-8")


def external_entity(target_path_or_url: str) -> bytes:
    """An RSS document that pulls ``target`` in through an external entity (XXE).

    A filesystem path becomes a ``file://`` URL; anything else is used as given.
    """
    target = target_path_or_url
    if target.startswith("/"):
        target = "file://" + target
    return (
        '<?xml version="1.0"?>\n'
        f'<!DOCTYPE rss [<!ENTITY xxe SYSTEM "{target}">]>\n'
        '<rss version="2.0"><channel><title>XXE &xxe;</title>'
        "<link>https://example.com/</link><description>x</description>"
        "<item><title>Leak</title><link>https://example.com/1</link>"
        "<description>&xxe;</description></item></channel></rss>"
    ).encode()


def gzip_bomb(uncompressed_size: int) -> bytes:
    """Gzip bytes that inflate to ``uncompressed_size`` bytes (an RSS prefix, then spaces).

    Compressed in chunks so building a multi-gigabyte bomb needs little memory.
    """
    prefix = b'<?xml version="1.0"?><rss version="2.0"><channel><title>bomb</title>'
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [compressor.compress(prefix[:uncompressed_size])]
    remaining = uncompressed_size - min(len(prefix), uncompressed_size)
    block = b" " * (1 << 20)
    while remaining > 0:
        piece = block[: min(remaining, len(block))]
        parts.append(compressor.compress(piece))
        remaining -= len(piece)
    parts.append(compressor.flush())
    return b"".join(parts)


def big_feed(n_items: int, *, title: str = "Big feed") -> bytes:
    """An RSS feed with ``n_items`` distinct items, newest first, one minute apart."""
    items = [
        {
            "title": f"Item {i}",
            "link": f"https://example.com/item/{i}",
            "guid": f"urn:newsbot-test:item:{i}",
            "pubdate": _BASE_TIME - timedelta(minutes=i),
            "description": f"Description of item {i}",
        }
        for i in range(n_items)
    ]
    return rss(items, title=title)


def json_feed(
    items: list[dict[str, Any]],
    title: str | None = "Test feed",
    *,
    version: str = "https://jsonfeed.org/version/1.1",
    **top: Any,
) -> bytes:
    """A JSON Feed document: ``items`` are written as given (JSON Feed item objects).

    ``title=None`` leaves the feed title out; ``top`` adds or overrides top-level keys.
    """
    document: dict[str, Any] = {"version": version, "items": items}
    if title is not None:
        document["title"] = title
    document.update(top)
    return json.dumps(document, ensure_ascii=False).encode()
