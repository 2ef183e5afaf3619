from datetime import UTC, datetime, timedelta

from bot.formatting import (
    MAX_MESSAGE_LEN,
    TOO_LONG,
    describe_schedule,
    format_age,
    format_counters,
    format_feed_list,
    format_item,
    format_news,
    pack_blocks,
)
from bot.models import DigestSchedule, FeedItem

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def item(title: str, link: str | None = "https://e.example/a?x=1&y=2", **kw: object) -> FeedItem:
    return FeedItem(
        id=str(kw.get("id", title)),
        title=title,
        link=link,
        published=kw.get("published", NOW - timedelta(hours=2)),  # type: ignore[arg-type]
        source_title=str(kw.get("source", "Src <b>")),
        feed_url="https://e.example/rss",
    )


def test_every_feed_string_is_escaped() -> None:
    text = format_item(item('<script>alert("x")</script> & co'), NOW)
    assert "<script>" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in text
    assert 'href="https://e.example/a?x=1&amp;y=2"' in text
    assert "Src &lt;b&gt;" in text
    assert "2h" in text


def test_emoji_and_rtl_survive() -> None:
    text = format_item(item("🔥 خبر عاجل — שלום"), NOW)
    assert "🔥 خبر عاجل — שלום" in text


def test_item_without_link_or_date() -> None:
    text = format_item(item("plain", link=None, published=None), NOW)
    assert "<a " not in text
    assert "·" not in text


def test_messages_are_split_never_over_limit() -> None:
    items = [item("x" * 250, id=str(i)) for i in range(60)]
    messages = format_news(items, "<b>News</b>", NOW)
    assert len(messages) > 1
    assert all(len(m) <= MAX_MESSAGE_LEN for m in messages)
    assert messages[0].startswith("<b>News</b>")
    assert sum(m.count("<b><a href") for m in messages) == 60


def test_a_single_oversized_block_is_replaced_not_cut() -> None:
    messages = pack_blocks("<b>H</b>", ["y" * 5000, "<b>ok</b>"])
    assert messages == ["<b>H</b>\n\n" + TOO_LONG + "\n\n<b>ok</b>"]


def test_long_titles_are_shortened() -> None:
    text = format_item(item("word " * 500), NOW)
    assert len(text) < 600
    assert "…" in text


def test_format_age() -> None:
    assert format_age(None, NOW) == ""
    assert format_age(NOW - timedelta(seconds=5), NOW) == "1m"
    assert format_age(NOW - timedelta(minutes=59), NOW) == "59m"
    assert format_age(NOW - timedelta(hours=5), NOW) == "5h"
    assert format_age(NOW - timedelta(days=3), NOW) == "3d"


def test_feed_list_numbers_and_marks_paused() -> None:
    text = format_feed_list(
        ["https://a.example/rss", "https://b.example/feed"],
        {"https://a.example/rss": "A & B"},
        {"https://b.example/feed"},
    )
    assert "1. A &amp; B" in text
    assert "2. b.example ⏸ paused" in text
    assert "No feeds" in format_feed_list([], {}, set())


def test_describe_schedule() -> None:
    assert describe_schedule(DigestSchedule("off")) == "off"
    assert describe_schedule(DigestSchedule("every", interval_s=7200)) == "every 2h"
    assert describe_schedule(DigestSchedule("every", interval_s=1800)) == "every 30m"
    assert describe_schedule(DigestSchedule("at", at="08:00")) == "daily at 08:00 UTC"


def test_counters_view() -> None:
    text = format_counters(
        {"global": {"news_requests": 3}, "chats": {"-1": {"news_requests": 2}, "5": {}}}
    )
    assert "news_requests: 3" in text
    assert "-1: news_requests=2" in text
