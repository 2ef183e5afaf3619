"""bot/services/add_report.py: the texts of /add and /import, checked as Telegram reads them."""

from __future__ import annotations

from bot.formatting import MAX_MESSAGE_LEN
from bot.handlers.common import label_line
from bot.i18n import translator
from bot.services.add_report import MAX_LISTED_FAILURES, add_reply, import_reply
from bot.services.subscriptions import AddOutcome
from bot.telegram_html import utf16_len
from tests.helpers.fake_bot_api import telegram_html_to_plain

EN = translator("en")
INSTANT = "New items will be posted here as soon as they appear."


def plain(texts: list[str]) -> list[str]:
    return [telegram_html_to_plain(t) for t in texts]


def test_one_line_per_address_with_titles_and_reasons_escaped() -> None:
    outcomes = [
        AddOutcome("https://a.example/f", "added", "https://a.example/f", "<A> & Co"),
        AddOutcome("https://b.example/", "added", "https://b.example/rss", "B"),
        AddOutcome("https://c.example/f", "resumed", "https://c.example/f", "C"),
        AddOutcome("https://d.example/f", "already", "https://d.example/f"),
        AddOutcome("https://e.example/f?a=1&b=<2>", "failed", reason="the server answered 404"),
        AddOutcome("https://f.example/f", "backoff", reason="the connection timed out"),
        AddOutcome("https://g.example/f", "full"),
    ]
    assert plain(add_reply(outcomes, EN, limit=50, digest=False)) == [
        "✅ Now following <A> & Co\n"
        "✅ Now following B (found the feed at https://b.example/rss)\n"
        "✅ Already following (resumed) C\n"
        "☑️ Already following https://d.example/f\n"
        "❌ https://e.example/f?a=1&b=<2>: the server answered 404\n"
        "❌ https://f.example/f: failed a moment ago (the connection timed out); "
        "try again in a minute\n"
        "⛔ https://g.example/f: not added, this chat already follows 50 feeds\n"
        f"{INSTANT}\n"
        "/remove a feed to make room for more."
    ]


def test_nothing_added_says_nothing_about_delivery() -> None:
    outcomes = [
        AddOutcome("https://a.example/f", "already", "https://a.example/f"),
        AddOutcome("https://b.example/f", "failed", reason="the server answered 500"),
    ]
    (text,) = plain(add_reply(outcomes, EN, limit=50, digest=True))
    assert text == (
        "☑️ Already following https://a.example/f\n❌ https://b.example/f: the server answered 500"
    )


def test_a_long_answer_is_split_between_lines_never_inside_one() -> None:
    outcomes = [
        AddOutcome(f"https://{n}.example/" + "p" * 1500, "failed", reason="the server answered 404")
        for n in range(20)
    ]
    texts = add_reply(outcomes, EN, limit=50, digest=False)
    assert len(texts) > 1
    assert all(len(t) <= MAX_MESSAGE_LEN for t in texts)
    lines = [line for text in plain(texts) for line in text.split("\n")]
    assert len(lines) == 20
    assert all(line.endswith(": the server answered 404") for line in lines)


def test_import_summary_counts_and_lists_failures_up_to_a_limit() -> None:
    failures = [
        AddOutcome(f"https://bad{n}.example/f", "failed", reason="the server answered 404")
        for n in range(MAX_LISTED_FAILURES + 3)
    ]
    outcomes = [
        AddOutcome("https://a.example/f", "added", "https://a.example/f", "A"),
        AddOutcome("https://b.example/f", "added", "https://b.example/f", "B"),
        AddOutcome("https://c.example/f", "already", "https://c.example/f"),
        AddOutcome("https://d.example/f", "resumed", "https://d.example/f", "D"),
        *failures,
        AddOutcome("https://e.example/f", "full"),
    ]
    (text,) = plain(
        import_reply(outcomes, EN, limit=50, digest=True, skipped=4, file_name="my <feeds>.opml")
    )
    listed = "\n".join(
        f"• https://bad{n}.example/f: the server answered 404" for n in range(MAX_LISTED_FAILURES)
    )
    assert text == (
        "📥 Import of my <feeds>.opml\n"
        "✅ Added 2 feeds.\n"
        "☑️ 2 already followed.\n"
        "❌ 13 failed:\n"
        f"{listed}\n"
        "… and 3 more.\n"
        "⛔ 1 not added: this chat may follow at most 50 feeds.\n"
        "⏭ 4 more in the file were not read: an import takes at most 300.\n"
        "New items will come in this chat's digest."
    )


def test_import_summary_when_nothing_was_added() -> None:
    outcomes = [AddOutcome("https://a.example/f", "already", "https://a.example/f")]
    (text,) = plain(
        import_reply(outcomes, EN, limit=50, digest=False, skipped=0, file_name="f.opml")
    )
    assert text == "📥 Import of f.opml\n✅ Added 0 feeds.\n☑️ 1 already followed."


def test_a_feed_moved_to_this_topic_says_so_instead_of_already_following() -> None:
    note = "➡️ Moved <b>A</b> to this topic from General."
    already = AddOutcome("https://a.example/f", "already", "https://a.example/f")
    resumed = AddOutcome("https://a.example/f", "resumed", "https://a.example/f", "A")
    failed = AddOutcome("https://b.example/f", "failed", reason="the server answered 404")
    moved = {"https://a.example/f": note}
    assert add_reply([already], EN, limit=50, digest=False, moved=moved) == [note]
    assert plain(add_reply([resumed], EN, limit=50, digest=False, moved=moved)) == [
        f"✅ Already following (resumed) A.\n{INSTANT}\n➡️ Moved A to this topic from General."
    ]
    assert plain(add_reply([already, failed], EN, limit=50, digest=False, moved=moved)) == [
        "➡️ Moved A to this topic from General.\n❌ https://b.example/f: the server answered 404"
    ]


def test_an_import_summary_about_another_chat_fits_with_the_chats_name() -> None:
    header = label_line("📣 Новости 📣")  # the name of the chat imported into, astral emoji

    def summary(url_len: int, header: str = "") -> list[str]:
        failures = [
            AddOutcome(f"https://x.example/{'a' * url_len}{n}", "failed", reason="gone 😞")
            for n in range(MAX_LISTED_FAILURES)
        ]
        return import_reply(
            failures, EN, limit=50, digest=False, skipped=0, file_name="😀.opml", header=header
        )

    # Summaries whose first message, packed alone, leaves no room for the chat's name: the
    # name added after packing would have pushed it past Telegram's limit.
    tight = [
        n
        for n in range(300, 460)
        if utf16_len(summary(n)[0]) > MAX_MESSAGE_LEN - utf16_len(header) - 1
    ]
    assert tight
    for n in tight:
        texts = summary(n, header)
        assert len(texts) > 1
        assert all(utf16_len(text) <= MAX_MESSAGE_LEN for text in texts)
        assert texts[0].startswith(f"{header}\n📥")  # the name heads the first message only
        assert not any(text.startswith(header) for text in texts[1:])
        # Nothing lost: the messages are the summary's lines, split between lines.
        assert "\n".join(texts) == "\n".join([header, *summary(n)])
