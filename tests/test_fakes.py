"""Tests of the test fakes themselves: FakeBotAPI (driven by real PTB), FeedServer, feeds."""

from __future__ import annotations

import asyncio
import calendar
import gzip
import sys
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import defusedxml.ElementTree as DET
import feedparser
import httpx
import pytest
import telegram
from defusedxml import DTDForbidden, EntitiesForbidden
from telegram import Bot, Update
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
)
from telegram.ext import ApplicationBuilder, CommandHandler, ContextTypes

from tests.helpers import feeds
from tests.helpers.fake_bot_api import (
    BOT_USERNAME,
    MAX_MESSAGE_LENGTH,
    FakeBotAPI,
    TelegramHTMLError,
    telegram_html_to_plain,
)
from tests.helpers.feed_server import FeedServer


@pytest.fixture
async def bot(fake_api: FakeBotAPI) -> AsyncIterator[Bot]:
    """PTB on the fake; users 1-99 started the bot (tests here check other rules)."""
    for user_id in range(1, 100):
        fake_api.start_private_chat(user_id)
    async with Bot(fake_api.token, base_url=f"{fake_api.base_url}/bot") as ptb_bot:
        yield ptb_bot


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


def _api(fake: FakeBotAPI, method: str) -> str:
    return f"{fake.base_url}/bot{fake.token}/{method}"


def _retry_seconds(exc: RetryAfter) -> float:
    value = exc.retry_after  # int, or timedelta with PTB_TIMEDELTA=true
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


# ============================================================== FakeBotAPI through real PTB


async def test_get_me_returns_the_bot_user(fake_api: FakeBotAPI, bot: Bot) -> None:
    me = await bot.get_me()
    assert me.id == int(fake_api.token.split(":")[0])
    assert me.is_bot
    assert me.username == BOT_USERNAME
    assert fake_api.calls_to("getMe")  # initialize() + get_me()


async def test_send_message_stores_plain_text_and_numbers_per_chat(
    fake_api: FakeBotAPI, bot: Bot
) -> None:
    first = await bot.send_message(42, "<b>Hi</b> &amp; <i>bye</i>", parse_mode="HTML")
    second = await bot.send_message(42, "again")
    other = await bot.send_message(-1001234567890, "elsewhere")

    assert first.text == "Hi & bye"
    assert first.from_user is not None and first.from_user.id == fake_api.bot_id
    assert first.chat.id == 42 and first.chat.type == "private"
    assert (first.message_id, second.message_id, other.message_id) == (1, 2, 1)
    assert other.chat.type == "supergroup"
    sent = fake_api.sent_messages(42)
    assert [m["plain"] for m in sent] == ["Hi & bye", "again"]
    assert sent[0]["text"] == "<b>Hi</b> &amp; <i>bye</i>"
    assert sent[0]["parse_mode"] == "HTML"
    assert len(fake_api.sent_messages()) == 3


@pytest.mark.parametrize(
    ("markup", "reason"),
    [
        ("<foo>x</foo>", "Unsupported start tag"),
        ("<b>unclosed", "Can't find end tag"),
        ("<b><i>x</b></i>", "Unmatched end tag"),
        ("x</b>", "Unexpected end tag"),
        ("a < b", "Unsupported start tag"),
        ("fish & chips", "Character entity expected"),
        ("&nbsp;", "Character entity expected"),
        ("<span>x</span>", "tg-spoiler"),
        ("<a>no href</a>", "href"),
        ("line<br/>break", "Unsupported start tag"),
        ("<!-- hidden -->x", "comment"),
    ],
)
async def test_invalid_html_is_rejected_like_telegram(
    fake_api: FakeBotAPI, bot: Bot, markup: str, reason: str
) -> None:
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities") as info:
        await bot.send_message(1, markup, parse_mode="HTML")
    assert reason.lower() in str(info.value).lower()  # PTB re-capitalises descriptions
    assert fake_api.sent_messages() == []
    assert fake_api.calls_to("sendMessage")[0].status == 400


@pytest.mark.parametrize(
    ("markup", "plain"),
    [
        ('<a href="https://x.test/?a=1&amp;b=2">link</a>', "link"),
        ('<span class="tg-spoiler">s</span> <tg-spoiler>t</tg-spoiler>', "s t"),
        ("<blockquote expandable>q</blockquote><blockquote>r</blockquote>", "qr"),
        ('<pre><code class="language-python">x = 1</code></pre>', "x = 1"),
        ("&#128512;&#x1F600; &lt;tag&gt; &quot;q&quot;", '😀😀 <tag> "q"'),
        ('<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>', "👍"),
        ("a > b <B>bold</B> <strong>s</strong><em>e</em><u>u</u><s>x</s>", "a > b bold seux"),
    ],
)
def test_valid_html_converts_to_visible_text(markup: str, plain: str) -> None:
    assert telegram_html_to_plain(markup) == plain


async def test_html_error_description_is_telegrams_wording(
    fake_api: FakeBotAPI, http: httpx.AsyncClient
) -> None:
    fake_api.start_private_chat(1)
    response = await http.post(
        _api(fake_api, "sendMessage"),
        data={"chat_id": "1", "text": "<b>x</i>", "parse_mode": "HTML"},
    )
    assert response.status_code == 400
    assert response.json()["description"] == (
        "Bad Request: can't parse entities: Unmatched end tag at byte offset 4, "
        'expected "</b>", found "</i>"'
    )


def test_html_error_reports_utf8_byte_offset() -> None:
    with pytest.raises(TelegramHTMLError, match="byte offset 3"):
        telegram_html_to_plain("é <x>")  # "é" is 2 bytes, then a space


async def test_length_limit_counts_visible_characters(fake_api: FakeBotAPI, bot: Bot) -> None:
    await bot.send_message(1, "x" * MAX_MESSAGE_LENGTH)
    # Tags and entities do not count: 4096 visible characters, far longer raw.
    await bot.send_message(1, "<b>" + "&amp;" * MAX_MESSAGE_LENGTH + "</b>", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(1, "x" * (MAX_MESSAGE_LENGTH + 1))
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(1, "&amp;" * (MAX_MESSAGE_LENGTH + 1), parse_mode="HTML")
    assert len(fake_api.sent_messages(1)) == 2


async def test_empty_text_and_bad_chat_are_rejected(
    fake_api: FakeBotAPI, bot: Bot, http: httpx.AsyncClient
) -> None:
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(1, "   ")
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(1, "<b> </b>", parse_mode="HTML")
    fake_api.unknown_chats.add(-555)
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.send_message(-555, "hello")
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.send_message("@nobody_here", "hello")
    response = await http.post(_api(fake_api, "sendMessage"), data={"text": "hi"})
    assert response.status_code == 400
    assert response.json() == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: chat_id is empty",
    }
    assert fake_api.sent_messages() == []


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_429_injection_surfaces_as_retry_after(fake_api: FakeBotAPI, bot: Bot) -> None:
    fake_api.fail_next("sendMessage", 429, times=2, retry_after=7)
    for _ in range(2):
        with pytest.raises(RetryAfter) as info:
            await bot.send_message(5, "hello")
        assert _retry_seconds(info.value) == 7
    message = await bot.send_message(5, "hello")  # the injected failures are used up
    assert message.text == "hello"
    assert [c.status for c in fake_api.calls_to("sendMessage")] == [429, 429, 200]
    assert len(fake_api.sent_messages(5)) == 1


async def test_5xx_injection_surfaces_as_network_error(
    fake_api: FakeBotAPI, bot: Bot, http: httpx.AsyncClient
) -> None:
    fake_api.fail_next("getMe", 502)
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await bot.get_me()
    fake_api.fail_next("getme", 500, description="Internal Server Error: boom")
    response = await http.post(_api(fake_api, "GETME"))
    assert response.status_code == 500
    assert response.json()["description"] == "Internal Server Error: boom"
    assert (await bot.get_me()).username == BOT_USERNAME


async def test_blocked_chat_raises_forbidden(fake_api: FakeBotAPI, bot: Bot) -> None:
    fake_api.blocked_chats.add(77)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(77, "hi")
    fake_api.set_chat(-300, "group", title="Old group")
    fake_api.blocked_chats.add(-300)
    with pytest.raises(Forbidden, match="kicked from the group chat"):
        await bot.send_message(-300, "hi")
    assert fake_api.sent_messages() == []


async def test_migrated_chat_raises_chat_migrated(fake_api: FakeBotAPI, bot: Bot) -> None:
    fake_api.migrated_chats[-4001] = -1004001
    with pytest.raises(ChatMigrated) as info:
        await bot.send_message(-4001, "hi")
    assert info.value.new_chat_id == -1004001
    message = await bot.send_message(-1004001, "hi")
    assert message.chat.id == -1004001


async def test_wrong_token_and_unknown_method_answer_404(
    fake_api: FakeBotAPI, http: httpx.AsyncClient
) -> None:
    other_token = "987654321:" + "B" * 35
    with pytest.raises(InvalidToken):  # raised by initialize()'s getMe
        async with Bot(other_token, base_url=f"{fake_api.base_url}/bot"):
            pass
    assert fake_api.calls == []  # requests with a foreign token are not recorded
    response = await http.post(_api(fake_api, "fooBarBaz"))
    assert response.status_code == 404
    assert response.json() == {"ok": False, "error_code": 404, "description": "Not Found"}


async def test_unimplemented_real_methods_answer_true_and_are_recorded(
    fake_api: FakeBotAPI, bot: Bot, http: httpx.AsyncClient
) -> None:
    assert await bot.send_chat_action(3, "typing") is True
    call = fake_api.calls_to("sendChatAction")[0]
    assert call.params == {"chat_id": 3, "action": "typing"}
    # Case-insensitive method names, JSON bodies and multipart bodies are all accepted.
    response = await http.post(
        _api(fake_api, "SENDMESSAGE"), json={"chat_id": 9, "text": "json body"}
    )
    assert response.json()["result"]["text"] == "json body"
    response = await http.post(
        _api(fake_api, "sendDocument"),
        data={"chat_id": "9", "caption": "123", "reply_markup": '{"inline_keyboard": []}'},
        files={"document": ("a.txt", b"hello", "text/plain")},
    )
    result = response.json()["result"]  # sendDocument is implemented (tests/helpers/fake_files.py)
    assert (result["document"]["file_name"], result["caption"]) == ("a.txt", "123")
    params = fake_api.calls_to("senddocument")[0].params
    assert params["chat_id"] == 9
    assert params["caption"] == "123"  # string fields stay strings
    assert params["reply_markup"] == {"inline_keyboard": []}
    assert params["document"]["size"] == 5


async def test_chat_member_table_and_commands(fake_api: FakeBotAPI, bot: Bot) -> None:
    fake_api.set_chat(-100, "group")  # a chat the bot is in (unknown chats are not found)
    member = await bot.get_chat_member(-100, 11)
    assert member.status == "member"
    fake_api.set_admin(-100, 11)
    fake_api.set_admin(-100, 12, status="creator")
    assert isinstance(await bot.get_chat_member(-100, 11), telegram.ChatMemberAdministrator)
    assert isinstance(await bot.get_chat_member(-100, 12), telegram.ChatMemberOwner)
    admins = await bot.get_chat_administrators(-100)
    assert sorted(a.user.id for a in admins) == [11, 12]
    chat = await bot.get_chat(-100)
    assert (chat.id, chat.type) == (-100, "group")
    assert await bot.leave_chat(-100) is True
    assert fake_api.left_chats == [-100]
    with pytest.raises(BadRequest, match="Query is too old"):  # no such press (test_fake_buttons)
        await bot.answer_callback_query("cb-1")

    await bot.set_my_commands([("news", "Latest news"), ("help", "Help")])
    commands = await bot.get_my_commands()
    assert [(c.command, c.description) for c in commands] == [
        ("news", "Latest news"),
        ("help", "Help"),
    ]
    assert await bot.get_my_commands(language_code="de") == ()


async def test_get_updates_returns_queued_command_as_update(fake_api: FakeBotAPI, bot: Bot) -> None:
    update_id = fake_api.send_command(
        "/news@newsbot_test_bot 5", chat_id=-1001, user_id=7, chat_type="supergroup"
    )
    updates = await bot.get_updates(timeout=5)
    assert [u.update_id for u in updates] == [update_id]
    update = updates[0]
    assert isinstance(update, Update)
    assert update.message is not None
    assert update.message.text == "/news@newsbot_test_bot 5"
    assert update.message.chat.type == "supergroup"
    assert update.message.from_user is not None and update.message.from_user.id == 7
    entity = update.message.entities[0]
    assert entity.type == telegram.MessageEntity.BOT_COMMAND
    assert (entity.offset, entity.length) == (0, len("/news@newsbot_test_bot"))


async def test_real_application_polls_and_answers_a_command(fake_api: FakeBotAPI) -> None:
    async def news(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None
        args = " ".join(context.args or [])
        await context.bot.send_message(update.effective_chat.id, f"<b>news</b> {args}", "HTML")

    app = ApplicationBuilder().token(fake_api.token).base_url(f"{fake_api.base_url}/bot").build()
    app.add_handler(CommandHandler("news", news))
    async with app:
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        await app.start()
        fake_api.send_command(
            "/news@newsbot_test_bot 3", chat_id=-200, user_id=9, chat_type="group"
        )
        fake_api.send_command("/other", chat_id=-200, user_id=9, chat_type="group")
        fake_api.send_command("/news", chat_id=9, user_id=9)
        group = await fake_api.wait_for_messages(1, chat_id=-200)
        private = await fake_api.wait_for_messages(1, chat_id=9)
        await app.updater.stop()
        await app.stop()
    assert [m["plain"] for m in group] == ["news 3"]
    assert [m["plain"] for m in private] == ["news"]
    assert fake_api.pending_updates == []  # PTB confirmed everything on shutdown


async def test_long_poll_waits_until_an_update_arrives(fake_api: FakeBotAPI, bot: Bot) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=10))
    await fake_api.wait_for_call("getUpdates")
    await asyncio.sleep(0.1)
    assert not poll.done()  # nothing queued: the request is being held open
    fake_api.send_command("/start", chat_id=5, user_id=5)
    updates = await asyncio.wait_for(poll, 5)
    assert updates[0].message is not None and updates[0].message.text == "/start"


async def test_offset_confirms_and_drops_older_updates(fake_api: FakeBotAPI, bot: Bot) -> None:
    ids = [fake_api.send_command(f"/n{i}", chat_id=1, user_id=1) for i in range(3)]
    assert [u.update_id for u in await bot.get_updates()] == ids
    assert [u.update_id for u in await bot.get_updates(offset=ids[1])] == ids[1:]
    assert [u["update_id"] for u in fake_api.pending_updates] == ids[1:]
    assert await bot.get_updates(offset=ids[2] + 1, timeout=0) == ()
    assert fake_api.pending_updates == []
    more = [fake_api.send_command(f"/m{i}", chat_id=1, user_id=1) for i in range(3)]
    assert [u.update_id for u in await bot.get_updates(limit=2)] == more[:2]
    assert [u.update_id for u in await bot.get_updates(offset=-1)] == more[-1:]


async def test_allowed_updates_and_other_update_builders(fake_api: FakeBotAPI, bot: Bot) -> None:
    fake_api.send_command("hello", chat_id=1, user_id=1)
    post_id = fake_api.channel_post("/digest", chat_id=-1009, chat_title="Chan")
    member_id = fake_api.my_chat_member(-1009, "channel", "left", "administrator", user_id=3)
    migrate_id = fake_api.migrate(-55, -10055)

    posts = await bot.get_updates(allowed_updates=["channel_post"])
    assert [u.update_id for u in posts] == [post_id]
    post = posts[0].channel_post
    assert post is not None and post.text == "/digest"
    assert post.sender_chat is not None and post.sender_chat.id == -1009
    assert post.from_user is None
    assert post.entities[0].length == len("/digest")

    changes = await bot.get_updates(allowed_updates=["my_chat_member"])
    assert [u.update_id for u in changes] == [member_id]
    change = changes[0].my_chat_member
    assert change is not None
    assert change.new_chat_member.status == "administrator"
    assert change.new_chat_member.user.id == fake_api.bot_id
    assert (await bot.get_chat_member(-1009, fake_api.bot_id)).status == "administrator"

    everything = await bot.get_updates(allowed_updates=[])  # [] = Telegram's default set
    assert migrate_id in [u.update_id for u in everything]
    migration = next(u for u in everything if u.update_id == migrate_id).message
    assert migration is not None and migration.migrate_to_chat_id == -10055
    with pytest.raises(ChatMigrated):
        await bot.send_message(-55, "old group")


async def test_delete_webhook_can_drop_pending_updates(fake_api: FakeBotAPI, bot: Bot) -> None:
    fake_api.send_command("/start", chat_id=1, user_id=1)
    assert await bot.delete_webhook() is True
    assert len(fake_api.pending_updates) == 1
    assert await bot.delete_webhook(drop_pending_updates=True) is True
    assert fake_api.pending_updates == []


async def test_hang_stalls_requests_until_released(fake_api: FakeBotAPI, bot: Bot) -> None:
    fake_api.hang(True)
    sends = [asyncio.create_task(bot.send_message(i, f"msg {i}")) for i in (1, 2)]
    calls = await fake_api.wait_for_call("sendMessage", count=2)
    await asyncio.sleep(0.2)
    assert not any(task.done() for task in sends)
    assert [c.status for c in calls] == [0, 0]  # still pending
    fake_api.hang(False)
    messages = await asyncio.wait_for(asyncio.gather(*sends), 5)
    assert sorted(m.chat.id for m in messages) == [1, 2]


async def test_hung_request_ends_when_client_gives_up(fake_api: FakeBotAPI) -> None:
    fake_api.hang(True)
    async with httpx.AsyncClient(timeout=0.3) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(_api(fake_api, "getMe"))
    # The server notices the disconnect and abandons the handler (no pile-up of hung handlers).
    for _ in range(100):
        if fake_api.calls_to("getMe")[0].status:
            break
        await asyncio.sleep(0.02)
    assert fake_api.calls_to("getMe")[0].status == 499


async def test_stop_releases_hung_and_long_polling_requests(
    fake_api: FakeBotAPI, http: httpx.AsyncClient
) -> None:
    poll = asyncio.create_task(
        http.post(_api(fake_api, "getUpdates"), data={"timeout": "60"}, timeout=90)
    )
    await fake_api.wait_for_call("getUpdates")
    fake_api.hang(True)
    hung = asyncio.create_task(http.post(_api(fake_api, "getMe"), timeout=90))
    await fake_api.wait_for_call("getMe")
    await asyncio.wait_for(fake_api.stop(), 10)
    poll_response, hung_response = await asyncio.wait_for(asyncio.gather(poll, hung), 10)
    assert poll_response.json() == {"ok": True, "result": []}
    assert hung_response.json()["ok"] is True


async def test_delay_holds_one_method_only(fake_api: FakeBotAPI, bot: Bot) -> None:
    fake_api.set_delay("sendMessage", 5)
    slow = asyncio.create_task(bot.send_message(1, "slow"))
    await fake_api.wait_for_call("sendMessage")
    assert (await bot.get_me()).is_bot  # other methods are unaffected
    assert not slow.done()
    slow.cancel()
    fake_api.set_delay("sendMessage", 0)
    assert (await bot.send_message(1, "fast")).text == "fast"


async def test_wait_for_messages_timeout_lists_what_was_sent(
    fake_api: FakeBotAPI, bot: Bot
) -> None:
    await bot.send_message(8, "only one")
    with pytest.raises(AssertionError, match="expected 2 message") as info:
        await fake_api.wait_for_messages(2, chat_id=8, timeout=0.2)
    assert "only one" in str(info.value)
    with pytest.raises(AssertionError, match="deleteWebhook"):
        await fake_api.wait_for_call("deleteWebhook", timeout=0.1)


async def test_wait_for_messages_wakes_on_concurrent_sends(fake_api: FakeBotAPI, bot: Bot) -> None:
    async def send_later() -> None:
        for i in range(3):
            await bot.send_message(4, f"m{i}")

    waited, _ = await asyncio.gather(fake_api.wait_for_messages(3, chat_id=4), send_later())
    assert [m["plain"] for m in waited] == ["m0", "m1", "m2"]


async def test_standalone_process_and_control_endpoints() -> None:
    token = "555:" + "C" * 35
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.helpers.fake_bot_api",
        "--port",
        "0",
        "--token",
        token,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
        assert line.startswith("READY http://127.0.0.1:")
        base = line.removeprefix("READY ")
        async with httpx.AsyncClient(timeout=5) as client:
            control = await client.post(
                f"{base}/_control/command", json={"text": "/help", "chat_id": 6, "user_id": 6}
            )
            update_id = control.json()["result"]["update_id"]
            raw = {"message": {"message_id": 1, "date": 0, "chat": {"id": 6, "type": "private"}}}
            control = await client.post(f"{base}/_control/updates", json=raw)
            assert control.json()["result"]["update_ids"] == [update_id + 1]
            got = await client.post(f"{base}/bot{token}/getUpdates", data={"timeout": "0"})
            assert [u["update_id"] for u in got.json()["result"]] == [update_id, update_id + 1]
            await client.post(f"{base}/bot{token}/sendMessage", data={"chat_id": 6, "text": "x"})
            sent = (await client.get(f"{base}/_control/sent", params={"chat_id": 6})).json()
            assert [m["plain"] for m in sent["result"]] == ["x"]
            await client.post(f"{base}/_control/hang", json={"hang": True})
            with pytest.raises(httpx.ReadTimeout):
                await client.post(f"{base}/bot{token}/getMe", timeout=0.3)
            await client.post(f"{base}/_control/hang", json={"hang": False})
            assert (await client.post(f"{base}/bot{token}/getMe")).json()["ok"] is True
            bad = await client.post(f"{base}/_control/updates", content=b"{not json")
            assert bad.status_code == 400
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) == 0


def test_constructor_rejects_malformed_token_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="malformed") as info:
        FakeBotAPI("not-a-token-SECRET")
    assert "SECRET" not in str(info.value)


# ============================================================== FeedServer


async def test_feed_server_serves_and_counts(
    feed_server: FeedServer, http: httpx.AsyncClient
) -> None:
    body = feeds.rss([{"title": "One", "link": "https://example.com/1"}])
    feed_server.serve("/feed.xml", body)
    response = await http.get(feed_server.url("feed.xml"))
    assert response.status_code == 200
    assert response.content == body
    assert response.headers["content-type"] == "application/rss+xml; charset=utf-8"
    await http.get(feed_server.url("/feed.xml?x=1"))
    assert feed_server.request_count("/feed.xml") == 2
    assert feed_server.request_count("/feed.xml?x=1") == 1
    assert (await http.get(feed_server.url("/missing"))).status_code == 404
    assert feed_server.request_count("/missing") == 1
    assert feed_server.requests[0].headers["User-Agent"].startswith("python-httpx")


async def test_conditional_get_with_etag_and_last_modified(
    feed_server: FeedServer, http: httpx.AsyncClient
) -> None:
    last_modified = "Mon, 15 Jan 2024 12:00:00 GMT"
    feed_server.serve("/f", b"<rss/>", etag="v1", last_modified=last_modified)
    first = await http.get(feed_server.url("/f"))
    assert first.headers["etag"] == '"v1"'
    assert first.headers["last-modified"] == last_modified

    same = await http.get(feed_server.url("/f"), headers={"If-None-Match": '"v1"'})
    assert (same.status_code, same.content) == (304, b"")
    changed = await http.get(feed_server.url("/f"), headers={"If-None-Match": '"v0"'})
    assert (changed.status_code, changed.content) == (200, b"<rss/>")
    later = "Tue, 16 Jan 2024 00:00:00 GMT"
    earlier = "Sun, 14 Jan 2024 00:00:00 GMT"
    fresh = await http.get(feed_server.url("/f"), headers={"If-Modified-Since": later})
    assert fresh.status_code == 304
    stale = await http.get(feed_server.url("/f"), headers={"If-Modified-Since": earlier})
    assert stale.status_code == 200


async def test_gzip_and_raw_gzip_bodies(feed_server: FeedServer, http: httpx.AsyncClient) -> None:
    body = feeds.big_feed(20)
    feed_server.serve("/gz", body, gzip=True)
    response = await http.get(feed_server.url("/gz"))
    assert response.headers["content-encoding"] == "gzip"
    assert response.content == body  # httpx inflated it
    assert int(response.headers["content-length"]) < len(body)

    bomb = feeds.gzip_bomb(5_000_000)
    feed_server.serve("/bomb", b"", raw_gzip=bomb)
    async with http.stream("GET", feed_server.url("/bomb")) as streamed:
        raw = b"".join([chunk async for chunk in streamed.aiter_raw()])
    assert raw == bomb
    assert len(bomb) < 50_000
    assert len(gzip.decompress(bomb)) == 5_000_000


async def test_redirects_status_changes_and_removal(
    feed_server: FeedServer, http: httpx.AsyncClient
) -> None:
    feed_server.serve("/target", "final")
    feed_server.redirect("/old", feed_server.url("/target"), status=301)
    feed_server.redirect("/evil", "http://10.0.0.1/")
    response = await http.get(feed_server.url("/old"))
    assert (response.status_code, response.headers["location"]) == (301, feed_server.url("/target"))
    followed = await http.get(feed_server.url("/old"), follow_redirects=True)
    assert followed.text == "final"
    assert (await http.get(feed_server.url("/evil"))).headers["location"] == "http://10.0.0.1/"

    feed_server.set_status("/target", 500)
    assert (await http.get(feed_server.url("/target"))).status_code == 500
    feed_server.set_status("/new", 410)
    assert (await http.get(feed_server.url("/new"))).status_code == 410
    feed_server.remove("/target")
    assert (await http.get(feed_server.url("/target"))).status_code == 404


async def test_slow_drip_and_sized_bodies(feed_server: FeedServer, http: httpx.AsyncClient) -> None:
    feed_server.slow_drip("/drip", chunk=b"<", interval=0.05, total_chunks=1000)
    received = b""
    async with http.stream("GET", feed_server.url("/drip")) as response:
        async for chunk in response.aiter_raw():
            received += chunk
            if len(received) >= 3:
                break  # a deadline-enforcing client gives up mid-body
    assert received.startswith(b"<<<")

    feed_server.sized("/big", 300_000)
    big = await http.get(feed_server.url("/big"))
    assert len(big.content) == 300_000
    assert big.headers["content-length"] == "300000"
    feed_server.sized("/chunked", 200_000, declare_length=False)
    chunked = await http.get(feed_server.url("/chunked"))
    assert len(chunked.content) == 200_000
    assert "content-length" not in chunked.headers


async def test_delayed_serve_lets_concurrent_requests_overlap(
    feed_server: FeedServer, http: httpx.AsyncClient
) -> None:
    feed_server.serve("/slow", "ok", delay=0.2)
    results = await asyncio.gather(*(http.get(feed_server.url("/slow")) for _ in range(3)))
    assert [r.text for r in results] == ["ok"] * 3
    assert feed_server.request_count("/slow") == 3


# ============================================================== feed builders


def test_rss_builder_escapes_and_parses() -> None:
    when = datetime(2024, 3, 1, 8, 30, tzinfo=UTC)
    body = feeds.rss(
        [
            {
                "title": "Tom & Jerry <3",
                "link": "https://example.com/a?x=1&y=2",
                "guid": "id-1",
                "pubdate": when,
                "description": "<b>bold</b>",
            },
            {"title": "No date", "link": "https://example.com/b", "pubdate": None},
        ],
        title="Feed & co",
    )
    DET.fromstring(body)  # well-formed
    parsed: Any = feedparser.parse(body)
    assert parsed.bozo == 0
    assert parsed.feed.title == "Feed & co"
    first, second = parsed.entries
    assert first.title == "Tom & Jerry <3"
    assert first.link == "https://example.com/a?x=1&y=2"
    assert first.id == "id-1"
    assert datetime.fromtimestamp(calendar.timegm(first.published_parsed), UTC) == when
    assert "<b>bold</b>" in first.summary
    assert "published_parsed" not in second
    with pytest.raises(ValueError, match="unknown item keys"):
        feeds.rss([{"titel": "typo"}])


def test_atom_builder_parses() -> None:
    when = datetime(2024, 3, 1, 8, 30)  # naive means UTC
    body = feeds.atom(
        [{"title": "A <1>", "link": "https://example.com/1", "guid": "urn:x:1", "pubdate": when}]
    )
    parsed: Any = feedparser.parse(body)
    assert parsed.bozo == 0
    assert parsed.version == "atom10"
    entry = parsed.entries[0]
    assert (entry.title, entry.link, entry.id) == ("A <1>", "https://example.com/1", "urn:x:1")
    published = datetime.fromtimestamp(calendar.timegm(entry.published_parsed), UTC)
    assert published == when.replace(tzinfo=UTC)


def test_html_page_and_big_feed() -> None:
    page = feeds.html_page_with_feed_link("/feed.xml", "My & site")
    assert 'href="/feed.xml"' in page
    assert 'type="application/rss+xml"' in page
    assert "My &amp; site" in page
    parsed: Any = feedparser.parse(feeds.big_feed(50))
    assert len(parsed.entries) == 50
    assert len({e.id for e in parsed.entries}) == 50


def test_hostile_documents_are_what_they_claim() -> None:
    with pytest.raises(EntitiesForbidden):
        DET.fromstring(feeds.billion_laughs())
    xxe = feeds.external_entity("/etc/passwd")
    assert b'SYSTEM "file:///etc/passwd"' in xxe
    with pytest.raises((EntitiesForbidden, DTDForbidden)):
        DET.fromstring(xxe, forbid_dtd=True)
    bomb = feeds.gzip_bomb(1_000_000)
    inflated = zlib.decompress(bomb, 16 + zlib.MAX_WBITS)
    assert len(inflated) == 1_000_000
    assert inflated.startswith(b"<?xml")


# ============================================================== FakeBotAPI: flood limits, 5xx


class _FrozenClock:
    """The fake's flood-limit clock, moved by hand so bucket arithmetic is exact."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def frozen() -> _FrozenClock:
    return _FrozenClock()


@pytest.fixture
async def limited(frozen: _FrozenClock) -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI(enforce_limits=True, clock=frozen) as fake:
        for user_id in range(1, 100):  # users who started the bot: it may write to them
            fake.start_private_chat(user_id)
        yield fake


@pytest.fixture
async def limited_bot(limited: FakeBotAPI) -> AsyncIterator[Bot]:
    async with Bot(limited.token, base_url=f"{limited.base_url}/bot") as ptb_bot:
        yield ptb_bot


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_flood_limit_per_bot_is_30_a_second(
    limited: FakeBotAPI, limited_bot: Bot, frozen: _FrozenClock
) -> None:
    for chat in range(1, 31):
        await limited_bot.send_message(chat, "x")
    with pytest.raises(RetryAfter) as info:
        await limited_bot.send_message(31, "x")
    assert _retry_seconds(info.value) == 1
    assert limited.limit_hits_by_scope == {"bot": 1, "group": 0, "chat": 0}
    assert 31 not in {m["chat_id"] for m in limited.sent_messages()}  # refused = not posted
    frozen.now += 1 / 30  # one token back
    await limited_bot.send_message(31, "x")
    with pytest.raises(RetryAfter):
        await limited_bot.send_message(32, "x")
    assert limited.limit_hits == 2
    assert (await limited_bot.get_me()).is_bot  # other methods are not counted


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_flood_limit_per_group_is_20_a_minute(
    limited: FakeBotAPI, limited_bot: Bot, frozen: _FrozenClock
) -> None:
    limited.set_limits(per_chat_per_s=100, per_chat_burst=100)  # isolate the group rule
    for n in range(20):  # at one instant: the bot's own burst (30) allows it
        await limited_bot.send_message(-1001234, f"m{n}")
    with pytest.raises(RetryAfter) as info:
        await limited_bot.send_message(-1001234, "one too many")
    assert _retry_seconds(info.value) == 3  # one token per 3 s
    await limited_bot.send_message(-1005678, "another group is fine")
    await limited_bot.send_message(7, "so is a private chat")
    frozen.now += 3
    await limited_bot.send_message(-1001234, "after the wait")
    assert limited.limit_hits_by_scope == {"bot": 0, "group": 1, "chat": 0}
    assert len(limited.sent_messages(-1001234)) == 21


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_flood_limit_per_chat_allows_a_burst_of_3_then_1_a_second(
    limited: FakeBotAPI, limited_bot: Bot, frozen: _FrozenClock
) -> None:
    for n in range(3):
        await limited_bot.send_message(9, f"m{n}")
    with pytest.raises(RetryAfter) as info:
        await limited_bot.send_message(9, "m3")
    assert _retry_seconds(info.value) == 1
    await limited_bot.send_message(10, "other chats are not affected")
    frozen.now += 1
    await limited_bot.send_message(9, "m3")
    with pytest.raises(RetryAfter):
        await limited_bot.send_message(9, "m4")
    assert limited.limit_hits_by_scope["chat"] == 2
    statuses = [c.status for c in limited.calls_to("sendMessage") if c.params["chat_id"] == 9]
    assert statuses == [200, 200, 200, 429, 200, 429]


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_flood_limits_are_off_by_default_and_can_be_switched(
    fake_api: FakeBotAPI, bot: Bot
) -> None:
    for n in range(40):
        await bot.send_message(5, f"m{n}")  # 40 into one chat at once: the default fake allows
    assert fake_api.limit_hits == 0
    fake_api.set_limits(per_chat_burst=1)
    assert fake_api.enforce_limits
    await bot.send_message(6, "first")
    with pytest.raises(RetryAfter):
        await bot.send_message(6, "second")
    fake_api.set_limits(enforce=False)
    await bot.send_message(6, "second")
    with pytest.raises(ValueError, match="per_chat_per_s"):
        fake_api.set_limits(per_chat_per_s=0)
    with pytest.raises(TypeError):
        fake_api.set_limits(per_planet=3)


async def test_injected_502_answers_like_telegrams_front_end(
    fake_api: FakeBotAPI, bot: Bot, http: httpx.AsyncClient
) -> None:
    fake_api.fail_next("sendMessage", 502, times=2)
    fake_api.fail_next("sendMessage", 500)
    for _ in range(2):
        with pytest.raises(NetworkError, match="Bad Gateway") as info:
            await bot.send_message(12, "hi")
        assert not isinstance(info.value, BadRequest)
    with pytest.raises(NetworkError, match="Internal Server Error"):
        await bot.send_message(12, "hi")
    assert (await bot.send_message(12, "hi")).text == "hi"
    assert [c.status for c in fake_api.calls_to("sendMessage")] == [502, 502, 500, 200]
    assert len(fake_api.sent_messages(12)) == 1

    fake_api.fail_next("getMe", 504)
    fake_api.fail_next("getMe", 502, body="json")
    page = await http.post(_api(fake_api, "getMe"))
    assert page.status_code == 504
    assert page.headers["content-type"].startswith("text/html")
    assert "<title>504 Gateway Timeout</title>" in page.text
    as_json = await http.post(_api(fake_api, "getMe"))
    assert as_json.json() == {"ok": False, "error_code": 502, "description": "Bad Gateway"}
    with pytest.raises(ValueError, match="times"):
        fake_api.fail_next("getMe", 502, times=0)
    with pytest.raises(ValueError, match="HTML"):
        fake_api.fail_next("getMe", 429, body="html")


async def test_injected_3s_delay_is_survived_by_a_patient_client(
    fake_api: FakeBotAPI, bot: Bot
) -> None:
    fake_api.set_delay("sendMessage", 3)
    with pytest.raises(telegram.error.TimedOut):
        await bot.send_message(13, "impatient", read_timeout=1)
    message = await bot.send_message(13, "patient", read_timeout=10)
    assert message.text == "patient"
    # The fake drops a request whose client left (Telegram might still have posted it).
    assert [c.status for c in fake_api.calls_to("sendMessage")] == [499, 200]
    assert len(fake_api.sent_messages(13)) == 1


async def test_standalone_flood_limits_and_control_endpoints() -> None:
    token = "556:" + "D" * 35
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.helpers.fake_bot_api",
        "--port",
        "0",
        "--token",
        token,
        "--enforce-limits",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
        base = line.removeprefix("READY ")
        async with httpx.AsyncClient(timeout=5) as client:
            started = await client.post(f"{base}/_control/started", json={"user_ids": [6]})
            assert started.json() == {"ok": True, "result": True}
            state = (await client.get(f"{base}/_control/limits")).json()["result"]
            assert state["enforce"] is True and state["limits"]["per_chat_burst"] == 3
            changed = await client.post(f"{base}/_control/limits", json={"per_chat_burst": 1})
            assert changed.json()["result"]["limits"]["per_chat_burst"] == 1
            send = f"{base}/bot{token}/sendMessage"
            first = await client.post(send, data={"chat_id": 6, "text": "x"})
            second = await client.post(send, data={"chat_id": 6, "text": "x"})
            assert (first.status_code, second.status_code) == (200, 429)
            assert second.json()["parameters"]["retry_after"] == 1
            hits = (await client.get(f"{base}/_control/limits")).json()["result"]["hits"]
            assert hits == {"bot": 0, "group": 0, "chat": 1}
            await client.post(f"{base}/_control/limits", json={"enforce": False})
            await client.post(f"{base}/_control/fail", json={"method": "getMe", "status": 502})
            assert (await client.post(f"{base}/bot{token}/getMe")).status_code == 502
            await client.post(f"{base}/_control/delay", json={"method": "getMe", "seconds": 5})
            with pytest.raises(httpx.ReadTimeout):
                await client.post(f"{base}/bot{token}/getMe", timeout=0.3)
            bad = await client.post(f"{base}/_control/limits", json={"per_chat_burst": -1})
            assert bad.status_code == 400
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) == 0
