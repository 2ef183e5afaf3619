"""The fast RSS/Atom reader must give exactly what the feedparser path gives, or step aside.

Differential: every generated document is parsed twice by ``parse_feed``, once as shipped
(fast reader first) and once with the fast reader switched off (feedparser only); the
results (or the errors) must be equal. Separately, plain documents must really take the
fast path, and the constructs it promises to leave to feedparser must make it give up.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest

from bot.models import ParsedFeed
from bot.services import fast_feed
from bot.services.feed_errors import ParseError
from bot.services.feed_parser import _to_utf8, parse_feed
from tests.helpers.feeds import atom, big_feed, encoded_rss, rss

FEED_URL = "https://news.example.org/feed.xml"

# --------------------------------------------------------------------------- the oracle


@contextmanager
def _feedparser_only() -> Iterator[None]:
    with mock.patch.object(fast_feed, "extract", return_value=None):
        yield


def _outcome(parse: Callable[[], ParsedFeed]) -> ParsedFeed | tuple[str, str]:
    try:
        return parse()
    except ParseError as exc:
        return (type(exc).__name__, exc.reason)


def compare(doc: bytes, max_items: int = 200) -> bool:
    """Assert both paths agree on ``doc``; return whether the fast reader handled it."""
    handled = fast_feed.extract(_to_utf8(doc, None)) is not None
    fast = _outcome(lambda: parse_feed(doc, FEED_URL, max_items=max_items))
    with _feedparser_only():
        slow = _outcome(lambda: parse_feed(doc, FEED_URL, max_items=max_items))
    assert fast == slow, doc.decode("utf-8", "replace")
    return handled


# --------------------------------------------------------------------------- corpus pieces

TEXTS = [
    "Hello world",
    "  spaced \n\t title  ",
    "A &amp; B",
    "Q&amp;A",
    "AT&amp;T;",
    "caf&#233; cr&#xE8;me",
    "&lt;b&gt;bold&lt;/b&gt; text",
    "x &lt;/p&gt; y",
    "&amp;nbsp; and &amp;copy; 2024",
    "Fish &amp;amp; chips",
    "2 &lt; 3 &gt; 1",
    "&lt;script&gt;alert(1)&lt;/script&gt;Visible",
    "&lt;blink&gt;odd&lt;/blink&gt;",
    "<![CDATA[<b>bold</b> & co]]>",
    "<![CDATA[AT&amp;T]]>",
    "<![CDATA[  ]]>",
    "emoji \U0001f600 &#x1F680;",
    "שלום עולם",
    "مرحبا بالعالم",
    "Ã©tÃ© mojibake",
    "caf\u00e9 latin",
    "&#147;smart quotes&#148; &#128;",
    "a <!-- comment --> b",
    "",
    "   ",
    "\u00a0nbsp\u00a0edges\u00a0",
    "line\r\nbreaks\rhere",
    "x" * 1200,
]
LINKS = [
    "https://example.com/a",
    "/relative/path?q=1",
    "relative.html",
    "  https://example.com/ws  ",
    "http:///example.com/triple",
    "javascript:alert(1)",
    "https://example.com/?a=1&amp;b=2",
    "https://example.com/?a=1&amp;b;=2&amp;amp;c",
    "",
    "ftp://example.com/file",
    "https://ex\u00e4mple.com/\u00fc",
    "mailto:someone@example.com",
    "//cdn.example.net/proto-relative",
    "HTTPS://EXAMPLE.COM/Upper",
    "https://[::1/broken",
]
IDS = [
    "https://example.com/g/1",
    "urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427",
    "tag:example.com,2024:1",
    "12345",
    "/relative/guid",
    "",
    "  spaced-id  ",
    "javascript:void(0)",
    "http:///triple/guid",
    "dup",
    "i" * 600,
]
RFC822 = [
    "Mon, 15 Jan 2024 12:00:00 GMT",
    "Mon, 15 Jan 2024 12:00:00 +0200",
    "Mon, 15 Jan 2024 12:00:00 -0530",
    "Mon, 15 Jan 2024 12:00:00 EST",
    "Mon, 15 Jan 2024 12:00 +0000",
    "15 Jan 2024 12:00:00 Z",
    "Tue, 16 Jan 2024 08:30:00 PST",
    "2024-01-15T12:00:00Z",
    "garbage date",
    "",
    "Thu, 01 Jan 1970 00:00:00 GMT",
    "Fri, 31 Dec 2999 23:59:59 GMT",
    "Mon, 32 Jan 2024 12:00:00 GMT",
    "  Wed, 17 Jan 2024 01:02:03 +0000  ",
]
RFC3339 = [
    "2024-01-15T12:00:00Z",
    "2024-01-15T12:00:00+02:00",
    "2024-01-15T12:00:00.123-05:00",
    "2024-01-15",
    "2024-01-15T12:00Z",
    "2024-01-16 09:00:00Z",
    "Mon, 15 Jan 2024 12:00:00 GMT",
    "not a date",
    "",
    "1970-01-01T00:00:00Z",
    "2999-12-31T00:00:00Z",
    "2024-02-30T12:00:00Z",
]
RSS_EXTRAS = [
    "<author>me@example.com (Me)</author>",
    "<category>news</category>",
    "<comments>https://example.com/c</comments>",
    '<enclosure url="https://example.com/a.mp3" length="1" type="audio/mpeg"/>',
    "<content:encoded><![CDATA[<p>Full <a href='/x'>text</a></p>]]></content:encoded>",
    "<dc:creator>Someone</dc:creator>",
    '<media:thumbnail url="https://example.com/t.jpg"/>',
    "<description>&lt;p&gt;Some &lt;b&gt;html&lt;/b&gt;&lt;/p&gt;</description>",
    "<description><![CDATA[<p>cdata <i>html</i></p>]]></description>",
    # summaries and images (bot.richtext converts the body; both readers must hand it the same)
    "<description>&lt;p&gt;Hi &lt;img src='/in-body.jpg'&gt; &amp;amp; you&lt;/p&gt;</description>",
    "<description>plain &amp; text\n\nparagraphs</description>",
    "<description>Ã©tÃ© mojibake &#147;q&#148;</description>",
    "<description>   </description>",
    "<content:encoded><![CDATA[<script>x</script><p>Body <b>bold</b> "
    "<img src='https://example.com/body.jpg'></p>]]></content:encoded>",
    "<content:encoded></content:encoded>",
    '<enclosure url="/img/a.jpg" type="IMAGE/JPEG" length="1"/>',
    '<enclosure URL="https://example.com/b.png" type="image/png"/>',
    '<enclosure url="" href="https://example.com/c.png" type="image/png"/>',
    '<media:content url="https://example.com/m.jpg" medium="image"/>',
    '<media:content url="https://example.com/v.mp4" type="video/mp4"/>',
    '<media:content url="javascript:alert(1)" type="image/png"/>',
    '<media:thumbnail url="//cdn.example.com/t.png" width="1" height="1"/>',
]
# Constructs the fast reader must leave to feedparser (rarer, so most documents stay fast).
RSS_UNSURE = [
    "<dc:date>2024-01-20T00:00:00Z</dc:date>",
    "<dcterms:modified>2024-01-20T00:00:00Z</dcterms:modified>",
    "<media:title>Media title</media:title>",
    '<atom:link href="https://example.com/atom" rel="alternate"/>',
    "<feedburner:origLink>https://example.com/orig</feedburner:origLink>",
    '<source url="https://example.com/src">Source</source>',
    "<description><p>raw child</p></description>",
    "<lastBuildDate>Mon, 15 Jan 2024 12:00:00 GMT</lastBuildDate>",
    "<Title>Upper-case title</Title>",
    "<media:thumbnail>https://example.com/text-url.jpg</media:thumbnail>",
    '<description type="text/plain">typed</description>',
    '<media:content url="https://example.com/x.jpg"><media:title>t</media:title></media:content>',
    '<enclosure xml:lang="en" url="https://example.com/ns.png" type="image/png"/>',
]
NAMESPACES = (
    'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:dcterms="http://purl.org/dc/terms/" '
    'xmlns:media="http://search.yahoo.com/mrss/" '
    'xmlns:atom="http://www.w3.org/2005/Atom" '
    'xmlns:feedburner="http://rssnamespace.org/feedburner/ext/1.0"'
)


def _rss_item(rng: random.Random) -> str:
    parts: list[str] = []
    if rng.random() < 0.9:
        attrs = ' type="html"' if rng.random() < 0.03 else ""
        parts.append(f"<title{attrs}>{rng.choice(TEXTS)}</title>")
    if rng.random() < 0.75:
        parts.append(rng.choice(["<link/>", f"<link>{rng.choice(LINKS)}</link>"]))
    if rng.random() < 0.7:
        flag = rng.choice(
            ["", ' isPermaLink="true"', ' isPermaLink="false"', ' isPermaLink="True"']
        )
        value = rng.choice(IDS + LINKS[:4])
        parts.append(f"<guid{flag}>{value}</guid>")
    if rng.random() < 0.8:
        parts.append(f"<pubDate>{rng.choice(RFC822)}</pubDate>")
    for _ in range(rng.choice([0, 0, 1, 2])):
        parts.append(rng.choice(RSS_EXTRAS))
    if rng.random() < 0.04:
        parts.append(rng.choice(RSS_UNSURE))
    if rng.random() < 0.02:
        parts.append(parts[0] if parts else "<title>dup</title>")
    rng.shuffle(parts)
    attrs = ' xml:lang="fr"' if rng.random() < 0.2 else ""
    if rng.random() < 0.02:
        attrs = ' xml:base="https://base.example/x/"'
    return f"<item{attrs}>{''.join(parts)}</item>"


def _rss_doc(rng: random.Random) -> bytes:
    head: list[str] = []
    if rng.random() < 0.9:
        head.append(f"<title>{rng.choice(TEXTS)}</title>")
    head.append("<link>https://example.com/</link><description>d</description>")
    if rng.random() < 0.2:
        head.append(
            "<image><url>https://example.com/i.png</url><title>Image title</title>"
            "<link>https://example.com/</link></image>"
        )
    if rng.random() < 0.3:
        head.append('<atom:link href="https://news.example.org/feed.xml" rel="self"/>')
    if rng.random() < 0.03:
        head.append("<title>Second channel title</title>")
    rng.shuffle(head)
    items = "".join(_rss_item(rng) for _ in range(rng.randint(0, 5)))
    version = rng.choice(['version="2.0"'] * 30 + ['version="0.91"', ""])
    prolog = rng.choice(['<?xml version="1.0" encoding="utf-8"?>\n'] * 20 + ["", "<!-- c -->\n"])
    return (
        f"{prolog}<rss {version} {NAMESPACES}><channel>{''.join(head)}{items}</channel></rss>"
    ).encode()


ATOM_RELS = ["", "", "alternate", "self", "related", "enclosure", "ALTERNATE"]
ATOM_LINK_TYPES = [
    "",
    "",
    "image/png",
    "IMAGE/JPEG",
    "text/html",
    "application/pdf",
    "TEXT/HTML",
    "html",
    "application/xhtml+xml",
]


def _atom_link(rng: random.Random) -> str:
    rel = rng.choice(ATOM_RELS)
    kind = rng.choice(ATOM_LINK_TYPES)
    rel_attr = f' rel="{rel}"' if rel else ""
    type_attr = f' type="{kind}"' if kind else ""
    return f'<link{rel_attr}{type_attr} href="{rng.choice(LINKS)}"/>'


def _atom_entry(rng: random.Random) -> str:
    parts: list[str] = []
    if rng.random() < 0.9:
        kind = rng.choice(["", "", ' type="text"', ' type="text"'])
        if rng.random() < 0.03:
            kind = ' type="html"'
        parts.append(f"<title{kind}>{rng.choice(TEXTS)}</title>")
    if rng.random() < 0.02:
        parts.append(
            '<title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">x</div></title>'
        )
    parts.extend(_atom_link(rng) for _ in range(rng.choice([0, 1, 1, 2, 3])))
    if rng.random() < 0.85:
        parts.append(f"<id>{rng.choice(IDS + LINKS[:4])}</id>")
    if rng.random() < 0.6:
        parts.append(f"<published>{rng.choice(RFC3339)}</published>")
    if rng.random() < 0.7:
        parts.append(f"<updated>{rng.choice(RFC3339)}</updated>")
    extras = [
        "<author><name>A</name><uri>https://example.com/a</uri></author>",
        '<summary type="html">&lt;p&gt;s&lt;/p&gt;</summary>',
        "<content>plain content</content>",
        "<category term='x'/>",
        '<content type="html">&lt;p&gt;Atom &lt;i&gt;html&lt;/i&gt; '
        '&lt;img src="/a.png"&gt;</content>',
        "<summary>plain &lt;not a tag&gt; summary</summary>",
        '<content type="text">text &amp; content</content>',
        '<link rel="enclosure" type="image/jpeg" href="/enc.jpg"/>',
    ]
    unsure = [
        '<content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>c</p></div></content>',
        "<source><title>S</title></source>",
        "<dc:date>2024-01-20T00:00:00Z</dc:date>",
        "<link>https://example.com/atom03-style</link>",
        '<content type="text/html">mime typed</content>',
        '<content src="https://example.com/out"/>',
        '<summary type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">x</div></summary>',
    ]
    for _ in range(rng.choice([0, 0, 1, 2])):
        parts.append(rng.choice(extras))
    if rng.random() < 0.04:
        parts.append(rng.choice(unsure))
    rng.shuffle(parts)
    attrs = ' xml:lang="de"' if rng.random() < 0.2 else ""
    if rng.random() < 0.02:
        attrs = ' xml:base="https://base.example/y/"'
    return f"<entry{attrs}>{''.join(parts)}</entry>"


def _atom_doc(rng: random.Random) -> bytes:
    head = ["<id>urn:feed</id>", "<updated>2024-01-15T12:00:00Z</updated>"]
    if rng.random() < 0.9:
        kind = ' type="html"' if rng.random() < 0.03 else rng.choice(["", ' type="text"'])
        head.append(f"<title{kind}>{rng.choice(TEXTS)}</title>")
    if rng.random() < 0.5:
        head.append('<link rel="alternate" href="https://example.com/"/>')
    rng.shuffle(head)
    entries = "".join(_atom_entry(rng) for _ in range(rng.randint(0, 5)))
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" '
        f'xmlns:dc="http://purl.org/dc/elements/1.1/">{"".join(head)}{entries}</feed>'
    ).encode()


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("seed", range(8))
def test_generated_rss_documents_parse_identically(seed: int) -> None:
    rng = random.Random(seed)
    handled = [compare(_rss_doc(rng), max_items=rng.choice([200, 3])) for _ in range(60)]
    assert 0 < sum(handled) < len(handled)  # the corpus exercises both readers


@pytest.mark.parametrize("seed", range(8))
def test_generated_atom_documents_parse_identically(seed: int) -> None:
    rng = random.Random(1000 + seed)
    handled = [compare(_atom_doc(rng), max_items=rng.choice([200, 3])) for _ in range(60)]
    assert 0 < sum(handled) < len(handled)


def _stamp(minutes: int) -> datetime:
    return datetime(2024, 1, 15, 12, 0, tzinfo=UTC) - timedelta(minutes=minutes)


PLAIN = [
    rss([{"title": f"R{i}", "link": f"https://e.com/{i}", "pubdate": _stamp(i)} for i in range(5)]),
    rss([{"title": "Relative link", "link": "/a/b"}, {"title": "Only a guid", "guid": "x"}]),
    rss([{"title": "<b>tags</b> & more", "guid": "g", "description": "<p>html</p>"}]),
    rss([]),
    big_feed(30),
    atom(
        [{"title": f"A{i}", "link": f"https://e.com/{i}", "pubdate": _stamp(i)} for i in range(5)]
    ),
    atom([{"title": "Id only", "guid": "https://e.com/id"}, {"title": "Nothing"}]),
    atom([]),
    encoded_rss("utf-8", "Новости", ["Первая", "Вторая"]),
    encoded_rss("koi8-r", "Новости", ["Первая", "Вторая"]),
    encoded_rss("big5", "新聞", ["頭條", "第二"]),
    b'<?xml version="1.0"?>\r\n<?xml-stylesheet type="text/xsl" href="/s.xsl?a=1&b=<2>"?>\n'
    b'<rss version="2.0"><channel><title>Styled</title><item><title>i</title></item></channel>'
    b"</rss>",
]


@pytest.mark.parametrize("doc", PLAIN)
def test_plain_feeds_take_the_fast_path_and_match(doc: bytes) -> None:
    assert compare(doc)


def test_the_fast_path_is_what_parse_feed_uses() -> None:
    doc = big_feed(3)
    with mock.patch("bot.services.feed_parser._feedparser_parse") as slow:
        result = parse_feed(doc, FEED_URL)
    slow.assert_not_called()
    assert [item.title for item in result.items] == ["Item 0", "Item 1", "Item 2"]


FALLBACKS = {
    "rss 0.91": b'<rss version="0.91"><channel><title>t</title></channel></rss>',
    "rdf": (
        b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        b'xmlns="http://purl.org/rss/1.0/"><channel><title>t</title></channel>'
        b"<item><title>i</title><link>https://e.com/</link></item></rdf:RDF>"
    ),
    "doctype": b'<!DOCTYPE rss><rss version="2.0"><channel><title>t</title></channel></rss>',
    "xml:base": (
        b'<rss version="2.0"><channel xml:base="https://b.example/"><title>t</title>'
        b"<item><link>x</link></item></channel></rss>"
    ),
    "html title": b'<rss version="2.0"><channel><title type="html">t</title></channel></rss>',
    "dc:date": (
        b'<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><item>'
        b"<title>i</title><dc:date>2024-01-01T00:00:00Z</dc:date></item></channel></rss>"
    ),
    "origLink": (
        b'<rss version="2.0" xmlns:feedburner="http://rssnamespace.org/feedburner/ext/1.0">'
        b"<channel><item><feedburner:origLink>https://e.com/o</feedburner:origLink>"
        b"</item></channel></rss>"
    ),
    "atom html title": (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title type="html">&lt;b&gt;t</title></feed>'
    ),
    "atom 0.3": b'<feed version="0.3" xmlns="http://purl.org/atom/ns#"><title>t</title></feed>',
    "malformed": b'<rss version="2.0"><channel><title>t</title><item></channel></rss>',
    "undefined entity": b'<rss version="2.0"><channel><title>&nbsp;t</title></channel></rss>',
    "comment in prolog": b'<!-- x --><rss version="2.0"><channel><title>t</title></channel></rss>',
    # The C parser reads what passes the prolog check: a DOCTYPE hidden behind a processing
    # instruction that mentions a tag, or behind white space, must not get through.
    "doctype after a PI": (
        b'<?xml version="1.0"?>\n<?pi <rss ?>\n<!DOCTYPE rss [<!ENTITY a "x">]>'
        b'<rss version="2.0"><channel><title>&a;</title></channel></rss>'
    ),
    "doctype after space": (
        b'  \n<!DOCTYPE rss SYSTEM "http://evil.example/x.dtd">'
        b'<rss version="2.0"><channel><title>t</title></channel></rss>'
    ),
    "unclosed PI": b'<?pi <rss version="2.0"><channel><title>t</title></channel></rss>',
}


@pytest.mark.parametrize("name", sorted(FALLBACKS))
def test_unsure_constructs_are_left_to_feedparser(name: str) -> None:
    doc = FALLBACKS[name]
    assert fast_feed.extract(doc) is None
    compare(doc)


def test_duplicate_ids_first_wins_on_both_paths() -> None:
    item = "<item><title>{0}</title><guid>same</guid><pubDate>{1}</pubDate></item>"
    doc = (
        '<rss version="2.0"><channel><title>t</title>'
        + item.format("first", "Mon, 15 Jan 2024 10:00:00 GMT")
        + item.format("second", "Mon, 15 Jan 2024 11:00:00 GMT")
        + "</channel></rss>"
    ).encode()
    assert compare(doc)
    assert [i.title for i in parse_feed(doc, FEED_URL).items] == ["first"]


@pytest.mark.parametrize("failure", [KeyError("x"), TypeError("y"), MemoryError()])
def test_an_exception_in_the_fast_reader_is_a_parse_error(
    monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    def broken(_utf8: bytes) -> None:
        raise failure

    monkeypatch.setattr(fast_feed, "extract", broken)
    with pytest.raises(ParseError) as caught:
        parse_feed(big_feed(1), FEED_URL)
    assert caught.value.__cause__ is failure
