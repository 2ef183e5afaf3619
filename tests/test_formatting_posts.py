"""Instant posts in the three formats: exact texts, Telegram's limits, images, cursors.

Every post is checked against the fake Bot API's own HTML validator and its own UTF-16
count (``telegram_html_to_plain``, ``_utf16``): independent of ``bot.richtext``, so a wrong
budget in the formatter shows up here rather than as a 400 in production.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.formatting import (
    MAX_CAPTION_LEN,
    MAX_MESSAGE_LEN,
    format_backlogs,
    format_instant,
    format_post,
)
from bot.i18n import translator
from bot.models import Backlog, FeedItem, LogEntry, PostFormat, Subscription
from bot.richtext import to_telegram_html
from tests.helpers.fake_bot_api import telegram_html_to_plain

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
EN = translator("en")
URL = "https://feed.example/rss"
OTHER = "https://other.example/rss"
LINK = "https://news.example/a?x=1&y=2"
IMAGE = "https://img.example/p.jpg"
HEAD = (
    '<b><a href="https://news.example/a?x=1&amp;y=2">Tom &amp; Jerry &lt;3</a></b>\n'
    "Cartoons · 2 hr. ago"
)
READ_MORE = '\n<a href="https://news.example/a?x=1&amp;y=2">Read more</a>'


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def visible_units(telegram_html: str) -> int:
    """Telegram's length of a post, by the fake Bot API's rules (raises on invalid HTML)."""
    return _utf16(telegram_html_to_plain(telegram_html).strip())


def make(
    title: str = "Tom & Jerry <3",
    summary: str = "<b>Cat</b> chases <i>mouse</i>.",
    image: str | None = None,
    **kw: object,
) -> FeedItem:
    return FeedItem(
        id=str(kw.get("id", "i1")),
        title=title,
        link=kw.get("link", LINK),  # type: ignore[arg-type]
        published=NOW - timedelta(hours=2),
        source_title=str(kw.get("source", "Cartoons")),
        feed_url=URL,
        summary=summary,
        image=image,
    )


# ---------------------------------------------------------------------------- one post


def test_summary_post_is_title_source_text_and_read_more() -> None:
    post = format_post(make(), "summary", EN, now=NOW)
    assert post.text == f"{HEAD}\n\n<b>Cat</b> chases <i>mouse</i>.{READ_MORE}"
    assert (post.photo, post.preview_image) == (None, None)
    assert telegram_html_to_plain(post.text) == (
        "Tom & Jerry <3\nCartoons · 2 hr. ago\n\nCat chases mouse.\nRead more"
    )


def test_title_post_is_the_compact_block_and_ignores_text_and_image() -> None:
    post = format_post(make(image=IMAGE), "title", EN, now=NOW)
    assert post.text == HEAD
    assert (post.photo, post.preview_image) == (None, None)


def test_source_line_shows_the_custom_title_escaped() -> None:
    post = format_post(make(), "summary", EN, source="My <feed>", now=NOW)
    assert "\nMy &lt;feed&gt; · 2 hr. ago\n\n" in post.text


def test_item_without_text_or_link_is_just_its_title() -> None:
    post = format_post(make(summary="", link=None), "summary", EN, now=NOW)
    assert post.text == "<b>Tom &amp; Jerry &lt;3</b>\nCartoons · 2 hr. ago"
    assert "Read more" not in format_post(make(link=None), "summary", EN, now=NOW).text


def test_full_post_with_a_short_text_is_a_photo_with_that_caption() -> None:
    post = format_post(make(image=IMAGE), "full", EN, now=NOW)
    assert post.photo == IMAGE
    assert post.preview_image is None
    assert post.text == format_post(make(), "summary", EN, now=NOW).text
    assert visible_units(post.text) <= MAX_CAPTION_LEN


def test_full_post_too_long_for_a_caption_shows_the_image_as_a_preview() -> None:
    long_text = "word " * 300  # 1,500 units: more than a caption, less than a message
    post = format_post(make(summary=long_text.strip(), image=IMAGE), "full", EN, now=NOW)
    assert (post.photo, post.preview_image) == (None, IMAGE)
    assert MAX_CAPTION_LEN < visible_units(post.text) <= MAX_MESSAGE_LEN
    assert "…" not in post.text  # it fits a message: nothing cut


def test_caption_limit_is_counted_in_utf16_units_not_characters() -> None:
    # 1,000 characters but 2,000 units: too long for a caption.
    post = format_post(make(summary="😀" * 500, image=IMAGE), "full", EN, now=NOW)
    assert len(telegram_html_to_plain(post.text)) < MAX_CAPTION_LEN < visible_units(post.text)
    assert post.preview_image == IMAGE


def test_caption_boundary_is_exact() -> None:
    base = visible_units(format_post(make(summary="x"), "summary", EN, now=NOW).text)
    fits = "x" * (MAX_CAPTION_LEN - base + 1)
    over = fits + "x"
    assert format_post(make(summary=fits, image=IMAGE), "full", EN, now=NOW).photo == IMAGE
    at_limit = format_post(make(summary=fits, image=IMAGE), "full", EN, now=NOW).text
    assert visible_units(at_limit) == MAX_CAPTION_LEN
    post = format_post(make(summary=over, image=IMAGE), "full", EN, now=NOW)
    assert (post.photo, post.preview_image) == (None, IMAGE)


@pytest.mark.parametrize("image", ["javascript:alert(1)", "data:image/png;base64,AAAA", "/p.jpg"])
def test_an_image_that_is_not_an_http_url_is_left_out(image: str) -> None:
    post = format_post(make(image=image), "full", EN, now=NOW)
    assert (post.photo, post.preview_image) == (None, None)


def test_full_post_without_text_still_carries_its_image() -> None:
    post = format_post(make(summary="", image=IMAGE), "full", EN, now=NOW)
    assert (post.text, post.photo) == (HEAD, IMAGE)


# ---------------------------------------------------------------------------- hostile input

ASTRAL_TITLE = "𝕳𝖊𝖆𝖉𝖑𝖎𝖓𝖊 😀" * 40  # mathematical letters and emoji: 2 units each
RTL = "خبر عاجل: الحكومة تعلن — שלום עולם"


@pytest.mark.parametrize("fmt", ["summary", "full"])
def test_an_oversized_text_is_cut_at_a_word_with_an_ellipsis_and_read_more(
    fmt: PostFormat,
) -> None:
    huge = " ".join(["😀word"] * 3000)  # ~18,000 units: far beyond any post
    post = format_post(make(title=ASTRAL_TITLE, summary=huge, image=IMAGE), fmt, EN, now=NOW)
    units = visible_units(post.text)
    assert MAX_MESSAGE_LEN - 10 <= units <= MAX_MESSAGE_LEN
    plain = telegram_html_to_plain(post.text)
    assert plain.endswith("😀word…\nRead more")  # a whole word, then the ellipsis
    assert post.text.endswith(READ_MORE)
    assert post.photo is None
    assert post.preview_image == (IMAGE if fmt == "full" else None)


def test_a_10000_character_hostile_body_converted_by_richtext_fits_a_post() -> None:
    body = (
        "<script>alert(1)</script><style>p{}</style><table><tr><td>"
        + "<p>Ünïcödé & <b>bold <i>nested</b> unclosed "
        + "😀 " * 2000
        + "x" * 4000
        + "</table><a href='javascript:evil()'>bad</a>"
    )
    summary = to_telegram_html(body, LINK)
    post = format_post(make(title=ASTRAL_TITLE, summary=summary, image=IMAGE), "full", EN, now=NOW)
    assert visible_units(post.text) <= MAX_MESSAGE_LEN
    assert "javascript:" not in post.text
    assert "alert(1)" not in telegram_html_to_plain(post.text)


def test_rtl_and_emoji_text_is_kept_as_written() -> None:
    post = format_post(make(title=RTL, summary=f"<i>{RTL}</i> 🇺🇦👩‍👩‍👧"), "summary", EN, now=NOW)
    expected = f"{RTL}\nCartoons · 2 hr. ago\n\n{RTL} 🇺🇦👩‍👩‍👧"
    assert telegram_html_to_plain(post.text).startswith(expected)


@pytest.mark.parametrize("fmt", ["title", "summary", "full"])
@pytest.mark.parametrize(
    "title", [ASTRAL_TITLE * 5, "&amp;<b>" * 200, "\u202e" + RTL * 20, "", "🏳️‍🌈" * 300]
)
def test_every_post_of_a_hostile_title_is_valid_and_within_limits(
    fmt: PostFormat, title: str
) -> None:
    summary = to_telegram_html("<p>" + "ж😀 " * 2000 + "</p>", LINK)
    post = format_post(make(title=title, summary=summary, image=IMAGE), fmt, EN, now=NOW)
    units = visible_units(post.text)
    assert units <= MAX_MESSAGE_LEN
    if post.photo is not None:
        assert units <= MAX_CAPTION_LEN


def test_lists_of_astral_titles_never_pass_the_limit_in_utf16_units() -> None:
    # 300 characters per title but 600 units each: a list sized by characters would be
    # about twice Telegram's limit.
    entries = [
        LogEntry(n, make(title="😀" * 300, summary="", id=f"{URL}#{n}")) for n in range(1, 41)
    ]
    backlog = Backlog(URL, "Emoji", entries, 0, 40)
    for digest in (False, True):
        messages = format_backlogs([backlog], digest=digest, t=EN, now=NOW)
        assert len(messages) > 1
        assert all(visible_units(m.text) <= MAX_MESSAGE_LEN for m in messages)
        assert [i for m in messages for i in m.item_ids] == [e.item.id for e in entries]


# ---------------------------------------------------------------------------- many items


def backlog_of(
    url: str,
    seqs: range,
    *,
    sub: Subscription | None = None,
    skipped: int = 0,
    title: str = "Cartoons",
) -> Backlog:
    entries = [
        LogEntry(seq, make(title=f"Item {seq}", summary=f"Text {seq}", id=f"{url}#{seq}"))
        for seq in seqs
    ]
    return Backlog(url, title, entries, skipped, seqs[-1] + 2, sub)


def test_summary_sends_one_message_per_item_and_the_last_advances_to_the_head() -> None:
    messages = format_instant(
        [backlog_of(URL, range(5, 8))], chat_format="summary", previews=True, t=EN, now=NOW
    )
    assert [m.item_ids for m in messages] == [(f"{URL}#5",), (f"{URL}#6",), (f"{URL}#7",)]
    assert [m.advances for m in messages] == [{URL: 5}, {URL: 6}, {URL: 9}]
    assert [m.text for m in messages] == [
        format_post(make(title=f"Item {n}", summary=f"Text {n}"), "summary", EN, now=NOW).text
        for n in (5, 6, 7)
    ]
    assert all(m.link_preview for m in messages)


def test_title_format_keeps_sharing_a_message_and_follows_previews() -> None:
    backlogs = [backlog_of(URL, range(5, 8))]
    [message] = format_instant(backlogs, chat_format="title", previews=False, t=EN, now=NOW)
    [compact] = format_backlogs(backlogs, digest=False, t=EN, now=NOW)
    assert (message.text, message.advances) == (compact.text, compact.advances)
    assert message.link_preview is False


def test_a_subscription_format_wins_over_the_chat_and_custom_titles_show() -> None:
    own = Subscription(1, OTHER, title="Mine", format="title")
    backlogs = [
        backlog_of(URL, range(1, 3)),
        backlog_of(OTHER, range(4, 6), sub=own, title="Mine"),
        backlog_of(URL + "2", range(7, 8), sub=Subscription(1, URL + "2", format="full")),
    ]
    messages = format_instant(backlogs, chat_format="summary", previews=True, t=EN, now=NOW)
    assert [m.item_ids for m in messages] == [
        (f"{URL}#1",),
        (f"{URL}#2",),
        (f"{OTHER}#4", f"{OTHER}#5"),
        (f"{URL}2#7",),
    ]
    assert "\nMine · 2 hr. ago" in messages[2].text  # the custom title in the compact form too
    assert "\nCartoons · 2 hr. ago" in messages[0].text  # no custom title: the feed's own


def test_a_skip_note_comes_first_and_only_accounts_for_the_missed_items() -> None:
    messages = format_instant(
        [backlog_of(URL, range(5, 7), skipped=3, title="Feed")],
        chat_format="summary",
        previews=True,
        t=EN,
        now=NOW,
    )
    note = messages[0]
    assert note.text == (
        "<i>… 3 earlier items of Feed were skipped: the feed moved on before they could be "
        "sent.</i>"
    )
    assert (note.advances, note.item_ids) == ({URL: 4}, ())  # the items after it still wait
    assert [m.advances for m in messages[1:]] == [{URL: 5}, {URL: 8}]


def test_a_skip_note_alone_advances_to_the_head() -> None:
    lonely = replace(backlog_of(URL, range(5, 6), skipped=2), entries=[])
    [note] = format_instant([lonely], chat_format="full", previews=False, t=EN, now=NOW)
    assert note.advances == {URL: lonely.head}


def test_full_posts_carry_their_photo_or_preview_image() -> None:
    short = make(image=IMAGE, id="a")
    long = make(summary="word " * 300, image=IMAGE, id="b")
    entries = [LogEntry(1, short), LogEntry(2, long)]
    messages = format_instant(
        [Backlog(URL, "Cartoons", entries, 0, 2)], chat_format="full", previews=False, t=EN, now=NOW
    )
    assert [(m.photo, m.preview_image) for m in messages] == [(IMAGE, None), (None, IMAGE)]
