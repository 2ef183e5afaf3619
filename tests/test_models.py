"""The pure rules in ``bot/models.py`` that are not storage shapes: how a feed is named."""

from __future__ import annotations

import pytest

from bot.models import chosen_title, display_title, host_of


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
