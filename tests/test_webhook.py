"""Webhook mode end to end: the fake Bot API pushes updates to the real bot's receiver.

In-process through ``running_bot(webhook=True)`` (the same receiver ``python -m bot`` runs),
and once as a real ``python -m bot`` subprocess.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.config import Settings
from bot.context import services_of
from bot.webhook import SECRET_FILE_NAME, WebhookError, load_or_create_secret
from tests.helpers.bot_runner import (
    eventually,
    free_port,
    running_bot,
    start_bot_process,
    subprocess_env,
)
from tests.helpers.fake_bot_api import FakeBotAPI

CHAT = 4242


def webhook_settings(make: Callable[..., Settings], **overrides: Any) -> Settings:
    port = free_port()
    return make(
        webhook_url=f"http://127.0.0.1:{port}/telegram",
        webhook_port=port,
        **overrides,
    )


def start_update(fake_api: FakeBotAPI, text: str = "/start") -> dict[str, Any]:
    """An update as Telegram would push it (built by the fake, then taken off its queue)."""
    update_id = fake_api.send_command(text, chat_id=CHAT, user_id=CHAT)
    [update] = [u for u in fake_api._updates if u["update_id"] == update_id]
    fake_api._updates.remove(update)
    return update


async def test_webhook_is_set_with_a_kept_secret_and_updates_get_replies(
    fake_api: FakeBotAPI, bot_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = webhook_settings(bot_settings)
    async with running_bot(settings, webhook=True):
        [call] = fake_api.webhook.set_calls
        assert call["url"] == settings.webhook_url
        assert call["drop_pending_updates"] is False
        assert "message" in call["allowed_updates"]
        secret = call["secret_token"]
        assert len(secret) >= 32
        fake_api.send_command("/start", chat_id=CHAT, user_id=CHAT)
        [reply] = await fake_api.wait_for_messages(1, chat_id=CHAT)
        # Delivered by push, acknowledged with 200; the bot never polled.
        assert [d.status for d in fake_api.webhook.deliveries] == [200]
        assert not fake_api.calls_to("getUpdates")
    assert "Hi!" in reply["plain"]
    kept = tmp_path / "data" / SECRET_FILE_NAME
    assert kept.read_text().strip() == secret
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    # Shutting down leaves the webhook in place: Telegram queues updates for the restart.
    assert fake_api.webhook.url == settings.webhook_url
    assert not fake_api.calls_to("deleteWebhook")

    fake_api.send_command("/help", chat_id=CHAT, user_id=CHAT)  # arrives while the bot is down
    async with running_bot(settings, webhook=True):
        assert fake_api.webhook.set_calls[-1]["secret_token"] == secret  # same secret again
        messages = await fake_api.wait_for_messages(2, chat_id=CHAT)
    assert "/news" in messages[1]["plain"]


@pytest.mark.parametrize("secret", [None, "wrong-secret", ""])
async def test_requests_without_the_right_secret_get_403_and_a_log_line(
    fake_api: FakeBotAPI,
    bot_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
    secret: str | None,
) -> None:
    caplog.set_level(logging.INFO)
    async with running_bot(webhook_settings(bot_settings), webhook=True) as app:
        right = fake_api.webhook.secret_token
        status, _ = await fake_api.webhook.post(start_update(fake_api), secret=secret)
        await asyncio.sleep(0.2)  # a wrongly accepted update would have been answered by now
        refused = [r for r in caplog.records if getattr(r, "event", None) == "webhook_forbidden"]
        metrics = services_of(app).metrics
        forbidden = metrics.registry.get_sample_value(
            "newsbot_webhook_requests_total", {"outcome": "forbidden"}
        )
        # The right secret, for contrast, is accepted and answered.
        ok_status, _ = await fake_api.webhook.post(start_update(fake_api))
        await fake_api.wait_for_messages(1, chat_id=CHAT)
    assert status == 403
    assert len(fake_api.sent_messages(CHAT)) == 1
    assert len(refused) == 1
    assert refused[0].levelno == logging.WARNING
    assert "secret token" in refused[0].getMessage()
    assert forbidden == 1
    assert ok_status == 200
    assert right is not None
    assert all(right not in r.getMessage() for r in caplog.records)


async def test_a_configured_secret_is_used_and_nothing_is_written(
    fake_api: FakeBotAPI, bot_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    secret = "operator-chosen_secret-0123456789"
    async with running_bot(webhook_settings(bot_settings, webhook_secret=secret), webhook=True):
        assert fake_api.webhook.set_calls[0]["secret_token"] == secret
        status, _ = await fake_api.webhook.post(start_update(fake_api), secret=secret)
        await fake_api.wait_for_messages(1, chat_id=CHAT)
    assert status == 200
    assert not (tmp_path / "data" / SECRET_FILE_NAME).exists()


async def test_garbage_with_the_right_secret_is_a_400_and_the_bot_keeps_going(
    fake_api: FakeBotAPI, bot_settings: Callable[..., Settings]
) -> None:
    async with running_bot(webhook_settings(bot_settings), webhook=True) as app:
        url, secret = fake_api.webhook.url, fake_api.webhook.secret_token
        assert secret is not None
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret}
        async with httpx.AsyncClient(trust_env=False) as client:
            not_json = await client.post(url, content=b"{nope", headers=headers)
            a_list = await client.post(url, json=[1, 2], headers=headers)
            wrong_method = await client.get(url, headers=headers)
        fake_api.send_command("/start", chat_id=CHAT, user_id=CHAT)
        await fake_api.wait_for_messages(1, chat_id=CHAT)
        bad = services_of(app).metrics.registry.get_sample_value(
            "newsbot_webhook_requests_total", {"outcome": "bad_request"}
        )
    assert (not_json.status_code, a_list.status_code) == (400, 400)
    assert wrong_method.status_code == 405
    assert bad == 2


async def test_webhook_changed_by_someone_else_turns_healthz_unhealthy_until_restored(
    fake_api: FakeBotAPI, bot_settings: Callable[..., Settings]
) -> None:
    settings = webhook_settings(bot_settings, health_port=free_port())
    async with running_bot(settings, webhook=True, webhook_probe_interval_s=0.05) as app:
        health_server = services_of(app).health_server
        assert health_server is not None
        healthz = f"http://127.0.0.1:{health_server.port}/healthz"
        await fake_api.wait_for_call("getWebhookInfo")
        assert await _status(healthz) == 200  # the probe counts as contact with Telegram
        fake_api.webhook.replace("https://other-instance.example/hook")
        await eventually(lambda: _is(healthz, 503), what="healthz to report the conflict")
        async with httpx.AsyncClient(trust_env=False) as client:
            reasons = " ".join((await client.get(healthz)).json()["reasons"])
        fake_api.webhook.replace(settings.webhook_url or "")
        await eventually(lambda: _is(healthz, 200), what="healthz to recover")
    assert "other-instance.example" in reasons
    assert "/hook" not in reasons  # only the host of someone else's URL is shown


def test_a_corrupt_kept_secret_is_an_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / SECRET_FILE_NAME).write_text("not a valid secret!\n")
    with pytest.raises(WebhookError, match=SECRET_FILE_NAME):
        load_or_create_secret(tmp_path, None)


def test_a_kept_secret_survives_and_a_configured_one_wins(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path / "d", None)
    assert load_or_create_secret(tmp_path / "d", None) == first
    assert load_or_create_secret(tmp_path / "d", "given") == "given"


@pytest.mark.slow
async def test_python_m_bot_in_webhook_mode(fake_api: FakeBotAPI, tmp_path: Path) -> None:
    port, health_port = free_port(), free_port()
    env = subprocess_env(
        tmp_path,
        TELEGRAM_BOT_TOKEN=fake_api.token,
        TELEGRAM_API_BASE_URL=f"{fake_api.base_url}/bot",  # PTB's form works too
        TELEGRAM_WEBHOOK_URL=f"http://127.0.0.1:{port}/tg",
        WEBHOOK_PORT=str(port),
        HEALTH_PORT=str(health_port),
        LOG_LEVEL="DEBUG",
    )
    proc = await start_bot_process(env, tmp_path)
    try:
        await fake_api.wait_for_call("setWebhook", timeout=20)
        fake_api.send_command("/start", chat_id=CHAT, user_id=CHAT)
        await fake_api.wait_for_messages(1, chat_id=CHAT, timeout=20)
        healthz = await _status(f"http://127.0.0.1:{health_port}/healthz")
        secret = fake_api.webhook.secret_token
        status, _ = await fake_api.webhook.post(start_update(fake_api), secret="guess")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=20)
    log = out.decode()
    assert proc.returncode == 0, log
    assert healthz == 200
    assert status == 403
    assert "webhook: refused a request" in log
    assert "webhook mode: listening" in log
    # DEBUG logging prints every request's parameters; neither secret may appear.
    assert secret is not None
    assert secret not in log
    assert fake_api.token.split(":")[1] not in log
    assert not fake_api.calls_to("getUpdates")


async def _status(url: str) -> int:
    async with httpx.AsyncClient(trust_env=False) as client:
        return (await client.get(url)).status_code


async def _is(url: str, status: int) -> bool:
    return await _status(url) == status
