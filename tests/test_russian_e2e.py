"""What a Russian-speaking user reads, command by command: the real Application, the fake Bot API.

Replies follow the asker's Telegram language (``language_code="ru"``) or the chat's
``/language``; posts and notes, which nobody asked for, follow the chat's language (a private
chat records its user's). Every text asserted here is exactly what the user reads, so a
string that escapes the catalogue — or a translation that breaks a placeholder — fails here.
English stays the default: the same commands without a language answer in English.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from telegram.ext import CommandHandler

from bot.config import Settings
from bot.handlers.basic import help_text
from bot.i18n import translator
from bot.models import FeedState
from bot.storage import get_storage_service
from tests.helpers.bot_runner import AnyApp, running_bot
from tests.helpers.conversation import poll_now, press, say
from tests.helpers.fake_bot_api import FakeBotAPI, telegram_html_to_plain
from tests.helpers.feed_server import FeedServer
from tests.helpers.feeds import rss
from tests.helpers.opml_samples import opml

SettingsFactory = Callable[..., Settings]
RU: dict[str, Any] = {"language_code": "ru"}
QUIET = {"feed_poll_interval_s": 3600}
INSTANT_RU = "Новости будут публиковаться здесь сразу, как только появятся."
HELP_FIRST_RU = (
    "newsbot — новости из выбранных вами лент: публикую их здесь, как только они появляются.\n\n"
    "Чтение\n"
    "/news — 5 свежих новостей из всех лент этого чата\n"
    "/news 10 — 10 свежих (до 20)\n\n"
    "Ленты (в группах и каналах — только администраторы)\n"
)
LEGEND_RU = (
    "Кнопки: 🔇 заглушить · 🔔 вернуть · 🔎 фильтры · 📝 формат · ✏️ переименовать · 🗑 удалить"
)
FILTER_USAGE_RU = (
    "Как изменить:\n"
    "/filter include python, rust — только новости, где упоминается одно из них\n"
    "/filter exclude реклама, партнёрский материал — без новостей, где они упоминаются\n"
    "/filter clear — без фильтров"
)


def stories(title: str, *items: tuple[str, str]) -> bytes:
    """A feed titled ``title`` with ``(item title, description)`` items, newest first."""
    return rss(
        [{"title": name, "link": f"https://news.example/{n}", "guid": f"{title}-{name}",
          "description": text or None}
         for n, (name, text) in enumerate(items)],
        title=title,
    )  # fmt: skip


def commands_of(app: AnyApp) -> set[str]:
    """Every command a CommandHandler of the application answers."""
    return {
        command
        for group in app.handlers.values()
        for handler in group
        if isinstance(handler, CommandHandler)
        for command in handler.commands
    }


# --------------------------------------------------------------------------- /help, /start


async def test_help_and_start_in_russian_teach_every_command_and_english_stays_default(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings()) as app:
        commands = commands_of(app)
        russian = await say(fake_api, "/help", 601, **RU)
        started = await say(fake_api, "/start", 602, **RU)
        nobody = await say(fake_api, "/help", 603, language_code=None)
    assert russian.startswith(HELP_FIRST_RU)
    assert started == (
        "👋 Привет! Я собираю новости из RSS-, Atom- и JSON-лент и публикую их здесь.\n"
        "Попробуйте /news прямо сейчас или добавьте свою ленту через /add.\n\n" + russian
    )
    # The Russian /help, like the English one, names every command with what it does.
    taught = set(re.findall(r"(?<![\w/])/([a-z_]+)\b", russian))
    assert taught == commands
    for command in commands:
        lines = [line for line in russian.splitlines() if line.startswith(f"/{command}")]
        assert lines and all(" — " in line for line in lines), (command, lines)
    assert not re.search(r"[A-Za-z]{4,} (?:the|a|of|to|and) ", russian)  # no English left
    assert nobody == telegram_html_to_plain(help_text(translator("en")))


# --------------------------------------------------------------------------- /add, /remove


async def test_add_and_remove_in_russian_with_a_failure_reason(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/alpha.xml", stories("Альфа", ("Первая", "")))
    feed_server.serve("/gone.xml", b"gone", status=404)
    alpha, gone = feed_server.url("/alpha.xml"), feed_server.url("/gone.xml")
    async with running_bot(bot_settings(**QUIET)):
        usage = await say(fake_api, "/add", 610, **RU)
        added = await say(fake_api, f"/add {alpha}", 610, **RU)
        again = await say(fake_api, f"/add {alpha}", 610, **RU)
        failed = await say(fake_api, f"/add {gone}", 610, **RU)
        remove_usage = await say(fake_api, "/remove", 610, **RU)
        no_such = await say(fake_api, "/remove 7", 610, **RU)
        removed = await say(fake_api, "/remove 1", 610, **RU)
        english = await say(fake_api, "/add", 611, language_code=None)
    assert usage == (
        "Использование: /add <адрес ленты или страницы>, например /add https://example.com/feed.xml"
    )
    assert added == f"✅ Подписка оформлена: Альфа.\n{INSTANT_RU}"
    assert again == f"Эта лента уже есть в подписках: {alpha}."
    assert failed == "❌ Не удалось добавить ленту: сервер ответил кодом 404."
    assert remove_usage == (
        "Использование: /remove <номер из /list или адрес ленты>, например /remove 2"
    )
    assert no_such == "Такой ленты здесь нет. Номера лент — в /list."
    assert removed == f"🗑 Лента {alpha} удалена."
    assert english == "Usage: /add <feed or page URL>, e.g. /add https://example.com/feed.xml"


async def test_add_of_several_addresses_answers_line_by_line_in_russian(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/a.xml", stories("Альфа", ("Первая", "")))
    feed_server.serve("/b.xml", stories("Бета", ("Вторая", "")))
    feed_server.serve("/gone.xml", b"gone", status=404)
    a, b, gone = (feed_server.url(p) for p in ("/a.xml", "/b.xml", "/gone.xml"))
    async with running_bot(bot_settings(**QUIET)):
        await say(fake_api, f"/add {b}", 612, **RU)
        answer = await say(fake_api, f"/add {a}\n{b}\n{gone}", 612, **RU)
        too_many = await say(fake_api, "/add " + " ".join(f"{a}?{n}" for n in range(21)), 612, **RU)
    assert answer == (
        "✅ Подписка оформлена: Альфа\n"
        f"☑️ Уже в подписках: {b}\n"
        f"❌ {gone}: сервер ответил кодом 404\n"
        f"{INSTANT_RU}"
    )
    assert too_many == (
        "Адресов: 21, а одна команда /add принимает не больше 20. Отправьте их несколькими "
        "командами /add или OPML-файлом через /import."
    )


# --------------------------------------------------------------------------- /list, /filter


async def test_list_pages_and_buttons_in_russian(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    urls = [f"https://feeds.example/{n:02d}.xml" for n in range(1, 13)]
    async with running_bot(bot_settings()):
        storage = get_storage_service()
        await storage.ensure_chat(620, "private", "Читатель")
        for n, url in enumerate(urls, 1):
            storage.set_feed_state(FeedState(url=url, title=f"Лента {n:02d}"))
            assert await storage.subscribe(620, url, limit=100) == "added"
        page = await say(fake_api, "/list", 620, **RU)
        message_id = fake_api.sent_messages(620)[-1]["message_id"]
        labels = fake_api.buttons.labels(620, message_id)
        # Presses carry no language of their own here: the chat's (recorded by /list) counts.
        own_format = await press(fake_api, 620, message_id, "1 📝")
        await press(fake_api, 620, message_id, "1 🔎")
        filters_view = fake_api.buttons.record(620, message_id)["plain"]
        filters_labels = fake_api.buttons.labels(620, message_id)
        await press(fake_api, 620, message_id, "◀ К списку")
        await press(fake_api, 620, message_id, "1 🗑")
        confirm = fake_api.buttons.record(620, message_id)["plain"]
        confirm_labels = fake_api.buttons.labels(620, message_id)
        toast = await press(fake_api, 620, message_id, "🗑 Да, удалить")
        left = storage.feed_urls(620)
    rows = "\n".join(f"{n}. Лента {n:02d}\n   {urls[n - 1]}" for n in range(1, 11))
    assert page == f"Ваши ленты · 1–10 из 12\n{rows}\n\nСтраница 1 из 2. {LEGEND_RU}"
    assert labels[0] == ["1 🔇", "1 🔎", "1 📝", "1 ✏️", "1 🗑"]
    assert labels[-1] == ["2 ▶"]
    assert filters_view == (
        "🔎 Фильтры ленты 1. Лента 01\nСвоих фильтров нет: публикуются все новости.\n\n"
        + FILTER_USAGE_RU.replace("/filter ", "/filter 1 ")
    )
    assert filters_labels == [["◀ К списку"]]
    assert confirm == f"🗑 Отписаться от ленты 1. Лента 01?\n{urls[0]}"
    assert confirm_labels == [["🗑 Да, удалить", "◀ Назад"]]
    assert own_format["text"] == "📝 Лента «Лента 01» публикуется в формате title."
    assert toast["text"] == "🗑 Лента «Лента 01» удалена."
    assert left == urls[1:]


async def test_filter_usage_and_view_in_russian(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings()):
        usage = await say(fake_api, "/filter sometimes python", 621, **RU)
        empty = await say(fake_api, "/filter include ,", 621, **RU)
        saved = await say(fake_api, "/filter exclude реклама", 621, **RU)
        view = await say(fake_api, "/filter", 621, **RU)
    assert usage == FILTER_USAGE_RU
    assert empty == "Укажите хотя бы одно слово или фразу, например /filter include python, rust"
    assert saved == (
        "✅ Сохранено. Фильтры этого чата (для всех лент):\nБез новостей, где упоминается: реклама"
    )
    assert view == (
        "🔎 Фильтры этого чата (для всех лент):\n"
        "Без новостей, где упоминается: реклама\n\n"
        f"{FILTER_USAGE_RU}\n\n"
        "Слово совпадает только целиком, в любом регистре, фраза — её слова подряд; китайский, "
        "японский, корейский и тайский текст ищется в любом месте. Поиск идёт по заголовкам и "
        "описаниям."
    )


# --------------------------------------------------------------------------- /format, /previews


async def test_format_and_previews_in_russian(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings()):
        shown = await say(fake_api, "/format", 630, **RU)
        full = await say(fake_api, "/format full", 630, **RU)
        unknown = await say(fake_api, "/format huge", 630, **RU)
        off = await say(fake_api, "/previews off", 630, **RU)
        previews = await say(fake_api, "/previews", 630, **RU)
        on = await say(fake_api, "/previews on", 630, **RU)
    assert shown == (
        "Формат публикаций: summary — заголовок, источник, затем текст новости\n"
        "Превью ссылок: включено\n\n"
        "/format title — только заголовок (несколько новостей одной ленты — в одной публикации)\n"
        "/format summary — заголовок, источник, затем текст новости\n"
        "/format full — как summary, плюс первая картинка новости\n"
        "/format 2 title — свой формат для ленты 2 из /list (chat — снова формат чата)\n"
        "/previews on|off — превью статьи под каждой публикацией\n"
        "В дайджестах, /news и том, что присылает /resume, всегда только заголовки."
    )
    assert full == "✅ Формат публикаций: full — как summary, плюс первая картинка новости"
    assert unknown == (
        "Неизвестный формат «huge». Выберите один: /format title, /format summary или /format full."
    )
    assert off == "✅ Превью ссылок: выключено. Публикации будут без превью статьи."
    assert previews == (
        "Превью ссылок: выключено\n"
        "/previews on — превью статьи под каждой публикацией; /previews off — без превью"
    )
    assert on == "✅ Превью ссылок: включено. Под публикациями будет превью статьи."


# --------------------------------------------------------------------------- /import


async def test_import_summary_in_russian(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/a.xml", stories("Альфа", ("Первая", "")))
    feed_server.serve("/b.xml", stories("Бета", ("Вторая", "")))
    feed_server.serve("/gone.xml", b"gone", status=404)
    a, b, gone = (feed_server.url(p) for p in ("/a.xml", "/b.xml", "/gone.xml"))
    async with running_bot(bot_settings(**QUIET)):
        await say(fake_api, "/start", 640, **RU)  # the private chat records Russian
        before = len(fake_api.sent_messages(640))
        fake_api.files.send_document_message(
            opml([(a, "Альфа"), (b, "Бета"), (gone, "Пропавшая")]),
            chat_id=640, user_id=640, file_name="ленты.opml", caption="/import",
        )  # fmt: skip
        answer = (await fake_api.wait_for_messages(before + 1, chat_id=640, timeout=20))[before]
        usage = await say(fake_api, "/import", 640, **RU)
    assert answer["plain"] == (
        "📥 Импорт файла ленты.opml\n"
        "✅ Добавлены 2 ленты.\n"
        "❌ Не удалось добавить 1 ленту:\n"
        f"• {gone}: сервер ответил кодом 404\n"
        f"{INSTANT_RU}"
    )
    assert usage.startswith("Чтобы импортировать ленты, пришлите OPML-файл (.opml или .xml")


# --------------------------------------------------------------------------- posts and notes


async def test_an_instant_post_in_a_russian_chat_says_read_more_in_russian(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    feed_server.serve("/a.xml", stories("Альфа", ("Старая", "")))
    url = feed_server.url("/a.xml")
    async with running_bot(bot_settings(**QUIET)) as app:
        await say(fake_api, f"/add {url}", 650, **RU)
        before = len(fake_api.sent_messages(650))
        feed_server.serve(
            "/a.xml", stories("Альфа", ("Новая", "<p>Текст новости.</p>"), ("Старая", ""))
        )
        await poll_now(app, url)
        [post] = fake_api.sent_messages(650)[before:]
    assert post["plain"] == "Новая\nАльфа\n\nТекст новости.\nЧитать дальше"
    assert post["text"].endswith('\n<a href="https://news.example/0">Читать дальше</a>')


async def test_a_closed_topic_note_in_a_russian_forum(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory, feed_server: FeedServer
) -> None:
    forum, admin = -1001234500061, 661
    fake_api.make_forum(forum, title="Читатели")
    fake_api.set_admin(forum, admin)
    topic = fake_api.create_topic(forum, "Техника")
    in_forum: dict[str, Any] = {"chat_type": "supergroup", "chat_title": "Читатели"}
    feed_server.serve("/tech.xml", stories("Tech Wire", ("Old", "")))
    url = feed_server.url("/tech.xml")
    async with running_bot(bot_settings(**QUIET), rate_limit_outgoing=False) as app:
        await say(fake_api, "/language ru", forum, admin, **in_forum)
        fake_api.send_command(
            f"/add {url}", chat_id=forum, user_id=admin, chat_type="supergroup", thread_id=topic
        )
        await fake_api.wait_for_messages(2, chat_id=forum, timeout=20)
        fake_api.close_topic(forum, topic)
        feed_server.serve("/tech.xml", stories("Tech Wire", ("New", ""), ("Old", "")))
        await poll_now(app, url)
        [note] = fake_api.topic_messages(forum, None)[1:]  # after the /language answer
    assert note["plain"] == (
        "🔒 Тема для Tech Wire закрыта, поэтому новые записи ждут, пока её снова откроют (или "
        "отправьте /add со ссылкой на ленту в другой теме или здесь, в общей теме, чтобы "
        "публиковать её там)."
    )
    link = f'<a href="https://t.me/c/1234500061/{topic}">Тема</a>'
    assert note["text"].startswith(f"🔒 {link} для <b>Tech Wire</b> закрыта")
