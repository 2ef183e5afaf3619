"""The fake Bot API's files (tests/helpers/fake_files.py), driven by real PTB like the bot does."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from telegram import Bot
from telegram.error import BadRequest, Forbidden

from tests.helpers.fake_bot_api import FakeBotAPI
from tests.helpers.fake_files import MAX_DOWNLOAD_BYTES


@pytest.fixture
async def bot(fake_api: FakeBotAPI) -> AsyncIterator[Bot]:
    """PTB on the fake; users 1-99 started the bot (tests here check other rules)."""
    for user_id in range(1, 100):
        fake_api.start_private_chat(user_id)
    async with Bot(
        fake_api.token,
        base_url=f"{fake_api.base_url}/bot",
        base_file_url=f"{fake_api.base_url}/file/bot",
    ) as ptb_bot:
        yield ptb_bot


async def test_a_users_document_arrives_with_caption_command_and_downloads(
    fake_api: FakeBotAPI, bot: Bot
) -> None:
    message_id = fake_api.files.send_document_message(
        b"<opml/>", chat_id=5, user_id=5, file_name="feeds.opml", caption="/import now"
    )
    [update] = await bot.get_updates()
    message = update.message
    assert message is not None and message.document is not None
    assert message.message_id == message_id
    assert message.caption == "/import now"
    assert [(e.type, e.offset, e.length) for e in message.caption_entities] == [
        ("bot_command", 0, 7)
    ]
    document = message.document
    assert (document.file_name, document.file_size) == ("feeds.opml", 7)
    assert document.mime_type == "application/octet-stream"  # nobody knows .opml
    telegram_file = await bot.get_file(document.file_id)
    assert telegram_file.file_path == (
        f"{fake_api.base_url}/file/bot{fake_api.token}/documents/file_1.opml"
    )
    assert await telegram_file.download_as_bytearray() == bytearray(b"<opml/>")
    assert fake_api.files.downloads == ["documents/file_1.opml"]


async def test_a_reply_carries_the_replied_document(fake_api: FakeBotAPI, bot: Bot) -> None:
    first = fake_api.files.send_document_message(
        b"x", chat_id=6, user_id=6, file_name="a.xml", mime_type="text/xml"
    )
    fake_api.send_reply("/import", reply_to=first, chat_id=6, user_id=6)
    _, raw = await bot.get_updates()
    message = raw.message
    assert message is not None and message.text == "/import"
    replied = message.reply_to_message
    assert replied is not None and replied.document is not None
    assert (replied.document.file_name, replied.document.mime_type) == ("a.xml", "text/xml")
    with pytest.raises(ValueError, match="no recorded message"):
        fake_api.send_reply("/import", reply_to=999, chat_id=6, user_id=6)


async def test_get_file_refuses_unknown_ids_and_files_over_20_mb(
    fake_api: FakeBotAPI, bot: Bot
) -> None:
    with pytest.raises(BadRequest, match="Invalid file_id"):
        await bot.get_file("no-such-file")
    huge = fake_api.files.store(b"\0" * (MAX_DOWNLOAD_BYTES + 1), "huge.opml")
    with pytest.raises(BadRequest, match="File is too big"):
        await bot.get_file(huge.file_id)


async def test_downloads_need_the_right_token_and_path(fake_api: FakeBotAPI) -> None:
    stored = fake_api.files.store(b"data", "f.opml")
    async with httpx.AsyncClient() as http:
        ok = await http.get(f"{fake_api.base_url}/file/bot{fake_api.token}/{stored.file_path}")
        wrong_token = await http.get(f"{fake_api.base_url}/file/bot1:x/{stored.file_path}")
        wrong_path = await http.get(f"{fake_api.base_url}/file/bot{fake_api.token}/documents/x")
    assert (ok.status_code, ok.content) == (200, b"data")
    assert wrong_token.status_code == 404
    assert wrong_path.status_code == 404
    assert fake_api.files.downloads == [stored.file_path]


async def test_send_document_records_the_upload_and_refuses_what_telegram_refuses(
    fake_api: FakeBotAPI, bot: Bot
) -> None:
    sent = await bot.send_document(8, document=b"<opml/>", filename="out.opml", caption="hi")
    assert sent.document is not None and sent.document.file_name == "out.opml"
    assert sent.caption == "hi"
    [record] = await fake_api.files.wait_for_documents(1, chat_id=8)
    assert (record["filename"], record["data"], record["caption"]) == ("out.opml", b"<opml/>", "hi")
    again = await bot.send_document(8, document=sent.document.file_id)  # by file_id
    assert again.document is not None and again.document.file_id == sent.document.file_id
    with pytest.raises(BadRequest, match="File must be non-empty"):
        await bot.send_document(8, document=b"", filename="empty.opml")
    with pytest.raises(BadRequest, match="Message caption is too long"):
        await bot.send_document(8, document=b"x", filename="a.opml", caption="c" * 1025)
    with pytest.raises(BadRequest, match="Wrong file identifier"):
        await bot.send_document(8, document="not-a-file-id")
    fake_api.blocked_chats.add(9)
    with pytest.raises(Forbidden):
        await bot.send_document(9, document=b"x", filename="a.opml")
    assert len(fake_api.files.sent_documents) == 2


async def test_a_document_caption_is_counted_in_utf16_units_like_telegram(bot: Bot) -> None:
    astral = "😀"  # two UTF-16 code units: Telegram's 1,024 holds 512 of them
    half = 1024 // 2
    sent = await bot.send_document(8, document=b"x", filename="a.opml", caption=astral * half)
    assert sent.caption == astral * half
    with pytest.raises(BadRequest, match="Message caption is too long"):
        await bot.send_document(8, document=b"x", filename="a.opml", caption=astral * (half + 1))
    html = f"<b>{'&lt;' * 1024}</b>"  # counted after entity parsing: 1,024 visible characters
    sent = await bot.send_document(8, document=b"x", filename="b.opml", caption=html,
                                   parse_mode="HTML")  # fmt: skip
    assert sent.caption == "<" * 1024
