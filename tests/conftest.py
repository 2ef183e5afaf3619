"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.config import Settings
from bot.storage import StorageService, configure_storage, reset_storage_service
from tests.helpers.bot_runner import make_settings
from tests.helpers.fake_bot_api import FakeBotAPI
from tests.helpers.feed_server import FeedServer


# --- storage fixture (bot/storage/); keep this block self-contained --------------------------
@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[StorageService]:
    """Yield the loaded StorageService singleton on tmp_path; close and reset it afterwards.

    Compaction runs in a thread here (no worker process to start); tests/storage/ has one test
    with the real process pool.
    """
    reset_storage_service()
    service = configure_storage(
        tmp_path / "data", tmp_path / "backups", backup_keep=3, compact_in_process=False
    )
    await service.load()
    try:
        yield service
    finally:
        await service.close()
        reset_storage_service()


# --- end of storage fixture ------------------------------------------------------------------


# --- running-bot fixtures (tests/helpers/bot_runner.py); keep this block self-contained -----
@pytest.fixture
def bot_settings(tmp_path: Path, fake_api: FakeBotAPI) -> Callable[..., Settings]:
    """Build Settings for a bot talking to ``fake_api``, state under tmp_path; kwargs override."""

    def make(**overrides: Any) -> Settings:
        return make_settings(tmp_path, fake_api.base_url, fake_api.token, **overrides)

    return make


# --- end of running-bot fixtures -------------------------------------------------------------


# --- fake servers (tests/helpers/fake_bot_api.py, feed_server.py); keep self-contained -------
@pytest_asyncio.fixture
async def fake_api() -> AsyncIterator[FakeBotAPI]:
    """A started fake Telegram Bot API; give PTB ``base_url=f"{fake_api.base_url}/bot"``."""
    async with FakeBotAPI() as fake:
        yield fake


@pytest_asyncio.fixture
async def feed_server() -> AsyncIterator[FeedServer]:
    """A started local feed server; ``feed_server.url(path)`` after ``serve(path, ...)``."""
    async with FeedServer() as server:
        yield server


# --- end of fake servers -----------------------------------------------------------------------
