"""Run the real PTB ``Application`` in-process against the fake Bot API.

``running_bot`` replays what ``Application.run_polling`` does (initialize → post_init →
start polling → start, and the reverse on exit) without taking over the event loop, so a
test can talk to the bot through the fake server while it runs. With ``webhook=True`` it
replays :func:`bot.webhook.serve_webhook` instead (the receiver in place of polling).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from telegram import Update
from telegram.ext import Application
from telegram.request import BaseRequest

from bot.app import build_application
from bot.config import Settings, load_settings
from bot.storage import reset_storage_service
from bot.webhook import WebhookReceiver, load_or_create_secret

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
            "PARSER_PROCESSES": "0",
        },
        env_file=None,
    )
    return dataclasses.replace(base, **overrides)


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 10.0, what: str = "condition"
) -> None:
    """Wait until ``check()`` is true: for effects of updates that send no reply.

    Raises:
        AssertionError: naming ``what`` when it did not become true in time.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        await asyncio.sleep(0.02)


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1 (for settings that need a number)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def subprocess_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment for ``python -m bot`` as a subprocess: state under tmp_path, no health port.

    Inherited TELEGRAM_*/BOT_* variables are dropped so a developer's real token can never
    reach a test bot.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "BOT_"))}
    env.update(
        {
            "DATA_DIR": str(tmp_path / "data"),
            "BACKUP_DIR": str(tmp_path / "backups"),
            "HEALTH_PORT": "0",
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        }
    )
    env.update(extra)
    return env


async def start_bot_process(
    env: dict[str, str], cwd: Path, *, capture: bool = True
) -> asyncio.subprocess.Process:
    """Start ``python -m bot``; stdout and stderr are captured together unless ``capture``
    is off (a test that never reads the pipe must not let it fill up and block the bot).
    """
    out = asyncio.subprocess.PIPE if capture else asyncio.subprocess.DEVNULL
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        env=env,
        cwd=cwd,
        stdout=out,
        stderr=asyncio.subprocess.STDOUT,
    )


@asynccontextmanager
async def running_bot(
    settings: Settings,
    *,
    rate_limit_outgoing: bool = True,
    request: BaseRequest | None = None,
    poll: bool = True,
    webhook: bool = False,
    webhook_probe_interval_s: float | None = None,
) -> AsyncIterator[AnyApp]:
    """Start the bot the way ``python -m bot`` does and stop it cleanly afterwards.

    Args:
        settings: the bot's settings (see :func:`make_settings`).
        rate_limit_outgoing: passed to ``build_application``.
        request: a Bot API transport to use instead of HTTP (benchmarks).
        poll: long-poll the (fake) Bot API for updates; benchmarks feed
            ``app.update_queue`` themselves and turn it off.
        webhook: receive updates through :class:`bot.webhook.WebhookReceiver` (needs
            ``settings.webhook_url``) instead of polling, as ``python -m bot`` does when
            ``TELEGRAM_WEBHOOK_URL`` is set.
        webhook_probe_interval_s: passed to the receiver (its getWebhookInfo probe).
    """
    reset_storage_service()
    app = build_application(settings, rate_limit_outgoing=rate_limit_outgoing, request=request)
    receiver: WebhookReceiver | None = None
    await app.initialize()
    try:
        if app.post_init is not None:
            await app.post_init(app)
        if webhook:
            secret = load_or_create_secret(settings.data_dir, settings.webhook_secret)
            receiver = WebhookReceiver(
                app, settings, secret, probe_interval_s=webhook_probe_interval_s
            )
            await receiver.start()
        elif poll:
            assert app.updater is not None
            await app.updater.start_polling(
                poll_interval=0.0,
                timeout=1,
                allowed_updates=Update.ALL_TYPES,
                # As run_polling does: polling errors go to the application's error handlers.
                error_callback=lambda exc: _report_polling_error(app, exc),
            )
        await app.start()
        yield app
    finally:
        if receiver is not None:
            await receiver.stop()
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        if app.post_stop is not None:
            await app.post_stop(app)
        await app.shutdown()
        if app.post_shutdown is not None:
            await app.post_shutdown(app)
        reset_storage_service()


def _report_polling_error(app: AnyApp, exc: Exception) -> None:
    app.create_task(app.process_error(error=exc, update=None))
