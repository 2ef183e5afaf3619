"""Run the real PTB ``Application`` in-process against the fake Bot API.

``running_bot`` replays what ``Application.run_polling`` does (initialize → post_init →
start polling → start, and the reverse on exit) without taking over the event loop, so a
test can talk to the bot through the fake server while it runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from telegram import Update
from telegram.ext import Application

from bot.app import build_application
from bot.config import Settings, load_settings
from bot.services.storage import reset_storage_service

AnyApp = Application[Any, Any, Any, Any, Any, Any]


def make_settings(tmp_path: Path, api_base_url: str, token: str, **overrides: Any) -> Settings:
    """Settings for a test bot: state under ``tmp_path``, private feeds allowed, no health port."""
    base = load_settings(
        {
            "TELEGRAM_BOT_TOKEN": token,
            "TELEGRAM_API_BASE_URL": api_base_url,
            "DATA_DIR": str(tmp_path / "data"),
            "BACKUP_DIR": str(tmp_path / "backups"),
            "ALLOW_PRIVATE_FEEDS": "1",
            "HEALTH_PORT": "0",
        },
        env_file=None,
    )
    return dataclasses.replace(base, **overrides)


@asynccontextmanager
async def running_bot(
    settings: Settings, *, rate_limit_outgoing: bool = True
) -> AsyncIterator[AnyApp]:
    """Start the bot the way ``python -m bot`` does and stop it cleanly afterwards."""
    reset_storage_service()
    app = build_application(settings, rate_limit_outgoing=rate_limit_outgoing)
    await app.initialize()
    try:
        if app.post_init is not None:
            await app.post_init(app)
        assert app.updater is not None
        await app.updater.start_polling(
            poll_interval=0.0, timeout=1, allowed_updates=Update.ALL_TYPES
        )
        await app.start()
        yield app
    finally:
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await app.shutdown()
        if app.post_shutdown is not None:
            await app.post_shutdown(app)
        reset_storage_service()
