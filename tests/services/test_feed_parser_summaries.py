"""Item summaries and images from RSS and Atom (bot/services/feed_parser.py + bot/richtext.py).

Both readers (the fast one and feedparser) must give the same summaries and images: every
document here is checked with :func:`tests.services.test_fast_feed.compare` too.
"""

from __future__ import annotations

from unittest import mock

import pytest

from bot.models import FeedItem
from bot.richtext import SUMMARY_LIMIT, RichText
from bot.services import feed_parser
from bot.services.feed_parser import parse_feed
from bot.storage.state import TEXT_KEEP
from bot.telegram_html import visible_len
from tests.helpers.fake_bot_api import telegram_html_to_plain
from tests.services.test_fast_feed import FEED_URL, compare

NS = (
    'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
    'xmlns:media="http://search.yahoo.com/mrss/" '
    'xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"'
)


def rss_doc(*items: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0" {NS}><channel>'
        f"<title>News</title>{''.join(items)}</channel></rss>"
    ).encode()


ITEM_LINK = "https://site.example.net/2024/story"


def rss_item(inner: str, guid: str = "g1", link: str = ITEM_LINK) -> str:
    """An item whose link is on another host than the feed: bases can be told apart."""
    return (
        f'<item><title>T</title><guid isPermaLink="false">{guid}</guid><link>{link}</link>'
        f"{inner}</item>"
    )


def atom_doc(*entries: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>Atom News</title><id>urn:f</id>{''.join(entries)}</feed>"
    ).encode()


def atom_entry(inner: str) -> str:
    return (
        '<entry><title>T</title><id>urn:e:1</id><link href="https://news.example.org/a/1"/>'
        f"{inner}</entry>"
    )


def only(doc: bytes, *, fast: bool | None = True) -> FeedItem:
    """The one item of ``doc``, after checking both readers agree (and which one ran)."""
    handled = compare(doc)
    if fast is not None:
        assert handled is fast
    (result,) = parse_feed(doc, FEED_URL).items
    return result


# --------------------------------------------------------------------------- summaries


def test_content_encoded_wins_over_description_and_links_resolve_against_the_item() -> None:
    doc = rss_doc(
        rss_item(
            "<description>Short teaser</description>"
            "<content:encoded><![CDATA[<p>Full <a href='../more'>story</a> "
            "<script>track()</script>here</p>]]></content:encoded>"
        )
    )
    result = only(doc)
    assert result.summary == 'Full <a href="https://site.example.net/more">story</a> here'


def test_description_is_the_summary_when_there_is_no_content() -> None:
    doc = rss_doc(rss_item("<description>&lt;b&gt;Bold&lt;/b&gt; &amp;amp; plain</description>"))
    assert only(doc).summary == "<b>Bold</b> &amp; plain"


def test_plain_text_atom_summary_keeps_angle_brackets_as_text_and_its_paragraphs() -> None:
    doc = atom_doc(atom_entry("<summary>if a &lt;b then\n\nb &gt; a</summary>"))
    assert only(doc).summary == "if a &lt;b then\n\nb &gt; a"


def test_atom_html_content_wins_over_summary() -> None:
    doc = atom_doc(
        atom_entry(
            "<summary>teaser</summary>"
            '<content type="html">&lt;h2&gt;Head&lt;/h2&gt;&lt;p&gt;Body&lt;/p&gt;</content>'
        )
    )
    assert only(doc).summary == "<b>Head</b>\n\nBody"


def test_xhtml_content_goes_through_feedparser_and_is_converted() -> None:
    doc = atom_doc(
        atom_entry(
            '<content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">'
            "<p>One <em>two</em></p><ul><li>three</li></ul></div></content>"
        )
    )
    assert only(doc, fast=False).summary == "One <i>two</i>\n\n• three"


def test_long_bodies_are_bounded_and_valid_telegram_html() -> None:
    body = "<p>" + "word &amp; <b>bold</b> " * 2000 + "</p>"
    doc = rss_doc(rss_item(f"<content:encoded><![CDATA[{body}]]></content:encoded>"))
    summary = only(doc).summary
    assert visible_len(summary) <= SUMMARY_LIMIT
    assert telegram_html_to_plain(summary).endswith("…")


def test_items_without_a_body_have_no_summary() -> None:
    doc = rss_doc(rss_item("<description>   </description><content:encoded/>"))
    result = only(doc)
    assert (result.summary, result.image) == ("", None)


def test_a_body_the_converter_trips_on_costs_the_item_its_summary_not_the_feed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    doc = rss_doc(
        rss_item("<description>first</description>", guid="a"),
        rss_item("<description>second</description>", guid="b"),
    )
    real = feed_parser.convert

    def fussy(html_text: str, base_url: str | None, *, find_image: bool = True) -> RichText:
        if html_text == "first":
            raise RecursionError("too deep")
        return real(html_text, base_url, find_image=find_image)

    with mock.patch.object(feed_parser, "convert", side_effect=fussy):
        items = parse_feed(doc, FEED_URL).items
    assert [(i.id, i.summary) for i in items] == [("a", ""), ("b", "second")]
    assert "item body skipped: RecursionError" in caplog.text


def test_only_the_newest_text_keep_items_are_converted() -> None:
    items = [
        rss_item(
            f"<pubDate>Mon, 15 Jan 2024 {h:02d}:00:00 GMT</pubDate>"
            f"<description>body {h}</description>",
            guid=f"g{h}",
        )
        for h in range(TEXT_KEEP + 3)
    ]
    parsed = parse_feed(rss_doc(*items), FEED_URL)
    summaries = [item.summary for item in parsed.items]
    newest = TEXT_KEEP + 2
    assert summaries[:TEXT_KEEP] == [f"body {h}" for h in range(newest, newest - TEXT_KEEP, -1)]
    assert summaries[TEXT_KEEP:] == ["", "", ""]


def test_known_items_are_not_converted_again() -> None:
    doc = rss_doc(
        rss_item("<description>old</description>", guid="old"),
        rss_item("<description>new</description><media:thumbnail url='https://c.example/n.jpg'/>",
                 guid="new"),
    )  # fmt: skip
    items = parse_feed(doc, FEED_URL, known_ids=frozenset({"old"})).items
    assert [(i.id, i.summary, i.image) for i in items] == [
        ("old", "", None),
        ("new", "new", "https://c.example/n.jpg"),
    ]


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize(
    ("inner", "image", "fast"),
    [
        ('<enclosure url="/img/e.jpg" type="image/jpeg" length="1"/>'
         '<media:content url="https://cdn.example/m.jpg" medium="image"/>',
         "https://news.example.org/img/e.jpg", True),
        ('<enclosure url="https://a.example/ep.mp3" type="audio/mpeg" length="1"/>'
         '<media:content url="https://cdn.example/v.mp4" type="video/mp4"/>'
         '<media:content url="https://cdn.example/m.png" type="image/png"/>',
         "https://cdn.example/m.png", True),
        ('<media:content url="javascript:alert(1)" medium="image"/>'
         '<media:thumbnail url="//cdn.example/t.jpg"/>', "https://cdn.example/t.jpg", True),
        ('<itunes:image href="https://pod.example/cover.jpg"/>',
         "https://pod.example/cover.jpg", False),
        ("<content:encoded><![CDATA[<img src='data:image/png;base64,AA'>"
         "<img src='/p.gif' width='1' height='1'><img src='pic.jpg'>]]></content:encoded>",
         "https://site.example.net/2024/pic.jpg", True),
        ('<enclosure url="https://cdn.example/e.png" type="image/png"/>'
         "<description>&lt;img src='/body.jpg'&gt;</description>",
         "https://cdn.example/e.png", True),
        ("<description>no image</description>", None, True),
    ],
)  # fmt: skip
def test_the_first_image_declared_by_the_feed_or_else_in_the_body(
    inner: str, image: str | None, fast: bool
) -> None:
    assert only(rss_doc(rss_item(inner)), fast=fast).image == image


def test_atom_enclosure_links_of_image_type_are_images() -> None:
    doc = atom_doc(
        atom_entry(
            '<link rel="enclosure" type="audio/mpeg" href="https://a.example/x.mp3"/>'
            '<link rel="enclosure" type="image/webp" href="/i/cover.webp"/>'
        )
    )
    assert only(doc).image == "https://news.example.org/i/cover.webp"


def test_an_item_with_an_image_but_no_text_keeps_the_image() -> None:
    doc = rss_doc(rss_item('<media:thumbnail url="https://cdn.example/t.jpg"/>'))
    result = only(doc)
    assert (result.summary, result.image) == ("", "https://cdn.example/t.jpg")
