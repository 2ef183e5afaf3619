"""The pure rules in ``bot/models.py`` that are not storage shapes: how a feed is named."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from datetime import UTC, datetime

import pytest

from bot.models import (
    Chat,
    FeedItem,
    FeedState,
    Filters,
    ParsedFeed,
    Subscription,
    chosen_title,
    display_title,
    host_of,
)


@pytest.mark.parametrize(
    ("custom", "feed", "url", "shown"),
    [
        ("Mine", "Feed", "https://news.example/rss", "Mine"),
        ("", "Feed", "https://news.example/rss", "Feed"),
        ("", "", "https://news.example:8443/rss?x=1", "news.example"),
        ("", "", "not a url", "not a url"),
    ],
)
def test_display_title_is_custom_then_feed_then_host(
    custom: str, feed: str, url: str, shown: str
) -> None:
    assert display_title(custom, feed, url) == shown


def test_chosen_title_never_makes_a_name_up() -> None:
    assert chosen_title("Mine", "Feed") == "Mine"
    assert chosen_title("", "Feed") == "Feed"
    assert chosen_title("", "") == ""


def test_host_of_is_the_hostname() -> None:
    assert host_of("https://User@News.Example/a") == "news.example"


def test_a_feed_item_pickles_compactly_and_comes_back_equal() -> None:
    """Parsed items cross from the parser processes by pickle: constructor arguments only."""
    item = FeedItem(
        id="urn:x:1",
        title="Title",
        link="https://e.example/1",
        published=datetime(2024, 1, 15, 12, 0, tzinfo=UTC),
        source_title="Feed",
        feed_url="https://e.example/feed",
        summary="<b>text</b>",
        image="https://e.example/1.jpg",
    )
    data = pickle.dumps(ParsedFeed("Feed", (item, item)), protocol=pickle.HIGHEST_PROTOCOL)
    back = pickle.loads(data)  # noqa: S301 - our own bytes
    assert back == ParsedFeed("Feed", (item, item))
    assert type(back.items[0]) is FeedItem
    assert b"source_title" not in data  # no field names per item


@pytest.mark.parametrize(
    "original",
    [
        Chat(chat_id=-100, type="channel", title="C", managers=(1, 2), filters=Filters(("a",))),
        Subscription(chat_id=5, url="https://e.example/f", cursor=7, title="Mine", muted=True),
        FeedState(url="https://e.example/f", title="F", etag='"x"', failures=2),
    ],
    ids=lambda obj: type(obj).__name__,
)
def test_copies_are_shallow_copies_field_by_field(original: object) -> None:
    """The constructor-based ``__copy__`` gives what the default shallow copy gives."""
    copied = copy.copy(original)
    assert copied == original and copied is not original and type(copied) is type(original)
    for f in dataclasses.fields(original):  # type: ignore[arg-type]
        assert getattr(copied, f.name) is getattr(original, f.name)
