"""Is a fetched document a web page, and which feeds does it advertise?

``/add`` accepts a site's address: when the document is HTML rather than a feed, the feeds it
links with ``<link rel="alternate">`` are tried instead. Synchronous and cheap (the first
2 KiB, or one pass of a lenient HTML parser); the parser uses
:func:`looks_like_html` to refuse a page as a feed.
"""

from __future__ import annotations

import logging
import re
from typing import Final

from bot.richtext import absolute_http_url
from bot.services import json_feed
from bot.telegram_html import LenientHTMLParser

logger = logging.getLogger(__name__)

MAX_DISCOVERED_LINKS: Final = 20
_FEED_ROOT_RE: Final = re.compile(rb"<(rss|feed|rdf:rdf)[\s>/]", re.IGNORECASE)
_HTML_RE: Final = re.compile(rb"<!doctype\s+html|<html[\s>]", re.IGNORECASE)
# application/json is left out on purpose: WordPress pages link their REST API with it.
_FEED_LINK_TYPES: Final = frozenset(
    {"application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/feed+json"}
)


def looks_like_html(body: bytes, content_type: str | None) -> bool:
    """Whether a fetched document is a web page (to look for feed links) rather than a feed.

    The body wins over the header: many feeds are served as ``text/html`` and some pages as
    ``text/xml``. Only the first 2 KiB are looked at.
    """
    head = bytes(body[:2048])
    if _FEED_ROOT_RE.search(head) or json_feed.looks_like_json(head, None):
        return False
    if _HTML_RE.search(head):
        return True
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media in ("text/html", "application/xhtml+xml")


class _FeedLinkFinder(LenientHTMLParser):
    """Collects ``<base href>`` and ``<link rel="alternate" type="<feed type>" href>``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "base" and self.base is None and values.get("href"):
            self.base = values["href"]
        elif tag == "link":
            rels = values.get("rel", "").lower().split()
            media = values.get("type", "").split(";", 1)[0].strip().lower()
            if "alternate" in rels and media in _FEED_LINK_TYPES and values.get("href"):
                self.hrefs.append(values["href"])

    handle_startendtag = handle_starttag


def discover_feed_links(html: bytes, base_url: str) -> list[str]:
    """Feed URLs advertised by a web page, absolute, http(s) only, deduplicated, in page order.

    RSS, Atom, RDF and JSON Feed (``application/feed+json``) types are returned.
    ``<base href>`` is honoured. At most 20 links.
    """
    finder = _FeedLinkFinder()
    finder.feed(bytes(html).decode("utf-8", "replace"))
    finder.close()
    base = base_url
    if finder.base:
        base = absolute_http_url(finder.base, base_url) or base_url
    found: list[str] = []
    for href in finder.hrefs:
        link = absolute_http_url(href, base)
        if link and link not in found:
            found.append(link)
        if len(found) >= MAX_DISCOVERED_LINKS:
            break
    return found
