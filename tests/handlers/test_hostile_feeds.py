"""Hostile and odd feeds, end to end: what does the user who sent ``/add`` actually read?

Each case goes through the real Application, the real fetcher and parser, and a local server.
The fetcher and parser have their own finer-grained tests in tests/services/.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.config import Settings
from bot.services import feed_parser
from bot.services import fetcher as fetcher_module
from bot.storage import get_storage_service
from tests.helpers.bot_runner import running_bot
from tests.helpers.conversation import poll_now, say
from tests.helpers.fake_bot_api import FakeBotAPI
from tests.helpers.feed_server import FeedServer
from tests.helpers.feeds import big_feed, billion_laughs, external_entity, gzip_bomb, rss

SettingsFactory = Callable[..., Settings]
CHAT = 4242


INSTANT = "New items will be posted here as soon as they appear."
OOPS = "Something went wrong"


async def ask(fake: FakeBotAPI, text: str) -> str:
    """Send a command in the test chat and return the text of its (first) reply."""
    return await say(fake, text, CHAT)


async def add(fake: FakeBotAPI, url: str) -> str:
    return await ask(fake, f"/add {url}")


async def news(fake: FakeBotAPI, n: int = 20) -> str:
    return await ask(fake, f"/news {n}")


SSRF_URLS = [
    "http://2130706433/feed",
    "http://0x7f000001/feed",
    "http://0177.0.0.1/feed",
    "http://127.1/feed",
    "http://[::1]/feed",
    "http://[::ffff:127.0.0.1]/feed",
    "http://[::ffff:7f00:1]/feed",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/feed",
    "http://172.16.5.4/feed",
    "http://192.168.1.1/feed",
    "http://100.64.0.1/feed",
    "http://0.0.0.0/feed",
    "http://224.0.0.1/feed",
    "http://localhost/feed",
]


async def test_ssrf_spellings_are_refused(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/real.xml", rss([{"title": "x", "guid": "x"}]))
    async with running_bot(bot_settings(allow_private_feeds=False)):
        # One chat per URL: Telegram (and the bot's pacing) allow about 1 message/s per chat.
        urls = [*SSRF_URLS, feed_server.url("/real.xml")]
        answers = {url: await say(fake_api, f"/add {url}", CHAT + n) for n, url in enumerate(urls)}
        storage = get_storage_service()
        followed = [u for n in range(len(urls)) for u in storage.feed_urls(CHAT + n)]
    for url, answer in answers.items():
        assert "Couldn't add that feed: that address is not allowed" in answer, url
    assert feed_server.request_count("/real.xml") == 0
    assert followed == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "only http:// and https:// addresses are allowed"),
        ("ftp://example.com/feed", "only http:// and https:// addresses are allowed"),
        ("gopher://example.com/", "only http:// and https:// addresses are allowed"),
        ("http://user:pw@example.com/feed", "addresses with a user name or password"),
        # (A space now separates two addresses: see the several-URL /add tests.)
        ("http://" + "a" * 2100 + ".example/feed", "Usage: /add"),
    ],
)
async def test_bad_urls_get_a_reason(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, url: str, reason: str
) -> None:
    async with running_bot(bot_settings(allow_private_feeds=False)):
        assert reason in await add(fake_api, url)


async def test_redirect_to_a_private_address_is_refused(
    fake_api: FakeBotAPI,
    bot_settings: SettingsFactory,
    feed_server: FeedServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Pretend the loopback test server is a public host, so only the redirect target is private.
    real = fetcher_module.is_public_address
    monkeypatch.setattr(
        fetcher_module, "is_public_address", lambda ip: ip == "127.0.0.1" or real(ip)
    )
    feed_server.redirect("/go", "http://10.0.0.1/internal.xml")
    feed_server.redirect("/meta", "http://169.254.169.254/latest/meta-data/")
    async with running_bot(bot_settings(allow_private_feeds=False)):
        first = await add(fake_api, feed_server.url("/go"))
        second = await add(fake_api, feed_server.url("/meta"))
    assert "that address is not allowed" in first
    assert "that address is not allowed" in second


async def test_redirect_loop_and_too_many_redirects(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.redirect("/a", feed_server.url("/b"))
    feed_server.redirect("/b", feed_server.url("/a"))
    for n in range(7):
        feed_server.redirect(f"/hop{n}", feed_server.url(f"/hop{n + 1}"))
    feed_server.serve("/hop7", rss([{"title": "far", "guid": "far"}]))
    async with running_bot(bot_settings()):
        loop = await add(fake_api, feed_server.url("/a"))
        chain = await add(fake_api, feed_server.url("/hop0"))
    assert "too many redirects" in loop
    assert "too many redirects" in chain


async def test_oversized_body_and_gzip_bomb_are_cut(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.sized("/big", 2 * 1024 * 1024, declare_length=False)
    feed_server.sized("/declared", 2 * 1024 * 1024)
    feed_server.serve("/bomb", b"", raw_gzip=gzip_bomb(512 * 1024 * 1024))
    async with running_bot(bot_settings(feed_max_bytes=256 * 1024)):
        answers = [await add(fake_api, feed_server.url(p)) for p in ("/big", "/declared", "/bomb")]
    for answer in answers:
        assert "the feed is larger than 256 KiB" in answer


async def test_slow_drip_times_out(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.slow_drip("/drip", interval=0.2)
    async with running_bot(bot_settings(feed_timeout_s=1)):
        assert "the server did not answer in time" in await add(fake_api, feed_server.url("/drip"))


async def test_xml_bombs_and_external_entities_do_nothing(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    feed_server.serve("/laughs.xml", billion_laughs())
    feed_server.serve("/xxe.xml", external_entity(str(secret)))
    async with running_bot(bot_settings()):
        laughs = await add(fake_api, feed_server.url("/laughs.xml"))
        xxe = await add(fake_api, feed_server.url("/xxe.xml"))
    assert "entity declarations, which are not allowed" in laughs
    assert "entity declarations, which are not allowed" in xxe
    assert all("TOP-SECRET" not in m["plain"] for m in fake_api.sent_messages())


async def test_html_that_is_not_a_feed(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve(
        "/page",
        "<html><head><title>Hi</title></head><body>no feed</body></html>",
        content_type="text/html; charset=utf-8",
    )
    feed_server.serve(
        "/xmlish", b"<?xml version='1.0'?><notafeed><x/></notafeed>", content_type="application/xml"
    )
    async with running_bot(bot_settings()):
        page = await add(fake_api, feed_server.url("/page"))
        xmlish = await add(fake_api, feed_server.url("/xmlish"))
    assert "that page links to no RSS or Atom feed" in page
    assert "this does not look like an RSS or Atom feed" in xmlish


async def test_non_utf8_feed_is_decoded(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    doc = (
        '<?xml version="1.0" encoding="windows-1251"?><rss version="2.0"><channel>'
        "<title>Новости дня</title><item><title>Привет, мир</title><guid>r1</guid></item>"
        "</channel></rss>"
    ).encode("windows-1251")
    feed_server.serve("/cp1251.xml", doc, content_type="application/rss+xml")
    async with running_bot(bot_settings()):
        added = await add(fake_api, feed_server.url("/cp1251.xml"))
        shown = await news(fake_api)
    assert added == f"✅ Now following Новости дня.\n{INSTANT}"
    assert "Привет, мир" in shown


async def test_huge_feed_duplicates_and_missing_fields(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/5000.xml", big_feed(5000))
    feed_server.serve(
        "/odd.xml",
        rss(
            [
                {"title": "Twice & <once>", "guid": "dup", "link": "https://o.example/1"},
                {"title": "Twice again", "guid": "dup", "link": "https://o.example/2"},
                {"title": "No link, no date", "guid": "bare"},
                {"title": "", "guid": "untitled"},
            ],
            title="Odd feed",
        ),
    )
    async with running_bot(bot_settings()):
        big = await add(fake_api, feed_server.url("/5000.xml"))
        newest = await news(fake_api, 3)
        odd = await add(fake_api, feed_server.url("/odd.xml"))
        assert "Removed" in await ask(fake_api, "/remove 1")  # dated items would come first
        shown = await news(fake_api, 20)
    assert "Now following Big feed" in big
    assert "Item 0" in newest
    assert "Item 3" not in newest
    assert "Now following Odd feed" in odd
    assert shown.count("Twice & <once>") == 1
    assert "Twice again" not in shown
    assert "No link, no date" in shown
    assert "(untitled)" in shown


# --------------------------------------------------------------------------- issue 8 feed bugs
# Before: multi-byte encodings made /add (and /news of every chat using such a default feed)
# answer "😵 Something went wrong"; the HTTP charset was ignored; an empty feed was refused.

CJK = [
    ("big5", "台灣新聞", "颱風今晚登陸"),
    ("euc-kr", "한국 뉴스", "서울에 첫눈"),
    ("gb2312", "中国新闻", "北京今天下雪"),
    ("shift_jis", "日本のニュース", "東京で初雪"),
]


def encoded_rss(encoding: str | None, title: str, item_title: str, guid: str) -> bytes:
    """A small RSS document in ``encoding``, declaring it in the XML declaration if given."""
    declaration = f'<?xml version="1.0" encoding="{encoding}"?>' if encoding else ""
    text = (
        f'{declaration}<rss version="2.0"><channel><title>{title}</title>'
        "<link>https://example.com/</link><description>d</description>"
        f"<item><title>{item_title}</title><guid>{guid}</guid></item></channel></rss>"
    )
    return text.encode(encoding or "utf-8")


@pytest.mark.parametrize(("encoding", "title", "item_title"), CJK)
async def test_cjk_feeds_are_added_and_read(
    fake_api: FakeBotAPI,
    bot_settings: SettingsFactory,
    feed_server: FeedServer,
    encoding: str,
    title: str,
    item_title: str,
) -> None:
    body = encoded_rss(encoding, title, item_title, encoding)
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")  # really multi-byte non-UTF-8 bytes on the wire
    feed_server.serve("/cjk.xml", body, content_type="application/rss+xml")
    async with running_bot(bot_settings()):
        added = await add(fake_api, feed_server.url("/cjk.xml"))
        shown = await news(fake_api)
    assert added == f"✅ Now following {title}.\n{INSTANT}"
    assert shown.startswith(f"📰 Latest 1\n\n{item_title}\n{title}")


async def test_cjk_default_feeds_serve_news_for_everyone(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    for encoding, title, item_title in CJK:
        feed_server.serve(
            f"/{encoding}.xml",
            encoded_rss(encoding, title, item_title, encoding),
            content_type="text/xml",
        )
    defaults = tuple(feed_server.url(f"/{encoding}.xml") for encoding, _, _ in CJK)
    async with running_bot(bot_settings(default_feeds=defaults)):
        shown = [await say(fake_api, "/news 10", chat_id) for chat_id in (51, 52)]
    for answer in shown:
        assert answer.startswith("📰 Latest 4\n\n")  # no ⚠️ note: every feed was read
        for _, title, item_title in CJK:
            assert f"{item_title}\n{title}" in answer


async def test_koi8r_declared_only_in_the_http_header(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    body = encoded_rss(None, "Новости", "Привет, мир", "k1").decode().encode("koi8-r")
    feed_server.serve("/koi8.xml", body, content_type="application/rss+xml; charset=KOI8-R")
    async with running_bot(bot_settings()):
        added = await add(fake_api, feed_server.url("/koi8.xml"))
        shown = await news(fake_api)
    assert added == f"✅ Now following Новости.\n{INSTANT}"
    assert shown.startswith("📰 Latest 1\n\nПривет, мир\nНовости")


async def test_unknown_declared_encoding_is_read_when_the_bytes_allow_it(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    body = encoded_rss(None, "Странная кодировка", "всё читается ✓", "u1")
    body = b'<?xml version="1.0" encoding="x-no-such-codec"?>' + body
    feed_server.serve("/weird.xml", body, content_type="application/rss+xml")
    async with running_bot(bot_settings()):
        added = await add(fake_api, feed_server.url("/weird.xml"))
        shown = await news(fake_api)
    assert added == f"✅ Now following Странная кодировка.\n{INSTANT}"
    assert shown.startswith("📰 Latest 1\n\nвсё читается ✓\nСтранная кодировка")


async def test_undecodable_feed_is_a_clear_per_feed_error(
    fake_api: FakeBotAPI,
    bot_settings: SettingsFactory,
    feed_server: FeedServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # feedparser's last fallback decodes any byte, so make it give up on the marked feed
    # only (tests parse in threads, so the patch reaches the parser).
    real = feed_parser.feedparser.encodings.convert_to_utf8

    def give_up_on_marked(headers: dict[str, str], data: bytes, result: dict[str, str]) -> bytes:
        if b"x-undecodable" in data:
            result["encoding"] = ""
            return data
        return bytes(real(headers, data, result))

    monkeypatch.setattr(feed_parser.feedparser.encodings, "convert_to_utf8", give_up_on_marked)
    bad = b'<?xml version="1.0" encoding="x-undecodable"?>' + encoded_rss(None, "B", "b", "b1")
    feed_server.serve("/bad.xml", bad)
    feed_server.serve("/good.xml", rss([{"title": "good item", "guid": "g"}], title="Good"))
    defaults = (feed_server.url("/bad.xml"), feed_server.url("/good.xml"))
    async with running_bot(bot_settings(default_feeds=defaults)):
        shown = await news(fake_api)
        added = await add(fake_api, feed_server.url("/bad.xml"))
    assert shown.startswith(
        "📰 Latest 1\n⚠️ 127.0.0.1: the feed's text encoding could not be read\n\ngood item\nGood"
    )
    # The /news above put the feed in backoff: /add says so, with the same reason.
    assert added == (
        "❌ That feed failed a moment ago (the feed's text encoding could not be read). "
        "Try again in a minute."
    )
    assert all(OOPS not in m["plain"] for m in fake_api.sent_messages())


async def test_undecodable_feed_refused_by_add_with_its_reason(
    fake_api: FakeBotAPI,
    bot_settings: SettingsFactory,
    feed_server: FeedServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def give_up(headers: dict[str, str], data: bytes, result: dict[str, str]) -> bytes:
        result["encoding"] = ""
        return data

    monkeypatch.setattr(feed_parser.feedparser.encodings, "convert_to_utf8", give_up)
    feed_server.serve("/bad.xml", encoded_rss("big5", "台灣", "新聞", "x"))
    async with running_bot(bot_settings()):
        added = await add(fake_api, feed_server.url("/bad.xml"))
        followed = get_storage_service().feed_urls(CHAT)
    assert added == "❌ Couldn't add that feed: the feed's text encoding could not be read."
    assert followed == []


async def test_a_parser_crash_is_a_per_feed_error_not_something_went_wrong(
    fake_api: FakeBotAPI,
    bot_settings: SettingsFactory,
    feed_server: FeedServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = feed_parser.feedparser.parse
    real_fast = feed_parser.fast_feed.extract

    def explode_on_marked(source: io.BytesIO, **kwargs: object) -> object:
        if b"EXPLODE" in source.getvalue():
            raise LookupError("unknown encoding: x-whatever")
        return real(source, **kwargs)

    def fast_explode_on_marked(utf8: bytes) -> object:
        if b"EXPLODE" in utf8:
            raise LookupError("unknown encoding: x-whatever")
        return real_fast(utf8)

    # Both readers: plain RSS goes to the fast one first, anything else to feedparser.
    monkeypatch.setattr(feed_parser.feedparser, "parse", explode_on_marked)
    monkeypatch.setattr(feed_parser.fast_feed, "extract", fast_explode_on_marked)
    feed_server.serve("/boom.xml", rss([{"title": "EXPLODE", "guid": "e"}], title="Boom"))
    feed_server.serve("/fine.xml", rss([{"title": "fine item", "guid": "f"}], title="Fine"))
    defaults = (feed_server.url("/boom.xml"), feed_server.url("/fine.xml"))
    async with running_bot(bot_settings(default_feeds=defaults)):
        shown = await news(fake_api)
    assert shown.startswith(
        "📰 Latest 1\n⚠️ 127.0.0.1: the feed could not be read\n\nfine item\nFine"
    )


async def test_empty_feed_is_accepted_and_its_first_item_is_pushed(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/empty.xml", rss([], title="Brand new blog"))
    url = feed_server.url("/empty.xml")
    async with running_bot(bot_settings()) as app:
        added = await add(fake_api, url)
        shown = await news(fake_api)
        feed_server.serve(
            "/empty.xml", rss([{"title": "Hello world", "guid": "p1"}], title="Brand new blog")
        )
        await poll_now(app, url)
        pushed = fake_api.sent_messages(CHAT)[2:]
    assert added == f"✅ Now following Brand new blog.\n{INSTANT}"
    assert shown == "No news right now."
    assert [m["plain"] for m in pushed] == ["Hello world\nBrand new blog"]
