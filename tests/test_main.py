"""``python -m bot`` as a real subprocess against the fake Bot API."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from bot.storage import StorageService
from tests.helpers.bot_runner import start_bot_process, subprocess_env
from tests.helpers.fake_bot_api import FakeBotAPI

ROOT = Path(__file__).resolve().parent.parent


def bot_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return subprocess_env(tmp_path, LOG_LEVEL="DEBUG", **extra)


async def run_to_exit(env: dict[str, str], cwd: Path) -> tuple[int, str]:
    proc = await start_bot_process(env, cwd)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    return proc.returncode or 0, out.decode()


@pytest.mark.slow
async def test_start_and_help_end_to_end_then_clean_sigterm(
    fake_api: FakeBotAPI, tmp_path: Path
) -> None:
    env = bot_env(
        tmp_path, TELEGRAM_BOT_TOKEN=fake_api.token, TELEGRAM_API_BASE_URL=fake_api.base_url
    )
    proc = await start_bot_process(env, tmp_path)
    try:
        fake_api.send_command("/start", chat_id=501, user_id=501)
        [start] = await fake_api.wait_for_messages(1, chat_id=501, timeout=20)
        fake_api.send_command("/help", chat_id=501, user_id=501)
        messages = await fake_api.wait_for_messages(2, chat_id=501, timeout=20)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=20)
    log = out.decode()
    assert "Hi!" in start["plain"]
    help_text = messages[1]["plain"]
    for command in ("/news", "/add", "/list", "/remove", "/digest", "/stats", "/help"):
        assert command in help_text
    assert proc.returncode == 0, log
    assert "newsbot stopped" in log
    # The token never appears, although DEBUG logging was on and every request URL holds it.
    assert fake_api.token not in log
    assert fake_api.token.split(":")[1] not in log
    # State was written with the chat that said /start: a fresh load of the files sees it.
    assert (tmp_path / "data" / "snapshot.json").exists()
    stored = StorageService(tmp_path / "data", tmp_path / "backups", compact_in_process=False)
    await stored.load()
    try:
        assert stored.chat(501) is not None
    finally:
        await stored.close()


@pytest.mark.parametrize(
    ("extra", "variable"),
    [
        ({}, "TELEGRAM_BOT_TOKEN"),
        ({"TELEGRAM_BOT_TOKEN": "123456789:short"}, "TELEGRAM_BOT_TOKEN"),
        (
            {"TELEGRAM_BOT_TOKEN": "123456789:" + "S" * 35, "FEED_POLL_INTERVAL": "5"},
            "FEED_POLL_INTERVAL",
        ),
        (
            {"TELEGRAM_BOT_TOKEN": "123456789:" + "S" * 35, "NEWS_RATE_LIMIT": "lots"},
            "NEWS_RATE_LIMIT",
        ),
    ],
)
async def test_bad_configuration_exits_2_with_one_line(
    tmp_path: Path, extra: dict[str, str], variable: str
) -> None:
    code, out = await run_to_exit(bot_env(tmp_path, **extra), tmp_path)
    assert code == 2
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    assert variable in lines[0]
    token = extra.get("TELEGRAM_BOT_TOKEN")
    if token:
        assert token not in out
        assert token.split(":")[1] not in out
    assert not (tmp_path / "data").exists()


async def test_dotenv_file_in_working_directory_is_honoured(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "TELEGRAM_BOT_TOKEN=123456789:" + "S" * 35 + "\nBACKUP_KEEP=zero\n"
    )
    code, out = await run_to_exit(bot_env(tmp_path), tmp_path)
    assert code == 2
    assert "BACKUP_KEEP" in out
