"""JSON Feed 1.0/1.1 (bot/services/json_feed.py through parse_feed), and /add of one."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.config import Settings
from bot.models import FeedItem
from bot.services.feed_discovery import discover_feed_links, looks_like_html
from bot.services.feed_errors import NotAFeedError, ParseError, UndecodableError
from bot.services.feed_parser import (
    MAX_ID_CHARS,
    UNTITLED,
    parse_feed,
)
from bot.services.json_feed import FALLBACK_TITLE_CHARS, looks_like_json
from bot.storage import get_storage_service
from tests.helpers.bot_runner import running_bot
from tests.helpers.conversation import say
from tests.helpers.fake_bot_api import FakeBotAPI
from tests.helpers.feed_server import FeedServer
from tests.helpers.feeds import html_page_with_feed_link, json_feed

FEED_URL = "https://blog.example.org/feed.json"
JSON_TYPE = "application/feed+json"
SettingsFactory = Callable[..., Settings]
INSTANT = "New items will be posted here as soon as they appear."


def parse(body: bytes, content_type: str | None = JSON_TYPE, **kwargs: Any) -> tuple[Any, ...]:
    parsed = parse_feed(body, FEED_URL, content_type=content_type, **kwargs)
    return parsed.title, parsed.items


def one(item: dict[str, Any]) -> FeedItem:
    _title, items = parse(json_feed([item]))
    (result,) = items
    return result


def refused(body: bytes, content_type: str | None = JSON_TYPE) -> ParseError:
    with pytest.raises(ParseError) as caught:
        parse_feed(body, FEED_URL, content_type=content_type)
    return caught.value


# --------------------------------------------------------------------------- mapping


def test_a_json_feed_maps_to_items_like_rss() -> None:
    body = json_feed(
        [
            {
                "id": "2",
                "url": "https://blog.example.org/2",
                "title": "Second",
                "content_html": '<p>Hello <a href="/x">there</a><img src="/i.png"></p>',
                "date_published": "2024-01-15T12:00:00+02:00",
            },
            {
                "id": "1",
                "url": "/1",
                "title": "First",
                "content_text": "Plain <not a tag>\n\nsecond paragraph",
                "image": "https://cdn.example/1.jpg",
                "date_published": "2024-01-14T08:00:00Z",
                "date_modified": "2024-01-16T00:00:00Z",
            },
        ],
        title="JSON Times",
    )
    title, items = parse(body)
    assert title == "JSON Times"
    assert items == (
        FeedItem(
            id="2",
            title="Second",
            link="https://blog.example.org/2",
            published=datetime(2024, 1, 15, 10, 0, tzinfo=UTC),
            source_title="JSON Times",
            feed_url=FEED_URL,
            summary='Hello <a href="https://blog.example.org/x">there</a>',
            image="https://blog.example.org/i.png",
        ),
        FeedItem(
            id="1",
            title="First",
            link="https://blog.example.org/1",
            published=datetime(2024, 1, 14, 8, 0, tzinfo=UTC),
            source_title="JSON Times",
            feed_url=FEED_URL,
            summary="Plain &lt;not a tag&gt;\n\nsecond paragraph",
            image="https://cdn.example/1.jpg",
        ),
    )


@pytest.mark.parametrize(
    "version", ["https://jsonfeed.org/version/1", "https://jsonfeed.org/version/1.1/"]
)
@pytest.mark.parametrize("content_type", [JSON_TYPE, "application/json", "text/plain", None])
def test_versions_1_and_1_1_are_read_whatever_the_content_type(
    version: str, content_type: str | None
) -> None:
    body = json_feed([{"id": "a", "title": "A"}], version=version)
    assert [i.title for i in parse(body, content_type)[1]] == ["A"]


def test_a_byte_order_mark_and_leading_space_are_fine() -> None:
    body = b"\xef\xbb\xbf \n" + json_feed([{"id": "a", "title": "A"}])
    assert [i.id for i in parse(body, None)[1]] == ["a"]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"url": "https://a.example/u", "external_url": "https://b.example/e"},
         "https://a.example/u"),
        ({"external_url": "https://b.example/e"}, "https://b.example/e"),
        ({"url": "javascript:alert(1)"}, None),
        ({"url": ["not", "a", "string"]}, None),
    ],
)  # fmt: skip
def test_link_is_url_else_external_url(fields: dict[str, Any], expected: str | None) -> None:
    assert one({"id": "x", "title": "t", **fields}).link == expected


@pytest.mark.parametrize(
    ("fields", "summary"),
    [
        ({"content_html": "<b>html</b>", "content_text": "text", "summary": "sum"},
         "<b>html</b>"),
        ({"content_html": "  ", "content_text": "text & more", "summary": "sum"},
         "text &amp; more"),
        ({"summary": "just <b>a summary</b>"}, "just &lt;b&gt;a summary&lt;/b&gt;"),
        ({"content_html": 42}, ""),
    ],
)  # fmt: skip
def test_body_is_content_html_else_content_text_else_summary(
    fields: dict[str, Any], summary: str
) -> None:
    assert one({"id": "x", "title": "t", **fields}).summary == summary


@pytest.mark.parametrize(
    ("fields", "image"),
    [
        ({"image": "https://c.example/i.jpg", "banner_image": "https://c.example/b.jpg"},
         "https://c.example/i.jpg"),
        ({"banner_image": "/b.jpg"}, "https://blog.example.org/b.jpg"),
        ({"attachments": [
            {"url": "https://c.example/ep.mp3", "mime_type": "audio/mpeg"},
            "junk",
            {"url": "https://c.example/cover.png", "mime_type": "Image/PNG"},
        ]}, "https://c.example/cover.png"),
        ({"attachments": {"not": "a list"}, "content_html": "<img src='https://c.example/x.gif'>"},
         "https://c.example/x.gif"),
        ({"image": "data:image/png;base64,AAAA"}, None),
    ],
)  # fmt: skip
def test_image_is_image_else_banner_else_an_image_attachment_else_the_body(
    fields: dict[str, Any], image: str | None
) -> None:
    assert one({"id": "x", "title": "t", **fields}).image == image


def test_an_item_without_a_title_is_named_by_its_first_words() -> None:
    long_text = "word " * 40
    _title, items = parse(
        json_feed(
            [
                {"id": "1", "content_html": "<p>Short <b>note</b> about &amp; things</p>"},
                {"id": "2", "content_text": long_text},
                {"id": "3"},
            ]
        )
    )
    titles = [i.title for i in items]
    assert titles[0] == "Short note about & things"
    assert titles[1] == "word " * 15 + "word…"
    assert len(titles[1]) <= FALLBACK_TITLE_CHARS
    assert titles[2] == UNTITLED


@pytest.mark.parametrize(
    ("ident", "expected"),
    [
        (17, "17"),
        (1.5, "1.5"),
        (True, "https://blog.example.org/p"),
        ("", "https://blog.example.org/p"),
    ],
)
def test_ids_may_be_numbers_and_fall_back_to_the_link(ident: object, expected: str) -> None:
    assert one({"id": ident, "title": "t", "url": "/p"}).id == expected


def test_hostile_strings_are_made_safe_to_store_and_send() -> None:
    raw = (
        b'{"version": "https://jsonfeed.org/version/1.1", "title": "T\\u0000\\ud800", "items": '
        b'[{"id": "' + b"i" * (MAX_ID_CHARS + 1) + b'", "title": "bell\\u0007 \\udc00 end", '
        b'"content_html": "<b>x\\ud83d</b>"}, 5, null, "junk"]}'
    )
    title, items = parse(raw)
    (item,) = items
    assert title == "T\ufffd"
    assert item.title == "bell \ufffd end"
    assert item.id.startswith("sha256:")
    assert item.summary == "<b>x\ufffd</b>"
    item.title.encode("utf-8")  # nothing left that UTF-8 cannot carry


def test_max_items_and_order_apply_as_for_xml() -> None:
    entries = [
        {"id": str(n), "title": f"n{n}", "date_published": f"2024-01-{10 + n:02d}T00:00:00Z"}
        for n in range(5)
    ] + [{"id": "undated", "title": "u"}]
    _title, items = parse(json_feed(entries), max_items=3)
    assert [i.id for i in items] == ["4", "3", "2"]


def test_an_empty_json_feed_is_a_feed_with_no_items() -> None:
    assert parse(json_feed([], title="Quiet")) == ("Quiet", ())
    assert parse(json_feed([], title=None)) == ("blog.example.org", ())


def test_results_pickle_for_the_process_pool() -> None:
    parsed = parse_feed(json_feed([{"id": "a", "content_html": "<i>x</i>"}]), FEED_URL)
    assert pickle.loads(pickle.dumps(parsed)) == parsed  # noqa: S301 - our own bytes


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": [', JSON_TYPE,
         "the JSON feed is not valid JSON"),
        (b"{not json at all", None, "the JSON feed is not valid JSON"),
        (b"nonsense", "application/json", "the JSON feed is not valid JSON"),
        (b"[1, 2, 3]", "application/json",
         "this JSON is not a JSON Feed (no jsonfeed.org version)"),
        (b'{"title": "API answer", "items": []}', None,
         "this JSON is not a JSON Feed (no jsonfeed.org version)"),
        (b'{"version": "https://jsonfeed.org/version/2", "items": []}', None,
         "this JSON is not a JSON Feed (no jsonfeed.org version)"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": {"a": 1}}', None,
         "the JSON feed has no list of items"),
        (b'{"version": "https://jsonfeed.org/version/1"}', None,
         "the JSON feed has no list of items"),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, None, "the JSON feed is not valid JSON"),
    ],
)  # fmt: skip
def test_malformed_json_is_not_a_feed_with_a_clear_reason(
    body: bytes, content_type: str | None, reason: str
) -> None:
    error = refused(body, content_type)
    assert type(error) is NotAFeedError
    assert error.reason == reason
    if reason == "the JSON feed is not valid JSON":  # raised from the json module's error
        assert isinstance(error.__cause__, ValueError | RecursionError)


@pytest.mark.parametrize(
    "body",
    [
        b'{"version": "https://jsonfeed.org/version/1.1", "title": "\xff\xfe\xfa"}',
        b"\x00\x01 binary",
    ],
)
def test_bytes_that_are_not_utf8_are_undecodable(body: bytes) -> None:
    assert type(refused(body, "application/json")) is UndecodableError


def test_xml_served_as_json_is_still_read_as_xml() -> None:
    body = b'<rss version="2.0"><channel><title>Mislabelled</title></channel></rss>'
    assert parse(body, "application/json") == ("Mislabelled", ())


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b'  {"version": 1}', None, True),
        (b"\xef\xbb\xbf{}", "text/html", True),
        (b"[]", "application/feed+json; charset=utf-8", True),
        (b"[]", None, False),
        (b"<rss/>", "application/json", False),
        (b"<html></html>", "text/html", False),
    ],
)
def test_looks_like_json(body: bytes, content_type: str | None, expected: bool) -> None:
    assert looks_like_json(body, content_type) is expected


def test_a_json_feed_served_as_html_is_not_taken_for_a_page() -> None:
    assert not looks_like_html(json_feed([]), "text/html; charset=utf-8")


# --------------------------------------------------------------------------- discovery and /add


def test_pages_advertise_json_feeds_with_feed_json_only() -> None:
    page = (
        b'<html><head><link rel="alternate" type="application/json" href="/wp-json/wp/v2/1">'
        b'<link rel="alternate" type="application/feed+json" href="/feed.json"></head></html>'
    )
    assert discover_feed_links(page, "https://blog.example.org/post") == [
        "https://blog.example.org/feed.json"
    ]


async def test_add_a_json_feed_directly_and_through_its_page(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    items = [
        {"id": f"j{n}", "url": f"https://j.example/{n}", "title": f"JSON story {n}",
         "content_html": f"<p>Body <b>{n}</b></p>", "date_published": f"2024-01-1{n}T00:00:00Z"}
        for n in range(3)
    ]  # fmt: skip
    feed_server.serve("/feed.json", json_feed(items, title="JSON Times"), content_type=JSON_TYPE)
    feed_server.serve(
        "/blog",
        html_page_with_feed_link("/feed.json", "Blog", feed_type=JSON_TYPE),
        content_type="text/html; charset=utf-8",
    )
    feed_server.serve("/api", b'{"posts": []}', content_type="application/json")
    url = feed_server.url("/feed.json")
    async with running_bot(bot_settings()):
        direct = await say(fake_api, f"/add {url}", 31)
        through_page = await say(fake_api, f"/add {feed_server.url('/blog')}", 32)
        not_a_feed = await say(fake_api, f"/add {feed_server.url('/api')}", 33)
        storage = get_storage_service()
        logged = [entry.item for entry in storage.feed_log(url)]
        followed = (storage.feed_urls(31), storage.feed_urls(32), storage.feed_urls(33))
    assert direct == f"✅ Now following JSON Times.\n{INSTANT}"
    assert through_page == f"✅ Now following JSON Times.\n(found the feed at {url})\n{INSTANT}"
    assert not_a_feed == (
        "❌ Couldn't add that feed: this JSON is not a JSON Feed (no jsonfeed.org version)."
    )
    assert followed == ([url], [url], [])
    # What the feed held when added is its baseline: logged (titles for /news) but never
    # posted, so no summary was converted for it.
    assert sorted((i.title, i.summary) for i in logged) == [
        (f"JSON story {n}", "") for n in range(3)
    ]
