"""Instant posts in each format, end to end: real Application, fake Bot API over HTTP.

Chats follow a feed with ``/add`` (the feed server serves it, the bot baselines it); new
items with a text and an image are then logged straight through storage — as the parser
would store them — and the dispatcher is told, as a poll would tell it. What each chat reads
is asserted exactly, and the fake Bot API refuses whatever Telegram would refuse (captions
over 1,024 UTF-16 units, bad HTML, malformed link preview options), so an accepted post is
one Telegram would accept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot.config import Settings
from bot.context import services_of
from bot.models import FeedItem
from bot.storage import get_storage_service
from tests.helpers.bot_runner import AnyApp, running_bot
from tests.helpers.delivery_e2e import say, serve_feed, settle, story
from tests.helpers.fake_bot_api import (
    PHOTO_BAD_URL,
    PHOTO_NOT_IMAGE,
    PHOTO_UNREACHABLE,
    FakeBotAPI,
)
from tests.helpers.feed_server import FeedServer

SettingsFactory = Callable[..., Settings]
PATH = "/cartoons.xml"
QUIET = {"feed_poll_interval_s": 3600}  # the poll job never finds the feed due by itself
CHAT = 301
IMAGE = "https://img.example/cat.jpg"
LARGE_ABOVE = {"url": IMAGE, "prefer_large_media": True, "show_above_text": True}


def item(n: int, *, summary: str = "", image: str | None = None, title: str = "") -> FeedItem:
    return FeedItem(
        id=f"cartoon-{n}",
        title=title or f"Episode {n} & more",
        link=f"https://cartoons.example/{n}",
        published=None,  # no age: the texts below are exact
        source_title="Cartoons",
        feed_url="",
        summary=summary,
        image=image,
    )


async def follow(fake: FakeBotAPI, server: FeedServer, chat_id: int = CHAT) -> str:
    url = serve_feed(server, PATH, [story(0)], "Cartoons")
    answer = await say(fake, f"/add {url}", chat_id)
    assert "Now following" in answer, answer
    return url


async def publish(app: AnyApp, url: str, *items: FeedItem) -> None:
    """Log ``items`` (oldest first) as a poll would, tell the dispatcher, wait for the sends."""
    storage = get_storage_service()
    state = storage.feed_state(url)
    assert state is not None
    newest_first = [FeedItem(**{**_fields(i), "feed_url": url}) for i in reversed(items)]
    entries = await storage.record_fetch(url, newest_first, state)
    assert len(entries) == len(items)
    services_of(app).dispatcher.feed_updated(url, entries)
    await settle(app)


def _fields(i: FeedItem) -> dict[str, Any]:
    return {name: getattr(i, name) for name in FeedItem.__dataclass_fields__}


def posts(fake: FakeBotAPI, after: int, chat_id: int = CHAT) -> list[dict[str, Any]]:
    return fake.sent_messages(chat_id)[after:]


def settled_cursor(url: str, chat_id: int = CHAT) -> bool:
    storage = get_storage_service()
    return storage.pending(chat_id) == [] and storage.feed_head(url) > 0


async def test_summary_is_the_default_one_message_per_item_with_previews(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    async with running_bot(bot_settings(**QUIET)) as app:
        url = await follow(fake_api, feed_server)
        before = len(fake_api.sent_messages(CHAT))
        await publish(
            app, url, item(1, summary="<b>Cat</b> chases <i>mouse</i>."), item(2, image=IMAGE)
        )
        sent = posts(fake_api, before)
        assert settled_cursor(url)
    assert [m["plain"] for m in sent] == [
        "Episode 1 & more\nCartoons\n\nCat chases mouse.\nRead more",
        "Episode 2 & more\nCartoons",
    ]
    assert sent[0]["text"] == (
        '<b><a href="https://cartoons.example/1">Episode 1 &amp; more</a></b>\nCartoons\n\n'
        '<b>Cat</b> chases <i>mouse</i>.\n<a href="https://cartoons.example/1">Read more</a>'
    )
    # Previews are on by default: Telegram previews the first link (the article).
    assert [m["method"] for m in sent] == ["sendMessage", "sendMessage"]
    assert [m["link_preview_options"] for m in sent] == [None, None]


async def test_title_format_shares_one_message_and_previews_off_disables_them(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    async with running_bot(bot_settings(**QUIET)) as app:
        url = await follow(fake_api, feed_server)
        assert (await say(fake_api, "/format title", CHAT)).startswith("✅ Post format: title")
        assert (await say(fake_api, "/previews off", CHAT)).startswith("✅ Link previews: off")
        before = len(fake_api.sent_messages(CHAT))
        await publish(app, url, item(1, summary="Not shown."), item(2, image=IMAGE))
        sent = posts(fake_api, before)
    assert [m["plain"] for m in sent] == [
        "Episode 1 & more\nCartoons\n\nEpisode 2 & more\nCartoons"
    ]
    assert sent[0]["link_preview_options"] == {"is_disabled": True}


async def test_full_sends_a_photo_when_the_caption_fits_else_a_large_preview_above_the_text(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    long_text = " ".join(f"word{n}" for n in range(250))  # ~1,700 units: no caption
    async with running_bot(bot_settings(**QUIET)) as app:
        url = await follow(fake_api, feed_server)
        await say(fake_api, "/format full", CHAT)
        before = len(fake_api.sent_messages(CHAT))
        await publish(
            app,
            url,
            item(1, summary="Short.", image=IMAGE),
            item(2, summary=long_text, image=IMAGE),
            item(3, summary="No picture."),
        )
        sent = posts(fake_api, before)
        assert settled_cursor(url)
    assert [(m["method"], m["photo"]) for m in sent] == [
        ("sendPhoto", IMAGE),
        ("sendMessage", None),
        ("sendMessage", None),
    ]
    assert sent[0]["plain"] == "Episode 1 & more\nCartoons\n\nShort.\nRead more"
    assert sent[1]["plain"] == f"Episode 2 & more\nCartoons\n\n{long_text}\nRead more"
    assert sent[1]["link_preview_options"] == LARGE_ABOVE
    assert sent[2]["link_preview_options"] is None  # no image: the chat's previews (on)
    assert all(c.status == 200 for c in fake_api.calls_to("sendPhoto"))


async def test_full_with_previews_off_still_shows_the_image(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    async with running_bot(bot_settings(**QUIET)) as app:
        url = await follow(fake_api, feed_server)
        await say(fake_api, "/format full", CHAT)
        await say(fake_api, "/previews off", CHAT)
        before = len(fake_api.sent_messages(CHAT))
        await publish(
            app, url, item(1, summary="x " * 700, image=IMAGE), item(2, summary="No picture.")
        )
        sent = posts(fake_api, before)
    assert [m["link_preview_options"] for m in sent] == [LARGE_ABOVE, {"is_disabled": True}]


@pytest.mark.parametrize("refusal", [PHOTO_BAD_URL, PHOTO_UNREACHABLE, PHOTO_NOT_IMAGE])
async def test_a_broken_image_falls_back_to_the_text_post(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer, refusal: str
) -> None:
    broken = "https://img.example/gone.jpg"
    fake_api.break_photo(broken, refusal)
    async with running_bot(bot_settings(**QUIET)) as app:
        url = await follow(fake_api, feed_server)
        await say(fake_api, "/format full", CHAT)
        before = len(fake_api.sent_messages(CHAT))
        await publish(
            app, url, item(1, summary="Lost image.", image=broken), item(2, summary="Fine.",
                                                                         image=IMAGE)
        )  # fmt: skip
        sent = posts(fake_api, before)
        assert settled_cursor(url)  # nothing left behind, nothing skipped
    assert [(m["method"], m["plain"]) for m in sent] == [
        ("sendMessage", "Episode 1 & more\nCartoons\n\nLost image.\nRead more"),
        ("sendPhoto", "Episode 2 & more\nCartoons\n\nFine.\nRead more"),
    ]
    assert [c.status for c in fake_api.calls_to("sendPhoto")] == [400, 200]
    assert sent[0]["link_preview_options"] is None  # the chat's previews, as any text post


async def test_a_fan_out_of_a_broken_image_makes_one_send_photo(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    broken = "https://img.example/gone.jpg"
    fake_api.break_photo(broken, PHOTO_UNREACHABLE)
    chats = [CHAT, CHAT + 1, CHAT + 2]
    async with running_bot(bot_settings(**QUIET)) as app:
        for chat_id in chats:
            url = await follow(fake_api, feed_server, chat_id)
            await say(fake_api, "/format full", chat_id)
        before = {chat_id: len(fake_api.sent_messages(chat_id)) for chat_id in chats}
        await publish(app, url, item(1, summary="Lost image.", image=broken))
        sent = {chat_id: posts(fake_api, before[chat_id], chat_id) for chat_id in chats}
    assert [c.status for c in fake_api.calls_to("sendPhoto")] == [400]  # not one per chat
    for chat_id in chats:
        assert [(m["method"], m["plain"]) for m in sent[chat_id]] == [
            ("sendMessage", "Episode 1 & more\nCartoons\n\nLost image.\nRead more")
        ]


async def test_hostile_astral_titles_and_long_texts_are_all_accepted(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    astral = "𝕭𝖗𝖊𝖆𝖐𝖎𝖓𝖌 😀🏳️‍🌈 " * 60
    rtl = "خبر عاجل — שלום "
    async with running_bot(bot_settings(**QUIET)) as app:
        url = await follow(fake_api, feed_server)
        await say(fake_api, "/format full", CHAT)
        before = len(fake_api.sent_messages(CHAT))
        await publish(
            app,
            url,
            item(1, title=astral, summary="😀 " * 3000, image=IMAGE),
            item(2, title=rtl * 30, summary=f"<i>{rtl * 100}</i>", image=IMAGE),
            item(3, title="&<>\"' " * 100, summary="<code>&lt;b&gt;</code>"),
        )
        sent = posts(fake_api, before)
        assert settled_cursor(url)
    assert len(sent) == 3
    rejected = [c for c in fake_api.calls if c.status == 400]
    assert rejected == []
    assert sent[0]["plain"].endswith("😀…\nRead more")


async def test_resume_sends_what_waited_as_one_compact_list(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    async with running_bot(bot_settings(**QUIET)) as app:
        url = await follow(fake_api, feed_server)
        await say(fake_api, "/pause", CHAT)
        before = len(fake_api.sent_messages(CHAT))
        await publish(app, url, *(item(n, summary=f"Text {n}.") for n in range(1, 4)))
        assert posts(fake_api, before) == []  # paused: nothing posted
        await say(fake_api, "/resume", CHAT)
        await settle(app)
        sent = posts(fake_api, before + 1)  # after the /resume reply
        assert settled_cursor(url)
    assert [m["plain"] for m in sent] == [
        "Episode 1 & more\nCartoons\n\nEpisode 2 & more\nCartoons\n\nEpisode 3 & more\nCartoons"
    ]
