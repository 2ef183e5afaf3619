"""Tests for bot/services/feed_discovery.py: is a document a web page, and which feeds it links.

``discover_feed_links`` against hostile and messy pages (relative, protocol-relative and
``javascript:`` hrefs, ``<base href>``, duplicates, garbage bytes), and ``looks_like_html``
against documents whose Content-Type lies.
"""

from __future__ import annotations

import pytest

from bot.services.feed_discovery import discover_feed_links, looks_like_html

FEED_URL = "https://news.example.com/feeds/main.xml"


# --------------------------------------------------------------------------- discovery


PAGE = b"""<!DOCTYPE html>
<html><head>
<title>A blog</title>
<link rel="stylesheet" type="text/css" href="/style.css">
<link rel="alternate" type="application/rss+xml" title="RSS" href="/feed.xml">
<LINK REL="Alternate" TYPE="Application/Atom+XML; charset=utf-8" HREF="atom.xml" />
<link rel="alternate" type="application/rss+xml" href="https://news.example.com/feed.xml">
<link rel="alternate" type="application/feed+json" href="/feed.json">
<link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">
<link rel="alternate" type="application/rss+xml" href="">
<link rel="alternate" hreflang="de" href="/de/">
<link rel="alternate nofollow" type="application/rss+xml" href="//cdn.example.net/comments.rss">
</head><body><link rel="alternate" type="application/rdf+xml" href="../rss1.rdf"></body></html>
"""


def test_discovery_resolves_filters_and_dedups_in_page_order() -> None:
    links = discover_feed_links(PAGE, "https://news.example.com/blog/index.html")
    assert links == [
        "https://news.example.com/feed.xml",
        "https://news.example.com/blog/atom.xml",
        "https://news.example.com/feed.json",  # JSON Feed is read on purpose
        "https://cdn.example.net/comments.rss",
        "https://news.example.com/rss1.rdf",
    ]


def test_discovery_honours_base_href() -> None:
    page = (
        b'<html><head><base href="https://static.example.org/site/">'
        b'<link rel="alternate" type="application/atom+xml" href="feeds/all.atom"></head></html>'
    )
    assert discover_feed_links(page, "https://www.example.org/") == [
        "https://static.example.org/site/feeds/all.atom"
    ]


def test_discovery_on_a_page_without_feeds_or_garbage() -> None:
    assert discover_feed_links(b"<html><head></head><body>hi</body></html>", FEED_URL) == []
    assert discover_feed_links(b"\xff\xfe<<<>>>\x00 not html at all", FEED_URL) == []


# --------------------------------------------------------------------------- looks_like_html


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b"<!DOCTYPE html><html><body>x</body></html>", "text/html; charset=utf-8", True),
        (b"<!doctype html><html>x</html>", "text/xml", True),  # lying header
        (b'<?xml version="1.0"?><rss version="2.0"></rss>', "text/html", False),  # lying header
        (b'<feed xmlns="http://www.w3.org/2005/Atom"></feed>', None, False),
        (b"<rdf:RDF xmlns:rdf='x'></rdf:RDF>", "application/xml", False),
        (b'<?xml version="1.0"?>\n<html xmlns="http://www.w3.org/1999/xhtml">', None, True),
        (b"just text", "text/html", True),
        (b"just text", "application/xhtml+xml", True),
        (b"just text", "application/octet-stream", False),
        (b"just text", None, False),
    ],
)
def test_looks_like_html(body: bytes, content_type: str | None, expected: bool) -> None:
    assert looks_like_html(body, content_type) is expected
