"""/start and /help through the real Application: every command the bot answers is taught.

The list of commands comes from the running application's ``CommandHandler``s, so a command
added later without a line in /help fails here.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from telegram.ext import CommandHandler

from bot.config import Settings
from bot.i18n import LANGUAGES
from bot.models import Delivery
from bot.storage import get_storage_service
from tests.helpers.bot_runner import AnyApp, running_bot
from tests.helpers.conversation import say
from tests.helpers.fake_bot_api import FakeBotAPI

SettingsFactory = Callable[..., Settings]
START_GREETING = (
    "👋 Hi! I collect news from RSS, Atom and JSON feeds and post it here.\n"
    "Try /news now, or /add a feed of your own.\n\n"
)


def registered_commands(app: AnyApp) -> set[str]:
    """Every command a CommandHandler of the application answers."""
    return {
        command
        for group in app.handlers.values()
        for handler in group
        if isinstance(handler, CommandHandler)
        for command in handler.commands
    }


def taught(text: str) -> set[str]:
    """Commands mentioned as ``/name`` in a help text."""
    return set(re.findall(r"(?<![\w/])/([a-z_]+)\b", text))


async def test_help_teaches_every_registered_command(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings()) as app:
        commands = registered_commands(app)
        text = await say(fake_api, "/help", 80)
    assert {"add", "news", "digest", "pause", "resume", "timezone"} <= commands  # sanity
    missing = commands - taught(text)
    assert not missing, f"/help does not mention {sorted(missing)}"
    unknown = taught(text) - commands
    assert not unknown, f"/help mentions commands nobody answers: {sorted(unknown)}"
    # Each line that teaches a command gives an example or says what it does.
    for command in commands:
        lines = [line for line in text.splitlines() if line.startswith(f"/{command}")]
        assert lines, f"no line of /help starts with /{command}"
        assert all(" — " in line for line in lines), lines


async def test_start_greets_registers_the_chat_and_teaches_the_commands(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings()):
        help_text = await say(fake_api, "/help", 81)
        started = await say(fake_api, "/start", 82)
        chat = get_storage_service().chat(82)
    assert started == START_GREETING + help_text
    assert chat is not None
    assert (chat.type, chat.active, chat.paused) == ("private", True, False)
    assert not chat.delivery.is_digest


async def test_start_in_a_digest_bot_uses_the_operators_default_delivery(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    settings = bot_settings(default_delivery=Delivery("every", interval_s=3600))
    async with running_bot(settings):
        await say(fake_api, "/start", 83)
        chat = get_storage_service().chat(83)
        shown = await say(fake_api, "/digest", 83)
    assert chat is not None
    assert (chat.delivery.mode, chat.delivery.interval_s) == ("every", 3600)
    assert chat.next_digest_at is not None
    assert shown.startswith("Delivery: a digest every 1h\nNext digest: ")


async def test_the_command_menu_only_offers_commands_the_bot_answers(
    fake_api: FakeBotAPI, bot_settings: SettingsFactory
) -> None:
    async with running_bot(bot_settings()) as app:
        commands = registered_commands(app)
        calls = await fake_api.wait_for_call("setMyCommands", count=len(LANGUAGES))
    menus = {call.params.get("language_code"): call.params["commands"] for call in calls}
    assert set(menus) == {None, "ru"}  # English is the default menu
    offered = {c["command"] for c in menus[None]}
    assert offered
    assert offered <= commands
    assert commands - offered <= {"start", "stats"}  # implicit, and operators only
    assert [c["command"] for c in menus["ru"]] == [c["command"] for c in menus[None]]
    russian = {c["command"]: c["description"] for c in menus["ru"]}
    assert russian["news"] == "Свежие новости из лент этого чата"
    assert russian["language"] == "Язык бота в этом чате"
