"""The Dispatcher's sending of posts: photo or text, which refusals fall back, compact backlogs.

Against the recording bot and the real storage; the end-to-end view through the fake Bot
API is ``tests/test_posts_e2e.py``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from telegram.error import BadRequest, NetworkError

from bot.models import Chat, FeedItem, FeedState, PostFormat
from bot.services.delivery import NO_PREVIEW, Dispatcher
from bot.services.metrics import Metrics
from bot.storage import StorageService
from tests.helpers.scripted import RecordingBot

URL = "https://feeds.example/rss"
IMAGE = "https://img.example/a.jpg"
TIMEOUT_S = 5.0


def item(n: int, image: str | None = IMAGE) -> FeedItem:
    return FeedItem(
        id=f"{URL}#{n}", title=f"Story {n}", link=f"https://s.example/{n}", published=None,
        source_title="Stories", feed_url=URL, summary=f"Text {n}.", image=image,
    )  # fmt: skip


async def chat_with_items(
    storage: StorageService, fmt: PostFormat, count: int, *, previews: bool = True
) -> None:
    await storage.ensure_chat(1, "private", "one")

    def choose(chat: Chat) -> None:
        chat.format, chat.previews = fmt, previews

    await storage.update_chat(1, choose)
    assert await storage.subscribe(1, URL, limit=10) == "added"
    state = FeedState(url=URL, title="Stories")
    await storage.record_fetch(URL, [item(0)], state)  # the baseline
    await storage.record_fetch(URL, [item(n) for n in range(count, 0, -1)], state)


@pytest.fixture
def bot() -> RecordingBot:
    return RecordingBot()


@pytest.fixture
async def dispatcher(bot: RecordingBot, storage: StorageService) -> AsyncIterator[Dispatcher]:
    d = Dispatcher(
        bot,  # type: ignore[arg-type]  # duck-typed stand-in for ExtBot
        storage,
        Metrics(process_metrics=False),
        workers=2,
        retry_later_s=0.01,
    )
    d.start()
    yield d
    await d.stop()


async def settle(dispatcher: Dispatcher) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        while not dispatcher.idle():
            await asyncio.sleep(0.005)


async def test_full_posts_go_as_photos_with_their_caption(
    dispatcher: Dispatcher, bot: RecordingBot, storage: StorageService
) -> None:
    await chat_with_items(storage, "full", 2)
    assert await dispatcher.deliver(1, digest=False) == "done"
    assert [s.kwargs.get("photo") for s in bot.sent] == [IMAGE, IMAGE]
    assert bot.sent[0].text.startswith('<b><a href="https://s.example/1">Story 1</a></b>')
    assert "link_preview_options" not in bot.sent[0].kwargs  # not a sendPhoto parameter
    assert storage.pending(1) == []


@pytest.mark.parametrize(
    "refusal",
    [
        "Wrong file identifier/http url specified",
        "Failed to get http url content",
        "Wrong type of the web page content",
        "Image_process_failed",
        "Photo_invalid_dimensions",
        "Not enough rights to send photos to the chat",
        "Bad Request: PHOTO_SAVE_FILE_INVALID",  # any wording: none is "about the topic"
        "Bad Request: some refusal Telegram adds next year",
    ],
)
async def test_an_image_telegram_cannot_use_falls_back_to_text(
    dispatcher: Dispatcher,
    bot: RecordingBot,
    storage: StorageService,
    caplog: pytest.LogCaptureFixture,
    refusal: str,
) -> None:
    await chat_with_items(storage, "full", 1, previews=False)
    bot.fail_next(1, BadRequest(refusal))
    with caplog.at_level(logging.WARNING, logger="bot.services.delivery"):
        assert await dispatcher.deliver(1, digest=False) == "done"
    [sent] = bot.sent
    assert "photo" not in sent.kwargs
    assert sent.kwargs["link_preview_options"] is NO_PREVIEW  # the chat's previews: off
    assert "Text 1." in sent.text
    [record] = [r for r in caplog.records if getattr(r, "event", None) == "photo_fallback"]
    assert record.image == IMAGE  # type: ignore[attr-defined]
    assert storage.pending(1) == []


async def test_a_photo_post_is_skipped_only_when_its_text_post_is_refused_too(
    dispatcher: Dispatcher,
    bot: RecordingBot,
    storage: StorageService,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await chat_with_items(storage, "full", 2)
    refusal = BadRequest("Can't parse entities: unsupported start tag")
    bot.fail_next(1, refusal, refusal)  # the photo, then its text post
    with caplog.at_level(logging.ERROR, logger="bot.services.delivery"):
        assert await dispatcher.deliver(1, digest=False) == "done"
    assert bot.attempts == [1, 1, 1]  # photo refused, text refused, item 2's photo
    assert [s.kwargs.get("photo") for s in bot.sent] == [IMAGE]
    assert "Story 2" in bot.sent[0].text
    [record] = [r for r in caplog.records if getattr(r, "event", None) == "delivery_rejected"]
    assert record.items == [f"{URL}#1"]  # type: ignore[attr-defined]
    assert storage.pending(1) == []


@pytest.mark.parametrize(
    ("refusal", "outcome"),
    [
        ("Bad Request: chat not found", "gone"),
        ("Bad Request: TOPIC_CLOSED", "retry"),
        ("Bad Request: message thread not found", "done"),  # General: an ordinary 400
    ],
)
async def test_a_photo_refused_for_the_chat_or_topic_does_not_fall_back_to_text(
    dispatcher: Dispatcher, bot: RecordingBot, storage: StorageService, refusal: str, outcome: str
) -> None:
    await chat_with_items(storage, "full", 1)
    bot.fail_next(1, BadRequest(refusal))
    assert await dispatcher.deliver(1, digest=False) == outcome
    assert bot.photo_attempts == [1]
    assert all(">Story 1<" not in s.text for s in bot.sent)  # no text post tried instead
    assert bot.attempts.count(1) == len(bot.sent) + 1  # only the photo was refused


async def test_a_fan_out_of_a_broken_image_asks_telegram_once(
    dispatcher: Dispatcher,
    bot: RecordingBot,
    storage: StorageService,
    caplog: pytest.LogCaptureFixture,
) -> None:
    chats = range(1, 41)
    state = FeedState(url=URL, title="Stories")
    await storage.record_fetch(URL, [item(0)], state)  # the baseline
    for chat_id in chats:
        await storage.ensure_chat(chat_id, "private", f"chat {chat_id}")
        await storage.update_chat(chat_id, lambda chat: setattr(chat, "format", "full"))
        assert await storage.subscribe(chat_id, URL, limit=10) == "added"
    bot.broken_photos[IMAGE] = "Bad Request: failed to get HTTP URL content"
    entries = await storage.record_fetch(URL, [item(1)], state)
    with caplog.at_level(logging.WARNING, logger="bot.services.delivery"):
        dispatcher.feed_updated(URL, entries)  # 2 workers deliver the chats concurrently
        await settle(dispatcher)
    assert bot.photo_attempts == [bot.photo_attempts[0]]  # one sendPhoto for 40 chats
    assert sorted(s.chat_id for s in bot.sent) == list(chats)  # every chat got the text
    assert all("Text 1." in s.text and "photo" not in s.kwargs for s in bot.sent)
    assert [r for r in caplog.records if getattr(r, "event", None) == "photo_fallback"] != []
    assert all(storage.pending(chat_id) == [] for chat_id in chats)


async def test_a_chat_without_photo_rights_does_not_mark_the_image_broken(
    dispatcher: Dispatcher, bot: RecordingBot, storage: StorageService
) -> None:
    state = FeedState(url=URL, title="Stories")
    await storage.record_fetch(URL, [item(0)], state)  # the baseline
    for chat_id in (1, 2):
        await storage.ensure_chat(chat_id, "private", f"chat {chat_id}")
        await storage.update_chat(chat_id, lambda chat: setattr(chat, "format", "full"))
        assert await storage.subscribe(chat_id, URL, limit=10) == "added"
    await storage.record_fetch(URL, [item(1)], state)
    bot.fail_next(1, BadRequest("Not enough rights to send photos to the chat"))
    assert await dispatcher.deliver(1, digest=False) == "done"
    assert await dispatcher.deliver(2, digest=False) == "done"
    assert bot.photo_attempts == [1, 2]
    assert [(s.chat_id, "photo" in s.kwargs) for s in bot.sent] == [(1, False), (2, True)]


async def test_a_compact_request_lists_titles_and_survives_a_retry(
    dispatcher: Dispatcher, bot: RecordingBot, storage: StorageService
) -> None:
    await chat_with_items(storage, "summary", 3)
    bot.fail_next(1, NetworkError("gateway timeout"))
    dispatcher.request(1, compact=True)
    async with asyncio.timeout(TIMEOUT_S):
        while not bot.sent:  # the failed try, then the retry after retry_later_s
            await asyncio.sleep(0.005)
    await settle(dispatcher)
    [sent] = bot.sent
    assert all(f">Story {n}<" in sent.text for n in (1, 2, 3))
    assert "Text 1." not in sent.text  # titles only
    assert storage.pending(1) == []


async def test_a_compact_backlog_names_the_feed_by_its_custom_title(
    dispatcher: Dispatcher, bot: RecordingBot, storage: StorageService
) -> None:
    """/resume and /digest off list the backlog compactly: the chat's /rename still shows."""
    await chat_with_items(storage, "summary", 2)
    await storage.update_subscription(1, URL, lambda sub: setattr(sub, "title", "My <news>"))
    assert await dispatcher.deliver(1, digest=False, compact=True) == "done"
    [sent] = bot.sent
    assert sent.text == (
        '<b><a href="https://s.example/1">Story 1</a></b>\nMy &lt;news&gt;\n\n'
        '<b><a href="https://s.example/2">Story 2</a></b>\nMy &lt;news&gt;'
    )


async def test_a_plain_request_posts_each_item_in_the_chat_format(
    dispatcher: Dispatcher, bot: RecordingBot, storage: StorageService
) -> None:
    await chat_with_items(storage, "summary", 2)
    dispatcher.request(1)
    await settle(dispatcher)
    assert len(bot.sent) == 2
    assert all("Text" in s.text for s in bot.sent)


async def test_photo_and_text_posts_go_to_the_subscription_topic(
    dispatcher: Dispatcher, bot: RecordingBot, storage: StorageService
) -> None:
    forum, topic = -1001234500009, 7
    await storage.ensure_chat(forum, "supergroup", "Forum")
    await storage.update_chat(forum, lambda c: setattr(c, "format", "full"))
    state = FeedState(url=URL, title="Stories")
    await storage.record_fetch(URL, [item(0)], state)
    assert await storage.subscribe(forum, URL, limit=10, options={"thread_id": topic}) == "added"
    await storage.record_fetch(URL, [item(2, image=None), item(1)], state)
    assert await dispatcher.deliver(forum, digest=False) == "done"
    assert [(s.kwargs.get("photo"), s.kwargs["message_thread_id"]) for s in bot.sent] == [
        (IMAGE, topic),
        (None, topic),
    ]
