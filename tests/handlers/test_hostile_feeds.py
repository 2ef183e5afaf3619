"""Hostile and odd feeds, end to end: what does the user who sent ``/add`` actually read?

Each case goes through the real Application, the real fetcher and parser, and a local server.
The fetcher and parser have their own finer-grained tests in tests/services/.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.config import Settings
from bot.services import fetcher as fetcher_module
from bot.services.storage import get_storage_service
from tests.helpers.bot_runner import running_bot
from tests.helpers.fake_bot_api import FakeBotAPI
from tests.helpers.feed_server import FeedServer
from tests.helpers.feeds import big_feed, billion_laughs, external_entity, gzip_bomb, rss

SettingsFactory = Callable[..., Settings]
CHAT = 4242


async def ask(fake: FakeBotAPI, text: str) -> str:
    """Send a command and return the text of its (first) reply."""
    before = len(fake.sent_messages(CHAT))
    fake.send_command(text, chat_id=CHAT, user_id=CHAT)
    messages = await fake.wait_for_messages(before + 1, chat_id=CHAT, timeout=20)
    return str(messages[before]["plain"])


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
        answers = {url: await add(fake_api, url) for url in SSRF_URLS}
        answers["loopback server"] = await add(fake_api, feed_server.url("/real.xml"))
        channel = await get_storage_service().get_channel(CHAT)
    for url, answer in answers.items():
        assert "Couldn't add that feed: that address is not allowed" in answer, url
    assert feed_server.request_count("/real.xml") == 0
    assert channel is not None
    assert channel.feeds == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "only http:// and https:// addresses are allowed"),
        ("ftp://example.com/feed", "only http:// and https:// addresses are allowed"),
        ("gopher://example.com/", "only http:// and https:// addresses are allowed"),
        ("http://user:pw@example.com/feed", "addresses with a user name or password"),
        ("http://exa mple.com", "Usage: /add"),
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
    assert "Now following Новости дня" in added
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
