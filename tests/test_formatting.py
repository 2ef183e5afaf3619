"""Pure formatting: escaping, message splitting, and which cursors each message advances."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from bot.formatting import (
    MAX_MESSAGE_LEN,
    format_age,
    format_backlogs,
    format_counters,
    format_item,
    format_news,
    format_when,
    pack_blocks,
    too_long_note,
)
from bot.i18n import translator
from bot.models import Backlog, FeedItem, LogEntry
from bot.telegram_html import utf16_len

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
EN = translator("en")


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
    text = format_item(item('<script>alert("x")</script> & co'), NOW, t=EN)
    assert "<script>" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in text
    assert 'href="https://e.example/a?x=1&amp;y=2"' in text
    assert "Src &lt;b&gt;" in text
    assert "2 hr. ago" in text


def test_emoji_and_rtl_survive() -> None:
    text = format_item(item("🔥 خبر عاجل — שלום"), NOW, t=EN)
    assert "🔥 خبر عاجل — שלום" in text


def test_item_without_link_or_date() -> None:
    text = format_item(item("plain", link=None, published=None), NOW, t=EN)
    assert "<a " not in text
    assert "·" not in text


def test_messages_are_split_never_over_limit() -> None:
    items = [item("x" * 250, id=str(i)) for i in range(60)]
    messages = format_news(items, "<b>News</b>", NOW, t=EN)
    assert len(messages) > 1
    assert all(len(m) <= MAX_MESSAGE_LEN for m in messages)
    assert messages[0].startswith("<b>News</b>")
    assert sum(m.count("<b><a href") for m in messages) == 60


def test_a_single_oversized_block_is_replaced_not_cut() -> None:
    messages = pack_blocks("<b>H</b>", ["y" * 5000, "<b>ok</b>"], t=EN)
    note = "<i>(an item too long to show was skipped)</i>"
    assert messages == ["<b>H</b>\n\n" + note + "\n\n<b>ok</b>"]


@pytest.mark.parametrize("header", ["", "<b>H 😀</b>"])
def test_blocks_fill_each_message_exactly_to_the_limit_in_utf16_units(header: str) -> None:
    limit = 40
    blocks = ["😀" * n for n in (5, 7, 3, 9, 1, 8, 8, 2, 6, 10, 4)]  # 2 units a character
    messages = pack_blocks(header, blocks, limit=limit, t=EN)
    assert all(utf16_len(m) <= limit for m in messages)
    assert messages[0].startswith(header)
    assert not any(m.startswith("<b>") for m in messages[1:])  # the header opens one message
    parts = [m.removeprefix(header).removeprefix("\n\n") if n == 0 else m
             for n, m in enumerate(messages)]  # fmt: skip
    assert "\n\n".join(parts).split("\n\n") == blocks  # all, once, in order
    for n in range(len(messages) - 1):  # greedy: the next block did not fit here
        first_next = messages[n + 1].split("\n\n")[0]
        assert utf16_len(messages[n]) + 2 + utf16_len(first_next) > limit


def test_instant_backlogs_pack_by_the_same_rule_as_every_other_list() -> None:
    backlogs = [backlog(URL_A, range(1, 90), title="A", pad=12)]
    messages = format_backlogs(backlogs, t=EN, digest=False, now=NOW)
    items = [format_item(e.item, NOW, t=EN) for e in backlogs[0].entries]
    assert len(messages) > 1
    assert [m.text for m in messages] == pack_blocks("", items, t=EN)


def test_long_titles_are_shortened() -> None:
    text = format_item(item("word " * 500), NOW, t=EN)
    assert len(text) < 600
    assert "…" in text


@pytest.mark.parametrize(
    ("age", "english", "russian"),
    [
        (timedelta(seconds=5), "1 min. ago", "1 мин. назад"),
        (timedelta(minutes=59, seconds=59), "59 min. ago", "59 мин. назад"),
        (timedelta(hours=1), "1 hr. ago", "1 ч назад"),
        (timedelta(hours=5, minutes=59), "5 hr. ago", "5 ч назад"),
        (timedelta(hours=23, minutes=59), "23 hr. ago", "23 ч назад"),
        (timedelta(days=1), "1 day ago", "1 дн. назад"),
        (timedelta(days=3, hours=23), "3 days ago", "3 дн. назад"),
    ],
)
def test_format_age_floors_to_the_unit_in_the_chats_language(
    age: timedelta, english: str, russian: str
) -> None:
    assert format_age(NOW - age, NOW, t=EN) == english
    assert format_age(NOW - age, NOW, t=translator("ru")) == russian


def test_format_age_without_a_date_or_from_the_future() -> None:
    assert format_age(None, NOW, t=EN) == ""
    assert format_age(NOW + timedelta(hours=2), NOW, t=EN) == "1 min. ago"  # clock skew


def test_format_when_in_the_chats_language_and_a_24_hour_clock() -> None:
    evening = datetime(2026, 11, 4, 20, 5, tzinfo=UTC)
    assert format_when(evening, t=EN) == "Nov 4, 2026, 20:05"
    assert format_when(evening, t=translator("ru")) == "4 нояб. 2026\u202fг., 20:05"


def test_item_source_can_be_left_out() -> None:
    text = format_item(item("t", source="The Source"), NOW, t=EN, show_source=False)
    assert "The Source" not in text
    assert text.endswith("\n2 hr. ago")
    bare = format_item(item("t", published=None), NOW, t=EN, show_source=False)
    assert "\n" not in bare


def test_counters_view() -> None:
    text = format_counters(
        {"global": {"news_requests": 3}, "chats": {"-1": {"news_requests": 2}, "5": {}}}
    )
    assert "news_requests: 3" in text
    assert "-1: news_requests=2" in text


# ---------------------------------------------------------------------------- format_backlogs

URL_A = "https://a.example/rss"
URL_B = "https://b.example/rss"


def backlog(
    url: str,
    seqs: range,
    *,
    title: str = "Feed",
    skipped: int = 0,
    pad: int = 0,
    item_title: str | None = None,
) -> Backlog:
    entries = [
        LogEntry(
            seq,
            FeedItem(
                id=f"{url}#{seq}",
                title=item_title or f"Item {seq}" + " word" * pad,
                link=f"https://e.example/{seq}",
                published=NOW - timedelta(minutes=seq),
                source_title=title,
                feed_url=url,
            ),
        )
        for seq in seqs
    ]
    return Backlog(url, title, entries, skipped, seqs[-1] if seqs else 0)


def seq_of(item_id: str) -> int:
    return int(item_id.rpartition("#")[2])


@pytest.mark.parametrize("digest", [False, True])
def test_backlogs_split_at_the_limit_and_each_message_advances_exactly_its_items(
    digest: bool,
) -> None:
    backlogs = [
        backlog(URL_A, range(11, 71), title="A", pad=40),
        backlog(URL_B, range(3, 33), title="B", pad=40),
    ]
    messages = format_backlogs(backlogs, t=EN, digest=digest, now=NOW)
    assert len(messages) > 2
    assert all(len(m.text) <= MAX_MESSAGE_LEN for m in messages)
    sent = [i for m in messages for i in m.item_ids]
    assert sent == [e.item.id for b in backlogs for e in b.entries]  # all, once, in order
    last_of = {url: max(n for n, m in enumerate(messages) if url in m.advances)
               for url in (URL_A, URL_B)}  # fmt: skip
    for n, message in enumerate(messages):
        for item_id in message.item_ids:
            assert f">Item {seq_of(item_id)} word" in message.text
        for url, head in ((URL_A, 70), (URL_B, 32)):
            mine = [seq_of(i) for i in message.item_ids if i.startswith(url)]
            if n == last_of[url]:
                assert message.advances[url] == head
            elif mine:
                assert message.advances[url] == max(mine)  # never past what it carries
            else:  # only a header or note of this feed: must not pass its later items
                later = [seq_of(i) for m in messages[n:] for i in m.item_ids if i.startswith(url)]
                assert message.advances.get(url, 0) < min(later, default=1 << 30)


def test_a_small_backlog_is_one_message_that_advances_every_feed_to_its_head() -> None:
    [message] = format_backlogs(
        [backlog(URL_A, range(5, 8)), backlog(URL_B, range(1, 2))], t=EN, digest=False, now=NOW
    )
    assert message.advances == {URL_A: 7, URL_B: 1}
    assert len(message.item_ids) == 4


def test_nothing_pending_is_no_message() -> None:
    assert format_backlogs([], t=EN, digest=True, now=NOW) == []


def test_digest_groups_items_under_a_header_per_feed() -> None:
    [message] = format_backlogs(
        [backlog(URL_A, range(1, 3), title="Alpha"), backlog(URL_B, range(1, 2), title="Beta")],
        t=EN,
        digest=True,
        now=NOW,
    )
    text = message.text
    assert text.startswith("<b>📰 Digest</b>")
    order = [text.index(s) for s in ("<b>Alpha</b>", ">Item 1<", ">Item 2<", "<b>Beta</b>")]
    assert order == sorted(order)
    assert text.index("<b>Beta</b>") < text.rindex(">Item 1<")  # Beta's item 1 follows it
    assert "\nAlpha" not in text  # the header names the source; items do not repeat it


def test_a_feed_header_is_never_left_alone_at_the_bottom_of_a_message() -> None:
    backlogs = [
        backlog(f"https://f{n}.example/rss", range(1, 4), title=f"Feed {n}", pad=60)
        for n in range(12)
    ]
    messages = format_backlogs(backlogs, t=EN, digest=True, now=NOW)
    assert len(messages) > 1
    for message in messages:
        assert len(message.text) <= 4096
        last_block = message.text.rsplit("\n\n", 1)[-1]
        assert not last_block.startswith("<b>Feed "), "a header ended a message"
    headers = sum(m.text.count("<b>Feed ") for m in messages)
    assert headers == 12  # each feed's header appears exactly once


def test_instant_messages_have_no_header_and_name_the_source() -> None:
    [message] = format_backlogs([backlog(URL_A, range(1, 2), title="Alpha")], t=EN, digest=False)
    assert "Digest" not in message.text
    assert message.text.startswith("<b><a href=")
    assert "\nAlpha" in message.text


@pytest.mark.parametrize("digest", [False, True])
def test_skipped_items_are_announced_with_their_number(digest: bool) -> None:
    [message] = format_backlogs(
        [backlog(URL_A, range(43, 45), title="Alpha", skipped=42)], t=EN, digest=digest, now=NOW
    )
    assert "42 earlier items of Alpha were skipped" in message.text
    assert message.text.index("skipped") < message.text.index(">Item 43<")
    assert message.advances == {URL_A: 44}


@pytest.mark.parametrize(
    ("skipped", "expected"),
    [
        (1, "1 более ранняя новость из ленты Альфа пропущена: лента ушла вперёд, прежде чем её"),
        (3, "3 более ранние новости из ленты Альфа пропущены: лента ушла вперёд, прежде чем их"),
        (11, "11 более ранних новостей из ленты Альфа пропущено: лента ушла вперёд, прежде чем"),
        (22, "22 более ранние новости из ленты Альфа пропущены"),
    ],
)
def test_a_russian_digest_has_a_russian_header_and_skip_note(skipped: int, expected: str) -> None:
    [message] = format_backlogs(
        [backlog(URL_A, range(50, 51), title="Альфа", skipped=skipped)],
        t=translator("ru"),
        digest=True,
        now=NOW,
    )
    assert message.text.startswith("<b>📰 Дайджест</b>\n\n<b>Альфа</b>\n\n<i>… " + expected)


def test_the_too_long_note_is_in_the_chats_language() -> None:
    [message] = pack_blocks("", ["y" * 5000], t=translator("ru"))
    assert message == "<i>(новость слишком длинная для показа и пропущена)</i>"


def test_hostile_titles_are_escaped_everywhere() -> None:
    evil = '<script>alert("x")</script> & <b>'
    messages = format_backlogs(
        [backlog(URL_A, range(1, 2), title=evil, skipped=3, item_title=evil)],
        t=EN,
        digest=True,
        now=NOW,
    )
    [message] = messages
    assert "<script>" not in message.text
    assert message.text.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp;") == 3
    tags = re.findall(r"</?([a-z]+)", message.text)
    assert set(tags) <= {"b", "i", "a"}  # only the formatter's own markup


def test_an_item_too_long_to_send_is_replaced_and_still_advanced_past() -> None:
    huge = backlog(URL_A, range(1, 3))
    entry = huge.entries[0]
    long_link = "https://e.example/" + "x" * 5000
    huge.entries[0] = LogEntry(
        entry.seq,
        FeedItem(entry.item.id, "huge", long_link, NOW, "Feed", URL_A),
    )
    [message] = format_backlogs([huge], t=EN, digest=False, now=NOW)
    assert too_long_note(EN) in message.text
    assert ">Item 2<" in message.text
    assert message.advances == {URL_A: 2}
