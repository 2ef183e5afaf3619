"""Keyword filters: parsing what users type, Unicode-aware matching, screening backlogs."""

from __future__ import annotations

import html
import unicodedata
from datetime import UTC, datetime

import pytest

from bot.i18n import translator
from bot.models import NO_FILTERS, Backlog, FeedItem, Filters, LogEntry, Subscription
from bot.richtext import convert
from bot.services.filters import (
    _MARK_BLOCKS,
    MAX_TERM_CHARS,
    MAX_TERMS,
    NoTerms,
    TermTooLong,
    TextCache,
    TooManyTerms,
    compile_filters,
    item_text,
    parse_terms,
    passes,
    screen,
    tokens,
)
from tests.helpers.fake_bot_api import telegram_html_to_plain

EN = translator("en")


def only(*words: str) -> Filters:
    return Filters(include=words)


def never(*words: str) -> Filters:
    return Filters(exclude=words)


def ok(title: str, f: Filters, summary: str = "") -> bool:
    return passes(item_text(title, summary), f)


# --------------------------------------------------------------------------- parse_terms


def test_terms_split_on_commas_and_lines_and_lose_quotes() -> None:
    raw = 'python, "machine learning" ,\n  Rust  lang ;«ИИ»'
    assert parse_terms(raw) == ("python", "machine learning", "Rust lang", "ИИ")


def test_repeated_terms_are_kept_once_by_their_normal_form() -> None:
    assert parse_terms("Python, PYTHON, ｐｙｔｈｏｎ, rust") == ("Python", "rust")


@pytest.mark.parametrize("raw", ["", " , ,\n", '""', "\u200b"])
def test_an_empty_list_is_refused(raw: str) -> None:
    with pytest.raises(NoTerms) as caught:
        parse_terms(raw)
    assert caught.value.explain(EN) == (
        "Give at least one word or phrase, e.g. /filter include python, rust"
    )


def test_too_many_terms_are_refused_with_the_limit() -> None:
    parse_terms(", ".join(f"w{n}" for n in range(MAX_TERMS)))  # the limit itself is fine
    with pytest.raises(TooManyTerms) as caught:
        parse_terms(", ".join(f"w{n}" for n in range(MAX_TERMS + 3)))
    assert caught.value.explain(EN) == (
        f"Too many words: at most {MAX_TERMS} per list (you gave {MAX_TERMS + 3})."
    )


def test_a_too_long_term_is_refused_and_quoted_safely() -> None:
    parse_terms("x" * MAX_TERM_CHARS)
    with pytest.raises(TermTooLong) as caught:
        parse_terms("<b>" + "y" * MAX_TERM_CHARS)
    assert caught.value.explain(EN) == (
        f"“&lt;b&gt;yyyyyyyyyyyyyyyyy…” is too long: at most {MAX_TERM_CHARS} characters per "
        "word or phrase."
    )


# --------------------------------------------------------------------------- matching


def test_words_match_whole_words_in_any_case() -> None:
    f = only("Python")
    assert ok("Why PYTHON is slow", f)
    assert ok("python!", f)
    assert not ok("Pythonic code", f)
    assert not ok("CPython internals", f)


def test_phrases_match_words_in_a_row() -> None:
    f = only("machine learning")
    assert ok("New Machine  Learning paper", f)
    assert ok("machine-learning", only("machine - learning"))
    assert not ok("learning machine", f)
    assert not ok("machine learnings", f)


def test_symbols_in_terms_are_matched_as_written() -> None:
    assert ok("C++ 26 is out", only("c++"))
    assert not ok("C 26 is out", only("c++"))
    assert ok("What's new in .NET", only(".net"))


def test_cyrillic_greek_and_case_folding() -> None:
    assert ok("Новости: ЁЛКА в центре", only("ёлка"))
    assert not ok("Ёлочные игрушки", only("ёлка"))
    assert ok("ΣΟΦΙΑ και φίλοι", only("σοφια"))  # final sigma folds like σ
    assert ok("Die STRASSE ist gesperrt", only("straße"))


def test_compatibility_forms_fold() -> None:
    assert ok("ｐｙｔｈｏｎ 3.13", only("python"))  # full-width letters
    assert ok("ﬁle formats", only("file"))  # ligature


def test_cjk_and_thai_match_anywhere() -> None:
    assert ok("東京大学の研究チーム", only("大学"))
    assert ok("新型スマートフォン発表", only("スマート"))
    assert ok("서울에서 열린 회의", only("서울"))
    assert ok("ข่าวเศรษฐกิจวันนี้", only("เศรษฐกิจ"))
    assert not ok("北京の研究チーム", only("大学"))


def test_combining_marks_stay_inside_words() -> None:
    assert ok("आज की हिन्दी ख़बरें", only("हिन्दी"))
    assert not ok("आज की हिन्दीभाषी ख़बरें", only("हिन्दी"))


def test_the_mark_blocks_hold_every_combining_mark_of_the_bmp() -> None:
    marks = [
        c for c in range(0x10000)  # the BMP (see _MARK_BLOCKS for why)
        if unicodedata.category(chr(c))[0] == "M" and not chr(c).isalnum()
    ]  # fmt: skip
    assert len(marks) > 1300  # Unicode 14: 1,336
    outside = [hex(c) for c in marks if not any(lo <= c <= hi for lo, hi in _MARK_BLOCKS)]
    assert outside == []
    assert tokens("\u0915\u093f\u0924\u093e\u092c\u0964") == ["किताब", "।"]  # danda apart


def test_emoji_match_as_symbols_with_or_without_variation_selector() -> None:
    assert ok("Launch day 🚀🚀", only("🚀"))
    assert ok("We ❤️ Python", only("❤"))
    assert ok("We ❤ Python", only("❤️"))
    assert not ok("Launch day", only("🚀"))


def test_summary_html_is_searched_as_text() -> None:
    summary = 'A <b>new</b> <a href="https://x.example/rust">release</a> of Py<i>thon</i> &amp; co'
    assert ok("Weekly news", only("python"), summary)
    assert ok("Weekly news", only("new release"), summary)
    assert not ok("Weekly news", only("rust"), summary)  # attribute values are not text
    assert ok("Weekly news", only("&"), summary)


@pytest.mark.parametrize(
    "feed_html",
    [
        '<p>Tom &amp; Jerry: 1 &lt; 2 &gt; 0, "quoted" — <b>bold <i>both</i></b></p>',
        "<a href=\"https://x.example/?q=<b>&amp;x='>'\">link &gt; text</a> after",
        "<table><tr><td>cell</td><td>más</td></tr></table><script>x = '<b>'</script>😀 end",
        "<ul><li>one</li><li>two <code>a<b</code></li></ul><pre>  x\n  y</pre>",
    ],
)
def test_summary_tags_are_stripped_exactly_as_telegram_reads_the_summary(feed_html: str) -> None:
    # The summary is the bot's own Telegram HTML: the cheap tag strip must find the words a
    # Telegram-HTML parser (the fake Bot API's, an independent oracle) finds in it.
    summary = convert(feed_html, "https://x.example/").html
    read = telegram_html_to_plain(summary)
    assert item_text("", summary) == item_text("", html.escape(read, quote=False))


def test_a_phrase_never_spans_title_and_summary() -> None:
    assert not ok("Big data", only("data science"), "science news")
    assert ok("Big data", only("data"), "science news")


def test_include_and_exclude_together() -> None:
    f = Filters(include=("python", "rust"), exclude=("sponsored", "job offer"))
    assert ok("Rust 2.0 released", f)
    assert not ok("Rust 2.0 released (sponsored)", f)
    assert not ok("Python job offer in Berlin", f)
    assert ok("Python jobs are rare", f)
    assert not ok("Go 2.0 released", f)


def test_exclude_only_lets_everything_else_through() -> None:
    assert ok("Anything", never("ads"))
    assert not ok("Ads everywhere", never("ads"))


def test_chat_and_subscription_filters_both_apply() -> None:
    chat, sub = only("python"), never("beginner")
    text = item_text("Python for beginner programmers", "")
    assert compile_filters(chat).passes(text)
    assert not passes(text, chat, sub)
    assert passes(item_text("Python internals", ""), chat, sub)
    assert not passes(item_text("Rust internals", ""), chat, sub)
    assert passes(item_text("Anything", ""), NO_FILTERS, NO_FILTERS)


def test_each_distinct_filter_is_compiled_once() -> None:
    first = compile_filters(Filters(include=("alpha", "beta gamma")))
    again = compile_filters(Filters(include=("alpha", "beta gamma")))
    assert first is again
    assert compile_filters(Filters(include=("alpha",))) is not first


def test_regex_syntax_is_literal_text() -> None:
    f = only("(a+)+$")
    assert not ok("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!", f)
    assert ok("match (a+)+$ literally", f)


# --------------------------------------------------------------------------- screening


def entry(seq: int, title: str, summary: str = "") -> LogEntry:
    published = datetime(2026, 1, 1, tzinfo=UTC)
    item = FeedItem(f"id{seq}", title, f"https://e.example/{seq}", published, "Src",
                    "https://e.example/feed", summary)  # fmt: skip
    return LogEntry(seq, item)


def backlog(url: str, entries: list[LogEntry], sub: Subscription, skipped: int = 0) -> Backlog:
    head = entries[-1].seq if entries else 10
    return Backlog(url, "Feed", entries, skipped, head, sub)


def test_screen_drops_muted_feeds_and_advances_them_to_their_head() -> None:
    url = "https://e.example/feed"
    sub = Subscription(1, url, muted=True)
    out = screen([backlog(url, [entry(1, "a"), entry(2, "b")], sub, skipped=3)], NO_FILTERS,
                 TextCache())  # fmt: skip
    assert out.backlogs == []
    assert out.advances == {url: 2}
    assert out.dropped == 2


def test_screen_keeps_matching_items_and_the_head() -> None:
    url = "https://e.example/feed"
    sub = Subscription(1, url, filters=only("python"))
    entries = [entry(1, "Python 1"), entry(2, "Go"), entry(3, "More python"), entry(4, "Java")]
    out = screen([backlog(url, entries, sub)], NO_FILTERS, TextCache())
    [kept] = out.backlogs
    assert [e.seq for e in kept.entries] == [1, 3]
    assert kept.head == 4  # the message carrying item 3 moves the cursor past item 4
    assert out.advances == {}
    assert out.dropped == 2


def test_screen_advances_a_wholly_filtered_feed_but_keeps_a_skip_note() -> None:
    url, other = "https://e.example/feed", "https://o.example/feed"
    filtered = backlog(url, [entry(5, "Go"), entry(6, "Java")], Subscription(1, url))
    noted = backlog(other, [entry(7, "Go")], Subscription(1, other), skipped=4)
    out = screen([filtered, noted], only("python"), TextCache())
    assert out.advances == {url: 6}
    [kept] = out.backlogs
    assert (kept.url, kept.entries, kept.skipped) == (other, [], 4)


def test_unfiltered_backlogs_pass_untouched_without_normalising() -> None:
    url = "https://e.example/feed"
    cache = TextCache()
    original = backlog(url, [entry(1, "x")], Subscription(1, url))
    out = screen([original], NO_FILTERS, cache)
    assert out.backlogs == [original]
    assert out.backlogs[0] is original
    assert cache.computed == 0


def test_texts_are_normalised_once_per_item_for_many_chats() -> None:
    url = "https://e.example/feed"
    cache = TextCache()
    entries = [entry(1, "Python news"), entry(2, "Other")]
    for chat_id in range(1, 200):
        sub = Subscription(chat_id, url, filters=only("python") if chat_id % 2 else never("x"))
        screen([backlog(url, entries, sub)], only("news") if chat_id % 3 else NO_FILTERS, cache)
    assert cache.computed == 2


def test_the_text_cache_recomputes_for_a_different_item_under_the_same_number() -> None:
    cache = TextCache(size=2)
    url = "https://e.example/feed"
    first = cache.get(url, entry(1, "Python"))
    assert "python" in first.words
    assert "rust" in cache.get(url, entry(1, "Rust")).words  # a new object: recomputed
    cache.get(url, entry(2, "b"))
    cache.get(url, entry(3, "c"))  # over the bound: the oldest went
    assert cache.computed == 4
