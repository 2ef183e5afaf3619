"""The fake Bot API's rules for posts: sendPhoto, captions, UTF-16 lengths, link previews.

The fake counts lengths with its own UTF-16 counter (independent of ``bot.richtext``), so it
is an oracle for the bot's formatter: what it accepts, Telegram accepts.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from telegram import Bot, LinkPreviewOptions
from telegram.error import BadRequest

from tests.helpers.fake_bot_api import (
    MAX_CAPTION_LENGTH,
    MAX_MESSAGE_LENGTH,
    PHOTO_BAD_URL,
    PHOTO_NOT_IMAGE,
    PHOTO_UNREACHABLE,
    FakeBotAPI,
)

IMAGE = "https://img.example/cat.jpg"
ASTRAL = "😀"  # one code point, two UTF-16 code units


@pytest.fixture
async def bot(fake_api: FakeBotAPI) -> AsyncIterator[Bot]:
    """PTB on the fake; users 1-99 started the bot (tests here check other rules)."""
    for user_id in range(1, 100):
        fake_api.start_private_chat(user_id)
    async with Bot(fake_api.token, base_url=f"{fake_api.base_url}/bot") as ptb_bot:
        yield ptb_bot


async def _raw(fake: FakeBotAPI, method: str, data: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5.0) as client:
        return await client.post(f"{fake.base_url}/bot{fake.token}/{method}", data=data)


async def test_send_photo_by_url_records_the_photo_and_the_visible_caption(
    fake_api: FakeBotAPI, bot: Bot
) -> None:
    message = await bot.send_photo(
        7, IMAGE, caption='<b><a href="https://x.example/">Cat</a></b> &amp; co', parse_mode="HTML"
    )
    assert message.caption == "Cat & co"
    assert message.photo
    (sent,) = fake_api.sent_messages(7)
    assert (sent["method"], sent["photo"], sent["plain"]) == ("sendPhoto", IMAGE, "Cat & co")
    without = await bot.send_photo(7, IMAGE)  # a caption is optional
    assert without.caption is None
    assert fake_api.sent_messages(7)[-1]["plain"] == ""


async def test_caption_limit_counts_utf16_units_after_entity_parsing(
    fake_api: FakeBotAPI, bot: Bot
) -> None:
    half = MAX_CAPTION_LENGTH // 2
    await bot.send_photo(1, IMAGE, caption=ASTRAL * half)  # 1024 units, 512 characters
    # Tags and entities do not count: 1024 visible units, far longer raw.
    await bot.send_photo(1, IMAGE, caption="<i>" + "&lt;" * MAX_CAPTION_LENGTH + "</i>",
                         parse_mode="HTML")  # fmt: skip
    with pytest.raises(BadRequest, match=r"(?i)^message caption is too long$"):
        await bot.send_photo(1, IMAGE, caption=ASTRAL * half + "x")
    with pytest.raises(BadRequest, match=r"(?i)^message caption is too long$"):
        await bot.send_photo(1, IMAGE, caption="x" * (MAX_CAPTION_LENGTH + 1))
    assert len(fake_api.sent_messages(1)) == 2


async def test_message_limit_counts_utf16_units(fake_api: FakeBotAPI, bot: Bot) -> None:
    await bot.send_message(1, ASTRAL * (MAX_MESSAGE_LENGTH // 2))
    with pytest.raises(BadRequest, match=r"(?i)^message is too long$"):
        await bot.send_message(1, ASTRAL * (MAX_MESSAGE_LENGTH // 2) + "x")
    # 4,096 characters but 4,097 code units: Telegram refuses it, a len() check would not.
    with pytest.raises(BadRequest, match=r"(?i)^message is too long$"):
        await bot.send_message(1, ASTRAL + "x" * (MAX_MESSAGE_LENGTH - 1))
    assert len(fake_api.sent_messages(1)) == 1


async def test_caption_html_is_validated_like_message_text(fake_api: FakeBotAPI, bot: Bot) -> None:
    with pytest.raises(BadRequest, match=r"(?i)^can't parse entities: Unsupported start tag"):
        await bot.send_photo(1, IMAGE, caption="<img src=x>", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)^can't parse entities: Character entity"):
        await bot.send_photo(1, IMAGE, caption="Tom & Jerry", parse_mode="HTML")
    assert fake_api.sent_messages() == []


@pytest.mark.parametrize("description", [PHOTO_BAD_URL, PHOTO_UNREACHABLE, PHOTO_NOT_IMAGE])
async def test_a_broken_photo_url_gets_telegrams_answer(
    fake_api: FakeBotAPI, bot: Bot, description: str
) -> None:
    broken = "https://img.example/gone.jpg"
    fake_api.break_photo(broken, description)
    with pytest.raises(BadRequest) as info:
        await bot.send_photo(3, broken, caption="x")
    assert f"Bad Request: {info.value.message}".lower() == description.lower()
    await bot.send_photo(3, IMAGE, caption="x")  # other URLs still work
    assert [m["photo"] for m in fake_api.sent_messages(3)] == [IMAGE]


async def test_photo_must_be_an_http_url_or_present(fake_api: FakeBotAPI) -> None:
    fake_api.start_private_chat(1)
    for photo in ("javascript:alert(1)", "ftp://img.example/a.jpg", "not a url"):
        response = await _raw(fake_api, "sendPhoto", {"chat_id": "1", "photo": photo})
        assert response.status_code == 400
        assert response.json()["description"] == PHOTO_BAD_URL
    response = await _raw(fake_api, "sendPhoto", {"chat_id": "1", "caption": "x"})
    assert response.json()["description"] == "Bad Request: there is no photo in the request"
    assert fake_api.sent_messages() == []


async def test_link_preview_options_are_accepted_and_recorded(
    fake_api: FakeBotAPI, bot: Bot
) -> None:
    options = LinkPreviewOptions(url=IMAGE, prefer_large_media=True, show_above_text=True)
    await bot.send_message(4, "hello", link_preview_options=options)
    await bot.send_message(4, "quiet", link_preview_options=LinkPreviewOptions(is_disabled=True))
    recorded = [m["link_preview_options"] for m in fake_api.sent_messages(4)]
    assert recorded == [
        {"url": IMAGE, "prefer_large_media": True, "show_above_text": True},
        {"is_disabled": True},
    ]


@pytest.mark.parametrize(
    ("value", "description"),
    [
        ("{not json", "Bad Request: can't parse link preview options JSON object"),
        ("[]", "Bad Request: object expected as link preview options"),
        ("true", "Bad Request: object expected as link preview options"),
        (
            json.dumps({"is_disabled": "yes"}),
            'Bad Request: field "is_disabled" must be of type Boolean',
        ),
        (json.dumps({"url": 5}), 'Bad Request: field "url" must be of type String'),
        (
            json.dumps({"disabled": True}),
            'Bad Request: unknown field "disabled" in link preview options',
        ),
    ],
)
async def test_malformed_link_preview_options_are_refused(
    fake_api: FakeBotAPI, value: str, description: str
) -> None:
    fake_api.start_private_chat(1)
    data = {"chat_id": "1", "text": "hi", "link_preview_options": value}
    response = await _raw(fake_api, "sendMessage", data)
    assert response.status_code == 400
    assert response.json()["description"] == description
    assert fake_api.sent_messages() == []
