"""/language and Russian replies and posts, through the real Application and the fake Bot API.

Who reads what: replies follow the chat's ``/language`` choice, else the asker's Telegram
language; posts (nobody asked) follow the chat's choice, else English; a private chat records
its user's language when it first talks to the bot. The texts asserted are exactly what a
Russian-speaking user reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.config import Settings
from bot.models import Chat
from bot.storage import get_storage_service
from tests.helpers.bot_runner import running_bot
from tests.helpers.conversation import poll_now, say
from tests.helpers.fake_bot_api import FakeBotAPI
from tests.helpers.feed_server import FeedServer
from tests.helpers.feeds import rss

SettingsFactory = Callable[..., Settings]
RU: dict[str, Any] = {"language_code": "ru"}
CHOICES_RU = (
    "/language en — English\n"
    "/language ru — Русский\n"
    "/language auto — у каждого свой язык из настроек Telegram"
)
CHOICES_EN = (
    "/language en — English\n"
    "/language ru — Русский\n"
    "/language auto — each person's own Telegram language"
)
RUSSIAN = "Язык: Русский — для ответов и публикаций в этом чате."
ENGLISH = "Language: English, for replies and posts in this chat."
RUSSIAN_IN_ENGLISH = "Language: Русский, for replies and posts in this chat."
AUTO_RU = (
    "Язык: автоматически. Отвечаю каждому на языке его Telegram (по-английски, если этого "
    "языка я не знаю); публикации — на английском."
)
AUTO_EN = (
    "Language: automatic. Replies follow each person's Telegram language (English if I don't "
    "speak it); posts are in English."
)
DIGEST_USAGE_RU = (
    "Использование: /digest — показать, как этот чат получает новости\n"
    "/digest every 2h · /digest every 30m — дайджест через равные промежутки времени\n"
    "/digest at 08:00 — ежедневный дайджест в это время (по часовому поясу чата, см. /timezone)\n"
    "/digest off — снова присылать сразу (каждую новость, как только она найдена)"
)
RU_MONTHS = ("янв.", "февр.", "мар.", "апр.", "мая", "июн.",
             "июл.", "авг.", "сент.", "окт.", "нояб.", "дек.")  # fmt: skip


def stored(chat_id: int) -> Chat:
    chat = get_storage_service().chat(chat_id)
    assert chat is not None
    return chat


def hours_old(prefix: str, n: int) -> list[dict[str, object]]:
    """Items 1h05m, 2h05m… old: their ages read "1 ч назад", "2 ч назад"…"""
    now = datetime.now(UTC)
    return [
        {
            "title": f"{prefix} {i}",
            "link": f"https://{prefix.lower()}.example/{i}",
            "guid": f"{prefix}-{i}",
            "pubdate": now - timedelta(hours=i + 1, minutes=5),
        }
        for i in range(n)
    ]


# --------------------------------------------------------------------------- /language


async def test_a_private_chat_speaks_its_users_language_and_can_switch(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings()):
        shown = await say(fake_api, "/language", 501, **RU)
        recorded = stored(501).language
        to_english = await say(fake_api, "/language en", 501, **RU)
        chosen = stored(501).language
        news = await say(fake_api, "/news", 501, **RU)
        back = await say(fake_api, "/language auto", 501, **RU)
        auto = stored(501).language
    assert shown == f"{RUSSIAN}\n\n{CHOICES_RU}"
    assert recorded == "ru"  # a private chat is its user: posts come in Russian too
    assert to_english == f"✅ {ENGLISH}"
    assert chosen == "en"
    assert news == "This chat follows no feeds yet. Add one with /add <url>."
    assert back == f"✅ {RUSSIAN}"  # "auto" takes the user's Telegram language again
    assert auto == "ru"


@pytest.mark.parametrize(
    ("code", "recorded"), [("ru-RU", "ru"), ("en-US", "en"), ("de", None), (None, None)]
)
async def test_a_new_private_chat_records_a_language_the_bot_speaks(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, code: str | None, recorded: str | None
) -> None:
    async with running_bot(bot_settings()):
        answer = await say(fake_api, "/news", 502, language_code=code)
        chat = stored(502)
    assert chat.language == recorded
    expected = {
        "ru": "Этот чат пока не подписан ни на одну ленту. Добавьте ленту: /add <ссылка>.",
        "en": "This chat follows no feeds yet. Add one with /add <url>.",
        None: "This chat follows no feeds yet. Add one with /add <url>.",
    }
    assert answer == expected[recorded]


async def test_in_a_group_only_administrators_choose_and_everyone_reads_the_choice(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    group, member, admin = -4101, 80, 81
    fake_api.set_admin(group, admin)
    in_group: dict[str, Any] = {"chat_type": "supergroup", "chat_title": "Читатели"}
    async with running_bot(bot_settings()):
        shown = await say(fake_api, "/language", group, member, **in_group, **RU)
        denied = await say(fake_api, "/language ru", group, member, **in_group, **RU)
        unchanged = stored(group).language
        chosen = await say(fake_api, "/language ru", group, admin, **in_group)
        russian = stored(group).language
        english_user = await say(fake_api, "/language", group, member, **in_group)
        unknown = await say(fake_api, "/language fr", group, admin, **in_group)
        auto = await say(fake_api, "/language auto", group, admin, **in_group)
        cleared = stored(group).language
        english_again = await say(fake_api, "/language", group, admin, **in_group)
    assert shown == f"{AUTO_RU}\n\n{CHOICES_RU}"  # no choice yet: the asker's language
    assert denied == "Менять ленты и доставку в этом чате могут только его администраторы."
    assert unchanged is None  # a group records nobody's language
    assert chosen == f"✅ {RUSSIAN}"  # the confirmation already speaks the new language
    assert russian == "ru"
    assert english_user == f"{RUSSIAN}\n\n{CHOICES_RU}"  # the chat's choice wins
    assert unknown == f"Такого языка я не знаю. Выберите один из этих:\n{CHOICES_RU}"
    assert auto == f"✅ {AUTO_EN}"
    assert cleared is None
    assert english_again == f"{AUTO_EN}\n\n{CHOICES_EN}"


async def test_a_channel_chooses_its_language_in_a_post(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings()):
        fake_api.channel_post("/language ru", chat_id=-1004101)
        [answer] = await fake_api.wait_for_messages(1, chat_id=-1004101)
        chat = stored(-1004101)
    assert answer["plain"] == f"✅ {RUSSIAN}"
    assert chat.language == "ru"


async def test_a_channels_language_is_chosen_from_a_private_chat(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    user, channel = 611, -1001234500611
    fake_api.set_chat(channel, "channel", title="Мой канал", username="mychannel")
    fake_api.set_admin(channel, fake_api.bot_id, "administrator")
    fake_api.set_admin(channel, user, "creator")
    async with running_bot(bot_settings()):
        shown = await say(fake_api, "/language @mychannel", user)
        chosen = await say(fake_api, "/language @mychannel ru", user)
        russian, own = stored(channel).language, get_storage_service().chat(user)
        again = await say(fake_api, "/language @mychannel", user)
        auto = await say(fake_api, "/language @mychannel auto", user)
        cleared = stored(channel).language
        in_channel = fake_api.sent_messages(channel)
    assert shown == f"@mychannel\n{AUTO_EN}\n\n{CHOICES_EN}"
    # Read in the private chat, whose language stays English: only the channel's changed.
    assert chosen == f"@mychannel\n✅ {RUSSIAN_IN_ENGLISH}"
    assert russian == "ru"
    assert own is None or own.language != "ru"  # the private chat's language is untouched
    assert again == f"@mychannel\n{RUSSIAN_IN_ENGLISH}\n\n{CHOICES_EN}"
    assert auto == f"@mychannel\n✅ {AUTO_EN}"  # a channel has no user language to take
    assert cleared is None
    assert in_channel == []  # nothing is posted in the channel itself


async def test_a_non_administrator_cannot_choose_a_channels_language(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    user, channel = 612, -1001234500612
    fake_api.set_chat(channel, "channel", title="Someone's", username="theirchannel")
    fake_api.set_admin(channel, fake_api.bot_id, "administrator")
    async with running_bot(bot_settings()):
        refused = await say(fake_api, "/language @theirchannel ru", user)
        chat = get_storage_service().chat(channel)
    assert refused == "You are not an administrator of @theirchannel."
    assert chat is None or chat.language is None


# --------------------------------------------------------------------------- Russian replies


async def test_news_in_russian_with_ages_plurals_and_reasons(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/a.xml", rss(hours_old("Alpha", 6), title="Альфа"))
    feed_server.serve("/broken.xml", b"<html>not a feed</html>", content_type="text/html")
    feeds = (feed_server.url("/a.xml"), feed_server.url("/broken.xml"))
    async with running_bot(bot_settings(default_feeds=feeds)):
        five = await say(fake_api, "/news", 503, **RU)
        two = await say(fake_api, "/news 2", 503, **RU)
        one = await say(fake_api, "/news 1", 503, **RU)
        usage = await say(fake_api, "/news 99", 503, **RU)
    note = "⚠️ 127.0.0.1: это не похоже на RSS- или Atom-ленту"
    blocks = [f"Alpha {i}\nАльфа · {i + 1} ч назад" for i in range(5)]
    assert five == f"📰 5 свежих новостей\n{note}\n\n" + "\n\n".join(blocks)
    assert two.startswith(f"📰 2 свежие новости\n{note}\n\n{blocks[0]}\n\n{blocks[1]}")
    assert one.startswith(f"📰 1 свежая новость\n{note}\n\n{blocks[0]}")
    assert usage == "Использование: /news или /news N (1–20), например /news 10"


async def test_no_news_right_now_in_russian(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/empty.xml", rss([], title="Пусто"))
    async with running_bot(bot_settings(default_feeds=(feed_server.url("/empty.xml"),))):
        answer = await say(fake_api, "/news", 504, **RU)
    assert answer == "Пока новостей нет."


async def test_digest_pause_resume_and_timezone_in_russian(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings()):
        shown = await say(fake_api, "/digest", 505, **RU)
        refused = await say(fake_api, "/digest every 5m", 505, **RU)
        every = await say(fake_api, "/digest every 2h", 505, **RU)
        due = stored(505).next_digest_at
        paused = await say(fake_api, "/pause", 505, **RU)
        resumed = await say(fake_api, "/resume", 505, **RU)
        zone_set = await say(fake_api, "/timezone europe/moscow", 505, **RU)
        unknown_zone = await say(fake_api, "/timezone Mars/Olympus_Mons", 505, **RU)
    assert shown == f"Доставка: сразу (каждая новость, как только найдена)\n\n{DIGEST_USAGE_RU}"
    assert refused == "Интервал должен быть от 15 мин до 7 дней."
    assert due is not None
    local = datetime.fromtimestamp(due, ZoneInfo("UTC"))
    when = f"{local.day} {RU_MONTHS[local.month - 1]} {local.year}\u202fг., {local:%H:%M}"
    assert every == (
        "✅ Доставка: дайджест раз в 2 ч\n"
        f"Следующий дайджест: {when} (UTC)\n"
        "Новости, найденные до него, подождут дайджеста; в промежутке ничего не публикуется."
    )
    assert paused == (
        "⏸ Пауза. Я продолжу собирать новости (храню последние 200 новостей каждой ленты) "
        "и опубликую их, когда вы скажете /resume. /news по-прежнему работает."
    )
    assert resumed == (
        "▶️ Продолжаю. Новости, найденные во время паузы, придут в следующем дайджесте."
    )
    assert re.fullmatch(r"✅ Часовой пояс: Europe/Moscow \(сейчас там \d\d:\d\d\)\.", zone_set)
    assert unknown_zone == (
        "Я не знаю такого часового пояса. Укажите название из базы IANA, например "
        "Europe/Moscow, Asia/Yekaterinburg или Europe/Berlin."
    )


# --------------------------------------------------------------------------- posts


async def test_posts_follow_the_chats_language_not_whoever_asked_last(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/posts.xml", rss(hours_old("Old", 1), title="Лента"))
    url = feed_server.url("/posts.xml")
    russian_chat, group = 506, -4102
    in_group: dict[str, Any] = {"chat_type": "group", "chat_title": "Mixed"}
    fake_api.set_admin(group, 82)
    async with running_bot(bot_settings(feed_poll_interval_s=3600)) as app:
        await say(fake_api, f"/add {url}", russian_chat, **RU)
        # A Russian speaker adds the feed in a group with no /language: posts stay English.
        await say(fake_api, f"/add {url}", group, 82, **in_group, **RU)
        feed_server.serve("/posts.xml", rss(hours_old("New", 1) + hours_old("Old", 1)))
        await poll_now(app, url)
    [russian_post] = fake_api.sent_messages(russian_chat)[1:]
    [english_post] = fake_api.sent_messages(group)[1:]
    assert "New 0" in russian_post["plain"]
    assert "1 ч назад" in russian_post["plain"]
    assert "New 0" in english_post["plain"]
    assert "1 hr. ago" in english_post["plain"]
